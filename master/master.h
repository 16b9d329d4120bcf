/*
 * acrida-master internals shared by the files of master/: the context every function receives
 * (acr_master_t: one per process, owned by main.c), the worker registry records, the run state
 * machine and the cross-file entry points (acr__ prefix). One libuv loop, no threads.
 *
 * Roles: registry.c (workers, message intake, liveness), dispatch.c (Locust's UsersDispatcher),
 * runner.c (run state machine, spawn/stop), aggregate.c (stats merge, report sequence numbers),
 * headless.c (console loop and end-of-run outputs), local.c (local worker processes), main.c
 * (wiring and exit code); the options are common/cli.c's. Error convention: 0 or a negative errno;
 * human-readable detail goes to the log or to @err.
 */
#ifndef ACR_MASTER_H
#define ACR_MASTER_H

#include "common/cli.h"
#include "master/report.h"
#include "common/scenario.h"
#include "common/stats.h"
#include "common/util.h"
#include "master/dispatch.h"
#include "proto/msg.h"
#include "proto/zchan.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

/** acrida-master's exit codes (docs/cli.md). When several apply, the first in this order wins:
 *  USAGE, FATAL, INCOMPLETE, then --exit-code-on-error for failures, then OK. */
typedef enum {
    ACR_EXIT_OK = 0,
    ACR_EXIT_FATAL = 1,      /**< no usable run: workers never came, scenario or port failed */
    ACR_EXIT_USAGE = 2,      /**< bad option or config value */
    ACR_EXIT_INCOMPLETE = 4, /**< report intervals lost with dead workers (--allow-lost-reports) */
} acr_master_exit_t;

/* ---- run state machine (runner.c) ---- */

typedef enum {
    ACR_RUN_READY = 0,
    ACR_RUN_SPAWNING,
    ACR_RUN_RUNNING,
    ACR_RUN_STOPPING,
    ACR_RUN_STOPPED,
    ACR_RUN__COUNT
} acr_run_state_t;

/** "ready", "spawning", "running", "stopping", "stopped". */
const char *acr_run_state_name(acr_run_state_t s);
/** Whether @from -> @to is a legal transition (a state to itself is not a transition). */
bool acr_run_transition_legal(acr_run_state_t from, acr_run_state_t to);

/* ---- workers (registry.c) ---- */

typedef enum {
    ACR_WORKER_READY = 0,
    ACR_WORKER_SPAWNING,
    ACR_WORKER_RUNNING,
    ACR_WORKER_STOPPED,
    ACR_WORKER_MISSING,
} acr_worker_state_t;

const char *acr_worker_state_name(acr_worker_state_t s);

/** One registered worker. Owned by the registry; freed when removed or at exit. */
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
    acr_class_count_t *classes; /**< last reported user_classes_count (owned) */
    size_t nclasses;
    /* reports (aggregate.c) */
    int64_t last_seq; /**< -1 = none yet in this incarnation */
    bool gap_open;    /**< reported during a test and no final report yet */
    /* spawn bookkeeping (runner.c) */
    uint64_t spawns_sent, spawns_done;
    /* stop / quit bookkeeping */
    bool stop_pending, stopped_msg, final_seen, quit_pending;
    double stopped_at;        /**< monotonic s of client_stopped */
    bool stopped_since_ready; /**< client_stopped since its last client_ready */
} acr_mworker_t;

/* ---- the context ---- */

typedef enum {
    ACR_HL_WAIT_WORKERS = 0,
    ACR_HL_TEST,
    ACR_HL_QUITTING,
    ACR_HL_DONE,
} acr_hl_phase_t;

typedef struct acr_local acr_local_t;

typedef struct acr_master {
    uv_loop_t *loop;
    acr_cli_opts_t *opts;
    acr_user_class_t *classes;
    size_t nclasses;

    acr_zchan_t *chan;
    int bound_port;
    acr_buf_t sendbuf;

    /* registry */
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

    /* runner */
    acr_run_state_t state;
    acr_dispatch_t *dispatch;
    long target_users;
    double spawn_rate;
    double last_spawn_ts;
    bool ramp_sent;
    double test_start; /**< epoch s of the test start, 0 before */
    double test_start_mono;
    char test_id[32];
    uv_timer_t ramp_timer, settle_timer, stop_timer;
    bool settle_expired;
    acr_class_count_t *spawn_classes; /**< scratch, nclasses entries */
    /** Called when the run state reaches stopped (headless.c sets it; NULL in tests). */
    void (*on_stopped)(struct acr_master *m);

    /* the scenario shipped to acrida workers after their ack (workers without -f load it) */
    char *scenario_src;
    size_t scenario_len;
    const char *scenario_name; /**< base name of opts->scenario */

    /* aggregate */
    acr_stats_t *stats;
    uint64_t lost_reports;
    uint64_t reports_merged; /**< stats reports merged since the test started */
    /** The Aggregated histogram per second of arrival, for the "current" (10 s) percentiles:
     *  ACR_AGG_WINDOW slots plus one scratch histogram, allocated on the first report. */
    struct acr_agg_slot {
        int64_t sec;
        acr_hist_t hist;
    } * window;
    acr_hist_t *window_sum;

    /* headless */
    acr_hl_phase_t phase;
    /** Worker rows as they were when the quit began (workers leave the registry when they
     *  quit); the final JSON lists them. Owned: acr__headless_free_snapshot(). */
    acr_report_worker_t *final_workers;
    size_t nfinal_workers;
    uv_timer_t wait_timer, console_timer, history_timer, runtime_timer, quit_timer;
    uv_signal_t sigint, sigterm;
    int signals;
    double wait_start;
    FILE *history_csv;
    bool gave_up;
    int exit_code;

    /* local workers */
    acr_local_t *local;
    bool shutting_down;
} acr_master_t;

/* registry.c */
/** The zchan receive callback: decodes and routes every frame (@ud is the acr_master_t). */
void acr__registry_on_frame(acr_zchan_t *ch, const char *peer, size_t peer_len, const void *data,
                            size_t len, void *ud);
acr_mworker_t *acr__registry_find(acr_master_t *m, const char *id);
/** Workers that are not missing. */
size_t acr__registry_live(const acr_master_t *m);
/** Workers in state ready (what --expect-workers counts). */
size_t acr__registry_ready(const acr_master_t *m);
/** Sum of the live workers' reported users. */
long acr__registry_user_count(const acr_master_t *m);
/** Starts the 1 s liveness/heartbeat timer. */
int acr__registry_start(acr_master_t *m);
/** Replaces the worker's user_classes_count with a copy of @c (n entries). */
void acr__worker_set_classes(acr_mworker_t *w, const acr_class_count_t *c, size_t n);
/** Sends m->sendbuf (one encoded payload) to worker @id; failures are logged at debug. */
void acr__registry_send_buf(acr_master_t *m, const char *id);
/** Sends a nil-data message of @type to one worker. */
void acr__registry_send_nil(acr_master_t *m, const char *type, const char *id);
void acr__registry_free(acr_master_t *m);

/* runner.c */
int acr__run_set_state(acr_master_t *m, acr_run_state_t to);
/** A test is under way: spawning, running or stopping (its reports count). */
bool acr__run_active(const acr_master_t *m);
/** Starts (or re-targets) a test: @users at @rate users/s over the live workers. */
int acr__run_start(acr_master_t *m, long users, double rate);
/** Graceful stop: `stop` to every worker, then wait for their final reports and client_stopped. */
void acr__run_stop(acr_master_t *m);
/** The set of live workers changed: rebalance and re-send spawns when a test runs. */
void acr__run_workers_changed(acr_master_t *m, acr_mworker_t *added, const char *removed_id);
/** A worker reported spawning_complete / answered the stop: re-evaluate the waits. */
void acr__run_check(acr_master_t *m);
int acr__run_init(acr_master_t *m);
void acr__run_free(acr_master_t *m);

/* aggregate.c */
void acr__agg_on_stats(acr_master_t *m, acr_mworker_t *w, const char *node_id, acr_msg_t *msg);
void acr__agg_on_exception(acr_master_t *m, const char *node_id, const acr_msg_t *msg);
/** Counts the lost last interval of a worker that ended without a final report (@why for the
 *  log), if it had one open. */
void acr__agg_close_gap(acr_master_t *m, acr_mworker_t *w, const char *why);
/** Test start: clears the stats and the per-worker sequence state. */
void acr__agg_test_start(acr_master_t *m);
/** The Aggregated histogram of the reports that arrived in the last 10 s (owned by @m, valid
 *  until the next call), or NULL before any report. */
const acr_hist_t *acr__agg_current(acr_master_t *m);
void acr__agg_free(acr_master_t *m);

/* headless.c */
int acr__headless_start(acr_master_t *m);
/** Called by the registry after every handled message (waits re-evaluated). */
void acr__headless_check(acr_master_t *m);
/** The last worker quit while a test ran. */
void acr__headless_last_worker_quit(acr_master_t *m);
/** Frees the workers snapshot taken for the final report. */
void acr__headless_free_snapshot(acr_master_t *m);

/* local.c */
/** Starts @n local workers for the bound port. Returns 0 or a negative errno (logged). */
int acr__local_start(acr_master_t *m, int n, const char *argv0);
/** Lets the live local workers exit on their own (2 s), then SIGTERM, then SIGKILL after
 *  @grace_s; handles close when they exit. */
void acr__local_stop(acr_master_t *m, double grace_s);
size_t acr__local_alive(const acr_master_t *m);
/** How many local workers have exited (0 without --local-workers). */
size_t acr__local_exited(const acr_master_t *m);
void acr__local_free(acr_master_t *m);

/** Begins the shutdown: closes the channel, timers and signals and stops the local workers, so
 *  the loop can end. */
void acr__master_shutdown(acr_master_t *m);

#endif
