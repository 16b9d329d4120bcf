/*
 * acrida-master's entry point: options, logging, scenario validation, the ZeroMQ ROUTER, the port
 * file, local workers, headless mode, one libuv loop, and an orderly exit where every handle is
 * closed before the memory goes. Exit codes: acr_master_exit_t (master.h, docs/cli.md).
 */
#include "master/master.h"

#include "common/log.h"
#include "common/util.h"
#include "proto/msg.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define LOCAL_TERM_GRACE_S 10.0 /* local workers at shutdown: SIGTERM, then SIGKILL after this */

static void close_walk_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

static bool loopback(const char *host)
{
    return strcmp(host, "127.0.0.1") == 0 || strcmp(host, "localhost") == 0 ||
           strcmp(host, "::1") == 0 || strncmp(host, "127.", 4) == 0;
}

static int write_port_file(const acr_master_t *m)
{
    char buf[64];
    int n = snprintf(buf, sizeof buf, "master=%d\nweb=0\n", m->bound_port);
    int rc = acr_write_file_atomic(m->opts->port_file, buf, (size_t)n);
    if (rc < 0) ACR_ERROR("cannot write --port-file %s: %s", m->opts->port_file, strerror(-rc));
    return rc;
}

/* Reads the scenario source the core ships to workers into @b. Returns 0 or -errno (logged). */
static int read_scenario(const char *path, acr_buf_t *b)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        ACR_ERROR("cannot read the scenario %s: %s", path, strerror(errno));
        return -errno;
    }
    char chunk[65536];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b->len + n > ACR_MSG_MAX_FRAME / 2) {
            ACR_ERROR("the scenario %s is too large to send to workers", path);
            rc = -EFBIG;
            break;
        }
        if (acr_buf_append(b, chunk, n) < 0) {
            rc = -ENOMEM;
            break;
        }
    }
    if (rc == 0 && ferror(f)) rc = -EIO;
    fclose(f);
    return rc;
}

/* Creates the control core from the options and the scenario. Returns 0 or a negative errno. */
static int core_create(acr_master_t *m, const acr_user_class_t *classes, size_t nclasses)
{
    const acr_cli_opts_t *o = m->opts;
    acr_buf_t src = {0};
    int rc = read_scenario(o->scenario, &src);
    if (rc == 0) {
        const char *slash = strrchr(o->scenario, '/');
        acr_core_config_t cfg = {
            .classes = classes,
            .nclasses = nclasses,
            .host = o->host,
            .stop_timeout = o->stop_timeout,
            .reset_stats = o->reset_stats,
            .scenario_name = slash ? slash + 1 : o->scenario,
            .scenario_src = src.data,
            .scenario_len = src.len,
        };
        rc = acr_core_new(m->loop, &cfg, &m->core);
    }
    acr_buf_free(&src);
    return rc;
}

/* Runs the master until the loop ends; returns the exit code. */
static int run(acr_cli_opts_t *opts, const acr_user_class_t *classes, size_t nclasses)
{
    uv_loop_t loop;
    acr_master_t m = {.loop = &loop, .opts = opts, .exit_code = ACR_EXIT_OK};
    char err[512];
    if (uv_loop_init(&loop) < 0) {
        ACR_ERROR("cannot create the event loop");
        return ACR_EXIT_FATAL;
    }
    if (core_create(&m, classes, nclasses) < 0) goto fail;
    int rc = acr_core_listen(m.core, opts->master_bind_host, opts->master_bind_port, &m.bound_port,
                             err, sizeof err);
    if (rc < 0) {
        ACR_ERROR("The acrida master port (%s:%d) is not available: %s", opts->master_bind_host,
                  opts->master_bind_port, err);
        goto fail;
    }
    ACR_INFO("Starting acrida-master %s, workers connect to port %d", ACR_VERSION, m.bound_port);
    if (!loopback(opts->master_bind_host))
        ACR_WARN("*** the master port %s:%d is reachable from the network without encryption or "
                 "authentication: any host that can reach it can join as a worker ***",
                 opts->master_bind_host, m.bound_port);
    if (opts->html) ACR_WARN("--html is not supported yet: no HTML report will be written");
    if (opts->port_file && write_port_file(&m) < 0) goto fail;
    if (opts->local_workers > 0 && acr__local_start(&m, opts->local_workers) < 0) goto fail;
    if (acr__headless_start(&m, &m.headless) < 0) goto fail;
    uv_run(&loop, UV_RUN_DEFAULT);
    goto out;
fail:
    m.exit_code = ACR_EXIT_FATAL;
    acr__master_shutdown(&m);
out:
    if (m.core) acr_core_close(m.core);
    uv_walk(&loop, close_walk_cb, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0) ACR_WARN("event loop closed with open handles");
    acr__local_free(&m);
    acr__headless_free(m.headless);
    acr_core_free(m.core);
    return m.exit_code;
}

void acr__master_shutdown(acr_master_t *m)
{
    if (m->core) acr_core_close(m->core);
    acr__headless_close(m->headless);
    acr__local_stop(m, LOCAL_TERM_GRACE_S);
}

int main(int argc, char **argv)
{
    acr_cli_opts_t opts;
    char err[1024];
    int code;
    int rc = acr_cli_parse(&opts, ACR_CLI_MASTER, argc, argv, err, sizeof err);
    if (rc == ACR_OPTS_EXIT) {
        acr_cli_free(&opts);
        return ACR_EXIT_OK;
    }
    if (rc < 0) {
        fprintf(stderr, "acrida-master: error: %s\n", err);
        acr_cli_free(&opts);
        return ACR_EXIT_USAGE;
    }
    acr_log_level_t level = ACR_LOG_INFO;
    acr_log_parse_level(opts.loglevel, &level);
    rc = acr_log_setup(level, "master", opts.logfile);
    if (rc < 0) {
        fprintf(stderr, "acrida-master: error: --logfile: cannot open '%s': %s\n", opts.logfile,
                strerror(-rc));
        acr_cli_free(&opts);
        return ACR_EXIT_USAGE;
    }
    if (!opts.headless) {
        fprintf(stderr, "acrida-master: the web UI is not available yet; use --headless\n");
        code = ACR_EXIT_USAGE;
        goto out;
    }
    acr_user_class_t *classes = NULL;
    size_t nclasses = 0;
    rc = acr_scenario_classes(opts.scenario, &classes, &nclasses, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "acrida-master: %s\n", err);
        code = ACR_EXIT_FATAL;
        goto out;
    }
    signal(SIGPIPE, SIG_IGN);
    code = run(&opts, classes, nclasses);
    acr_scenario_classes_free(classes, nclasses);
out:
    acr_log_close();
    acr_cli_free(&opts);
    return code;
}
