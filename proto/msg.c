/*
 * Decoding of master <-> worker messages: the frame checks (size, pre-scan, one complete msgpack
 * value), the [type, data, node_id] envelope, the typed field getters, and every message type
 * except the stats report (msg_stats.c). Encoders live in msg_enc.c. See proto/PROTOCOL.md.
 */
#include "proto/msg_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

static const char *const type_names[] = {
    [ACR_MSG_CUSTOM] = "custom",
    [ACR_MSG_CLIENT_READY] = "client_ready",
    [ACR_MSG_ACK] = "ack",
    [ACR_MSG_HEARTBEAT] = "heartbeat",
    [ACR_MSG_SPAWN] = "spawn",
    [ACR_MSG_SPAWNING] = "spawning",
    [ACR_MSG_SPAWNING_COMPLETE] = "spawning_complete",
    [ACR_MSG_STATS] = "stats",
    [ACR_MSG_STOP] = "stop",
    [ACR_MSG_CLIENT_STOPPED] = "client_stopped",
    [ACR_MSG_QUIT] = "quit",
    [ACR_MSG_EXCEPTION] = "exception",
    [ACR_MSG_RECONNECT] = "reconnect",
    [ACR_MSG_SCENARIO] = "scenario",
    [ACR_MSG_POOL_REQ] = "acrida_pool_req",
    [ACR_MSG_POOL_REP] = "acrida_pool_rep",
    [ACR_MSG_RAMP_DONE] = "acrida_spawning_complete",
    [ACR_MSG_REJOIN] = "acrida_rejoin",
    [ACR_MSG_BUNDLE_PART] = "acrida_bundle_part",
    [ACR_MSG_SCENARIO_LOADED] = "acrida_scenario_loaded",
    [ACR_MSG_STALL] = "acrida_stall",
};

const char *acr_msg_type_name(acr_msg_type_t t)
{
    if ((unsigned)t >= ACR_ARRAY_SIZE(type_names) || !type_names[t]) return "unknown";
    return type_names[t];
}

static acr_msg_type_t type_from_name(const char *s, size_t n)
{
    static const struct {
        const char *name;
        acr_msg_type_t type;
    } legacy[] = {{"hatch", ACR_MSG_SPAWN}, {"hatching_complete", ACR_MSG_SPAWNING_COMPLETE}};
    for (unsigned t = 1; t < ACR_ARRAY_SIZE(type_names); t++)
        if (strlen(type_names[t]) == n && memcmp(type_names[t], s, n) == 0)
            return (acr_msg_type_t)t;
    for (unsigned i = 0; i < ACR_ARRAY_SIZE(legacy); i++)
        if (strlen(legacy[i].name) == n && memcmp(legacy[i].name, s, n) == 0) return legacy[i].type;
    return ACR_MSG_CUSTOM;
}

bool acr_msg_is_hex(const char *s, size_t n)
{
    if (!s || strlen(s) != n) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return true;
}

bool acr_msg_type_is_builtin(const char *name)
{
    return type_from_name(name, strlen(name)) != ACR_MSG_CUSTOM;
}

/* ---- field access ---- */

int acr__dec_fail(acr__dec_t *d, const char *fmt, ...)
{
    size_t pl = strlen(d->prefix);
    if (d->errlen == 0) return -EPROTO;
    snprintf(d->err, d->errlen, "%s", d->prefix);
    if (pl < d->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->err + pl, d->errlen - pl, fmt, ap);
        va_end(ap);
    }
    return -EPROTO;
}

static bool key_eq(const msgpack_object *k, const char *key)
{
    size_t n = strlen(key);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
           memcmp(k->via.str.ptr, key, n) == 0;
}

const msgpack_object *acr__map_get(const msgpack_object *map, const char *key)
{
    if (map->type != MSGPACK_OBJECT_MAP) return NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++)
        if (key_eq(&map->via.map.ptr[i].key, key)) return &map->via.map.ptr[i].val;
    return NULL;
}

bool acr__obj_is_int(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER || o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
}

bool acr__obj_is_num(const msgpack_object *o)
{
    if (acr__obj_is_int(o)) return true;
    if (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64)
        return isfinite(o->via.f64);
    return false;
}

double acr__obj_num(const msgpack_object *o)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) return (double)o->via.u64;
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) return (double)o->via.i64;
    return o->via.f64;
}

int acr__dup_str(acr__dec_t *d, const msgpack_object *o, const char *what, char **out)
{
    if (o->type != MSGPACK_OBJECT_STR) return acr__dec_fail(d, "'%s' is not a string", what);
    /* msgpack-c may leave ptr NULL for an empty string */
    const char *p = o->via.str.size ? o->via.str.ptr : "";
    size_t n = o->via.str.size;
    if (n && memchr(p, 0, n)) return acr__dec_fail(d, "'%s' contains a NUL byte", what);
    if (!acr__utf8_valid(p, n)) return acr__dec_fail(d, "'%s' is not valid UTF-8", what);
    char *s = malloc(n + 1);
    if (!s) return -ENOMEM;
    memcpy(s, p, n);
    s[n] = '\0';
    *out = s;
    return 0;
}

/* Looks @key up; returns NULL when absent (or nil with ACR__NIL_OK). *r is 0, or -EPROTO when
 * the key is required and absent. */
static const msgpack_object *lookup(acr__dec_t *d, const msgpack_object *map, const char *key,
                                    unsigned flags, int *r, const char *missing)
{
    const msgpack_object *o = acr__map_get(map, key);
    *r = 0;
    if (o && o->type == MSGPACK_OBJECT_NIL && (flags & ACR__NIL_OK)) o = NULL;
    if (!o && (flags & ACR__REQ)) *r = acr__dec_fail(d, "'%s' %s", key, missing);
    return o;
}

int acr__get_str(acr__dec_t *d, const msgpack_object *map, const char *key, unsigned flags,
                 char **out)
{
    int r;
    const msgpack_object *o = lookup(d, map, key, flags, &r, "missing or not a string");
    if (!o) return r;
    if (o->type != MSGPACK_OBJECT_STR) return acr__dec_fail(d, "'%s' missing or not a string", key);
    r = acr__dup_str(d, o, key, out);
    return r ? r : 1;
}

int acr__get_i64(acr__dec_t *d, const msgpack_object *map, const char *key, unsigned flags,
                 int64_t *out)
{
    int r;
    const msgpack_object *o = lookup(d, map, key, flags, &r, "missing");
    if (!o) return r;
    if (!acr__obj_is_int(o)) return acr__dec_fail(d, "'%s' is not an integer", key);
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 > INT64_MAX)
        return acr__dec_fail(d, "'%s' is out of range", key);
    *out = o->via.i64;
    return 1;
}

int acr__get_u64(acr__dec_t *d, const msgpack_object *map, const char *key, unsigned flags,
                 uint64_t *out)
{
    int r;
    const msgpack_object *o = lookup(d, map, key, flags, &r, "missing");
    if (!o) return r;
    if (!acr__obj_is_int(o)) return acr__dec_fail(d, "'%s' is not an integer", key);
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return acr__dec_fail(d, "'%s' is negative", key);
    *out = o->via.u64;
    return 1;
}

int acr__get_num(acr__dec_t *d, const msgpack_object *map, const char *key, unsigned flags,
                 double *out)
{
    int r;
    const msgpack_object *o = lookup(d, map, key, flags, &r, "missing");
    if (!o) return r;
    if (!acr__obj_is_num(o)) return acr__dec_fail(d, "'%s' is not a number", key);
    *out = acr__obj_num(o);
    return 1;
}

void acr__free_classes(acr_class_count_t *c, size_t n)
{
    if (!c) return;
    for (size_t i = 0; i < n; i++) free(c[i].name);
    free(c);
}

int acr__get_classes(acr__dec_t *d, const msgpack_object *map, const char *key, unsigned flags,
                     acr_class_count_t **out, size_t *n)
{
    int r;
    const msgpack_object *o = lookup(d, map, key, flags, &r, "missing");
    if (!o) return r;
    if (o->type != MSGPACK_OBJECT_MAP) return acr__dec_fail(d, "'%s' is not a map", key);
    size_t cnt = o->via.map.size;
    acr_class_count_t *c = calloc(cnt ? cnt : 1, sizeof(*c));
    if (!c) return -ENOMEM;
    for (size_t i = 0; i < cnt; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR) {
            r = acr__dec_fail(d, "'%s': class name is not a string", key);
            goto fail;
        }
        if (kv->val.type != MSGPACK_OBJECT_POSITIVE_INTEGER || kv->val.via.u64 > INT64_MAX) {
            r = acr__dec_fail(d, "'%s': count of class %zu is not a non-negative integer", key, i);
            goto fail;
        }
        r = acr__dup_str(d, &kv->key, key, &c[i].name);
        if (r) goto fail;
        c[i].count = (int64_t)kv->val.via.u64;
    }
    *out = c;
    *n = cnt;
    return 1;
fail:
    acr__free_classes(c, cnt);
    return r;
}

/* ---- per-type decoders ---- */

static int decode_client_ready(acr__dec_t *d, const msgpack_object *data, acr_msg_t *m)
{
    char tmp[32];
    if (data->type == MSGPACK_OBJECT_STR) {
        int r = acr__dup_str(d, data, "version", &m->version);
        if (r) return r;
    } else if (data->type == MSGPACK_OBJECT_NIL || acr__obj_is_int(data)) {
        /* Locust accepts -1 (and treats nil/0 as a pre-2.0 worker): keep the text form. */
        if (data->type == MSGPACK_OBJECT_NIL)
            tmp[0] = '\0';
        else if (data->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            snprintf(tmp, sizeof(tmp), "%" PRId64, data->via.i64);
        else
            snprintf(tmp, sizeof(tmp), "%" PRIu64, data->via.u64);
        m->version = strdup(tmp);
        if (!m->version) return -ENOMEM;
    } else {
        return acr__dec_fail(d, "version is not a string");
    }
    m->acrida = strncmp(m->version, "acrida/", 7) == 0;
    return 0;
}

static int decode_ack(acr__dec_t *d, const msgpack_object *data, acr_msg_t *m)
{
    m->index = -1;
    if (data->type == MSGPACK_OBJECT_NIL) return 0; /* masters <= 2.10.2 */
    if (data->type != MSGPACK_OBJECT_MAP) return acr__dec_fail(d, "data is not a map or nil");
    int r = acr__get_i64(d, data, "index", ACR__NIL_OK, &m->index);
    if (r < 0) return r;
    const msgpack_object *caps = acr__map_get(data, "acrida");
    if (caps && caps->type != MSGPACK_OBJECT_NIL) {
        if (caps->type != MSGPACK_OBJECT_MAP) return acr__dec_fail(d, "'acrida' is not a map");
        snprintf(d->prefix, sizeof(d->prefix), "ack: acrida: ");
        r = acr__get_str(d, caps, "version", ACR__NIL_OK, &m->version);
        if (r < 0) return r;
        r = acr__get_str(d, caps, "instance", ACR__NIL_OK, &m->instance);
        if (r < 0) return r;
        if (m->instance && !acr_msg_is_hex(m->instance, ACR_MSG_ID_HEX))
            return acr__dec_fail(d, "'instance' is not %d lowercase hex characters",
                                 ACR_MSG_ID_HEX);
        m->acrida = true;
    }
    return 0;
}

static int decode_heartbeat(acr__dec_t *d, const msgpack_object *data, acr_msg_t *m)
{
    if (data->type == MSGPACK_OBJECT_NIL) return 0; /* acrida master -> worker heartbeat */
    if (data->type != MSGPACK_OBJECT_MAP) return acr__dec_fail(d, "data is not a map or nil");
    int r = acr__get_str(d, data, "state", ACR__REQ, &m->state);
    if (r < 0) return r;
    r = acr__get_num(d, data, "current_cpu_usage", ACR__REQ, &m->cpu_usage);
    if (r < 0) return r;
    r = acr__get_i64(d, data, "current_memory_usage", ACR__NIL_OK, &m->memory_usage);
    if (r < 0) return r;
    r = acr__get_i64(d, data, "acrida_nofile", ACR__NIL_OK, &m->nofile);
    if (r < 0) return r;
    if (m->nofile < 0) return acr__dec_fail(d, "'acrida_nofile' is negative");
    return 0;
}

static void free_list(char **l)
{
    for (size_t i = 0; l && l[i]; i++) free(l[i]);
    free(l);
}

/* <where><key> (where: "parsed_options." in a spawn, "" in acrida_rejoin): nil/absent or an
 * array of at most ACR_MSG_MAX_TAGS strings of 1 to ACR_MSG_TAG_MAX bytes, into a
 * NULL-terminated list (NULL when empty). */
static int get_tag_list(acr__dec_t *d, const msgpack_object *po, const char *where, const char *key,
                        char ***out)
{
    const msgpack_object *o = acr__map_get(po, key);
    if (!o || o->type == MSGPACK_OBJECT_NIL) return 0;
    if (o->type != MSGPACK_OBJECT_ARRAY)
        return acr__dec_fail(d, "'%s%s' is not an array", where, key);
    uint32_t n = o->via.array.size;
    if (n > ACR_MSG_MAX_TAGS)
        return acr__dec_fail(d, "'%s%s' has more than %d tags", where, key, ACR_MSG_MAX_TAGS);
    if (n == 0) return 0;
    char **l = calloc((size_t)n + 1, sizeof(*l));
    if (!l) return -ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *t = &o->via.array.ptr[i];
        int r;
        if (t->type == MSGPACK_OBJECT_STR &&
            (t->via.str.size == 0 || t->via.str.size > ACR_MSG_TAG_MAX)) {
            r = acr__dec_fail(d, "'%s%s' has a tag of %u bytes (1 to %d)", where, key,
                              t->via.str.size, ACR_MSG_TAG_MAX);
        } else {
            r = acr__dup_str(d, t, key, &l[i]);
        }
        if (r < 0) {
            free_list(l);
            return r;
        }
    }
    *out = l;
    return 1;
}

static int decode_spawn(acr__dec_t *d, const msgpack_object *data, acr_msg_t *m)
{
    if (data->type != MSGPACK_OBJECT_MAP) return acr__dec_fail(d, "data is not a map");
    int r = acr__get_num(d, data, "timestamp", ACR__REQ, &m->timestamp);
    if (r < 0) return r;
    r = acr__get_classes(d, data, "user_classes_count", ACR__REQ, &m->classes, &m->nclasses);
    if (r < 0) return r;
    r = acr__get_str(d, data, "host", ACR__NIL_OK, &m->host);
    if (r < 0) return r;
    m->stop_timeout = -1;
    r = acr__get_num(d, data, "stop_timeout", ACR__NIL_OK, &m->stop_timeout);
    if (r < 0) return r;
    if (r == 1 && m->stop_timeout < 0) return acr__dec_fail(d, "'stop_timeout' is negative");
    r = acr__get_str(d, data, "acrida_test_id", ACR__NIL_OK, &m->test_id);
    if (r < 0) return r;
    if (m->test_id && !acr_msg_is_hex(m->test_id, ACR_MSG_ID_HEX))
        return acr__dec_fail(d, "'acrida_test_id' is not %d lowercase hex characters",
                             ACR_MSG_ID_HEX);
    const msgpack_object *po = acr__map_get(data, "parsed_options");
    if (!po || po->type != MSGPACK_OBJECT_MAP) return 0; /* Locust's other options: ignored */
    r = get_tag_list(d, po, "parsed_options.", "tags", &m->tags);
    if (r >= 0) r = get_tag_list(d, po, "parsed_options.", "exclude_tags", &m->exclude_tags);
    return r < 0 ? r : 0;
}

static int decode_rejoin(acr__dec_t *d, const msgpack_object *data, acr_msg_t *m)
{
    if (data->type != MSGPACK_OBJECT_MAP) return acr__dec_fail(d, "data is not a map");
    int r = acr__get_str(d, data, "test_id", ACR__REQ, &m->test_id);
    if (r < 0) return r;
    if (*m->test_id && !acr_msg_is_hex(m->test_id, ACR_MSG_ID_HEX))
        return acr__dec_fail(d, "'test_id' is neither empty nor %d lowercase hex characters",
                             ACR_MSG_ID_HEX);
    if ((r = acr__get_str(d, data, "state", ACR__REQ, &m->state)) < 0) return r;
    if (strcmp(m->state, "spawning") != 0 && strcmp(m->state, "running") != 0 &&
        strcmp(m->state, "stopped") != 0)
        return acr__dec_fail(d, "'state' is not \"spawning\", \"running\" or \"stopped\"");
    r = acr__get_classes(d, data, "user_classes_count", ACR__REQ, &m->classes, &m->nclasses);
    if (r < 0) return r;
    if ((r = acr__get_i64(d, data, "user_count", ACR__REQ, &m->user_count)) < 0) return r;
    if (m->user_count < 0) return acr__dec_fail(d, "'user_count' is negative");
    if ((r = acr__get_str(d, data, "scenario_sha256", ACR__REQ, &m->scenario_sha256)) < 0) return r;
    if (!acr_msg_is_hex(m->scenario_sha256, ACR_MSG_SHA256_HEX))
        return acr__dec_fail(d, "'scenario_sha256' is not %d lowercase hex characters",
                             ACR_MSG_SHA256_HEX);
    if ((r = acr__get_str(d, data, "host", ACR__NIL_OK, &m->host)) < 0) return r;
    if ((r = acr__get_num(d, data, "stop_timeout", ACR__NIL_OK, &m->stop_timeout)) < 0) return r;
    if (r == 1 && m->stop_timeout < 0) return acr__dec_fail(d, "'stop_timeout' is negative");
    if ((r = get_tag_list(d, data, "", "tags", &m->tags)) < 0) return r;
    if ((r = get_tag_list(d, data, "", "exclude_tags", &m->exclude_tags)) < 0) return r;
    if ((r = acr__get_i64(d, data, "last_seq", ACR__REQ, &m->seq)) < 0) return r;
    if (m->seq < 0) return acr__dec_fail(d, "'last_seq' is negative");
    if ((r = acr__get_num(d, data, "started_at", ACR__NIL_OK, &m->started_at)) < 0) return r;
    if (r == 1 && !(m->started_at > 0)) /* NaN and the infinities are not numbers here */
        return acr__dec_fail(d, "'started_at' is not an epoch time > 0");
    return 0;
}

int acr_msg_check_started_at(double started_at, double now, char *err, size_t errlen)
{
    if (started_at > now + ACR_MSG_CLOCK_SKEW_S) {
        snprintf(err, errlen,
                 "'started_at' is %.0f s in the future of this host's clock (more than %.0f s: "
                 "clock skew?)",
                 started_at - now, ACR_MSG_CLOCK_SKEW_S);
        return -ERANGE;
    }
    if (!(now - started_at <= ACR_MSG_MAX_TEST_AGE_S)) {
        snprintf(err, errlen, "'started_at' is %.0f days old (more than %.0f)",
                 (now - started_at) / 86400.0, ACR_MSG_MAX_TEST_AGE_S / 86400.0);
        return -ERANGE;
    }
    return 0;
}

static int decode_spawning_complete(acr__dec_t *d, const msgpack_object *data, acr_msg_t *m)
{
    if (data->type != MSGPACK_OBJECT_MAP) return acr__dec_fail(d, "data is not a map");
    int r = acr__get_classes(d, data, "user_classes_count", ACR__REQ, &m->classes, &m->nclasses);
    if (r < 0) return r;
    r = acr__get_i64(d, data, "user_count", ACR__NIL_OK, &m->user_count);
    return r < 0 ? r : 0;
}

static int decode_ramp_done(acr__dec_t *d, const msgpack_object *data, acr_msg_t *m)
{
    if (data->type != MSGPACK_OBJECT_MAP) return acr__dec_fail(d, "data is not a map");
    int r = acr__get_i64(d, data, "user_count", ACR__REQ, &m->user_count);
    if (r < 0) return r;
    if (m->user_count < 0) return acr__dec_fail(d, "'user_count' is negative");
    return 0;
}

static int decode_exception(acr__dec_t *d, const msgpack_object *data, acr_msg_t *m)
{
    if (data->type != MSGPACK_OBJECT_MAP) return acr__dec_fail(d, "data is not a map");
    int r = acr__get_str(d, data, "msg", ACR__REQ, &m->exc_msg);
    if (r < 0) return r;
    r = acr__get_str(d, data, "traceback", ACR__REQ, &m->exc_traceback);
    if (r < 0) return r;
    m->exc_count = 1;
    r = acr__get_u64(d, data, "count", ACR__NIL_OK, &m->exc_count);
    if (r < 0) return r;
    if (m->exc_count == 0) return acr__dec_fail(d, "'count' is 0");
    return 0;
}

static int decode_scenario(acr__dec_t *d, const msgpack_object *data, acr_msg_t *m)
{
    if (data->type != MSGPACK_OBJECT_MAP) return acr__dec_fail(d, "data is not a map");
    int r = acr__get_str(d, data, "name", ACR__REQ, &m->scenario_name);
    if (r < 0) return r;
    const msgpack_object *src = acr__map_get(data, "source");
    if (!src || (src->type != MSGPACK_OBJECT_STR && src->type != MSGPACK_OBJECT_BIN))
        return acr__dec_fail(d, "'source' missing or not a string");
    /* The source is kept with its length (it may legitimately hold any byte). */
    size_t n = src->via.str.size;
    m->scenario_source = malloc(n + 1);
    if (!m->scenario_source) return -ENOMEM;
    if (n) memcpy(m->scenario_source, src->via.str.ptr, n);
    m->scenario_source[n] = '\0';
    m->scenario_len = n;

    const msgpack_object *sha = acr__map_get(data, "sha256");
    if (!sha || sha->type != MSGPACK_OBJECT_STR || sha->via.str.size != 64)
        return acr__dec_fail(d, "'sha256' missing or not a 64-character hex string");
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (!EVP_Digest(m->scenario_source, n, md, &mdlen, EVP_sha256(), NULL)) return -ENOMEM;
    char hex[65];
    for (unsigned i = 0; i < mdlen && i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    if (strncasecmp(hex, sha->via.str.ptr, 64) != 0)
        return acr__dec_fail(d, "'sha256' does not match the source");
    return acr__msg_decode_bundle_manifest(d, data, m);
}

static int decode_data(acr__dec_t *d, const msgpack_object *data, acr_msg_t *m)
{
    switch (m->type) {
    case ACR_MSG_CLIENT_READY:
        return decode_client_ready(d, data, m);
    case ACR_MSG_ACK:
        return decode_ack(d, data, m);
    case ACR_MSG_HEARTBEAT:
        return decode_heartbeat(d, data, m);
    case ACR_MSG_SPAWN:
        return decode_spawn(d, data, m);
    case ACR_MSG_SPAWNING_COMPLETE:
        return decode_spawning_complete(d, data, m);
    case ACR_MSG_STATS:
        return acr__msg_decode_stats(d, data, m);
    case ACR_MSG_EXCEPTION:
        return decode_exception(d, data, m);
    case ACR_MSG_SCENARIO:
        return decode_scenario(d, data, m);
    case ACR_MSG_POOL_REQ:
        return acr__msg_decode_pool_req(d, data, m);
    case ACR_MSG_POOL_REP:
        return acr__msg_decode_pool_rep(d, data, m);
    case ACR_MSG_RAMP_DONE:
        return decode_ramp_done(d, data, m);
    case ACR_MSG_REJOIN:
        return decode_rejoin(d, data, m);
    case ACR_MSG_BUNDLE_PART:
        return acr__msg_decode_bundle_part(d, data, m);
    case ACR_MSG_SCENARIO_LOADED:
        return acr__msg_decode_scenario_loaded(d, data, m);
    case ACR_MSG_STALL:
        return acr__msg_decode_stall(d, data, m);
    case ACR_MSG_CUSTOM: /* the scenario's handler decodes the data (common/lua_value.h) */
        return data->type == MSGPACK_OBJECT_NIL ? 0 : acr__repack(data, &m->data, &m->data_len);
    case ACR_MSG_SPAWNING:
    case ACR_MSG_STOP:
    case ACR_MSG_CLIENT_STOPPED:
    case ACR_MSG_QUIT:
    case ACR_MSG_RECONNECT:
        return 0; /* data ignored, as Locust does */
    }
    return 0;
}

int acr_msg_decode(const void *buf, size_t len, acr_msg_t *out, char *err, size_t errlen)
{
    return acr_msg_decode_reuse(buf, len, out, NULL, err, errlen);
}

int acr_msg_decode_reuse(const void *buf, size_t len, acr_msg_t *out, acr_stats_t **spare,
                         char *err, size_t errlen)
{
    acr__dec_t d = {.err = err, .errlen = errlen, .prefix = "", .spare = spare};
    msgpack_unpacked res;
    size_t off = 0;
    int r;

    memset(out, 0, sizeof(*out));
    out->index = -1;
    out->user_count = -1;
    out->seq = -1;
    out->stop_timeout = -1;
    if (errlen) err[0] = '\0';
    msgpack_unpacked_init(&res);

    if (len > ACR_MSG_MAX_FRAME) {
        r = acr__dec_fail(&d, "frame of %zu bytes exceeds the %u-byte limit", len,
                          ACR_MSG_MAX_FRAME);
        goto fail;
    }
    r = acr__msg_prescan(buf, len, err, errlen);
    if (r) goto fail;
    msgpack_unpack_return ur = msgpack_unpack_next(&res, buf, len, &off);
    if (ur == MSGPACK_UNPACK_NOMEM_ERROR) {
        r = -ENOMEM;
        goto fail;
    }
    if (ur != MSGPACK_UNPACK_SUCCESS || off != len) {
        r = acr__dec_fail(&d, "malformed msgpack (unpack result %d, %zu of %zu bytes)", (int)ur,
                          off, len);
        goto fail;
    }
    const msgpack_object *top = &res.data;
    if (top->type != MSGPACK_OBJECT_ARRAY || top->via.array.size != 3) {
        r = acr__dec_fail(&d, "frame is not a 3-element array");
        goto fail;
    }
    const msgpack_object *type = &top->via.array.ptr[0];
    const msgpack_object *data = &top->via.array.ptr[1];
    const msgpack_object *node = &top->via.array.ptr[2];
    if (type->type != MSGPACK_OBJECT_STR) {
        r = acr__dec_fail(&d, "message type is not a string");
        goto fail;
    }
    r = acr__dup_str(&d, type, "type", &out->type_name);
    if (r) goto fail;
    out->type = type_from_name(type->via.str.ptr, type->via.str.size);
    if (node->type == MSGPACK_OBJECT_NIL) {
        out->node_id = strdup("");
        if (!out->node_id) {
            r = -ENOMEM;
            goto fail;
        }
    } else if (node->type == MSGPACK_OBJECT_STR) {
        r = acr__dup_str(&d, node, "node_id", &out->node_id);
        if (r) goto fail;
    } else {
        r = acr__dec_fail(&d, "node_id is not a string or nil");
        goto fail;
    }
    snprintf(d.prefix, sizeof(d.prefix), "%s: ", out->type_name);
    r = decode_data(&d, data, out);
    if (r) goto fail;
    msgpack_unpacked_destroy(&res);
    return 0;
fail:
    if (r == -ENOMEM && errlen) snprintf(err, errlen, "out of memory");
    msgpack_unpacked_destroy(&res);
    acr_msg_free(out);
    memset(out, 0, sizeof(*out));
    return r;
}

void acr_msg_free(acr_msg_t *m)
{
    if (!m) return;
    free(m->type_name);
    free(m->node_id);
    free(m->version);
    free(m->state);
    free(m->instance);
    free(m->test_id);
    free(m->scenario_sha256);
    free(m->host);
    acr__free_classes(m->classes, m->nclasses);
    free_list(m->tags);
    free_list(m->exclude_tags);
    free(m->exc_msg);
    free(m->exc_traceback);
    if (m->stats) acr_stats_free(m->stats);
    free(m->scenario_name);
    free(m->scenario_source);
    free(m->data);
    free(m->pool.name);
    free(m->pool.error);
    free(m->bundle.sha256);
    free(m->bundle.main);
    free(m->bundle.error);
    free(m->stall_class);
    free(m->stall_task);
    memset(m, 0, sizeof(*m));
}
