/*
 * Log-linear latency histogram (see hist.h for the layout).
 *
 * Bucket index of a value v:
 *   v < 64:  v itself (exact buckets);
 *   v >= 64: with e = floor(log2 v) (6 <= e <= 35) and o = e - 6, the octave o holds 64 linear
 *            sub-buckets of width 2^o starting at 2^e; index = 64 + 64 * o + ((v >> o) - 64).
 * Values of 2^36 and above land in the last bucket; their exact maximum is kept in max_us.
 */
#include "common/hist.h"

#include <math.h>
#include <string.h>

#define LAST_BUCKET (ACR_HIST_BUCKETS - 1u)

static void set_empty(acr_hist_t *h)
{
    h->count = 0;
    h->min_us = UINT64_MAX;
    h->max_us = 0;
    h->lo = ACR_HIST_BUCKETS;
    h->hi = 0;
}

void acr_hist_reset(acr_hist_t *h)
{
    memset(h->counts, 0, sizeof(h->counts));
    set_empty(h);
}

void acr_hist_clear(acr_hist_t *h)
{
    if (h->lo <= h->hi) memset(h->counts + h->lo, 0, (h->hi - h->lo + 1) * sizeof(h->counts[0]));
    set_empty(h);
}

/* Widens the range of non-zero buckets to hold @idx. */
static inline void cover(acr_hist_t *h, unsigned idx)
{
    if (idx < h->lo) h->lo = idx;
    if (idx > h->hi) h->hi = idx;
}

unsigned acr_hist_index(uint64_t us)
{
    if (us < ACR_HIST_SUB) return (unsigned)us;
    if (us >> ACR_HIST_MAX_EXP) return LAST_BUCKET;
    unsigned e = 63u - (unsigned)__builtin_clzll(us); /* 6 .. 35 */
    unsigned o = e - ACR_HIST_SUB_BITS;
    return ACR_HIST_SUB + o * ACR_HIST_SUB + (unsigned)((us >> o) - ACR_HIST_SUB);
}

uint64_t acr_hist_bucket_low(unsigned idx)
{
    if (idx >= ACR_HIST_BUCKETS) idx = LAST_BUCKET;
    if (idx < ACR_HIST_SUB) return idx;
    unsigned o = (idx - ACR_HIST_SUB) / ACR_HIST_SUB;
    uint64_t sub = (idx - ACR_HIST_SUB) % ACR_HIST_SUB;
    return (ACR_HIST_SUB + sub) << o;
}

uint64_t acr_hist_bucket_width(unsigned idx)
{
    if (idx >= ACR_HIST_BUCKETS) idx = LAST_BUCKET;
    if (idx < ACR_HIST_SUB) return 1;
    return (uint64_t)1 << ((idx - ACR_HIST_SUB) / ACR_HIST_SUB);
}

uint64_t acr_hist_bucket_value(unsigned idx)
{
    return acr_hist_bucket_low(idx) + acr_hist_bucket_width(idx) / 2;
}

void acr_hist_record_n(acr_hist_t *h, uint64_t us, uint64_t n)
{
    if (n == 0) return;
    unsigned idx = acr_hist_index(us);
    h->counts[idx] += n;
    cover(h, idx);
    h->count += n;
    if (us < h->min_us) h->min_us = us;
    if (us > h->max_us) h->max_us = us;
}

bool acr_hist_add_bucket(acr_hist_t *h, unsigned idx, uint64_t n)
{
    if (idx >= ACR_HIST_BUCKETS) return false;
    if (n == 0) return true;
    h->counts[idx] += n;
    cover(h, idx);
    h->count += n;
    return true;
}

void acr_hist_merge(acr_hist_t *dst, const acr_hist_t *src)
{
    if (src->lo <= src->hi) {
        for (unsigned i = src->lo; i <= src->hi; i++) dst->counts[i] += src->counts[i];
        cover(dst, src->lo);
        cover(dst, src->hi);
    }
    if (src->count == 0) return;
    dst->count += src->count;
    if (src->min_us < dst->min_us) dst->min_us = src->min_us;
    if (src->max_us > dst->max_us) dst->max_us = src->max_us;
}

uint64_t acr_hist_percentile(const acr_hist_t *h, double p)
{
    if (h->count == 0) return 0;
    if (!(p > 0.0)) return h->min_us; /* also NaN */
    if (p >= 1.0) return h->max_us;

    /* rank = ceil(p * count), tolerating the representation error of p (0.9999 * 10000 must be
     * rank 9999, not 10000). */
    double x = p * (double)h->count;
    double r = ceil(x - x * 1e-12);
    uint64_t rank = r < 1.0 ? 1 : (uint64_t)r;
    if (rank > h->count) rank = h->count;

    uint64_t cum = 0;
    unsigned idx = h->lo;
    for (; idx <= h->hi; idx++) {
        cum += h->counts[idx];
        if (cum >= rank) break;
    }
    /* Buckets added through acr_hist_add_bucket() may disagree with count; fall back to max. */
    if (idx > h->hi) return h->max_us;
    uint64_t v = acr_hist_bucket_value(idx);
    if (v < h->min_us) v = h->min_us;
    if (v > h->max_us) v = h->max_us;
    return v;
}

void acr_hist_foreach(const acr_hist_t *h, void (*fn)(unsigned idx, uint64_t n, void *ud), void *ud)
{
    for (unsigned i = h->lo; i <= h->hi; i++)
        if (h->counts[i]) fn(i, h->counts[i], ud);
}
