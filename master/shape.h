/*
 * Load shapes on the master (docs/scenario-api.md, "Load shapes"). A scenario declares at most one:
 * acrida.shape(fn), a function of the test's run time in seconds that returns users, spawn_rate
 * and optionally a list of user class names (nil ends the test), or acrida.stages{...}, a list of
 * {duration, users, spawn_rate[, user_classes]} whose durations count from the start of the test.
 * On workers both are no-ops (common/scenario.c).
 *
 * When a test starts with a shape, the shape gives its users and rate (-u/-r and /swarm's fields
 * are not used): it is evaluated at once and then every second on a uv timer, and each changed
 * target re-targets the core at once (acr_core_edit), even when the previous ramp has not
 * finished, so a stage shorter than its ramp is never skipped. A shape function runs under an
 * instruction-count hook and is interrupted after ACR_SHAPE_BUDGET_MS of work: the master never
 * blocks. nil stops the test; an error or a bad value stops it too, is logged and becomes an
 * exception row (node "master"), and the run's exit code is non-zero.
 *
 * A test adopted from the workers of a previous master (proto/PROTOCOL.md, section 7) resumes the
 * shape where it was: the runner learns of the adoption from the core's events and, when the
 * rejoins gave the test's start (the earliest plausible `started_at`, acr_core_adoption), drives it
 * from run time = now - that start (acr_shape_resume); without a start time it warns and leaves
 * the workers' users as they are.
 *
 * Error convention: 0 or a negative errno; the reason in a caller buffer.
 */
#ifndef ACR_MASTER_SHAPE_H
#define ACR_MASTER_SHAPE_H

#include "common/scenario.h"
#include "master/core/core.h"

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#define ACR_SHAPE_TICK_MS 1000  /**< how often the shape is evaluated */
#define ACR_SHAPE_BUDGET_MS 100 /**< the work one call of a shape function may do */
#define ACR_SHAPE_MAX_USERS 10000000L
#define ACR_SHAPE_MAX_RATE 1e7 /**< users per second */
#define ACR_SHAPE_MAX_STAGES 10000
#define ACR_SHAPE_MAX_CLASSES 4096 /**< class names in one result or stage */

struct lua_State;

/** One stage of acrida.stages: active while the run time is below @duration (seconds from the
 *  start of the test) and at or above the previous stage's. */
typedef struct acr_shape_stage {
    double duration;
    long users;
    double rate;
    char **classes; /**< NULL = every class */
    size_t nclasses;
} acr_shape_stage_t;

/** What a shape asks for at one tick. */
typedef struct acr_shape_target {
    long users;
    double rate;
    char **classes; /**< owned (acr_shape_target_clear); sorted; NULL = every class */
    size_t nclasses;
    long stage; /**< 0-based index of the stage of acrida.stages; -1 for a shape function */
} acr_shape_target_t;

void acr_shape_target_clear(acr_shape_target_t *t);

/* ---- declaring ---- */

/** Installs acrida.shape and acrida.stages in @L (a state opened by acr_scenario_open in the
 *  master role), replacing the workers' no-ops: they check their argument (errors name the
 *  scenario's file:line and the stage index) and record the shape in @L's registry. Returns 0. */
int acr_shape_open(struct lua_State *L);
/** Whether the scenario run in @L declared a shape. */
bool acr_shape_declared(struct lua_State *L);

/* ---- the parts a tick is made of (unit-tested) ---- */

/** The index of the stage active at @t seconds: the first with @t < duration; -1 after the last
 *  (the shape has ended). @stages are in increasing duration order. */
long acr_shape_stage_at(const acr_shape_stage_t *stages, size_t n, double t);

/**
 * Calls the shape function at the top of @L's stack (popped) with @run_time under a hook that
 * interrupts it after @budget_ms of work, and checks its result against the scenario's @classes:
 * returns 1 with *@out filled (stage -1), 0 for nil (the end), or -EINVAL with the reason in @err
 * (the function's error with its file:line, "... interrupted ..." or what is wrong with the
 * returned value) and, when the function raised, its traceback in @tb (may be NULL).
 */
int acr_shape_call(struct lua_State *L, double run_time, unsigned budget_ms,
                   const acr_user_class_t *classes, size_t nclasses, acr_shape_target_t *out,
                   char *err, size_t errlen, char *tb, size_t tblen);

/* ---- running ---- */

typedef struct acr_shape acr_shape_t;

typedef struct acr_shape_config {
    uv_loop_t *loop;
    acr_core_t *core;
    struct lua_State *L; /**< the master's scenario state (master/lua_rt.h) */
    const acr_user_class_t *classes;
    size_t nclasses;
    /** Called once when the shape fails (an error or a bad value): the run must exit non-zero.
     *  NULL = none. */
    void (*on_error)(void *ud);
    void *ud;
} acr_shape_config_t;

/**
 * Creates the runner of the shape the scenario in cfg->L declared; *@out is NULL (and 0 returned)
 * when it declared none. Every pointer of @cfg is borrowed and must outlive the runner. Errors:
 * -EINVAL ("acrida.stages (<file>:<line>): stage 2: unknown user class 'X'") in @err, -ENOMEM, or a
 * libuv code.
 */
int acr_shape_new(const acr_shape_config_t *cfg, acr_shape_t **out, char *err, size_t errlen);
/** Where the shape was declared: "<file>:<line>". */
const char *acr_shape_where(const acr_shape_t *s);
/**
 * Starts a test driven by the shape: evaluates it at run time 0 and calls acr_core_start with its
 * target, @host (NULL: the configured one) and @run_time (<= 0: none), then evaluates it every
 * second until the test stops. Returns 0 when the test started; 1 when the shape ended at once
 * (nil: nothing started); -EINVAL when it failed (reason in @err; logged, an exception row, the
 * on_error callback) or the core's negative errno from acr_core_start.
 */
int acr_shape_start(acr_shape_t *s, const char *host, double run_time, char *err, size_t errlen);
/**
 * Drives the test under way, adopted from the workers of a previous master, from @run_time seconds
 * into the shape (< 0 counts as 0): evaluates the shape there and applies that target at the next
 * tick (ACR_SHAPE_TICK_MS later, when the adoption's other workers have rejoined) whatever the
 * workers run, then every tick as for a test it started. The runner calls it itself when the core
 * adopts a test with a known start. Returns 0; 1 when the shape had ended at @run_time (the test
 * is stopped); -EINVAL when it failed (as acr_shape_start: the test is stopped); -EBUSY when a
 * test driven by the shape is under way already.
 */
int acr_shape_resume(acr_shape_t *s, double run_time, char *err, size_t errlen);
/** Whether a test driven by the shape is under way (false for NULL). */
bool acr_shape_active(const acr_shape_t *s);
/** The target applied last while a test driven by the shape is under way: true and the values
 *  (@stage -1 for a shape function), false when none (or @s NULL). */
bool acr_shape_current(const acr_shape_t *s, long *users, double *rate, long *stage);
/** Stops the timer and closes its handle (the loop then closes it). NULL is fine. */
void acr_shape_close(acr_shape_t *s);
/** Frees the runner, after the loop closed its handle. NULL is fine. */
void acr_shape_free(acr_shape_t *s);

#endif
