/*
 * The automatic start, a front-end of the control core (master/core/core.h): it waits for
 * --expect-workers ready workers (bounded by --expect-workers-max-wait; a local worker that exits
 * first ends the wait), starts the test with --users, --spawn-rate and --run-time (or with the
 * scenario's load shape, master/shape.h, which then drives the users and rate) and, with
 * --headless, prints the stats table every 2 s and ends the process when the test is stopped.
 * Web mode's --autostart runs the same wait and start with the dashboard up, and the process
 * stays. Signals, the history CSV, the final outputs and the exit code are finish.c's, shared by
 * both modes. Where the run is comes from the core's state events alone.
 */
#include "master/master.h"

#include "common/log.h"
#include "common/util.h"
#include "master/report.h"
#include "master/shape.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CONSOLE_MS 2000
#define WAIT_LOG_MS 1000 /* "Waiting for workers to be ready" while waiting */

struct acr_headless {
    acr_master_t *m;
    acr_core_t *core;
    const acr_cli_opts_t *opts;
    uv_timer_t wait_timer, console_timer;
    double wait_start;
    bool started;          /* the wait is over: the test was started, refused or given up */
    bool closed;           /* the process is quitting: no more checks */
    double none_since;     /* monotonic s since when no live worker remained in a test; 0 */
    acr_run_state_t state; /* the run's state, as the core's last ACR_CORE_EV_STATE said */
};

static void console_cb(uv_timer_t *t)
{
    acr_headless_t *h = acr_container_of(t, acr_headless_t, console_timer);
    acr_core_snapshot_t s;
    acr_core_snapshot(h->core, &s);
    if (s.state == ACR_RUN_SPAWNING || s.state == ACR_RUN_RUNNING) {
        FILE *f = h->opts->json ? stderr : stdout;
        acr_report_console_stats(f, s.stats, true);
        fputc('\n', f);
        fflush(f);
    }
    acr_core_snapshot_free(&s);
}

/* ---- waiting, the test ---- */

static void end_wait(acr_headless_t *h)
{
    h->started = true;
    uv_timer_stop(&h->wait_timer);
}

static void begin_test(acr_headless_t *h)
{
    const acr_cli_opts_t *o = h->opts;
    end_wait(h);
    int rc;
    if (h->m->shape) { /* the shape gives the users and rate (master/shape.h) */
        char err[1024];
        rc = acr_shape_start(h->m->shape, NULL, o->run_time, err, sizeof err);
        if (rc > 0) { /* nil at once: nothing to run */
            acr__finish_request_quit(h->m);
            return;
        }
    } else {
        rc = acr_core_start(h->core, o->users, o->spawn_rate, NULL, o->run_time, NULL, 0);
    }
    if (rc < 0) {
        h->m->start_failed = true;
        acr__finish_request_quit(h->m);
        return;
    }
    if (!(o->run_time > 0))
        ACR_INFO("No run time limit set, use %s to interrupt",
                 o->headless ? "CTRL+C" : "CTRL+C or the dashboard's stop");
    if (o->headless && !o->only_summary)
        uv_timer_start(&h->console_timer, console_cb, CONSOLE_MS, CONSOLE_MS);
}

static void give_up(acr_headless_t *h)
{
    end_wait(h);
    h->m->gave_up = true;
    acr__finish_request_quit(h->m);
}

bool acr__headless_waiting(const acr_headless_t *h)
{
    return h && !h->started && h->state == ACR_RUN_READY;
}

static void check_wait(acr_headless_t *h, bool tick)
{
    size_t ready = acr_core_ready_workers(h->core);
    if (ready >= (size_t)h->opts->expect_workers) {
        ACR_INFO("%zu of %d workers ready, starting the test", ready, h->opts->expect_workers);
        begin_test(h);
        return;
    }
    if (acr__local_exited(h->m) > 0) {
        ACR_ERROR("A local worker exited before the test started (its error is above): giving up");
        give_up(h);
        return;
    }
    size_t failed = acr_core_load_failures(h->core);
    if (failed > 0 && ready == 0 && acr_core_live_workers(h->core) == 0) {
        ACR_ERROR("The scenario failed to load on every worker that connected (%zu; the errors "
                  "are above): giving up",
                  failed);
        give_up(h);
        return;
    }
    double waited = acr_mono_s() - h->wait_start;
    if (h->opts->expect_workers_max_wait > 0 && waited > h->opts->expect_workers_max_wait) {
        ACR_ERROR("Gave up waiting for workers to connect");
        give_up(h);
        return;
    }
    if (tick)
        ACR_INFO("Waiting for workers to be ready, %zu of %d connected", ready,
                 h->opts->expect_workers);
}

/* --headless, during a test: when no worker remains (every local worker exited, or no live
 * worker for --expect-workers-max-wait), the test ends and the run exits 1. */
static void check_gone(acr_headless_t *h)
{
    acr_master_t *m = h->m;
    if (!h->opts->headless || h->closed || m->workers_gone || m->shutting_down ||
        h->state == ACR_RUN_READY)
        return;
    const acr_cli_opts_t *o = h->opts;
    size_t live = acr_core_live_workers(h->core);
    if (m->local && acr__local_alive(m) == 0 && o->expect_workers <= o->local_workers) {
        ACR_ERROR("No worker left: all %d local workers exited during the test (above); ending "
                  "it, exit 1",
                  o->local_workers);
    } else if (live > 0) {
        h->none_since = 0;
        return;
    } else {
        double now = acr_mono_s();
        if (h->none_since == 0) h->none_since = now;
        if (!(o->expect_workers_max_wait > 0) || now - h->none_since <= o->expect_workers_max_wait)
            return;
        ACR_ERROR("No worker left: none for %.1f s (--expect-workers-max-wait); ending the test, "
                  "exit 1",
                  now - h->none_since);
    }
    m->workers_gone = true;
    acr__finish_request_quit(m);
}

static void wait_cb(uv_timer_t *t)
{
    acr_headless_t *h = acr_container_of(t, acr_headless_t, wait_timer);
    if (acr__headless_waiting(h)) check_wait(h, true);
}

static void on_core_event(acr_core_t *c, const acr_core_event_t *ev, void *ud)
{
    (void)c;
    acr_headless_t *h = ud;
    switch (ev->type) {
    case ACR_CORE_EV_STATE:
        h->state = ev->to;
        if (ev->to != ACR_RUN_READY && !h->started) end_wait(h); /* a test from the API */
        if (ev->to != ACR_RUN_SPAWNING && ev->to != ACR_RUN_RUNNING)
            uv_timer_stop(&h->console_timer);
        if (ev->to == ACR_RUN_STOPPED && h->opts->headless) acr__finish_request_quit(h->m);
        break;
    case ACR_CORE_EV_WORKERS:
        if (acr__headless_waiting(h))
            check_wait(h, false);
        else if (h->started)
            check_gone(h);
        break;
    case ACR_CORE_EV_QUIT_DONE:
        end_wait(h);
        break;
    }
}

int acr__headless_start(acr_master_t *m, acr_headless_t **out)
{
    acr_headless_t *h = calloc(1, sizeof(*h));
    *out = h;
    if (!h) return -ENOMEM;
    h->m = m;
    h->core = m->core;
    h->opts = m->opts;
    int rc = uv_timer_init(m->loop, &h->wait_timer);
    if (rc == 0) rc = uv_timer_init(m->loop, &h->console_timer);
    if (rc == 0) rc = acr_core_subscribe(h->core, on_core_event, h);
    if (rc < 0) return rc;
    h->wait_start = acr_mono_s();
    acr_core_snapshot_t s;
    acr_core_snapshot(h->core, &s);
    acr_core_snapshot_free(&s);
    h->state = s.state;
    ACR_INFO("Waiting for workers to be ready, %zu of %d connected", s.ready_workers,
             h->opts->expect_workers);
    uv_timer_start(&h->wait_timer, wait_cb, WAIT_LOG_MS, WAIT_LOG_MS);
    check_wait(h, false);
    return 0;
}

static void close_handle(uv_handle_t *hd)
{
    if (hd->loop && !uv_is_closing(hd)) uv_close(hd, NULL);
}

void acr__headless_close(acr_headless_t *h)
{
    if (!h) return;
    h->started = true;
    h->closed = true;
    close_handle((uv_handle_t *)&h->wait_timer);
    close_handle((uv_handle_t *)&h->console_timer);
}

void acr__headless_free(acr_headless_t *h)
{
    free(h);
}
