/*
 * The option table of both daemons (common/cli.h) and the checks after parsing. Each row names the
 * roles that take it: M (acrida-master), W (acrida-worker) or B (both). A name may have one row
 * per role when its help differs (the parser takes the row of the parsing role). The help of an
 * option that does not work yet starts with "not yet".
 */
#include "common/cli.h"

#include "common/log.h"
#include "common/util.h"
#include "proto/proto.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define O(f) offsetof(acr_cli_opts_t, f)
#define M ACR_CLI_MASTER
#define W ACR_CLI_WORKER
#define B (ACR_CLI_MASTER | ACR_CLI_WORKER)
#define MAX_PROCESSES 4096
#define MAX_BODY_SIZE (1 << 30)

static const acr_opt_def_t defs[] = {
    /* acrida-worker's connection first: its help lists them first */
    {"master-host", 0, NULL, ACR_OPT_STR, O(master_host), 0, 0, "H",
     "master address (default 127.0.0.1)", W},
    {"master-port", 0, NULL, ACR_OPT_INT, O(master_port), 1, 65535, "P",
     "master port (default 5557)", W},
    {"scenario", 'f', "locustfile", ACR_OPT_STR, O(scenario), 0, 0, "FILE",
     "Lua scenario file (required)", M},
    {"scenario", 'f', "locustfile", ACR_OPT_STR, O(scenario), 0, 0, "FILE",
     "local Lua scenario; without it the worker runs the one the master sends", W},
    {"processes", 0, NULL, ACR_OPT_COUNT, O(processes), 1, MAX_PROCESSES, NULL,
     "fork N worker processes (auto = number of cores)", W},
    {"node-id", 0, NULL, ACR_OPT_STR, O(node_id), 0, 0, "ID",
     "routing id, at most 255 bytes (default <hostname>_<32 hex chars>)", W},
    {"host", 'H', NULL, ACR_OPT_STR, O(host), 0, 0, "URL",
     "default target for users that set no host (http:// or https://)", M},
    {"users", 'u', NULL, ACR_OPT_INT, O(users), 0, 0, "N", "peak concurrent users (default 1)", M},
    {"spawn-rate", 'r', "hatch-rate", ACR_OPT_DOUBLE, O(spawn_rate), 0, 0, "R",
     "users started/stopped per second, cluster-wide (default 1)", M},
    {"run-time", 't', NULL, ACR_OPT_TIMESPAN, O(run_time), 0, 0, "T",
     "stop after T (20, 20s, 3m, 2h, 1h20m, 3h30m10s); default: until SIGTERM/SIGINT", M},
    {"headless", 0, NULL, ACR_OPT_FLAG, O(headless), 0, 0, NULL,
     "no web UI: start once the workers are ready, quit when the test ends", M},
    {"autostart", 0, NULL, ACR_OPT_FLAG, O(autostart), 0, 0, NULL,
     "web mode: start a test at once with -u/-r/-t, the web UI up", M},
    {"autoquit", 0, NULL, ACR_OPT_INT, O(autoquit), 0, 1000000000, "S",
     "with --autostart: quit S seconds after a test ends (default: run until a signal)", M},
    {"web-host", 0, NULL, ACR_OPT_STR, O(web_host), 0, 0, "H",
     "dashboard/API bind address (default 127.0.0.1; * = every interface)", M},
    {"web-port", 'P', NULL, ACR_OPT_INT, O(web_port), 0, 65535, "P",
     "dashboard/API port (default 8089; 0 = ephemeral)", M},
    {"web-auth", 0, NULL, ACR_OPT_STR, O(web_auth), 0, 0, "USER:PASS",
     "HTTP Basic auth on every route, the dashboard's files included", M},
    {"tls-cert", 0, NULL, ACR_OPT_STR, O(tls_cert), 0, 0, "FILE",
     "serve the dashboard/API over HTTPS with this PEM certificate", M},
    {"tls-key", 0, NULL, ACR_OPT_STR, O(tls_key), 0, 0, "FILE", "the PEM private key of --tls-cert",
     M},
    {"master-bind-host", 0, NULL, ACR_OPT_STR, O(master_bind_host), 0, 0, "H",
     "ZeroMQ bind address (default *)", M},
    {"master-bind-port", 0, NULL, ACR_OPT_INT, O(master_bind_port), 0, 65535, "P",
     "ZeroMQ port (default 5557; 0 = ephemeral)", M},
    {"expect-workers", 0, NULL, ACR_OPT_INT, O(expect_workers), 1, INT32_MAX, "N",
     "--headless/--autostart: wait for N ready workers (default: --local-workers, else 1)", M},
    {"expect-workers-max-wait", 0, NULL, ACR_OPT_DOUBLE, O(expect_workers_max_wait), 0, 1e9, "S",
     "give up waiting for workers after S seconds (0 = forever) and exit 1", M},
    {"local-workers", 0, NULL, ACR_OPT_COUNT, O(local_workers), 0, MAX_PROCESSES, NULL,
     "start N local workers (auto = number of cores)", M},
    {"csv", 0, NULL, ACR_OPT_STR, O(csv), 0, 0, "PREFIX",
     "write PREFIX_stats.csv, _stats_history.csv, _failures.csv, _exceptions.csv, "
     "_lost_reports.csv",
     M},
    {"csv-full-history", 0, NULL, ACR_OPT_FLAG, O(csv_full_history), 0, 0, NULL,
     "every entry in the history CSV, not only Aggregated", M},
    {"html", 0, NULL, ACR_OPT_STR, O(html), 0, 0, "FILE",
     "self-contained HTML report at the end (web mode: also after each test)", M},
    {"json", 0, NULL, ACR_OPT_FLAG, O(json), 0, 0, NULL,
     "print the /stats/requests document on stdout at the end (tables go to stderr)", M},
    {"only-summary", 0, NULL, ACR_OPT_FLAG, O(only_summary), 0, 0, NULL,
     "no periodic table, only the final summary", M},
    {"reset-stats", 0, NULL, ACR_OPT_FLAG, O(reset_stats), 0, 0, NULL,
     "reset the stats when the ramp-up completes", M},
    {"stop-timeout", 's', NULL, ACR_OPT_TIMESPAN, O(stop_timeout), 0, 0, "S",
     "graceful stop: let users finish their task for up to S; requests still in flight then "
     "(10 s without it) are aborted and counted as aborted at stop",
     M},
    {"exit-code-on-error", 0, NULL, ACR_OPT_INT, O(exit_code_on_error), 0, 255, "N",
     "exit code when a request failed or a task raised (default 1)", M},
    {"tags", 'T', NULL, ACR_OPT_STRLIST, O(tags), 0, 0, "TAG",
     "run only tasks with one of these tags (sent to the workers)", M},
    {"exclude-tags", 'E', NULL, ACR_OPT_STRLIST, O(exclude_tags), 0, 0, "TAG",
     "skip tasks with any of these tags (sent to the workers)", M},
    {"check", 0, NULL, ACR_OPT_STRMULTI, O(check), 0, 0, "EXPR",
     "CI threshold, e.g. p95<300ms (repeatable); any failed check exits 3", M},
    {"allow-lost-reports", 0, NULL, ACR_OPT_FLAG, O(allow_lost_reports), 0, 0, NULL,
     "exit as if complete (not 4) when report intervals were lost with dead workers", M},
    {"scenario-dir", 0, NULL, ACR_OPT_STR, O(scenario_dir), 0, 0, "DIR",
     "ship every file under DIR (Lua modules, data) with the scenario (default: its "
     "directory's required modules and acrida.files)",
     M},
    {"max-bundle-size", 0, NULL, ACR_OPT_INT, O(max_bundle_size), 1, INT32_MAX, "BYTES",
     "largest scenario bundle shipped to workers (default 64 MiB)", M},
    {"max-entry-names", 0, NULL, ACR_OPT_INT, O(max_entry_names), 1, 100000000, "N",
     "distinct request names kept (default 10000); later ones are counted in '[other]'", M},
    {"max-workers", 0, NULL, ACR_OPT_INT, O(max_workers), 1, 1000000, "N",
     "registered workers at most (default 10000); more registrations are dropped", M},
    {"registration-rate", 0, NULL, ACR_OPT_DOUBLE, O(registration_rate), 1, 1e6, "R",
     "client_ready frames taken per second, bursts of R (default 200); more are dropped", M},
    {"port-file", 0, NULL, ACR_OPT_STR, O(port_file), 0, 0, "FILE",
     "write the bound ports (master=N, web=N) to FILE atomically", M},
    {"insecure", 0, NULL, ACR_OPT_FLAG, O(insecure), 0, 0, NULL,
     "local workers do not verify the targets' TLS certificates", M},
    {"exit-on-quit", 0, NULL, ACR_OPT_FLAG, O(exit_on_quit), 0, 0, NULL,
     "exit when the master quits (Locust's one-shot worker); default: wait for the next test", W},
    {"master-timeout", 0, NULL, ACR_OPT_TIMESPAN, O(master_timeout), 2, 86400, "S",
     "stop the users after S without a word from an acrida master, 2s to 1 day (default 10s)", W},
    {"stall-timeout", 0, NULL, ACR_OPT_TIMESPAN, O(stall_timeout), 0, 86400, "S",
     "interrupt a task whose Lua code runs S without yielding (default 10s; 0: off)", W},
    {"stall-timeout", 0, NULL, ACR_OPT_TIMESPAN, O(stall_timeout), 0, 86400, "S",
     "local workers interrupt a task whose Lua code runs S without yielding (default 10s)", M},
    {"insecure", 0, NULL, ACR_OPT_FLAG, O(insecure), 0, 0, NULL,
     "do not verify the targets' TLS certificates", W},
    {"max-body-size", 0, NULL, ACR_OPT_INT, O(max_body_size), 1, MAX_BODY_SIZE, "BYTES",
     "local workers keep at most BYTES of a response body for r.body (default 16 MiB)", M},
    {"max-body-size", 0, NULL, ACR_OPT_INT, O(max_body_size), 1, MAX_BODY_SIZE, "BYTES",
     "bytes of a response body kept for r.body (default 16 MiB); more is read and counted", W},
    {"max-lua-memory", 0, NULL, ACR_OPT_STR, O(max_lua_memory), 0, 0, "SIZE",
     "passed on to local workers: cap on each worker's Lua memory (e.g. 512MiB)", M},
    {"max-lua-memory", 0, NULL, ACR_OPT_STR, O(max_lua_memory), 0, 0, "SIZE",
     "cap on the scenario's Lua memory, 16 MiB to 1 TiB (e.g. 512MiB; default RAM / (2 x "
     "cores) within 64 MiB..4 GiB): beyond it an allocation fails with 'not enough memory'",
     W},
    {"cluster-key", 0, NULL, ACR_OPT_STR, O(cluster_key), 0, 0, "FILE",
     "CURVE on the master port: only peers holding this key file connect (docs/security.md)", B},
    {"gen-key", 0, NULL, ACR_OPT_STR, O(gen_key), 0, 0, "FILE",
     "write a new cluster key to FILE (mode 0600, never overwritten) and exit", M},
    {"trust-master", 0, NULL, ACR_OPT_FLAG, O(trust_master), 0, 0, NULL,
     "run the scenario of a master reached over the network without --cluster-key", W},
    {"loglevel", 'L', NULL, ACR_OPT_STR, O(loglevel), 0, 0, "LEVEL",
     "DEBUG, INFO (default), WARNING, ERROR", B},
    {"logfile", 0, NULL, ACR_OPT_STR, O(logfile), 0, 0, "FILE", "also log to FILE", B},
    {"master", 0, NULL, ACR_OPT_FLAG, O(locust_role), 0, 0, NULL,
     "accepted and ignored, so that Locust command lines work", M},
    {"worker", 0, NULL, ACR_OPT_FLAG, O(locust_role), 0, 0, NULL,
     "accepted and ignored, so that Locust command lines work", W},
};

static const acr_opts_spec_t master_spec = {
    .prog = "acrida-master",
    .usage = "-f SCENARIO [options]",
    .env_prefix = "ACRIDA_",
    .defs = defs,
    .ndefs = ACR_ARRAY_SIZE(defs),
    .role = ACR_CLI_MASTER,
};

static const acr_opts_spec_t worker_spec = {
    .prog = "acrida-worker",
    .usage = "[--master-host H] [--master-port P] [-f SCENARIO] [options]",
    .env_prefix = "ACRIDA_",
    .defs = defs,
    .ndefs = ACR_ARRAY_SIZE(defs),
    .role = ACR_CLI_WORKER,
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

static void set_defaults(acr_cli_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->loglevel = "INFO";
    o->users = 1;
    o->spawn_rate = 1;
    o->run_time = -1;
    o->autoquit = -1;
    o->web_host = "127.0.0.1";
    o->web_port = 8089;
    o->master_bind_host = "*";
    o->master_bind_port = ACR_PROTO_DEFAULT_PORT;
    o->expect_workers = -1;
    o->stop_timeout = -1;
    o->exit_code_on_error = 1;
    o->master_host = "127.0.0.1";
    o->master_port = ACR_PROTO_DEFAULT_PORT;
    o->max_bundle_size = ACR_CLI_BUNDLE_MAX;
    o->max_entry_names = 10000;
    o->max_workers = 10000;
    o->registration_rate = 200;
    o->master_timeout = ACR_CLI_MASTER_TIMEOUT_S;
    o->stall_timeout = ACR_CLI_STALL_TIMEOUT_S;
}

/* -H/--host and /swarm's host (common/cli.h). */
int acr_cli_check_url(const char *url, const char *what, const char *shown, char *err,
                      size_t errlen)
{
    bool cli = what[0] == '-'; /* an option: the messages suggest the corrected command */
    if (!shown) shown = url;
    for (const char *p = url; *p; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return fail(err, errlen, "%s must not contain spaces or control characters", what);
        if ((unsigned char)*p >= 0x80) /* no IDN: a name is written in punycode */
            return fail(err, errlen, "%s must be ASCII (a name in punycode: xn--...), got '%s'",
                        what, shown);
    }
    size_t scheme = strncasecmp(url, "http://", 7) == 0    ? 7
                    : strncasecmp(url, "https://", 8) == 0 ? 8
                                                           : 0;
    if (scheme == 0 && cli && !strstr(url, "://"))
        return fail(err, errlen, "%s '%s' has no scheme: use %s http://%s (or https://%s)", what,
                    shown, what, shown, shown);
    if (scheme == 0)
        return fail(err, errlen, "%s '%s' must be an http:// or https:// URL", what, shown);
    const char *auth = url + scheme;
    size_t alen = strcspn(auth, "/?#");
    if ((alen == 0 || auth[0] == ':') && cli)
        return fail(err, errlen, "%s '%s' has no host name: e.g. %s %.*s127.0.0.1:8080", what,
                    shown, what, (int)scheme, url);
    if (alen == 0 || auth[0] == ':')
        return fail(err, errlen, "%s '%s' has no host name", what, shown);
    if (memchr(auth, '@', alen))
        return fail(err, errlen, "%s '%s': credentials in the URL are not supported", what, shown);
    const char *port = NULL;
    if (auth[0] == '[') {
        const char *close = memchr(auth, ']', alen);
        if (!close) return fail(err, errlen, "%s '%s': unterminated [IPv6 address]", what, shown);
        if (close + 1 < auth + alen) {
            if (close[1] != ':') return fail(err, errlen, "%s '%s': bad host", what, shown);
            port = close + 2;
        }
    } else {
        const char *colon = memchr(auth, ':', alen);
        if (colon) port = colon + 1;
    }
    if (port) {
        size_t plen = (size_t)(auth + alen - port), digits = strspn(port, "0123456789");
        long v = digits == plen && plen > 0 && plen <= 5 ? strtol(port, NULL, 10) : 0;
        if (v < 1 || v > 65535)
            return fail(err, errlen, "%s '%s': the port must be a number from 1 to 65535", what,
                        shown);
    }
    return 0;
}

size_t acr_cli_default_lua_memory(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGE_SIZE);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (pages <= 0 || psize <= 0) return ACR_CLI_LUA_MEMORY_DEFAULT_MIN;
    if (cores < 1) cores = 1;
    size_t share = (size_t)pages / (2 * (size_t)cores) * (size_t)psize;
    if (share < ACR_CLI_LUA_MEMORY_DEFAULT_MIN) return ACR_CLI_LUA_MEMORY_DEFAULT_MIN;
    if (share > ACR_CLI_LUA_MEMORY_DEFAULT_MAX) return ACR_CLI_LUA_MEMORY_DEFAULT_MAX;
    return share;
}

int acr_cli_parse_size(const char *s, size_t *out)
{
    static const char units[] = "KMGT";
    size_t digits = strspn(s, "0123456789");
    if (digits == 0 || digits > 13) return -EINVAL; /* below 10^13: no overflow before the unit */
    unsigned long long v = strtoull(s, NULL, 10);
    const char *p = s + digits;
    if (*p) {
        const char *u = strchr(units, toupper((unsigned char)*p));
        if (!u) return -EINVAL;
        for (const char *k = units; k <= u; k++) {
            if (v > (1ULL << 50)) return -EINVAL;
            v <<= 10;
        }
        p++;
        if (strcasecmp(p, "iB") != 0 && strcasecmp(p, "B") != 0 && *p) return -EINVAL;
    }
    if (v > SIZE_MAX) return -EINVAL;
    *out = (size_t)v;
    return 0;
}

/* --max-lua-memory: both daemons check it (the master before passing it on). */
static int check_lua_memory(acr_cli_opts_t *o, char *err, size_t errlen)
{
    if (!o->max_lua_memory || !*o->max_lua_memory) {
        o->lua_memory = acr_cli_default_lua_memory();
        return 0;
    }
    size_t v;
    if (acr_cli_parse_size(o->max_lua_memory, &v) < 0)
        return fail(err, errlen,
                    "--max-lua-memory '%s': expected a size such as 512MiB, 2GiB or 67108864",
                    o->max_lua_memory);
    if (v < ACR_CLI_LUA_MEMORY_MIN || v > ACR_CLI_LUA_MEMORY_MAX)
        return fail(err, errlen, "--max-lua-memory '%s': must be from 16 MiB to 1 TiB",
                    o->max_lua_memory);
    o->lua_memory = v;
    return 0;
}

/* --node-id: the worker's ZeroMQ routing id, with the "-N" that --processes appends. */
static int check_node_id(const acr_cli_opts_t *o, char *err, size_t errlen)
{
    size_t len = strlen(o->node_id), suffix = 0;
    if (o->processes > 0) suffix = (size_t)snprintf(NULL, 0, "-%d", o->processes);
    if (len + suffix > ACR_PROTO_NODE_ID_MAX)
        return fail(err, errlen, "--node-id is %zu bytes%s: at most %zu (a ZeroMQ routing id)",
                    len + suffix, suffix ? " with the --processes suffix" : "",
                    ACR_PROTO_NODE_ID_MAX - suffix);
    for (const char *p = o->node_id; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return fail(err, errlen, "--node-id must not contain control characters");
    if (!acr_proto_utf8_valid(o->node_id, len))
        return fail(err, errlen, "--node-id must be valid UTF-8");
    return 0;
}

/* Tags travel in every spawn: at most ACR_CLI_MAX_TAGS, each 1..ACR_CLI_TAG_MAX printable
 * UTF-8 bytes. */
static int check_tags(char **tags, const char *opt, char *err, size_t errlen)
{
    size_t i = 0;
    for (; tags && tags[i]; i++) {
        size_t len = strlen(tags[i]);
        if (i >= ACR_CLI_MAX_TAGS) {
            snprintf(err, errlen, "%s: at most %d tags", opt, ACR_CLI_MAX_TAGS);
            return -EINVAL;
        }
        if (len == 0 || len > ACR_CLI_TAG_MAX) {
            snprintf(err, errlen, "%s: a tag must be 1 to %d bytes", opt, ACR_CLI_TAG_MAX);
            return -EINVAL;
        }
        for (const char *p = tags[i]; *p; p++) {
            if ((unsigned char)*p < 0x20 || *p == 0x7f) {
                snprintf(err, errlen, "%s: a tag must not contain control characters", opt);
                return -EINVAL;
            }
        }
        if (!acr_proto_utf8_valid(tags[i], len)) {
            snprintf(err, errlen, "%s: a tag must be valid UTF-8", opt);
            return -EINVAL;
        }
    }
    return 0;
}

static int check_master(acr_cli_opts_t *o, char *err, size_t errlen)
{
    if (check_tags(o->tags, "--tags", err, errlen) < 0 ||
        check_tags(o->exclude_tags, "--exclude-tags", err, errlen) < 0)
        return -EINVAL;
    if (o->gen_key) {
        if (!*o->gen_key) return fail(err, errlen, "--gen-key needs a file name");
        return 0; /* acrida-master --gen-key FILE does nothing else */
    }
    if (!o->scenario || !*o->scenario) return fail(err, errlen, "--scenario is required (-f FILE)");
    if (o->host && *o->host && acr_cli_check_url(o->host, "--host", NULL, err, errlen) < 0)
        return -EINVAL;
    if (o->users < 0) return fail(err, errlen, "--users must be >= 0");
    if (!(o->spawn_rate >= ACR_MIN_SPAWN_RATE))
        return fail(err, errlen, "--spawn-rate must be at least 1e-06 users/s");
    if (o->run_time != -1 && !(o->run_time > 0)) return fail(err, errlen, "--run-time must be > 0");
    if (o->stop_timeout != -1 && o->stop_timeout < 0)
        return fail(err, errlen, "--stop-timeout must be >= 0");
    if (o->csv_full_history && !o->csv) return fail(err, errlen, "--csv-full-history needs --csv");
    if (o->autoquit >= 0 && !o->autostart) return fail(err, errlen, "--autoquit needs --autostart");
    if ((o->tls_cert && *o->tls_cert) != (o->tls_key && *o->tls_key))
        return fail(err, errlen, "--tls-cert and --tls-key go together");
    if (o->web_auth && !strchr(o->web_auth, ':'))
        return fail(err, errlen, "--web-auth: expected USER:PASS");
    if (o->local_workers > 0 && o->master_bind_host && strchr(o->master_bind_host, ':'))
        return fail(err, errlen,
                    "--local-workers connect over IPv4: use an IPv4 --master-bind-host (or *)");
    if (o->expect_workers == -1) o->expect_workers = o->local_workers > 0 ? o->local_workers : 1;
    return check_lua_memory(o, err, errlen);
}

int acr_cli_parse(acr_cli_opts_t *o, acr_cli_role_t role, int argc, char **argv, char *err,
                  size_t errlen)
{
    acr_log_level_t level;
    set_defaults(o);
    int rc = acr_opts_parse(role == ACR_CLI_MASTER ? &master_spec : &worker_spec, o, argc, argv,
                            err, errlen);
    if (rc != 0) return rc;
    if (acr_log_parse_level(o->loglevel, &level) < 0)
        return fail(err, errlen,
                    "--loglevel: invalid level '%s' (expected DEBUG, INFO, WARNING or ERROR)",
                    o->loglevel);
    if (role == ACR_CLI_MASTER) return check_master(o, err, errlen);
    if (check_lua_memory(o, err, errlen) < 0) return -EINVAL;
    if (o->node_id && *o->node_id && check_node_id(o, err, errlen) < 0) return -EINVAL;
    if (!o->master_host || !*o->master_host)
        return fail(err, errlen, "--master-host must not be empty");
    if (strchr(o->master_host, ':') || strpbrk(o->master_host, " /\t\n"))
        return fail(err, errlen,
                    "--master-host '%s': expected a host name or IPv4 address (the "
                    "port goes in --master-port)",
                    o->master_host);
    return 0;
}

void acr_cli_free(acr_cli_opts_t *o)
{
    acr_opts_free(&master_spec, o); /* frees every row's field, whatever its role */
}
