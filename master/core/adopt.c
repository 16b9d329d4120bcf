/*
 * What a restarted master does with the workers of the one before (proto/PROTOCOL.md, "Master
 * restart"): only registered routing ids are heard, any other peer is answered with `reconnect`
 * (rate-limited, bounded table) so that it registers; an acrida_rejoin after that registration
 * adopts the worker's running test (the dispatcher is seeded with the users it actually runs, so
 * no user moves), joins it to the test already adopted, merges a stopped test's final report, or
 * is refused with `stop`. Workers that register during a run join it after a short grace, so a
 * rejoin that follows the registration is seen first.
 */
#include "master/core/core_int.h"

#include "common/bundle.h"
#include "common/log.h"
#include "proto/proto.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define UNKNOWN_MAX 4096         /* routing ids remembered as unknown peers */
#define RECONNECT_EVERY_S 2.0    /* at most one `reconnect` per id per this */
#define UNKNOWN_LOG_EVERY_S 10.0 /* at most one log line per id per this */

void acr__random_hex_id(char out[ACR_TEST_ID_LEN + 1])
{
    unsigned char raw[ACR_TEST_ID_LEN / 2];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n <= 0) break;
        got += (size_t)n;
    }
    if (got < sizeof raw) { /* no entropy source: unique enough within one machine and time */
        uint64_t a = (uint64_t)(acr_now() * 1e6), b = (uint64_t)getpid() ^ (uint64_t)(uintptr_t)out;
        for (size_t i = 0; i < sizeof raw; i++) {
            raw[i] = (unsigned char)(a ^ (b << 3));
            a = a * 6364136223846793005ULL + 1442695040888963407ULL;
            b = (b >> 7) | (b << 57);
        }
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof raw; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[ACR_TEST_ID_LEN] = 0;
}

/* ---- unknown peers ---- */

/* The table entry of @id: found, a new one, a stale one reused, or NULL when the table is full of
 * recent ids. */
static struct acr_unknown_peer *peer_slot(acr_core_t *c, const char *id, double now)
{
    acr_registry_t *g = &c->reg;
    struct acr_unknown_peer *stale = NULL;
    for (size_t i = 0; i < g->nunknown; i++) {
        struct acr_unknown_peer *p = &g->unknown[i];
        if (strcmp(p->id, id) == 0) return p;
        if (!stale && now - p->reconnect_at > UNKNOWN_LOG_EVERY_S &&
            now - p->logged_at > UNKNOWN_LOG_EVERY_S)
            stale = p;
    }
    char *dup = strdup(id);
    if (!dup) return NULL;
    if (!stale && g->nunknown < UNKNOWN_MAX) {
        if (g->nunknown == g->capunknown) {
            size_t nc = g->capunknown ? g->capunknown * 2 : 16;
            void *p = realloc(g->unknown, nc * sizeof(*g->unknown));
            if (!p) {
                free(dup);
                return NULL;
            }
            g->unknown = p;
            g->capunknown = nc;
        }
        stale = &g->unknown[g->nunknown++];
    } else if (!stale) {
        free(dup);
        return NULL;
    } else {
        free(stale->id);
    }
    *stale = (struct acr_unknown_peer){dup, -1e18, -1e18};
    return stale;
}

void acr__peer_unknown(acr_core_t *c, const char *id, const acr_msg_t *msg)
{
    double now = acr_mono_s();
    c->reg.unknown_frames++;
    struct acr_unknown_peer *p = peer_slot(c, id, now);
    if (!p) return; /* the table is full of recent peers: dropped without an answer */
    if (now - p->logged_at >= UNKNOWN_LOG_EVERY_S) {
        ACR_WARN("dropped '%s' from %s: not a registered worker (asked to reconnect; %" PRIu64
                 " frames from unregistered peers so far)",
                 ACR_ESC(msg->type_name ? msg->type_name : acr_msg_type_name(msg->type)),
                 ACR_ESC(id), c->reg.unknown_frames);
        p->logged_at = now;
    }
    if (now - p->reconnect_at >= RECONNECT_EVERY_S) {
        p->reconnect_at = now;
        acr__registry_send_nil(c, "reconnect", id);
    }
}

void acr__peer_known(acr_core_t *c, const char *id)
{
    acr_registry_t *g = &c->reg;
    for (size_t i = 0; i < g->nunknown; i++)
        if (strcmp(g->unknown[i].id, id) == 0) {
            free(g->unknown[i].id);
            g->unknown[i] = g->unknown[--g->nunknown];
            return;
        }
}

void acr__peer_free(acr_core_t *c)
{
    for (size_t i = 0; i < c->reg.nunknown; i++) free(c->reg.unknown[i].id);
    free(c->reg.unknown);
    c->reg.unknown = NULL;
    c->reg.nunknown = c->reg.capunknown = 0;
}

/* ---- joins ---- */

void acr__adopt_joins_due(acr_core_t *c, double now)
{
    bool in_run = c->run.state == ACR_RUN_SPAWNING || c->run.state == ACR_RUN_RUNNING;
    for (size_t i = 0; i < c->reg.nworkers; i++) {
        acr_mworker_t *w = c->reg.workers[i];
        if (w->join_due <= 0 || now < w->join_due || w->loading) continue; /* joins once loaded */
        w->join_due = 0;
        if (in_run && w->state != ACR_WORKER_MISSING && !w->refused)
            acr__run_workers_changed(c, w, NULL);
    }
}

/* ---- rejoin ---- */

/* Refuses @w's rejoin: `stop`, nothing of its test merged until it stopped. */
static void refuse(acr_core_t *c, acr_mworker_t *w, const char *test_id, const char *why)
{
    c->reg.rejoins_refused++;
    ACR_WARN("worker %s rejoined with test '%s': %s; asking it to stop", ACR_ESC(w->id),
             ACR_ESC(test_id), why);
    w->refused = true;
    w->cumulative_ok = false;
    w->gap_open = false;
    w->join_due = 0;
    acr__registry_send_nil(c, "stop", w->id);
}

/* Seeds the dispatcher with the users @w runs (its rejoin's counts). */
static int seed(acr_core_t *c, acr_mworker_t *w, const acr_msg_t *msg)
{
    acr_dispatch_t *d = c->run.dispatch;
    size_t nc = acr_dispatch_nclasses(d);
    int64_t *counts = calloc(nc ? nc : 1, sizeof(*counts));
    if (!counts) return -ENOMEM;
    for (size_t j = 0; j < msg->nclasses; j++) {
        bool known = false;
        for (size_t k = 0; k < nc && !known; k++)
            if (msg->classes[j].name &&
                strcmp(msg->classes[j].name, acr_dispatch_class_name(d, k)) == 0) {
                counts[k] = msg->classes[j].count > INT32_MAX ? INT32_MAX : msg->classes[j].count;
                known = true;
            }
        if (!known && msg->classes[j].count > 0) {
            ACR_WARN("worker %s runs users of class '%s', which this master's scenario does not "
                     "have: they are not counted in the dispatch",
                     ACR_ESC(w->id), ACR_ESC(msg->classes[j].name ? msg->classes[j].name : ""));
        }
    }
    int rc = acr_dispatch_adopt(d, w->id, counts);
    free(counts);
    return rc;
}

/* @msg's started_at when it is plausible on this master's clock (proto/msg.h), else 0: unknown
 * (an implausible one is ignored with a warning, the test is adopted all the same). */
static double start_time(const acr_mworker_t *w, const acr_msg_t *msg)
{
    char err[200];
    if (msg->started_at <= 0) return 0;
    if (acr_msg_check_started_at(msg->started_at, acr_now(), err, sizeof err) == 0)
        return msg->started_at;
    ACR_WARN("worker %s rejoined with test '%s': %s; its start time is ignored", ACR_ESC(w->id),
             ACR_ESC(msg->test_id ? msg->test_id : ""), err);
    return 0;
}

/* A spawning/running rejoin accepted: @w's users become part of the adopted test. The test's start
 * is the earliest plausible started_at of its rejoins (a worker that joined the test late has a
 * later first spawn). */
static void adopt_worker(acr_core_t *c, acr_mworker_t *w, const acr_msg_t *msg, bool first)
{
    acr_run_t *r = &c->run;
    double started = start_time(w, msg);
    if (first &&
        acr__run_adopt_begin(c, msg->test_id, msg->host,
                             r->adopted && strcmp(r->test_id, msg->test_id) == 0, started) < 0)
        return;
    if (started > 0 && (r->adopt_started_at <= 0 || started < r->adopt_started_at))
        r->adopt_started_at = started;
    r->adopt_joined++;
    if (seed(c, w, msg) < 0) {
        ACR_ERROR("out of memory adopting worker %s", ACR_ESC(w->id));
        return;
    }
    acr__worker_set_classes(w, msg->classes, msg->nclasses);
    acr__worker_event(c, w, ACR_WEV_ADOPT,
                      strcmp(msg->state, "spawning") == 0 ? ACR_WORKER_SPAWNING
                                                          : ACR_WORKER_RUNNING);
    w->join_due = 0;
    w->loading = false; /* it runs this master's scenario (the rejoin's hash said so) */
    w->last_seq = msg->seq;
    w->cumulative_ok = true;
    w->gap_open = true; /* it owes reports until its final one */
    r->target_users = acr_dispatch_user_count(r->dispatch);
    char since[64] = "";
    if (r->adopt_started_at > 0)
        snprintf(since, sizeof since, ", started %.1f s ago", acr_now() - r->adopt_started_at);
    ACR_INFO("adopted test %s from %zu workers (%ld users)%s", ACR_ESC(r->test_id),
             acr_dispatch_nworkers(r->dispatch), r->target_users, since);
    if (!first) return;
    /* the other registered workers have no part in it yet: they join after the grace unless
     * their own rejoin comes first */
    double due = acr_mono_s() + ACR__JOIN_GRACE_S;
    for (size_t i = 0; i < c->reg.nworkers; i++) {
        acr_mworker_t *o = c->reg.workers[i];
        if (o != w && o->state != ACR_WORKER_MISSING && !o->refused) o->join_due = due;
    }
}

/* A stopped rejoin: the worker's final cumulative report is merged when the master shows no
 * test of its own. */
static void adopt_stopped(acr_core_t *c, acr_mworker_t *w, const acr_msg_t *msg)
{
    acr_run_t *r = &c->run;
    bool same = r->adopted && strcmp(r->test_id, msg->test_id) == 0;
    if (acr__run_active(c) ? !same : (r->state == ACR_RUN_STOPPED && !same)) {
        c->reg.rejoins_refused++;
        ACR_WARN("worker %s rejoined with stopped test '%s' while this master shows test %s: "
                 "its report is not merged",
                 ACR_ESC(w->id), ACR_ESC(msg->test_id), ACR_ESC(r->test_id[0] ? r->test_id : "-"));
        return;
    }
    if (r->state == ACR_RUN_READY) {
        acr__agg_test_start(c);
        snprintf(r->test_id, sizeof r->test_id, "%s", msg->test_id);
        r->adopted = true;
        r->test_start = acr_now();
        r->test_start_mono = acr_mono_s();
        acr__run_set_state(c, ACR_RUN_STOPPED);
    }
    w->last_seq = msg->seq;
    w->cumulative_ok = true;
    ACR_INFO("worker %s rejoined after test %s stopped: merging its final report", ACR_ESC(w->id),
             ACR_ESC(r->test_id));
}

/* Whether @sha (a rejoin's scenario_sha256) names this master's scenario: the hash of the shipped
 * bundle, of the default bundle a worker's own -f gives, or of the scenario file alone. Unknown
 * (no hash on either side) counts as the same. */
static bool same_scenario(const acr_core_t *c, const char *sha)
{
    if (!sha || !*sha) return true;
    const char *mine[] = {c->cfg.bundle ? c->cfg.bundle->sha256 : NULL, c->cfg.scenario_sha256,
                          c->scenario_sha256};
    bool any = false;
    for (size_t i = 0; i < ACR_ARRAY_SIZE(mine); i++) {
        if (!mine[i] || !*mine[i]) continue;
        any = true;
        if (strcmp(mine[i], sha) == 0) return true;
    }
    return !any;
}

void acr__adopt_on_rejoin(acr_core_t *c, acr_mworker_t *w, const acr_msg_t *msg)
{
    const char *tid = msg->test_id ? msg->test_id : "";
    const char *st = msg->state ? msg->state : "";
    bool stopped = strcmp(st, "stopped") == 0;
    if (w->state == ACR_WORKER_MISSING || c->quitting) {
        refuse(c, w, tid, c->quitting ? "the master is quitting" : "it is missing");
        return;
    }
    if (!same_scenario(c, msg->scenario_sha256)) {
        if (stopped) {
            c->reg.rejoins_refused++;
            ACR_WARN("worker %s rejoined with a stopped test of another scenario: not merged",
                     ACR_ESC(w->id));
            return;
        }
        refuse(c, w, tid, "it runs another scenario than this master's");
        return;
    }
    if (!acr_msg_is_hex(tid, ACR_TEST_ID_LEN)) {
        if (!stopped) refuse(c, w, tid, "the test id is not 32 hex characters");
        return;
    }
    if (stopped) {
        adopt_stopped(c, w, msg);
        return;
    }
    acr_run_t *r = &c->run;
    if (!acr__run_active(c)) {
        adopt_worker(c, w, msg, true);
        return;
    }
    bool same = r->adopted && strcmp(r->test_id, tid) == 0;
    if (!same || (r->state != ACR_RUN_SPAWNING && r->state != ACR_RUN_RUNNING)) {
        refuse(c, w, tid, same ? "the test is stopping" : "this master runs another test");
        return;
    }
    adopt_worker(c, w, msg, false);
}

void acr_core_adoption(const acr_core_t *c, acr_core_adoption_t *out)
{
    const acr_run_t *r = &c->run;
    bool on = r->adopted && (r->state == ACR_RUN_SPAWNING || r->state == ACR_RUN_RUNNING);
    *out = (acr_core_adoption_t){.adopted = on,
                                 .started_at = on ? r->adopt_started_at : 0,
                                 .joined = on ? r->adopt_joined : 0};
}
