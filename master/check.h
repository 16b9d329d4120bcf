/*
 * CI thresholds (--check EXPR, repeatable): `[name=PREFIX:]METRIC OP VALUE[UNIT]` where METRIC is
 * fail_ratio, avg, min, max, median, pNN (p50, p95, p99.9, ...), rps, fail_per_sec, requests,
 * failures; OP is < <= > >= ==; times take ms, s, us, m units (default ms). Parsed when the
 * options are read (a malformed expression is a usage error naming it, before any test), and
 * evaluated on the final statistics: every failed check is listed with its measured value.
 * Error convention: 0 or a negative errno; messages in @err.
 */
#ifndef ACR_MASTER_CHECK_H
#define ACR_MASTER_CHECK_H

#include "common/stats.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct acr_check acr_check_t;

/** Parses every expression of the NULL-terminated @exprs. Returns 0 and *@out (NULL when
 *  @exprs is NULL or empty), or -EINVAL with "--check 'p95<3xx': ..." in @err. */
int acr_check_parse(const char *const *exprs, acr_check_t **out, char *err, size_t errlen);
/** Evaluates the checks against @s over a test of @run_time s (for rps). Prints one line per
 *  check ("check p95<300ms: passed (p95 = 12.3 ms)" / "FAILED") to @f. Returns the number of
 *  failed checks. */
size_t acr_check_eval(const acr_check_t *c, acr_stats_t *s, double run_time, FILE *f);
void acr_check_free(acr_check_t *c);

#endif
