/*
 * The master's control core: the worker registry, the one run state machine, Locust's dispatcher
 * and the stats aggregation, behind one small API. Front-ends (the headless console today, the web
 * server later) drive a run with acr_core_start/edit/stop/reset, read it with acr_core_snapshot and
 * learn of changes by subscribing (acr_core_subscribe); the core never calls a front-end except
 * through its subscribers.
 *
 * The run's states: ready -> spawning -> running -> stopping -> stopped (-> spawning again), with
 * one transition table (acr_run_transition_legal); ready -> stopped shows a stopped test adopted
 * from the workers of a previous master. Workers have their own table (core_int.h,
 * acr__worker_event); one that stops answering is `missing` (acr_worker_state_t) and its users go
 * to the others. One libuv loop, no threads. Error
 * convention: 0 or a negative errno; human-readable detail goes to the log.
 */
#ifndef ACR_MASTER_CORE_H
#define ACR_MASTER_CORE_H

#include "common/hist.h"
#include "common/scenario.h"
#include "common/stats.h"

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

typedef enum {
    ACR_RUN_READY = 0,
    ACR_RUN_SPAWNING,
    ACR_RUN_RUNNING,
    ACR_RUN_STOPPING,
    ACR_RUN_STOPPED,
    ACR_RUN__COUNT
} acr_run_state_t;

/** "ready", "spawning", "running", "stopping", "stopped"; "?" out of range. */
const char *acr_run_state_name(acr_run_state_t s);
/** Whether @from -> @to is in the transition table (a state to itself is not a transition). */
bool acr_run_transition_legal(acr_run_state_t from, acr_run_state_t to);

typedef enum {
    ACR_WORKER_READY = 0,
    ACR_WORKER_SPAWNING,
    ACR_WORKER_RUNNING,
    ACR_WORKER_STOPPED,
    ACR_WORKER_MISSING,
} acr_worker_state_t;

/** "ready", "spawning", "running", "stopped", "missing"; "?" out of range. */
const char *acr_worker_state_name(acr_worker_state_t s);

typedef struct acr_core acr_core_t;
struct acr_msg_pool; /**< proto/msg.h */

/** What the core is built from. Every pointer is borrowed and must outlive the core, except the
 *  scenario source, which acr_core_new copies. */
typedef struct acr_core_config {
    const acr_user_class_t *classes; /**< the scenario's classes (at least one) */
    size_t nclasses;
    const char *host;    /**< the default host sent with `spawn` (NULL: the workers' own) */
    double stop_timeout; /**< seconds; < 0 = not set (nil on the wire) */
    bool reset_stats;    /**< reset the stats once spawning completes (--reset-stats) */
    /** --tags / --exclude-tags, sent in every `spawn` (NULL-terminated; NULL = none) */
    const char *const *tags, *const *exclude_tags;
    /** The scenario shipped to acrida workers after their ack (workers without -f load it);
     *  NULL = none. */
    const char *scenario_name;
    const char *scenario_src;
    size_t scenario_len;
    /** The scenario's bundle (common/bundle.h, borrowed; NULL = none): announced in the
     *  `scenario` message and sent in acrida_bundle_part frames after it; @bundle_main is the
     *  scenario's path in it. @scenario_sha256 is the hash a worker running its own -f reports
     *  when its files are the master's (the default bundle's, master/bundle.h). */
    const struct acr_bundle *bundle;
    const char *bundle_main;
    const char *scenario_sha256;
    /** A test adopted from rejoining workers (proto/PROTOCOL.md, adoption) ramps at this rate
     *  (the master's -r; <= 0: 1) and stops after this many seconds from the adoption (-t;
     *  <= 0: no limit). */
    double adopt_rate, adopt_run_time;
    /** The cluster key (CURVE and ZAP on the ROUTER, proto/zchan.h); NULL = none. Borrowed: it
     *  must outlive the core. */
    const struct acr_keys *keys;
    /** Bounds (docs/security.md): distinct request names merged before new ones are folded into
     *  "[other]" (0: ACR_STATS_MAX_NAMES), registered workers (0: ACR_CORE_MAX_WORKERS) and
     *  client_ready frames accepted per second, a token bucket with as many tokens (0:
     *  ACR_CORE_REGISTRATION_RATE); the others are dropped and counted. */
    size_t max_entry_names, max_workers;
    double registration_rate;
} acr_core_config_t;

#define ACR_CORE_MAX_WORKERS 10000       /**< default --max-workers */
#define ACR_CORE_REGISTRATION_RATE 200.0 /**< default --registration-rate */

typedef enum {
    /** The run state changed (from, to); sent after the transition. */
    ACR_CORE_EV_STATE = 0,
    /** The registry may have changed: sent after every frame from a worker and every liveness
     *  tick (readiness waits re-evaluate on it). */
    ACR_CORE_EV_WORKERS,
    /** Every worker answered acr_core_quit, or the quit wait ran out; sent once. */
    ACR_CORE_EV_QUIT_DONE,
} acr_core_event_type_t;

typedef struct acr_core_event {
    acr_core_event_type_t type;
    acr_run_state_t from, to; /**< ACR_CORE_EV_STATE only */
} acr_core_event_t;

/** A subscriber. It may call any acr_core_* function, including acr_core_close; the event
 *  pointer is valid during the call only. */
typedef void (*acr_core_listener_fn)(acr_core_t *c, const acr_core_event_t *ev, void *ud);

/** One worker of a snapshot; the strings are owned by the snapshot. */
typedef struct acr_core_worker {
    char *id, *host;
    const char *state; /**< acr_worker_state_name() */
    long user_count;
    double cpu_usage;       /**< percent */
    long long memory_usage; /**< bytes */
    double heartbeat_age;   /**< seconds since the last message */
} acr_core_worker_t;

/** A node id that lost report intervals in the current test; @worker owned by the snapshot. */
typedef struct acr_core_lost {
    char *worker;
    unsigned long long lost;
} acr_core_lost_t;

/** A user class quarantined because it stalled a worker (its task ran past the worker's
 *  --stall-timeout without yielding): it gets no users any more (proto/PROTOCOL.md, acrida_stall).
 */
typedef struct acr_core_quarantine {
    char *cls, *worker, *task;
    double seconds;
} acr_core_quarantine_t;

/** The state of the core at one moment. acr_core_snapshot_free() releases what it owns. */
typedef struct acr_core_snapshot {
    acr_run_state_t state;
    long user_count; /**< users the live workers reported */
    long target_users;
    double spawn_rate;
    size_t ready_workers, live_workers;
    double run_time;  /**< seconds since the test started (0 before) */
    char test_id[33]; /**< 32 hex chars; "" before the first test */
    bool adopted;     /**< the test was adopted from the workers of a previous master */
    /** The run's merged stats and the Aggregated histogram of the last 10 s (NULL before any
     *  report): borrowed from the core, valid until control returns to the loop. */
    acr_stats_t *stats;
    const acr_hist_t *current;
    unsigned long long lost_reports, reports_merged;
    unsigned long long malformed; /**< frames from workers dropped as malformed */
    /** frames dropped because their sender never registered (or was removed), and rejoins
     *  answered with `stop` */
    unsigned long long unknown_frames, rejoins_refused;
    acr_core_worker_t *workers; /**< every registered worker, in registration order */
    size_t nworkers;
    acr_core_lost_t *lost; /**< node ids with lost intervals in this test */
    size_t nlost;
    /** classes quarantined since the master started, in order: borrowed from the core, valid
     *  until control returns to the loop */
    const acr_core_quarantine_t *quarantined;
    size_t nquarantined;
} acr_core_snapshot_t;

/**
 * Creates the core on @loop from @cfg (see acr_core_config_t for ownership). It has no channel
 * yet: acr_core_listen binds one. Returns 0 and *@out, or a negative errno.
 */
int acr_core_new(uv_loop_t *loop, const acr_core_config_t *cfg, acr_core_t **out);
/** Binds the workers' ROUTER on @host:@port (0 = any free port) and starts the liveness tick.
 *  Returns 0 and the bound port in *@bound_port, or a negative errno with @err filled. */
int acr_core_listen(acr_core_t *c, const char *host, int port, int *bound_port, char *err,
                    size_t errlen);
/** Adds a subscriber (called in subscription order). Returns 0, or -ENOSPC past eight. */
int acr_core_subscribe(acr_core_t *c, acr_core_listener_fn fn, void *ud);

/**
 * Starts a test from ready or stopped: @users at @rate users/s over the live workers, @host sent
 * with `spawn` (NULL: the configured one), a stop after @run_time s (<= 0: none), @classes the
 * names of the user classes to run (NULL or @nclasses 0: every class). Returns 0; -EAGAIN with
 * no live worker; -EBUSY while a test is under way (use acr_core_edit); -EINVAL for users < 0,
 * rate <= 0 or an unknown class name; -ESHUTDOWN after acr_core_quit; -ENOMEM.
 */
int acr_core_start(acr_core_t *c, long users, double rate, const char *host, double run_time,
                   const char *const *classes, size_t nclasses);
/**
 * Re-targets the test under way (spawning or running): a new ramp to @users at @rate. @classes
 * (@nclasses names; NULL or 0: keep the classes of the test) restricts new users to those classes
 * from this ramp on, and the ramp replaces the running users of the other classes with users of
 * these (master/core/dispatch.h; every class: pass every name). Returns 0, -EINVAL outside
 * spawning/running or for users < 0, rate <= 0 or an unknown class name, -EAGAIN with no live
 * worker, -ENOMEM.
 */
int acr_core_edit(acr_core_t *c, long users, double rate, const char *const *classes,
                  size_t nclasses);
/** Graceful stop from spawning or running: `stop` to every worker, then stopping until each sent
 *  its final report and client_stopped (bounded by stop_timeout + 70 s), then stopped. Returns 0
 *  or -EINVAL in any other state. */
int acr_core_stop(acr_core_t *c);
/** Resets the run's stats as --reset-stats does (entries kept and zeroed, failures and
 *  exceptions emptied), in any state. */
void acr_core_reset(acr_core_t *c);
/** How many workers are ready, without the copies a snapshot makes (the console polls it while
 *  it waits for --expect-workers). */
size_t acr_core_ready_workers(const acr_core_t *c);
/** How many registered workers are not missing (registry.c). */
size_t acr_core_live_workers(const acr_core_t *c);
/** How many workers reported that the scenario failed to load on them (acrida_scenario_loaded
 *  with an error) since the master started (registry.c). */
size_t acr_core_load_failures(const acr_core_t *c);
/** The adoption of the test under way (proto/PROTOCOL.md, "On acrida_rejoin"), without the copies
 *  a snapshot makes: what a load shape needs to resume it (master/shape.h). */
typedef struct acr_core_adoption {
    bool adopted;      /**< a test adopted from rejoining workers is spawning or running */
    double started_at; /**< its earliest plausible start its rejoins gave (epoch s); 0 = unknown */
    unsigned long joined; /**< rejoins adopted into it so far (grows as workers join it) */
} acr_core_adoption_t;
/** Fills *@out; all zero when no adopted test is spawning or running (adopt.c). */
void acr_core_adoption(const acr_core_t *c, acr_core_adoption_t *out);
/** Fills *@out (see acr_core_snapshot_t). Returns 0, or -ENOMEM when the worker and lost lists
 *  could not be copied (they are then empty; the other fields are set). */
int acr_core_snapshot(acr_core_t *c, acr_core_snapshot_t *out);
void acr_core_snapshot_free(acr_core_snapshot_t *s);

/** What the master's scenario runtime (master/lua_rt.h) hears from the workers beyond the
 *  subscribers' events. Each may be NULL; strings and data are valid during the call. */
typedef struct acr_core_hooks {
    /** A message of a type the protocol does not know (the scenario's): @data is its data
     *  element as one msgpack value (NULL for nil). */
    void (*on_custom)(acr_core_t *c, const char *node_id, const char *type, const void *data,
                      size_t len, void *ud);
    /** A stats report, after it was merged: @extra its fields other than the protocol's as one
     *  msgpack map (NULL when none), @user_count the users it reported (-1 when absent). */
    void (*on_report)(acr_core_t *c, const char *node_id, const void *extra, size_t extra_len,
                      long user_count, void *ud);
    /** An acrida_pool_req from registered worker @node_id (master/pools.h). */
    void (*on_pool)(acr_core_t *c, const char *node_id, const struct acr_msg_pool *req, void *ud);
    /** Worker @node_id is lost: it went missing, quit or was removed (its pool leases return). */
    void (*on_worker_lost)(acr_core_t *c, const char *node_id, void *ud);
} acr_core_hooks_t;

/** Sets the hooks (copied; replaces earlier ones; NULL removes them). Without an on_custom hook a
 *  custom message is logged as Locust does ("Unknown message type received ..."). */
void acr_core_set_hooks(acr_core_t *c, const acr_core_hooks_t *hooks, void *ud);
/** Sends a custom message [type, data, node_id] (@data: one msgpack value of @len bytes, NULL for
 *  nil) to worker @node_id, or to every registered worker (missing ones included, as Locust)
 *  when @node_id is NULL. Returns the number of workers it went to; -ENOENT for an unknown
 *  @node_id, -EINVAL for a built-in type, -ESHUTDOWN once the channel is closed, -ENOMEM. */
int acr_core_send_custom(acr_core_t *c, const char *type, const void *data, size_t len,
                         const char *node_id);
/** Sends one encoded payload (a whole [type, data, node_id] frame) to registered worker @node_id.
 *  Returns 0, -ENOENT for an unknown worker, -ESHUTDOWN once the channel is closed, or the
 *  channel's error. */
int acr_core_send_frame(acr_core_t *c, const char *node_id, const void *payload, size_t len);
/** Adds an exception row (message, traceback, the node it happened on, e.g. "master") to the
 *  run's stats, as the workers' `exception` messages do. Returns 0 or -ENOMEM. */
int acr_core_add_exception(acr_core_t *c, const char *msg, const char *traceback, const char *node);

/** The master is going away: `quit` to every live worker, then ACR_CORE_EV_QUIT_DONE once all
 *  of them answered or after 5 s. Stops the run-time limit; a second call does nothing. */
void acr_core_quit(acr_core_t *c);
/** The end of the master's work: a worker that still owes reports (missing, or silent since the
 *  stop) never sends them now, and its open interval is counted as lost. Call before the final
 *  snapshot. */
void acr_core_finish(acr_core_t *c);
/** Closes the channel and the core's handles (the dropped-frame count is kept); the core stays
 *  readable until acr_core_free, which must come after the loop closed the handles. */
void acr_core_close(acr_core_t *c);
void acr_core_free(acr_core_t *c);

#endif
