/*
 * --local-workers: acrida-worker processes started with uv_spawn next to the master's own
 * executable, connected over loopback. The master keeps their handles: a worker that exits while
 * the master is not shutting down is logged; at shutdown the live ones get SIGTERM and, after a
 * grace period, SIGKILL. Workers that were sent `quit` get 2 s to exit on their own first. Handles
 * are closed from the exit callback; the array is freed at exit.
 */
#include "master/master.h"

#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define QUIT_EXIT_MS 2000

typedef struct lproc {
    uv_process_t proc;
    acr_local_t *owner;
    bool alive;
    bool signalled; /* the master sent it SIGTERM or SIGKILL */
    int pid;
} lproc_t;

struct acr_local {
    acr_master_t *m;
    lproc_t *procs;
    size_t n;
    uv_timer_t kill_timer;
    bool timer_init;
    int stage; /* 0: waiting for workers that got `quit` to exit, 1: after SIGTERM */
    double term_grace_s;
    size_t crashed; /* ended by a signal the master did not send */
};

size_t acr__local_alive(const acr_master_t *m)
{
    size_t n = 0;
    if (!m->local) return 0;
    for (size_t i = 0; i < m->local->n; i++) n += m->local->procs[i].alive;
    return n;
}

const char *acr__local_connect_host(const char *bind_host)
{
    if (!bind_host || !*bind_host || strcmp(bind_host, "*") == 0 ||
        strcmp(bind_host, "0.0.0.0") == 0)
        return "127.0.0.1";
    return bind_host;
}

size_t acr__local_exited(const acr_master_t *m)
{
    return m->local ? m->local->n - acr__local_alive(m) : 0;
}

size_t acr__local_crashed(const acr_master_t *m)
{
    return m->local ? m->local->crashed : 0;
}

/* "SIGSEGV" for 11; NULL for a number without a name here. */
static const char *signal_name(int sig)
{
    static const struct {
        int sig;
        const char *name;
    } names[] = {{SIGSEGV, "SIGSEGV"}, {SIGKILL, "SIGKILL"}, {SIGABRT, "SIGABRT"},
                 {SIGBUS, "SIGBUS"},   {SIGILL, "SIGILL"},   {SIGFPE, "SIGFPE"},
                 {SIGTERM, "SIGTERM"}, {SIGINT, "SIGINT"},   {SIGHUP, "SIGHUP"},
                 {SIGQUIT, "SIGQUIT"}, {SIGPIPE, "SIGPIPE"}, {SIGTRAP, "SIGTRAP"},
                 {SIGSYS, "SIGSYS"},   {SIGXCPU, "SIGXCPU"}, {SIGXFSZ, "SIGXFSZ"}};
    for (size_t i = 0; i < ACR_ARRAY_SIZE(names); i++)
        if (names[i].sig == sig) return names[i].name;
    return NULL;
}

static void exit_cb(uv_process_t *h, int64_t status, int sig)
{
    lproc_t *p = acr_container_of(h, lproc_t, proc);
    acr_master_t *m = p->owner->m;
    p->alive = false;
    if (sig && !p->signalled) { /* a crash, the OOM killer, someone's kill: the run is not whole */
        const char *name = signal_name(sig);
        p->owner->crashed++;
        ACR_ERROR("local worker pid %d crashed: killed by signal %d (%s)%s", p->pid, sig,
                  name ? name : strsignal(sig),
                  sig == SIGKILL ? "; the kernel's OOM killer sends SIGKILL (dmesg tells)" : "");
    } else if (!m->shutting_down) {
        ACR_WARN("local worker pid %d exited with status %lld", p->pid, (long long)status);
    } else {
        ACR_DEBUG("local worker pid %d exited with status %lld (signal %d)", p->pid,
                  (long long)status, sig);
    }
    uv_close((uv_handle_t *)h, NULL);
    acr_local_t *l = p->owner;
    if (acr__local_alive(m) == 0 && l->timer_init && !uv_is_closing((uv_handle_t *)&l->kill_timer))
        uv_close((uv_handle_t *)&l->kill_timer, NULL);
}

static int worker_path(char *out, size_t len)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return -errno;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return -ENOENT;
    *slash = 0;
    if ((size_t)snprintf(out, len, "%s/acrida-worker", exe) >= len) return -ENAMETOOLONG;
    return 0;
}

/* The master's environment without its ACRIDA_* variables (a shared ACRIDA_NODE_ID or
 * ACRIDA_PROCESSES would give every local worker the same routing id, or fork it): local workers
 * take their options from the master's command line only. The array is the caller's to free; the
 * strings stay environ's. */
static char **worker_env(void)
{
    extern char **environ;
    size_t n = 0;
    while (environ[n]) n++;
    char **env = calloc(n + 1, sizeof(*env));
    if (!env) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "ACRIDA_", 7) != 0) env[k++] = environ[i];
    return env;
}

int acr__local_start(acr_master_t *m, int n)
{
    char path[PATH_MAX + 32];
    int rc = worker_path(path, sizeof path);
    if (rc == 0 && access(path, X_OK) != 0) rc = -errno;
    if (rc < 0) {
        ACR_ERROR("cannot start local workers: %s: %s", rc == -ENOENT ? path : "acrida-worker",
                  strerror(-rc));
        return rc;
    }
    acr_local_t *l = calloc(1, sizeof(*l));
    if (!l) return -ENOMEM;
    l->procs = calloc((size_t)n, sizeof(*l->procs));
    if (!l->procs) {
        free(l);
        return -ENOMEM;
    }
    l->m = m;
    m->local = l;
    rc = uv_timer_init(m->loop, &l->kill_timer);
    if (rc < 0) return rc;
    l->timer_init = true;

    char port[16];
    snprintf(port, sizeof port, "%d", m->bound_port);
    char *args[24];
    size_t k = 0;
    args[k++] = path;
    args[k++] = "--master-host";
    args[k++] = (char *)acr__local_connect_host(m->opts->master_bind_host);
    args[k++] = "--master-port";
    args[k++] = port;
    args[k++] = "-f";
    args[k++] = m->opts->scenario;
    args[k++] = "-L";
    args[k++] = m->opts->loglevel;
    args[k++] = "--config"; /* options come from the master only (docs/cli.md) */
    args[k++] = "/dev/null";
    if (m->opts->insecure) args[k++] = "--insecure";
    args[k++] = "--exit-on-quit"; /* one-shot, as Locust's: the master's quit ends them */
    if (m->keys) {                /* the local workers join with the cluster key too */
        args[k++] = "--cluster-key";
        args[k++] = m->opts->cluster_key;
    }
    if (m->opts->max_lua_memory && *m->opts->max_lua_memory) {
        args[k++] = "--max-lua-memory";
        args[k++] = m->opts->max_lua_memory;
    }
    char cap[24];
    if (m->opts->max_body_size > 0) {
        snprintf(cap, sizeof cap, "%d", m->opts->max_body_size);
        args[k++] = "--max-body-size";
        args[k++] = cap;
    }
    char stall[32]; /* the watchdog's timeout (worker/watchdog.h) */
    snprintf(stall, sizeof stall, "%g", m->opts->stall_timeout);
    args[k++] = "--stall-timeout";
    args[k++] = stall;
    args[k] = NULL;

    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE},
        {.flags = UV_INHERIT_FD, .data.fd = 2}, /* keep the master's stdout for --json */
        {.flags = UV_INHERIT_FD, .data.fd = 2},
    };
    char **env = worker_env();
    if (!env) return -ENOMEM;
    uv_process_options_t po = {
        .exit_cb = exit_cb,
        .file = path,
        .args = args,
        .env = env,
        .stdio_count = 3,
        .stdio = stdio,
    };
    for (int i = 0; i < n; i++) {
        lproc_t *p = &l->procs[i];
        p->owner = l;
        rc = uv_spawn(m->loop, &p->proc, &po);
        if (rc < 0) {
            ACR_ERROR("cannot start local worker %s: %s", path, uv_strerror(rc));
            free(env);
            return rc;
        }
        l->n = (size_t)i + 1;
        p->alive = true;
        p->pid = p->proc.pid;
        ACR_INFO("started local worker pid %d", p->pid);
    }
    free(env);
    return 0;
}

static void kill_cb(uv_timer_t *t)
{
    acr_local_t *l = acr_container_of(t, acr_local_t, kill_timer);
    if (l->stage == 0) {
        l->stage = 1;
        for (size_t i = 0; i < l->n; i++)
            if (l->procs[i].alive) {
                l->procs[i].signalled = true;
                uv_process_kill(&l->procs[i].proc, SIGTERM);
            }
        uv_timer_start(t, kill_cb, (uint64_t)(l->term_grace_s * 1000.0), 0);
        return;
    }
    for (size_t i = 0; i < l->n; i++)
        if (l->procs[i].alive) {
            ACR_WARN("local worker pid %d did not exit after SIGTERM: sending SIGKILL",
                     l->procs[i].pid);
            l->procs[i].signalled = true;
            uv_process_kill(&l->procs[i].proc, SIGKILL);
        }
    uv_close((uv_handle_t *)t, NULL);
}

/* Workers normally exit on their own after `quit`: give them QUIT_EXIT_MS before SIGTERM. */
void acr__local_stop(acr_master_t *m, double grace_s)
{
    m->shutting_down = true;
    acr_local_t *l = m->local;
    if (!l) return;
    if (!l->timer_init || uv_is_closing((uv_handle_t *)&l->kill_timer)) return;
    if (acr__local_alive(m) == 0) {
        uv_close((uv_handle_t *)&l->kill_timer, NULL);
        return;
    }
    if (uv_is_active((uv_handle_t *)&l->kill_timer)) return;
    l->stage = 0;
    l->term_grace_s = grace_s;
    uv_timer_start(&l->kill_timer, kill_cb, QUIT_EXIT_MS, 0);
}

void acr__local_free(acr_master_t *m)
{
    acr_local_t *l = m->local;
    if (!l) return;
    for (size_t i = 0; i < l->n; i++)
        if (l->procs[i].alive) kill(l->procs[i].pid, SIGKILL);
    free(l->procs);
    free(l);
    m->local = NULL;
}
