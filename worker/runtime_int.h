/*
 * Internals shared by the runtime's files: runtime.c (Lua state, acrida module, exceptions),
 * lua_http.c (the Lua binding of the HTTP client: self.client and the response object) and
 * users.c (the scheduler: user structs, coroutines, waits, graceful stop). Nothing outside those
 * three files and their unit tests includes this.
 */
#ifndef ACR_WORKER_RUNTIME_INT_H
#define ACR_WORKER_RUNTIME_INT_H

#include "common/list.h"
#include "common/util.h"
#include "worker/runtime.h"

#include <lua.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define ACR__ONSTOP_CAP_S 5.0 /**< on_stop bound when no stop timeout is set */
#define ACR__REAPER_MS 50     /**< how often the reaper enforces the stop deadlines */
/** Without a stop timeout, a request in flight at the stop gets this long before it is aborted
 *  and counted as aborted at stop (with one, the stop timeout is the grace). */
#define ACR__STOP_GRACE_S 10.0
/** A request that found no free file descriptor: its user gets the failed response after a
 *  backoff, from this doubling up to the max while it keeps failing that way (issue #12). */
#define ACR__NOFILE_BACKOFF_MIN_S 0.1
#define ACR__NOFILE_BACKOFF_MAX_S 2.0
/** Users woken from the ready queue per loop turn at most (a spawn of a million users starts them
 *  over many turns, so timers, reports and the master's frames are served in between). */
#define ACR__READY_BATCH 2000
/** A user's id is worker_index * ACR__USER_ID_STRIDE + n (n counts this worker's users from 1). */
#define ACR__USER_ID_STRIDE 1000000000LL
/** A user entering a wait or sleep this long releases its request buffers (issue #3); shorter
 *  waits keep them, so busy users allocate nothing per request. */
#define ACR__IDLE_TRIM_S 1.0
/** A user may use a leased row only while the worker heard from the master within this time
 *  (self-fencing, worker/pools.c explains the margin). */
#define ACR__LEASE_FENCE_S 2.0
/** How often a worker that may hold leases checks that it still hears from the master. */
#define ACR__FENCE_CHECK_MS 250
#define ACR__CLIENT_MT "acrida.client"
#define ACR__RESP_MT "acrida.response"
#define ACR__TASK_MT "acrida.task"

typedef enum {
    ACR__USER_STARTING = 0, /**< on_start running (or not yet resumed) */
    ACR__USER_RUNNING,      /**< in the task loop */
    ACR__USER_STOPPING,     /**< on_stop running */
    ACR__USER_DONE,         /**< gone; memory freed once its handles close */
} acr__user_state_t;

typedef enum {
    ACR__WAIT_NONE = 0, /**< running right now, or no coroutine */
    ACR__WAIT_START,    /**< a fresh coroutine queued for its first resume */
    ACR__WAIT_BETWEEN,  /**< wait_time between tasks (timer or ready queue) */
    ACR__WAIT_SLEEP,    /**< acrida.sleep inside a task (timer or ready queue) */
    ACR__WAIT_HTTP,     /**< a request in flight */
    ACR__WAIT_POOL,     /**< a pool request waits for the master's answer (worker/pools.c) */
    ACR__WAIT_BACKOFF,  /**< a failed response ("too many open files") held for the backoff */
} acr__wait_t;

typedef struct acr__pools acr__pools_t; /**< worker/pools.c */

typedef struct acr__user acr__user_t;

/** The handle acrida.spawn returns (userdata): g is NULL once the task is gone. */
typedef struct acr__ghandle {
    acr__user_t *g;
} acr__ghandle_t;

typedef struct acr__class {
    char *name;
    char *host;    /**< the class's host without trailing '/', or NULL */
    bool insecure; /**< class field insecure = true */
    int ref;       /**< registry ref of the class table */
    int mt_ref;    /**< registry ref of the instances' metatable */
    size_t running;
    acr_list_t users; /**< running users (acr__user_t.link), oldest first */
} acr__class_t;

/** The request being built / in flight; allocated on a user's first request and reused. */
typedef struct acr__req {
    acr_buf_t buf; /**< method \0 name \0 url \0 body, header names/values */
    acr_http_header_t *hdrs;
    size_t nhdrs, hdrcap;
    size_t method_off, name_off, url_off;
    int check_ref; /**< LUA_NOREF or the check function */
    bool catch_resp;
    bool norecord; /**< opts.record == false: no stats entry, no request event */
} acr__req_t;

/** The self.client userdata. */
typedef struct acr__client {
    acr__user_t *u; /**< NULL once the user is gone */
} acr__client_t;

/*
 * A simulated user, or (green == true) a background task of acrida.spawn: same coroutine, waits,
 * ready queue and HTTP machinery, but no class (cls NULL), no self, no on_stop; it lives in the
 * runtime's green list and is killed at the end of a test (acr_rt_stop_all) without waiting.
 */
struct acr__user {
    acr_rt_t *rt;
    acr__class_t *cls; /**< NULL for a green task */
    acr_list_t link;   /**< in its class's running list, the stopping list, the green list or the
                        *   dead list */
    acr_list_t ready;  /**< in the ready queue */
    lua_State *co;
    int co_ref, self_ref;
    acr__client_t *client;
    acr_http_session_t *session; /**< created on the first request */
    acr__req_t *rq;
    int *pend; /**< registry refs of catch_response responses awaiting a verdict */
    uint32_t npend, cappend;
    uint64_t rgen; /**< ready-queue generation */
    int64_t id;
    double deadline;       /**< monotonic s: graceful-stop or on_stop bound; 0 = none */
    double abort_at;       /**< monotonic s: a request still in flight then is aborted; 0 = none */
    double nofile_backoff; /**< s of the last "too many open files" backoff; 0 = none */
    uv_timer_t timer;
    uint8_t state, wait;
    uint8_t closes; /**< handles still closing */
    bool co_alive;  /**< the coroutine is suspended and may be resumed */
    bool timer_on;
    bool stopping_list;     /**< link is in the runtime's stopping list */
    bool stop_req;          /**< stop asked: no new task */
    bool hard;              /**< stop at the next request, wait or yield */
    bool abandon;           /**< set by a yielding C function: leave the coroutine */
    bool green;             /**< a task of acrida.spawn */
    bool started_ev;        /**< user_start fired: user_stop fires when it is gone */
    int nstart;             /**< green: values on the coroutine for its first resume */
    acr__ghandle_t *handle; /**< green: its Lua handle, NULL once collected */
    uint64_t pool_uid;      /**< its id in pool requests (worker/pools.c), 0 before the first */
    uint32_t nleases;       /**< rows of lease pools it holds (worker/pools.c) */
    double acquire_sent;    /**< monotonic s its pending acquire left, 0 when none */
    bool stalled;           /**< the watchdog interrupted it (its stall was reported) */
};

struct acr_rt {
    uv_loop_t *loop;
    lua_State *L;
    acr_stats_t *stats;
    acr_http_client_t *http;
    char *node_id;
    char *host;
    int64_t worker_index;
    double stop_timeout;
    acr__class_t *classes;
    size_t nclasses;
    bool loaded;
    int main_ref, stop_ref, onerror_ref, json_encode_ref, json_decode_ref;
    int spawn_main_ref, intaskset_ref; /**< the user prelude's spawn_main and in_taskset */
    acr_list_t green;                  /**< tasks of acrida.spawn (acr__user_t.link) */
    size_t ngreen;
    bool in_request_ev;          /**< a `request` listener runs: its own reports fire no event */
    char **tags, **exclude_tags; /**< the tag filter last applied (NULL-terminated or NULL) */
    acr__user_t *current;        /**< the user whose coroutine runs now */
    acr_list_t ready_q;          /**< users to resume at the next loop turn (acr__user_t.ready) */
    uint64_t rgen;               /**< ready-queue generation */
    acr_list_t dead;             /**< users whose handles are to be closed (acr__user_t.link) */
    uv_idle_t idle;
    uv_timer_t reaper;
    bool reaper_on;
    uv_timer_t fence_timer; /**< the periodic lease check (worker/pools.c), once leases exist */
    bool fence_on;
    acr_list_t stopping; /**< users stopping, graceful or in on_stop (acr__user_t.link) */
    size_t nrunning, nstopping;
    uint64_t next_seq;
    void (*stop_done)(acr_rt_t *rt, void *ud);
    void *stop_ud;
    acr__pools_t *pools;     /**< the data pools' state (worker/pools.c), owned by the Lua state */
    struct acr_watchdog *wd; /**< borrowed (acr_rt_config_t.watchdog), NULL = none */
    void (*on_stall)(const char *cls, const char *task, double secs, void *ud);
    void *stall_ud;
    /** a stall the hook interrupted, reported by acr__user_resume once the resume returned */
    bool stall_pending;
    char stall_cls[128], stall_task[160];
    double stall_secs;
    size_t mem_used, mem_cap; /**< bytes the Lua state holds; its cap (0: none), the allocator's */
    lua_Alloc base_alloc;     /**< LuaJIT's own allocator, which lua_alloc counts in front of */
    void *base_ud;
    bool mem_refused; /**< the allocator refused a block since the last nomem check */
    bool closing;
    int closes;
    void (*closed_cb)(void *ud);
    void *closed_ud;
};

/* runtime.c */
/** Records an exception row (message + traceback of @co at @level) and logs it. */
void acr__rt_exception(acr_rt_t *rt, lua_State *co, const char *msg, int level);
/** The user whose coroutine is @L, or raises a Lua error naming @what. */
acr__user_t *acr__rt_check_user(lua_State *L, const char *what);
int acr__rt_onerror(lua_State *L);
/** Fires the `request` event on @L (when it has listeners) for a recorded request or
 *  measurement: {request_type, name, response_time (ms, nil when none), response_length,
 *  exception (nil or the error text), url, status}; @url NULL and @status < 0 leave them nil. */
void acr__rt_request_event(acr_rt_t *rt, lua_State *L, const char *type, const char *name,
                           bool has_rt, double ms, double len, const char *exc, const char *url,
                           int status);
/** Fires user_start / user_stop with @u's self on @L (when they have listeners). */
void acr__rt_user_event(acr__user_t *u, lua_State *L, const char *name);
/** Frees the runtime once it is closing and its last handle has closed (users.c calls it from
 *  each close callback); no-op before. Runs the acr_rt_close callback last. */
void acr__rt_release(acr_rt_t *rt);

/* lua_http.c */
/** Registers the client and response metatables. */
void acr__lua_http_open(acr_rt_t *rt);
/** Pushes a new self.client userdata for @u (stored in u->client). */
void acr__lua_http_push_client(lua_State *L, acr__user_t *u);
/** Records the default verdict of every unresolved catch_response response of @u. */
void acr__lua_http_resolve_pending(acr__user_t *u);
void acr__lua_http_free_req(acr__user_t *u);
/** Releases what @u keeps for its next request (request buffers, the session's buffers); the
 *  keep-alive connections and cookies stay. Called when the user starts a long wait. */
void acr__lua_http_trim(acr__user_t *u);
/** Aborts @u's request in flight (at the stop, past its grace): counted as aborted at stop on its
 *  entry (not a request, not a failure), the session cancelled without a callback. The caller
 *  moves the user on. No-op without a request in flight. */
void acr__lua_http_abort(acr__user_t *u);

/* pools.c */
/** Installs acrida.pool (the worker's) and the pools' state in rt->L. Returns 0. */
int acr__pools_open(acr_rt_t *rt);
/** @u's coroutine is dropped: answers to its pending requests are ignored. */
void acr__pools_user_left(acr__user_t *u);
/** @u is gone: tells the master to return its rows and drop its waits (release_user). */
void acr__pools_user_done(acr__user_t *u);
/** Called before any user is resumed: when the master has been silent for more than
 *  ACR__LEASE_FENCE_S, every user holding a lease is fenced (acr__users_fence) first. */
void acr__pools_check(acr_rt_t *rt);
/** Whether acr__users_fence must kill @u: it holds a lease, or (@gap: the first message after a
 *  silence is being handled) it waits for an acquire sent more than ACR__LEASE_FENCE_S ago. */
bool acr__pools_fence_due(const acr__user_t *u, double now, bool gap);

/* users.c */
/** Initialises the scheduler's lists and handles. 0 or a libuv error. */
int acr__users_init(acr_rt_t *rt);
/** Starts or stops users of class @c until @count run (acr_rt_set_class_users). 0 or -ENOMEM. */
int acr__users_set_count(acr_rt_t *rt, acr__class_t *c, size_t count);
/** Asks every running user to stop; rt->stop_done runs once all are gone (acr_rt_stop_all). */
void acr__users_stop_all(acr_rt_t *rt);
/** Drops every user without on_stop and closes the scheduler's handles; the runtime is freed
 *  (acr__rt_release) after the last close callback. */
void acr__users_close(acr_rt_t *rt);
/** Schedules @u to be resumed after @seconds (0: at the next loop turn). */
void acr__user_wait(acr__user_t *u, double seconds, acr__wait_t why);
/** @u's request failed with "too many open files" and its response is on its coroutine: resumed
 *  with it after a backoff (ACR__NOFILE_BACKOFF_MIN_S doubling to _MAX_S while that repeats). */
void acr__user_backoff(acr__user_t *u);
/** Resumes the coroutine with @nargs values already pushed on it. */
void acr__user_resume(acr__user_t *u, int nargs);
/** Leaves the current coroutine: on to on_stop, or gone when on_stop already ran. */
void acr__user_leave(acr__user_t *u);
/** True when @u must stop at its next request, wait or yield: stopped without a stop timeout,
 *  or past its deadline (then marked hard). */
bool acr__user_stop_due(acr__user_t *u);
/**
 * Self-fencing: kills every user (not the one running now) for which acr__pools_fence_due(u,
 * @now, @gap) holds, without on_stop and abandoning its request in flight, records an exception
 * row "lease lost: no word from the master for @silent_s s; user <class> restarted" for each and
 * starts a fresh user of the same class in the place of each running one. Returns how many.
 */
size_t acr__users_fence(acr_rt_t *rt, double silent_s, double now, bool gap);
/** acrida.spawn(fn, ...): starts a green task at the next loop turn; returns its handle. */
int acr__users_l_spawn(lua_State *L);

#endif
