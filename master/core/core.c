/*
 * The control core's public API (core.h): its lifecycle, the subscribers every state change goes
 * to, the front-ends' commands (start, edit, stop, reset) checked and passed to the run state
 * machine (run.c), snapshots copied out of the registry and the aggregation, and the quit that
 * ends the master's work with its workers. Events are delivered synchronously, in subscription
 * order, after the core's own state is consistent.
 */
#include "master/core/core_int.h"

#include "common/log.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#define QUIT_WAIT_MS 5000 /* how long the workers get to answer `quit` */

void acr__core_emit(acr_core_t *c, const acr_core_event_t *ev)
{
    for (size_t i = 0; i < c->nsubs; i++) c->subs[i].fn(c, ev, c->subs[i].ud);
}

static void quit_done(acr_core_t *c)
{
    if (c->quit_done) return;
    c->quit_done = true;
    uv_timer_stop(&c->quit_timer);
    acr__core_emit(c, &(acr_core_event_t){.type = ACR_CORE_EV_QUIT_DONE});
}

static void check_quit(acr_core_t *c)
{
    if (!c->quitting || c->quit_done) return;
    for (size_t i = 0; i < c->reg.nworkers; i++) {
        const acr_mworker_t *w = c->reg.workers[i];
        if (w->quit_pending && w->state != ACR_WORKER_MISSING) return;
    }
    quit_done(c);
}

void acr__core_after_input(acr_core_t *c)
{
    acr__run_check(c);
    check_quit(c);
    acr__core_emit(c, &(acr_core_event_t){.type = ACR_CORE_EV_WORKERS});
}

int acr_core_new(uv_loop_t *loop, const acr_core_config_t *cfg, acr_core_t **out)
{
    *out = NULL;
    if (!cfg->classes || cfg->nclasses == 0) return -EINVAL;
    acr_core_t *c = calloc(1, sizeof(*c));
    if (!c) return -ENOMEM;
    c->loop = loop;
    c->cfg = *cfg;
    c->cfg.scenario_src = NULL;
    int rc = -ENOMEM;
    if (cfg->scenario_src) {
        char *src = malloc(cfg->scenario_len ? cfg->scenario_len : 1);
        if (!src) goto fail;
        memcpy(src, cfg->scenario_src, cfg->scenario_len);
        c->cfg.scenario_src = src;
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;
        if (EVP_Digest(src, cfg->scenario_len, md, &mdlen, EVP_sha256(), NULL) == 1 && mdlen == 32)
            for (unsigned i = 0; i < mdlen; i++)
                snprintf(c->scenario_sha256 + 2 * i, 3, "%02x", md[i]);
    }
    acr__random_hex_id(c->instance);
    rc = acr__agg_init(c);
    if (rc == 0) rc = acr__run_init(c);
    if (rc == 0) rc = uv_timer_init(loop, &c->quit_timer);
    if (rc < 0) goto fail;
    *out = c;
    return 0;
fail:
    /* handles initialised so far are closed; the memory then goes with the loop's last turn */
    acr_core_close(c);
    uv_run(loop, UV_RUN_NOWAIT);
    acr_core_free(c);
    return rc;
}

int acr_core_listen(acr_core_t *c, const char *host, int port, int *bound_port, char *err,
                    size_t errlen)
{
    int rc = acr_zchan_bind_keyed(c->loop, host, port, c->cfg.keys, acr__registry_on_frame, c,
                                  &c->chan, bound_port, err, errlen);
    if (rc < 0) return rc;
    rc = acr__registry_start(c);
    if (rc < 0) snprintf(err, errlen, "liveness timer: %s", uv_strerror(rc));
    return rc;
}

int acr_core_subscribe(acr_core_t *c, acr_core_listener_fn fn, void *ud)
{
    if (c->nsubs == ACR__CORE_MAX_SUBS) return -ENOSPC;
    c->subs[c->nsubs].fn = fn;
    c->subs[c->nsubs].ud = ud;
    c->nsubs++;
    return 0;
}

/* The configured classes named in @names (all of them when @n is 0), into @out (cfg.nclasses
 * entries). Returns how many, or -EINVAL for an unknown name. */
/* 0 when every one of the @n names is a class of the scenario, else -EINVAL (logged). */
static int check_classes(const acr_core_t *c, const char *const *names, size_t n)
{
    for (size_t j = 0; names && j < n; j++) {
        bool known = false;
        for (size_t i = 0; i < c->cfg.nclasses && !known; i++)
            known = names[j] && strcmp(names[j], c->cfg.classes[i].name) == 0;
        if (!known) {
            ACR_WARN("unknown user class '%s'", names[j] ? names[j] : "(null)");
            return -EINVAL;
        }
    }
    return 0;
}

int acr_core_start(acr_core_t *c, long users, double rate, const char *host, double run_time,
                   const char *const *classes, size_t nclasses)
{
    if (users < 0 || !(rate > 0)) return -EINVAL;
    if (c->quitting) return -ESHUTDOWN;
    int rc = check_classes(c, classes, nclasses);
    char *h = NULL;
    if (rc == 0 && host && !(h = strdup(host))) rc = -ENOMEM;
    if (rc == 0) {
        char *old = c->run.host;
        c->run.host = h;
        rc = acr__run_start(c, users, rate, classes, nclasses);
        if (rc < 0) {
            c->run.host = old;
            free(h);
        } else {
            free(old);
            acr__run_limit(c, run_time);
            c->run.nofile_warned = 0;
            acr__registry_check_nofile(c);
        }
    }
    return rc;
}

int acr_core_edit(acr_core_t *c, long users, double rate, const char *const *classes,
                  size_t nclasses)
{
    if (users < 0 || !(rate > 0)) return -EINVAL;
    int rc = check_classes(c, classes, nclasses);
    if (rc < 0) return rc;
    rc = acr__run_edit(c, users, rate, classes, nclasses);
    if (rc == 0) acr__registry_check_nofile(c);
    return rc;
}

int acr_core_stop(acr_core_t *c)
{
    return acr__run_stop(c);
}

void acr_core_set_hooks(acr_core_t *c, const acr_core_hooks_t *hooks, void *ud)
{
    c->hooks = hooks ? *hooks : (acr_core_hooks_t){0};
    c->hooks_ud = hooks ? ud : NULL;
}

int acr_core_send_custom(acr_core_t *c, const char *type, const void *data, size_t len,
                         const char *node_id)
{
    if (!c->chan || c->closed) return -ESHUTDOWN;
    if (!type || acr_msg_type_is_builtin(type)) return -EINVAL;
    if (node_id && !acr__registry_find(c, node_id)) return -ENOENT;
    acr_buf_t b = {0};
    int sent = 0;
    for (size_t i = 0; i < c->reg.nworkers; i++) {
        const char *id = c->reg.workers[i]->id;
        if (node_id && strcmp(node_id, id) != 0) continue;
        acr_buf_reset(&b);
        if (acr_msg_encode_custom(&b, type, data, len, id) < 0) {
            acr_buf_free(&b);
            return -ENOMEM;
        }
        int rc = acr_zchan_send(c->chan, id, strlen(id), b.data, b.len);
        if (rc < 0 && rc != -EHOSTUNREACH)
            ACR_DEBUG("custom message to worker %s failed: %s", ACR_ESC(id), strerror(-rc));
        sent++;
    }
    acr_buf_free(&b);
    return sent;
}

int acr_core_send_frame(acr_core_t *c, const char *node_id, const void *payload, size_t len)
{
    if (!c->chan || c->closed) return -ESHUTDOWN;
    if (!acr__registry_find(c, node_id)) return -ENOENT;
    return acr_zchan_send(c->chan, node_id, strlen(node_id), payload, len);
}

int acr_core_add_exception(acr_core_t *c, const char *msg, const char *traceback, const char *node)
{
    return acr_stats_add_exception(c->agg.stats, msg ? msg : "", traceback ? traceback : "",
                                   node ? node : "master", 1);
}

void acr_core_reset(acr_core_t *c)
{
    acr_stats_reset(c->agg.stats, acr_now());
}

static int snapshot_workers(acr_core_t *c, acr_core_snapshot_t *s)
{
    const acr_registry_t *g = &c->reg;
    s->workers = calloc(g->nworkers ? g->nworkers : 1, sizeof(*s->workers));
    if (!s->workers) return -ENOMEM;
    double now = acr_mono_s();
    for (size_t i = 0; i < g->nworkers; i++) {
        const acr_mworker_t *w = g->workers[i];
        acr_core_worker_t *r = &s->workers[i];
        *r = (acr_core_worker_t){acr_strdup(w->id),
                                 acr_strdup(w->host),
                                 acr_worker_state_name(w->state),
                                 acr__worker_users(w),
                                 w->cpu,
                                 (long long)w->mem,
                                 now - w->last_seen};
        s->nworkers = i + 1;
        if (!r->id || (w->host && !r->host)) return -ENOMEM;
    }
    s->lost = calloc(g->nindexes ? g->nindexes : 1, sizeof(*s->lost));
    if (!s->lost) return -ENOMEM;
    for (size_t i = 0; i < g->nindexes; i++) {
        if (!g->indexes[i].lost) continue;
        acr_core_lost_t *l = &s->lost[s->nlost];
        *l = (acr_core_lost_t){acr_strdup(g->indexes[i].id), g->indexes[i].lost};
        if (!l->worker) return -ENOMEM;
        s->nlost++;
    }
    return 0;
}

size_t acr_core_ready_workers(const acr_core_t *c)
{
    return acr__registry_ready(c);
}

int acr_core_snapshot(acr_core_t *c, acr_core_snapshot_t *out)
{
    const acr_run_t *r = &c->run;
    *out = (acr_core_snapshot_t){
        .state = r->state,
        .user_count = acr__registry_user_count(c),
        .target_users = r->target_users,
        .spawn_rate = r->spawn_rate,
        .ready_workers = acr__registry_ready(c),
        .live_workers = acr__registry_live(c),
        .run_time = r->test_start > 0 ? acr_mono_s() - r->test_start_mono : 0,
        .stats = c->agg.stats,
        .current = acr__agg_current(c),
        .lost_reports = c->agg.lost_reports,
        .reports_merged = c->agg.reports_merged,
        .malformed = c->reg.malformed + (c->chan ? acr_zchan_dropped(c->chan) : 0),
        .unknown_frames = c->reg.unknown_frames,
        .rejoins_refused = c->reg.rejoins_refused,
        .adopted = r->adopted,
        .quarantined = c->quarantine,
        .nquarantined = c->nquarantine,
    };
    memcpy(out->test_id, r->test_id, sizeof out->test_id);
    int rc = snapshot_workers(c, out);
    if (rc < 0) {
        ACR_ERROR("out of memory copying the workers for a snapshot");
        acr_core_snapshot_free(out);
    }
    return rc;
}

void acr_core_snapshot_free(acr_core_snapshot_t *s)
{
    for (size_t i = 0; i < s->nworkers; i++) {
        free(s->workers[i].id);
        free(s->workers[i].host);
    }
    for (size_t i = 0; i < s->nlost; i++) free(s->lost[i].worker);
    free(s->workers);
    free(s->lost);
    s->workers = NULL;
    s->lost = NULL;
    s->nworkers = s->nlost = 0;
}

static void quit_timeout_cb(uv_timer_t *t)
{
    acr_core_t *c = acr_container_of(t, acr_core_t, quit_timer);
    for (size_t i = 0; i < c->reg.nworkers; i++)
        if (c->reg.workers[i]->quit_pending)
            ACR_WARN("worker %s did not answer the quit", ACR_ESC(c->reg.workers[i]->id));
    quit_done(c);
}

void acr_core_quit(acr_core_t *c)
{
    if (c->quitting) return;
    c->quitting = true;
    uv_timer_stop(&c->run.runtime_timer);
    for (size_t i = 0; i < c->reg.nworkers; i++) {
        acr_mworker_t *w = c->reg.workers[i];
        w->quit_pending = w->state != ACR_WORKER_MISSING;
        acr__registry_send_nil(c, "quit", w->id);
    }
    uv_timer_start(&c->quit_timer, quit_timeout_cb, QUIT_WAIT_MS, 0);
    check_quit(c);
}

void acr_core_finish(acr_core_t *c)
{
    for (size_t i = 0; i < c->reg.nworkers; i++) {
        acr_mworker_t *w = c->reg.workers[i];
        acr__agg_close_gap(c, w,
                           w->state == ACR_WORKER_MISSING
                               ? "missing at the end of the test"
                               : "no final report by the end of the test");
    }
}

static void close_handle(uv_handle_t *h)
{
    if (h->loop && !uv_is_closing(h)) uv_close(h, NULL);
}

void acr_core_close(acr_core_t *c)
{
    if (c->closed) return;
    c->closed = true;
    if (c->chan) {
        c->reg.malformed += acr_zchan_dropped(c->chan);
        acr_zchan_close(c->chan, NULL, NULL);
        c->chan = NULL;
    }
    close_handle((uv_handle_t *)&c->reg.liveness_timer);
    close_handle((uv_handle_t *)&c->quit_timer);
    acr__run_close(c);
}

void acr_core_free(acr_core_t *c)
{
    if (!c) return;
    acr__run_free(c);
    acr__registry_free(c);
    acr__quarantine_free(c);
    acr__agg_free(c);
    acr_buf_free(&c->sendbuf);
    free((char *)c->cfg.scenario_src);
    free(c);
}
