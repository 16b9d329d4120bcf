/*
 * Headless mode: wait for --expect-workers ready workers (bounded by --expect-workers-max-wait),
 * start the test, print the stats table every 2 s, append a history CSV row every 1 s, stop at
 * --run-time or on SIGTERM/SIGINT (a second signal skips the remaining waits), send `quit` and
 * wait (bounded) for the workers' `quit`, then print the final tables, write the CSV files and the
 * --json document, and compute the exit code. The phases are acr_hl_phase_t; the run itself is
 * runner.c's state machine.
 */
#include "master/master.h"
#include "common/log.h"
#include "master/report.h"
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#define QUIT_WAIT_MS 5000
#define CONSOLE_MS 2000
#define HISTORY_MS 1000
#define WAIT_LOG_MS 1000        /* "Waiting for workers to be ready" while waiting */
#define LOCAL_TERM_GRACE_S 10.0 /* local workers: SIGTERM, then SIGKILL after this */

static FILE *console(const acr_master_t *m)
{
    return m->opts->json ? stderr : stdout;
}

static void finish(acr_master_t *m);
static void begin_quit(acr_master_t *m);
static int worker_rows(const acr_master_t *m, acr_report_worker_t **out, size_t *n);

/* ---- CSV ---- */

static FILE *csv_open(const acr_master_t *m, const char *suffix, const char *mode)
{
    char path[4096];
    snprintf(path, sizeof path, "%s_%s.csv", m->opts->csv, suffix);
    FILE *f = fopen(path, mode);
    if (!f) ACR_ERROR("cannot write %s: %s", path, strerror(errno));
    return f;
}

static void csv_write(acr_master_t *m, const char *suffix, int (*fn)(FILE *, acr_stats_t *))
{
    FILE *f = csv_open(m, suffix, "w");
    if (!f) return;
    int rc = fn(f, m->stats);
    if (fclose(f) != 0 || rc < 0) ACR_ERROR("error writing %s_%s.csv", m->opts->csv, suffix);
}

static void history_row(acr_master_t *m)
{
    if (!m->history_csv) return;
    acr_report_csv_history_rows(m->history_csv, m->stats, acr__registry_user_count(m),
                                (long)acr_now(), m->opts->csv_full_history);
    fflush(m->history_csv);
}

static void history_cb(uv_timer_t *t)
{
    history_row(acr_container_of(t, acr_master_t, history_timer));
}

static void console_cb(uv_timer_t *t)
{
    acr_master_t *m = acr_container_of(t, acr_master_t, console_timer);
    if (m->state != ACR_RUN_SPAWNING && m->state != ACR_RUN_RUNNING) return;
    FILE *f = console(m);
    acr_report_console_stats(f, m->stats, true);
    fputc('\n', f);
    fflush(f);
}

/* ---- phases ---- */

static void runtime_cb(uv_timer_t *t)
{
    acr_master_t *m = acr_container_of(t, acr_master_t, runtime_timer);
    ACR_INFO("--run-time limit reached, stopping test");
    if (m->state == ACR_RUN_SPAWNING || m->state == ACR_RUN_RUNNING) {
        acr__run_stop(m);
    } else if (m->state != ACR_RUN_STOPPING) {
        begin_quit(m);
    }
}

static void begin_test(acr_master_t *m)
{
    acr_cli_opts_t *o = m->opts;
    uv_timer_stop(&m->wait_timer);
    m->phase = ACR_HL_TEST;
    if (acr__run_start(m, o->users, o->spawn_rate) < 0) {
        m->exit_code = ACR_EXIT_FATAL;
        begin_quit(m);
        return;
    }
    if (o->run_time > 0) {
        ACR_INFO("Run time limit set to %g seconds", o->run_time);
        uv_timer_start(&m->runtime_timer, runtime_cb, (uint64_t)(o->run_time * 1000.0 + 0.5), 0);
    } else {
        ACR_INFO("No run time limit set, use CTRL+C to interrupt");
    }
    if (!o->only_summary) uv_timer_start(&m->console_timer, console_cb, CONSOLE_MS, CONSOLE_MS);
    if (m->history_csv) uv_timer_start(&m->history_timer, history_cb, HISTORY_MS, HISTORY_MS);
}

static void check_wait(acr_master_t *m, bool tick)
{
    size_t ready = acr__registry_ready(m);
    if (ready >= (size_t)m->opts->expect_workers) {
        ACR_INFO("%zu of %d workers ready, starting the test", ready, m->opts->expect_workers);
        begin_test(m);
        return;
    }
    if (acr__local_exited(m) > 0) {
        ACR_ERROR("A local worker exited before the test started (its error is above): giving up");
        m->gave_up = true;
        begin_quit(m);
        return;
    }
    double waited = acr_mono_s() - m->wait_start;
    if (m->opts->expect_workers_max_wait > 0 && waited > m->opts->expect_workers_max_wait) {
        ACR_ERROR("Gave up waiting for workers to connect");
        m->gave_up = true;
        begin_quit(m);
        return;
    }
    if (tick)
        ACR_INFO("Waiting for workers to be ready, %zu of %d connected", ready,
                 m->opts->expect_workers);
}

static void wait_cb(uv_timer_t *t)
{
    acr_master_t *m = acr_container_of(t, acr_master_t, wait_timer);
    if (m->phase == ACR_HL_WAIT_WORKERS) check_wait(m, true);
}

static void quit_timeout_cb(uv_timer_t *t)
{
    acr_master_t *m = acr_container_of(t, acr_master_t, quit_timer);
    for (size_t i = 0; i < m->nworkers; i++)
        if (m->workers[i]->quit_pending)
            ACR_WARN("worker %s did not answer the quit", m->workers[i]->id);
    finish(m);
}

static void begin_quit(acr_master_t *m)
{
    if (m->phase == ACR_HL_QUITTING || m->phase == ACR_HL_DONE) return;
    m->phase = ACR_HL_QUITTING;
    if (!m->final_workers && worker_rows(m, &m->final_workers, &m->nfinal_workers) < 0) {
        ACR_ERROR("out of memory keeping the workers for the report");
        acr__headless_free_snapshot(m);
    }
    uv_timer_stop(&m->wait_timer);
    uv_timer_stop(&m->console_timer);
    uv_timer_stop(&m->history_timer);
    uv_timer_stop(&m->runtime_timer);
    for (size_t i = 0; i < m->nworkers; i++) {
        acr_mworker_t *w = m->workers[i];
        w->quit_pending = w->state != ACR_WORKER_MISSING;
        acr__registry_send_nil(m, "quit", w->id);
    }
    uv_timer_start(&m->quit_timer, quit_timeout_cb, QUIT_WAIT_MS, 0);
    acr__headless_check(m);
}

static void on_stopped(acr_master_t *m)
{
    if (m->phase == ACR_HL_TEST) begin_quit(m);
}

void acr__headless_last_worker_quit(acr_master_t *m)
{
    acr__run_stop(m);
}

void acr__headless_check(acr_master_t *m)
{
    switch (m->phase) {
    case ACR_HL_WAIT_WORKERS:
        check_wait(m, false);
        break;
    case ACR_HL_QUITTING: {
        for (size_t i = 0; i < m->nworkers; i++)
            if (m->workers[i]->quit_pending && m->workers[i]->state != ACR_WORKER_MISSING) return;
        finish(m);
        break;
    }
    default:
        break;
    }
}

static void signal_cb(uv_signal_t *h, int signum)
{
    acr_master_t *m = h->data;
    m->signals++;
    if (m->signals > 1) {
        ACR_WARN("Got %s again, shutting down without waiting", strsignal(signum));
        if (m->phase == ACR_HL_TEST) begin_quit(m);
        finish(m);
        return;
    }
    ACR_INFO("Got %s signal", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    switch (m->phase) {
    case ACR_HL_WAIT_WORKERS:
        ACR_ERROR("Stopped while waiting for workers (%zu of %d ready): no test ran",
                  acr__registry_ready(m), m->opts->expect_workers);
        m->gave_up = true;
        begin_quit(m);
        break;
    case ACR_HL_TEST:
        if (m->state == ACR_RUN_SPAWNING || m->state == ACR_RUN_RUNNING) {
            acr__run_stop(m);
        } else if (m->state != ACR_RUN_STOPPING) {
            begin_quit(m);
        }
        break;
    default:
        break;
    }
}

/* ---- the end ---- */

/* Worker rows for the report; ids, hosts and state names are copied so the rows outlive the
 * registry entries. Returns 0 or -ENOMEM. */
static int worker_rows(const acr_master_t *m, acr_report_worker_t **out, size_t *n)
{
    *n = 0;
    *out = calloc(m->nworkers ? m->nworkers : 1, sizeof(**out));
    if (!*out) return -ENOMEM;
    double now = acr_mono_s();
    for (size_t i = 0; i < m->nworkers; i++) {
        const acr_mworker_t *w = m->workers[i];
        long users = 0;
        for (size_t c = 0; c < w->nclasses; c++) users += (long)w->classes[c].count;
        acr_report_worker_t *r = &(*out)[i];
        *r = (acr_report_worker_t){
            acr_strdup(w->id), acr_strdup(w->host), acr_worker_state_name(w->state), users, w->cpu,
            (long long)w->mem, now - w->last_seen};
        *n = i + 1;
        if (!r->id || (w->host && !r->host)) return -ENOMEM;
    }
    return 0;
}

static void free_rows(acr_report_worker_t *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free((char *)rows[i].id);
        free((char *)rows[i].host);
    }
    free(rows);
}

void acr__headless_free_snapshot(acr_master_t *m)
{
    free_rows(m->final_workers, m->nfinal_workers);
    m->final_workers = NULL;
    m->nfinal_workers = 0;
}

static void print_json(acr_master_t *m)
{
    acr_report_worker_t *rows = m->final_workers;
    size_t n = m->nfinal_workers;
    bool own = false;
    if (!rows) {
        own = true;
        if (worker_rows(m, &rows, &n) < 0) {
            free_rows(rows, n);
            ACR_ERROR("out of memory building the JSON report");
            return;
        }
    }
    acr_report_meta_t meta = {
        .state = acr_run_state_name(m->state),
        .user_count = acr__registry_user_count(m),
        .run_time = m->test_start > 0 ? acr_mono_s() - m->test_start_mono : 0,
        .test_id = m->test_id,
        .workers = rows,
        .nworkers = n,
        .now = acr_now(),
        .lost_reports = m->lost_reports,
        .reports_merged = m->reports_merged,
        .current = acr__agg_current(m),
    };
    char *doc = acr_report_json(m->stats, &meta);
    if (own) free_rows(rows, n);
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
static void csv_lost(acr_master_t *m)
{
    FILE *f = csv_open(m, "lost_reports", "w");
    if (!f) return;
    acr_report_lost_t *rows = calloc(m->nindexes ? m->nindexes : 1, sizeof(*rows));
    size_t n = 0;
    int rc = -ENOMEM;
    if (rows) {
        for (size_t i = 0; i < m->nindexes; i++)
            if (m->indexes[i].lost)
                rows[n++] = (acr_report_lost_t){m->indexes[i].id, m->indexes[i].lost};
        rc = acr_report_csv_lost(f, rows, n, m->lost_reports);
    }
    free(rows);
    if (fclose(f) != 0 || rc < 0) ACR_ERROR("error writing %s_lost_reports.csv", m->opts->csv);
}

/* The exit code of a run that reached its end, in the precedence of acr_master_exit_t. */
static int final_exit_code(const acr_master_t *m)
{
    size_t nerr = 0, nexc = 0;
    if (m->gave_up) return ACR_EXIT_FATAL;
    if (m->exit_code != ACR_EXIT_OK) return m->exit_code; /* the test could not start */
    if (m->lost_reports && !m->opts->allow_lost_reports) return ACR_EXIT_INCOMPLETE;
    acr_stats_errors(m->stats, &nerr);
    acr_stats_exceptions(m->stats, &nexc);
    if (nerr || nexc) return m->opts->exit_code_on_error;
    return ACR_EXIT_OK;
}

static void finish(acr_master_t *m)
{
    if (m->phase == ACR_HL_DONE) return;
    m->phase = ACR_HL_DONE;
    uv_timer_stop(&m->wait_timer);
    uv_timer_stop(&m->console_timer);
    uv_timer_stop(&m->history_timer);
    uv_timer_stop(&m->runtime_timer);
    uv_timer_stop(&m->quit_timer);
    /* a worker that still owes reports now never sends them: missing, or silent since the stop */
    for (size_t i = 0; i < m->nworkers; i++)
        acr__agg_close_gap(m, m->workers[i],
                           m->workers[i]->state == ACR_WORKER_MISSING
                               ? "missing at the end of the test"
                               : "no final report by the end of the test");
    if (m->lost_reports)
        ACR_WARN("%llu worker report interval(s) were lost during the test",
                 (unsigned long long)m->lost_reports);
    uint64_t malformed = m->malformed + (m->chan ? acr_zchan_dropped(m->chan) : 0);
    if (malformed) ACR_WARN("%llu malformed frame(s) were dropped", (unsigned long long)malformed);
    m->exit_code = final_exit_code(m);
    ACR_INFO("Shutting down (exit code %d)", m->exit_code);
    if (!m->gave_up) {
        FILE *f = console(m);
        acr_report_console_stats(f, m->stats, false);
        fputc('\n', f);
        acr_report_console_percentiles(f, m->stats);
        fputc('\n', f);
        acr_report_console_failures(f, m->stats);
        acr_report_console_exceptions(f, m->stats);
        acr_report_console_lost(f, m->lost_reports);
        fflush(f);
    }
    if (m->opts->csv) {
        history_row(m);
        csv_write(m, "stats", acr_report_csv_stats);
        csv_write(m, "failures", acr_report_csv_failures);
        csv_write(m, "exceptions", acr_report_csv_exceptions);
        csv_lost(m);
    }
    if (m->history_csv) {
        fclose(m->history_csv);
        m->history_csv = NULL;
    }
    if (m->opts->json && !m->gave_up) print_json(m);
    acr__master_shutdown(m);
}

int acr__headless_start(acr_master_t *m)
{
    uv_timer_t *timers[] = {&m->wait_timer, &m->console_timer, &m->history_timer, &m->runtime_timer,
                            &m->quit_timer};
    int rc = 0;
    for (size_t i = 0; i < ACR_ARRAY_SIZE(timers) && rc == 0; i++)
        rc = uv_timer_init(m->loop, timers[i]);
    if (rc == 0) rc = uv_signal_init(m->loop, &m->sigint);
    if (rc == 0) rc = uv_signal_init(m->loop, &m->sigterm);
    if (rc < 0) return rc;
    m->sigint.data = m->sigterm.data = m;
    uv_signal_start(&m->sigint, signal_cb, SIGINT);
    uv_signal_start(&m->sigterm, signal_cb, SIGTERM);
    m->on_stopped = on_stopped;
    if (m->opts->csv) {
        m->history_csv = csv_open(m, "stats_history", "w");
        if (!m->history_csv) return -EIO;
        acr_report_csv_history_header(m->history_csv);
        fflush(m->history_csv);
    }
    m->phase = ACR_HL_WAIT_WORKERS;
    m->wait_start = acr_mono_s();
    ACR_INFO("Waiting for workers to be ready, %zu of %d connected", acr__registry_ready(m),
             m->opts->expect_workers);
    uv_timer_start(&m->wait_timer, wait_cb, WAIT_LOG_MS, WAIT_LOG_MS);
    acr__headless_check(m);
    return 0;
}

static void close_handle(uv_handle_t *h)
{
    if (h->loop && !uv_is_closing(h)) uv_close(h, NULL);
}

void acr__master_shutdown(acr_master_t *m)
{
    if (m->chan) {
        acr_zchan_close(m->chan, NULL, NULL);
        m->chan = NULL;
    }
    uv_handle_t *hs[] = {
        (uv_handle_t *)&m->liveness_timer, (uv_handle_t *)&m->ramp_timer,
        (uv_handle_t *)&m->settle_timer,   (uv_handle_t *)&m->stop_timer,
        (uv_handle_t *)&m->wait_timer,     (uv_handle_t *)&m->console_timer,
        (uv_handle_t *)&m->history_timer,  (uv_handle_t *)&m->runtime_timer,
        (uv_handle_t *)&m->quit_timer,     (uv_handle_t *)&m->sigint,
        (uv_handle_t *)&m->sigterm,
    };
    for (size_t i = 0; i < ACR_ARRAY_SIZE(hs); i++) close_handle(hs[i]);
    acr__local_stop(m, LOCAL_TERM_GRACE_S);
}
