/*
 * The worker's Lua runtime: one LuaJIT state per worker process holding the scenario, the
 * `acrida` module's running side (users, self.client, acrida.sleep, acrida.report) and the user
 * scheduler (each simulated user a coroutine on the worker's libuv loop). worker.c drives it from
 * the protocol: load a scenario, set the per-class user counts a spawn asks for, stop everyone.
 *
 * Requests and measurements are recorded into the caller's acr_stats_t; Lua errors escaping a
 * task become exception rows there (acr_stats_add_exception with this node's id).
 *
 * Error convention: 0 or a negative errno; human-readable detail in a caller buffer.
 */
#ifndef ACR_WORKER_RUNTIME_H
#define ACR_WORKER_RUNTIME_H

#include "common/stats.h"
#include "proto/msg.h"
#include "worker/http/http.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct acr_rt acr_rt_t;

typedef struct acr_rt_config {
    uv_loop_t *loop;
    acr_stats_t *stats;      /**< borrowed; requests, failures and exceptions go here */
    acr_http_client_t *http; /**< borrowed; NULL makes every request fail "no HTTP client" */
    const char *node_id;     /**< copied; the node named in exception rows */
    /** the stall watchdog (borrowed, NULL = none): with a stall timeout, a user's Lua code that
     *  runs that long without yielding is interrupted (worker/watchdog.h) */
    struct acr_watchdog *watchdog;
    /** a user's task was interrupted for a stall (called on the loop after its resume) */
    void (*on_stall)(const char *cls, const char *task, double secs, void *ud);
    void *stall_ud;
    /** Cap on the Lua state's memory in bytes (0: none). Beyond it an allocation fails with
     *  Lua's "not enough memory": the task fails (an exception row naming it) and its user
     *  stops. */
    size_t max_lua_memory;
} acr_rt_config_t;

/** Creates the runtime (Lua state with the acrida module in the "worker" role). NULL on failure
 *  with the reason in @err. Its state is the one the watchdog watches from now on. */
acr_rt_t *acr_rt_new(const acr_rt_config_t *cfg, char *err, size_t errlen);
/** Makes the watchdog watch this runtime's state again (after a newer runtime failed to load). */
void acr_rt_watch(acr_rt_t *rt);

/**
 * Runs a scenario (a file, or source shipped by the master under @name) and prepares its
 * classes. Errors read "<file>:<line>: <message>" or "scenario declares no user class ...".
 * Call once per runtime.
 */
int acr_rt_load_file(acr_rt_t *rt, const char *path, char *err, size_t errlen);
int acr_rt_load_string(acr_rt_t *rt, const char *name, const char *src, size_t len, char *err,
                       size_t errlen);

/** Runs the scenario @main (@src, @len bytes) of a bundle extracted in @root: modules and
 *  relative file paths resolve in the bundle (acr_scenario_exec_bundle). */
int acr_rt_load_bundle(acr_rt_t *rt, const char *root, const char *main, const char *src,
                       size_t len, char *err, size_t errlen);

size_t acr_rt_nclasses(const acr_rt_t *rt);
/** The runtime's main Lua state (the scenario's), for the worker's events and messages. */
struct lua_State *acr_rt_lua(acr_rt_t *rt);
/** All running users (stopping users not counted). */
size_t acr_rt_user_count(const acr_rt_t *rt);
/** Users that exist in any state, stopping ones included. */
size_t acr_rt_users_alive(const acr_rt_t *rt);

/**
 * Fills @out (an array of acr_rt_nclasses() entries whose names point into the runtime) with
 * the running count per class, for spawning_complete and stats reports.
 */
void acr_rt_class_counts(const acr_rt_t *rt, acr_class_count_t *out);

/** The host for users whose class sets none (the master's -H); copied, NULL clears. */
int acr_rt_set_host(acr_rt_t *rt, const char *host);
void acr_rt_set_worker_index(acr_rt_t *rt, int64_t index);
/**
 * Applies the master's --tags/--exclude-tags (NULL-terminated lists, NULL = none) to the classes'
 * task lists (acr_scenario_apply_tags): users started from now on run only the kept tasks. A call
 * with the lists already applied does nothing. -EINVAL when a class is left without a task
 * ("user class 'X' has no task left after --tags/--exclude-tags" in @err; the previous filter
 * stays), -ENOMEM.
 */
int acr_rt_set_tags(acr_rt_t *rt, const char *const *tags, const char *const *exclude, char *err,
                    size_t errlen);

/** Tasks of acrida.spawn alive now. */
size_t acr_rt_green_count(const acr_rt_t *rt);

/** Seconds a stopping user may take to finish its current task (0 = stop at once). */
void acr_rt_set_stop_timeout(acr_rt_t *rt, double seconds);

/**
 * Starts or stops users so each named class runs exactly the given count (classes not named keep
 * their users). New users start at the next loop turn; surplus users are stopped newest first
 * (gracefully, see acr_rt_stop_all). Unknown class names are skipped with a warning.
 * Returns 0 or -ENOMEM.
 */
int acr_rt_set_users(acr_rt_t *rt, const acr_class_count_t *counts, size_t n);

/** Sets the running count of class @i (same rules as acr_rt_set_users). */
int acr_rt_set_class_users(acr_rt_t *rt, size_t i, size_t count);

/**
 * Gracefully stops every user: no new task starts; users waiting or sleeping stop at once; a
 * request in flight completes, its task resumes to decide the verdict and run the code after the
 * request, and the user stops at its next request or wait, which sends nothing (with a stop
 * timeout the user may first finish its task within that time); then on_stop runs (bounded by the
 * stop timeout, else 5 s). @done runs once every user is gone — possibly before this returns when
 * there is nothing to wait for. A later call replaces a pending @done.
 */
void acr_rt_stop_all(acr_rt_t *rt, void (*done)(acr_rt_t *rt, void *ud), void *ud);

/**
 * Closes the runtime's handles. Users should be gone (acr_rt_stop_all finished); any left are
 * dropped without on_stop. The memory (Lua state included) is freed from the loop once every
 * handle is closed; @closed_cb (may be NULL) runs then.
 */
void acr_rt_close(acr_rt_t *rt, void (*closed_cb)(void *ud), void *ud);

#endif
