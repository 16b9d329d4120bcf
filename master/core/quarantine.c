/*
 * Quarantine of user classes that stall workers (proto/PROTOCOL.md, acrida_stall). A worker's
 * watchdog (worker/watchdog.h) interrupts a task that ran for --stall-timeout without yielding
 * and tells the master; the master then takes the class out of every ramp for the rest of its
 * life: the test under way gets a new ramp over the other classes (its users replaced, as a
 * shape's class change does, master/core/dispatch.h), later starts and edits leave it out, and
 * the end of the run shows it and exits 1 (master/finish.c). A worker that went silent while a
 * user spun is marked missing first and that user moved once; once quarantined, it moves no more.
 */
#include "master/core/core_int.h"

#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const acr_core_quarantine_t *find(const acr_core_t *c, const char *cls)
{
    for (size_t i = 0; i < c->nquarantine; i++)
        if (strcmp(c->quarantine[i].cls, cls) == 0) return &c->quarantine[i];
    return NULL;
}

static bool is_class(const acr_core_t *c, const char *cls)
{
    for (size_t i = 0; i < c->cfg.nclasses; i++)
        if (strcmp(c->cfg.classes[i].name, cls) == 0) return true;
    return false;
}

/* The test under way runs without the quarantined classes from now on. */
static void requeue(acr_core_t *c)
{
    acr_dispatch_t *d = c->run.dispatch;
    if (!d || (c->run.state != ACR_RUN_SPAWNING && c->run.state != ACR_RUN_RUNNING)) return;
    size_t nc = acr_dispatch_nclasses(d), n = 0;
    const char **names = calloc(nc ? nc : 1, sizeof(*names));
    if (!names) {
        ACR_ERROR("out of memory taking a quarantined class out of the test");
        return;
    }
    for (size_t k = 0; k < nc; k++) {
        const char *name = acr_dispatch_class_name(d, k);
        if (acr_dispatch_class_allowed(d, k) && !find(c, name)) names[n++] = name;
    }
    if (n == 0) {
        ACR_ERROR("every user class of the test is quarantined: stopping the test");
        free(names);
        acr__run_stop(c);
        return;
    }
    /* the subset holds for rebalances too, so workers that come back get none of its users */
    int rc = acr_dispatch_set_classes(d, names, n);
    free(names);
    if (rc == 0 && acr__registry_live(c) > 0)
        rc = acr__run_edit(c, c->run.target_users, c->run.spawn_rate, NULL, 0);
    if (rc < 0) ACR_ERROR("cannot take the quarantined class out of the test: %s", strerror(-rc));
}

void acr__quarantine_on_stall(acr_core_t *c, acr_mworker_t *w, const acr_msg_t *msg)
{
    char cls[ACR_ESC_MAX], task[ACR_ESC_MAX], wid[ACR_ESC_MAX]; /* from a peer: escaped */
    acr_log_escape_str(cls, sizeof cls, msg->stall_class);
    acr_log_escape_str(task, sizeof task, msg->stall_task);
    acr_log_escape_str(wid, sizeof wid, w->id);
    if (!is_class(c, msg->stall_class)) {
        ACR_WARN("worker %s reports a stall of an unknown user class '%s'; ignored", wid, cls);
        return;
    }
    if (find(c, msg->stall_class)) {
        ACR_WARN("user class %s (quarantined) also stalled worker %s for %.1f s in task %s", cls,
                 wid, msg->stall_seconds, task);
        return;
    }
    acr_core_quarantine_t *q = realloc(c->quarantine, (c->nquarantine + 1) * sizeof(*q));
    if (!q) goto nomem;
    c->quarantine = q;
    q = &q[c->nquarantine];
    *q = (acr_core_quarantine_t){strdup(msg->stall_class), strdup(w->id), strdup(msg->stall_task),
                                 msg->stall_seconds};
    if (!q->cls || !q->worker || !q->task) {
        free(q->cls);
        free(q->worker);
        free(q->task);
        goto nomem;
    }
    c->nquarantine++;
    char line[4 * ACR_ESC_MAX];
    snprintf(line, sizeof line, "class %s quarantined: stalled worker %s for %.1f s in task %s",
             cls, wid, msg->stall_seconds, task);
    ACR_ERROR("%s; its users are not moved to other workers", line);
    if (acr_core_add_exception(c, line, "", "master") < 0)
        ACR_ERROR("out of memory recording an exception");
    requeue(c);
    return;
nomem:
    ACR_ERROR("out of memory quarantining user class %s", cls);
}

int acr__quarantine_filter(const acr_core_t *c, const char *const *in, size_t n, const char ***out,
                           size_t *nout)
{
    *out = NULL;
    if (c->nquarantine == 0) return 0;
    size_t total = in && n > 0 ? n : c->cfg.nclasses, k = 0;
    const char **names = calloc(total ? total : 1, sizeof(*names));
    if (!names) return -ENOMEM;
    for (size_t i = 0; i < total; i++) {
        const char *name = in && n > 0 ? in[i] : c->cfg.classes[i].name;
        if (!find(c, name)) names[k++] = name;
    }
    if (k == 0) {
        free(names);
        ACR_ERROR("every user class asked for is quarantined (it stalled a worker)");
        return -EAGAIN;
    }
    *out = names;
    *nout = k;
    return 0;
}

void acr__quarantine_free(acr_core_t *c)
{
    for (size_t i = 0; i < c->nquarantine; i++) {
        free(c->quarantine[i].cls);
        free(c->quarantine[i].worker);
        free(c->quarantine[i].task);
    }
    free(c->quarantine);
    c->quarantine = NULL;
    c->nquarantine = 0;
}
