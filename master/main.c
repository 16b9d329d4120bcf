/*
 * acrida-master's entry point: options and --check expressions, logging, the scenario's runtime
 * (master/lua_rt.h: the scenario loaded once, its classes, events and messages), the control core
 * and its ZeroMQ ROUTER, the chart history, the end of the process (finish.c), the front-end of the
 * mode (the headless console, or web mode's HTTP server), the port file, local workers, one libuv
 * loop, and an orderly exit where every handle is closed before the memory goes. Exit codes:
 * acr_master_exit_t (master.h, docs/cli.md).
 */
#include "master/master.h"

#include "common/log.h"
#include "common/util.h"
#include "master/bundle.h"
#include "master/check.h"
#include "master/history.h"
#include "master/lua_rt.h"
#include "master/shape.h"
#include "master/web/web.h"
#include "proto/msg.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define LOCAL_TERM_GRACE_S 10.0 /* local workers at shutdown: SIGTERM, then SIGKILL after this */

static void close_walk_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

static int write_port_file(const acr_master_t *m)
{
    char buf[64];
    int n = snprintf(buf, sizeof buf, "master=%d\nweb=%d\n", m->bound_port, m->web_port);
    int rc = acr_write_file_atomic(m->opts->port_file, buf, (size_t)n);
    if (rc < 0) ACR_ERROR("cannot write --port-file %s: %s", m->opts->port_file, strerror(-rc));
    return rc;
}

/* The soft limit of open files raised to the hard one: every worker is a connection, and 1024 let
 * idle connections keep real workers out (docs/security.md). */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    rlim_t soft = rl.rlim_cur;
    if (soft == rl.rlim_max) {
        ACR_DEBUG("open files: the soft limit is the hard one (%llu)", (unsigned long long)soft);
        return;
    }
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        ACR_WARN("open files: cannot raise the soft limit %llu to the hard one %llu: %s",
                 (unsigned long long)soft, (unsigned long long)rl.rlim_max, strerror(errno));
        return;
    }
    ACR_INFO("open files: soft limit raised from %llu to the hard limit %llu",
             (unsigned long long)soft, (unsigned long long)rl.rlim_max);
}

/* Creates the control core from the options, the scenario and its bundle. Returns 0 or a
 * negative errno. */
static int core_create(acr_master_t *m, const acr_user_class_t *classes, size_t nclasses)
{
    const acr_cli_opts_t *o = m->opts;
    const acr_master_bundle_t *mb = m->bundle;
    const acr_bundle_file_t *main = acr_bundle_get(&mb->b, mb->main);
    const char *slash = strrchr(o->scenario, '/');
    acr_core_config_t cfg = {
        .classes = classes,
        .nclasses = nclasses,
        .host = o->host,
        .stop_timeout = o->stop_timeout,
        .reset_stats = o->reset_stats,
        .tags = (const char *const *)o->tags,
        .exclude_tags = (const char *const *)o->exclude_tags,
        .scenario_name = slash ? slash + 1 : o->scenario,
        .scenario_src = main ? main->data : "",
        .scenario_len = main ? main->len : 0,
        .bundle = &mb->b,
        .bundle_main = mb->main,
        .scenario_sha256 = mb->default_sha256,
        .adopt_rate = o->spawn_rate,
        .adopt_run_time = o->run_time,
        .keys = m->keys,
        .max_entry_names = (size_t)o->max_entry_names,
        .max_workers = (size_t)o->max_workers,
        .registration_rate = o->registration_rate,
    };
    return acr_core_new(m->loop, &cfg, &m->core);
}

/* A failed load shape: the run exits non-zero (master/shape.h). */
static void shape_failed(void *ud)
{
    acr_master_t *m = ud;
    m->start_failed = true;
}

/* The scenario's load shape, if it declared one. Returns 0 or a negative errno (logged). */
static int shape_create(acr_master_t *m, char *err, size_t errlen)
{
    acr_shape_config_t cfg = {
        .loop = m->loop,
        .core = m->core,
        .L = acr_lua_rt_state(m->lua),
        .classes = m->classes,
        .nclasses = m->nclasses,
        .on_error = shape_failed,
        .ud = m,
    };
    err[0] = '\0';
    int rc = acr_shape_new(&cfg, &m->shape, err, errlen);
    if (rc < 0) {
        ACR_ERROR("%s", ACR_ESC_LONG(*err ? err : strerror(-rc)));
        return rc;
    }
    if (m->shape)
        ACR_INFO("The scenario's load shape (%s) sets the users and spawn rate of each test%s",
                 ACR_ESC(acr_shape_where(m->shape)),
                 m->opts->headless ? " (-u/-r are not used)" : "");
    return 0;
}

/* Warns about the options --headless does not use (Locust ignores them too). */
static void warn_headless(const acr_cli_opts_t *o)
{
    if (!o->headless) return;
    const char *unused[4];
    size_t n = 0;
    if (o->autostart) unused[n++] = "--autostart";
    if (o->autoquit >= 0) unused[n++] = "--autoquit";
    if (o->web_auth && *o->web_auth) unused[n++] = "--web-auth";
    if (o->tls_cert && *o->tls_cert) unused[n++] = "--tls-cert/--tls-key";
    for (size_t i = 0; i < n; i++)
        ACR_WARN("%s has no effect with --headless (there is no web interface)", unused[i]);
}

/* Runs the master until the loop ends; returns the exit code. */
static int run(acr_master_t *m)
{
    uv_loop_t loop;
    const acr_cli_opts_t *opts = m->opts;
    char err[512];
    m->loop = &loop;
    if (uv_loop_init(&loop) < 0) {
        ACR_ERROR("cannot create the event loop");
        return ACR_EXIT_FATAL;
    }
    if (core_create(m, m->classes, m->nclasses) < 0) goto fail;
    int rc = acr_core_listen(m->core, opts->master_bind_host, opts->master_bind_port,
                             &m->bound_port, err, sizeof err);
    if (rc < 0) {
        ACR_ERROR("The acrida master port (%s:%d) is not available: %s", opts->master_bind_host,
                  opts->master_bind_port, err);
        goto fail;
    }
    if ((rc = acr_lua_rt_attach(m->lua, m->core, opts)) < 0) {
        ACR_ERROR("cannot attach the scenario's runtime to the core: %s", strerror(-rc));
        goto fail;
    }
    if (shape_create(m, err, sizeof err) < 0) goto fail;
    ACR_INFO("Starting acrida-master %s, workers connect to port %d", ACR_VERSION, m->bound_port);
    if (m->keys)
        ACR_INFO("The master port is encrypted and authenticated with the cluster key %s (CURVE): "
                 "only workers holding it can join",
                 opts->cluster_key);
    else if (!acr_host_is_loopback(opts->master_bind_host))
        ACR_WARN("*** the master port %s:%d is reachable from the network without encryption or "
                 "authentication: any host that can reach it can join as a worker and receive the "
                 "scenario; use --cluster-key (docs/security.md) ***",
                 opts->master_bind_host, m->bound_port);
    warn_headless(opts);
    if (acr_history_new(&loop, m->core, &m->history) < 0) {
        ACR_ERROR("cannot create the chart history");
        goto fail;
    }
    if (acr__finish_start(m, &m->finish) < 0) goto fail;
    if (!opts->headless && acr__web_start(m, &m->web) < 0) goto fail;
    if (opts->port_file && write_port_file(m) < 0) goto fail;
    if (opts->local_workers > 0 && acr__local_start(m, opts->local_workers) < 0) goto fail;
    if (opts->headless)
        rc = acr__headless_start(m, &m->headless);
    else
        rc = acr__web_run(m->web);
    if (rc < 0) goto fail;
    uv_run(&loop, UV_RUN_DEFAULT);
    goto out;
fail:
    m->exit_code = ACR_EXIT_FATAL;
    acr__master_shutdown(m);
out:
    acr__master_shutdown(m); /* every handle is closed before anything is freed */
    uv_walk(&loop, close_walk_cb, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0) ACR_WARN("event loop closed with open handles");
    acr__local_free(m);
    acr__web_free(m->web);
    acr__headless_free(m->headless);
    acr_shape_free(m->shape);
    acr__finish_free(m->finish);
    acr_history_free(m->history);
    acr_core_free(m->core);
    return m->exit_code;
}

void acr__master_shutdown(acr_master_t *m)
{
    if (m->shutting_down) return;
    m->shutting_down = true;
    acr_lua_rt_quitting(m->lua); /* test_stop if still due, quitting; before the channel closes */
    if (m->core) acr_core_close(m->core);
    acr__web_close(m->web);
    acr__headless_close(m->headless);
    acr_shape_close(m->shape);
    acr__finish_close(m->finish);
    if (m->history) acr_history_close(m->history);
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
    if (opts.gen_key) {
        rc = acr_keys_generate(opts.gen_key, err, sizeof err);
        if (rc == 0)
            printf("wrote a new cluster key to %s (mode 0600): give it to the master and to every "
                   "worker with --cluster-key %s\n",
                   opts.gen_key, opts.gen_key);
        else
            fprintf(stderr, "acrida-master: error: --gen-key: %s\n", err);
        acr_cli_free(&opts);
        return rc == 0 ? ACR_EXIT_OK : ACR_EXIT_USAGE;
    }
    acr_keys_t keys;
    if (opts.cluster_key && acr_keys_load(opts.cluster_key, &keys, err, sizeof err) < 0) {
        fprintf(stderr, "acrida-master: error: --cluster-key: %s\n", err);
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
    raise_nofile();
    acr_check_t *checks = NULL;
    rc = acr_check_parse((const char *const *)opts.check, &checks, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "acrida-master: error: %s\n",
                rc == -EINVAL ? err : "out of memory parsing --check");
        code = ACR_EXIT_USAGE;
        goto out;
    }
    acr_user_class_t *classes = NULL;
    size_t nclasses = 0;
    acr_lua_rt_t *lua = NULL;
    rc = acr_lua_rt_new(opts.scenario, (const char *const *)opts.tags,
                        (const char *const *)opts.exclude_tags, &lua, &classes, &nclasses, err,
                        sizeof err);
    if (rc < 0) {
        fprintf(stderr, "acrida-master: %s\n", err);
        acr_check_free(checks);
        code = ACR_EXIT_FATAL;
        goto out;
    }
    acr_master_bundle_t bundle;
    rc = acr_master_bundle_build(acr_lua_rt_state(lua), &opts, &bundle, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "acrida-master: error: %s\n", err);
        acr_lua_rt_free(lua);
        acr_scenario_classes_free(classes, nclasses);
        acr_check_free(checks);
        code = rc == -EFBIG ? ACR_EXIT_USAGE : ACR_EXIT_FATAL;
        goto out;
    }
    ACR_INFO("scenario bundle: %zu files, %zu bytes, sha256 %.12s...", bundle.b.nfiles,
             bundle.b.blob_len, bundle.b.sha256);
    signal(SIGPIPE, SIG_IGN);
    acr_master_t m = {
        .bundle = &bundle,
        .opts = &opts,
        .classes = classes,
        .nclasses = nclasses,
        .checks = checks,
        .lua = lua,
        .keys = opts.cluster_key ? &keys : NULL,
        .exit_code = ACR_EXIT_OK,
    };
    code = run(&m);
    acr_lua_rt_free(lua); /* after run(): the core it was attached to is gone */
    acr_master_bundle_free(&bundle);
    acr_scenario_classes_free(classes, nclasses);
    acr_check_free(checks);
out:
    if (opts.cluster_key) acr_keys_wipe(&keys);
    acr_log_close();
    acr_cli_free(&opts);
    return code;
}
