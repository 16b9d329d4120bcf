/*
 * Merging the workers' stats deltas into the run's one acr_stats_t (merged even from unknown nodes,
 * as Locust: docs/locust-compatibility.md, run states), and accounting for lost reports: acrida
 * workers number their reports, so a jump in the sequence is a counted gap, and a worker that ends
 * (killed, missing, re-registered) after it got users or reported during a test, without sending
 * its final report, lost its last interval. Every gap is logged as "worker X: report N missing
 * (lost interval)".
 */
#include "master/master.h"

#include "common/log.h"

#include <inttypes.h>
#include <stdlib.h>

#define MAX_GAP_LINES 5
#define WINDOW_SLOTS 12 /* seconds kept; the window read is the last 10 */
#define WINDOW_SECONDS 10

/* Adds a report's Aggregated histogram to the slot of the current second. */
static void window_add(acr_master_t *m, const acr_stats_t *delta)
{
    if (!m->window) {
        m->window = calloc(WINDOW_SLOTS, sizeof(*m->window));
        m->window_sum = malloc(sizeof(*m->window_sum));
        if (!m->window || !m->window_sum) {
            ACR_ERROR("out of memory for the current-percentile window");
            acr__agg_free(m);
            return;
        }
        for (size_t i = 0; i < WINDOW_SLOTS; i++) {
            m->window[i].sec = INT64_MIN;
            acr_hist_reset(&m->window[i].hist);
        }
    }
    int64_t sec = (int64_t)acr_now();
    struct acr_agg_slot *slot = &m->window[(uint64_t)sec % WINDOW_SLOTS];
    if (slot->sec != sec) {
        slot->sec = sec;
        acr_hist_reset(&slot->hist);
    }
    acr_hist_merge(&slot->hist, &acr_stats_total((acr_stats_t *)delta)->hist);
}

const acr_hist_t *acr__agg_current(acr_master_t *m)
{
    if (!m->window) return NULL;
    int64_t now = (int64_t)acr_now();
    acr_hist_reset(m->window_sum);
    for (size_t i = 0; i < WINDOW_SLOTS; i++)
        if (m->window[i].sec > now - WINDOW_SECONDS && m->window[i].sec <= now)
            acr_hist_merge(m->window_sum, &m->window[i].hist);
    return m->window_sum;
}

void acr__agg_free(acr_master_t *m)
{
    free(m->window);
    free(m->window_sum);
    m->window = NULL;
    m->window_sum = NULL;
}

/* Adds @n lost intervals to the run's total and to the worker's node id (m->indexes outlives the
 * registry entry, so a worker that quit or was removed still has its row in the CSV). */
static void count_lost(acr_master_t *m, const acr_mworker_t *w, uint64_t n)
{
    m->lost_reports += n;
    if (w->index >= 0 && (size_t)w->index < m->nindexes) m->indexes[w->index].lost += n;
}

void acr__agg_on_stats(acr_master_t *m, acr_mworker_t *w, const char *node_id, acr_msg_t *msg)
{
    if (msg->stats && acr_stats_merge(m->stats, msg->stats) < 0)
        ACR_ERROR("out of memory merging the report of worker %s", node_id);
    else if (msg->stats)
        m->reports_merged++;
    if (msg->stats) window_add(m, msg->stats);
    if (!w) {
        ACR_INFO("Discarded report from unrecognized worker %s", node_id);
        return;
    }
    if (msg->seq >= 0 && msg->seq > INT64_MAX / 2) {
        ACR_WARN("worker %s: report sequence number %" PRId64 " out of range; ignored", w->id,
                 msg->seq);
    } else if (msg->seq >= 0) {
        if (w->last_seq >= 0 && msg->seq > w->last_seq + 1) {
            int64_t missing = msg->seq - w->last_seq - 1;
            for (int64_t k = w->last_seq + 1; k < msg->seq && k <= w->last_seq + MAX_GAP_LINES; k++)
                ACR_WARN("worker %s: report %" PRId64 " missing (lost interval)", w->id, k);
            if (missing > MAX_GAP_LINES)
                ACR_WARN("worker %s: %" PRId64 " more reports missing", w->id,
                         missing - MAX_GAP_LINES);
            count_lost(m, w, (uint64_t)missing);
        } else if (w->last_seq >= 0 && msg->seq <= w->last_seq) {
            ACR_WARN("worker %s: report %" PRId64 " arrived out of order (last was %" PRId64 ")",
                     w->id, msg->seq, w->last_seq);
        }
        if (msg->seq > w->last_seq) w->last_seq = msg->seq;
    }
    if (msg->final)
        w->gap_open = false;
    else if (acr__run_active(m) && msg->seq >= 0)
        w->gap_open = true;
    if (msg->final) w->final_seen = true;
    acr__worker_set_classes(w, msg->classes, msg->nclasses);
}

void acr__agg_on_exception(acr_master_t *m, const char *node_id, const acr_msg_t *msg)
{
    uint64_t n = msg->exc_count ? msg->exc_count : 1;
    if (acr_stats_add_exception(m->stats, msg->exc_msg ? msg->exc_msg : "",
                                msg->exc_traceback ? msg->exc_traceback : "", node_id, n) < 0)
        ACR_ERROR("out of memory recording an exception from worker %s", node_id);
}

void acr__agg_close_gap(acr_master_t *m, acr_mworker_t *w, const char *why)
{
    if (!w->gap_open) return;
    w->gap_open = false;
    ACR_INFO("worker %s ended without a final report (%s)", w->id, why);
    if (w->last_seq >= 0)
        ACR_WARN("worker %s: report %" PRId64 " missing (lost interval)", w->id, w->last_seq + 1);
    else
        ACR_WARN("worker %s: its first report is missing (lost interval)", w->id);
    count_lost(m, w, 1);
}

void acr__agg_test_start(acr_master_t *m)
{
    double now = acr_now();
    acr_stats_clear(m->stats, now);
    m->lost_reports = 0;
    for (size_t i = 0; i < m->nindexes; i++) m->indexes[i].lost = 0;
    m->reports_merged = 0;
    if (m->window)
        for (size_t i = 0; i < WINDOW_SLOTS; i++) m->window[i].sec = INT64_MIN;
    for (size_t i = 0; i < m->nworkers; i++) {
        m->workers[i]->gap_open = false;
        m->workers[i]->final_seen = false;
    }
}
