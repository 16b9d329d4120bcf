/*
 * The worker registry: every frame from the ROUTER comes in here (decoded by proto/msg, routed by
 * type), workers are registered/replaced/removed, indexes are handed out (stable per node id for
 * the master's lifetime), and a 250 ms liveness tick sends the master's heartbeat to acrida workers
 * every second and marks workers silent for MISSING_AFTER_S as missing (docs/cli.md): users are
 * rebalanced over the others in the same tick. Every change of a worker's state goes through one
 * transition function over one table (acr__worker_event). Only registered routing ids are heard:
 * a frame from any other peer is dropped, counted and answered with `reconnect` (adopt.c).
 * Registrations are bounded: --max-workers and a token bucket of --registration-rate client_ready
 * frames per second (docs/security.md).
 */
#include "master/core/core_int.h"

#include "common/bundle.h"
#include "common/log.h"
#include "proto/proto.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define LIVENESS_TICK_MS 250
#define HEARTBEAT_EVERY_TICKS 4
/* silent this long = missing; checked every tick, so a worker is missing at most
 * MISSING_AFTER_S + one tick (2.95 s) after its last message (the bound is 3 s) */
#define MISSING_AFTER_S 2.7
/* a missing worker is forgotten this long after it went missing (Locust's 60 s) */
#define REMOVE_MISSING_S 60.0
#define NODE_ID_BUF (ACR_PROTO_NODE_ID_MAX + 1) /* a node id and its NUL */
/* how long an acrida worker may take to confirm the scenario sent after its ack
 * (acrida_scenario_loaded) before it counts as loaded anyway (an acrida worker without that
 * message; a 64 MiB bundle over a slow link) */
#define SCENARIO_WAIT_S 30.0
/* a client_ready this soon after the last one of a ready worker that sent nothing in between is
 * a duplicate: a worker that waited for a master queued one per retry, and they all arrive at
 * once when the master binds (proto/PROTOCOL.md, section 8) */
#define DUP_READY_WINDOW_S 2.0
#define REG_WARN_EVERY_S 10.0 /* at most one warning about dropped registrations per this */

const char *acr_worker_state_name(acr_worker_state_t s)
{
    static const char *const names[] = {"ready", "spawning", "running", "stopped", "missing"};
    return (unsigned)s < ACR_ARRAY_SIZE(names) ? names[s] : "?";
}

/* The worker state machine: next[event][from]; SAME keeps the state, REPORTED takes the state the
 * message named. A missing worker only leaves `missing` by a message that proves it is alive. */
enum { SAME = -1, REPORTED = -2 };
static const int8_t next_state[ACR_WEV__COUNT][ACR_WORKER_MISSING + 1] = {
    /*                  ready                 spawning              running
                        stopped               missing */
    [ACR_WEV_REGISTER] = {ACR_WORKER_READY, ACR_WORKER_READY, ACR_WORKER_READY, ACR_WORKER_READY,
                          ACR_WORKER_READY},
    [ACR_WEV_SPAWNING] = {ACR_WORKER_SPAWNING, ACR_WORKER_SPAWNING, ACR_WORKER_SPAWNING,
                          ACR_WORKER_SPAWNING, SAME},
    [ACR_WEV_SPAWNED] = {ACR_WORKER_RUNNING, ACR_WORKER_RUNNING, ACR_WORKER_RUNNING,
                         ACR_WORKER_RUNNING, SAME},
    [ACR_WEV_STOPPED] = {ACR_WORKER_READY, ACR_WORKER_READY, ACR_WORKER_READY, ACR_WORKER_READY,
                         ACR_WORKER_READY},
    [ACR_WEV_HEARTBEAT] = {REPORTED, REPORTED, REPORTED, REPORTED, REPORTED},
    [ACR_WEV_SILENT] = {ACR_WORKER_MISSING, ACR_WORKER_MISSING, ACR_WORKER_MISSING,
                        ACR_WORKER_MISSING, SAME},
    [ACR_WEV_ADOPT] = {REPORTED, SAME, SAME, SAME, SAME},
};

const char *acr__wevent_name(acr_wevent_t ev)
{
    static const char *const names[] = {"register",       "spawning",  "spawning_complete",
                                        "client_stopped", "heartbeat", "silent",
                                        "adopt"};
    return (unsigned)ev < ACR_ARRAY_SIZE(names) ? names[ev] : "?";
}

acr_worker_state_t acr__worker_next(acr_worker_state_t from, acr_wevent_t ev,
                                    acr_worker_state_t reported)
{
    if ((unsigned)ev >= ACR_WEV__COUNT || (unsigned)from > ACR_WORKER_MISSING) return from;
    int n = next_state[ev][from];
    if (n == SAME) return from;
    if (n == REPORTED) return (unsigned)reported > ACR_WORKER_MISSING ? from : reported;
    return (acr_worker_state_t)n;
}

static bool valid_id(const char *p, size_t n)
{
    if (n == 0 || n > ACR_PROTO_NODE_ID_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 || c == 0x7f) return false;
    }
    return true;
}

acr_mworker_t *acr__registry_find(acr_core_t *c, const char *id)
{
    if (!id) return NULL;
    for (size_t i = 0; i < c->reg.nworkers; i++)
        if (strcmp(c->reg.workers[i]->id, id) == 0) return c->reg.workers[i];
    return NULL;
}

size_t acr__registry_live(const acr_core_t *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->reg.nworkers; i++)
        if (c->reg.workers[i]->state != ACR_WORKER_MISSING) n++;
    return n;
}

size_t acr_core_live_workers(const acr_core_t *c)
{
    return acr__registry_live(c);
}

size_t acr_core_load_failures(const acr_core_t *c)
{
    return c->reg.load_failures;
}

size_t acr__registry_ready(const acr_core_t *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->reg.nworkers; i++)
        if (c->reg.workers[i]->state == ACR_WORKER_READY && !c->reg.workers[i]->loading) n++;
    return n;
}

bool acr__worker_usable(const acr_mworker_t *w)
{
    return w->state != ACR_WORKER_MISSING && !w->loading;
}

long acr__worker_users(const acr_mworker_t *w)
{
    long n = 0;
    for (size_t c = 0; c < w->nclasses; c++) n += (long)w->classes[c].count;
    return n;
}

long acr__registry_user_count(const acr_core_t *c)
{
    long n = 0;
    for (size_t i = 0; i < c->reg.nworkers; i++) {
        if (c->reg.workers[i]->state != ACR_WORKER_MISSING)
            n += acr__worker_users(c->reg.workers[i]);
    }
    return n;
}

static void classes_free(acr_mworker_t *w)
{
    for (size_t i = 0; i < w->nclasses; i++) free(w->classes[i].name);
    free(w->classes);
    w->classes = NULL;
    w->nclasses = 0;
}

void acr__worker_set_classes(acr_mworker_t *w, const acr_class_count_t *cc, size_t n)
{
    classes_free(w);
    if (n == 0) return;
    w->classes = calloc(n, sizeof(*w->classes));
    if (!w->classes) return;
    for (size_t i = 0; i < n; i++) {
        w->classes[i].name = strdup(cc[i].name ? cc[i].name : "");
        if (!w->classes[i].name) {
            w->nclasses = i;
            return;
        }
        /* a worker's counts are untrusted: bounded so that sums over workers cannot overflow */
        w->classes[i].count = cc[i].count < 0           ? 0
                              : cc[i].count > INT32_MAX ? INT32_MAX
                                                        : cc[i].count;
    }
    w->nclasses = n;
}

static void worker_free(acr_mworker_t *w)
{
    if (!w) return;
    classes_free(w);
    free(w->id);
    free(w->host);
    free(w->version);
    free(w);
}

static void registry_remove(acr_core_t *c, acr_mworker_t *w)
{
    for (size_t i = 0; i < c->reg.nworkers; i++)
        if (c->reg.workers[i] == w) {
            memmove(&c->reg.workers[i], &c->reg.workers[i + 1],
                    (c->reg.nworkers - i - 1) * sizeof(*c->reg.workers));
            c->reg.nworkers--;
            break;
        }
    worker_free(w);
}

/* The worker is gone for the pools: its leases return (master/pools.h). */
static void worker_lost(acr_core_t *c, acr_mworker_t *w)
{
    if (c->hooks.on_worker_lost) c->hooks.on_worker_lost(c, w->id, c->hooks_ud);
}

static bool run_takes_workers(const acr_core_t *c)
{
    return c->run.state == ACR_RUN_SPAWNING || c->run.state == ACR_RUN_RUNNING;
}

acr_worker_state_t acr__worker_event(acr_core_t *c, acr_mworker_t *w, acr_wevent_t ev,
                                     acr_worker_state_t reported)
{
    acr_worker_state_t from = w->state, to = acr__worker_next(from, ev, reported);
    bool in_run = run_takes_workers(c);
    double now = acr_mono_s();
    w->state = to;
    if (to != from)
        ACR_DEBUG("worker %s: %s -> %s (%s)", ACR_ESC(w->id), acr_worker_state_name(from),
                  acr_worker_state_name(to), acr__wevent_name(ev));
    switch (ev) {
    case ACR_WEV_REGISTER:
        /* an acrida worker may follow its client_ready with a rejoin of the test it runs: it
         * joins the run after a short grace unless the rejoin (adopt.c) came first */
        w->join_due = 0;
        if (in_run && w->acrida)
            w->join_due = now + ACR__JOIN_GRACE_S;
        else if (in_run)
            acr__run_workers_changed(c, w, NULL);
        break;
    case ACR_WEV_STOPPED:
        classes_free(w);
        /* a worker whose rejoin was refused has stopped that test: now it can take a share */
        w->join_due = in_run && w->refused ? now : 0;
        w->refused = false;
        if (in_run && w->join_due == 0) {
            ACR_WARN("worker %s stopped its users during the test", ACR_ESC(w->id));
            acr__run_workers_changed(c, NULL, w->id);
        }
        break;
    case ACR_WEV_SILENT:
        if (from == ACR_WORKER_MISSING) break;
        ACR_INFO("Worker %s failed to send heartbeat, setting state to missing (silent for "
                 "%.2f s).",
                 ACR_ESC(w->id), now - w->last_seen);
        classes_free(w);
        if (w->stop_pending) ACR_WARN("worker %s went missing during the stop", ACR_ESC(w->id));
        w->stop_pending = w->quit_pending = false;
        w->join_due = 0;
        worker_lost(c, w);
        if (in_run) {
            acr__run_workers_changed(c, NULL, w->id);
            if (acr__registry_live(c) == 0)
                ACR_WARN("The last worker went missing; the test goes on when workers "
                         "reconnect");
        }
        break;
    case ACR_WEV_HEARTBEAT:
        if (from != ACR_WORKER_MISSING || to == ACR_WORKER_MISSING) break;
        ACR_INFO("worker %s self-healed with heartbeat, setting state to %s", ACR_ESC(w->id),
                 acr_worker_state_name(to));
        if (in_run && !w->refused && !w->loading) acr__run_workers_changed(c, w, NULL);
        if (in_run && !w->refused && w->loading) w->join_due = now; /* once it loaded */
        break;
    default:
        break;
    }
    return to;
}

static int64_t index_of(acr_core_t *c, const char *id)
{
    for (size_t i = 0; i < c->reg.nindexes; i++)
        if (strcmp(c->reg.indexes[i].id, id) == 0) return c->reg.indexes[i].index;
    if (c->reg.nindexes == c->reg.capindexes) {
        size_t nc = c->reg.capindexes ? c->reg.capindexes * 2 : 16;
        void *p = realloc(c->reg.indexes, nc * sizeof(*c->reg.indexes));
        if (!p) return -1;
        c->reg.indexes = p;
        c->reg.capindexes = nc;
    }
    char *dup = strdup(id);
    if (!dup) return -1;
    int64_t idx = (int64_t)c->reg.nindexes;
    c->reg.indexes[c->reg.nindexes++] = (struct acr_index_entry){dup, idx, 0};
    return idx;
}

void acr__registry_send_buf(acr_core_t *c, const char *id)
{
    if (!c->chan) return;
    int rc = acr_zchan_send(c->chan, id, strlen(id), c->sendbuf.data, c->sendbuf.len);
    if (rc < 0 && rc != -EHOSTUNREACH)
        ACR_DEBUG("send to worker %s failed: %s", ACR_ESC(id), strerror(-rc));
}

void acr__registry_send_nil(acr_core_t *c, const char *type, const char *id)
{
    acr_buf_reset(&c->sendbuf);
    if (acr_msg_encode_nil(&c->sendbuf, type, id) < 0) {
        ACR_ERROR("out of memory encoding '%s'", ACR_ESC(type));
        return;
    }
    acr__registry_send_buf(c, id);
}

/* The scenario after the ack: the source (what a worker without bundle support loads), the
 * bundle's manifest, then the bundle's blob in parts (proto/PROTOCOL.md, "scenario"). */
static int send_scenario(acr_core_t *c, const char *id)
{
    const acr_bundle_t *b = c->cfg.bundle;
    acr_msg_bundle_t mf = {0};
    if (b) {
        mf.sha256 = (char *)b->sha256;
        mf.main = (char *)c->cfg.bundle_main;
        mf.size = b->blob_len;
        mf.parts =
            (uint32_t)(b->blob_len ? (b->blob_len + ACR_BUNDLE_PART_SIZE - 1) / ACR_BUNDLE_PART_SIZE
                                   : 1);
    }
    acr_buf_reset(&c->sendbuf);
    if (acr_msg_encode_scenario_bundle(&c->sendbuf, c->cfg.scenario_name, c->cfg.scenario_src,
                                       c->cfg.scenario_len, b ? &mf : NULL, id) < 0)
        goto nomem;
    acr__registry_send_buf(c, id);
    for (uint32_t i = 0; b && i < mf.parts; i++) {
        size_t off = (size_t)i * ACR_BUNDLE_PART_SIZE;
        size_t n =
            b->blob_len - off < ACR_BUNDLE_PART_SIZE ? b->blob_len - off : ACR_BUNDLE_PART_SIZE;
        acr_buf_reset(&c->sendbuf);
        if (acr_msg_encode_bundle_part(&c->sendbuf, b->sha256, i, b->blob + off, n, id) < 0)
            goto nomem;
        acr__registry_send_buf(c, id);
    }
    if (c->sendbuf.cap > (1u << 20)) acr_buf_free(&c->sendbuf); /* do not keep a part's room */
    return 0;
nomem:
    ACR_ERROR("out of memory encoding the scenario for worker %s", ACR_ESC(id));
    return -ENOMEM;
}

/* @w confirmed the scenario (or the wait for it ended): it takes users from now on, and joins a
 * test under way (after the join grace if that is still running). */
static void scenario_confirmed(acr_core_t *c, acr_mworker_t *w, double now)
{
    if (!w->loading || w->load_failed) return;
    w->loading = false;
    if (run_takes_workers(c) && w->state != ACR_WORKER_MISSING && !w->refused) {
        if (w->join_due <= 0) w->join_due = now;
        acr__adopt_joins_due(c, now);
    }
}

/* acrida_scenario_loaded: a worker's load error (an exception row and an ERROR naming it; the
 * worker then quits and never gets users), or the hash of the scenario it runs, warned about once
 * when it is not the master's. Either ends the wait for the worker's scenario. */
static void on_scenario_loaded(acr_core_t *c, acr_mworker_t *w, const char *nid, const char *pid,
                               const acr_msg_t *msg)
{
    const acr_msg_bundle_t *bd = &msg->bundle;
    if (w && bd->error) {
        w->load_failed = w->loading = true;
        w->join_due = 0;
    } else if (w && w->loading) {
        ACR_INFO("worker %s loaded the scenario (sha256 %.12s...): it takes users", pid,
                 bd->sha256);
        scenario_confirmed(c, w, acr_mono_s());
    }
    if (bd->error) {
        ACR_ERROR("worker %s could not load the scenario: %s", pid, ACR_ESC_LONG(bd->error));
        c->reg.load_failures++;
        if (acr_core_add_exception(c, bd->error, "", nid) < 0)
            ACR_ERROR("out of memory recording an exception");
        return;
    }
    const char *mine = c->cfg.scenario_sha256;
    const acr_bundle_t *b = c->cfg.bundle;
    if (!w || !mine || strcmp(bd->sha256, mine) == 0 || (b && strcmp(bd->sha256, b->sha256) == 0) ||
        strcmp(bd->sha256, c->scenario_sha256) == 0) /* a -f worker that hashed the file alone */
        return;
    if (w->scenario_warned) return;
    w->scenario_warned = true;
    ACR_WARN("worker %s runs a different scenario (sha256 %.12s...) than the master (%.12s...)",
             pid, ACR_ESC(bd->sha256), mine);
}

/* ---- message handlers ---- */

/* Whether this client_ready of registered worker @w only repeats the one just answered. */
static bool duplicate_ready(acr_mworker_t *w, double now)
{
    if (!w || w->state != ACR_WORKER_READY || w->heard_since_ready || w->stopped_since_ready ||
        now - w->ready_at > DUP_READY_WINDOW_S)
        return false;
    if (w->dup_ready++ == 0)
        ACR_INFO("worker %s: ignoring the duplicate client_ready frames it queued while no master "
                 "was up (already registered and acked)",
                 ACR_ESC(w->id));
    else
        ACR_DEBUG("worker %s: duplicate client_ready %llu ignored", ACR_ESC(w->id),
                  (unsigned long long)w->dup_ready);
    return true;
}

static void on_client_ready(acr_core_t *c, const char *id, acr_msg_t *msg)
{
    if (duplicate_ready(acr__registry_find(c, id), acr_mono_s())) return;
    int64_t idx = index_of(c, id);
    if (idx < 0) {
        ACR_ERROR("out of memory registering worker %s", ACR_ESC(id));
        return;
    }
    const char *version = msg->version ? msg->version : "";
    bool acrida = strncmp(version, "acrida/", 7) == 0;
    acr_buf_reset(&c->sendbuf);
    /* an acrida worker learns this master's instance: a new one means a restarted master, to
     * which it re-registers the test it runs (acrida_rejoin, adopt.c) */
    if ((acrida ? acr_msg_encode_ack_instance(&c->sendbuf, idx, c->instance, id)
                : acr_msg_encode_ack(&c->sendbuf, idx, false, id)) < 0) {
        ACR_ERROR("out of memory encoding ack");
        return;
    }
    acr__registry_send_buf(c, id);
    if (acrida && c->cfg.scenario_src && send_scenario(c, id) < 0) return;

    acr_mworker_t *w = acr__registry_find(c, id);
    bool replaced = w != NULL, returned = w && w->stopped_since_ready;
    if (w) {
        if (acr__run_active(c)) acr__agg_close_gap(c, w, "re-registered");
        classes_free(w);
        free(w->version);
        w->version = NULL;
    } else {
        if (c->reg.nworkers == c->reg.capworkers) {
            size_t nc = c->reg.capworkers ? c->reg.capworkers * 2 : 16;
            void *p = realloc(c->reg.workers, nc * sizeof(*c->reg.workers));
            if (!p) goto nomem;
            c->reg.workers = p;
            c->reg.capworkers = nc;
        }
        w = calloc(1, sizeof(*w));
        if (!w) goto nomem;
        w->id = strdup(id);
        const char *u = strchr(id, '_');
        w->host = u ? strndup(id, (size_t)(u - id)) : strdup(id);
        if (!w->id || !w->host) {
            worker_free(w);
            goto nomem;
        }
        c->reg.workers[c->reg.nworkers++] = w;
    }
    w->version = strdup(version);
    w->index = idx;
    w->acrida = acrida;
    w->last_seen = acr_mono_s();
    /* the scenario went out after the ack: no users before the worker confirms it loaded it (a
     * spawn could otherwise beat a load error). Only with a bundle: the message that confirms it
     * came with bundles. Stock Locust workers get no scenario and are ready at once. */
    w->loading = acrida && c->cfg.scenario_src && c->cfg.bundle;
    w->load_failed = false;
    w->load_due = w->last_seen + SCENARIO_WAIT_S;
    w->ready_at = w->last_seen;
    w->heard_since_ready = false;
    w->dup_ready = 0;
    w->refused = w->cumulative_ok = false;
    w->last_seq = -1;
    w->gap_open = false;
    w->spawns_sent = w->spawns_done = 0;
    /* a worker that re-registers during a stop has stopped; one during quit gets quit again */
    w->stop_pending = false;
    if (w->quit_pending) acr__registry_send_nil(c, "quit", id);
    w->stopped_since_ready = false;
    /* after a stop a worker answers client_stopped then client_ready (as Locust's): that is its
     * normal return to ready, not a re-registration */
    ACR_INFO("worker %s (index %lld, version '%s') %s%s. %zu workers connected.", ACR_ESC(id),
             (long long)idx, ACR_ESC(version),
             returned   ? "is ready again after the stop"
             : replaced ? "re-registered"
                        : "reported as ready",
             w->loading && !returned ? "; waiting for it to load the scenario" : "",
             acr__registry_live(c));
    acr__peer_known(c, id);
    acr__worker_event(c, w, ACR_WEV_REGISTER, ACR_WORKER_READY);
    return;
nomem:
    ACR_ERROR("out of memory registering worker %s", ACR_ESC(id));
}

static bool parse_state(const char *s, acr_worker_state_t *out)
{
    static const struct {
        const char *name;
        acr_worker_state_t st;
    } map[] = {{"ready", ACR_WORKER_READY},       {"spawning", ACR_WORKER_SPAWNING},
               {"hatching", ACR_WORKER_SPAWNING}, {"running", ACR_WORKER_RUNNING},
               {"stopped", ACR_WORKER_STOPPED},   {"stopping", ACR_WORKER_RUNNING},
               {"cleanup", ACR_WORKER_STOPPED}};
    if (!s) return false;
    for (size_t i = 0; i < ACR_ARRAY_SIZE(map); i++)
        if (strcmp(map[i].name, s) == 0) {
            *out = map[i].st;
            return true;
        }
    return false;
}

static void on_heartbeat(acr_core_t *c, acr_mworker_t *w, acr_msg_t *msg)
{
    acr_worker_state_t st;
    if (!parse_state(msg->state, &st)) {
        ACR_DEBUG("worker %s: unknown state '%s' in heartbeat", ACR_ESC(w->id),
                  ACR_ESC(msg->state ? msg->state : ""));
        st = w->state == ACR_WORKER_MISSING ? ACR_WORKER_READY : w->state;
    }
    w->cpu = msg->cpu_usage;
    w->mem = msg->memory_usage;
    bool nofile_news = msg->nofile != w->nofile;
    w->nofile = msg->nofile;
    acr__worker_event(c, w, ACR_WEV_HEARTBEAT, st);
    if (nofile_news) acr__registry_check_nofile(c);
}

/* Descriptors a worker keeps for itself (loop, ZeroMQ, logs, scenario files). */
#define NOFILE_RESERVE 64

void acr__registry_check_nofile(acr_core_t *c)
{
    if (c->run.state != ACR_RUN_SPAWNING && c->run.state != ACR_RUN_RUNNING) return;
    long long cap = 0;
    size_t n = 0;
    for (size_t i = 0; i < c->reg.nworkers; i++) {
        const acr_mworker_t *w = c->reg.workers[i];
        if (w->state == ACR_WORKER_MISSING) continue;
        if (w->nofile <= 0) return; /* not known (yet): no guess */
        long long room = w->nofile > NOFILE_RESERVE ? w->nofile - NOFILE_RESERVE : 0;
        cap = cap > LLONG_MAX - room ? LLONG_MAX : cap + room;
        n++;
    }
    long users = c->run.target_users;
    if (n == 0 || users <= cap || users == c->run.nofile_warned) return;
    c->run.nofile_warned = users;
    ACR_WARN("-u %ld exceeds the %lld connections the %zu worker%s can open (RLIMIT_NOFILE); users "
             "beyond that wait for a connection (raise the workers' nofile limit or add workers)",
             users, cap, n, n == 1 ? "" : "s");
}

static void on_client_stopped(acr_core_t *c, acr_mworker_t *w)
{
    w->stopped_msg = true;
    w->stopped_since_ready = true;
    w->stopped_at = acr_mono_s();
    acr__worker_event(c, w, ACR_WEV_STOPPED, ACR_WORKER_READY);
}

static void on_quit(acr_core_t *c, acr_mworker_t *w)
{
    bool was_live = w->state != ACR_WORKER_MISSING;
    if (acr__run_active(c)) acr__agg_close_gap(c, w, "quit without a final report");
    char *id = strdup(w->id);
    ACR_INFO("worker %s quit. %zu workers connected.", ACR_ESC(w->id),
             acr__registry_live(c) - was_live);
    worker_lost(c, w);
    registry_remove(c, w);
    if (!id) return;
    if (c->run.state == ACR_RUN_SPAWNING || c->run.state == ACR_RUN_RUNNING) {
        acr__run_workers_changed(c, NULL, id);
        if (acr__registry_live(c) == 0) {
            ACR_INFO("The last worker quit, stopping test.");
            acr__run_stop(c);
        }
    }
    free(id);
}

/* A frame from a registered worker, by type. */
static void dispatch_frame(acr_core_t *c, acr_mworker_t *w, acr_msg_t *msg)
{
    switch (msg->type) {
    case ACR_MSG_HEARTBEAT:
        w->last_seen = acr_mono_s();
        on_heartbeat(c, w, msg);
        break;
    case ACR_MSG_STATS:
        if (!acr__agg_on_stats(c, w, msg)) break;
        if (c->hooks.on_report) /* the worker_report event, after the merge */
            c->hooks.on_report(c, w->id, msg->data, msg->data_len, (long)msg->user_count,
                               c->hooks_ud);
        break;
    case ACR_MSG_SPAWNING:
        acr__worker_event(c, w, ACR_WEV_SPAWNING, ACR_WORKER_SPAWNING);
        break;
    case ACR_MSG_SPAWNING_COMPLETE:
        acr__worker_event(c, w, ACR_WEV_SPAWNED, ACR_WORKER_RUNNING);
        acr__worker_set_classes(w, msg->classes, msg->nclasses);
        w->spawns_done++;
        /* From here the worker runs users, so it owes reports until a final one. Not from the
         * spawn on: a worker that re-registers before it took the spawn (a client_ready queued
         * while the master was not up yet) had no users and lost nothing. */
        if (w->acrida && acr__run_active(c) && acr__worker_users(w) > 0 && !w->refused)
            w->gap_open = true;
        break;
    case ACR_MSG_CLIENT_STOPPED:
        on_client_stopped(c, w);
        break;
    case ACR_MSG_QUIT:
        on_quit(c, w);
        break;
    case ACR_MSG_EXCEPTION:
        if (!w->refused) acr__agg_on_exception(c, w->id, msg);
        break;
    case ACR_MSG_REJOIN:
        acr__adopt_on_rejoin(c, w, msg);
        break;
    case ACR_MSG_SCENARIO_LOADED:
        on_scenario_loaded(c, w, w->id, ACR_ESC(w->id), msg);
        break;
    case ACR_MSG_STALL:
        acr__quarantine_on_stall(c, w, msg);
        break;
    case ACR_MSG_POOL_REQ:
        if (c->hooks.on_pool) c->hooks.on_pool(c, w->id, &msg->pool, c->hooks_ud);
        break;
    case ACR_MSG_CUSTOM:
        if (c->hooks.on_custom) {
            c->hooks.on_custom(c, w->id, msg->type_name, msg->data, msg->data_len, c->hooks_ud);
            break;
        }
        ACR_WARN("Unknown message type received from worker %s: %s", ACR_ESC(w->id),
                 ACR_ESC(msg->type_name ? msg->type_name : "?"));
        break;
    default:
        ACR_WARN("unexpected '%s' message from worker %s ignored", acr_msg_type_name(msg->type),
                 ACR_ESC(w->id));
        break;
    }
}

/* Whether a client_ready is taken: a token of the bucket (--registration-rate per second, as many
 * at once), and room under --max-workers for an id not registered. A dropped one is counted and
 * summed up in one warning per REG_WARN_EVERY_S; the peer's next client_ready may be taken (an
 * acrida worker retries, a registered worker stays registered meanwhile). */
static bool registration_admitted(acr_core_t *c, const char *id)
{
    acr_registry_t *g = &c->reg;
    double rate =
        c->cfg.registration_rate > 0 ? c->cfg.registration_rate : ACR_CORE_REGISTRATION_RATE;
    size_t max = c->cfg.max_workers ? c->cfg.max_workers : ACR_CORE_MAX_WORKERS;
    double now = acr_mono_s();
    g->reg_tokens += (now - g->reg_refill_at) * rate;
    if (g->reg_tokens > rate) g->reg_tokens = rate;
    g->reg_refill_at = now;
    bool full = g->nworkers >= max && !acr__registry_find(c, id);
    if (!full && g->reg_tokens >= 1) {
        g->reg_tokens -= 1;
        return true;
    }
    g->reg_dropped++;
    if (now - g->reg_warned_at >= REG_WARN_EVERY_S) {
        ACR_WARN("registration dropped: %" PRIu64 " client_ready frames dropped in the last %.0f s "
                 "(%" PRIu64 " in all): %s",
                 g->reg_dropped - g->reg_dropped_logged, REG_WARN_EVERY_S, g->reg_dropped,
                 full ? "--max-workers reached" : "more than --registration-rate per second");
        g->reg_dropped_logged = g->reg_dropped;
        g->reg_warned_at = now;
    }
    return false;
}

static void handle(acr_core_t *c, const char *peer, size_t peer_len, acr_msg_t *msg)
{
    /* Every message is the connection's: client_ready registers the routing id, and any other
     * message whose payload names another worker is dropped, so no peer can speak for (quit,
     * heartbeat, report as) a worker it is not. acrida and Locust workers send their own id. */
    char id[NODE_ID_BUF];
    memcpy(id, peer, peer_len);
    id[peer_len] = 0;
    if (msg->type == ACR_MSG_CLIENT_READY) {
        if (registration_admitted(c, id)) on_client_ready(c, id, msg);
        return;
    }
    if (msg->node_id && *msg->node_id && strcmp(msg->node_id, id) != 0) {
        c->reg.malformed++;
        ACR_WARN("dropped malformed frame from %s: %s names another node id",
                 ACR_ESCN(peer, peer_len), ACR_ESC(msg->type_name ? msg->type_name : "message"));
        return;
    }
    acr_mworker_t *w = acr__registry_find(c, id);
    if (!w) { /* never registered, quit or removed: nothing it says counts (adopt.c) */
        if (msg->type != ACR_MSG_QUIT) acr__peer_unknown(c, id, msg);
        return;
    }
    if (w->state != ACR_WORKER_MISSING) w->last_seen = acr_mono_s();
    w->heard_since_ready = true;
    dispatch_frame(c, w, msg);
}

void acr__registry_on_frame(acr_zchan_t *ch, const char *peer, size_t peer_len, const void *data,
                            size_t len, void *ud)
{
    (void)ch;
    acr_core_t *c = ud;
    char err[256];
    acr_msg_t msg;
    if (!peer || !valid_id(peer, peer_len)) {
        c->reg.malformed++;
        ACR_WARN("dropped malformed frame from %s: routing id is not a printable node id",
                 ACR_ESCN(peer ? peer : "", peer ? peer_len : 0));
        return;
    }
    int rc = acr_msg_decode_reuse(data, len, &msg, &c->reg.spare_stats, err, sizeof err);
    if (rc < 0) {
        c->reg.malformed++;
        ACR_WARN("dropped malformed frame from %s: %s", ACR_ESCN(peer, peer_len),
                 rc == -ENOMEM ? "out of memory" : ACR_ESC_LONG(err));
        return;
    }
    handle(c, peer, peer_len, &msg);
    if (msg.stats) { /* merged (or dropped): the next report's table */
        acr_stats_clear(msg.stats, 0);
        acr_stats_free(c->reg.spare_stats);
        c->reg.spare_stats = msg.stats;
        msg.stats = NULL;
    }
    acr_msg_free(&msg);
    acr__core_after_input(c);
}

/* ---- liveness ---- */

static void liveness_tick(uv_timer_t *t)
{
    acr_core_t *c = acr_container_of(t, acr_core_t, reg.liveness_timer);
    bool beat = (c->reg.liveness_ticks++ % HEARTBEAT_EVERY_TICKS) == 0;
    double now = acr_mono_s();
    for (size_t i = 0; i < c->reg.nworkers;) {
        acr_mworker_t *w = c->reg.workers[i];
        if (beat && w->acrida && w->state != ACR_WORKER_MISSING)
            acr__registry_send_nil(c, "heartbeat", w->id);
        if (w->loading && !w->load_failed && now > w->load_due && w->state != ACR_WORKER_MISSING) {
            ACR_WARN("worker %s did not confirm loading the scenario within %.0f s; it takes "
                     "users anyway",
                     ACR_ESC(w->id), SCENARIO_WAIT_S);
            scenario_confirmed(c, w, now);
        }
        if (w->state != ACR_WORKER_MISSING && now - w->last_seen > MISSING_AFTER_S) {
            acr__worker_event(c, w, ACR_WEV_SILENT, ACR_WORKER_MISSING);
        } else if (w->state == ACR_WORKER_MISSING &&
                   now - w->last_seen > MISSING_AFTER_S + REMOVE_MISSING_S) {
            ACR_INFO("worker %s removed after being missing for %.0f s", ACR_ESC(w->id),
                     REMOVE_MISSING_S);
            if (acr__run_active(c)) acr__agg_close_gap(c, w, "removed while missing");
            worker_lost(c, w);
            registry_remove(c, w);
            continue;
        }
        i++;
    }
    acr__adopt_joins_due(c, now);
    acr__run_rebalance_due(c);
    acr__core_after_input(c);
}

int acr__registry_start(acr_core_t *c)
{
    c->reg.reg_refill_at = c->reg.reg_warned_at = -1e9; /* a full bucket, the first drop logged */
    int rc = uv_timer_init(c->loop, &c->reg.liveness_timer);
    if (rc < 0) return rc;
    return uv_timer_start(&c->reg.liveness_timer, liveness_tick, LIVENESS_TICK_MS,
                          LIVENESS_TICK_MS);
}

void acr__registry_free(acr_core_t *c)
{
    acr__peer_free(c);
    for (size_t i = 0; i < c->reg.nworkers; i++) worker_free(c->reg.workers[i]);
    free(c->reg.workers);
    c->reg.workers = NULL;
    c->reg.nworkers = c->reg.capworkers = 0;
    for (size_t i = 0; i < c->reg.nindexes; i++) free(c->reg.indexes[i].id);
    free(c->reg.indexes);
    c->reg.indexes = NULL;
    c->reg.nindexes = c->reg.capindexes = 0;
    acr_stats_free(c->reg.spare_stats);
    c->reg.spare_stats = NULL;
}
