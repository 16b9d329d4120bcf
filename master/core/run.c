/*
 * The run state machine (docs/locust-compatibility.md): ready -> spawning -> running -> stopping
 * -> stopped, with one transition table and one transition function that checks legality, logs
 * from -> to and emits the change to the core's subscribers. Starting a test drives the
 * dispatcher's ramp with a timer and sends one `spawn` per worker per iteration; a change in the
 * live workers rebalances at once. A graceful stop sends `stop` and waits, bounded, for every
 * worker's client_stopped and final report, so the state always reaches stopped. The run-time
 * limit is a timer that stops the test.
 */
#include "master/core/core_int.h"

#include "common/log.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SETTLE_S 1.0 /* Locust's wait for the workers' reports after the last iteration */
#define FINAL_GRACE_S                                                                              \
    3.5 /* after client_stopped, how long an acrida worker's final report may lag */
#define STOP_EXTRA_S 70.0      /* the stop wait is stop_timeout + this */
#define RAMP_HOLD_MS 1000      /* with no live worker, the ramp looks again after this */
#define NO_WORKER_LIMIT_S 60.0 /* a ramp with no live worker for this long stops the test */

static const char *const run_names[ACR_RUN__COUNT] = {"ready", "spawning", "running", "stopping",
                                                      "stopped"};

/* legal[from][to] */
static const bool legal[ACR_RUN__COUNT][ACR_RUN__COUNT] = {
    /* ready -> stopped: a stopped test adopted from the workers of a previous master (adopt.c) */
    [ACR_RUN_READY] = {[ACR_RUN_SPAWNING] = true, [ACR_RUN_STOPPED] = true},
    [ACR_RUN_SPAWNING] = {[ACR_RUN_RUNNING] = true, [ACR_RUN_STOPPING] = true},
    [ACR_RUN_RUNNING] = {[ACR_RUN_SPAWNING] = true, [ACR_RUN_STOPPING] = true},
    [ACR_RUN_STOPPING] = {[ACR_RUN_STOPPED] = true},
    [ACR_RUN_STOPPED] = {[ACR_RUN_SPAWNING] = true},
};

const char *acr_run_state_name(acr_run_state_t s)
{
    return (unsigned)s < ACR_RUN__COUNT ? run_names[s] : "?";
}

bool acr_run_transition_legal(acr_run_state_t from, acr_run_state_t to)
{
    if ((unsigned)from >= ACR_RUN__COUNT || (unsigned)to >= ACR_RUN__COUNT) return false;
    return legal[from][to];
}

bool acr__run_active(const acr_core_t *c)
{
    acr_run_state_t s = c->run.state;
    return s == ACR_RUN_SPAWNING || s == ACR_RUN_RUNNING || s == ACR_RUN_STOPPING;
}

int acr__run_set_state(acr_core_t *c, acr_run_state_t to)
{
    acr_run_state_t from = c->run.state;
    if (!acr_run_transition_legal(from, to)) {
        ACR_ERROR("illegal run state transition %s -> %s", acr_run_state_name(from),
                  acr_run_state_name(to));
        return -EINVAL;
    }
    ACR_DEBUG("run state: %s -> %s", acr_run_state_name(from), acr_run_state_name(to));
    c->run.state = to;
    acr__core_emit(c, &(acr_core_event_t){ACR_CORE_EV_STATE, from, to});
    return 0;
}

static uint64_t ms(double s)
{
    return s <= 0 ? 0 : (uint64_t)ceil(s * 1000.0);
}

/* ---- spawning ---- */

static void send_spawns(acr_core_t *c)
{
    acr_run_t *r = &c->run;
    acr_dispatch_t *d = r->dispatch;
    size_t nc = acr_dispatch_nclasses(d);
    const char *host = r->host ? r->host : c->cfg.host;
    long total = 0;
    size_t sent = 0;
    for (size_t i = 0; i < acr_dispatch_nentries(d); i++) {
        const char *id = acr_dispatch_entry_id(d, i);
        const int64_t *counts = acr_dispatch_entry_counts(d, i);
        acr_mworker_t *w = acr__registry_find(c, id);
        if (!w || w->state == ACR_WORKER_MISSING) continue;
        for (size_t k = 0; k < nc; k++) {
            r->spawn_classes[k].name = (char *)acr_dispatch_class_name(d, k);
            r->spawn_classes[k].count = counts[k];
            total += (long)counts[k];
        }
        /* workers drop a spawn whose timestamp is not newer than the last one they took */
        double ts = acr_now();
        if (ts <= r->last_spawn_ts) ts = r->last_spawn_ts + 1e-6;
        r->last_spawn_ts = ts;
        acr_buf_reset(&c->sendbuf);
        if (acr_msg_encode_spawn_test(&c->sendbuf, ts, r->spawn_classes, nc, host,
                                      c->cfg.stop_timeout, c->cfg.tags, c->cfg.exclude_tags,
                                      r->test_id, id) < 0) {
            ACR_ERROR("out of memory encoding spawn");
            return;
        }
        acr__registry_send_buf(c, id);
        w->spawns_sent++;
        sent++;
    }
    ACR_DEBUG("Sending spawn messages for %ld total users to %zu worker(s)", total, sent);
}

static void ramp_step(acr_core_t *c);

static void ramp_cb(uv_timer_t *t)
{
    acr_core_t *c = acr_container_of(t, acr_core_t, run.ramp_timer);
    acr_run_t *r = &c->run;
    if (r->state != ACR_RUN_SPAWNING || !r->dispatch) return;
    if (acr_dispatch_nworkers(r->dispatch) == 0) {
        /* no worker to place users on: hold the ramp until one (re)joins, for a bounded time */
        double now = acr_mono_s();
        if (r->no_worker_since == 0) r->no_worker_since = now;
        if (now - r->no_worker_since >= NO_WORKER_LIMIT_S) {
            ACR_WARN("No live worker for %.0f s while spawning, stopping the test",
                     now - r->no_worker_since);
            acr__run_stop(c);
            return;
        }
        uv_timer_start(&r->ramp_timer, ramp_cb, RAMP_HOLD_MS, 0);
        return;
    }
    r->no_worker_since = 0;
    ramp_step(c);
}

static void settle_cb(uv_timer_t *t)
{
    acr_core_t *c = acr_container_of(t, acr_core_t, run.settle_timer);
    c->run.settle_expired = true;
    acr__run_check(c);
}

static void ramp_step(acr_core_t *c)
{
    for (;;) {
        double delay = 0;
        if (acr_dispatch_next(c->run.dispatch, &delay) == 0) {
            c->run.ramp_sent = true;
            c->run.settle_expired = false;
            uv_timer_start(&c->run.settle_timer, settle_cb, ms(SETTLE_S), 0);
            acr__run_check(c);
            return;
        }
        send_spawns(c);
        if (delay > 0) {
            uv_timer_start(&c->run.ramp_timer, ramp_cb, ms(delay), 0);
            return;
        }
    }
}

/* A new ramp to @users at @rate; @fresh: a new test (stats cleared, new test id). */
static void ramp(acr_core_t *c, long users, double rate, bool fresh)
{
    acr_run_t *r = &c->run;
    size_t live = r->dispatch ? acr_dispatch_nworkers(r->dispatch) : 0;
    r->target_users = users;
    r->spawn_rate = rate;
    ACR_INFO("Sending spawn jobs of %ld users at %.2f spawn rate to %zu ready workers", users, rate,
             live);
    if (live > 0 && rate / (double)live > 100)
        ACR_WARN("Your selected spawn rate is very high (>100/worker), and this is known to "
                 "sometimes cause issues. Do you really need to ramp up that fast?");
    r->quiet_ramp_done = false;
    if (fresh) {
        acr__agg_test_start(c);
        r->test_start = acr_now();
        r->test_start_mono = acr_mono_s();
        r->adopted = false;
        r->adopt_started_at = 0;
        r->adopt_joined = 0;
        acr__random_hex_id(r->test_id);
        for (size_t i = 0; i < c->reg.nworkers; i++)
            c->reg.workers[i]->spawns_sent = c->reg.workers[i]->spawns_done = 0;
    }
    if (r->state != ACR_RUN_SPAWNING) acr__run_set_state(c, ACR_RUN_SPAWNING);
    uv_timer_stop(&r->ramp_timer);
    uv_timer_stop(&r->settle_timer);
    r->ramp_sent = false;
    acr_dispatch_new_dispatch(r->dispatch, users, rate);
    if (live == 0) { /* its workers are still loading the scenario: held until one joins */
        uv_timer_start(&r->ramp_timer, ramp_cb, 0, 0);
        return;
    }
    ramp_step(c);
}

static int no_worker(void)
{
    ACR_WARN("You can't start a distributed test before at least one worker processes has "
             "connected");
    return -EAGAIN;
}

int acr__run_start(acr_core_t *c, long users, double rate, const char *const *classes, size_t n)
{
    size_t live = 0, loading = 0;
    for (size_t i = 0; i < c->reg.nworkers; i++) {
        const acr_mworker_t *w = c->reg.workers[i];
        live += acr__worker_usable(w);
        loading += w->loading && !w->load_failed && w->state != ACR_WORKER_MISSING;
    }
    /* workers still loading the scenario take their users when they confirm it */
    if (live == 0 && loading == 0) return no_worker();
    if (acr__run_active(c)) return -EBUSY;
    const char **kept = NULL; /* without the quarantined classes (quarantine.c) */
    int qr = acr__quarantine_filter(c, classes, n, &kept, &n);
    if (qr < 0) return qr == -EAGAIN ? -EINVAL : qr;
    if (kept) classes = kept;
    const char **ids = calloc(live ? live : 1, sizeof(*ids));
    if (!ids) return -ENOMEM;
    size_t k = 0;
    double now = acr_mono_s();
    for (size_t i = 0; i < c->reg.nworkers; i++) {
        acr_mworker_t *w = c->reg.workers[i];
        if (acr__worker_usable(w))
            ids[k++] = w->id;
        else if (w->loading && !w->load_failed && w->state != ACR_WORKER_MISSING)
            w->join_due = now; /* joins as soon as it confirms its scenario */
    }
    acr_dispatch_free(c->run.dispatch);
    /* every class, so that a later edit (a shape's stage) can switch to any of them */
    int rc = acr_dispatch_new(c->cfg.classes, c->cfg.nclasses, ids, k, &c->run.dispatch);
    free(ids);
    if (rc == 0) rc = acr_dispatch_set_classes(c->run.dispatch, classes, n);
    free(kept);
    if (rc < 0) {
        acr_dispatch_free(c->run.dispatch);
        c->run.dispatch = NULL;
        ACR_ERROR("cannot create the dispatcher: %s", strerror(-rc));
        return rc;
    }
    ramp(c, users, rate, true);
    return 0;
}

int acr__run_adopt_begin(acr_core_t *c, const char *test_id, const char *host, bool keep_stats,
                         double started_at)
{
    acr_run_t *r = &c->run;
    if (acr__run_active(c)) return -EBUSY;
    acr_dispatch_t *d = NULL;
    int rc = acr_dispatch_new(c->cfg.classes, c->cfg.nclasses, NULL, 0, &d);
    char *h = NULL;
    if (rc == 0 && host && !(h = strdup(host))) rc = -ENOMEM;
    if (rc < 0) {
        acr_dispatch_free(d);
        ACR_ERROR("cannot adopt test %s: %s", ACR_ESC(test_id), strerror(-rc));
        return rc;
    }
    acr_dispatch_free(r->dispatch);
    r->dispatch = d;
    free(r->host);
    r->host = h;
    if (!keep_stats) acr__agg_test_start(c);
    r->test_start = acr_now();
    r->test_start_mono = acr_mono_s();
    snprintf(r->test_id, sizeof r->test_id, "%s", test_id);
    r->adopted = true;
    r->adopt_started_at = started_at > 0 ? started_at : 0;
    r->adopt_joined = 0;
    r->target_users = 0;
    r->spawn_rate = c->cfg.adopt_rate > 0 ? c->cfg.adopt_rate : 1;
    for (size_t i = 0; i < c->reg.nworkers; i++)
        c->reg.workers[i]->spawns_sent = c->reg.workers[i]->spawns_done = 0;
    uv_timer_stop(&r->ramp_timer);
    uv_timer_stop(&r->settle_timer);
    acr__run_set_state(c, ACR_RUN_SPAWNING);
    /* nothing to send: the workers run their users already; the wait for their reports is the
     * usual settle time, so spawning ends at the latest SETTLE_S from now */
    r->ramp_sent = true;
    r->quiet_ramp_done = true;
    r->settle_expired = false;
    uv_timer_start(&r->settle_timer, settle_cb, ms(SETTLE_S), 0);
    acr__run_limit(c, c->cfg.adopt_run_time);
    return 0;
}

int acr__run_edit(acr_core_t *c, long users, double rate, const char *const *classes, size_t n)
{
    if (c->run.state != ACR_RUN_SPAWNING && c->run.state != ACR_RUN_RUNNING) return -EINVAL;
    if (acr__registry_live(c) == 0) return no_worker();
    const char **kept = NULL; /* without the quarantined classes (quarantine.c) */
    if (classes && n > 0) {
        int rc = acr__quarantine_filter(c, classes, n, &kept, &n);
        if (rc < 0) return rc == -EAGAIN ? -EINVAL : rc;
        rc = acr_dispatch_set_classes(c->run.dispatch, kept ? kept : classes, n);
        free(kept);
        if (rc < 0) return rc;
    }
    ramp(c, users, rate, false);
    return 0;
}

static void rebalance_now(acr_core_t *c)
{
    acr_dispatch_t *d = c->run.dispatch;
    c->run.rebalance_due = false;
    if (d && acr_dispatch_take_rebalance(d)) {
        ACR_INFO("Rebalancing %ld users over %zu workers", acr_dispatch_user_count(d),
                 acr_dispatch_nworkers(d));
        send_spawns(c);
    }
}

void acr__run_workers_changed(acr_core_t *c, acr_mworker_t *added, const char *removed_id)
{
    acr_dispatch_t *d = c->run.dispatch;
    if (!d) return;
    int rc = 0;
    if (added) rc = acr_dispatch_add_worker(d, added->id);
    if (removed_id) {
        int r2 = acr_dispatch_remove_worker(d, removed_id);
        if (r2 != -ENOENT) rc = r2;
    }
    if (rc < 0) ACR_ERROR("rebalance failed: %s", strerror(-rc));
    /* a ramp held for want of a worker goes on at once */
    if (added && c->run.state == ACR_RUN_SPAWNING && c->run.no_worker_since > 0 &&
        !c->run.ramp_sent)
        uv_timer_start(&c->run.ramp_timer, ramp_cb, 0, 0);
    /* joins wait for the liveness tick, so that many registrations cost one rebalance (which
     * sends a spawn to every worker), not one each; a loss rebalances at once */
    if (removed_id)
        rebalance_now(c);
    else
        c->run.rebalance_due = true;
}

void acr__run_rebalance_due(acr_core_t *c)
{
    if (c->run.rebalance_due) rebalance_now(c);
}

/* ---- waits ---- */

static void log_classes(acr_core_t *c, const char *prefix)
{
    acr_buf_t b = {0};
    long total = 0;
    acr_dispatch_t *d = c->run.dispatch;
    size_t nc = d ? acr_dispatch_nclasses(d) : c->cfg.nclasses;
    acr_buf_appendf(&b, "{");
    /* summed over the live workers, in the dispatcher's (sorted) class order */
    for (size_t k = 0; k < nc; k++) {
        const char *name = d ? acr_dispatch_class_name(d, k) : c->cfg.classes[k].name;
        long n = 0;
        for (size_t i = 0; i < c->reg.nworkers; i++) {
            const acr_mworker_t *w = c->reg.workers[i];
            if (w->state == ACR_WORKER_MISSING) continue;
            for (size_t j = 0; j < w->nclasses; j++)
                if (strcmp(w->classes[j].name, name) == 0) n += (long)w->classes[j].count;
        }
        total += n;
        acr_buf_appendf(&b, "%s\"%s\": %ld", k ? ", " : "", name, n);
    }
    acr_buf_appendf(&b, "} (%ld total users)", total);
    ACR_INFO("%s: %s", prefix, ACR_ESC_LONG(b.data ? b.data : ""));
    acr_buf_free(&b);
}

static void stop_finished(acr_core_t *c)
{
    uv_timer_stop(&c->run.stop_timer);
    acr__run_set_state(c, ACR_RUN_STOPPED);
}

/* acrida_spawning_complete to every live acrida worker: the cluster's ramp reached its target, so
 * the workers fire spawning_complete once per ramp (stock Locust workers never get it). */
static void send_ramp_done(acr_core_t *c)
{
    for (size_t i = 0; i < c->reg.nworkers; i++) {
        const acr_mworker_t *w = c->reg.workers[i];
        if (!w->acrida || w->state == ACR_WORKER_MISSING) continue;
        acr_buf_reset(&c->sendbuf);
        if (acr_msg_encode_ramp_done(&c->sendbuf, c->run.target_users > 0 ? c->run.target_users : 0,
                                     w->id) < 0) {
            ACR_ERROR("out of memory encoding acrida_spawning_complete");
            return;
        }
        acr__registry_send_buf(c, w->id);
    }
}

static void check_spawned(acr_core_t *c)
{
    bool all = true;
    for (size_t i = 0; i < c->reg.nworkers; i++) {
        const acr_mworker_t *w = c->reg.workers[i];
        if (w->state != ACR_WORKER_MISSING && w->spawns_done < w->spawns_sent) all = false;
    }
    if (!all && !c->run.settle_expired) return;
    uv_timer_stop(&c->run.settle_timer);
    /* before the transition, whose subscribers may stop or edit the test; not after an adoption
     * (the workers fired spawning_complete for their ramp already) */
    if (!c->run.quiet_ramp_done) send_ramp_done(c);
    acr__run_set_state(c, ACR_RUN_RUNNING);
    log_classes(c, all ? "All users spawned"
                       : "Spawning is complete and report waittime is expired, but not "
                         "all reports received from workers");
    if (c->cfg.reset_stats) {
        ACR_INFO("Resetting stats");
        acr_stats_reset(c->agg.stats, acr_now());
    }
}

static void check_stopped(acr_core_t *c)
{
    double now = acr_mono_s();
    bool all = true;
    for (size_t i = 0; i < c->reg.nworkers; i++) {
        acr_mworker_t *w = c->reg.workers[i];
        if (!w->stop_pending) continue;
        if (w->state == ACR_WORKER_MISSING) {
            w->stop_pending = false;
            continue;
        }
        if (w->stopped_msg &&
            (w->final_seen || !w->acrida || now - w->stopped_at > FINAL_GRACE_S)) {
            if (!w->final_seen && w->acrida)
                ACR_WARN("worker %s: no final report after client_stopped", ACR_ESC(w->id));
            w->stop_pending = false;
            continue;
        }
        all = false;
    }
    if (all) stop_finished(c);
}

void acr__run_check(acr_core_t *c)
{
    if (c->run.state == ACR_RUN_SPAWNING && c->run.ramp_sent) check_spawned(c);
    if (c->run.state == ACR_RUN_STOPPING) check_stopped(c);
}

static void stop_timeout_cb(uv_timer_t *t)
{
    acr_core_t *c = acr_container_of(t, acr_core_t, run.stop_timer);
    if (c->run.state != ACR_RUN_STOPPING) return;
    for (size_t i = 0; i < c->reg.nworkers; i++) {
        acr_mworker_t *w = c->reg.workers[i];
        if (!w->stop_pending) continue;
        ACR_WARN("worker %s did not answer the stop (%s)", ACR_ESC(w->id),
                 w->stopped_msg ? "no final report" : "no client_stopped");
        w->stop_pending = false;
    }
    stop_finished(c);
}

int acr__run_stop(acr_core_t *c)
{
    acr_run_t *r = &c->run;
    if (r->state != ACR_RUN_SPAWNING && r->state != ACR_RUN_RUNNING) return -EINVAL;
    acr__run_set_state(c, ACR_RUN_STOPPING);
    uv_timer_stop(&r->ramp_timer);
    uv_timer_stop(&r->settle_timer);
    uv_timer_stop(&r->runtime_timer);
    acr_dispatch_free(r->dispatch);
    r->dispatch = NULL;
    size_t waiting = 0;
    for (size_t i = 0; i < c->reg.nworkers; i++) {
        acr_mworker_t *w = c->reg.workers[i];
        w->stopped_msg = false;
        w->final_seen = false;
        w->stop_pending = w->state != ACR_WORKER_MISSING;
        waiting += w->stop_pending;
        acr__registry_send_nil(c, "stop", w->id);
    }
    double limit = (c->cfg.stop_timeout > 0 ? c->cfg.stop_timeout : 0) + STOP_EXTRA_S;
    ACR_INFO("Stopping the test: waiting for %zu workers to stop (at most %.0f s)", waiting, limit);
    uv_timer_start(&r->stop_timer, stop_timeout_cb, ms(limit), 0);
    acr__run_check(c);
    return 0;
}

static void runtime_cb(uv_timer_t *t)
{
    acr_core_t *c = acr_container_of(t, acr_core_t, run.runtime_timer);
    ACR_INFO("--run-time limit reached, stopping test");
    acr__run_stop(c);
}

void acr__run_limit(acr_core_t *c, double s)
{
    uv_timer_stop(&c->run.runtime_timer);
    if (s <= 0) return;
    ACR_INFO("Run time limit set to %g seconds", s);
    uv_timer_start(&c->run.runtime_timer, runtime_cb, (uint64_t)(s * 1000.0 + 0.5), 0);
}

int acr__run_init(acr_core_t *c)
{
    acr_run_t *r = &c->run;
    r->state = ACR_RUN_READY;
    r->spawn_classes = calloc(c->cfg.nclasses ? c->cfg.nclasses : 1, sizeof(*r->spawn_classes));
    if (!r->spawn_classes) return -ENOMEM;
    uv_timer_t *timers[] = {&r->ramp_timer, &r->settle_timer, &r->stop_timer, &r->runtime_timer};
    int rc = 0;
    for (size_t i = 0; i < ACR_ARRAY_SIZE(timers) && rc == 0; i++)
        rc = uv_timer_init(c->loop, timers[i]);
    return rc;
}

void acr__run_close(acr_core_t *c)
{
    acr_run_t *r = &c->run;
    uv_timer_t *timers[] = {&r->ramp_timer, &r->settle_timer, &r->stop_timer, &r->runtime_timer};
    for (size_t i = 0; i < ACR_ARRAY_SIZE(timers); i++)
        if (timers[i]->loop && !uv_is_closing((uv_handle_t *)timers[i]))
            uv_close((uv_handle_t *)timers[i], NULL);
}

void acr__run_free(acr_core_t *c)
{
    acr_dispatch_free(c->run.dispatch);
    c->run.dispatch = NULL;
    free(c->run.spawn_classes);
    c->run.spawn_classes = NULL;
    free(c->run.host);
    c->run.host = NULL;
}
