/*
 * Merging the workers' stats deltas into the run's one acr_stats_t (reference §6.6: merged even
 * from unknown nodes, as Locust), and accounting for lost reports: acrida workers number their
 * reports, so a jump in the sequence is a counted gap, and a worker that ends (killed, missing,
 * re-registered) after it got users or reported during a test, without sending its final report,
 * lost its last interval. Every gap is logged as "worker X: report N missing (lost interval)".
 */
#include "master/master.h"

#include "common/log.h"

#include <inttypes.h>

#define MAX_GAP_LINES 5

static bool test_active(const acr_master_t *m)
{
    return m->state == ACR_RUN_SPAWNING || m->state == ACR_RUN_RUNNING ||
           m->state == ACR_RUN_STOPPING;
}

void acr__agg_on_stats(acr_master_t *m, acr_mworker_t *w, const char *node_id, acr_msg_t *msg)
{
    if (msg->stats && acr_stats_merge(m->stats, msg->stats) < 0)
        ACR_ERROR("out of memory merging the report of worker %s", node_id);
    if (!w) {
        ACR_INFO("Discarded report from unrecognized worker %s", node_id);
        return;
    }
    if (msg->seq >= 0) {
        if (w->last_seq >= 0 && msg->seq > w->last_seq + 1) {
            int64_t missing = msg->seq - w->last_seq - 1;
            for (int64_t k = w->last_seq + 1; k < msg->seq && k <= w->last_seq + MAX_GAP_LINES; k++)
                ACR_WARN("worker %s: report %" PRId64 " missing (lost interval)", w->id, k);
            if (missing > MAX_GAP_LINES)
                ACR_WARN("worker %s: %" PRId64 " more reports missing", w->id,
                         missing - MAX_GAP_LINES);
            m->lost_reports += (uint64_t)missing;
        } else if (w->last_seq >= 0 && msg->seq <= w->last_seq) {
            ACR_WARN("worker %s: report %" PRId64 " arrived out of order (last was %" PRId64 ")",
                     w->id, msg->seq, w->last_seq);
        }
        if (msg->seq > w->last_seq) w->last_seq = msg->seq;
    }
    if (msg->final)
        w->gap_open = false;
    else if (test_active(m) && msg->seq >= 0)
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
    m->lost_reports++;
}

void acr__agg_test_start(acr_master_t *m)
{
    double now = acr_now();
    acr_stats_clear(m->stats, now);
    m->lost_reports = 0;
    for (size_t i = 0; i < m->nworkers; i++) {
        m->workers[i]->gap_open = false;
        m->workers[i]->final_seen = false;
    }
}
