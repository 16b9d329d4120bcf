/*
 * Unit tests for common/opts.c: command line forms, aliases, lists, config file, environment,
 * precedence, roles, every error message, help and version; and for acrida's option table
 * (common/cli.c): each daemon takes its own options from a shared config file and environment,
 * refuses the other's on its command line, and checks the values (node id, host, counts).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cli.h"
#include "common/opts.h"
#include "common/util.h"
#include "proto/proto.h"

#define assert_dbl(a, b)                                                                           \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (fabs(a_ - b_) > 1e-9) fail_msg("%s = %.17g, expected %.17g", #a, a_, b_);              \
    } while (0)

typedef struct cfg {
    char *host;
    int users;
    double spawn_rate;
    double run_time;
    bool headless;
    bool verbose;
    char **tags;
    char **exclude;
    int port;
    char *other; /* another program's option */
    int procs;
} cfg_t;

#define ROLE_TEST 1u
#define ROLE_OTHER 2u

static const acr_opt_def_t defs[] = {
    {"host", 'H', NULL, ACR_OPT_STR, offsetof(cfg_t, host), 0, 0, "URL", "target host", 0},
    {"users", 'u', NULL, ACR_OPT_INT, offsetof(cfg_t, users), 0, 1e9, "N", "peak users", 0},
    {"spawn-rate", 'r', "hatch-rate", ACR_OPT_DOUBLE, offsetof(cfg_t, spawn_rate), 0, 1e9, "R",
     "users per second", 0},
    {"run-time", 't', NULL, ACR_OPT_TIMESPAN, offsetof(cfg_t, run_time), 0, 0, NULL, "run time", 0},
    {"headless", 0, NULL, ACR_OPT_FLAG, offsetof(cfg_t, headless), 0, 0, NULL, "no web UI", 0},
    {"verbose", 'v', NULL, ACR_OPT_FLAG, offsetof(cfg_t, verbose), 0, 0, NULL, "more output", 0},
    {"tags", 'T', NULL, ACR_OPT_STRLIST, offsetof(cfg_t, tags), 0, 0, "TAG", "only these tags", 0},
    {"exclude-tags", 'E', NULL, ACR_OPT_STRLIST, offsetof(cfg_t, exclude), 0, 0, "TAG", "skip", 0},
    {"web-port", 'P', NULL, ACR_OPT_INT, offsetof(cfg_t, port), 0, 65535, "P", "web port", 0},
    {"master-host", 0, NULL, ACR_OPT_STR, offsetof(cfg_t, other), 0, 0, "H", "elsewhere",
     ROLE_OTHER},
    {"procs", 'n', NULL, ACR_OPT_COUNT, offsetof(cfg_t, procs), 1, 100000, NULL, "processes",
     ROLE_TEST},
};

static const acr_opts_spec_t spec = {
    .prog = "acrida-test",
    .usage = "[options]",
    .env_prefix = "ACRIDA_",
    .defs = defs,
    .ndefs = sizeof(defs) / sizeof(defs[0]),
    .role = ROLE_TEST,
};

static const char *const env_vars[] = {
    "ACRIDA_HOST",          "ACRIDA_USERS",       "ACRIDA_SPAWN_RATE", "ACRIDA_HATCH_RATE",
    "ACRIDA_RUN_TIME",      "ACRIDA_HEADLESS",    "ACRIDA_TAGS",       "ACRIDA_EXCLUDE_TAGS",
    "ACRIDA_CONFIG",        "ACRIDA_WEB_PORT",    "ACRIDA_BOGUS",      "ACRIDA_VERBOSE",
    "ACRIDA_MASTER_HOST",   "ACRIDA_PROCS",       "ACRIDA_NODE_ID",    "ACRIDA_PROCESSES",
    "ACRIDA_LOCAL_WORKERS", "ACRIDA_MASTER_PORT", "ACRIDA_CHECK"};

static char tmpdir[256], oldcwd[1024];

static int setup(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(env_vars) / sizeof(env_vars[0]); i++) unsetenv(env_vars[i]);
    if (!getcwd(oldcwd, sizeof(oldcwd))) return -1;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/acrida-test-opts-XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    return chdir(tmpdir);
}

static int teardown(void **state)
{
    char cmd[512];
    (void)state;
    if (chdir(oldcwd) < 0) return -1;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void cfg_init(cfg_t *c)
{
    memset(c, 0, sizeof(*c));
    c->host = "http://default";
    c->users = 1;
    c->spawn_rate = 1.0;
    c->port = 8089;
}

/* Parses a NULL-terminated argument list (program name added); returns the parse result. */
static int parse(cfg_t *c, char *err, size_t errlen, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;

    argv[argc++] = "acrida-test";
    va_start(ap, errlen);
    for (char *a; (a = va_arg(ap, char *)) != NULL && argc < 31;) argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    return acr_opts_parse(&spec, c, argc, argv, err, errlen);
}

static void assert_list(char **l, const char *const *want, size_t n)
{
    size_t i = 0;
    assert_non_null(l);
    for (; l[i]; i++) {
        if (i >= n) fail_msg("extra list item '%s' at %zu", l[i], i);
        assert_string_equal(l[i], want[i]);
    }
    assert_int_equal(i, n);
}

static void test_defaults_kept(void **state)
{
    cfg_t c;
    char err[256];
    (void)state;
    cfg_init(&c);
    assert_int_equal(parse(&c, err, sizeof(err), NULL), 0);
    assert_string_equal(c.host, "http://default");
    assert_int_equal(c.users, 1);
    assert_dbl(c.spawn_rate, 1.0);
    assert_false(c.headless);
    assert_null(c.tags);
    acr_opts_free(&spec, &c);
    assert_null(c.host);
}

static void test_long_and_short_forms(void **state)
{
    cfg_t c;
    char err[256];
    (void)state;

    cfg_init(&c);
    assert_int_equal(parse(&c, err, sizeof(err), "--users", "10", "--host=http://h:1", "-r", "2.5",
                           "--headless", "-t1h20m", NULL),
                     0);
    assert_int_equal(c.users, 10);
    assert_string_equal(c.host, "http://h:1");
    assert_dbl(c.spawn_rate, 2.5);
    assert_true(c.headless);
    assert_dbl(c.run_time, 4800.0);
    acr_opts_free(&spec, &c);

    cfg_init(&c);
    assert_int_equal(parse(&c, err, sizeof(err), "-u10", "--users=20", "-H", "x", NULL), 0);
    assert_int_equal(c.users, 20); /* last one wins */
    assert_string_equal(c.host, "x");
    acr_opts_free(&spec, &c);

    cfg_init(&c);
    assert_int_equal(parse(&c, err, sizeof(err), "-u", "7", "--headless=false", "-vu3", NULL), 0);
    assert_int_equal(c.users, 3); /* bundled: -v then -u3 */
    assert_true(c.verbose);
    assert_false(c.headless);
    acr_opts_free(&spec, &c);
}

static void test_alias(void **state)
{
    cfg_t c;
    char err[256];
    (void)state;
    cfg_init(&c);
    assert_int_equal(parse(&c, err, sizeof(err), "--hatch-rate", "4", NULL), 0);
    assert_dbl(c.spawn_rate, 4.0);
    acr_opts_free(&spec, &c);
}

static void test_strlist(void **state)
{
    static const char *const abc[] = {"a", "b", "c"};
    static const char *const xy[] = {"x", "y"};
    cfg_t c;
    char err[256];
    (void)state;

    cfg_init(&c);
    assert_int_equal(
        parse(&c, err, sizeof(err), "-T", "a", "b", "c", "--headless", "-E", "x", "y", NULL), 0);
    assert_list(c.tags, abc, 3);
    assert_list(c.exclude, xy, 2);
    assert_true(c.headless);
    acr_opts_free(&spec, &c);

    cfg_init(&c);
    assert_int_equal(parse(&c, err, sizeof(err), "--tags", "-u", "2", NULL), 0);
    assert_list(c.tags, abc, 0); /* present but empty */
    assert_int_equal(c.users, 2);
    acr_opts_free(&spec, &c);

    cfg_init(&c);
    assert_int_equal(parse(&c, err, sizeof(err), "--tags=a,b c", NULL), 0);
    assert_list(c.tags, abc, 3);
    acr_opts_free(&spec, &c);
}

static void test_config_file(void **state)
{
    static const char *const ab[] = {"a", "b"};
    cfg_t c;
    char err[256];
    (void)state;

    write_file("x.conf", "# a comment\n"
                         "\n"
                         "users = 5\n"
                         "spawn_rate = 0.5   # inline comment\n"
                         "  run-time=3m  \n"
                         "headless = true\n"
                         "tags = [a, b]\n"
                         "host = \"http://conf#1\"\n"
                         "; another comment\n"
                         "master-host = elsewhere\n"
                         "[acrida-target]\n"
                         "not-ours = 1\n"
                         "[test]\n"
                         "web-port = 9000\n");
    cfg_init(&c);
    assert_int_equal(parse(&c, err, sizeof(err), "--config", "x.conf", NULL), 0);
    assert_int_equal(c.users, 5);
    assert_dbl(c.spawn_rate, 0.5);
    assert_dbl(c.run_time, 180.0);
    assert_true(c.headless);
    assert_list(c.tags, ab, 2);
    assert_string_equal(c.host, "http://conf#1");
    assert_int_equal(c.port, 9000);
    assert_null(c.other); /* another program's key: skipped */
    acr_opts_free(&spec, &c);

    /* ./acrida.conf is read when no --config is given; flags accept false */
    write_file("acrida.conf", "users = 6\nheadless = false\n");
    cfg_init(&c);
    c.headless = true;
    assert_int_equal(parse(&c, err, sizeof(err), NULL), 0);
    assert_int_equal(c.users, 6);
    assert_false(c.headless);
    acr_opts_free(&spec, &c);

    /* --config overrides ./acrida.conf (which is then not read) */
    write_file("y.conf", "spawn-rate = 3\n");
    cfg_init(&c);
    assert_int_equal(parse(&c, err, sizeof(err), "--config=y.conf", NULL), 0);
    assert_int_equal(c.users, 1);
    assert_dbl(c.spawn_rate, 3.0);
    acr_opts_free(&spec, &c);

    /* ACRIDA_CONFIG names the file too */
    setenv("ACRIDA_CONFIG", "y.conf", 1);
    cfg_init(&c);
    assert_int_equal(parse(&c, err, sizeof(err), NULL), 0);
    assert_dbl(c.spawn_rate, 3.0);
    assert_int_equal(c.users, 1);
    acr_opts_free(&spec, &c);
}

static void test_env(void **state)
{
    static const char *const tags[] = {"t1", "t2"};
    cfg_t c;
    char err[256];
    (void)state;

    setenv("ACRIDA_USERS", "42", 1);
    setenv("ACRIDA_HATCH_RATE", "7", 1);
    setenv("ACRIDA_HEADLESS", "yes", 1);
    setenv("ACRIDA_TAGS", "t1, t2", 1);
    setenv("ACRIDA_RUN_TIME", "90s", 1);
    setenv("ACRIDA_BOGUS", "whatever", 1); /* unknown: ignored */
    cfg_init(&c);
    assert_int_equal(parse(&c, err, sizeof(err), NULL), 0);
    assert_int_equal(c.users, 42);
    assert_dbl(c.spawn_rate, 7.0);
    assert_true(c.headless);
    assert_list(c.tags, tags, 2);
    assert_dbl(c.run_time, 90.0);
    acr_opts_free(&spec, &c);

    /* the canonical name beats the alias */
    setenv("ACRIDA_SPAWN_RATE", "8", 1);
    cfg_init(&c);
    assert_int_equal(parse(&c, err, sizeof(err), NULL), 0);
    assert_dbl(c.spawn_rate, 8.0);
    acr_opts_free(&spec, &c);
}

static void test_precedence(void **state)
{
    cfg_t c;
    char err[256];
    (void)state;

    write_file("acrida.conf", "users = 1001\nweb-port = 1001\nspawn-rate = 1001\n");
    setenv("ACRIDA_USERS", "2002", 1);
    setenv("ACRIDA_WEB_PORT", "2002", 1);
    cfg_init(&c);
    c.run_time = 5;
    assert_int_equal(parse(&c, err, sizeof(err), "--users", "3003", NULL), 0);
    assert_int_equal(c.users, 3003);  /* cmd > env */
    assert_int_equal(c.port, 2002);   /* env > config */
    assert_dbl(c.spawn_rate, 1001.0); /* config > default */
    assert_dbl(c.run_time, 5.0);      /* default */
    acr_opts_free(&spec, &c);
}

static void expect_error(const char *want, ...)
{
    char *argv[16], err[256] = "";
    int argc = 0;
    va_list ap;
    cfg_t c;

    argv[argc++] = "acrida-test";
    va_start(ap, want);
    for (char *a; (a = va_arg(ap, char *)) != NULL && argc < 15;) argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    cfg_init(&c);
    assert_int_equal(acr_opts_parse(&spec, &c, argc, argv, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, want);
    acr_opts_free(&spec, &c);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("unknown option '--foo'", "--foo", NULL);
    expect_error("unknown option '--foo'", "--foo=1", NULL);
    expect_error("unknown option '-x'", "-x", NULL);
    expect_error("option --users needs a value", "--users", NULL);
    expect_error("option --users needs a value", "--users", "--headless", NULL);
    expect_error("option --users needs a value", "-u", NULL);
    expect_error("invalid value 'abc' for --users: expected an integer", "--users", "abc", NULL);
    expect_error("invalid value '10x' for --users: expected an integer", "-u10x", NULL);
    expect_error("invalid value '-1' for --users: must be >= 0", "--users", "-1", NULL);
    expect_error("invalid value '70000' for --web-port: must be <= 65535", "-P", "70000", NULL);
    expect_error("invalid value '99999999999' for --users: out of range", "-u", "99999999999",
                 NULL);
    expect_error("invalid value 'fast' for --spawn-rate: expected a number", "--hatch-rate", "fast",
                 NULL);
    expect_error("invalid value '5x' for --run-time: expected a time span like 20, 20s, 3m, 2h, "
                 "1h20m, 3h30m10s",
                 "--run-time", "5x", NULL);
    expect_error("invalid value 'maybe' for --headless: expected true or false", "--headless=maybe",
                 NULL);
    expect_error("unexpected argument 'stray'", "stray", NULL);
    expect_error("cannot read config file 'missing.conf': No such file or directory", "--config",
                 "missing.conf", NULL);
    expect_error("option --config needs a value", "--config", NULL);

    write_file("acrida.conf", "# comment\nusers = 3\nfoo = 1\n");
    expect_error("unknown key 'foo' in acrida.conf:3", NULL);
    write_file("acrida.conf", "\nusers = many\n");
    expect_error("invalid value 'many' for --users in acrida.conf:2: expected an integer", NULL);
    write_file("acrida.conf", "users\n");
    expect_error("expected 'key = value' in acrida.conf:1", NULL);
    write_file("acrida.conf", "[mastr]\nusers = 50\n");
    expect_error("unknown section [mastr] in acrida.conf:1 (expected [acrida], [master] or "
                 "[worker])",
                 NULL);
    unlink("acrida.conf");

    setenv("ACRIDA_USERS", "-5", 1);
    expect_error("invalid value '-5' for --users in ACRIDA_USERS: must be >= 0", NULL);
    unsetenv("ACRIDA_USERS");
    setenv("ACRIDA_HEADLESS", "perhaps", 1);
    expect_error(
        "invalid value 'perhaps' for --headless in ACRIDA_HEADLESS: expected true or false", NULL);
    unsetenv("ACRIDA_HEADLESS");
}

static void test_no_default_config(void **state)
{
    acr_opts_spec_t own = spec;
    char *argv[] = {"acrida-test", NULL};
    char err[256];
    cfg_t c;
    (void)state;

    own.no_default_config = true;
    write_file("acrida.conf", "foo = 1\nusers = 9\n");
    cfg_init(&c);
    assert_int_equal(acr_opts_parse(&own, &c, 1, argv, err, sizeof(err)), 0);
    assert_int_equal(c.users, 1); /* ./acrida.conf not read */
    acr_opts_free(&own, &c);
    cfg_init(&c);
    assert_int_equal(acr_opts_parse(&spec, &c, 1, argv, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "unknown key 'foo' in acrida.conf:1");
    acr_opts_free(&spec, &c);
}

/* stdout redirected to a file between capture_begin and capture_end (which reads it into @out). */
static int capture_saved = -1, capture_fd = -1;

static void capture_begin(void)
{
    fflush(stdout);
    capture_saved = dup(1);
    capture_fd = open("stdout.txt", O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_true(capture_saved >= 0 && capture_fd >= 0);
    dup2(capture_fd, 1);
}

static void capture_end(char *out, size_t outlen)
{
    fflush(stdout);
    dup2(capture_saved, 1);
    close(capture_saved);
    ssize_t n = pread(capture_fd, out, outlen - 1, 0);
    close(capture_fd);
    out[n > 0 ? n : 0] = '\0';
}

/* Runs parse with stdout captured; returns the result and the captured text. */
static int parse_capture(char *out, size_t outlen, const char *arg)
{
    char *argv[] = {"acrida-test", (char *)arg, NULL};
    char err[256];
    cfg_t c;
    cfg_init(&c);
    capture_begin();
    int rc = acr_opts_parse(&spec, &c, 2, argv, err, sizeof(err));
    capture_end(out, outlen);
    acr_opts_free(&spec, &c);
    return rc;
}

static void test_help_version(void **state)
{
    char out[8192], want[128];
    (void)state;

    assert_int_equal(parse_capture(out, sizeof(out), "--help"), ACR_OPTS_EXIT);
    assert_non_null(strstr(out, "usage: acrida-test [options]"));
    assert_non_null(strstr(out, "  -u, --users N"));
    assert_non_null(strstr(out, "      --headless"));
    assert_non_null(strstr(out, "users per second"));
    assert_non_null(strstr(out, "ACRIDA_<NAME>"));
    assert_int_equal(parse_capture(out, sizeof(out), "-h"), ACR_OPTS_EXIT);
    assert_non_null(strstr(out, "  -T, --tags TAG"));
    assert_non_null(strstr(out, "  -n, --procs N|auto"));
    assert_null(strstr(out, "master-host")); /* another program's option is not listed */

    snprintf(want, sizeof(want), "acrida-test %s\n", ACR_VERSION);
    assert_int_equal(parse_capture(out, sizeof(out), "--version"), ACR_OPTS_EXIT);
    assert_string_equal(out, want);
    assert_int_equal(parse_capture(out, sizeof(out), "-V"), ACR_OPTS_EXIT);
    assert_string_equal(out, want);
}

static void test_roles(void **state)
{
    cfg_t c;
    char err[256];
    (void)state;
    /* another program's option: refused on the command line, naming it and this program */
    expect_error("option --master-host does not apply to acrida-test", "--master-host", "x", NULL);
    expect_error("option --master-host does not apply to acrida-test", "--master-host=x", NULL);
    /* ... and skipped in the environment and the config file */
    setenv("ACRIDA_MASTER_HOST", "from-env", 1);
    write_file("acrida.conf", "master-host = from-config\nusers = 4\n");
    cfg_init(&c);
    assert_int_equal(parse(&c, err, sizeof(err), NULL), 0);
    assert_null(c.other);
    assert_int_equal(c.users, 4);
    acr_opts_free(&spec, &c);
    /* the other program reads them, and refuses this program's --procs */
    acr_opts_spec_t other = spec;
    other.prog = "acrida-other";
    other.role = ROLE_OTHER;
    char *argv[] = {"acrida-other", "-u", "2", NULL}, *argv2[] = {"acrida-other", "-n", "2", NULL};
    cfg_init(&c);
    assert_int_equal(acr_opts_parse(&other, &c, 3, argv, err, sizeof(err)), 0);
    assert_string_equal(c.other, "from-env");
    assert_int_equal(c.users, 2); /* rows without roles apply to every program */
    acr_opts_free(&other, &c);
    cfg_init(&c);
    assert_int_equal(acr_opts_parse(&other, &c, 3, argv2, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "option --procs does not apply to acrida-other");
    acr_opts_free(&other, &c);
}

static void test_count(void **state)
{
    cfg_t c;
    char err[256];
    (void)state;
    cfg_init(&c);
    assert_int_equal(parse(&c, err, sizeof(err), "--procs", "auto", NULL), 0);
    assert_int_equal(c.procs, acr_cpu_count());
    acr_opts_free(&spec, &c);
    cfg_init(&c);
    assert_int_equal(parse(&c, err, sizeof(err), "-n", "7", NULL), 0);
    assert_int_equal(c.procs, 7);
    acr_opts_free(&spec, &c);
    expect_error("invalid value 'lots' for --procs: expected a number or 'auto'", "--procs", "lots",
                 NULL);
    expect_error("invalid value '0' for --procs: must be >= 1", "--procs", "0", NULL);
    setenv("ACRIDA_PROCS", "Auto", 1); /* "auto" is exact, like Locust's */
    expect_error("invalid value 'Auto' for --procs in ACRIDA_PROCS: expected a number or 'auto'",
                 NULL);
}

/* acrida's table (common/cli.c) for @role with a NULL-terminated argument list. */
static int cli(acr_cli_opts_t *o, acr_cli_role_t role, char *err, size_t errlen, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;
    argv[argc++] = role == ACR_CLI_MASTER ? "acrida-master" : "acrida-worker";
    va_start(ap, errlen);
    for (char *a; (a = va_arg(ap, char *)) != NULL && argc < 31;) argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    return acr_cli_parse(o, role, argc, argv, err, errlen);
}

static void test_cli_shared_config_and_env(void **state)
{
    acr_cli_opts_t o;
    char err[256];
    (void)state;
    /* one file, no sections, both daemons' keys: each daemon takes its own */
    write_file("acrida.conf", "scenario = s.lua\nusers = 7\nlocal-workers = 2\n"
                              "master-host = 10.0.0.1\nprocesses = 3\nnode-id = n1\n"
                              "loglevel = WARNING\n");
    setenv("ACRIDA_MASTER_PORT", "6000", 1);
    assert_int_equal(cli(&o, ACR_CLI_MASTER, err, sizeof err, "--headless", NULL), 0);
    assert_string_equal(o.scenario, "s.lua");
    assert_int_equal(o.users, 7);
    assert_int_equal(o.local_workers, 2);
    assert_int_equal(o.expect_workers, 2); /* resolved from --local-workers */
    assert_string_equal(o.master_host, "127.0.0.1");
    assert_int_equal(o.master_port, ACR_PROTO_DEFAULT_PORT);
    assert_int_equal(o.processes, 0);
    assert_null(o.node_id);
    assert_string_equal(o.loglevel, "WARNING");
    assert_int_equal(o.master_bind_port, ACR_PROTO_DEFAULT_PORT);
    acr_cli_free(&o);
    assert_int_equal(cli(&o, ACR_CLI_WORKER, err, sizeof err, NULL), 0);
    assert_string_equal(o.scenario, "s.lua");
    assert_string_equal(o.master_host, "10.0.0.1");
    assert_int_equal(o.master_port, 6000);
    assert_int_equal(o.processes, 3);
    assert_string_equal(o.node_id, "n1");
    assert_int_equal(o.users, 1);
    assert_int_equal(o.local_workers, 0);
    acr_cli_free(&o);
    /* on the command line the other daemon's option is an error naming it */
    assert_int_equal(cli(&o, ACR_CLI_WORKER, err, sizeof err, "-u", "5", NULL), -EINVAL);
    assert_string_equal(err, "option --users does not apply to acrida-worker");
    acr_cli_free(&o);
    assert_int_equal(cli(&o, ACR_CLI_WORKER, err, sizeof err, "--users", "5", NULL), -EINVAL);
    assert_string_equal(err, "option --users does not apply to acrida-worker");
    acr_cli_free(&o);
    assert_int_equal(cli(&o, ACR_CLI_MASTER, err, sizeof err, "--node-id", "x", NULL), -EINVAL);
    assert_string_equal(err, "option --node-id does not apply to acrida-master");
    acr_cli_free(&o);
    /* Locust's role flags, each for its own daemon */
    assert_int_equal(cli(&o, ACR_CLI_MASTER, err, sizeof err, "--master", NULL), 0);
    acr_cli_free(&o);
    assert_int_equal(cli(&o, ACR_CLI_MASTER, err, sizeof err, "--worker", NULL), -EINVAL);
    acr_cli_free(&o);
    assert_int_equal(cli(&o, ACR_CLI_WORKER, err, sizeof err, "--worker", NULL), 0);
    acr_cli_free(&o);
    /* a key no daemon knows is still an error */
    write_file("acrida.conf", "scenario = s.lua\nno-such-key = 1\n");
    assert_int_equal(cli(&o, ACR_CLI_WORKER, err, sizeof err, NULL), -EINVAL);
    assert_string_equal(err, "unknown key 'no-such-key' in acrida.conf:2");
    acr_cli_free(&o);
}

/* --check: each occurrence is one expression (spaces kept), repeats add up, ';' separates items
 * in every source, and the command line replaces what the environment or config file gave. */
static void test_cli_check_repeatable(void **state)
{
    acr_cli_opts_t o;
    char err[256];
    (void)state;
    assert_int_equal(cli(&o, ACR_CLI_MASTER, err, sizeof err, "-f", "s.lua", "--check",
                         "p95 < 300ms", "--check=rps>10", "--check", "avg<1s; fail_ratio<1%",
                         "--headless", NULL),
                     0);
    const char *const want[] = {"p95 < 300ms", "rps>10", "avg<1s", "fail_ratio<1%"};
    assert_list(o.check, want, 4);
    acr_cli_free(&o);
    setenv("ACRIDA_CHECK", " p99 < 2s ;; rps > 5 ", 1);
    assert_int_equal(cli(&o, ACR_CLI_MASTER, err, sizeof err, "-f", "s.lua", NULL), 0);
    const char *const from_env[] = {"p99 < 2s", "rps > 5"};
    assert_list(o.check, from_env, 2);
    acr_cli_free(&o);
    assert_int_equal(
        cli(&o, ACR_CLI_MASTER, err, sizeof err, "-f", "s.lua", "--check", "max<9s", NULL), 0);
    const char *const cmdline[] = {"max<9s"};
    assert_list(o.check, cmdline, 1);
    acr_cli_free(&o);
    unsetenv("ACRIDA_CHECK");
    write_file("acrida.conf", "scenario = s.lua\ncheck = name=/a b:p95 < 1s; requests > 0\n");
    assert_int_equal(cli(&o, ACR_CLI_MASTER, err, sizeof err, NULL), 0);
    const char *const from_conf[] = {"name=/a b:p95 < 1s", "requests > 0"};
    assert_list(o.check, from_conf, 2);
    acr_cli_free(&o);
}

static void test_cli_node_id(void **state)
{
    acr_cli_opts_t o;
    char err[256], id[400];
    (void)state;
    memset(id, 'n', 300);
    id[300] = '\0';
    assert_int_equal(cli(&o, ACR_CLI_WORKER, err, sizeof err, "--node-id", id, NULL), -EINVAL);
    assert_string_equal(err, "--node-id is 300 bytes: at most 255 (a ZeroMQ routing id)");
    acr_cli_free(&o);
    id[ACR_PROTO_NODE_ID_MAX] = '\0';
    assert_int_equal(cli(&o, ACR_CLI_WORKER, err, sizeof err, "--node-id", id, NULL), 0);
    assert_int_equal(strlen(o.node_id), ACR_PROTO_NODE_ID_MAX);
    acr_cli_free(&o);
    /* --processes appends "-N" to each child's id */
    id[ACR_PROTO_NODE_ID_MAX - 2] = '\0';
    assert_int_equal(
        cli(&o, ACR_CLI_WORKER, err, sizeof err, "--node-id", id, "--processes", "12", NULL),
        -EINVAL);
    assert_string_equal(
        err,
        "--node-id is 256 bytes with the --processes suffix: at most 252 (a ZeroMQ routing id)");
    acr_cli_free(&o);
    assert_int_equal(
        cli(&o, ACR_CLI_WORKER, err, sizeof err, "--node-id", id, "--processes", "9", NULL), 0);
    acr_cli_free(&o);
    assert_int_equal(cli(&o, ACR_CLI_WORKER, err, sizeof err, "--node-id", "a\tb", NULL), -EINVAL);
    assert_string_equal(err, "--node-id must not contain control characters");
    acr_cli_free(&o);
    assert_int_equal(cli(&o, ACR_CLI_WORKER, err, sizeof err, "--node-id", "x\xff\xfe", NULL),
                     -EINVAL);
    assert_string_equal(err, "--node-id must be valid UTF-8");
    acr_cli_free(&o);
    assert_int_equal(cli(&o, ACR_CLI_WORKER, err, sizeof err, "--node-id",
                         "n\xc3\xb6"
                         "de",
                         NULL),
                     0);
    acr_cli_free(&o);
    assert_int_equal(cli(&o, ACR_CLI_WORKER, err, sizeof err, "--master-host", "", NULL), -EINVAL);
    assert_string_equal(err, "--master-host must not be empty");
    acr_cli_free(&o);
    assert_int_equal(cli(&o, ACR_CLI_WORKER, err, sizeof err, "--master-host", "10.0.0.1:99", NULL),
                     -EINVAL);
    assert_string_equal(err, "--master-host '10.0.0.1:99': expected a host name or IPv4 address "
                             "(the port goes in --master-port)");
    acr_cli_free(&o);
    setenv("ACRIDA_NODE_ID", "", 1); /* empty = unset: generated */
    assert_int_equal(cli(&o, ACR_CLI_WORKER, err, sizeof err, NULL), 0);
    assert_null(o.node_id);
    acr_cli_free(&o);
}

static void test_cli_master_checks(void **state)
{
    acr_cli_opts_t o;
    char err[256];
    (void)state;
    assert_int_equal(
        cli(&o, ACR_CLI_MASTER, err, sizeof err, "-f", "s.lua", "-H", "127.0.0.1:8080", NULL),
        -EINVAL);
    assert_string_equal(err, "--host '127.0.0.1:8080' has no scheme: use --host "
                             "http://127.0.0.1:8080 (or https://127.0.0.1:8080)");
    acr_cli_free(&o);
    /* a rate so small that the ramp's wait would overflow; the slowest one accepted */
    assert_int_equal(cli(&o, ACR_CLI_MASTER, err, sizeof err, "-f", "s.lua", "-r", "1e-300", NULL),
                     -EINVAL);
    assert_string_equal(err, "--spawn-rate must be at least 1e-06 users/s");
    acr_cli_free(&o);
    assert_int_equal(cli(&o, ACR_CLI_MASTER, err, sizeof err, "-f", "s.lua", "-r", "1e-6", NULL),
                     0);
    acr_cli_free(&o);
    static const char *const bad_hosts[][2] = {
        {"http://127.0.0.1:99999", "--host 'http://127.0.0.1:99999': the port must be a number "
                                   "from 1 to 65535"},
        {"http://h:abc", "--host 'http://h:abc': the port must be a number from 1 to 65535"},
        {"http://h:", "--host 'http://h:': the port must be a number from 1 to 65535"},
        {"http://[::1", "--host 'http://[::1': unterminated [IPv6 address]"},
        {"http://[::1]x", "--host 'http://[::1]x': bad host"},
        {"http://a\nb", "--host must not contain spaces or control characters"},
        {"http://u:p@h:1", "--host 'http://u:p@h:1': credentials in the URL are not supported"},
        {"http://:80", "--host 'http://:80' has no host name: e.g. --host http://127.0.0.1:8080"},
    };
    for (size_t i = 0; i < sizeof bad_hosts / sizeof *bad_hosts; i++) {
        assert_int_equal(
            cli(&o, ACR_CLI_MASTER, err, sizeof err, "-f", "s.lua", "-H", bad_hosts[i][0], NULL),
            -EINVAL);
        assert_string_equal(err, bad_hosts[i][1]);
        acr_cli_free(&o);
    }
    assert_int_equal(
        cli(&o, ACR_CLI_MASTER, err, sizeof err, "-f", "s.lua", "-H", "http://[::1]:8080/", NULL),
        0);
    acr_cli_free(&o);
    assert_int_equal(cli(&o, ACR_CLI_MASTER, err, sizeof err, "-f", "s.lua", "-H",
                         "HTTPS://h.example:8443/base", "--local-workers", "auto", NULL),
                     0);
    assert_int_equal(o.local_workers, acr_cpu_count());
    assert_int_equal(o.expect_workers, acr_cpu_count());
    acr_cli_free(&o);
    assert_int_equal(cli(&o, ACR_CLI_MASTER, err, sizeof err, "-f", "s.lua", "--local-workers", "1",
                         "--master-bind-host", "::1", NULL),
                     -EINVAL);
    assert_string_equal(err,
                        "--local-workers connect over IPv4: use an IPv4 --master-bind-host (or *)");
    acr_cli_free(&o);
    assert_int_equal(cli(&o, ACR_CLI_MASTER, err, sizeof err, "-f", "s.lua", NULL), 0);
    assert_int_equal(o.expect_workers, 1);
    acr_cli_free(&o);
    assert_int_equal(
        cli(&o, ACR_CLI_MASTER, err, sizeof err, "-f", "s.lua", "--local-workers", "many", NULL),
        -EINVAL);
    assert_string_equal(err,
                        "invalid value 'many' for --local-workers: expected a number or 'auto'");
    acr_cli_free(&o);
    assert_int_equal(cli(&o, ACR_CLI_MASTER, err, sizeof err, "-f", "s.lua", "-L", "LOUD", NULL),
                     -EINVAL);
    assert_string_equal(
        err, "--loglevel: invalid level 'LOUD' (expected DEBUG, INFO, WARNING or ERROR)");
    acr_cli_free(&o);
    assert_int_equal(cli(&o, ACR_CLI_WORKER, err, sizeof err, "--processes", "0", NULL), -EINVAL);
    assert_string_equal(err, "invalid value '0' for --processes: must be >= 1");
    acr_cli_free(&o);
}

static void test_cli_help(void **state)
{
    acr_cli_opts_t o;
    char err[256], out[16384];
    (void)state;
    capture_begin();
    int rc = cli(&o, ACR_CLI_MASTER, err, sizeof err, "--help", NULL);
    capture_end(out, sizeof out);
    acr_cli_free(&o);
    assert_int_equal(rc, ACR_OPTS_EXIT);
    assert_non_null(strstr(out, "Lua scenario file (required)"));
    assert_non_null(strstr(out, "--local-workers N|auto"));
    assert_null(strstr(out, "--node-id"));
    assert_null(strstr(out, "--processes"));
    assert_null(strstr(out, "the worker runs the one the master sends"));
    capture_begin();
    rc = cli(&o, ACR_CLI_WORKER, err, sizeof err, "--help", NULL);
    capture_end(out, sizeof out);
    acr_cli_free(&o);
    assert_int_equal(rc, ACR_OPTS_EXIT);
    assert_non_null(strstr(out, "the worker runs the one the master sends"));
    assert_non_null(strstr(out, "--processes N|auto"));
    assert_null(strstr(out, "--users"));
    assert_null(strstr(out, "Lua scenario file (required)"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_and_short_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alias, setup, teardown),
        cmocka_unit_test_setup_teardown(test_strlist, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_default_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_shared_config_and_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_check_repeatable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_node_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_master_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_help, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
