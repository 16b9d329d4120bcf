/*
 * acrida-worker's entry point: options (command line > ACRIDA_* environment > config file),
 * logging, then one worker process (worker/worker.c) or, with --processes N, N forked children
 * (each a worker with its own node id) that the parent waits for, forwarding SIGTERM/SIGINT.
 * Exit codes: 0 after a quit or SIGTERM, 1 on fatal errors, 2 on bad usage.
 */
#include "common/log.h"
#include "common/opts.h"
#include "common/util.h"
#include "worker/worker.h"

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct worker_opts {
    char *master_host;
    int master_port;
    char *scenario;
    char *processes;
    char *node_id;
    bool insecure;
    int max_body_size;
    char *loglevel;
    char *logfile;
    bool locust_worker; /**< --worker: accepted for Locust command lines, no effect */
} worker_opts_t;

#define O(f) offsetof(worker_opts_t, f)

static const acr_opt_def_t defs[] = {
    {"master-host", 0, NULL, ACR_OPT_STR, O(master_host), 0, 0, "H",
     "master address (default 127.0.0.1)"},
    {"master-port", 0, NULL, ACR_OPT_INT, O(master_port), 1, 65535, "P",
     "master port (default 5557)"},
    {"scenario", 'f', "locustfile", ACR_OPT_STR, O(scenario), 0, 0, "FILE",
     "local Lua scenario; without it the worker runs the one the master sends"},
    {"processes", 0, NULL, ACR_OPT_STR, O(processes), 0, 0, "N|auto",
     "fork N worker processes (auto = number of cores)"},
    {"node-id", 0, NULL, ACR_OPT_STR, O(node_id), 0, 0, "ID",
     "routing id (default <hostname>_<32 hex chars>)"},
    {"insecure", 0, NULL, ACR_OPT_FLAG, O(insecure), 0, 0, NULL,
     "do not verify the targets' TLS certificates"},
    {"max-body-size", 0, NULL, ACR_OPT_INT, O(max_body_size), 1, 1 << 30, "BYTES",
     "bytes of a response body kept for r.body (default 16 MiB); more is read and counted"},
    {"loglevel", 'L', NULL, ACR_OPT_STR, O(loglevel), 0, 0, "LEVEL",
     "DEBUG, INFO (default), WARNING, ERROR"},
    {"logfile", 0, NULL, ACR_OPT_STR, O(logfile), 0, 0, "FILE", "also log to FILE"},
    {"worker", 0, NULL, ACR_OPT_FLAG, O(locust_worker), 0, 0, NULL,
     "accepted and ignored, so that Locust command lines work"},
};

static const acr_opts_spec_t spec = {
    .prog = "acrida-worker",
    .usage = "[--master-host H] [--master-port P] [-f SCENARIO] [options]",
    .env_prefix = "ACRIDA_",
    .defs = defs,
    .ndefs = sizeof(defs) / sizeof(defs[0]),
    .foreign_keys =
        "host,users,spawn-rate,hatch-rate,run-time,headless,autostart,autoquit,"
        "web-host,web-port,web-auth,tls-cert,tls-key,master-bind-host,"
        "master-bind-port,expect-workers,expect-workers-max-wait,local-workers,csv,"
        "csv-full-history,html,json,only-summary,reset-stats,stop-timeout,"
        "exit-code-on-error,tags,exclude-tags,port-file,check,allow-lost-reports,master",
};

static volatile sig_atomic_t forwarded_signal;

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
            char comp[32], id[320];
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
    worker_opts_t o = {.master_port = 5557};
    char err[1024];
    int code = 0;
    int rc = acr_opts_parse(&spec, &o, argc, argv, err, sizeof err);
    if (rc == ACR_OPTS_EXIT) goto out;
    if (rc < 0) {
        fprintf(stderr, "acrida-worker: error: %s\n", err);
        code = 2;
        goto out;
    }
    acr_log_level_t level = ACR_LOG_INFO;
    if (o.loglevel && acr_log_parse_level(o.loglevel, &level) < 0) {
        fprintf(stderr,
                "acrida-worker: error: invalid value '%s' for --loglevel: expected "
                "DEBUG, INFO, WARNING or ERROR\n",
                o.loglevel);
        code = 2;
        goto out;
    }
    int nproc = 0;
    if (o.processes) {
        char *end;
        if (strcmp(o.processes, "auto") == 0) {
            nproc = acr_cpu_count();
        } else {
            long v = strtol(o.processes, &end, 10);
            if (*o.processes == '\0' || *end || v < 1 || v > 4096) {
                fprintf(stderr,
                        "acrida-worker: error: invalid value '%s' for --processes: "
                        "expected a number >= 1 or 'auto'\n",
                        o.processes);
                code = 2;
                goto out;
            }
            nproc = (int)v;
        }
    }
    rc = acr_log_setup(level, "worker", o.logfile);
    if (rc < 0) {
        fprintf(stderr, "acrida-worker: error: --logfile: cannot open '%s': %s\n", o.logfile,
                strerror(-rc));
        code = 2;
        goto out;
    }
    acr_worker_config_t cfg = {
        .master_host = o.master_host ? o.master_host : "127.0.0.1",
        .master_port = o.master_port,
        .scenario = o.scenario,
        .node_id = o.node_id,
        .insecure = o.insecure,
        .body_cap = o.max_body_size > 0 ? (size_t)o.max_body_size : 0,
    };
    code = nproc > 0 ? run_processes(&cfg, nproc, level, o.logfile) : acr_worker_run(&cfg);
    acr_log_close();
out:
    acr_opts_free(&spec, &o);
    return code;
}
