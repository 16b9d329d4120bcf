/*
 * Statistics: entries keyed by (method, name) plus the Aggregated total, failures grouped by
 * (method, name, error), exceptions grouped by traceback. Both daemons use it: the worker records
 * into one and ships deltas (then resets), the master merges deltas into its own.
 *
 * Units: response times are microseconds internally (uint64) and converted to milliseconds only
 * by the writers. Times of day are epoch seconds (double).
 *
 * Ownership: an acr_stats_t owns its entries, errors and exceptions and every string in them.
 * Entry pointers stay valid until acr_stats_clear()/acr_stats_free() (acr_stats_reset() keeps
 * entries), so hot paths may cache them.
 * Error convention: functions that allocate return NULL / -ENOMEM on failure.
 */
#ifndef ACR_STATS_H
#define ACR_STATS_H

#include "common/hist.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Distinct entry names an acr_stats_t keeps by default (acr_stats_set_max_names): each entry
 *  holds a ~16 KB histogram, so a scenario naming every URL would otherwise grow without end. */
#define ACR_STATS_MAX_NAMES 10000
/** The entry that the names past the cap are folded into (one per method). */
#define ACR_STATS_OTHER "[other]"
/** Methods with their own ACR_STATS_OTHER entry: past it the folded names of a new method go to
 *  the catch-all (ACR_STATS_OTHER, ACR_STATS_OTHER), so methods cannot grow the table either (at
 *  most ACR_STATS_MAX_OTHER + 1 such entries). */
#define ACR_STATS_MAX_OTHER 32

/** Seconds of per-second request/failure counts kept per entry (a ring keyed by epoch second). */
#define ACR_PERSEC_SLOTS 32

typedef struct acr_persec {
    int64_t sec[ACR_PERSEC_SLOTS]; /**< epoch second of the slot, INT64_MIN = unused */
    uint32_t reqs[ACR_PERSEC_SLOTS];
    uint32_t fails[ACR_PERSEC_SLOTS];
} acr_persec_t;

typedef struct acr_stats_entry {
    char *method; /**< "GET", ...; "" for Aggregated */
    char *name;   /**< entry name; "Aggregated" for the total */
    uint64_t num_requests;
    uint64_t num_none_requests; /**< requests recorded without a response time */
    uint64_t num_failures;
    /** requests still in flight when the stop's grace ran out, aborted there (proto/PROTOCOL.md,
     *  acrida_aborted): neither requests nor failures */
    uint64_t num_aborted;
    uint64_t total_rt_us;
    uint64_t total_content_length;
    double start_time;      /**< epoch s of creation / last reset */
    double last_request_ts; /**< epoch s of the last request, 0 = none */
    acr_persec_t persec;
    acr_hist_t hist; /**< response times; min/max live in hist.min_us / hist.max_us */
} acr_stats_entry_t;

typedef struct acr_stats_error {
    char *method, *name, *error;
    uint64_t occurrences;
} acr_stats_error_t;

typedef struct acr_stats_exception {
    char *msg, *traceback;
    char *nodes; /**< comma-space separated node ids, each once */
    uint64_t count;
} acr_stats_exception_t;

typedef struct acr_stats acr_stats_t; /* opaque: tables are an implementation detail */

/** Creates empty stats whose start time is @now. Returns NULL on allocation failure. */
acr_stats_t *acr_stats_new(double now);
void acr_stats_free(acr_stats_t *s);

/** The Aggregated entry (always present). */
acr_stats_entry_t *acr_stats_total(acr_stats_t *s);

/** Finds or creates the entry (method, name). Returns NULL only on allocation failure. The
 *  strings are copied. When the table already holds the cap of distinct names
 *  (acr_stats_set_max_names; entries named ACR_STATS_OTHER do not count) a new name is folded:
 *  the (method, ACR_STATS_OTHER) entry is returned instead (see ACR_STATS_MAX_OTHER). */
acr_stats_entry_t *acr_stats_get(acr_stats_t *s, const char *method, const char *name);
/** Sets the cap of distinct names (default ACR_STATS_MAX_NAMES; 0 = none). Entries already there
 *  stay; only new names are folded. */
void acr_stats_set_max_names(acr_stats_t *s, size_t max);
/** "METHOD name" of the first name folded since the stats were created or cleared, the first
 *  time it is asked for; NULL otherwise (so a caller warns once). Owned by @s. */
const char *acr_stats_fold_notice(acr_stats_t *s);
/** Finds an entry without creating it. */
acr_stats_entry_t *acr_stats_find(const acr_stats_t *s, const char *method, const char *name);

/**
 * Records one request on @e and on the total: @has_rt false records a request without a response
 * time (num_none_requests). When @error is non-NULL the request is also a failure, counted on
 * both entries and in the failures table under (e->method, e->name, error).
 */
void acr_stats_log(acr_stats_t *s, acr_stats_entry_t *e, bool has_rt, uint64_t rt_us,
                   uint64_t content_length, const char *error, double now);

/** Counts one request aborted at the stop (in flight when the stop's grace ran out) on @e and on
 *  the total; it is not a request (no response time) nor a failure. */
void acr_stats_log_aborted(acr_stats_t *s, acr_stats_entry_t *e, double now);

/** Records @occurrences of an error (merging at the master). Returns 0 or -ENOMEM. */
int acr_stats_add_error(acr_stats_t *s, const char *method, const char *name, const char *error,
                        uint64_t occurrences);

/** Records an exception from @node_id (count += @count). Returns 0 or -ENOMEM. */
int acr_stats_add_exception(acr_stats_t *s, const char *msg, const char *traceback,
                            const char *node_id, uint64_t count);

/** dst += src for one entry (Locust's extend(): counters added, min/max/timestamps combined,
 *  per-second counts and histogram added). Names are not touched. */
void acr_stats_entry_merge(acr_stats_entry_t *dst, const acr_stats_entry_t *src);

/** Merges a whole delta (entries, total, errors, exceptions) into @dst, folding names past its cap
 *  (the totals stay exact). Returns 0 or -ENOMEM. */
int acr_stats_merge(acr_stats_t *dst, const acr_stats_t *delta);

/** Zeroes every entry (keeping them) and empties the failures and exceptions tables. */
void acr_stats_reset(acr_stats_t *s, double now);
/** Removes every entry, error and exception (Locust's clear_all at test start), and forgets the
 *  folded names. */
void acr_stats_clear(acr_stats_t *s, double now);

/** Number of entries, not counting the total. */
size_t acr_stats_count(const acr_stats_t *s);
/** Entries sorted by (name, method), not counting the total. The array is owned by @s and valid
 *  until the next change to the table. *@n receives its length. */
acr_stats_entry_t *const *acr_stats_sorted(acr_stats_t *s, size_t *n);
/** Failures sorted by (method, name, error); exceptions by count descending. Same lifetime rules.
 */
acr_stats_error_t *const *acr_stats_errors(acr_stats_t *s, size_t *n);
acr_stats_exception_t *const *acr_stats_exceptions(acr_stats_t *s, size_t *n);

/* ---- derived values (Locust's where they exist: docs/locust-compatibility.md, statistics) ---- */

/** Records per second over the 10 s window ending 2 s before the last request of the total
 *  entry (Locust's current_rps). @total gives that window. */
double acr_stats_current_rps(const acr_stats_entry_t *e, const acr_stats_entry_t *total);
double acr_stats_current_fail_per_sec(const acr_stats_entry_t *e, const acr_stats_entry_t *total);
/** Whole-run rates: count / (total.last_request_ts - total.start_time). */
double acr_stats_total_rps(const acr_stats_entry_t *e, const acr_stats_entry_t *total);
double acr_stats_total_fail_per_sec(const acr_stats_entry_t *e, const acr_stats_entry_t *total);
double acr_stats_avg_ms(const acr_stats_entry_t *e);
double acr_stats_min_ms(const acr_stats_entry_t *e); /**< 0 when none */
double acr_stats_max_ms(const acr_stats_entry_t *e);
double acr_stats_percentile_ms(const acr_stats_entry_t *e, double p); /**< 0 when none */
double acr_stats_fail_ratio(const acr_stats_entry_t *e);
double acr_stats_avg_content_length(const acr_stats_entry_t *e);

/** Adds @n requests/@f failures to the per-second ring at second @sec (ignored when older than
 *  the ring). */
void acr_persec_add(acr_persec_t *p, int64_t sec, uint32_t n, uint32_t f);
/** Empties the ring (every slot unused). A zero-filled ring must be reset before use. */
void acr_persec_reset(acr_persec_t *p);
/** Counts of second @sec into *@reqs and *@fails (either may be NULL); 0 when the ring lacks
 *  that second. Returns whether it holds it. */
bool acr_persec_get(const acr_persec_t *p, int64_t sec, uint32_t *reqs, uint32_t *fails);

/** Zeroes the counters, histogram and ring of @e (names untouched) with start_time = @now. Use it
 *  to initialise a stand-alone entry (e.g. one being decoded from the wire) after setting its
 *  names. */
void acr_stats_entry_zero(acr_stats_entry_t *e, double now);

#endif
