/*
 * The stats report on the wire (proto/PROTOCOL.md, `stats`): encoding a worker's
 * delta into Locust's StatsEntry dicts plus acrida's lossless histogram, and decoding reports from
 * acrida and stock Locust workers into a fresh acr_stats_t.
 */
#include "proto/msg_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest response time accepted from the wire, in ms (about 11.6 days): keeps the µs value far
 * from uint64 overflow; the histogram clamps anything above 2^36 µs anyway. */
#define MAX_RT_MS 1e12

int64_t acr__locust_bucket_ms(uint64_t us)
{
    uint64_t unit;
    if (us < 100000)
        unit = 1000; /* < 100 ms: round(rt) */
    else if (us < 1000000)
        unit = 10000; /* round(rt, -1) */
    else if (us < 10000000)
        unit = 100000; /* round(rt, -2) */
    else
        unit = 1000000; /* round(rt, -3) */
    uint64_t q = us / unit, rem = us % unit, half = unit / 2;
    if (rem > half || (rem == half && (q & 1))) q++; /* Python's round half to even */
    return (int64_t)(q * (unit / 1000));
}

/* ---- decoding ---- */

static int ms_to_us(acr__dec_t *d, double ms, const char *what, uint64_t *out)
{
    if (ms < 0) return acr__dec_fail(d, "'%s' is negative", what);
    if (ms > MAX_RT_MS) return acr__dec_fail(d, "'%s' is out of range", what);
    *out = (uint64_t)llround(ms * 1000.0);
    return 0;
}

static int decode_persec(acr__dec_t *d, const msgpack_object *e, const char *key, acr_persec_t *ps,
                         bool fails)
{
    const msgpack_object *o = acr__map_get(e, key);
    if (!o) return acr__dec_fail(d, "'%s' missing", key);
    if (o->type != MSGPACK_OBJECT_MAP) return acr__dec_fail(d, "'%s' is not a map", key);
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
        int64_t sec;
        if (k->type == MSGPACK_OBJECT_POSITIVE_INTEGER && k->via.u64 <= INT64_MAX) {
            sec = (int64_t)k->via.u64;
        } else if (k->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
            sec = k->via.i64;
        } else if (acr__obj_is_num(k) && fabs(k->via.f64) < 9e15 &&
                   k->via.f64 == floor(k->via.f64)) {
            sec = (int64_t)k->via.f64;
        } else {
            return acr__dec_fail(d, "'%s': key is not an integer second", key);
        }
        if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 > UINT32_MAX)
            return acr__dec_fail(d, "'%s': count is not an integer in range", key);
        uint32_t n = (uint32_t)v->via.u64;
        acr_persec_add(ps, sec, fails ? 0 : n, fails ? n : 0);
    }
    return 0;
}

static int decode_response_times(acr__dec_t *d, const msgpack_object *e, acr_hist_t *h, bool record)
{
    const msgpack_object *o = acr__map_get(e, "response_times");
    if (!o) return acr__dec_fail(d, "'response_times' missing");
    if (o->type != MSGPACK_OBJECT_MAP) return acr__dec_fail(d, "'response_times' is not a map");
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
        uint64_t us;
        if (!acr__obj_is_num(k)) return acr__dec_fail(d, "'response_times': key is not a number");
        double ms = acr__obj_num(k);
        if (ms < 0 || ms > MAX_RT_MS)
            return acr__dec_fail(d, "'response_times': key %g is out of range", ms);
        us = (uint64_t)llround(ms * 1000.0);
        if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return acr__dec_fail(d, "'response_times': count is not a non-negative integer");
        if (record) acr_hist_record_n(h, us, v->via.u64);
    }
    return 0;
}

static int decode_acrida_hist(acr__dec_t *d, const msgpack_object *o, acr_hist_t *h)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size % 2)
        return acr__dec_fail(d, "'acrida_hist' is not an array of [index, count] pairs");
    uint64_t total = 0;
    for (uint32_t i = 0; i < o->via.array.size; i += 2) {
        const msgpack_object *idx = &o->via.array.ptr[i], *cnt = &o->via.array.ptr[i + 1];
        if (idx->type != MSGPACK_OBJECT_POSITIVE_INTEGER || idx->via.u64 >= ACR_HIST_BUCKETS)
            return acr__dec_fail(d, "'acrida_hist': bad bucket index at %u", i);
        if (cnt->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return acr__dec_fail(d, "'acrida_hist': count at %u is not an integer", i + 1);
        if (cnt->via.u64 > UINT64_MAX - total)
            return acr__dec_fail(d, "'acrida_hist': counts overflow");
        total += cnt->via.u64;
        acr_hist_add_bucket(h, (unsigned)idx->via.u64, cnt->via.u64);
    }
    return 0;
}

/* Decodes one StatsEntry dict into the entry it names (or into the total). */
static int decode_entry(acr__dec_t *d, const msgpack_object *o, acr_stats_t *s, bool total)
{
    char *name = NULL, *method = NULL;
    acr_stats_entry_t *e;
    double v = 0;
    uint64_t u = 0;
    int r;

    if (o->type != MSGPACK_OBJECT_MAP) return acr__dec_fail(d, "is not a map");
    r = acr__get_str(d, o, "name", ACR__REQ, &name);
    if (r < 0) goto out;
    /* The initial "Aggregated" of a Locust worker has a nil method. */
    r = acr__get_str(d, o, "method", total ? ACR__NIL_OK : ACR__REQ, &method);
    if (r < 0) goto out;
    if (total) {
        e = acr_stats_total(s);
    } else {
        if (acr_stats_find(s, method, name)) {
            r = acr__dec_fail(d, "duplicate entry");
            goto out;
        }
        e = acr_stats_get(s, method, name);
        if (!e) {
            r = -ENOMEM;
            goto out;
        }
    }

    e->last_request_ts = 0;
    if ((r = acr__get_num(d, o, "last_request_timestamp", ACR__NIL_OK, &e->last_request_ts)) < 0)
        goto out;
    if ((r = acr__get_num(d, o, "start_time", ACR__REQ, &e->start_time)) < 0) goto out;
    if ((r = acr__get_u64(d, o, "num_requests", ACR__REQ, &e->num_requests)) < 0) goto out;
    if ((r = acr__get_u64(d, o, "num_none_requests", ACR__REQ, &e->num_none_requests)) < 0)
        goto out;
    if ((r = acr__get_u64(d, o, "num_failures", ACR__REQ, &e->num_failures)) < 0) goto out;
    if ((r = acr__get_u64(d, o, "total_content_length", ACR__REQ, &e->total_content_length)) < 0)
        goto out;
    if ((r = acr__get_num(d, o, "total_response_time", ACR__REQ, &v)) < 0) goto out;
    if ((r = ms_to_us(d, v, "total_response_time", &e->total_rt_us))) goto out;
    if ((r = acr__get_u64(d, o, "acrida_total_us", ACR__NIL_OK, &u)) < 0) goto out;
    if (r == 1) e->total_rt_us = u;
    e->num_aborted = 0;
    if ((r = acr__get_u64(d, o, "acrida_aborted", ACR__NIL_OK, &e->num_aborted)) < 0) goto out;

    acr_hist_clear(&e->hist);
    const msgpack_object *ah = acr__map_get(o, "acrida_hist");
    if (ah && ah->type == MSGPACK_OBJECT_NIL) ah = NULL;
    if ((r = decode_response_times(d, o, &e->hist, ah == NULL))) goto out;
    if (ah && (r = decode_acrida_hist(d, ah, &e->hist))) goto out;

    double max_ms = 0, min_ms = 0;
    if ((r = acr__get_num(d, o, "max_response_time", ACR__REQ, &max_ms)) < 0) goto out;
    if ((r = acr__get_num(d, o, "min_response_time", ACR__NIL_OK, &min_ms)) < 0) goto out;
    bool has_min = r == 1;
    uint64_t max_us = 0, min_us = 0;
    if ((r = ms_to_us(d, max_ms, "max_response_time", &max_us))) goto out;
    if (has_min && (r = ms_to_us(d, min_ms, "min_response_time", &min_us))) goto out;
    if (e->hist.count > 0) {
        /* The exact extremes travel as min/max_response_time. */
        e->hist.max_us = max_us;
        if (has_min) e->hist.min_us = min_us;
        if (e->hist.min_us > e->hist.max_us) {
            r = acr__dec_fail(d, "'min_response_time' is above 'max_response_time'");
            goto out;
        }
    }

    acr_persec_reset(&e->persec);
    if ((r = decode_persec(d, o, "num_reqs_per_sec", &e->persec, false))) goto out;
    if ((r = decode_persec(d, o, "num_fail_per_sec", &e->persec, true))) goto out;
    r = 0;
out:
    free(name);
    free(method);
    return r;
}

static int decode_errors(acr__dec_t *d, const msgpack_object *o, acr_stats_t *s)
{
    if (o->type != MSGPACK_OBJECT_MAP) return acr__dec_fail(d, "'errors' is not a map");
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *v = &o->via.map.ptr[i].val;
        char *name = NULL, *method = NULL, *error = NULL;
        uint64_t occ = 0;
        int r;
        snprintf(d->prefix, sizeof(d->prefix), "stats: error %u: ", i);
        if (o->via.map.ptr[i].key.type != MSGPACK_OBJECT_STR) {
            r = acr__dec_fail(d, "key is not a string");
        } else if (v->type != MSGPACK_OBJECT_MAP) {
            r = acr__dec_fail(d, "is not a map");
        } else if ((r = acr__get_str(d, v, "name", ACR__REQ, &name)) >= 0 &&
                   (r = acr__get_str(d, v, "method", ACR__REQ, &method)) >= 0 &&
                   (r = acr__get_str(d, v, "error", ACR__REQ, &error)) >= 0 &&
                   (r = acr__get_u64(d, v, "occurrences", ACR__REQ, &occ)) >= 0) {
            r = acr_stats_add_error(s, method, name, error, occ);
        }
        free(name);
        free(method);
        free(error);
        if (r < 0) return r;
    }
    return 0;
}

const char *const acr_msg_stats_keys[] = {
    "stats",        "stats_total",       "errors", "user_classes_count", "user_count", "acrida_seq",
    "acrida_final", "acrida_cumulative", NULL,
};

static bool is_stats_key(const msgpack_object *k)
{
    if (k->type != MSGPACK_OBJECT_STR) return false;
    for (const char *const *s = acr_msg_stats_keys; *s; s++)
        if (strlen(*s) == k->via.str.size && memcmp(*s, k->via.str.ptr, k->via.str.size) == 0)
            return true;
    return false;
}

/* The report's other fields (a report_to_master listener's) as one map in m->data. */
static int decode_extra(const msgpack_object *data, acr_msg_t *m)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < data->via.map.size; i++)
        if (!is_stats_key(&data->via.map.ptr[i].key)) n++;
    if (n == 0) return 0;
    msgpack_object_kv *kv = calloc(n, sizeof(*kv));
    if (!kv) return -ENOMEM;
    uint32_t k = 0;
    for (uint32_t i = 0; i < data->via.map.size; i++)
        if (!is_stats_key(&data->via.map.ptr[i].key)) kv[k++] = data->via.map.ptr[i];
    msgpack_object map = {.type = MSGPACK_OBJECT_MAP, .via.map = {.size = n, .ptr = kv}};
    int r = acr__repack(&map, &m->data, &m->data_len);
    free(kv);
    return r;
}

int acr__msg_decode_stats(acr__dec_t *d, const msgpack_object *data, acr_msg_t *m)
{
    int r;
    if (data->type != MSGPACK_OBJECT_MAP) return acr__dec_fail(d, "data is not a map");
    const msgpack_object *list = acr__map_get(data, "stats");
    const msgpack_object *total = acr__map_get(data, "stats_total");
    const msgpack_object *errors = acr__map_get(data, "errors");
    if (!list || list->type != MSGPACK_OBJECT_ARRAY)
        return acr__dec_fail(d, "'stats' missing or not an array");
    if (list->via.array.size > ACR_MSG_MAX_ENTRIES)
        return acr__dec_fail(d, "%u entries exceed the limit of %u", list->via.array.size,
                             ACR_MSG_MAX_ENTRIES);
    if (!total) return acr__dec_fail(d, "'stats_total' missing");
    if (!errors) return acr__dec_fail(d, "'errors' missing");

    r = acr__get_classes(d, data, "user_classes_count", ACR__NIL_OK, &m->classes, &m->nclasses);
    if (r < 0) return r;
    if ((r = acr__get_i64(d, data, "user_count", ACR__NIL_OK, &m->user_count)) < 0) return r;
    if ((r = acr__get_i64(d, data, "acrida_seq", ACR__NIL_OK, &m->seq)) < 0) return r;
    const msgpack_object *fin = acr__map_get(data, "acrida_final");
    if (fin && fin->type != MSGPACK_OBJECT_NIL) {
        if (fin->type != MSGPACK_OBJECT_BOOLEAN)
            return acr__dec_fail(d, "'acrida_final' is not a boolean");
        m->final = fin->via.boolean;
    }
    const msgpack_object *cum = acr__map_get(data, "acrida_cumulative");
    if (cum && cum->type != MSGPACK_OBJECT_NIL) {
        if (cum->type != MSGPACK_OBJECT_BOOLEAN)
            return acr__dec_fail(d, "'acrida_cumulative' is not a boolean");
        m->cumulative = cum->via.boolean;
    }

    if (d->spare && *d->spare) {
        m->stats = *d->spare; /* emptied by acr_stats_clear: its nodes are reused */
        *d->spare = NULL;
    } else {
        m->stats = acr_stats_new(0);
    }
    if (!m->stats) return -ENOMEM;
    /* a report holds at most ACR_MSG_MAX_ENTRIES: the receiver's own table folds, not this one */
    acr_stats_set_max_names(m->stats, 0);
    for (uint32_t i = 0; i < list->via.array.size; i++) {
        snprintf(d->prefix, sizeof(d->prefix), "stats: entry %u: ", i);
        if ((r = decode_entry(d, &list->via.array.ptr[i], m->stats, false))) return r;
    }
    snprintf(d->prefix, sizeof(d->prefix), "stats: stats_total: ");
    if ((r = decode_entry(d, total, m->stats, true))) return r;
    if ((r = decode_errors(d, errors, m->stats))) return r;
    return decode_extra(data, m);
}

/* ---- encoding ---- */

#define PACK_OR_ENOMEM(x)                                                                          \
    do {                                                                                           \
        if ((x) != 0) return -ENOMEM;                                                              \
    } while (0)

static int pack_key(msgpack_packer *pk, const char *k)
{
    return acr__pack_str(pk, k);
}

static int pack_response_times(msgpack_packer *pk, const acr_hist_t *h)
{
    /* Rounding is monotonic, so equal Locust keys come from adjacent buckets. */
    uint32_t n = 0;
    int64_t prev = -1;
    for (unsigned i = h->lo; i <= h->hi; i++) {
        if (!h->counts[i]) continue;
        int64_t k = acr__locust_bucket_ms(acr_hist_bucket_value(i));
        if (k != prev) n++;
        prev = k;
    }
    PACK_OR_ENOMEM(msgpack_pack_map(pk, n));
    prev = -1;
    uint64_t acc = 0;
    for (unsigned i = h->lo; i <= h->hi; i++) {
        if (!h->counts[i]) continue;
        int64_t k = acr__locust_bucket_ms(acr_hist_bucket_value(i));
        if (k != prev && prev >= 0) {
            PACK_OR_ENOMEM(msgpack_pack_int64(pk, prev));
            PACK_OR_ENOMEM(msgpack_pack_uint64(pk, acc));
            acc = 0;
        }
        prev = k;
        acc += h->counts[i];
    }
    if (prev >= 0) {
        PACK_OR_ENOMEM(msgpack_pack_int64(pk, prev));
        PACK_OR_ENOMEM(msgpack_pack_uint64(pk, acc));
    }
    return 0;
}

static int pack_persec(msgpack_packer *pk, const acr_persec_t *p, bool fails)
{
    uint32_t n = 0;
    for (unsigned i = 0; i < ACR_PERSEC_SLOTS; i++)
        if (p->sec[i] != INT64_MIN && (fails ? p->fails[i] : p->reqs[i])) n++;
    PACK_OR_ENOMEM(msgpack_pack_map(pk, n));
    for (unsigned i = 0; i < ACR_PERSEC_SLOTS; i++) {
        uint32_t c = fails ? p->fails[i] : p->reqs[i];
        if (p->sec[i] == INT64_MIN || !c) continue;
        PACK_OR_ENOMEM(msgpack_pack_int64(pk, p->sec[i]));
        PACK_OR_ENOMEM(msgpack_pack_uint32(pk, c));
    }
    return 0;
}

static int pack_entry(msgpack_packer *pk, const acr_stats_entry_t *e)
{
    const acr_hist_t *h = &e->hist;
    PACK_OR_ENOMEM(msgpack_pack_map(pk, 17));
    PACK_OR_ENOMEM(pack_key(pk, "name"));
    PACK_OR_ENOMEM(acr__pack_str(pk, e->name));
    PACK_OR_ENOMEM(pack_key(pk, "method"));
    PACK_OR_ENOMEM(acr__pack_str(pk, e->method));
    PACK_OR_ENOMEM(pack_key(pk, "last_request_timestamp"));
    PACK_OR_ENOMEM(e->last_request_ts > 0 ? msgpack_pack_double(pk, e->last_request_ts)
                                          : msgpack_pack_nil(pk));
    PACK_OR_ENOMEM(pack_key(pk, "start_time"));
    PACK_OR_ENOMEM(msgpack_pack_double(pk, e->start_time));
    PACK_OR_ENOMEM(pack_key(pk, "num_requests"));
    PACK_OR_ENOMEM(msgpack_pack_uint64(pk, e->num_requests));
    PACK_OR_ENOMEM(pack_key(pk, "num_none_requests"));
    PACK_OR_ENOMEM(msgpack_pack_uint64(pk, e->num_none_requests));
    PACK_OR_ENOMEM(pack_key(pk, "num_failures"));
    PACK_OR_ENOMEM(msgpack_pack_uint64(pk, e->num_failures));
    PACK_OR_ENOMEM(pack_key(pk, "total_response_time"));
    PACK_OR_ENOMEM(msgpack_pack_double(pk, (double)e->total_rt_us / 1000.0));
    PACK_OR_ENOMEM(pack_key(pk, "max_response_time"));
    PACK_OR_ENOMEM(h->count ? msgpack_pack_double(pk, (double)h->max_us / 1000.0)
                            : msgpack_pack_int(pk, 0));
    PACK_OR_ENOMEM(pack_key(pk, "min_response_time"));
    PACK_OR_ENOMEM(h->count ? msgpack_pack_double(pk, (double)h->min_us / 1000.0)
                            : msgpack_pack_nil(pk));
    PACK_OR_ENOMEM(pack_key(pk, "total_content_length"));
    PACK_OR_ENOMEM(msgpack_pack_uint64(pk, e->total_content_length));
    PACK_OR_ENOMEM(pack_key(pk, "response_times"));
    PACK_OR_ENOMEM(pack_response_times(pk, h));
    PACK_OR_ENOMEM(pack_key(pk, "num_reqs_per_sec"));
    PACK_OR_ENOMEM(pack_persec(pk, &e->persec, false));
    PACK_OR_ENOMEM(pack_key(pk, "num_fail_per_sec"));
    PACK_OR_ENOMEM(pack_persec(pk, &e->persec, true));
    PACK_OR_ENOMEM(pack_key(pk, "acrida_hist"));
    uint32_t nb = 0;
    for (unsigned i = h->lo; i <= h->hi; i++) nb += h->counts[i] != 0;
    PACK_OR_ENOMEM(msgpack_pack_array(pk, nb * 2));
    for (unsigned i = h->lo; i <= h->hi; i++) {
        if (!h->counts[i]) continue;
        PACK_OR_ENOMEM(msgpack_pack_uint32(pk, i));
        PACK_OR_ENOMEM(msgpack_pack_uint64(pk, h->counts[i]));
    }
    PACK_OR_ENOMEM(pack_key(pk, "acrida_total_us"));
    PACK_OR_ENOMEM(msgpack_pack_uint64(pk, e->total_rt_us));
    PACK_OR_ENOMEM(pack_key(pk, "acrida_aborted"));
    PACK_OR_ENOMEM(msgpack_pack_uint64(pk, e->num_aborted));
    return 0;
}

static int pack_errors(msgpack_packer *pk, acr_stats_t *delta)
{
    size_t n = 0;
    acr_stats_error_t *const *errs = acr_stats_errors(delta, &n);
    PACK_OR_ENOMEM(msgpack_pack_map(pk, n));
    for (size_t i = 0; i < n; i++) {
        const acr_stats_error_t *er = errs[i];
        char key[65];
        acr_msg_error_key(er->method, er->name, er->error, key);
        PACK_OR_ENOMEM(acr__pack_str(pk, key));
        PACK_OR_ENOMEM(msgpack_pack_map(pk, 4));
        PACK_OR_ENOMEM(pack_key(pk, "name"));
        PACK_OR_ENOMEM(acr__pack_str(pk, er->name));
        PACK_OR_ENOMEM(pack_key(pk, "method"));
        PACK_OR_ENOMEM(acr__pack_str(pk, er->method));
        PACK_OR_ENOMEM(pack_key(pk, "error"));
        PACK_OR_ENOMEM(acr__pack_str(pk, er->error));
        PACK_OR_ENOMEM(pack_key(pk, "occurrences"));
        PACK_OR_ENOMEM(msgpack_pack_uint64(pk, er->occurrences));
    }
    return 0;
}

int acr__pack_stats_data(msgpack_packer *pk, acr_stats_t *delta, const acr_class_count_t *classes,
                         size_t n, int64_t user_count, int64_t seq, unsigned flags, uint32_t nextra)
{
    bool final = flags & ACR__STATS_FINAL, cumulative = flags & ACR__STATS_CUMULATIVE;
    size_t ne = 0, nsend = 0;
    acr_stats_entry_t *const *ents = acr_stats_sorted(delta, &ne);
    for (size_t i = 0; i < ne; i++)
        if (ents[i]->num_requests || ents[i]->num_failures || ents[i]->num_aborted) nsend++;

    PACK_OR_ENOMEM(msgpack_pack_map(pk, 7 + (cumulative ? 1 : 0) + nextra));
    PACK_OR_ENOMEM(pack_key(pk, "stats"));
    PACK_OR_ENOMEM(msgpack_pack_array(pk, nsend));
    for (size_t i = 0; i < ne; i++)
        if (ents[i]->num_requests || ents[i]->num_failures || ents[i]->num_aborted)
            PACK_OR_ENOMEM(pack_entry(pk, ents[i]));
    PACK_OR_ENOMEM(pack_key(pk, "stats_total"));
    PACK_OR_ENOMEM(pack_entry(pk, acr_stats_total(delta)));
    PACK_OR_ENOMEM(pack_key(pk, "errors"));
    PACK_OR_ENOMEM(pack_errors(pk, delta));
    PACK_OR_ENOMEM(pack_key(pk, "user_classes_count"));
    PACK_OR_ENOMEM(acr__pack_classes(pk, classes, n));
    PACK_OR_ENOMEM(pack_key(pk, "user_count"));
    PACK_OR_ENOMEM(msgpack_pack_int64(pk, user_count));
    PACK_OR_ENOMEM(pack_key(pk, "acrida_seq"));
    PACK_OR_ENOMEM(msgpack_pack_int64(pk, seq));
    PACK_OR_ENOMEM(pack_key(pk, "acrida_final"));
    PACK_OR_ENOMEM(final ? msgpack_pack_true(pk) : msgpack_pack_false(pk));
    if (cumulative) {
        PACK_OR_ENOMEM(pack_key(pk, "acrida_cumulative"));
        PACK_OR_ENOMEM(msgpack_pack_true(pk));
    }
    return 0;
}
