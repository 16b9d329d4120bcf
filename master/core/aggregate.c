/*
 * Merging the registered workers' stats deltas into the run's one acr_stats_t (a report from a
 * peer that is not registered never gets here: registry.c drops it), the cumulative report that
 * follows an accepted acrida_rejoin as that worker's baseline (adopt.c), and accounting for lost
 * reports: acrida
 * workers number their reports, so a jump in the sequence is a counted gap, and a worker that ends
 * (killed, missing, re-registered) after it got users or reported during a test, without sending
 * its final report, lost its last interval. Every gap is logged as "worker X: report N missing
 * (lost interval)". The run keeps at most --max-entry-names distinct names: later ones are folded
 * into "[other]" (common/stats.h) with one warning per test.
 */
#include "master/core/core_int.h"

#include "common/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#define MAX_GAP_LINES 5
#define WINDOW_SLOTS 12 /* seconds kept; the window read is the last 10 */
#define WINDOW_SECONDS 10

static void window_free(acr_core_t *c);

/* Adds a report's Aggregated histogram to the slot of the current second. */
static void window_add(acr_core_t *c, const acr_stats_t *delta)
{
    if (!c->agg.window) {
        c->agg.window = calloc(WINDOW_SLOTS, sizeof(*c->agg.window));
        c->agg.window_sum = malloc(sizeof(*c->agg.window_sum));
        if (!c->agg.window || !c->agg.window_sum) {
            ACR_ERROR("out of memory for the current-percentile window");
            window_free(c);
            return;
        }
        for (size_t i = 0; i < WINDOW_SLOTS; i++) {
            c->agg.window[i].sec = INT64_MIN;
            acr_hist_reset(&c->agg.window[i].hist);
        }
        acr_hist_reset(c->agg.window_sum);
    }
    int64_t sec = (int64_t)acr_now();
    struct acr_agg_slot *slot = &c->agg.window[(uint64_t)sec % WINDOW_SLOTS];
    if (slot->sec != sec) {
        slot->sec = sec;
        acr_hist_clear(&slot->hist);
    }
    acr_hist_merge(&slot->hist, &acr_stats_total((acr_stats_t *)delta)->hist);
}

const acr_hist_t *acr__agg_current(acr_core_t *c)
{
    if (!c->agg.window) return NULL;
    int64_t now = (int64_t)acr_now();
    acr_hist_clear(c->agg.window_sum);
    for (size_t i = 0; i < WINDOW_SLOTS; i++)
        if (c->agg.window[i].sec > now - WINDOW_SECONDS && c->agg.window[i].sec <= now)
            acr_hist_merge(c->agg.window_sum, &c->agg.window[i].hist);
    return c->agg.window_sum;
}

static void window_free(acr_core_t *c)
{
    free(c->agg.window);
    free(c->agg.window_sum);
    c->agg.window = NULL;
    c->agg.window_sum = NULL;
}

int acr__agg_init(acr_core_t *c)
{
    c->agg.stats = acr_stats_new(acr_now());
    if (!c->agg.stats) return -ENOMEM;
    acr_stats_set_max_names(c->agg.stats,
                            c->cfg.max_entry_names ? c->cfg.max_entry_names : ACR_STATS_MAX_NAMES);
    return 0;
}

/* Once per test: the cap of distinct names was reached (common/stats.h, folding). */
static void warn_folded(acr_core_t *c)
{
    const char *first = acr_stats_fold_notice(c->agg.stats);
    if (!first) return;
    ACR_WARN("more than %zu distinct request names (--max-entry-names): new names are counted in "
             "one '" ACR_STATS_OTHER "' entry per method from now on, totals stay exact; the first "
             "was '%s'",
             c->cfg.max_entry_names ? c->cfg.max_entry_names : (size_t)ACR_STATS_MAX_NAMES,
             ACR_ESC(first));
}

void acr__agg_free(acr_core_t *c)
{
    window_free(c);
    acr_stats_free(c->agg.stats);
    c->agg.stats = NULL;
}

/* Adds @n lost intervals to the run's total and to the worker's node id (c->reg.indexes outlives
 * the registry entry, so a worker that quit or was removed still has its row in the CSV). */
static void count_lost(acr_core_t *c, const acr_mworker_t *w, uint64_t n)
{
    c->agg.lost_reports += n;
    if (w->index >= 0 && (size_t)w->index < c->reg.nindexes) c->reg.indexes[w->index].lost += n;
}

bool acr__agg_on_stats(acr_core_t *c, acr_mworker_t *w, acr_msg_t *msg)
{
    if (w->refused) {
        ACR_DEBUG("report of worker %s dropped: its rejoin was refused", ACR_ESC(w->id));
        if (msg->final) w->final_seen = true; /* it answered a stop all the same */
        return false;
    }
    if (msg->cumulative && !w->cumulative_ok) {
        ACR_WARN("worker %s: cumulative report without an accepted rejoin dropped", ACR_ESC(w->id));
        return false;
    }
    if (msg->stats && acr_stats_merge(c->agg.stats, msg->stats) < 0)
        ACR_ERROR("out of memory merging the report of worker %s", ACR_ESC(w->id));
    else if (msg->stats)
        c->agg.reports_merged++;
    warn_folded(c);
    /* a cumulative report is the whole test so far: not part of the last 10 s */
    if (msg->stats && !msg->cumulative) window_add(c, msg->stats);
    if (msg->cumulative)
        ACR_INFO("worker %s: cumulative report merged as its baseline", ACR_ESC(w->id));
    w->cumulative_ok = false;
    if (msg->seq >= 0 && msg->seq > INT64_MAX / 2) {
        ACR_WARN("worker %s: report sequence number %" PRId64 " out of range; ignored",
                 ACR_ESC(w->id), msg->seq);
    } else if (msg->seq >= 0) {
        if (w->last_seq >= 0 && msg->seq > w->last_seq + 1) {
            int64_t missing = msg->seq - w->last_seq - 1;
            for (int64_t k = w->last_seq + 1; k < msg->seq && k <= w->last_seq + MAX_GAP_LINES; k++)
                ACR_WARN("worker %s: report %" PRId64 " missing (lost interval)", ACR_ESC(w->id),
                         k);
            if (missing > MAX_GAP_LINES)
                ACR_WARN("worker %s: %" PRId64 " more reports missing", ACR_ESC(w->id),
                         missing - MAX_GAP_LINES);
            count_lost(c, w, (uint64_t)missing);
        } else if (w->last_seq >= 0 && msg->seq <= w->last_seq) {
            ACR_WARN("worker %s: report %" PRId64 " arrived out of order (last was %" PRId64 ")",
                     ACR_ESC(w->id), msg->seq, w->last_seq);
        }
        if (msg->seq > w->last_seq) w->last_seq = msg->seq;
    }
    if (msg->final)
        w->gap_open = false;
    else if (acr__run_active(c) && msg->seq >= 0)
        w->gap_open = true;
    if (msg->final) w->final_seen = true;
    acr__worker_set_classes(w, msg->classes, msg->nclasses);
    return true;
}

void acr__agg_on_exception(acr_core_t *c, const char *node_id, const acr_msg_t *msg)
{
    uint64_t n = msg->exc_count ? msg->exc_count : 1;
    if (acr_stats_add_exception(c->agg.stats, msg->exc_msg ? msg->exc_msg : "",
                                msg->exc_traceback ? msg->exc_traceback : "", node_id, n) < 0)
        ACR_ERROR("out of memory recording an exception from worker %s", ACR_ESC(node_id));
}

void acr__agg_close_gap(acr_core_t *c, acr_mworker_t *w, const char *why)
{
    if (!w->gap_open) return;
    w->gap_open = false;
    ACR_INFO("worker %s ended without a final report (%s)", ACR_ESC(w->id), why);
    if (w->last_seq >= 0)
        ACR_WARN("worker %s: report %" PRId64 " missing (lost interval)", ACR_ESC(w->id),
                 w->last_seq + 1);
    else
        ACR_WARN("worker %s: its first report is missing (lost interval)", ACR_ESC(w->id));
    count_lost(c, w, 1);
}

void acr__agg_test_start(acr_core_t *c)
{
    double now = acr_now();
    acr_stats_clear(c->agg.stats, now);
    c->agg.lost_reports = 0;
    for (size_t i = 0; i < c->reg.nindexes; i++) c->reg.indexes[i].lost = 0;
    c->agg.reports_merged = 0;
    if (c->agg.window)
        for (size_t i = 0; i < WINDOW_SLOTS; i++) c->agg.window[i].sec = INT64_MIN;
    for (size_t i = 0; i < c->reg.nworkers; i++) {
        c->reg.workers[i]->gap_open = false;
        c->reg.workers[i]->final_seen = false;
    }
}
