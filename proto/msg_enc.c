/*
 * Encoders for every message (except the stats report's data, msg_stats.c), in Locust 2.x's exact
 * forms: [type, data, node_id], strings as str, floats as float64, integers in their smallest
 * form. Also Locust's error key (sha256 of "method.name.repr(error)").
 */
#include "proto/msg_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

static int buf_write(void *data, const char *p, size_t n)
{
    return acr_buf_append(data, p, n) ? -1 : 0;
}

void acr__packer_init(msgpack_packer *pk, acr_buf_t *b)
{
    msgpack_packer_init(pk, b, buf_write);
}

int acr__pack_str(msgpack_packer *pk, const char *s)
{
    if (!s) s = "";
    size_t n = strlen(s);
    int r = msgpack_pack_str(pk, n);
    return r ? r : msgpack_pack_str_body(pk, s, n);
}

int acr__pack_classes(msgpack_packer *pk, const acr_class_count_t *c, size_t n)
{
    int r = msgpack_pack_map(pk, n);
    for (size_t i = 0; i < n && !r; i++) {
        r = acr__pack_str(pk, c[i].name);
        if (!r) r = msgpack_pack_int64(pk, c[i].count);
    }
    return r;
}

/* Each encoder: open [type, data, node_id], pack the data, close; on failure the buffer is
 * truncated back to where it was. */
#define PACK_OR_FAIL(x)                                                                            \
    do {                                                                                           \
        if ((x) != 0) goto fail;                                                                   \
    } while (0)

#define ENC_BEGIN(type)                                                                            \
    msgpack_packer pk_;                                                                            \
    msgpack_packer *pk = &pk_;                                                                     \
    size_t start_ = b->len;                                                                        \
    acr__packer_init(pk, b);                                                                       \
    PACK_OR_FAIL(msgpack_pack_array(pk, 3));                                                       \
    PACK_OR_FAIL(acr__pack_str(pk, (type)))

#define ENC_END()                                                                                  \
    PACK_OR_FAIL(acr__pack_str(pk, node_id));                                                      \
    return 0;                                                                                      \
    fail:                                                                                          \
    b->len = start_;                                                                               \
    return -ENOMEM

int acr_msg_encode_client_ready(acr_buf_t *b, const char *version, const char *node_id)
{
    ENC_BEGIN("client_ready");
    PACK_OR_FAIL(acr__pack_str(pk, version));
    ENC_END();
}

/* @instance: NULL leaves it out of the acrida map. */
static int encode_ack(acr_buf_t *b, int64_t index, bool acrida, const char *instance,
                      const char *node_id)
{
    ENC_BEGIN("ack");
    PACK_OR_FAIL(msgpack_pack_map(pk, acrida ? 2 : 1));
    PACK_OR_FAIL(acr__pack_str(pk, "index"));
    PACK_OR_FAIL(msgpack_pack_int64(pk, index));
    if (acrida) {
        PACK_OR_FAIL(acr__pack_str(pk, "acrida"));
        PACK_OR_FAIL(msgpack_pack_map(pk, instance ? 2 : 1));
        PACK_OR_FAIL(acr__pack_str(pk, "version"));
        PACK_OR_FAIL(acr__pack_str(pk, ACR_VERSION));
        if (instance) {
            PACK_OR_FAIL(acr__pack_str(pk, "instance"));
            PACK_OR_FAIL(acr__pack_str(pk, instance));
        }
    }
    ENC_END();
}

int acr_msg_encode_ack(acr_buf_t *b, int64_t index, bool acrida, const char *node_id)
{
    return encode_ack(b, index, acrida, NULL, node_id);
}

int acr_msg_encode_ack_instance(acr_buf_t *b, int64_t index, const char *instance,
                                const char *node_id)
{
    if (!acr_msg_is_hex(instance, ACR_MSG_ID_HEX)) return -EINVAL;
    return encode_ack(b, index, true, instance, node_id);
}

int acr_msg_encode_heartbeat(acr_buf_t *b, const char *state, double cpu, int64_t mem,
                             int64_t nofile, const char *node_id)
{
    ENC_BEGIN("heartbeat");
    PACK_OR_FAIL(msgpack_pack_map(pk, nofile > 0 ? 4 : 3));
    PACK_OR_FAIL(acr__pack_str(pk, "state"));
    PACK_OR_FAIL(acr__pack_str(pk, state));
    PACK_OR_FAIL(acr__pack_str(pk, "current_cpu_usage"));
    PACK_OR_FAIL(msgpack_pack_double(pk, cpu));
    PACK_OR_FAIL(acr__pack_str(pk, "current_memory_usage"));
    PACK_OR_FAIL(msgpack_pack_int64(pk, mem));
    if (nofile > 0) {
        PACK_OR_FAIL(acr__pack_str(pk, "acrida_nofile"));
        PACK_OR_FAIL(msgpack_pack_int64(pk, nofile));
    }
    ENC_END();
}

static int pack_tag_list(msgpack_packer *pk, const char *const *list)
{
    size_t n = 0;
    while (list && list[n]) n++;
    if (n == 0) return msgpack_pack_nil(pk);
    if (msgpack_pack_array(pk, n)) return -1;
    for (size_t i = 0; i < n; i++)
        if (acr__pack_str(pk, list[i])) return -1;
    return 0;
}

int acr_msg_encode_spawn_test(acr_buf_t *b, double timestamp, const acr_class_count_t *classes,
                              size_t n, const char *host, double stop_timeout,
                              const char *const *tags, const char *const *exclude_tags,
                              const char *test_id, const char *node_id)
{
    bool with_tags = (tags && tags[0]) || (exclude_tags && exclude_tags[0]);
    if (test_id && !acr_msg_is_hex(test_id, ACR_MSG_ID_HEX)) return -EINVAL;
    ENC_BEGIN("spawn");
    PACK_OR_FAIL(msgpack_pack_map(pk, test_id ? 6 : 5));
    PACK_OR_FAIL(acr__pack_str(pk, "timestamp"));
    PACK_OR_FAIL(msgpack_pack_double(pk, timestamp));
    PACK_OR_FAIL(acr__pack_str(pk, "user_classes_count"));
    PACK_OR_FAIL(acr__pack_classes(pk, classes, n));
    PACK_OR_FAIL(acr__pack_str(pk, "host"));
    PACK_OR_FAIL(host ? acr__pack_str(pk, host) : msgpack_pack_nil(pk));
    PACK_OR_FAIL(acr__pack_str(pk, "stop_timeout"));
    PACK_OR_FAIL(stop_timeout >= 0 ? msgpack_pack_double(pk, stop_timeout) : msgpack_pack_nil(pk));
    PACK_OR_FAIL(acr__pack_str(pk, "parsed_options"));
    PACK_OR_FAIL(msgpack_pack_map(pk, with_tags ? 2 : 0));
    if (with_tags) {
        PACK_OR_FAIL(acr__pack_str(pk, "tags"));
        PACK_OR_FAIL(pack_tag_list(pk, tags));
        PACK_OR_FAIL(acr__pack_str(pk, "exclude_tags"));
        PACK_OR_FAIL(pack_tag_list(pk, exclude_tags));
    }
    if (test_id) {
        PACK_OR_FAIL(acr__pack_str(pk, "acrida_test_id"));
        PACK_OR_FAIL(acr__pack_str(pk, test_id));
    }
    ENC_END();
}

int acr_msg_encode_spawn_tags(acr_buf_t *b, double timestamp, const acr_class_count_t *classes,
                              size_t n, const char *host, double stop_timeout,
                              const char *const *tags, const char *const *exclude_tags,
                              const char *node_id)
{
    return acr_msg_encode_spawn_test(b, timestamp, classes, n, host, stop_timeout, tags,
                                     exclude_tags, NULL, node_id);
}

int acr_msg_encode_spawn(acr_buf_t *b, double timestamp, const acr_class_count_t *classes, size_t n,
                         const char *host, double stop_timeout, const char *node_id)
{
    return acr_msg_encode_spawn_tags(b, timestamp, classes, n, host, stop_timeout, NULL, NULL,
                                     node_id);
}

int acr_msg_encode_nil(acr_buf_t *b, const char *type, const char *node_id)
{
    ENC_BEGIN(type);
    PACK_OR_FAIL(msgpack_pack_nil(pk));
    ENC_END();
}

int acr_msg_encode_spawning_complete(acr_buf_t *b, const acr_class_count_t *classes, size_t n,
                                     int64_t user_count, const char *node_id)
{
    ENC_BEGIN("spawning_complete");
    PACK_OR_FAIL(msgpack_pack_map(pk, 2));
    PACK_OR_FAIL(acr__pack_str(pk, "user_classes_count"));
    PACK_OR_FAIL(acr__pack_classes(pk, classes, n));
    PACK_OR_FAIL(acr__pack_str(pk, "user_count"));
    PACK_OR_FAIL(msgpack_pack_int64(pk, user_count));
    ENC_END();
}

int acr_msg_encode_ramp_done(acr_buf_t *b, int64_t user_count, const char *node_id)
{
    if (user_count < 0) return -EINVAL;
    ENC_BEGIN("acrida_spawning_complete");
    PACK_OR_FAIL(msgpack_pack_map(pk, 1));
    PACK_OR_FAIL(acr__pack_str(pk, "user_count"));
    PACK_OR_FAIL(msgpack_pack_int64(pk, user_count));
    ENC_END();
}

int acr_msg_encode_stats(acr_buf_t *b, acr_stats_t *delta, const acr_class_count_t *classes,
                         size_t n, int64_t user_count, int64_t seq, bool final, const char *node_id)
{
    return acr_msg_encode_stats_extra(b, delta, classes, n, user_count, seq, final, NULL, 0, 0,
                                      node_id);
}

int acr_msg_encode_stats_extra(acr_buf_t *b, acr_stats_t *delta, const acr_class_count_t *classes,
                               size_t n, int64_t user_count, int64_t seq, bool final,
                               const void *extra, size_t extra_len, uint32_t nextra,
                               const char *node_id)
{
    ENC_BEGIN("stats");
    PACK_OR_FAIL(acr__pack_stats_data(pk, delta, classes, n, user_count, seq,
                                      final ? ACR__STATS_FINAL : 0, extra_len ? nextra : 0));
    if (nextra && extra_len) PACK_OR_FAIL(acr_buf_append(b, extra, extra_len));
    ENC_END();
}

int acr_msg_encode_stats_cumulative(acr_buf_t *b, acr_stats_t *cumulative,
                                    const acr_class_count_t *classes, size_t n, int64_t user_count,
                                    int64_t seq, bool final, const char *node_id)
{
    unsigned flags = ACR__STATS_CUMULATIVE | (final ? ACR__STATS_FINAL : 0);
    ENC_BEGIN("stats");
    PACK_OR_FAIL(acr__pack_stats_data(pk, cumulative, classes, n, user_count, seq, flags, 0));
    ENC_END();
}

static bool rejoin_valid(const acr_msg_rejoin_t *r)
{
    return r->test_id && (!*r->test_id || acr_msg_is_hex(r->test_id, ACR_MSG_ID_HEX)) && r->state &&
           (!strcmp(r->state, "spawning") || !strcmp(r->state, "running") ||
            !strcmp(r->state, "stopped")) &&
           r->user_count >= 0 && r->last_seq >= 0 &&
           acr_msg_is_hex(r->scenario_sha256, ACR_MSG_SHA256_HEX) &&
           (r->started_at <= 0 || isfinite(r->started_at)); /* NaN and +inf are neither */
}

int acr_msg_encode_rejoin(acr_buf_t *b, const acr_msg_rejoin_t *r, const char *node_id)
{
    if (!rejoin_valid(r)) return -EINVAL;
    ENC_BEGIN("acrida_rejoin");
    PACK_OR_FAIL(msgpack_pack_map(pk, 11));
    PACK_OR_FAIL(acr__pack_str(pk, "test_id"));
    PACK_OR_FAIL(acr__pack_str(pk, r->test_id));
    PACK_OR_FAIL(acr__pack_str(pk, "state"));
    PACK_OR_FAIL(acr__pack_str(pk, r->state));
    PACK_OR_FAIL(acr__pack_str(pk, "user_classes_count"));
    PACK_OR_FAIL(acr__pack_classes(pk, r->classes, r->nclasses));
    PACK_OR_FAIL(acr__pack_str(pk, "user_count"));
    PACK_OR_FAIL(msgpack_pack_int64(pk, r->user_count));
    PACK_OR_FAIL(acr__pack_str(pk, "scenario_sha256"));
    PACK_OR_FAIL(acr__pack_str(pk, r->scenario_sha256));
    PACK_OR_FAIL(acr__pack_str(pk, "host"));
    PACK_OR_FAIL(r->host ? acr__pack_str(pk, r->host) : msgpack_pack_nil(pk));
    PACK_OR_FAIL(acr__pack_str(pk, "stop_timeout"));
    PACK_OR_FAIL(r->stop_timeout >= 0 ? msgpack_pack_double(pk, r->stop_timeout)
                                      : msgpack_pack_nil(pk));
    PACK_OR_FAIL(acr__pack_str(pk, "tags"));
    PACK_OR_FAIL(pack_tag_list(pk, r->tags));
    PACK_OR_FAIL(acr__pack_str(pk, "exclude_tags"));
    PACK_OR_FAIL(pack_tag_list(pk, r->exclude_tags));
    PACK_OR_FAIL(acr__pack_str(pk, "last_seq"));
    PACK_OR_FAIL(msgpack_pack_int64(pk, r->last_seq));
    PACK_OR_FAIL(acr__pack_str(pk, "started_at"));
    PACK_OR_FAIL(r->started_at > 0 ? msgpack_pack_double(pk, r->started_at) : msgpack_pack_nil(pk));
    ENC_END();
}

int acr_msg_encode_custom(acr_buf_t *b, const char *type, const void *data, size_t len,
                          const char *node_id)
{
    if (!type || acr_msg_type_is_builtin(type)) return -EINVAL;
    ENC_BEGIN(type);
    PACK_OR_FAIL(data && len ? acr_buf_append(b, data, len) : msgpack_pack_nil(pk));
    ENC_END();
}

int acr__repack(const msgpack_object *o, char **out, size_t *len)
{
    acr_buf_t b = {0};
    msgpack_packer pk;
    acr__packer_init(&pk, &b);
    *out = NULL;
    *len = 0;
    if (msgpack_pack_object(&pk, *o) != 0) {
        acr_buf_free(&b);
        return -ENOMEM;
    }
    *out = b.data;
    *len = b.len;
    return 0;
}

int acr_msg_encode_exception(acr_buf_t *b, const char *msg, const char *traceback, uint64_t count,
                             const char *node_id)
{
    ENC_BEGIN("exception");
    PACK_OR_FAIL(msgpack_pack_map(pk, count > 1 ? 3 : 2));
    PACK_OR_FAIL(acr__pack_str(pk, "msg"));
    PACK_OR_FAIL(acr__pack_str(pk, msg));
    PACK_OR_FAIL(acr__pack_str(pk, "traceback"));
    PACK_OR_FAIL(acr__pack_str(pk, traceback));
    if (count > 1) {
        PACK_OR_FAIL(acr__pack_str(pk, "count"));
        PACK_OR_FAIL(msgpack_pack_uint64(pk, count));
    }
    ENC_END();
}

int acr_msg_encode_scenario(acr_buf_t *b, const char *name, const char *source, size_t len,
                            const char *node_id)
{
    return acr_msg_encode_scenario_bundle(b, name, source, len, NULL, node_id);
}

/* ---- Locust's error key ---- */

/* Code points Python's str.isprintable() rejects that can appear in error texts: C1 controls,
 * no-break and other non-ASCII spaces, format characters, line/paragraph separators, private use.
 * (Unassigned code points are not covered.) */
static bool py_nonprintable(uint32_t cp)
{
    return (cp >= 0x80 && cp <= 0xa0) || cp == 0xad || (cp >= 0x600 && cp <= 0x605) ||
           cp == 0x61c || cp == 0x6dd || cp == 0x70f || cp == 0x1680 || cp == 0x180e ||
           (cp >= 0x2000 && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202f) ||
           (cp >= 0x205f && cp <= 0x2064) || (cp >= 0x2066 && cp <= 0x206f) || cp == 0x3000 ||
           (cp >= 0xe000 && cp <= 0xf8ff) || cp == 0xfeff || (cp >= 0xfff9 && cp <= 0xfffb) ||
           cp >= 0xf0000;
}

/* Decodes one UTF-8 sequence at s (valid input assumed; a bad byte decodes as itself, length 1
 * and is passed through). */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned extra = s[0] >= 0xf0 ? 3 : s[0] >= 0xe0 ? 2 : s[0] >= 0xc0 ? 1 : 0;
    if (s[0] < 0x80 || extra >= n || !acr__utf8_valid((const char *)s, extra + 1)) {
        *cp = UINT32_MAX;
        return 1;
    }
    uint32_t v = s[0] & (0x3f >> extra);
    for (unsigned k = 1; k <= extra; k++) v = (v << 6) | (s[k] & 0x3f);
    *cp = v;
    return extra + 1;
}

typedef struct digest_out {
    EVP_MD_CTX *ctx;
    unsigned char buf[256];
    size_t len;
} digest_out_t;

static void dout(digest_out_t *o, const void *p, size_t n)
{
    const unsigned char *c = p;
    while (n) {
        size_t k = sizeof(o->buf) - o->len;
        if (k > n) k = n;
        memcpy(o->buf + o->len, c, k);
        o->len += k, c += k, n -= k;
        if (o->len == sizeof(o->buf)) {
            EVP_DigestUpdate(o->ctx, o->buf, o->len);
            o->len = 0;
        }
    }
}

/* Streams Python's repr(s) of a str into the digest. */
static void py_repr(digest_out_t *o, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t n = strlen(str);
    char quote = (memchr(s, '\'', n) && !memchr(s, '"', n)) ? '"' : '\'';
    char esc[12];
    dout(o, &quote, 1);
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c == (unsigned char)quote || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
            dout(o, esc, 2);
        } else if (c == '\n' || c == '\r' || c == '\t') {
            esc[0] = '\\', esc[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
            dout(o, esc, 2);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof(esc), "\\x%02x", c);
            dout(o, esc, 4);
        } else if (c >= 0x80) {
            uint32_t cp;
            size_t k = utf8_next(s + i, n - i, &cp);
            if (cp != UINT32_MAX && py_nonprintable(cp)) {
                int w = cp <= 0xff     ? snprintf(esc, sizeof(esc), "\\x%02x", (unsigned)cp)
                        : cp <= 0xffff ? snprintf(esc, sizeof(esc), "\\u%04x", (unsigned)cp)
                                       : snprintf(esc, sizeof(esc), "\\U%08x", (unsigned)cp);
                dout(o, esc, (size_t)w);
            } else {
                dout(o, s + i, k);
            }
            i += k;
            continue;
        } else {
            dout(o, &c, 1);
        }
        i++;
    }
    dout(o, &quote, 1);
}

void acr_msg_error_key(const char *method, const char *name, const char *error, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    digest_out_t o = {.ctx = EVP_MD_CTX_new(), .len = 0};
    out[0] = '\0';
    if (!o.ctx) return;
    if (EVP_DigestInit_ex(o.ctx, EVP_sha256(), NULL)) {
        dout(&o, method ? method : "", strlen(method ? method : ""));
        dout(&o, ".", 1);
        dout(&o, name ? name : "", strlen(name ? name : ""));
        dout(&o, ".", 1);
        py_repr(&o, error ? error : "");
        if (o.len) EVP_DigestUpdate(o.ctx, o.buf, o.len);
        if (EVP_DigestFinal_ex(o.ctx, md, &mdlen))
            for (unsigned i = 0; i < mdlen && i < 32; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
    }
    EVP_MD_CTX_free(o.ctx);
}
