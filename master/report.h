/*
 * Writers of aggregated statistics: the headless console tables, Locust-format CSV files and the
 * /stats/requests JSON document. They only read an acr_stats_t (sorting it may rebuild its sorted
 * views). Times are printed in ms, keeping sub-ms precision ("0.42").
 * Error convention: 0 or a negative errno (write errors); JSON builders return NULL on ENOMEM.
 */
#ifndef ACR_REPORT_H
#define ACR_REPORT_H

#include "common/stats.h"
#include "common/util.h"
#include "master/core/core.h"

#include <stdio.h>

typedef struct acr_report_meta {
    const char *state; /**< "ready", "spawning", "running", "stopping", "stopped" */
    long user_count;
    double run_time; /**< seconds since the test started (0 before) */
    const char *test_id;
    bool adopted; /**< adopted from a previous master's workers (docs/architecture.md) */
    const acr_core_worker_t *workers; /**< the core's snapshot rows (master/core/core.h) */
    size_t nworkers;
    double now;                      /**< epoch s, for the current-window values */
    unsigned long long lost_reports; /**< worker report intervals lost (killed/missing workers) */
    /** The Aggregated response times of the last 10 s for current_response_time_percentile_*;
     *  NULL = use the whole run's. An empty histogram gives null, as Locust before data. */
    const acr_hist_t *current;
    unsigned long long reports_merged; /**< worker stats reports merged into the run's stats */
    /** The load shape's current target (master/shape.h), "shape": {"users", "spawn_rate",
     *  "stage"} in the JSON; false = "shape": null. @shape_stage: 1-based, 0 = null. */
    bool have_shape;
    long shape_users, shape_stage;
    double shape_rate;
    /** The scenario's data pools (master/pools.h) as "pools": {name: {"size", "available",
     *  "leased", "waiting"}}; the key is left out when @npools is 0. */
    const struct acr_pool_stat *pools;
    size_t npools;
} acr_report_meta_t;

/** Formats a response time in ms the way every writer shows it: "0" for zero, two decimals below
 *  1 ms ("0.42"), a rounded integer from 1 ms up ("1235"). Writes at most @size bytes to @buf. */
void acr_report_fmt_ms(char *buf, size_t size, double ms);
/** Formats @v like Python's repr(float): the shortest string that reads back as @v, with ".0" for
 *  integral values ("70.0", "3.7807597755311115", "1e-05", "1e+16", "nan", "inf"). 32 bytes
 *  always suffice. */
void acr_report_fmt_float(char *buf, size_t size, double v);

/** The periodic/final request table (Type, Name, # reqs, # fails, Avg, Min, Max, Med, req/s,
 *  failures/s), one row per entry plus Aggregated. */
int acr_report_console_stats(FILE *f, acr_stats_t *s, bool current);
/** Percentile table: 50 66 75 80 90 95 98 99 99.9 99.99 100 %. */
int acr_report_console_percentiles(FILE *f, acr_stats_t *s);
/** Failures table ("# occurrences | Error"); prints nothing when there are no failures. */
int acr_report_console_failures(FILE *f, acr_stats_t *s);
/** Exceptions table (count, message, traceback); nothing when there are none. */
int acr_report_console_exceptions(FILE *f, acr_stats_t *s);

/** The final summary's line for lost report intervals: "Lost report intervals: N (...)" when
 *  @lost > 0 (the totals above it are incomplete); prints nothing when @lost is 0. */
int acr_report_console_lost(FILE *f, unsigned long long lost);

/** The final summary's table of requests aborted at stop (in flight when the stop's grace ran
 *  out; neither requests nor failures): one row per entry that has some, then Aggregated; prints
 *  nothing when there are none. */
int acr_report_console_aborted(FILE *f, acr_stats_t *s);

/** CSV bodies with Locust's exact headers and row order (docs/locust-compatibility.md), CRLF. */
int acr_report_csv_stats(FILE *f, acr_stats_t *s);
int acr_report_csv_failures(FILE *f, acr_stats_t *s);
int acr_report_csv_exceptions(FILE *f, acr_stats_t *s);
int acr_report_csv_history_header(FILE *f);
/** Appends the history rows for epoch second @ts (Aggregated only, or every entry when @full). */
int acr_report_csv_history_rows(FILE *f, acr_stats_t *s, long user_count, long ts, bool full);

/** One row of the lost-reports CSV: a worker's node id and the report intervals it lost. */
typedef struct acr_report_lost {
    const char *worker;
    unsigned long long lost;
} acr_report_lost_t;

/** acrida's PREFIX_lost_reports.csv (not a Locust file): header "Worker,Lost Report Intervals",
 *  the @n rows, then "Aggregated" with @total. CRLF line endings like the Locust files. */
int acr_report_csv_lost(FILE *f, const acr_report_lost_t *rows, size_t n, unsigned long long total);

/** acrida's PREFIX_aborted_at_stop.csv (not a Locust file): header "Type,Name,Aborted At Stop",
 *  a row per entry with requests aborted at stop, then "Aggregated" with the total. CRLF. */
int acr_report_csv_aborted(FILE *f, acr_stats_t *s);

/** @s HTML-escaped like Python's html.escape(s, quote) (& < > always; " and ' as &quot; and
 *  &#x27; when @quote), as Locust's JSON escapes names, errors and exceptions. Returns a malloc'ed
 *  string or NULL on ENOMEM. */
char *acr_report_html_escape(const char *s, bool quote);

/** Appends jansson's dump @in (JSON_SORT_KEYS | JSON_INDENT(2) | JSON_ENSURE_ASCII |
 *  JSON_REAL_PRECISION(17)) to @b as Python's json.dumps writes it, the way Flask answers Locust's
 *  routes: reals in their shortest repr form instead of "%.17g" (0.1, not 0.10000000000000001),
 *  \uXXXX in lower case, and a trailing newline. Returns 0 or -ENOMEM. */
int acr_report_pythonic_json(acr_buf_t *b, const char *in);

/**
 * The GET /stats/requests document (Locust 2.12 shape, keys sorted, 2-space indent) plus
 * per-row response_time_percentiles and top-level workers/run_time/test_id.
 * Returns a malloc'ed NUL-terminated string the caller frees, or NULL.
 */
char *acr_report_json(acr_stats_t *s, const acr_report_meta_t *meta);

#endif
