/*
 * The run's chart history: one sample of the Aggregated entry every ACR_HISTORY_STEP_S seconds
 * while a test is spawning, running or stopping (time, current RPS and failures/s, current
 * p50/p95/p99 in ms, users), kept in bounded memory for runs of days: when the buffer is full,
 * neighbouring samples are merged pairwise and the step doubles. The dashboard's charts
 * (/stats/history) and the HTML report read it. Error convention: 0 or a negative errno.
 */
#ifndef ACR_MASTER_HISTORY_H
#define ACR_MASTER_HISTORY_H

#include "common/util.h"
#include "master/core/core.h"

#include <stddef.h>

#define ACR_HISTORY_STEP_S 2.0
#define ACR_HISTORY_MAX 4096 /**< samples kept; full = merge pairs, double the step */

typedef struct acr_history_sample {
    double time; /**< epoch s */
    double rps, fail_per_sec;
    double p50, p95, p99; /**< ms; 0 when the window had no request */
    long users;
} acr_history_sample_t;

typedef struct acr_history acr_history_t;

/** A history that samples @core on @loop every step (from the test's start, cleared at each new
 *  start, a last sample at the stop). It takes one of the core's four subscriber slots (-ENOSPC
 *  when none is left). Returns 0 and *@out or a negative errno. */
int acr_history_new(uv_loop_t *loop, acr_core_t *core, acr_history_t **out);
/** The samples, oldest first; valid until control returns to the loop. */
const acr_history_sample_t *acr_history_samples(const acr_history_t *h, size_t *n);
/** Appends the samples as a JSON array of objects {"time", "rps", "fail_per_sec", "p50",
 *  "p95", "p99", "users"} (numbers; time in epoch s) to @out. 0 or -ENOMEM. */
int acr_history_json(const acr_history_t *h, acr_buf_t *out);
/** Seconds between samples now: ACR_HISTORY_STEP_S, doubled at each merge. */
double acr_history_step(const acr_history_t *h);
/** Stops the sampling and closes the timer; events the core still sends are ignored. */
void acr_history_close(acr_history_t *h);
/** Frees @h (NULL is fine): after the loop ran the close, and after acr_core_close, since the
 *  core has no unsubscribe and would otherwise call a freed subscriber. */
void acr_history_free(acr_history_t *h);

#endif
