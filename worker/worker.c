/*
 * acrida-worker's protocol side (Locust 2.x's worker role and acrida's extensions, as
 * proto/PROTOCOL.md describes them): the DEALER to the master, the worker state machine, the
 * heartbeat, stats and client_ready timers, and the glue between spawn/stop/quit and the
 * runtime's users.
 *
 * States: ready -> spawning -> running -> stopping -> ready; any -> quitting on SIGTERM (and on
 * quit with --exit-on-quit). The worker is a daemon: after a test, a master's quit or the loss of
 * its master it goes back to ready and waits for the next one (client_ready again, with backoff).
 * Master loss: an acrida master heartbeats every second; after cfg->master_timeout of silence the
 * users stop gracefully (stopping -> orphaned) and their results are kept: the delta stays unsent
 * and every delta sent during the test is also merged into a cumulative copy (w->cum). When an ack
 * comes from a new master instance while a test is not fully reported (spawning, running,
 * orphaned), the worker re-registers it: acrida_rejoin, then the cumulative report
 * (proto/PROTOCOL.md, "acrida_rejoin"). While not acked (no master, or waiting for the answer to
 * a client_ready) no heartbeat or report is sent, so nothing stale piles up for the next master
 * and no delta reaches a master before the rejoin that gives it its baseline.
 * The scenario's events fire on the runtime's Lua state: test_start at the first spawn of a test
 * (not at each ramp step), spawning_complete once per ramp when the master says the cluster's ramp
 * reached its target (acrida_spawning_complete; after each spawn with a Locust master), test_stop
 * once the users of a stop or quit are gone, report_to_master before each report (the fields its
 * listeners add travel in the report), quitting at shutdown. Listener and message handler errors
 * become exception rows. Custom messages from the master go to the handlers of
 * acrida.runner:register_message; acrida.runner:send_message sends to the master.
 * A stop (or quit) is graceful: acr_rt_stop_all() lets in-flight requests complete and be
 * recorded; only when every user is gone is the final report (acrida_final) sent, so the master's
 * total equals what the target served.
 */
#include "worker/worker.h"

#include "common/bundle.h"
#include "common/events.h"
#include "common/log.h"
#include "common/lua_value.h"
#include "common/scenario.h"
#include "common/stats.h"
#include "common/util.h"
#include "proto/msg.h"
#include "proto/proto.h"
#include "proto/zchan.h"
#include "worker/http/http.h"
#include "worker/pools.h"
#include "worker/runtime.h"
#include "worker/watchdog.h"

#include <errno.h>
#include <fcntl.h>
#include <lua.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#define HEARTBEAT_MS 1000
#define REPORT_MS 3000
#define READY_RETRY_MS 5000 /* first client_ready retry; doubled up to READY_RETRY_MAX_MS */
#define READY_RETRY_MAX_MS 60000
#define MASTER_TIMEOUT_S 10.0 /* when the config leaves it 0 */
#define QUIT_FLUSH_MS 300     /* lets the final frames leave before the LINGER-0 close */

typedef enum {
    WS_READY = 0,
    WS_SPAWNING,
    WS_RUNNING,
    WS_STOPPING,
    WS_QUITTING,
    WS_DONE,
    WS_ORPHANED, /**< users stopped after master loss; results not delivered in a final report */
} ws_t;

static const char *const ws_names[] = {"ready",    "spawning", "running", "stopping",
                                       "quitting", "done",     "orphaned"};

typedef struct worker {
    uv_loop_t *loop;
    const acr_worker_config_t *cfg;
    char node_id[ACR_PROTO_NODE_ID_MAX + 1];
    acr_zchan_t *ch;
    acr_stats_t *stats;
    acr_http_client_t *http;
    acr_rt_t *rt;
    bool rt_loaded;
    char *scenario_src;    /**< the master-shipped source now loaded (to skip re-sends) */
    bool master_local;     /**< --master-host resolves to loopback addresses only */
    bool refused_scenario; /**< a keyless network master's scenario was refused (then quits) */
    size_t scenario_len;
    /** The scenario bundle (common/bundle.h): the one being received (its reassembly and main
     * path), the private directory of the one loaded (removed when replaced and at exit), and the
     * hash of the scenario this worker runs (a shipped bundle's, or its own -f's). */
    acr_bundle_rx_t bundle_rx;
    char *rx_main;
    char *bundle_dir;
    char scenario_sha[65];
    acr_class_count_t *counts;
    char *host; /**< the last spawn's host, for the events' env */
    /** the last spawn's tags / exclude_tags (NULL-terminated, taken from the message; NULL =
     *  none) and stop_timeout (< 0: nil), for env.options */
    char **tags, **exclude_tags;
    double stop_timeout;
    bool test_started; /**< test_start fired and test_stop not yet */
    /** a test whose results are not all in a delivered final report (first spawn -> final) */
    bool test_active;
    acr_stats_t *cum;    /**< every delta of the active test, for a re-registration */
    bool rejoin_pending; /**< a new master acked while the users were stopping */
    bool quit_stop;      /**< the users stop because the master quit: final report anyway */
    char test_id[ACR_MSG_ID_HEX + 1]; /**< the spawns' acrida_test_id ("" none) */
    /** epoch s of the first spawn of test_id here (0: none), sent in a rejoin */
    double test_started_at;
    char instance[ACR_MSG_ID_HEX + 1]; /**< the instance of the master last acked */
    unsigned ready_tries;
    uint64_t ready_delay_ms;
    bool quitting_fired;
    ws_t state;
    bool acked, timers_on;
    bool master_acrida; /**< the ack carried acrida's capabilities: pools work */
    int64_t index;
    double last_spawn_ts;
    int64_t seq;
    acr_buf_t out;
    double last_cpu_s, last_wall_s, cpu_pct;
    uint64_t malformed;
    int exit_code;
    int closing; /**< handles and objects still closing */
    uv_timer_t ready_timer, hb_timer, stats_timer, exit_timer, watch_timer;
    acr_watchdog_t *wd; /**< the stall watchdog, which also takes SIGTERM/SIGINT */
} worker_t;

static void set_state(worker_t *w, ws_t to)
{
    if (w->state == to) return;
    ACR_DEBUG("worker state: %s -> %s", ws_names[w->state], ws_names[to]);
    w->state = to;
}

static const char *hb_state(const worker_t *w)
{
    switch (w->state) {
    case WS_READY:
        return "ready";
    case WS_SPAWNING:
        return "spawning";
    case WS_RUNNING:
        return "running";
    case WS_ORPHANED:
        return "stopped";
    default:
        return "stopping";
    }
}

static int send_out(worker_t *w, const char *what)
{
    if (!w->ch) return -ENOTCONN;
    int rc = acr_zchan_send(w->ch, NULL, 0, w->out.data, w->out.len);
    if (rc < 0) ACR_WARN("cannot send %s to the master: %s", what, strerror(-rc));
    return rc;
}

static void send_nil(worker_t *w, const char *type)
{
    acr_buf_reset(&w->out);
    if (acr_msg_encode_nil(&w->out, type, w->node_id) == 0) send_out(w, type);
}

static void send_client_ready(worker_t *w)
{
    acr_buf_reset(&w->out);
    if (acr_msg_encode_client_ready(&w->out, "acrida/" ACR_VERSION, w->node_id) == 0)
        send_out(w, "client_ready");
}

static void send_exception(worker_t *w, const char *msg, const char *tb, uint64_t count)
{
    acr_buf_reset(&w->out);
    if (acr_msg_encode_exception(&w->out, msg, tb, count, w->node_id) == 0)
        send_out(w, "exception");
}

static size_t fill_counts(worker_t *w, int64_t *users)
{
    *users = 0;
    if (!w->rt_loaded) return 0;
    acr_rt_class_counts(w->rt, w->counts);
    *users = (int64_t)acr_rt_user_count(w->rt);
    return acr_rt_nclasses(w->rt);
}

/* ---- the scenario's events ---- */

static void listener_error(const char *msg, const char *tb, void *ud)
{
    worker_t *w = ud;
    ACR_WARN("error in a scenario listener or message handler: %s", ACR_ESC_LONG(msg));
    if (w->stats && acr_stats_add_exception(w->stats, msg, tb, w->node_id, 1) < 0)
        ACR_ERROR("out of memory recording an exception");
}

static lua_State *scenario_lua(worker_t *w)
{
    return w->rt_loaded && w->rt ? acr_rt_lua(w->rt) : NULL;
}

static void free_list(char **l)
{
    for (size_t i = 0; l && l[i]; i++) free(l[i]);
    free(l);
}

static void set_list(lua_State *L, const char *key, char *const *list)
{
    lua_newtable(L);
    for (int i = 0; list && list[i]; i++) {
        lua_pushstring(L, list[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, key);
}

/* env.options: what the last spawn carried (host, tags, exclude_tags, stop_timeout). */
static void push_options(worker_t *w, lua_State *L)
{
    lua_createtable(L, 0, 4);
    if (w->host) {
        lua_pushstring(L, w->host);
        lua_setfield(L, -2, "host");
    }
    set_list(L, "tags", w->tags);
    set_list(L, "exclude_tags", w->exclude_tags);
    if (w->stop_timeout >= 0) {
        lua_pushnumber(L, w->stop_timeout);
        lua_setfield(L, -2, "stop_timeout");
    }
}

/* Pushes the events' env: role, host, user_count, worker_index, options. */
static void push_env(worker_t *w, lua_State *L)
{
    lua_createtable(L, 0, 5);
    push_options(w, L);
    lua_setfield(L, -2, "options");
    lua_pushliteral(L, "worker");
    lua_setfield(L, -2, "role");
    if (w->host) {
        lua_pushstring(L, w->host);
        lua_setfield(L, -2, "host");
    }
    lua_pushnumber(L, (double)acr_rt_user_count(w->rt));
    lua_setfield(L, -2, "user_count");
    if (w->index >= 0) {
        lua_pushnumber(L, (double)w->index);
        lua_setfield(L, -2, "worker_index");
    }
}

/* Fires @name with the env as its argument (when it has listeners). */
static void fire_env(worker_t *w, const char *name)
{
    lua_State *L = scenario_lua(w);
    if (!L || !acr_events_has_listeners(L, name)) return;
    push_env(w, L);
    acr_events_fire(L, name, 1, listener_error, w);
}

static void fire_test_stop(worker_t *w)
{
    if (!w->test_started) return;
    w->test_started = false;
    fire_env(w, "test_stop");
}

static void fire_quitting(worker_t *w)
{
    if (w->quitting_fired) return;
    w->quitting_fired = true;
    fire_env(w, "quitting");
}

/* report_to_master(data): the fields the listeners add to @data, as map pairs in @extra. */
static uint32_t report_extra(worker_t *w, acr_buf_t *extra)
{
    lua_State *L = scenario_lua(w);
    if (!L || !acr_events_has_listeners(L, "report_to_master")) return 0;
    char err[512];
    uint32_t n = 0;
    int top = lua_gettop(L);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    acr_events_fire(L, "report_to_master", 1, listener_error, w);
    if (acr_lua_value_encode_pairs(L, -1, "data", acr_msg_stats_keys, extra, &n, err, sizeof err) <
        0) {
        char msg[600];
        snprintf(msg, sizeof msg, "report_to_master: %s", err);
        listener_error(msg, "", w);
        acr_buf_reset(extra);
        n = 0;
    }
    lua_settop(L, top);
    return n;
}

/* acrida.runner:send_message on a worker: to the master only. */
static int send_custom(const char *type, const void *data, size_t len, const char *node_id,
                       void *ud, char *err, size_t errlen)
{
    worker_t *w = ud;
    if (node_id) {
        snprintf(err, errlen, "a worker sends to the master only: leave node_id out");
        return -EINVAL;
    }
    if (!w->ch) {
        snprintf(err, errlen, "not connected to the master");
        return -ENOTCONN;
    }
    acr_buf_t b = {0};
    int rc = acr_msg_encode_custom(&b, type, data, len, w->node_id);
    if (rc == 0) rc = acr_zchan_send(w->ch, NULL, 0, b.data, b.len);
    acr_buf_free(&b);
    if (rc < 0) {
        snprintf(err, errlen, "cannot send to the master: %s", strerror(-rc));
        return rc == -EINVAL ? -EIO : rc;
    }
    return 1;
}

/* A pool request of the runtime (worker/pools.c) to the master: acrida masters only. */
static int send_pool(const void *frame, size_t len, void *ud)
{
    worker_t *w = ud;
    if (!w->ch || !w->acked) return -ENOTCONN;
    if (!w->master_acrida) return -ENOTSUP;
    return acr_zchan_send(w->ch, NULL, 0, frame, len);
}

static void on_custom(worker_t *w, const acr_msg_t *m)
{
    lua_State *L = scenario_lua(w);
    char err[256];
    if (!L) {
        ACR_WARN("message '%s' from the master before any scenario was loaded; ignored",
                 ACR_ESC(m->type_name));
        return;
    }
    if (acr_messages_dispatch(L, m->type_name, m->data, m->data_len, m->node_id, listener_error, w,
                              err, sizeof err) < 0)
        ACR_WARN("message '%s' from the master dropped: %s", ACR_ESC(m->type_name),
                 ACR_ESC_LONG(err));
}

/* The delta joins the active test's cumulative copy (before it is reset or re-registered). */
static void keep_cumulative(worker_t *w)
{
    if (!w->test_active) return;
    if (!w->cum) w->cum = acr_stats_new(acr_now());
    if (!w->cum || acr_stats_merge(w->cum, w->stats) < 0)
        ACR_ERROR("out of memory keeping the test's cumulative stats");
}

/* Exceptions of the interval, then the stats delta; then the delta is reset. */
static void send_report(worker_t *w, bool final)
{
    acr_buf_t extra = {0};
    uint32_t nextra = report_extra(w, &extra);
    size_t nexc;
    acr_stats_exception_t *const *ex = acr_stats_exceptions(w->stats, &nexc);
    for (size_t i = 0; i < nexc; i++) send_exception(w, ex[i]->msg, ex[i]->traceback, ex[i]->count);
    int64_t users;
    size_t n = fill_counts(w, &users);
    acr_buf_reset(&w->out);
    int rc = acr_msg_encode_stats_extra(&w->out, w->stats, w->counts, n, users, ++w->seq, final,
                                        extra.data, extra.len, nextra, w->node_id);
    acr_buf_free(&extra);
    if (rc == 0) {
        send_out(w, "stats");
    } else {
        ACR_ERROR("cannot encode the stats report: %s", strerror(-rc));
    }
    keep_cumulative(w);
    acr_stats_reset(w->stats, acr_now());
}

static void send_spawning_complete(worker_t *w)
{
    int64_t users;
    size_t n = fill_counts(w, &users);
    acr_buf_reset(&w->out);
    if (acr_msg_encode_spawning_complete(&w->out, w->counts, n, users, w->node_id) == 0)
        send_out(w, "spawning_complete");
}

/* ---- resource usage for heartbeats ---- */

static double cpu_seconds(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = 0;
    if (!f) return 0;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2) resident = 0;
    fclose(f);
    return (int64_t)resident * (int64_t)sysconf(_SC_PAGESIZE);
}

/* The soft RLIMIT_NOFILE (worker/main.c raised it to the hard limit): the master's estimate of the
 * connections this worker can open (heartbeat acrida_nofile). 0 when unknown. */
static int64_t nofile_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
    return rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > INT64_MAX ? INT64_MAX
                                                                   : (int64_t)rl.rlim_cur;
}

static void hb_cb(uv_timer_t *t)
{
    worker_t *w = acr_container_of(t, worker_t, hb_timer);
    /* An overloaded loop (a million users) can miss the ZeroMQ descriptor's edge: frames the
     * master sent would wait until the master-loss timeout. Checked every second. */
    if (w->ch) acr_zchan_kick(w->ch);
    if (!w->acked) return; /* no master: nothing to pile up for the next one */
    double cpu = cpu_seconds(), wall = acr_mono_s();
    if (wall > w->last_wall_s) w->cpu_pct = (cpu - w->last_cpu_s) / (wall - w->last_wall_s) * 100;
    w->last_cpu_s = cpu;
    w->last_wall_s = wall;
    acr_buf_reset(&w->out);
    if (acr_msg_encode_heartbeat(&w->out, hb_state(w), w->cpu_pct, rss_bytes(), nofile_limit(),
                                 w->node_id) == 0)
        send_out(w, "heartbeat");
}

static void stats_cb(uv_timer_t *t)
{
    worker_t *w = acr_container_of(t, worker_t, stats_timer);
    if (!w->acked) return; /* the delta is held until a master acks (and a rejoin) */
    send_report(w, false);
}

static void ready_cb(uv_timer_t *t)
{
    worker_t *w = acr_container_of(t, worker_t, ready_timer);
    if (w->acked) return;
    w->ready_tries++;
    uint64_t next =
        w->ready_delay_ms * 2 < READY_RETRY_MAX_MS ? w->ready_delay_ms * 2 : READY_RETRY_MAX_MS;
    if (w->ready_tries <= 4 || w->ready_tries % 60 == 0)
        ACR_INFO("no ack from the master yet; sending client_ready again (next in %.0f s)%s",
                 (double)next / 1000,
                 w->cfg->keys
                     ? "; is the master using the same --cluster-key?"
                     : "; a master started with --cluster-key accepts only workers with it");
    send_client_ready(w);
    w->ready_delay_ms = next;
    uv_timer_start(t, ready_cb, w->ready_delay_ms, 0);
}

/* Waits for an ack: client_ready now (@now) and again with backoff until one comes. */
static void await_ack(worker_t *w, bool now)
{
    w->acked = false;
    w->ready_tries = 0;
    w->ready_delay_ms = READY_RETRY_MS;
    if (now) send_client_ready(w);
    uv_timer_start(&w->ready_timer, ready_cb, w->ready_delay_ms, 0);
}

/* ---- shutdown ---- */

static void closed_one(worker_t *w)
{
    if (--w->closing == 0) ACR_DEBUG("worker closed");
}

static void handle_closed(uv_handle_t *h)
{
    closed_one(h->data);
}

static void chan_closed(void *ud)
{
    closed_one(ud);
}

static void rt_closed(void *ud)
{
    worker_t *w = ud;
    w->rt = NULL;
    if (w->http) acr_http_client_free(w->http);
    w->http = NULL;
    closed_one(w);
}

static void close_all(worker_t *w)
{
    uv_handle_t *hs[] = {(uv_handle_t *)&w->ready_timer, (uv_handle_t *)&w->hb_timer,
                         (uv_handle_t *)&w->stats_timer, (uv_handle_t *)&w->exit_timer,
                         (uv_handle_t *)&w->watch_timer};
    for (size_t i = 0; i < ACR_ARRAY_SIZE(hs); i++) {
        /* a handle whose init failed (or never ran) is still zeroed: UV_UNKNOWN_HANDLE */
        if (uv_handle_get_type(hs[i]) == UV_UNKNOWN_HANDLE || uv_is_closing(hs[i])) continue;
        hs[i]->data = w;
        w->closing++;
        uv_close(hs[i], handle_closed);
    }
    if (w->wd) {
        w->closing++;
        acr_watchdog_close(w->wd, chan_closed, w);
    }
    if (w->ch) {
        w->closing++;
        acr_zchan_close(w->ch, chan_closed, w);
        w->ch = NULL;
    }
    if (w->rt) {
        w->closing++;
        acr_rt_close(w->rt, rt_closed, w);
    } else if (w->http) {
        acr_http_client_free(w->http);
        w->http = NULL;
    }
    set_state(w, WS_DONE);
}

static void exit_cb(uv_timer_t *t)
{
    close_all(acr_container_of(t, worker_t, exit_timer));
}

/* The final report and `quit` are out; close once they had time to leave. */
static void finish_quit(worker_t *w)
{
    if (w->state == WS_DONE || uv_is_active((uv_handle_t *)&w->exit_timer)) return;
    fire_test_stop(w);
    fire_quitting(w);
    send_report(w, true);
    send_nil(w, "quit");
    uv_timer_stop(&w->hb_timer);
    uv_timer_stop(&w->stats_timer);
    uv_timer_stop(&w->ready_timer);
    uv_timer_stop(&w->watch_timer);
    uv_timer_start(&w->exit_timer, exit_cb, QUIT_FLUSH_MS, 0);
}

static void quit_users_stopped(acr_rt_t *rt, void *ud)
{
    (void)rt;
    finish_quit(ud);
}

static void begin_quit(worker_t *w, const char *why)
{
    if (w->state == WS_QUITTING || w->state == WS_DONE) {
        ACR_DEBUG("%s while quitting: ignored", why);
        return;
    }
    ACR_INFO("%s: stopping users and quitting", why);
    set_state(w, WS_QUITTING);
    if (w->rt_loaded && acr_rt_users_alive(w->rt) > 0) {
        acr_rt_stop_all(w->rt, quit_users_stopped, w);
    } else {
        finish_quit(w);
    }
}

/* SIGTERM/SIGINT, taken by the watchdog's thread and handed to the loop (worker/watchdog.h). */
static void signal_cb(int signum, void *ud)
{
    worker_t *w = ud;
    if (w->state == WS_QUITTING) { /* a second signal: do not wait for the users */
        ACR_WARN("second %s: quitting without waiting for users", strsignal(signum));
        finish_quit(w); /* the users left are dropped when the runtime closes */
        return;
    }
    begin_quit(w, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* ---- protocol ---- */

/* The test is fully reported: its cumulative copy is dropped. */
static void end_test(worker_t *w)
{
    w->test_active = false;
    w->rejoin_pending = false;
    if (w->cum) acr_stats_clear(w->cum, acr_now());
}

/* acrida_rejoin and the cumulative report to a new master instance (proto/PROTOCOL.md), in
 * @state "spawning", "running" or "stopped" (then the test is over here: ready again). */
static void send_rejoin(worker_t *w, const char *state)
{
    int64_t users;
    size_t n = fill_counts(w, &users);
    keep_cumulative(w); /* the unsent delta is part of the cumulative report */
    if (!w->cum) return;
    size_t nexc;
    acr_stats_exception_t *const *ex = acr_stats_exceptions(w->stats, &nexc);
    acr_msg_rejoin_t r = {.test_id = w->test_id,
                          .state = state,
                          .classes = w->counts,
                          .nclasses = n,
                          .user_count = users,
                          .scenario_sha256 = w->scenario_sha,
                          .host = w->host,
                          .stop_timeout = w->stop_timeout,
                          .tags = (const char *const *)w->tags,
                          .exclude_tags = (const char *const *)w->exclude_tags,
                          .last_seq = w->seq,
                          .started_at = w->test_started_at};
    bool stopped = strcmp(state, "stopped") == 0;
    acr_buf_reset(&w->out);
    int rc = acr_msg_encode_rejoin(&w->out, &r, w->node_id);
    if (rc == 0) rc = send_out(w, "acrida_rejoin");
    if (rc == 0) {
        acr_buf_reset(&w->out);
        rc = acr_msg_encode_stats_cumulative(&w->out, w->cum, w->counts, n, users, ++w->seq,
                                             stopped, w->node_id);
        if (rc == 0) rc = send_out(w, "stats");
    }
    for (size_t i = 0; rc == 0 && i < nexc; i++)
        send_exception(w, ex[i]->msg, ex[i]->traceback, ex[i]->count);
    if (rc < 0) ACR_ERROR("cannot re-register the test with the new master: %s", strerror(-rc));
    ACR_INFO("re-registered test '%s' (%s, %lld users, %llu requests so far) with the new master",
             ACR_ESC(w->test_id), state, (long long)users,
             (unsigned long long)acr_stats_total(w->cum)->num_requests);
    acr_stats_reset(w->stats, acr_now());
    if (stopped) {
        end_test(w);
        set_state(w, WS_READY);
    }
}

static void users_stopped(acr_rt_t *rt, void *ud)
{
    worker_t *w = ud;
    (void)rt;
    if (w->state != WS_STOPPING) return;
    uint64_t aborted = acr_stats_total(w->stats)->num_aborted;
    if (aborted)
        ACR_INFO("%llu requests still in flight when the stop's grace ran out were aborted "
                 "(counted as aborted at stop)",
                 (unsigned long long)aborted);
    fire_test_stop(w);
    if (w->rejoin_pending) { /* a new master came while they stopped */
        send_rejoin(w, "stopped");
        return;
    }
    if (!w->acked && !w->quit_stop) { /* the master is lost: keep the results for the next one */
        set_state(w, WS_ORPHANED);
        ACR_INFO("users stopped; their results are kept for the next master");
        if (w->cfg->exit_on_quit) {
            w->exit_code = 1;
            begin_quit(w, "the master is lost and --exit-on-quit is set");
        }
        return;
    }
    send_report(w, true);
    send_nil(w, "client_stopped");
    end_test(w);
    set_state(w, WS_READY);
    if (w->quit_stop) { /* client_ready goes to the next master (await_ack runs) */
        w->quit_stop = false;
        ACR_INFO("users stopped; waiting for the next master");
        return;
    }
    send_client_ready(w);
    ACR_INFO("users stopped; ready");
}

/* The master's silence reached cfg->master_timeout: stop the users, keep their results, wait. */
static void watch_cb(uv_timer_t *t)
{
    worker_t *w = acr_container_of(t, worker_t, watch_timer);
    double secs = w->cfg->master_timeout > 0 ? w->cfg->master_timeout : MASTER_TIMEOUT_S;
    size_t users = w->rt_loaded ? acr_rt_user_count(w->rt) : 0;
    if (w->state == WS_QUITTING || w->state == WS_DONE) return;
    if (w->ch && acr_zchan_kick(w->ch)) { /* frames wait unread (a busy loop): not a silence */
        ACR_WARN("the master's frames waited unread for %.1f s (the worker's loop is overloaded)",
                 secs);
        uv_timer_start(t, watch_cb, 1000, 0);
        return;
    }
    await_ack(w, true);
    switch (w->state) {
    case WS_SPAWNING:
    case WS_RUNNING:
        ACR_WARN("no word from the master for %.1f s: stopping %zu users; waiting for a master",
                 secs, users);
        set_state(w, WS_STOPPING);
        acr_rt_stop_all(w->rt, users_stopped, w);
        return;
    case WS_STOPPING:
        ACR_WARN("no word from the master for %.1f s while %zu users stop; waiting for a master",
                 secs, users);
        return;
    default:
        ACR_WARN("no word from the master for %.1f s; waiting for a master", secs);
        if (w->cfg->exit_on_quit) {
            w->exit_code = 1;
            begin_quit(w, "the master is lost and --exit-on-quit is set");
        }
        return;
    }
}

/* Any frame from an acrida master restarts the master-loss timer. */
static void arm_watch(worker_t *w)
{
    if (!w->master_acrida || w->state == WS_QUITTING || w->state == WS_DONE) return;
    if (!w->acked && !uv_is_active((uv_handle_t *)&w->watch_timer)) return; /* after a quit */
    double secs = w->cfg->master_timeout > 0 ? w->cfg->master_timeout : MASTER_TIMEOUT_S;
    uv_timer_start(&w->watch_timer, watch_cb, (uint64_t)(secs * 1000), 0);
}

/* `quit` without --exit-on-quit: report to the quitting master, then wait for the next one. */
static void master_quit(worker_t *w)
{
    if (!w->acked) {
        ACR_DEBUG("quit while waiting for a master: ignored");
        return;
    }
    ACR_INFO("the master quit; waiting for the next master");
    uv_timer_stop(&w->watch_timer);
    await_ack(w, false);
    switch (w->state) {
    case WS_SPAWNING:
    case WS_RUNNING:
        w->quit_stop = true;
        set_state(w, WS_STOPPING);
        acr_rt_stop_all(w->rt, users_stopped, w);
        break;
    case WS_STOPPING:
        w->quit_stop = true;
        break;
    default:
        break;
    }
}

/* The watchdog interrupted a task of @cls that ran @secs s without yielding (the user is ended):
 * an acrida master quarantines the class (proto/PROTOCOL.md, acrida_stall). */
static void on_stall(const char *cls, const char *task, double secs, void *ud)
{
    worker_t *w = ud;
    /* The silence was ours (the master's frames wait unread in the socket): a fresh master
     * timeout, from the real time, not the loop's time cached before the stall. */
    uv_update_time(w->loop);
    arm_watch(w);
    if (!w->acked || !w->master_acrida) return;
    acr_buf_reset(&w->out);
    if (acr_msg_encode_stall(&w->out, cls, task, secs, w->node_id) == 0)
        send_out(w, "acrida_stall");
}

/* Loads a scenario into a new runtime that replaces the current one: the file @path (-f), a
 * bundle's @name extracted in @root, or the shipped source @src named @name. */
static int load_scenario(worker_t *w, const char *path, const char *root, const char *name,
                         const char *src, size_t len, char *err, size_t errlen)
{
    acr_rt_config_t rc = {.loop = w->loop,
                          .stats = w->stats,
                          .http = w->http,
                          .node_id = w->node_id,
                          .watchdog = w->wd,
                          .on_stall = on_stall,
                          .stall_ud = w,
                          .max_lua_memory = w->cfg->lua_memory};
    acr_rt_t *rt = acr_rt_new(&rc, err, errlen);
    if (!rt) return -ENOMEM;
    lua_State *L = acr_rt_lua(rt);
    int r = acr_events_open(L);
    if (r == 0) r = acr_messages_open(L, send_custom, w);
    if (r < 0) {
        snprintf(err, errlen, "cannot install the events and messages: %s", strerror(-r));
        w->closing++;
        acr_rt_close(rt, chan_closed, w);
        if (w->rt) acr_rt_watch(w->rt);
        return r;
    }
    acr_events_set_error_handler(L, listener_error, w);
    acr_rt_pools_set_sender(rt, send_pool, w);
    r = path   ? acr_rt_load_file(rt, path, err, errlen)
        : root ? acr_rt_load_bundle(rt, root, name, src, len, err, errlen)
               : acr_rt_load_string(rt, name, src, len, err, errlen);
    acr_class_count_t *counts = NULL;
    if (r == 0) {
        counts = calloc(acr_rt_nclasses(rt) + 1, sizeof(*counts));
        if (!counts) r = -ENOMEM;
    }
    if (r < 0) {
        w->closing++;
        acr_rt_close(rt, chan_closed, w);
        if (w->rt) acr_rt_watch(w->rt); /* the runtime that stays is watched again */
        return r;
    }
    if (w->rt) {
        w->closing++;
        acr_rt_close(w->rt, chan_closed, w);
    }
    free(w->counts);
    w->counts = counts;
    w->rt = rt;
    w->rt_loaded = true;
    if (w->index >= 0) acr_rt_set_worker_index(rt, w->index);
    return 0;
}

/* Tells an acrida master which scenario runs here (its hash) or why none could load. */
static void send_scenario_loaded(worker_t *w, const char *sha256, const char *error)
{
    acr_buf_reset(&w->out);
    if (acr_msg_encode_scenario_loaded(&w->out, sha256, error, w->node_id) == 0)
        send_out(w, "acrida_scenario_loaded");
}

/* The hash of the worker's own -f scenario, as the master computes its bundle's (the default
 * rules: the scenario, its required modules and acrida.files). "" when it cannot be built. */
static void hash_own_scenario(worker_t *w)
{
    acr_bundle_t b;
    char *main = NULL, err[512];
    int rc = acr_scenario_bundle_build(acr_rt_lua(w->rt), w->cfg->scenario, NULL,
                                       ACR_BUNDLE_SIZE_MAX, &b, &main, err, sizeof err);
    if (rc == 0)
        memcpy(w->scenario_sha, b.sha256, sizeof w->scenario_sha);
    else
        ACR_WARN("cannot hash the scenario's files for the master's check: %s", ACR_ESC_LONG(err));
    acr_bundle_free(&b);
    free(main);
    if (rc == 0) return;
    /* the file alone then (the master knows that hash too): the master must hear from every
     * acrida worker that it loaded a scenario before it gives it users */
    FILE *f = fopen(w->cfg->scenario, "rb");
    char *src = NULL;
    size_t len = 0;
    if (f) {
        acr_buf_t buf = {0};
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
            if (acr_buf_append(&buf, chunk, n) < 0) break;
        fclose(f);
        src = buf.data;
        len = buf.len;
    }
    acr_bundle_sha256_hex(src ? src : "", len, w->scenario_sha);
    free(src);
}

/* A shipped scenario could not load: the master hears why (with file:line) and this worker
 * quits, so that it gets no spawn (proto/PROTOCOL.md, acrida_scenario_loaded). */
static void scenario_failed(worker_t *w, const char *sha256, const char *err)
{
    char msg[1200];
    snprintf(msg, sizeof msg, "scenario failed to load: %s", err);
    ACR_ERROR("%s", ACR_ESC_LONG(msg));
    if (sha256)
        send_scenario_loaded(w, sha256, msg);
    else
        send_exception(w, msg, "", 1);
    w->exit_code = 1;
    finish_quit(w);
}

/* The reassembled blob: verified, extracted into a fresh private directory and loaded. */
static void bundle_complete(worker_t *w)
{
    char err[1024];
    acr_bundle_t b;
    char *dir = NULL, sha[65];
    memcpy(sha, w->bundle_rx.sha256, sizeof sha);
    int rc = acr_bundle_decode(w->bundle_rx.buf, w->bundle_rx.total, sha, &b, err, sizeof err);
    acr_bundle_rx_reset(&w->bundle_rx);
    const acr_bundle_file_t *main = rc == 0 ? acr_bundle_get(&b, w->rx_main) : NULL;
    if (rc == 0 && !main) {
        snprintf(err, sizeof err, "the bundle has no '%s'", w->rx_main);
        rc = -EINVAL;
    }
    if (rc == 0) rc = acr_bundle_extract(&b, &dir, err, sizeof err);
    if (rc == 0)
        rc = load_scenario(w, NULL, dir, w->rx_main, main->data, main->len, err, sizeof err);
    size_t nfiles = b.nfiles;
    acr_bundle_free(&b);
    if (rc < 0) {
        if (dir) acr_bundle_remove_dir(dir);
        free(dir);
        scenario_failed(w, sha, err);
        return;
    }
    if (w->bundle_dir) acr_bundle_remove_dir(w->bundle_dir);
    free(w->bundle_dir);
    w->bundle_dir = dir;
    memcpy(w->scenario_sha, sha, sizeof sha);
    free(w->scenario_src);
    w->scenario_src = NULL;
    send_scenario_loaded(w, sha, NULL);
    ACR_INFO("loaded the scenario '%s' sent by the master: bundle %.12s... of %zu files in %s (%zu "
             "classes)",
             ACR_ESC(w->rx_main), sha, nfiles, dir, acr_rt_nclasses(w->rt));
}

static void on_bundle_part(worker_t *w, const acr_msg_t *m)
{
    char err[256];
    if (w->cfg->scenario || !acr_bundle_rx_active(&w->bundle_rx) ||
        strcmp(m->bundle.sha256, w->bundle_rx.sha256) != 0) {
        ACR_DEBUG("bundle part %u not expected; ignored", m->bundle.index);
        return;
    }
    int rc = acr_bundle_rx_part(&w->bundle_rx, m->bundle.sha256, m->bundle.index, m->data,
                                m->data_len, err, sizeof err);
    if (rc < 0)
        scenario_failed(w, m->bundle.sha256, err);
    else if (rc == 1)
        bundle_complete(w);
}

/* A `scenario` with a bundle manifest: starts receiving its parts (unless it runs already). */
static void begin_bundle(worker_t *w, const acr_msg_t *m)
{
    char err[256];
    const acr_msg_bundle_t *bd = &m->bundle;
    free(w->rx_main);
    w->rx_main = strdup(bd->main);
    if (!w->rx_main) {
        scenario_failed(w, bd->sha256, "out of memory");
        return;
    }
    if (acr_bundle_rx_begin(&w->bundle_rx, bd->sha256, (size_t)bd->size, bd->parts, err,
                            sizeof err) < 0)
        scenario_failed(w, bd->sha256, err);
}

/* A scenario is code: from a master reached over the network without a cluster key, whoever
 * answers at --master-host could have sent it (docs/security.md). Refused like a scenario that
 * fails to load: the master hears why and this worker quits, so it gets no spawn. */
static void refuse_scenario(worker_t *w, const acr_msg_t *m)
{
    if (w->refused_scenario) return;
    w->refused_scenario = true;
    char msg[700];
    snprintf(msg, sizeof msg,
             "worker %s refused it: it came from %.200s over the network without a cluster key; "
             "start the master and workers with --cluster-key FILE, or the worker with "
             "--trust-master",
             w->node_id, w->cfg->master_host);
    scenario_failed(w, m->bundle.sha256 && *m->bundle.sha256 ? m->bundle.sha256 : NULL, msg);
}

static void on_scenario(worker_t *w, const acr_msg_t *m)
{
    char err[1024];
    if (w->cfg->scenario) {
        ACR_DEBUG("keeping the local scenario %s; the master's '%s' is not loaded",
                  w->cfg->scenario, ACR_ESC(m->scenario_name ? m->scenario_name : ""));
        return;
    }
    if (w->state == WS_QUITTING || w->state == WS_DONE) return;
    if (!w->cfg->keys && !w->cfg->trust_master && !w->master_local) {
        refuse_scenario(w, m);
        return;
    }
    if (m->bundle.present && w->rt_loaded && strcmp(m->bundle.sha256, w->scenario_sha) == 0) {
        send_scenario_loaded(w, w->scenario_sha, NULL); /* runs it already: ready for users */
        return;
    }
    if (w->state != WS_READY) {
        ACR_WARN("the master sent a new scenario during a test; ignored until the test stops");
        return;
    }
    if (m->bundle.present) {
        begin_bundle(w, m);
        return;
    }
    if (w->scenario_src && m->scenario_len == w->scenario_len &&
        memcmp(m->scenario_source, w->scenario_src, m->scenario_len) == 0)
        return;
    const char *name = m->scenario_name && *m->scenario_name ? m->scenario_name : "scenario.lua";
    if (load_scenario(w, NULL, NULL, name, m->scenario_source, m->scenario_len, err, sizeof err) <
        0) {
        scenario_failed(w, NULL, err);
        return;
    }
    free(w->scenario_src);
    w->scenario_src = malloc(m->scenario_len + 1);
    if (w->scenario_src) {
        memcpy(w->scenario_src, m->scenario_source, m->scenario_len);
        w->scenario_len = m->scenario_len;
    }
    ACR_INFO("loaded the scenario '%s' sent by the master (%zu classes)", ACR_ESC(name),
             acr_rt_nclasses(w->rt));
}

/* spawning_complete(user_count): this worker's users. */
static void fire_spawning_complete(worker_t *w)
{
    lua_State *L = scenario_lua(w);
    if (!L || !acr_events_has_listeners(L, "spawning_complete")) return;
    lua_pushnumber(L, (double)acr_rt_user_count(w->rt));
    acr_events_fire(L, "spawning_complete", 1, listener_error, w);
}

/* acrida_spawning_complete: the cluster's ramp reached its target (once per ramp). */
static void on_ramp_done(worker_t *w, const acr_msg_t *m)
{
    if (w->state != WS_SPAWNING && w->state != WS_RUNNING) {
        ACR_DEBUG("acrida_spawning_complete while %s: ignored", ws_names[w->state]);
        return;
    }
    ACR_DEBUG("the cluster reached its target of %lld users", (long long)m->user_count);
    fire_spawning_complete(w);
}

/* Takes @m's tags, exclude_tags and stop_timeout for env.options. */
static void keep_options(worker_t *w, acr_msg_t *m)
{
    free_list(w->tags);
    free_list(w->exclude_tags);
    w->tags = m->tags;
    w->exclude_tags = m->exclude_tags;
    m->tags = m->exclude_tags = NULL;
    w->stop_timeout = m->stop_timeout;
}

/* A new test: the stats start from zero and the cumulative copy with them. */
static void start_test(worker_t *w, const char *test_id)
{
    if (w->state == WS_ORPHANED && acr_stats_total(w->stats)->num_requests > 0)
        ACR_WARN("test '%s' starts: %llu requests of test '%s' never reached a master",
                 ACR_ESC(test_id), (unsigned long long)acr_stats_total(w->stats)->num_requests,
                 ACR_ESC(w->test_id));
    acr_stats_clear(w->stats, acr_now());
    end_test(w);
    w->test_active = true;
    w->test_started_at = acr_now(); /* a new master resumes a load shape from it (acrida_rejoin) */
    snprintf(w->test_id, sizeof w->test_id, "%s", test_id);
}

/* "running N users (A=1 B=2)": the spawn's counts per class, as applied. */
static void log_running(worker_t *w, const acr_msg_t *m)
{
    acr_buf_t b = {0};
    for (size_t i = 0; i < m->nclasses; i++)
        acr_buf_appendf(&b, "%s%s=%lld", i ? " " : "", m->classes[i].name ? m->classes[i].name : "",
                        (long long)m->classes[i].count);
    ACR_INFO("running %zu users (%s)", acr_rt_user_count(w->rt), b.data ? b.data : "");
    acr_buf_free(&b);
}

static void on_spawn(worker_t *w, acr_msg_t *m)
{
    send_nil(w, "spawning");
    if (!w->rt_loaded) {
        ACR_ERROR("spawn received before any scenario was loaded; ignored");
        return;
    }
    if (w->state == WS_STOPPING || w->state == WS_QUITTING || w->state == WS_DONE) {
        ACR_WARN("spawn received while %s; ignored", ws_names[w->state]);
        return;
    }
    if (m->timestamp <= w->last_spawn_ts) {
        ACR_INFO("spawn with an old timestamp (%.6f <= %.6f) discarded", m->timestamp,
                 w->last_spawn_ts);
        return;
    }
    w->last_spawn_ts = m->timestamp;
    if (acr_rt_set_host(w->rt, m->host) < 0) ACR_ERROR("out of memory setting the host");
    free(w->host);
    w->host = m->host ? strdup(m->host) : NULL;
    acr_rt_set_stop_timeout(w->rt, m->stop_timeout > 0 ? m->stop_timeout : 0);
    char terr[256];
    if (acr_rt_set_tags(w->rt, (const char *const *)m->tags, (const char *const *)m->exclude_tags,
                        terr, sizeof terr) < 0)
        ACR_ERROR("the master's --tags/--exclude-tags: %s; the task lists stay as they were",
                  ACR_ESC_LONG(terr));
    keep_options(w, m);
    const char *tid = m->test_id ? m->test_id : "";
    if (w->state == WS_READY || (w->state == WS_ORPHANED && (!*tid || strcmp(tid, w->test_id))))
        start_test(w, tid);
    set_state(w, WS_SPAWNING);
    if (!w->test_started) { /* once per test, not at each ramp step */
        w->test_started = true;
        fire_env(w, "test_start");
    }
    if (acr_rt_set_users(w->rt, m->classes, m->nclasses) < 0)
        ACR_ERROR("could not start every user (out of memory)");
    send_spawning_complete(w);
    if (!w->master_acrida) fire_spawning_complete(w); /* a Locust master: per spawn, as Locust */
    set_state(w, WS_RUNNING);
    log_running(w, m);
}

static void on_stop(worker_t *w)
{
    switch (w->state) {
    case WS_SPAWNING:
    case WS_RUNNING:
        set_state(w, WS_STOPPING);
        ACR_INFO("stop: stopping %zu users gracefully", acr_rt_user_count(w->rt));
        acr_rt_stop_all(w->rt, users_stopped, w);
        break;
    case WS_ORPHANED: /* the same master is back and ends the test: the rest is its final */
        send_report(w, true);
        end_test(w);
        set_state(w, WS_READY);
        /* fallthrough */
    case WS_READY: /* as Locust: acknowledge and re-register */
        send_nil(w, "client_stopped");
        send_client_ready(w);
        break;
    default:
        ACR_DEBUG("stop while %s: ignored", ws_names[w->state]);
        break;
    }
}

static void start_timers(worker_t *w)
{
    if (w->timers_on || w->state == WS_QUITTING) return;
    w->timers_on = true;
    w->last_cpu_s = cpu_seconds();
    w->last_wall_s = acr_mono_s();
    uv_timer_start(&w->hb_timer, hb_cb, HEARTBEAT_MS, HEARTBEAT_MS);
    uv_timer_start(&w->stats_timer, stats_cb, REPORT_MS, REPORT_MS);
}

/* An ack: registered. A new master instance while a test is not fully reported gets the test
 * re-registered (proto/PROTOCOL.md, "acrida_rejoin"). */
static void on_ack(worker_t *w, const acr_msg_t *m)
{
    bool new_master = m->instance && strcmp(m->instance, w->instance) != 0;
    if (!w->acked)
        ACR_INFO("connected to the master (worker index %lld%s%s)", (long long)m->index,
                 m->instance ? ", instance " : "", ACR_ESC(m->instance ? m->instance : ""));
    snprintf(w->instance, sizeof w->instance, "%s", m->instance ? m->instance : "");
    w->index = m->index;
    w->master_acrida = m->acrida;
    w->acked = true;
    uv_timer_stop(&w->ready_timer);
    if (w->rt_loaded && m->index >= 0) acr_rt_set_worker_index(w->rt, m->index);
    if (m->acrida && w->cfg->scenario && w->scenario_sha[0]) /* the master checks the hash */
        send_scenario_loaded(w, w->scenario_sha, NULL);
    start_timers(w);
    if (!new_master || !w->test_active) return;
    switch (w->state) {
    case WS_SPAWNING:
    case WS_RUNNING:
        send_rejoin(w, hb_state(w));
        break;
    case WS_ORPHANED:
        send_rejoin(w, "stopped");
        break;
    case WS_STOPPING:
        w->rejoin_pending = true; /* sent as "stopped" once the users are gone */
        break;
    default:
        break;
    }
}

static void recv_cb(acr_zchan_t *ch, const char *peer, size_t peer_len, const void *data,
                    size_t len, void *ud)
{
    worker_t *w = ud;
    acr_msg_t m;
    char err[256];
    (void)ch;
    (void)peer;
    (void)peer_len;
    if (w->state == WS_DONE) return;
    int rc = acr_msg_decode(data, len, &m, err, sizeof err);
    if (rc < 0) {
        arm_watch(w); /* a frame all the same: the master is there */
        w->malformed++;
        ACR_WARN("malformed frame from the master dropped (%zu bytes, %llu so far): %s", len,
                 (unsigned long long)w->malformed, ACR_ESC_LONG(err));
        return;
    }
    if (w->rt && w->master_acrida) acr_rt_pools_contact(w->rt, acr_mono_s()); /* lease fencing */
    switch (m.type) {
    case ACR_MSG_ACK:
        on_ack(w, &m);
        break;
    case ACR_MSG_SPAWN:
        on_spawn(w, &m);
        break;
    case ACR_MSG_STOP:
        on_stop(w);
        break;
    case ACR_MSG_QUIT:
        if (w->cfg->exit_on_quit)
            begin_quit(w, "quit from the master");
        else
            master_quit(w);
        break;
    case ACR_MSG_HEARTBEAT:
        break; /* the master is alive: nothing to do */
    case ACR_MSG_SCENARIO:
        on_scenario(w, &m);
        break;
    case ACR_MSG_BUNDLE_PART:
        on_bundle_part(w, &m);
        break;
    case ACR_MSG_RECONNECT: /* the master does not know us (it restarted): register again */
        if (w->state == WS_QUITTING) break;
        ACR_INFO("the master asked for a reconnect: sending client_ready");
        await_ack(w, true);
        break;
    case ACR_MSG_CUSTOM:
        on_custom(w, &m);
        break;
    case ACR_MSG_POOL_REP:
        if (w->rt) acr_rt_pools_on_reply(w->rt, &m);
        break;
    case ACR_MSG_RAMP_DONE:
        on_ramp_done(w, &m);
        break;
    default:
        ACR_DEBUG("unexpected message '%s' from the master ignored", ACR_ESC(m.type_name));
        break;
    }
    acr_msg_free(&m);
    arm_watch(w);
}

int acr_worker_make_node_id(char *out, size_t len)
{
    char host[256] = "localhost";
    unsigned char rnd[16];
    if (gethostname(host, sizeof host - 1) != 0) snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    ssize_t n = read(fd, rnd, sizeof rnd);
    close(fd);
    if (n != (ssize_t)sizeof rnd) return -EIO;
    char hex[33];
    for (size_t i = 0; i < sizeof rnd; i++) snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
    if ((size_t)snprintf(out, len, "%s_%s", host, hex) >= len) return -ENAMETOOLONG;
    return 0;
}

/* The bundle directories of workers that died without removing them (a SIGKILL, a crash): each
 * worker's name carries its pid (common/bundle.h), so the next one to start removes them. */
static void remove_stale_bundles(void)
{
    const char *tmp = acr_bundle_tmpdir();
    size_t removed = 0, failed = 0;
    int rc = acr_bundle_remove_stale(tmp, &removed, &failed);
    if (rc < 0) ACR_DEBUG("cannot look for stale bundle directories in %s: %s", tmp, strerror(-rc));
    if (removed)
        ACR_INFO("removed %zu bundle directories of workers that are gone from %s", removed, tmp);
    if (failed) ACR_WARN("could not remove %zu stale bundle directories in %s", failed, tmp);
}

/* Initialises the timers. 0 or a libuv error;
 * handles left uninitialised stay zeroed, which close_all skips. */
static int init_handles(worker_t *w)
{
    uv_timer_t *timers[] = {&w->ready_timer, &w->hb_timer, &w->stats_timer, &w->exit_timer,
                            &w->watch_timer};
    int rc = 0;
    for (size_t i = 0; i < ACR_ARRAY_SIZE(timers) && rc == 0; i++)
        rc = uv_timer_init(w->loop, timers[i]);
    return rc;
}

int acr_worker_run(const acr_worker_config_t *cfg)
{
    worker_t w = {.cfg = cfg, .index = -1, .stop_timeout = -1, .exit_code = 0};
    char err[1024];
    uv_loop_t loop;
    int rc = uv_loop_init(&loop);
    if (rc < 0) {
        ACR_ERROR("cannot create the event loop: %s", uv_strerror(rc));
        return 1;
    }
    w.loop = &loop;
    /* the watchdog also takes SIGTERM/SIGINT, whether the loop turns or not */
    acr_watchdog_config_t wc = {
        .loop = &loop, .stall_timeout = cfg->stall_timeout, .on_signal = signal_cb, .ud = &w};
    if ((rc = acr_watchdog_start(&w.wd, &wc, err, sizeof err)) < 0) {
        ACR_ERROR("%s", err);
        w.exit_code = 1;
        close_all(&w);
        goto run;
    }
    if (cfg->node_id && *cfg->node_id) {
        snprintf(w.node_id, sizeof w.node_id, "%s", cfg->node_id);
    } else if ((rc = acr_worker_make_node_id(w.node_id, sizeof w.node_id)) < 0) {
        ACR_ERROR("cannot make a node id: %s", strerror(-rc));
        w.exit_code = 1;
        close_all(&w);
        goto run;
    }
    if ((rc = init_handles(&w)) < 0) {
        ACR_ERROR("cannot set up the worker's timers and signal handlers: %s", uv_strerror(rc));
        w.exit_code = 1;
        close_all(&w);
        goto run;
    }

    w.stats = acr_stats_new(acr_now());
    acr_http_config_t hc = {
        .insecure = cfg->insecure, .body_cap = cfg->body_cap, .user_agent = "acrida/" ACR_VERSION};
    if (w.stats) w.http = acr_http_client_new(&loop, &hc, err, sizeof err);
    if (!w.stats || !w.http) {
        ACR_ERROR("cannot start the HTTP client: %s", w.stats ? err : "out of memory");
        w.exit_code = 1;
        close_all(&w);
        goto run;
    }

    const char *host = cfg->master_host ? cfg->master_host : "127.0.0.1";
    int port = cfg->master_port > 0 ? cfg->master_port : 5557;
    rc = acr_zchan_connect_keyed(&loop, host, port, w.node_id, cfg->keys, recv_cb, &w, &w.ch, err,
                                 sizeof err);
    if (rc < 0) {
        ACR_ERROR("cannot connect to the master: %s", ACR_ESC_LONG(err));
        w.exit_code = 1;
        close_all(&w);
        goto run;
    }
    w.master_local = acr_host_is_loopback(host);
    remove_stale_bundles();
    ACR_INFO("worker %s connecting to tcp://%s:%d%s", w.node_id, host, port,
             cfg->keys ? " with the cluster key (CURVE)" : "");

    if (cfg->scenario) {
        if (load_scenario(&w, cfg->scenario, NULL, NULL, NULL, 0, err, sizeof err) < 0) {
            char msg[1200];
            snprintf(msg, sizeof msg, "scenario failed to load: %s", err);
            ACR_ERROR("%s", ACR_ESC_LONG(msg));
            send_exception(&w, msg, "", 1);
            w.exit_code = 1;
            set_state(&w, WS_QUITTING);
            uv_timer_start(&w.exit_timer, exit_cb, QUIT_FLUSH_MS, 0);
            goto run;
        }
        ACR_INFO("scenario %s: %zu user classes", cfg->scenario, acr_rt_nclasses(w.rt));
        hash_own_scenario(&w);
    }
    await_ack(&w, true);

run:
    uv_run(&loop, UV_RUN_DEFAULT);
    /* Everything is closed; anything libuv still lists is a bug, but must not hang exit. */
    rc = uv_loop_close(&loop);
    if (rc < 0) ACR_WARN("event loop closed with handles left: %s", uv_strerror(rc));
    acr_watchdog_free(w.wd);
    acr_stats_free(w.stats);
    if (w.cum) acr_stats_free(w.cum);
    acr_buf_free(&w.out);
    free(w.counts);
    free(w.scenario_src);
    if (w.bundle_dir) acr_bundle_remove_dir(w.bundle_dir); /* the runtime that used it is gone */
    free(w.bundle_dir);
    free(w.rx_main);
    acr_bundle_rx_reset(&w.bundle_rx);
    free(w.host);
    free_list(w.tags);
    free_list(w.exclude_tags);
    ACR_INFO("worker exiting with code %d", w.exit_code);
    return w.exit_code;
}
