/*
 * The master's run state machine (docs/locust-compatibility.md): ready -> spawning -> running ->
 * stopping -> stopped, with one transition function that checks legality and logs from -> to.
 * Starting a test drives the dispatcher's ramp with a timer and sends one `spawn` per worker per
 * iteration; a change in the live workers rebalances at once. A graceful stop sends `stop` and
 * waits, bounded, for every worker's client_stopped and final report, so the state always reaches
 * stopped.
 */
#include "master/master.h"

#include "common/log.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SETTLE_S 1.0 /* Locust's wait for the workers' reports after the last iteration */
#define FINAL_GRACE_S                                                                              \
    3.5 /* after client_stopped, how long an acrida worker's final report may lag */
#define STOP_EXTRA_S 70.0 /* the stop wait is stop_timeout + this */
#define RAMP_HOLD_MS 1000 /* with no live worker, the ramp looks again after this */

static const char *const run_names[ACR_RUN__COUNT] = {"ready", "spawning", "running", "stopping",
                                                      "stopped"};

/* legal[from][to] */
static const bool legal[ACR_RUN__COUNT][ACR_RUN__COUNT] = {
    [ACR_RUN_READY] = {[ACR_RUN_SPAWNING] = true},
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

bool acr__run_active(const acr_master_t *m)
{
    return m->state == ACR_RUN_SPAWNING || m->state == ACR_RUN_RUNNING ||
           m->state == ACR_RUN_STOPPING;
}

int acr__run_set_state(acr_master_t *m, acr_run_state_t to)
{
    acr_run_state_t from = m->state;
    if (!acr_run_transition_legal(from, to)) {
        ACR_ERROR("illegal run state transition %s -> %s", acr_run_state_name(from),
                  acr_run_state_name(to));
        return -EINVAL;
    }
    ACR_DEBUG("run state: %s -> %s", acr_run_state_name(from), acr_run_state_name(to));
    m->state = to;
    if (to == ACR_RUN_STOPPED && m->on_stopped) m->on_stopped(m);
    return 0;
}

static uint64_t ms(double s)
{
    return s <= 0 ? 0 : (uint64_t)ceil(s * 1000.0);
}

/* ---- spawning ---- */

static void send_spawns(acr_master_t *m)
{
    acr_dispatch_t *d = m->dispatch;
    size_t nc = acr_dispatch_nclasses(d);
    long total = 0;
    size_t sent = 0;
    for (size_t i = 0; i < acr_dispatch_nentries(d); i++) {
        const char *id = acr_dispatch_entry_id(d, i);
        const int64_t *counts = acr_dispatch_entry_counts(d, i);
        acr_mworker_t *w = acr__registry_find(m, id);
        if (!w || w->state == ACR_WORKER_MISSING) continue;
        for (size_t c = 0; c < nc; c++) {
            m->spawn_classes[c].name = (char *)acr_dispatch_class_name(d, c);
            m->spawn_classes[c].count = counts[c];
            total += (long)counts[c];
        }
        /* workers drop a spawn whose timestamp is not newer than the last one they took */
        double ts = acr_now();
        if (ts <= m->last_spawn_ts) ts = m->last_spawn_ts + 1e-6;
        m->last_spawn_ts = ts;
        acr_buf_reset(&m->sendbuf);
        if (acr_msg_encode_spawn(&m->sendbuf, ts, m->spawn_classes, nc, m->opts->host,
                                 m->opts->stop_timeout, id) < 0) {
            ACR_ERROR("out of memory encoding spawn");
            return;
        }
        acr__registry_send_buf(m, id);
        w->spawns_sent++;
        sent++;
    }
    ACR_DEBUG("Sending spawn messages for %ld total users to %zu worker(s)", total, sent);
}

static void ramp_step(acr_master_t *m);

static void ramp_cb(uv_timer_t *t)
{
    acr_master_t *m = acr_container_of(t, acr_master_t, ramp_timer);
    if (m->state != ACR_RUN_SPAWNING || !m->dispatch) return;
    if (acr__registry_live(m) == 0) {
        /* no worker to place users on: hold the ramp until one (re)joins */
        uv_timer_start(&m->ramp_timer, ramp_cb, RAMP_HOLD_MS, 0);
        return;
    }
    ramp_step(m);
}

static void settle_cb(uv_timer_t *t)
{
    acr_master_t *m = acr_container_of(t, acr_master_t, settle_timer);
    m->settle_expired = true;
    acr__run_check(m);
}

static void ramp_step(acr_master_t *m)
{
    for (;;) {
        double delay = 0;
        if (acr_dispatch_next(m->dispatch, &delay) == 0) {
            m->ramp_sent = true;
            m->settle_expired = false;
            uv_timer_start(&m->settle_timer, settle_cb, ms(SETTLE_S), 0);
            acr__run_check(m);
            return;
        }
        send_spawns(m);
        if (delay > 0) {
            uv_timer_start(&m->ramp_timer, ramp_cb, ms(delay), 0);
            return;
        }
    }
}

int acr__run_start(acr_master_t *m, long users, double rate)
{
    size_t live = acr__registry_live(m);
    if (live == 0) {
        ACR_WARN("You can't start a distributed test before at least one worker processes has "
                 "connected");
        return -EAGAIN;
    }
    if (m->state == ACR_RUN_STOPPING) return -EBUSY;
    if (!m->dispatch) {
        const char **ids = calloc(live, sizeof(*ids));
        if (!ids) return -ENOMEM;
        size_t k = 0;
        for (size_t i = 0; i < m->nworkers; i++)
            if (m->workers[i]->state != ACR_WORKER_MISSING) ids[k++] = m->workers[i]->id;
        int rc = acr_dispatch_new(m->classes, m->nclasses, ids, k, &m->dispatch);
        free(ids);
        if (rc < 0) {
            ACR_ERROR("cannot create the dispatcher: %s", strerror(-rc));
            return rc;
        }
    }
    m->target_users = users;
    m->spawn_rate = rate;
    ACR_INFO("Sending spawn jobs of %ld users at %.2f spawn rate to %zu ready workers", users, rate,
             live);
    if (rate / (double)live > 100)
        ACR_WARN("Your selected spawn rate is very high (>100/worker), and this is known to "
                 "sometimes cause issues. Do you really need to ramp up that fast?");
    if (m->state != ACR_RUN_SPAWNING && m->state != ACR_RUN_RUNNING) {
        acr__agg_test_start(m);
        m->test_start = acr_now();
        m->test_start_mono = acr_mono_s();
        snprintf(m->test_id, sizeof m->test_id, "%llx-%x",
                 (unsigned long long)(m->test_start * 1e3), (unsigned)uv_os_getpid());
        for (size_t i = 0; i < m->nworkers; i++)
            m->workers[i]->spawns_sent = m->workers[i]->spawns_done = 0;
    }
    if (m->state != ACR_RUN_SPAWNING) acr__run_set_state(m, ACR_RUN_SPAWNING);
    uv_timer_stop(&m->ramp_timer);
    uv_timer_stop(&m->settle_timer);
    m->ramp_sent = false;
    acr_dispatch_new_dispatch(m->dispatch, users, rate);
    ramp_step(m);
    return 0;
}

void acr__run_workers_changed(acr_master_t *m, acr_mworker_t *added, const char *removed_id)
{
    if (!m->dispatch) return;
    int rc = 0;
    if (added) rc = acr_dispatch_add_worker(m->dispatch, added->id);
    if (removed_id) {
        int r2 = acr_dispatch_remove_worker(m->dispatch, removed_id);
        if (r2 != -ENOENT) rc = r2;
    }
    if (rc < 0) ACR_ERROR("rebalance failed: %s", strerror(-rc));
    if (acr_dispatch_take_rebalance(m->dispatch)) {
        ACR_INFO("Rebalancing %ld users over %zu workers", acr_dispatch_user_count(m->dispatch),
                 acr_dispatch_nworkers(m->dispatch));
        send_spawns(m);
    }
}

/* ---- waits ---- */

static void log_classes(acr_master_t *m, const char *prefix)
{
    acr_buf_t b = {0};
    long total = 0;
    acr_buf_appendf(&b, "{");
    /* summed over the live workers, in the dispatcher's (sorted) class order */
    for (size_t c = 0; c < m->nclasses; c++) {
        const char *name =
            m->dispatch ? acr_dispatch_class_name(m->dispatch, c) : m->classes[c].name;
        long n = 0;
        for (size_t i = 0; i < m->nworkers; i++) {
            const acr_mworker_t *w = m->workers[i];
            if (w->state == ACR_WORKER_MISSING) continue;
            for (size_t k = 0; k < w->nclasses; k++)
                if (strcmp(w->classes[k].name, name) == 0) n += (long)w->classes[k].count;
        }
        total += n;
        acr_buf_appendf(&b, "%s\"%s\": %ld", c ? ", " : "", name, n);
    }
    acr_buf_appendf(&b, "} (%ld total users)", total);
    ACR_INFO("%s: %s", prefix, b.data ? b.data : "");
    acr_buf_free(&b);
}

static void stop_finished(acr_master_t *m)
{
    uv_timer_stop(&m->stop_timer);
    acr__run_set_state(m, ACR_RUN_STOPPED);
}

void acr__run_check(acr_master_t *m)
{
    if (m->state == ACR_RUN_SPAWNING && m->ramp_sent) {
        bool all = true;
        for (size_t i = 0; i < m->nworkers; i++) {
            const acr_mworker_t *w = m->workers[i];
            if (w->state != ACR_WORKER_MISSING && w->spawns_done < w->spawns_sent) all = false;
        }
        if (all || m->settle_expired) {
            uv_timer_stop(&m->settle_timer);
            acr__run_set_state(m, ACR_RUN_RUNNING);
            log_classes(m, all ? "All users spawned"
                               : "Spawning is complete and report waittime is expired, but not "
                                 "all reports received from workers");
            if (m->opts->reset_stats) {
                ACR_INFO("Resetting stats");
                acr_stats_reset(m->stats, acr_now());
            }
        }
    }
    if (m->state == ACR_RUN_STOPPING) {
        double now = acr_mono_s();
        bool all = true;
        for (size_t i = 0; i < m->nworkers; i++) {
            acr_mworker_t *w = m->workers[i];
            if (!w->stop_pending) continue;
            if (w->state == ACR_WORKER_MISSING) {
                w->stop_pending = false;
                continue;
            }
            if (w->stopped_msg &&
                (w->final_seen || !w->acrida || now - w->stopped_at > FINAL_GRACE_S)) {
                if (!w->final_seen && w->acrida)
                    ACR_WARN("worker %s: no final report after client_stopped", w->id);
                w->stop_pending = false;
                continue;
            }
            all = false;
        }
        if (all) stop_finished(m);
    }
}

static void stop_timeout_cb(uv_timer_t *t)
{
    acr_master_t *m = acr_container_of(t, acr_master_t, stop_timer);
    if (m->state != ACR_RUN_STOPPING) return;
    for (size_t i = 0; i < m->nworkers; i++) {
        acr_mworker_t *w = m->workers[i];
        if (!w->stop_pending) continue;
        ACR_WARN("worker %s did not answer the stop (%s)", w->id,
                 w->stopped_msg ? "no final report" : "no client_stopped");
        w->stop_pending = false;
    }
    stop_finished(m);
}

void acr__run_stop(acr_master_t *m)
{
    if (m->state != ACR_RUN_SPAWNING && m->state != ACR_RUN_RUNNING) return;
    acr__run_set_state(m, ACR_RUN_STOPPING);
    uv_timer_stop(&m->ramp_timer);
    uv_timer_stop(&m->settle_timer);
    acr_dispatch_free(m->dispatch);
    m->dispatch = NULL;
    size_t waiting = 0;
    for (size_t i = 0; i < m->nworkers; i++) {
        acr_mworker_t *w = m->workers[i];
        w->stopped_msg = false;
        w->final_seen = false;
        w->stop_pending = w->state != ACR_WORKER_MISSING;
        waiting += w->stop_pending;
        acr__registry_send_nil(m, "stop", w->id);
    }
    double limit = (m->opts->stop_timeout > 0 ? m->opts->stop_timeout : 0) + STOP_EXTRA_S;
    ACR_INFO("Stopping the test: waiting for %zu workers to stop (at most %.0f s)", waiting, limit);
    uv_timer_start(&m->stop_timer, stop_timeout_cb, ms(limit), 0);
    acr__run_check(m);
}

int acr__run_init(acr_master_t *m)
{
    m->state = ACR_RUN_READY;
    m->spawn_classes = calloc(m->nclasses ? m->nclasses : 1, sizeof(*m->spawn_classes));
    if (!m->spawn_classes) return -ENOMEM;
    int rc = uv_timer_init(m->loop, &m->ramp_timer);
    if (rc == 0) rc = uv_timer_init(m->loop, &m->settle_timer);
    if (rc == 0) rc = uv_timer_init(m->loop, &m->stop_timer);
    return rc;
}

void acr__run_free(acr_master_t *m)
{
    acr_dispatch_free(m->dispatch);
    m->dispatch = NULL;
    free(m->spawn_classes);
    m->spawn_classes = NULL;
}
