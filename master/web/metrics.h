/*
 * GET /metrics: the master's state in the Prometheus text exposition format 0.0.4, built from a
 * core snapshot (master/core/core.h). Every family has its HELP and TYPE lines, even without
 * samples; names start with acrida_:
 *
 *   acrida_requests_total{method,name}            counter  requests of the entry
 *   acrida_failures_total{method,name}            counter  failed requests of the entry
 *   acrida_response_time_seconds{method,name,quantile="0.5|0.9|0.95|0.99"}
 *                                                 summary  whole-run quantiles, with _sum and
 *                                                          _count over the timed requests
 *   acrida_users                                  gauge    users the workers run
 *   acrida_workers{state="ready|spawning|running|stopped|missing"}
 *                                                 gauge    workers per state, every state present
 *   acrida_current_rps, acrida_current_fail_per_sec
 *                                                 gauge    Aggregated, over the last 10 s
 *   acrida_run_state{state="ready|...|stopped"}   gauge    1 for the current state, 0 otherwise
 *   acrida_lost_reports_total                     counter  worker report intervals lost
 *
 * The Aggregated entry is its own labelset (method="", which Prometheus stores as no method
 * label, and name="Aggregated"), so its quantiles, which cannot be computed from the entries',
 * are there: sum the counters over name!="Aggregated" to avoid counting every request twice. Label
 * values are escaped as the format wants (\\, \", \n) and invalid UTF-8 bytes become U+FFFD, so a
 * scrape never fails.
 */
#ifndef ACR_MASTER_METRICS_H
#define ACR_MASTER_METRICS_H

#include "common/util.h"
#include "master/core/core.h"

/** The Content-Type of the answer. */
#define ACR_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/** Appends the exposition of @s to @out (the snapshot is only read; sorting its stats may
 *  rebuild their sorted view). Returns 0 or -ENOMEM (@out then holds a truncated text). */
int acr_metrics_text(const acr_core_snapshot_t *s, acr_buf_t *out);

#endif
