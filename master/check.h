/*
 * CI thresholds (--check EXPR, repeatable; docs/checks.md is the user's page).
 *
 * Syntax: `[name=PREFIX:]METRIC OP VALUE[UNIT]`, spaces allowed around OP and at both ends.
 *   METRIC  fail_ratio, avg, min, max, median, pNN[.N] (p50, p95, p99.9, p100; 0..100), rps,
 *           fail_per_sec, requests, failures.
 *   OP      < <= > >= ==
 *   VALUE   a non-negative decimal number (1, 0.5, .5, 1e6); no sign, NaN or infinity.
 *   UNIT    times (avg, min, max, median, pNN): us, ms (the default), s, m (minutes);
 *           fail_ratio: none (a ratio) or % (1% = 0.01); rps, fail_per_sec, requests, failures:
 *           none.
 *   PREFIX  everything between "name=" and the LAST ':' of the expression (the check after it
 *           never holds a ':', so entry names may contain ':', '=', '<' or spaces). The check
 *           applies to every entry whose name starts with PREFIX, each separately; it fails when
 *           any of them fails, and when none matches. An empty PREFIX matches every entry.
 *           Without a prefix the check applies to the Aggregated entry.
 *
 * Measured values: the whole run's statistics, as the final table and the CSV show them (rps and
 * fail_per_sec are acr_stats_total_rps/acr_stats_total_fail_per_sec, the CSV's "Requests/s").
 * A time check on an entry without any response time fails (nothing was measured).
 * Error convention: 0 or a negative errno; messages in @err.
 */
#ifndef ACR_MASTER_CHECK_H
#define ACR_MASTER_CHECK_H

#include "common/stats.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct acr_check acr_check_t;

/** Parses every expression of the NULL-terminated @exprs (borrowed; the checks keep copies).
 *  Returns 0 and *@out (NULL when @exprs is NULL or empty; free with acr_check_free), -EINVAL
 *  with "--check 'p95<3xx': '3xx' is not a number (...)" in @err for the first malformed one, or
 *  -ENOMEM. */
int acr_check_parse(const char *const *exprs, acr_check_t **out, char *err, size_t errlen);
/** Evaluates the checks against @s (NULL: as empty statistics). @run_time (seconds the test ran) is
 * the span of rps and fail_per_sec only when the stats hold no span of their own (no request time
 * stamps). Prints one line per check to @f, "check p95<300ms: passed (p95 = 12.3 ms)" or "...
 * FAILED (...)"; a name= check prints one line per matching entry ("check name=/api:p95<1s: passed
 * (GET /api/items: p95 = 12.3 ms)") or "FAILED (no entry whose name starts with '/api')". Control
 * characters of entry names are printed as '?'. Returns the number of failed checks (0 for @c
 * NULL). */
size_t acr_check_eval(const acr_check_t *c, acr_stats_t *s, double run_time, FILE *f);
/** Number of checks in @c (0 for NULL). */
size_t acr_check_count(const acr_check_t *c);
void acr_check_free(acr_check_t *c);

#endif
