/*
 * Log-linear latency histogram (HdrHistogram-like), values in microseconds.
 *
 * Values 0..63 µs have exact buckets; above that every power of two is split into 64 linear
 * sub-buckets, so a bucket's midpoint is within 1/128 (< 0.8 %) of any value in it. The range
 * covers 1 µs to 2^36 µs (about 19 hours); larger values land in the last bucket. Memory is fixed
 * (ACR_HIST_BUCKETS counters), merging is bucket-wise addition and therefore lossless. The
 * histogram remembers the index range its non-zero buckets lie in, so that clearing, merging and
 * walking touch only that range: a report's entry spans a few hundred of the 1,984 buckets, and
 * the master merges hundreds of thousands of them a minute (bench/master_load.py).
 *
 * Error convention: none of these functions fail.
 */
#ifndef ACR_HIST_H
#define ACR_HIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ACR_HIST_SUB_BITS 6
#define ACR_HIST_SUB (1u << ACR_HIST_SUB_BITS) /* 64 */
#define ACR_HIST_MAX_EXP 36
/* Bucket count: 64 exact buckets for 0..63, then 64 per octave from 2^6 to 2^36. */
#define ACR_HIST_BUCKETS (ACR_HIST_SUB + (ACR_HIST_MAX_EXP - ACR_HIST_SUB_BITS) * ACR_HIST_SUB)

typedef struct acr_hist {
    uint64_t count;  /**< number of recorded values */
    uint64_t min_us; /**< smallest recorded value (UINT64_MAX when empty) */
    uint64_t max_us; /**< largest recorded value (0 when empty) */
    /** Every bucket outside [lo, hi] is zero; lo > hi when none was ever added since the last
     *  clear. A zeroed struct (calloc) is a valid empty histogram with the range [0, 0]. */
    uint32_t lo, hi;
    uint64_t counts[ACR_HIST_BUCKETS];
} acr_hist_t;

/** Empties @h, whatever its memory held before (every counter is written). */
void acr_hist_reset(acr_hist_t *h);

/** Empties @h, which must be a histogram already (reset, cleared or zeroed): only its range of
 *  non-zero buckets is written. */
void acr_hist_clear(acr_hist_t *h);

/** Index of the bucket holding @us (clamped to the last bucket). */
unsigned acr_hist_index(uint64_t us);

/** Lowest value of bucket @idx and its width (1 for the exact buckets). */
uint64_t acr_hist_bucket_low(unsigned idx);
uint64_t acr_hist_bucket_width(unsigned idx);

/** Representative value of bucket @idx: its midpoint (exact for the exact buckets). */
uint64_t acr_hist_bucket_value(unsigned idx);

/** Records @n occurrences of the value @us. */
void acr_hist_record_n(acr_hist_t *h, uint64_t us, uint64_t n);
static inline void acr_hist_record(acr_hist_t *h, uint64_t us)
{
    acr_hist_record_n(h, us, 1);
}

/** Adds bucket @idx += @n (used when decoding a histogram from the wire). Ignores bad indexes and
 *  returns false for them. Does not touch min/max: the caller sets them. */
bool acr_hist_add_bucket(acr_hist_t *h, unsigned idx, uint64_t n);

/** dst += src, losslessly (counts, min, max). */
void acr_hist_merge(acr_hist_t *dst, const acr_hist_t *src);

/**
 * The @p quantile (0 <= p <= 1) by nearest rank: the value of rank ceil(p * count) (at least 1),
 * i.e. the representative value of the bucket holding it, clamped into [min_us, max_us].
 * p = 1 returns max_us exactly, p = 0 min_us. Returns 0 for an empty histogram. The median is
 * acr_hist_percentile(h, 0.5): one algorithm for every percentile.
 */
uint64_t acr_hist_percentile(const acr_hist_t *h, double p);

/** Calls @fn for every non-empty bucket in ascending order. */
void acr_hist_foreach(const acr_hist_t *h, void (*fn)(unsigned idx, uint64_t n, void *ud),
                      void *ud);

#endif
