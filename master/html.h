/*
 * The self-contained HTML report (--html FILE at the end of the run, GET /stats/report): run
 * parameters, the request statistics, response-time percentiles, failures, exceptions, workers,
 * lost report intervals and the charts of the run's history (RPS and failures/s, p50/p95/p99,
 * users) drawn by uPlot, whose script and stylesheet are inlined from the master's embedded
 * assets, so the file opens with no network. Every string from the run is HTML-escaped.
 * Error convention: 0 or a negative errno.
 */
#ifndef ACR_MASTER_HTML_H
#define ACR_MASTER_HTML_H

#include "common/util.h"
#include "master/core/core.h"
#include "master/history.h"

#include <stdbool.h>

typedef struct acr_html_input {
    const acr_core_snapshot_t *snap; /**< the run's state, stats and workers */
    const acr_history_t *history;    /**< chart samples; NULL = no charts */
    const char *scenario;            /**< scenario file name */
    const char *host;                /**< target host, NULL = the classes' own */
    long users;                      /**< the test's target user count */
    double spawn_rate;
    double start_time, end_time; /**< epoch s; 0 = unknown / still running */
    bool download;               /**< served as a download: no "download" link in the page */
} acr_html_input_t;

/** Appends the report to @out. Returns 0 or -ENOMEM. */
int acr_html_report(const acr_html_input_t *in, acr_buf_t *out);
/** Writes the report to @path atomically, without the download link whatever @in->download
 *  says (a file has nothing to download from). Returns 0 or a negative errno (logged). */
int acr_html_write(const acr_html_input_t *in, const char *path);

#endif
