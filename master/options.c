/*
 * acrida-master's options (docs/cli.md): the definition table for common/opts and the checks that
 * need more than a type and a range. Every error names the option; main() exits 2 on them.
 */
#include "master/master.h"

#include "common/log.h"
#include "common/opts.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define O(f) offsetof(acr_master_opts_t, f)

static const acr_opt_def_t defs[] = {
    {"scenario", 'f', "locustfile", ACR_OPT_STR, O(scenario), 0, 0, "FILE",
     "Lua scenario file (required)"},
    {"host", 'H', NULL, ACR_OPT_STR, O(host), 0, 0, "URL",
     "default target for users that set no host"},
    {"users", 'u', NULL, ACR_OPT_INT, O(users), 0, 0, "N", "peak concurrent users (default 1)"},
    {"spawn-rate", 'r', "hatch-rate", ACR_OPT_DOUBLE, O(spawn_rate), 0, 0, "R",
     "users started/stopped per second, cluster-wide (default 1)"},
    {"run-time", 't', NULL, ACR_OPT_TIMESPAN, O(run_time), 0, 0, "T",
     "stop after T (20, 20s, 3m, 2h, 1h20m, 3h30m10s); default: until SIGTERM/SIGINT"},
    {"headless", 0, NULL, ACR_OPT_FLAG, O(headless), 0, 0, NULL,
     "start at once, quit at the end (required: there is no web UI yet)"},
    {"autostart", 0, NULL, ACR_OPT_FLAG, O(autostart), 0, 0, NULL,
     "not yet (no web UI): start at once with the web UI up"},
    {"autoquit", 0, NULL, ACR_OPT_INT, O(autoquit), 0, 0, "S",
     "not yet (no web UI): with --autostart, quit S seconds after the run ends"},
    {"web-host", 0, NULL, ACR_OPT_STR, O(web_host), 0, 0, "H",
     "not yet (no web UI): dashboard/API bind address"},
    {"web-port", 'P', NULL, ACR_OPT_INT, O(web_port), 0, 0, "P",
     "not yet (no web UI): dashboard/API port (default 8089; 0 = ephemeral)"},
    {"web-auth", 0, NULL, ACR_OPT_STR, O(web_auth), 0, 0, "USER:PASS",
     "not yet (no web UI): HTTP Basic auth on every route"},
    {"tls-cert", 0, NULL, ACR_OPT_STR, O(tls_cert), 0, 0, "FILE",
     "not yet (no web UI): serve the dashboard over HTTPS"},
    {"tls-key", 0, NULL, ACR_OPT_STR, O(tls_key), 0, 0, "FILE",
     "not yet (no web UI): private key for --tls-cert"},
    {"master-bind-host", 0, NULL, ACR_OPT_STR, O(master_bind_host), 0, 0, "H",
     "ZeroMQ bind address (default *)"},
    {"master-bind-port", 0, NULL, ACR_OPT_INT, O(master_bind_port), 0, 0, "P",
     "ZeroMQ port (default 5557; 0 = ephemeral)"},
    {"expect-workers", 0, NULL, ACR_OPT_INT, O(expect_workers), 0, 0, "N",
     "headless: wait for N ready workers (default: --local-workers, else 1)"},
    {"expect-workers-max-wait", 0, NULL, ACR_OPT_DOUBLE, O(expect_workers_max_wait), 0, 0, "S",
     "give up waiting for workers after S seconds (0 = forever) and exit 1"},
    {"local-workers", 0, NULL, ACR_OPT_STR, O(local_workers), 0, 0, "N|auto",
     "start N local workers (auto = number of cores)"},
    {"csv", 0, NULL, ACR_OPT_STR, O(csv), 0, 0, "PREFIX",
     "write PREFIX_stats.csv, _stats_history.csv, _failures.csv, _exceptions.csv"},
    {"csv-full-history", 0, NULL, ACR_OPT_FLAG, O(csv_full_history), 0, 0, NULL,
     "every entry in the history CSV, not only Aggregated"},
    {"html", 0, NULL, ACR_OPT_STR, O(html), 0, 0, "FILE",
     "not yet (a warning, no file): HTML report at the end"},
    {"json", 0, NULL, ACR_OPT_FLAG, O(json), 0, 0, NULL,
     "print the /stats/requests document on stdout at the end (tables go to stderr)"},
    {"only-summary", 0, NULL, ACR_OPT_FLAG, O(only_summary), 0, 0, NULL,
     "no periodic table, only the final summary"},
    {"reset-stats", 0, NULL, ACR_OPT_FLAG, O(reset_stats), 0, 0, NULL,
     "reset the stats when the ramp-up completes"},
    {"stop-timeout", 's', NULL, ACR_OPT_TIMESPAN, O(stop_timeout), 0, 0, "S",
     "graceful stop: let users finish their task for up to S"},
    {"exit-code-on-error", 0, NULL, ACR_OPT_INT, O(exit_code_on_error), 0, 0, "N",
     "exit code when a request failed or a task raised (default 1)"},
    {"tags", 'T', NULL, ACR_OPT_STRLIST, O(tags), 0, 0, "TAG",
     "not yet (refused): run only tasks with these tags"},
    {"exclude-tags", 'E', NULL, ACR_OPT_STRLIST, O(exclude_tags), 0, 0, "TAG",
     "not yet (refused): skip tasks with these tags"},
    {"loglevel", 'L', NULL, ACR_OPT_STR, O(loglevel), 0, 0, "LEVEL",
     "DEBUG, INFO (default), WARNING, ERROR"},
    {"logfile", 0, NULL, ACR_OPT_STR, O(logfile), 0, 0, "FILE", "also log to FILE"},
    {"port-file", 0, NULL, ACR_OPT_STR, O(port_file), 0, 0, "FILE",
     "write the bound ports (master=N, web=N) to FILE atomically"},
    {"insecure", 0, NULL, ACR_OPT_FLAG, O(insecure), 0, 0, NULL,
     "local workers do not verify the targets' TLS certificates"},
    {"max-body-size", 0, NULL, ACR_OPT_INT, O(max_body_size), 1, 1 << 30, "BYTES",
     "local workers keep at most BYTES of a response body for r.body (default 16 MiB)"},
    {"check", 0, NULL, ACR_OPT_STRLIST, O(check), 0, 0, "EXPR",
     "not yet (refused): CI threshold, e.g. p95<300ms (repeatable)"},
    {"master", 0, NULL, ACR_OPT_FLAG, O(locust_master), 0, 0, NULL,
     "accepted and ignored, so that Locust command lines work"},
    {"allow-lost-reports", 0, NULL, ACR_OPT_FLAG, O(allow_lost_reports), 0, 0, NULL,
     "exit as if complete (not 4) when report intervals were lost with dead workers"},
};

static const acr_opts_spec_t spec = {
    .prog = "acrida-master",
    .usage = "-f SCENARIO [options]",
    .env_prefix = "ACRIDA_",
    .defs = defs,
    .ndefs = sizeof(defs) / sizeof(defs[0]),
    .foreign_keys = "master-host,master-port,processes,node-id,worker",
};

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* -H/--host: an http:// or https:// URL with a host; the message shows the fix. */
static int check_host(const char *url, char *err, size_t errlen)
{
    size_t scheme = strncasecmp(url, "http://", 7) == 0    ? 7
                    : strncasecmp(url, "https://", 8) == 0 ? 8
                                                           : 0;
    if (scheme == 0 && !strstr(url, "://"))
        return fail(err, errlen, "--host '%s' has no scheme: use --host http://%s (or https://%s)",
                    url, url, url);
    if (scheme == 0)
        return fail(err, errlen, "--host '%s': expected an http:// or https:// URL", url);
    size_t authority = strcspn(url + scheme, "/?#");
    if (authority == 0 || url[scheme] == ':')
        return fail(err, errlen, "--host '%s' has no host name: e.g. --host %.*s127.0.0.1:8080",
                    url, (int)scheme, url);
    return 0;
}

static int parse_local_workers(const char *s, int *out)
{
    if (strcmp(s, "auto") == 0) {
        *out = acr_cpu_count();
        return 0;
    }
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > 4096) return -EINVAL;
    *out = (int)v;
    return 0;
}

int acr_master_opts_parse(acr_master_opts_t *o, int argc, char **argv, char *err, size_t errlen)
{
    memset(o, 0, sizeof(*o));
    o->users = 1;
    o->spawn_rate = 1;
    o->run_time = -1;
    o->autoquit = -1;
    o->web_host = "127.0.0.1";
    o->web_port = 8089;
    o->master_bind_host = "*";
    o->master_bind_port = 5557;
    o->expect_workers = -1;
    o->stop_timeout = -1;
    o->exit_code_on_error = 1;
    o->loglevel = "INFO";

    int rc = acr_opts_parse(&spec, o, argc, argv, err, errlen);
    if (rc != 0) return rc;

    acr_log_level_t lvl;
    if (o->check && o->check[0]) return fail(err, errlen, "--check is not supported yet");
    if ((o->tags && o->tags[0]) || (o->exclude_tags && o->exclude_tags[0]))
        return fail(err, errlen, "--tags/--exclude-tags are not supported yet");
    if (!o->scenario || !*o->scenario) return fail(err, errlen, "--scenario is required (-f FILE)");
    if (o->host && *o->host && check_host(o->host, err, errlen) < 0) return -EINVAL;
    if (o->users < 0) return fail(err, errlen, "--users must be >= 0");
    if (!(o->spawn_rate > 0)) return fail(err, errlen, "--spawn-rate must be > 0");
    if (o->run_time != -1 && !(o->run_time > 0)) return fail(err, errlen, "--run-time must be > 0");
    if (o->stop_timeout != -1 && o->stop_timeout < 0)
        return fail(err, errlen, "--stop-timeout must be >= 0");
    if (o->web_port < 0 || o->web_port > 65535)
        return fail(err, errlen, "--web-port must be between 0 and 65535");
    if (o->master_bind_port < 0 || o->master_bind_port > 65535)
        return fail(err, errlen, "--master-bind-port must be between 0 and 65535");
    if (o->expect_workers_max_wait < 0)
        return fail(err, errlen, "--expect-workers-max-wait must be >= 0");
    if (o->exit_code_on_error < 0 || o->exit_code_on_error > 255)
        return fail(err, errlen, "--exit-code-on-error must be between 0 and 255");
    if (acr_log_parse_level(o->loglevel, &lvl) < 0)
        return fail(err, errlen,
                    "--loglevel: invalid level '%s' (expected DEBUG, INFO, WARNING or ERROR)",
                    o->loglevel);
    if (o->csv_full_history && !o->csv) return fail(err, errlen, "--csv-full-history needs --csv");
    if (o->autoquit >= 0 && !o->autostart) return fail(err, errlen, "--autoquit needs --autostart");
    if ((o->tls_cert && *o->tls_cert) != (o->tls_key && *o->tls_key))
        return fail(err, errlen, "--tls-cert and --tls-key go together");
    if (o->web_auth && !strchr(o->web_auth, ':'))
        return fail(err, errlen, "--web-auth: expected USER:PASS");
    o->nlocal = 0;
    if (o->local_workers && parse_local_workers(o->local_workers, &o->nlocal) < 0)
        return fail(err, errlen, "--local-workers: expected a number or 'auto'");
    if (o->expect_workers == -1) {
        o->expect_workers = o->nlocal > 0 ? o->nlocal : 1;
    } else if (o->expect_workers < 1) {
        return fail(err, errlen, "--expect-workers must be >= 1");
    }
    return 0;
}

void acr_master_opts_free(acr_master_opts_t *o)
{
    acr_opts_free(&spec, o);
}
