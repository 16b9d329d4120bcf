/*
 * The run's chart history (history.h). A subscriber of the core's state events: a test's start
 * (ready/stopped -> spawning) empties the buffer, takes a first sample and starts a timer that
 * samples every step while the test is under way; the stop (-> stopped) takes a last sample and
 * stops the timer. A sample reads the core through one snapshot (its worker strings are copied:
 * a few hundred short strings every 2 s or more, nothing the master notices).
 *
 * Bounded memory: the buffer grows by doubling up to ACR_HISTORY_MAX samples; a push into a full
 * buffer first merges neighbours pairwise (ACR_HISTORY_MAX / 2 samples remain) and doubles the
 * step, so a run of any length keeps between ACR_HISTORY_MAX / 2 and ACR_HISTORY_MAX evenly spaced
 * points. A merged pair (history_merge) keeps:
 *   - time and users of the later sample: every sample describes what led up to its time, so the
 *     pair stands where its span ends, and the chart still ends at the stop;
 *   - the mean of the rates: the two samples cover equal spans, so the mean is the rate over both;
 *   - the larger of each percentile: a latency spike is what a p99 chart is read for, and a mean
 *     would halve a one-sample spike at every merge until a long run hid it entirely. The maximum
 *     errs on the pessimistic side by at most the pair's spread; it keeps p50 <= p95 <= p99, and
 *     the exact whole-run percentiles are in the report's tables anyway.
 */
#include "master/history.h"

#include "common/log.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define INITIAL_CAP 64

struct acr_history {
    uv_loop_t *loop;
    acr_core_t *core;
    uv_timer_t timer;
    acr_history_sample_t *samples;
    size_t n, cap;
    double step; /**< seconds between samples; doubles at each merge */
    bool active; /**< a test is under way: the timer samples */
    bool closed;
};

/* ---- the buffer (no loop, no core: the unit tests drive these directly) ---- */

static void history_clear(acr_history_t *h)
{
    h->n = 0;
    h->step = ACR_HISTORY_STEP_S;
}

static void history_merge(acr_history_sample_t *dst, const acr_history_sample_t *a,
                          const acr_history_sample_t *b)
{
    acr_history_sample_t m = {
        .time = b->time,
        .users = b->users,
        .rps = (a->rps + b->rps) / 2,
        .fail_per_sec = (a->fail_per_sec + b->fail_per_sec) / 2,
        .p50 = fmax(a->p50, b->p50),
        .p95 = fmax(a->p95, b->p95),
        .p99 = fmax(a->p99, b->p99),
    };
    *dst = m;
}

/* Halves the buffer by merging neighbours; the step doubles. */
static void history_downsample(acr_history_t *h)
{
    size_t k = 0;
    for (size_t i = 0; i + 1 < h->n; i += 2)
        history_merge(&h->samples[k++], &h->samples[i], &h->samples[i + 1]);
    if (h->n % 2) h->samples[k++] = h->samples[h->n - 1];
    h->n = k;
    h->step *= 2;
}

/* Appends @s, merging first when the buffer is full. Returns 0 or -ENOMEM (the sample is then
 * dropped and the buffer unchanged). */
static int history_push(acr_history_t *h, const acr_history_sample_t *s)
{
    if (h->n == ACR_HISTORY_MAX) history_downsample(h);
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : INITIAL_CAP;
        if (cap > ACR_HISTORY_MAX) cap = ACR_HISTORY_MAX;
        acr_history_sample_t *v = realloc(h->samples, cap * sizeof(*v));
        if (!v) return -ENOMEM;
        h->samples = v;
        h->cap = cap;
    }
    h->samples[h->n++] = *s;
    return 0;
}

/* The sample the snapshot @s gives at epoch second @now (a percentile is 0 when the window had
 * no request, a rate 0 before any). */
static void history_sample_of(const acr_core_snapshot_t *s, double now, acr_history_sample_t *out)
{
    *out = (acr_history_sample_t){.time = now, .users = s->user_count};
    if (s->stats) {
        const acr_stats_entry_t *total = acr_stats_total(s->stats);
        out->rps = acr_stats_current_rps(total, total);
        out->fail_per_sec = acr_stats_current_fail_per_sec(total, total);
    }
    if (s->current && s->current->count > 0) {
        out->p50 = (double)acr_hist_percentile(s->current, 0.50) / 1000.0;
        out->p95 = (double)acr_hist_percentile(s->current, 0.95) / 1000.0;
        out->p99 = (double)acr_hist_percentile(s->current, 0.99) / 1000.0;
    }
}

/* A JSON number: finite values only (JSON has no NaN), @prec significant digits. */
static int json_num(acr_buf_t *out, const char *key, double v, int prec, bool first)
{
    if (!isfinite(v)) v = 0;
    return acr_buf_appendf(out, "%s\"%s\":%.*g", first ? "" : ",", key, prec, v);
}

static int history_json_of(const acr_history_sample_t *v, size_t n, acr_buf_t *out)
{
    size_t start = out->len;
    int rc = acr_buf_putc(out, '[');
    for (size_t i = 0; i < n && rc == 0; i++) {
        const acr_history_sample_t *s = &v[i];
        if (i > 0) rc = acr_buf_putc(out, ',');
        /* time: 16 digits keep milliseconds of an epoch second */
        if (rc == 0) rc = acr_buf_putc(out, '{');
        if (rc == 0) rc = json_num(out, "time", s->time, 16, true);
        if (rc == 0) rc = json_num(out, "rps", s->rps, 8, false);
        if (rc == 0) rc = json_num(out, "fail_per_sec", s->fail_per_sec, 8, false);
        if (rc == 0) rc = json_num(out, "p50", s->p50, 8, false);
        if (rc == 0) rc = json_num(out, "p95", s->p95, 8, false);
        if (rc == 0) rc = json_num(out, "p99", s->p99, 8, false);
        if (rc == 0) rc = acr_buf_appendf(out, ",\"users\":%ld}", s->users);
    }
    if (rc == 0) rc = acr_buf_putc(out, ']');
    if (rc < 0) {
        out->len = start;
        if (out->data) out->data[start] = 0;
        return -ENOMEM;
    }
    return 0;
}

/* ---- sampling the core ---- */

static void tick_cb(uv_timer_t *t);

static void take_sample(acr_history_t *h)
{
    acr_core_snapshot_t s;
    /* on -ENOMEM only the worker list is missing; the fields sampled are set */
    acr_core_snapshot(h->core, &s);
    acr_history_sample_t sample;
    history_sample_of(&s, acr_now(), &sample);
    acr_core_snapshot_free(&s);
    double step = h->step;
    if (history_push(h, &sample) < 0) ACR_ERROR("out of memory for the chart history");
    if (h->step != step && h->active)
        uv_timer_start(&h->timer, tick_cb, acr_timer_ms(h->step), acr_timer_ms(h->step));
}

static void tick_cb(uv_timer_t *t)
{
    acr_history_t *h = acr_container_of(t, acr_history_t, timer);
    if (h->active && !h->closed) take_sample(h);
}

static void on_core_event(acr_core_t *c, const acr_core_event_t *ev, void *ud)
{
    (void)c;
    acr_history_t *h = ud;
    if (ev->type != ACR_CORE_EV_STATE || h->closed) return;
    bool new_test =
        ev->to == ACR_RUN_SPAWNING && (ev->from == ACR_RUN_READY || ev->from == ACR_RUN_STOPPED);
    if (new_test) {
        history_clear(h);
        h->active = true;
        take_sample(h);
        uint64_t ms = acr_timer_ms(h->step);
        uv_timer_start(&h->timer, tick_cb, ms, ms);
    } else if (ev->to == ACR_RUN_STOPPED && h->active) {
        h->active = false;
        uv_timer_stop(&h->timer);
        take_sample(h);
    }
}

/* ---- the API ---- */

static void free_on_close(uv_handle_t *t)
{
    acr_history_free(acr_container_of((uv_timer_t *)t, acr_history_t, timer));
}

int acr_history_new(uv_loop_t *loop, acr_core_t *core, acr_history_t **out)
{
    *out = NULL;
    acr_history_t *h = calloc(1, sizeof(*h));
    if (!h) return -ENOMEM;
    h->loop = loop;
    h->core = core;
    history_clear(h);
    int rc = uv_timer_init(loop, &h->timer);
    if (rc < 0) {
        free(h);
        return rc;
    }
    rc = acr_core_subscribe(core, on_core_event, h);
    if (rc < 0) {
        h->closed = true;
        uv_close((uv_handle_t *)&h->timer, free_on_close);
        return rc;
    }
    /* a history made while a test is already under way samples it from now on */
    acr_core_snapshot_t s;
    acr_core_snapshot(core, &s);
    acr_run_state_t state = s.state;
    acr_core_snapshot_free(&s);
    if (state == ACR_RUN_SPAWNING || state == ACR_RUN_RUNNING || state == ACR_RUN_STOPPING) {
        h->active = true;
        take_sample(h);
        uint64_t ms = acr_timer_ms(h->step);
        uv_timer_start(&h->timer, tick_cb, ms, ms);
    }
    *out = h;
    return 0;
}

const acr_history_sample_t *acr_history_samples(const acr_history_t *h, size_t *n)
{
    *n = h ? h->n : 0;
    return h ? h->samples : NULL;
}

double acr_history_step(const acr_history_t *h)
{
    return h->step;
}

int acr_history_json(const acr_history_t *h, acr_buf_t *out)
{
    return history_json_of(h ? h->samples : NULL, h ? h->n : 0, out);
}

void acr_history_close(acr_history_t *h)
{
    if (!h || h->closed) return;
    h->closed = true;
    h->active = false;
    if (!uv_is_closing((uv_handle_t *)&h->timer)) uv_close((uv_handle_t *)&h->timer, NULL);
}

void acr_history_free(acr_history_t *h)
{
    if (!h) return;
    free(h->samples);
    free(h);
}
