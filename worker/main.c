/*
 * acrida-worker's entry point: options (common/cli.c: command line > ACRIDA_* environment >
 * config file), logging, then one worker process (worker/worker.c) or, with --processes N, N
 * forked children (each a worker with its own node id) that the parent waits for, forwarding
 * SIGTERM/SIGINT. Each process is a daemon that waits for the next test and the next master
 * (worker/worker.h) unless --exit-on-quit.
 * Exit codes: 0 after SIGTERM (or a quit with --exit-on-quit), 1 on fatal errors (and after losing
 * the master with --exit-on-quit), 2 on bad usage, 3 when the event loop stayed stuck in code the
 * stall watchdog could not interrupt (worker/watchdog.h).
 */
#include "common/cli.h"
#include "common/keys.h"
#include "common/log.h"
#include "common/util.h"
#include "proto/proto.h"
#include "worker/worker.h"

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t forwarded_signal;

/* Every user holds at least one connection: the soft limit on descriptors is raised to the hard
 * one (the most an unprivileged process may) and both are logged. Users beyond it fail their
 * connects with "too many open files" and back off (worker/users.c); the master warns when -u
 * exceeds what the workers' limits hold (their heartbeats carry it, proto/PROTOCOL.md). */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        ACR_WARN("cannot read the file descriptor limit (RLIMIT_NOFILE): %s", strerror(errno));
        return;
    }
    rlim_t soft = rl.rlim_cur;
    if (soft < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            ACR_WARN("cannot raise the file descriptor limit from %llu to the hard limit %llu: %s",
                     (unsigned long long)soft, (unsigned long long)rl.rlim_max, strerror(errno));
            rl.rlim_cur = soft;
        }
    }
    if (rl.rlim_cur == RLIM_INFINITY)
        ACR_INFO("file descriptors: no limit (RLIMIT_NOFILE soft was %llu)",
                 (unsigned long long)soft);
    else
        ACR_INFO("file descriptors: limit %llu (RLIMIT_NOFILE soft was %llu, hard %llu): at most "
                 "that many connections, users beyond wait for one",
                 (unsigned long long)rl.rlim_cur, (unsigned long long)soft,
                 (unsigned long long)rl.rlim_max);
}

static void on_parent_signal(int sig)
{
    forwarded_signal = sig;
}

/* Forks @n workers and waits for them all; returns the exit code. */
static int run_processes(const acr_worker_config_t *base, int n, acr_log_level_t level,
                         const char *logfile)
{
    pid_t *pids = calloc((size_t)n, sizeof(*pids));
    if (!pids) {
        ACR_ERROR("out of memory");
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_parent_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    pid_t parent = getpid();
    int started = 0;
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            ACR_ERROR("fork: %s", strerror(errno));
            break;
        }
        if (pid == 0) {
            signal(SIGTERM, SIG_DFL);
            signal(SIGINT, SIG_DFL);
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (getppid() != parent) _exit(1);
            char comp[32], id[ACR_PROTO_NODE_ID_MAX + 1];
            snprintf(comp, sizeof comp, "worker[%d]", i + 1);
            acr_log_setup(level, comp, logfile);
            acr_worker_config_t cfg = *base;
            if (base->node_id && *base->node_id) {
                snprintf(id, sizeof id, "%s-%d", base->node_id, i + 1);
                cfg.node_id = id;
            }
            _exit(acr_worker_run(&cfg));
        }
        pids[started++] = pid;
    }
    int code = started == n ? 0 : 1, left = started;
    bool sent = false;
    while (left > 0) {
        if (forwarded_signal && !sent) {
            for (int i = 0; i < started; i++)
                if (pids[i] > 0) kill(pids[i], SIGTERM);
            sent = true;
        }
        int status;
        pid_t pid = waitpid(-1, &status, 0);
        if (pid < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (int i = 0; i < started; i++) {
            if (pids[i] != pid) continue;
            pids[i] = 0;
            left--;
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                ACR_WARN("worker process %d ended with %s %d", (int)pid,
                         WIFEXITED(status) ? "exit code" : "signal",
                         WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
                code = 1;
            }
        }
    }
    free(pids);
    return code;
}

int main(int argc, char **argv)
{
    acr_cli_opts_t o;
    char err[1024];
    int code = 0;
    int rc = acr_cli_parse(&o, ACR_CLI_WORKER, argc, argv, err, sizeof err);
    if (rc == ACR_OPTS_EXIT) goto out;
    if (rc < 0) {
        fprintf(stderr, "acrida-worker: error: %s\n", err);
        code = 2;
        goto out;
    }
    acr_log_level_t level = ACR_LOG_INFO;
    acr_log_parse_level(o.loglevel, &level);
    rc = acr_log_setup(level, "worker", o.logfile);
    if (rc < 0) {
        fprintf(stderr, "acrida-worker: error: --logfile: cannot open '%s': %s\n", o.logfile,
                strerror(-rc));
        code = 2;
        goto out;
    }
    raise_nofile();
    acr_keys_t keys;
    if (o.cluster_key && acr_keys_load(o.cluster_key, &keys, err, sizeof err) < 0) {
        ACR_ERROR("--cluster-key: %s", err);
        acr_log_close();
        code = 2;
        goto out;
    }
    acr_worker_config_t cfg = {
        .keys = o.cluster_key ? &keys : NULL,
        .trust_master = o.trust_master,
        .master_host = o.master_host,
        .master_port = o.master_port,
        .scenario = o.scenario,
        .node_id = o.node_id,
        .insecure = o.insecure,
        .body_cap = o.max_body_size > 0 ? (size_t)o.max_body_size : 0,
        .exit_on_quit = o.exit_on_quit,
        .master_timeout = o.master_timeout,
        .stall_timeout = o.stall_timeout,
        .lua_memory = o.lua_memory,
    };
    ACR_INFO("Lua memory cap: %zu MiB per worker process (--max-lua-memory%s)", o.lua_memory >> 20,
             o.max_lua_memory && *o.max_lua_memory ? "" : ", the default");
    code =
        o.processes > 0 ? run_processes(&cfg, o.processes, level, o.logfile) : acr_worker_run(&cfg);
    if (o.cluster_key) acr_keys_wipe(&keys);
    acr_log_close();
out:
    acr_cli_free(&o);
    return code;
}
