/*
 * The end of a test and of the process, shared by both front-ends (master.h): SIGINT/SIGTERM (the
 * first stops a test under way and ends the process once the run is stopped; a second skips the
 * waits), the --csv history file (a row every second from the process's start, as Locust writes
 * it), the outputs of each test in web mode (the CSV files and the --html report, rewritten each
 * time a test is stopped so that files never lag the dashboard), and the end: `quit` to the
 * workers, then the final tables, the --check lines, the CSV files, the --html report, the --json
 * document and the exit code (acr_master_exit_t's precedence).
 */
#include "master/master.h"

#include "common/log.h"
#include "common/util.h"
#include "master/check.h"
#include "master/history.h"
#include "master/html.h"
#include "master/report.h"
#include "master/web/web.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define HISTORY_MS 1000

struct acr_finish {
    acr_master_t *m;
    acr_core_t *core;
    const acr_cli_opts_t *opts;
    uv_timer_t history_timer;
    uv_signal_t sigint, sigterm;
    int signals;
    FILE *history_csv;
    acr_run_state_t state; /* the run's state, as the core's last ACR_CORE_EV_STATE said */
    bool quit_pending;     /* quit once the run is stopped */
    bool quitting, finished;
    double test_start, test_end; /* epoch s of the last test's start and stop; 0 = none */
    /** The workers as they were when the quit began (they leave the registry when they quit);
     *  the final JSON and HTML list them. */
    acr_core_snapshot_t final;
    bool have_final;
};

static FILE *console(const acr_finish_t *f)
{
    return f->opts->json ? stderr : stdout;
}

static void finish(acr_finish_t *f);

/* ---- CSV, HTML ---- */

static FILE *csv_open(const acr_finish_t *f, const char *suffix, const char *mode)
{
    char path[4096];
    snprintf(path, sizeof path, "%s_%s.csv", f->opts->csv, suffix);
    FILE *fp = fopen(path, mode);
    if (!fp) ACR_ERROR("cannot write %s: %s", path, strerror(errno));
    return fp;
}

static void csv_write(acr_finish_t *f, const char *suffix, acr_stats_t *stats,
                      int (*fn)(FILE *, acr_stats_t *))
{
    FILE *fp = csv_open(f, suffix, "w");
    if (!fp) return;
    int rc = fn(fp, stats);
    if (fclose(fp) != 0 || rc < 0) ACR_ERROR("error writing %s_%s.csv", f->opts->csv, suffix);
}

/* PREFIX_lost_reports.csv: every node id that lost report intervals in this test, then the total.
 * The Locust-format files keep Locust's exact columns; this one is acrida's own. */
static void csv_lost(acr_finish_t *f, const acr_core_snapshot_t *s)
{
    FILE *fp = csv_open(f, "lost_reports", "w");
    if (!fp) return;
    acr_report_lost_t *rows = calloc(s->nlost ? s->nlost : 1, sizeof(*rows));
    int rc = -ENOMEM;
    if (rows) {
        for (size_t i = 0; i < s->nlost; i++)
            rows[i] = (acr_report_lost_t){s->lost[i].worker, s->lost[i].lost};
        rc = acr_report_csv_lost(fp, rows, s->nlost, s->lost_reports);
    }
    free(rows);
    if (fclose(fp) != 0 || rc < 0) ACR_ERROR("error writing %s_lost_reports.csv", f->opts->csv);
}

static void csv_files(acr_finish_t *f, const acr_core_snapshot_t *s)
{
    csv_write(f, "stats", s->stats, acr_report_csv_stats);
    csv_write(f, "failures", s->stats, acr_report_csv_failures);
    csv_write(f, "exceptions", s->stats, acr_report_csv_exceptions);
    csv_lost(f, s);
    csv_write(f, "aborted_at_stop", s->stats, acr_report_csv_aborted);
}

static void history_row(acr_finish_t *f)
{
    if (!f->history_csv) return;
    acr_core_snapshot_t s;
    acr_core_snapshot(f->core, &s);
    acr_report_csv_history_rows(f->history_csv, s.stats, s.user_count, (long)acr_now(),
                                f->opts->csv_full_history);
    acr_core_snapshot_free(&s);
    fflush(f->history_csv);
}

static void history_cb(uv_timer_t *t)
{
    history_row(acr_container_of(t, acr_finish_t, history_timer));
}

/* The --html report of the last test from @s (@ws: the rows of its workers). */
static void html_file(acr_finish_t *f, const acr_core_snapshot_t *s, const acr_core_snapshot_t *ws)
{
    const char *slash = strrchr(f->opts->scenario, '/');
    const char *host = acr__web_test_host(f->m->web);
    acr_core_snapshot_t view = *s;
    view.workers = ws->workers;
    view.nworkers = ws->nworkers;
    acr_html_input_t in = {
        .snap = &view,
        .history = f->m->history,
        .scenario = slash ? slash + 1 : f->opts->scenario,
        .host = host && *host ? host : f->opts->host,
        .users = s->target_users,
        .spawn_rate = s->spawn_rate,
        .start_time = f->test_start,
        .end_time = f->test_end,
    };
    acr_html_write(&in, f->opts->html); /* logs its own errors */
}

/* Web mode: the test was stopped; its files are written now so that they never lag. */
static void test_outputs(acr_finish_t *f)
{
    if (!f->opts->csv && !f->opts->html) return;
    acr_core_snapshot_t s;
    acr_core_snapshot(f->core, &s);
    if (f->opts->csv) csv_files(f, &s);
    if (f->opts->html) html_file(f, &s, &s);
    acr_core_snapshot_free(&s);
}

/* ---- the quit ---- */

static void begin_quit(acr_finish_t *f)
{
    if (f->quitting || f->finished) return;
    f->quitting = true;
    f->quit_pending = false;
    if (!f->have_final) {
        if (acr_core_snapshot(f->core, &f->final) < 0)
            ACR_ERROR("out of memory keeping the workers for the report");
        else
            f->have_final = true;
    }
    uv_timer_stop(&f->history_timer);
    acr__headless_close(f->m->headless); /* no wait, start or table from now on */
    acr_core_quit(f->core);              /* ACR_CORE_EV_QUIT_DONE then finishes, possibly at once */
}

void acr__finish_request_quit(acr_master_t *m)
{
    acr_finish_t *f = m->finish;
    if (!f || f->quitting || f->finished) return;
    switch (f->state) {
    case ACR_RUN_SPAWNING:
    case ACR_RUN_RUNNING:
        f->quit_pending = true;
        if (acr_core_stop(f->core) < 0) begin_quit(f);
        break;
    case ACR_RUN_STOPPING:
        f->quit_pending = true; /* the stop completes first, then the quit */
        break;
    default: /* ready or stopped */
        begin_quit(f);
        break;
    }
}

static void on_core_event(acr_core_t *c, const acr_core_event_t *ev, void *ud)
{
    (void)c;
    acr_finish_t *f = ud;
    switch (ev->type) {
    case ACR_CORE_EV_STATE:
        f->state = ev->to;
        if (ev->to == ACR_RUN_SPAWNING &&
            (ev->from == ACR_RUN_READY || ev->from == ACR_RUN_STOPPED)) {
            f->test_start = acr_now();
            f->test_end = 0;
        }
        if (ev->to == ACR_RUN_STOPPED) {
            f->test_end = acr_now();
            if (!f->opts->headless && !f->quitting && !f->finished) test_outputs(f);
            if (f->quit_pending) begin_quit(f);
        }
        break;
    case ACR_CORE_EV_WORKERS:
        break;
    case ACR_CORE_EV_QUIT_DONE:
        finish(f);
        break;
    }
}

static void signal_cb(uv_signal_t *sh, int signum)
{
    acr_finish_t *f = sh->data;
    f->signals++;
    if (f->signals > 1) {
        ACR_WARN("Got %s again, shutting down without waiting", strsignal(signum));
        begin_quit(f);
        finish(f);
        return;
    }
    ACR_INFO("Got %s signal", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    if (f->quitting || f->finished) return;
    if (acr__headless_waiting(f->m->headless)) {
        ACR_ERROR("Stopped while waiting for workers (%zu of %d ready): no test ran",
                  acr_core_ready_workers(f->core), f->opts->expect_workers);
        f->m->gave_up = true;
    }
    acr__finish_request_quit(f->m);
}

/* ---- the end ---- */

static void print_json(acr_finish_t *f, const acr_core_snapshot_t *s)
{
    const acr_core_snapshot_t *ws = f->have_final ? &f->final : s;
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

/* The exit code of a process that reached its end, in the precedence of acr_master_exit_t. */
static int final_exit_code(const acr_finish_t *f, const acr_core_snapshot_t *s, size_t failed)
{
    size_t nerr = 0, nexc = 0;
    if (f->m->gave_up || f->m->start_failed || f->m->workers_gone || acr__local_crashed(f->m))
        return ACR_EXIT_FATAL;
    if (s->nquarantined) return ACR_EXIT_FATAL; /* a class stalled a worker */
    if (s->lost_reports && !f->opts->allow_lost_reports) return ACR_EXIT_INCOMPLETE;
    if (failed) return ACR_EXIT_CHECK;
    acr_stats_errors(s->stats, &nerr);
    acr_stats_exceptions(s->stats, &nexc);
    if (nerr || nexc) return f->opts->exit_code_on_error;
    return ACR_EXIT_OK;
}

static void print_tables(acr_finish_t *f, const acr_core_snapshot_t *s)
{
    FILE *fp = console(f);
    acr_report_console_stats(fp, s->stats, false);
    fputc('\n', fp);
    acr_report_console_percentiles(fp, s->stats);
    fputc('\n', fp);
    acr_report_console_failures(fp, s->stats);
    acr_report_console_exceptions(fp, s->stats);
    acr_report_console_lost(fp, s->lost_reports);
    for (size_t i = 0; i < s->nquarantined; i++) { /* master/core/quarantine.c */
        const acr_core_quarantine_t *q = &s->quarantined[i];
        fputs(i ? "class " : "\nclass ", fp); /* names from workers: escaped */
        acr_log_escape_file(fp, q->cls);
        fputs(" quarantined: stalled worker ", fp);
        acr_log_escape_file(fp, q->worker);
        fprintf(fp, " for %.1f s in task ", q->seconds);
        acr_log_escape_file(fp, q->task);
        fputc('\n', fp);
    }
    acr_report_console_aborted(fp, s->stats);
    fflush(fp);
}

static void finish(acr_finish_t *f)
{
    if (f->finished) return;
    f->finished = true;
    uv_timer_stop(&f->history_timer);
    acr__headless_close(f->m->headless);
    acr_core_finish(f->core);
    acr_core_snapshot_t s;
    acr_core_snapshot(f->core, &s);
    if (s.lost_reports)
        ACR_WARN("%llu worker report interval(s) were lost during the test", s.lost_reports);
    if (s.malformed) ACR_WARN("%llu malformed frame(s) were dropped", s.malformed);
    bool ran = !f->m->gave_up;
    size_t failed = 0;
    if (ran) print_tables(f, &s);
    if (ran && f->m->checks) {
        FILE *fp = console(f);
        failed = acr_check_eval(f->m->checks, s.stats, s.run_time, fp);
        fflush(fp);
        if (failed)
            ACR_ERROR("%zu of %zu --check threshold(s) failed", failed,
                      acr_check_count(f->m->checks));
    }
    if (acr__local_crashed(f->m))
        ACR_ERROR("%zu local worker(s) crashed during the run (above): the counts miss their "
                  "last reports; exit 1",
                  acr__local_crashed(f->m));
    f->m->exit_code = final_exit_code(f, &s, failed);
    ACR_INFO("Shutting down (exit code %d)", f->m->exit_code);
    if (f->opts->csv) {
        history_row(f);
        csv_files(f, &s);
    }
    if (f->history_csv) {
        fclose(f->history_csv);
        f->history_csv = NULL;
    }
    if (f->opts->html && ran) html_file(f, &s, f->have_final ? &f->final : &s);
    if (f->opts->json && ran) print_json(f, &s);
    acr_core_snapshot_free(&s);
    acr__master_shutdown(f->m);
}

int acr__finish_start(acr_master_t *m, acr_finish_t **out)
{
    acr_finish_t *f = calloc(1, sizeof(*f));
    *out = f;
    if (!f) return -ENOMEM;
    f->m = m;
    f->core = m->core;
    f->opts = m->opts;
    int rc = uv_timer_init(m->loop, &f->history_timer);
    if (rc == 0) rc = uv_signal_init(m->loop, &f->sigint);
    if (rc == 0) rc = uv_signal_init(m->loop, &f->sigterm);
    if (rc == 0) rc = acr_core_subscribe(f->core, on_core_event, f);
    if (rc < 0) return rc;
    f->sigint.data = f->sigterm.data = f;
    uv_signal_start(&f->sigint, signal_cb, SIGINT);
    uv_signal_start(&f->sigterm, signal_cb, SIGTERM);
    if (f->opts->csv) {
        f->history_csv = csv_open(f, "stats_history", "w");
        if (!f->history_csv) return -EIO;
        acr_report_csv_history_header(f->history_csv);
        fflush(f->history_csv);
        uv_timer_start(&f->history_timer, history_cb, HISTORY_MS, HISTORY_MS);
    }
    acr_core_snapshot_t s;
    acr_core_snapshot(f->core, &s);
    acr_core_snapshot_free(&s);
    f->state = s.state;
    return 0;
}

static void close_handle(uv_handle_t *hd)
{
    if (hd->loop && !uv_is_closing(hd)) uv_close(hd, NULL);
}

void acr__finish_close(acr_finish_t *f)
{
    if (!f) return;
    close_handle((uv_handle_t *)&f->history_timer);
    close_handle((uv_handle_t *)&f->sigint);
    close_handle((uv_handle_t *)&f->sigterm);
}

void acr__finish_free(acr_finish_t *f)
{
    if (!f) return;
    if (f->history_csv) fclose(f->history_csv);
    if (f->have_final) acr_core_snapshot_free(&f->final);
    free(f);
}
