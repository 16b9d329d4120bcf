/*
 * The headless console, a front-end of the control core (master/core/core.h): it subscribes to the
 * core, waits for --expect-workers ready workers (bounded by --expect-workers-max-wait), starts
 * the test with --users, --spawn-rate and --run-time, prints the stats table every 2 s, appends a
 * history CSV row every 1 s, stops the test on SIGTERM/SIGINT (a second signal skips the remaining
 * waits), asks the core to quit the workers once the run is stopped, then prints the final tables,
 * writes the CSV files and the --json document, sets the exit code and ends the process
 * (acr__master_shutdown). Where the run is comes from the core's state events alone; the console
 * only adds whether it is quitting and whether it is done.
 */
#include "master/master.h"

#include "common/log.h"
#include "common/util.h"
#include "master/report.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define CONSOLE_MS 2000
#define HISTORY_MS 1000
#define WAIT_LOG_MS 1000 /* "Waiting for workers to be ready" while waiting */

struct acr_headless {
    acr_master_t *m;
    acr_core_t *core;
    const acr_cli_opts_t *opts;
    uv_timer_t wait_timer, console_timer, history_timer;
    uv_signal_t sigint, sigterm;
    int signals;
    double wait_start;
    FILE *history_csv;
    bool gave_up;      /* no test: the workers never came */
    bool start_failed; /* the core refused the test */
    bool quitting, finished;
    acr_run_state_t state; /* the run's state, as the core's last ACR_CORE_EV_STATE said */
    /** The workers as they were when the quit began (they leave the registry when they quit);
     *  the final JSON lists them. */
    acr_core_snapshot_t final;
    bool have_final;
};

static FILE *console(const acr_headless_t *h)
{
    return h->opts->json ? stderr : stdout;
}

static void finish(acr_headless_t *h);
static void begin_quit(acr_headless_t *h);

/* ---- CSV ---- */

static FILE *csv_open(const acr_headless_t *h, const char *suffix, const char *mode)
{
    char path[4096];
    snprintf(path, sizeof path, "%s_%s.csv", h->opts->csv, suffix);
    FILE *f = fopen(path, mode);
    if (!f) ACR_ERROR("cannot write %s: %s", path, strerror(errno));
    return f;
}

static void csv_write(acr_headless_t *h, const char *suffix, acr_stats_t *stats,
                      int (*fn)(FILE *, acr_stats_t *))
{
    FILE *f = csv_open(h, suffix, "w");
    if (!f) return;
    int rc = fn(f, stats);
    if (fclose(f) != 0 || rc < 0) ACR_ERROR("error writing %s_%s.csv", h->opts->csv, suffix);
}

static void history_row(acr_headless_t *h)
{
    if (!h->history_csv) return;
    acr_core_snapshot_t s;
    acr_core_snapshot(h->core, &s);
    acr_report_csv_history_rows(h->history_csv, s.stats, s.user_count, (long)acr_now(),
                                h->opts->csv_full_history);
    acr_core_snapshot_free(&s);
    fflush(h->history_csv);
}

static void history_cb(uv_timer_t *t)
{
    history_row(acr_container_of(t, acr_headless_t, history_timer));
}

static void console_cb(uv_timer_t *t)
{
    acr_headless_t *h = acr_container_of(t, acr_headless_t, console_timer);
    acr_core_snapshot_t s;
    acr_core_snapshot(h->core, &s);
    if (s.state == ACR_RUN_SPAWNING || s.state == ACR_RUN_RUNNING) {
        FILE *f = console(h);
        acr_report_console_stats(f, s.stats, true);
        fputc('\n', f);
        fflush(f);
    }
    acr_core_snapshot_free(&s);
}

/* ---- waiting, the test, the quit ---- */

static void begin_test(acr_headless_t *h)
{
    const acr_cli_opts_t *o = h->opts;
    uv_timer_stop(&h->wait_timer);
    if (acr_core_start(h->core, o->users, o->spawn_rate, NULL, o->run_time, NULL, 0) < 0) {
        h->start_failed = true;
        begin_quit(h);
        return;
    }
    if (!(o->run_time > 0)) ACR_INFO("No run time limit set, use CTRL+C to interrupt");
    if (!o->only_summary) uv_timer_start(&h->console_timer, console_cb, CONSOLE_MS, CONSOLE_MS);
    if (h->history_csv) uv_timer_start(&h->history_timer, history_cb, HISTORY_MS, HISTORY_MS);
}

/* Waiting: the run is ready and the console has not begun the quit. */
static bool waiting(acr_headless_t *h)
{
    return !h->quitting && !h->finished && h->state == ACR_RUN_READY;
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
        h->gave_up = true;
        begin_quit(h);
        return;
    }
    double waited = acr_mono_s() - h->wait_start;
    if (h->opts->expect_workers_max_wait > 0 && waited > h->opts->expect_workers_max_wait) {
        ACR_ERROR("Gave up waiting for workers to connect");
        h->gave_up = true;
        begin_quit(h);
        return;
    }
    if (tick)
        ACR_INFO("Waiting for workers to be ready, %zu of %d connected", ready,
                 h->opts->expect_workers);
}

static void wait_cb(uv_timer_t *t)
{
    acr_headless_t *h = acr_container_of(t, acr_headless_t, wait_timer);
    if (waiting(h)) check_wait(h, true);
}

static void begin_quit(acr_headless_t *h)
{
    if (h->quitting || h->finished) return;
    h->quitting = true;
    if (!h->have_final) {
        if (acr_core_snapshot(h->core, &h->final) < 0)
            ACR_ERROR("out of memory keeping the workers for the report");
        else
            h->have_final = true;
    }
    uv_timer_stop(&h->wait_timer);
    uv_timer_stop(&h->console_timer);
    uv_timer_stop(&h->history_timer);
    acr_core_quit(h->core); /* ACR_CORE_EV_QUIT_DONE then finishes, possibly at once */
}

static void on_core_event(acr_core_t *c, const acr_core_event_t *ev, void *ud)
{
    (void)c;
    acr_headless_t *h = ud;
    switch (ev->type) {
    case ACR_CORE_EV_STATE:
        h->state = ev->to;
        if (ev->to == ACR_RUN_STOPPED) begin_quit(h);
        break;
    case ACR_CORE_EV_WORKERS:
        if (waiting(h)) check_wait(h, false);
        break;
    case ACR_CORE_EV_QUIT_DONE:
        finish(h);
        break;
    }
}

static void signal_cb(uv_signal_t *sh, int signum)
{
    acr_headless_t *h = sh->data;
    h->signals++;
    if (h->signals > 1) {
        ACR_WARN("Got %s again, shutting down without waiting", strsignal(signum));
        begin_quit(h);
        finish(h);
        return;
    }
    ACR_INFO("Got %s signal", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    if (h->quitting || h->finished) return;
    switch (h->state) {
    case ACR_RUN_SPAWNING:
    case ACR_RUN_RUNNING:
        acr_core_stop(h->core);
        break;
    case ACR_RUN_STOPPING:
        break;
    default: /* ready (still waiting for workers) or stopped */
        if (waiting(h)) {
            ACR_ERROR("Stopped while waiting for workers (%zu of %d ready): no test ran",
                      acr_core_ready_workers(h->core), h->opts->expect_workers);
            h->gave_up = true;
        }
        begin_quit(h);
        break;
    }
}

/* ---- the end ---- */

static void print_json(acr_headless_t *h, const acr_core_snapshot_t *s)
{
    const acr_core_snapshot_t *ws = h->have_final ? &h->final : s;
    acr_report_meta_t meta = {
        .state = acr_run_state_name(s->state),
        .user_count = s->user_count,
        .run_time = s->run_time,
        .test_id = s->test_id,
        .workers = ws->workers,
        .nworkers = ws->nworkers,
        .now = acr_now(),
        .lost_reports = s->lost_reports,
        .reports_merged = s->reports_merged,
        .current = s->current,
    };
    char *doc = acr_report_json(s->stats, &meta);
    if (!doc) {
        ACR_ERROR("out of memory building the JSON report");
        return;
    }
    fputs(doc, stdout);
    size_t len = strlen(doc);
    if (len == 0 || doc[len - 1] != '\n') fputc('\n', stdout);
    fflush(stdout);
    free(doc);
}

/* PREFIX_lost_reports.csv: every node id that lost report intervals in this test, then the total.
 * The Locust-format files keep Locust's exact columns; this one is acrida's own. */
static void csv_lost(acr_headless_t *h, const acr_core_snapshot_t *s)
{
    FILE *f = csv_open(h, "lost_reports", "w");
    if (!f) return;
    acr_report_lost_t *rows = calloc(s->nlost ? s->nlost : 1, sizeof(*rows));
    int rc = -ENOMEM;
    if (rows) {
        for (size_t i = 0; i < s->nlost; i++)
            rows[i] = (acr_report_lost_t){s->lost[i].worker, s->lost[i].lost};
        rc = acr_report_csv_lost(f, rows, s->nlost, s->lost_reports);
    }
    free(rows);
    if (fclose(f) != 0 || rc < 0) ACR_ERROR("error writing %s_lost_reports.csv", h->opts->csv);
}

/* The exit code of a run that reached its end, in the precedence of acr_master_exit_t. */
static int final_exit_code(const acr_headless_t *h, const acr_core_snapshot_t *s)
{
    size_t nerr = 0, nexc = 0;
    if (h->gave_up || h->start_failed) return ACR_EXIT_FATAL;
    if (s->lost_reports && !h->opts->allow_lost_reports) return ACR_EXIT_INCOMPLETE;
    acr_stats_errors(s->stats, &nerr);
    acr_stats_exceptions(s->stats, &nexc);
    if (nerr || nexc) return h->opts->exit_code_on_error;
    return ACR_EXIT_OK;
}

static void print_tables(acr_headless_t *h, const acr_core_snapshot_t *s)
{
    FILE *f = console(h);
    acr_report_console_stats(f, s->stats, false);
    fputc('\n', f);
    acr_report_console_percentiles(f, s->stats);
    fputc('\n', f);
    acr_report_console_failures(f, s->stats);
    acr_report_console_exceptions(f, s->stats);
    acr_report_console_lost(f, s->lost_reports);
    fflush(f);
}

static void finish(acr_headless_t *h)
{
    if (h->finished) return;
    h->finished = true;
    uv_timer_stop(&h->wait_timer);
    uv_timer_stop(&h->console_timer);
    uv_timer_stop(&h->history_timer);
    acr_core_finish(h->core);
    acr_core_snapshot_t s;
    acr_core_snapshot(h->core, &s);
    if (s.lost_reports)
        ACR_WARN("%llu worker report interval(s) were lost during the test", s.lost_reports);
    if (s.malformed) ACR_WARN("%llu malformed frame(s) were dropped", s.malformed);
    h->m->exit_code = final_exit_code(h, &s);
    ACR_INFO("Shutting down (exit code %d)", h->m->exit_code);
    if (!h->gave_up) print_tables(h, &s);
    if (h->opts->csv) {
        history_row(h);
        csv_write(h, "stats", s.stats, acr_report_csv_stats);
        csv_write(h, "failures", s.stats, acr_report_csv_failures);
        csv_write(h, "exceptions", s.stats, acr_report_csv_exceptions);
        csv_lost(h, &s);
    }
    if (h->history_csv) {
        fclose(h->history_csv);
        h->history_csv = NULL;
    }
    if (h->opts->json && !h->gave_up) print_json(h, &s);
    acr_core_snapshot_free(&s);
    acr__master_shutdown(h->m);
}

int acr__headless_start(acr_master_t *m, acr_headless_t **out)
{
    acr_headless_t *h = calloc(1, sizeof(*h));
    *out = h;
    if (!h) return -ENOMEM;
    h->m = m;
    h->core = m->core;
    h->opts = m->opts;
    uv_timer_t *timers[] = {&h->wait_timer, &h->console_timer, &h->history_timer};
    int rc = 0;
    for (size_t i = 0; i < ACR_ARRAY_SIZE(timers) && rc == 0; i++)
        rc = uv_timer_init(m->loop, timers[i]);
    if (rc == 0) rc = uv_signal_init(m->loop, &h->sigint);
    if (rc == 0) rc = uv_signal_init(m->loop, &h->sigterm);
    if (rc == 0) rc = acr_core_subscribe(h->core, on_core_event, h);
    if (rc < 0) return rc;
    h->sigint.data = h->sigterm.data = h;
    uv_signal_start(&h->sigint, signal_cb, SIGINT);
    uv_signal_start(&h->sigterm, signal_cb, SIGTERM);
    if (h->opts->csv) {
        h->history_csv = csv_open(h, "stats_history", "w");
        if (!h->history_csv) return -EIO;
        acr_report_csv_history_header(h->history_csv);
        fflush(h->history_csv);
    }
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
    close_handle((uv_handle_t *)&h->wait_timer);
    close_handle((uv_handle_t *)&h->console_timer);
    close_handle((uv_handle_t *)&h->history_timer);
    close_handle((uv_handle_t *)&h->sigint);
    close_handle((uv_handle_t *)&h->sigterm);
}

void acr__headless_free(acr_headless_t *h)
{
    if (!h) return;
    if (h->history_csv) fclose(h->history_csv);
    if (h->have_final) acr_core_snapshot_free(&h->final);
    free(h);
}
