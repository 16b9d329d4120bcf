/*
 * The control core's internals, shared by the files of master/core/ only (acr__ prefix). Each
 * part owns its struct and the core embeds them: registry.c (acr_registry_t: workers, node-id
 * indexes, liveness, message intake), run.c (acr_run_t: the run state machine, ramp, stop, run
 * time), aggregate.c (acr_agg_t: merged stats, current window, lost reports), core.c (the public
 * API, subscribers, quit). Error convention: 0 or a negative errno, as core.h.
 */
#ifndef ACR_MASTER_CORE_INT_H
#define ACR_MASTER_CORE_INT_H

#include "common/util.h"
#include "master/core/core.h"
#include "master/core/dispatch.h"
#include "proto/msg.h"
#include "proto/zchan.h"

#include <stdbool.h>
#include <stdint.h>

#define ACR_TEST_ID_LEN ACR_MSG_ID_HEX /* hex chars of a test id and of a master's instance id */

/** One registered worker. Owned by the registry; freed when removed or with the core. */
typedef struct acr_mworker {
    char *id;
    char *host; /**< id up to the first '_' */
    char *version;
    int64_t index;
    bool acrida;
    acr_worker_state_t state;
    double last_seen; /**< monotonic s of the last message */
    double cpu;
    int64_t mem;
    int64_t nofile;             /**< its descriptor limit (heartbeat acrida_nofile); 0 = unknown */
    acr_class_count_t *classes; /**< last reported user_classes_count (owned) */
    size_t nclasses;
    /* reports (aggregate.c) */
    int64_t last_seq; /**< -1 = none yet in this incarnation */
    bool gap_open;    /**< reported during a test and no final report yet */
    /* spawn bookkeeping (run.c) */
    uint64_t spawns_sent, spawns_done;
    /* stop / quit bookkeeping */
    bool stop_pending, stopped_msg, final_seen, quit_pending;
    double stopped_at;        /**< monotonic s of client_stopped */
    bool stopped_since_ready; /**< client_stopped since its last client_ready */
    bool scenario_warned;     /**< its different scenario was logged (once per worker) */
    /* adoption and joins (adopt.c) */
    double join_due;    /**< monotonic s when a deferred join is due; 0 = none */
    bool refused;       /**< its rejoin was refused: reports dropped until client_stopped */
    bool cumulative_ok; /**< its rejoin was accepted: the cumulative report that follows merges */
    /* the scenario shipped after its ack (registry.c): an acrida worker takes users only once it
     * confirmed loading it (acrida_scenario_loaded), or after a bounded wait */
    bool loading;           /**< scenario sent, not confirmed yet: no users, not counted as ready */
    bool load_failed;       /**< it reported a load error: never given users (it quits) */
    double load_due;        /**< monotonic s after which an unconfirmed worker counts as loaded */
    double ready_at;        /**< monotonic s of its last accepted client_ready */
    bool heard_since_ready; /**< a frame other than client_ready came after it */
    uint64_t dup_ready;     /**< duplicate client_ready frames ignored (registry.c) */
} acr_mworker_t;

/** What happens to a worker; acr__worker_event maps (state, event) to the next state. */
typedef enum {
    ACR_WEV_REGISTER = 0, /**< client_ready */
    ACR_WEV_SPAWNING,     /**< `spawning` */
    ACR_WEV_SPAWNED,      /**< `spawning_complete` */
    ACR_WEV_STOPPED,      /**< `client_stopped` */
    ACR_WEV_HEARTBEAT,    /**< a heartbeat with a state */
    ACR_WEV_SILENT,       /**< no message for the liveness limit */
    ACR_WEV_ADOPT,        /**< an accepted acrida_rejoin of a spawning/running test */
    ACR_WEV__COUNT
} acr_wevent_t;

/** registry.c: the workers and the node-id indexes (stable for the master's lifetime). */
typedef struct acr_registry {
    acr_mworker_t **workers;
    size_t nworkers, capworkers;
    struct acr_index_entry {
        char *id;
        int64_t index;
        uint64_t lost; /**< report intervals this node id lost in the current test */
    } * indexes;
    size_t nindexes, capindexes;
    uv_timer_t liveness_timer;
    uint64_t liveness_ticks;
    uint64_t malformed;
    /** Routing ids that sent frames without being registered (adopt.c): when each was last sent
     *  `reconnect` and last logged. Bounded; stale entries are reused. */
    struct acr_unknown_peer {
        char *id;
        double reconnect_at, logged_at;
    } * unknown;
    size_t nunknown, capunknown;
    uint64_t unknown_frames;  /**< frames dropped because their sender was not registered */
    uint64_t rejoins_refused; /**< acrida_rejoin answered with `stop` */
    size_t load_failures;     /**< workers that reported they could not load the scenario */
    /** registration bounds (registry.c): the client_ready token bucket and the drops */
    double reg_tokens, reg_refill_at, reg_warned_at;
    uint64_t reg_dropped, reg_dropped_logged;
    /** The table the next report is decoded into: the last report's, emptied (proto/msg.h,
     *  acr_msg_decode_reuse). NULL until a report was handled. */
    acr_stats_t *spare_stats;
} acr_registry_t;

/** run.c: the one run state machine and what drives it. */
typedef struct acr_run {
    acr_run_state_t state;
    acr_dispatch_t *dispatch; /**< while spawning/running */
    long target_users;
    long nofile_warned; /**< the target last warned about as beyond the workers' descriptors */
    double spawn_rate;
    char *host; /**< the test's host for `spawn` (owned; NULL = the configured one) */
    double last_spawn_ts;
    bool ramp_sent, settle_expired;
    bool rebalance_due; /**< workers joined: one rebalance at the next liveness tick (run.c) */
    double test_start;  /**< epoch s of the test start, 0 before */
    double test_start_mono;
    char test_id[ACR_TEST_ID_LEN + 1]; /**< 32 hex, new at every start; "" before */
    bool adopted;                      /**< the test was adopted from rejoining workers */
    /** an adopted test's start: the earliest plausible started_at (epoch s) of the rejoins
     *  adopted into it, 0 = none said; and how many rejoins were adopted into it (adopt.c) */
    double adopt_started_at;
    unsigned long adopt_joined;
    bool quiet_ramp_done;   /**< the ramp is an adoption's: no acrida_spawning_complete */
    double no_worker_since; /**< monotonic s the ramp found no live worker; 0 = has */
    uv_timer_t ramp_timer, settle_timer, stop_timer, runtime_timer;
    acr_class_count_t *spawn_classes; /**< scratch, nclasses entries */
} acr_run_t;

/** aggregate.c: the run's merged stats and what was lost. */
typedef struct acr_agg {
    acr_stats_t *stats;
    uint64_t lost_reports;
    uint64_t reports_merged; /**< stats reports merged since the test started */
    /** The Aggregated histogram per second of arrival, for the "current" (10 s) percentiles:
     *  slots plus one scratch histogram, allocated on the first report. */
    struct acr_agg_slot {
        int64_t sec;
        acr_hist_t hist;
    } * window;
    acr_hist_t *window_sum;
} acr_agg_t;

#define ACR__CORE_MAX_SUBS 8
/* how long a newly registered acrida worker waits for its rejoin before it joins a run (joins stay
 * within 1 s: this plus one 250 ms liveness tick) */
#define ACR__JOIN_GRACE_S 0.5

struct acr_core {
    uv_loop_t *loop;
    acr_core_config_t cfg; /**< cfg.scenario_src is the core's own copy */
    acr_zchan_t *chan;
    acr_buf_t sendbuf;
    acr_registry_t reg;
    acr_run_t run;
    acr_agg_t agg;
    struct {
        acr_core_listener_fn fn;
        void *ud;
    } subs[ACR__CORE_MAX_SUBS];
    size_t nsubs;
    acr_core_hooks_t hooks;
    void *hooks_ud;
    uv_timer_t quit_timer;
    bool quitting, quit_done, closed;
    char instance[ACR_TEST_ID_LEN + 1]; /**< 32 hex, random per core: sent in every ack */
    char scenario_sha256[65];           /**< of cfg.scenario_src; "" without one */
    acr_core_quarantine_t *quarantine;  /**< quarantine.c: classes that stalled a worker */
    size_t nquarantine;
};

/* core.c */
void acr__core_emit(acr_core_t *c, const acr_core_event_t *ev);
/** After a frame or a liveness tick: re-evaluates the run's waits and the quit, then emits
 *  ACR_CORE_EV_WORKERS. */
void acr__core_after_input(acr_core_t *c);

/* registry.c */
/** The worker state machine's table: the state @ev moves a worker in state @from to (@reported:
 *  the state a heartbeat or a rejoin named, for the events that take it). */
acr_worker_state_t acr__worker_next(acr_worker_state_t from, acr_wevent_t ev,
                                    acr_worker_state_t reported);
/** The worker state machine's one transition function: moves @w by @ev (acr__worker_next), logs
 *  the change and does what it implies (a missing worker's users move, a healed or new one
 *  joins the run). Returns the new state. */
acr_worker_state_t acr__worker_event(acr_core_t *c, acr_mworker_t *w, acr_wevent_t ev,
                                     acr_worker_state_t reported);
/** "register", "spawning", ...: for logs and tests. */
const char *acr__wevent_name(acr_wevent_t ev);
/** The zchan receive callback: decodes and routes every frame (@ud is the acr_core_t). */
void acr__registry_on_frame(acr_zchan_t *ch, const char *peer, size_t peer_len, const void *data,
                            size_t len, void *ud);
acr_mworker_t *acr__registry_find(acr_core_t *c, const char *id);
/** Workers that are not missing. */
size_t acr__registry_live(const acr_core_t *c);
/** Workers in state ready that loaded the scenario (what --expect-workers counts). */
size_t acr__registry_ready(const acr_core_t *c);
/** Whether @w can be given users: not missing and not waiting for its scenario to load. */
bool acr__worker_usable(const acr_mworker_t *w);
/** Sum of the live workers' reported users. */
long acr__registry_user_count(const acr_core_t *c);
/** Warns (once per target) when the test's target users exceed the connections the live workers'
 *  descriptor limits can hold; silent while a live worker's limit is unknown (a Locust worker). */
void acr__registry_check_nofile(acr_core_t *c);
/** The users a worker last reported. */
long acr__worker_users(const acr_mworker_t *w);
/** Starts the 250 ms liveness/heartbeat timer. */
int acr__registry_start(acr_core_t *c);
/** Replaces the worker's user_classes_count with a copy of @cc (n entries). */
void acr__worker_set_classes(acr_mworker_t *w, const acr_class_count_t *cc, size_t n);
/** Sends c->sendbuf (one encoded payload) to worker @id; failures are logged at debug. */
void acr__registry_send_buf(acr_core_t *c, const char *id);
/** Sends a nil-data message of @type to one worker. */
void acr__registry_send_nil(acr_core_t *c, const char *type, const char *id);
void acr__registry_free(acr_core_t *c);

/* run.c */
/** The one transition function: checks the table, logs from -> to at debug, emits
 *  ACR_CORE_EV_STATE. Returns 0 or -EINVAL for an illegal transition (state unchanged). */
int acr__run_set_state(acr_core_t *c, acr_run_state_t to);
/** A test is under way: spawning, running or stopping (its reports count). */
bool acr__run_active(const acr_core_t *c);
/** Creates the dispatcher (every class of the scenario) over the live workers, restricts it to
 *  the classes named in @classes (n names, checked by the caller; NULL: every class) and starts
 *  the ramp: see acr_core_start. */
int acr__run_start(acr_core_t *c, long users, double rate, const char *const *classes, size_t n);
/** Adoption: a test @test_id taken over from rejoining workers, with no users placed yet (seed them
 *  with acr_dispatch_adopt, then acr__run_check): spawning until their reports settle, the
 *  run-time limit from now. @keep_stats: the stats already shown are this test's. @started_at:
 *  the test's start as the first rejoin gave it (epoch s; 0 unknown), set before the state event
 *  so that its subscribers (a load shape, master/shape.h) see it. Returns 0, -EBUSY while a test
 *  is under way, -ENOMEM. */
int acr__run_adopt_begin(acr_core_t *c, const char *test_id, const char *host, bool keep_stats,
                         double started_at);
/** A new ramp of the test under way, restricted to @classes (checked names; NULL or n 0: the
 *  classes of the ramp before): see acr_core_edit. */
int acr__run_edit(acr_core_t *c, long users, double rate, const char *const *classes, size_t n);
/** See acr_core_stop. */
int acr__run_stop(acr_core_t *c);
/** Starts (@s > 0) the run-time limit: acr__run_stop when it expires. */
void acr__run_limit(acr_core_t *c, double s);
/** The set of live workers changed: rebalance and re-send spawns when a test runs, at once for a
 *  loss, at the next liveness tick for a join (many joins, one rebalance). */
void acr__run_workers_changed(acr_core_t *c, acr_mworker_t *added, const char *removed_id);
/** The rebalance that joins left for the liveness tick (acr__run_workers_changed), if any. */
void acr__run_rebalance_due(acr_core_t *c);
/** A worker reported spawning_complete / answered the stop: re-evaluate the waits. */
void acr__run_check(acr_core_t *c);
int acr__run_init(acr_core_t *c);
void acr__run_close(acr_core_t *c);
void acr__run_free(acr_core_t *c);

/* adopt.c */
/** Fills @out with 32 random lowercase hex chars and a NUL (getrandom; a clock-and-pid mix if it
 *  fails). */
void acr__random_hex_id(char out[ACR_TEST_ID_LEN + 1]);
/** A frame from routing id @id that is not registered: dropped and counted, logged at most once
 *  per id per 10 s, answered with `reconnect` at most once per id per 2 s. */
void acr__peer_unknown(acr_core_t *c, const char *id, const acr_msg_t *msg);
/** The id registered: forget it as an unknown peer. */
void acr__peer_known(acr_core_t *c, const char *id);
void acr__peer_free(acr_core_t *c);
/** An acrida_rejoin from registered worker @w: adopt, join, merge a stopped test, or refuse. */
void acr__adopt_on_rejoin(acr_core_t *c, acr_mworker_t *w, const acr_msg_t *msg);
/** Deferred joins that are due (the liveness tick): such workers join the run. */
void acr__adopt_joins_due(acr_core_t *c, double now);

/* quarantine.c */
/** acrida_stall from registered worker @w: quarantines the class (logged, an exception row, its
 *  users replaced by the other classes' in the test under way) or notes a further stall. */
void acr__quarantine_on_stall(acr_core_t *c, acr_mworker_t *w, const acr_msg_t *msg);
/** The class names a ramp may use: @in (@n names; NULL or 0: every class) without the quarantined
 *  ones, in *@out (allocated, names borrowed; free() it) and *@nout. Returns 0 (*@out NULL when
 *  nothing is quarantined: use @in), -EAGAIN when no class is left, -ENOMEM. */
int acr__quarantine_filter(const acr_core_t *c, const char *const *in, size_t n, const char ***out,
                           size_t *nout);
void acr__quarantine_free(acr_core_t *c);

/* aggregate.c */
int acr__agg_init(acr_core_t *c);
/** A stats report of registered worker @w: merged unless @w's rejoin was refused or it is a
 *  cumulative report without an accepted rejoin. Returns whether it was merged. */
bool acr__agg_on_stats(acr_core_t *c, acr_mworker_t *w, acr_msg_t *msg);
void acr__agg_on_exception(acr_core_t *c, const char *node_id, const acr_msg_t *msg);
/** Counts the lost last interval of a worker that ended without a final report (@why for the
 *  log), if it had one open. */
void acr__agg_close_gap(acr_core_t *c, acr_mworker_t *w, const char *why);
/** Test start: clears the stats and the per-worker sequence state. */
void acr__agg_test_start(acr_core_t *c);
/** The Aggregated histogram of the reports that arrived in the last 10 s (owned by @c, valid
 *  until the next call), or NULL before any report. */
const acr_hist_t *acr__agg_current(acr_core_t *c);
void acr__agg_free(acr_core_t *c);

#endif
