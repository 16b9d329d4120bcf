/*
 * acrida's options: the one table both daemons parse (common/opts.h does the parsing), each option
 * marked with the daemons that take it, and the checks that need more than a type and a range
 * (docs/cli.md lists them all). A shared acrida.conf and the ACRIDA_* environment may hold both
 * daemons' options: each daemon takes its own and skips the other's, while on the command line the
 * other daemon's option is an error naming it.
 *
 * Error convention: acr_cli_parse returns 0, ACR_OPTS_EXIT (help or version printed: exit 0) or
 * -EINVAL with a message naming the option in @err (the daemon exits 2).
 */
#ifndef ACR_CLI_H
#define ACR_CLI_H

#include "common/opts.h"

#include <stdbool.h>
#include <stddef.h>

#define ACR_CLI_MAX_TAGS 100 /**< per --tags / --exclude-tags */
#define ACR_CLI_TAG_MAX 200  /**< bytes per tag */

/** The daemon parsing; also the role bits of the option table. */
typedef enum {
    ACR_CLI_MASTER = 1u << 0,
    ACR_CLI_WORKER = 1u << 1,
} acr_cli_role_t;

/** Every option of both daemons. Strings and lists are owned: acr_cli_free(). A daemon reads only
 *  its own fields; the other daemon's keep their defaults. */
/** The slowest spawn rate accepted (-r and /swarm; one user per ~11.6 days): the ramp waits
 *  1/rate seconds per step, and a rate like 1e-300 overflowed that wait into an instant ramp. */
#define ACR_MIN_SPAWN_RATE 1e-6

#define ACR_CLI_BUNDLE_MAX (64 << 20)                       /**< default --max-bundle-size */
#define ACR_CLI_MASTER_TIMEOUT_S 10.0                       /**< default --master-timeout */
#define ACR_CLI_STALL_TIMEOUT_S 10.0                        /**< default --stall-timeout */
#define ACR_CLI_LUA_MEMORY_MIN ((size_t)16 << 20)           /**< smallest --max-lua-memory */
#define ACR_CLI_LUA_MEMORY_MAX ((size_t)1 << 40)            /**< largest --max-lua-memory */
#define ACR_CLI_LUA_MEMORY_DEFAULT_MIN ((size_t)64 << 20)   /**< the default's lower bound */
#define ACR_CLI_LUA_MEMORY_DEFAULT_MAX ((size_t)4096 << 20) /**< the default's upper bound */

typedef struct acr_cli_opts {
    /* both */
    char *scenario;
    char *loglevel; /**< "DEBUG", "INFO", "WARNING" or "ERROR" (checked) */
    char *logfile;
    bool insecure;     /**< the worker's; the master passes it on to local workers */
    int max_body_size; /**< bytes; 0 = not given (the worker's default) */
    /** --max-lua-memory as given (the master passes it on to local workers); NULL = not given */
    char *max_lua_memory;
    size_t lua_memory; /**< its value in bytes; the worker's default when not given */
    bool locust_role;  /**< Locust's --master / --worker: accepted, no effect */
    char *cluster_key; /**< NULL or the cluster key file (common/keys.h): CURVE on the port */
    /* acrida-master */
    char *host; /**< NULL or an http:// or https:// URL with a host (checked) */
    int users;
    double spawn_rate;
    double run_time; /**< seconds; < 0 = until stopped */
    bool headless, autostart;
    int autoquit;
    char *web_host;
    int web_port;
    char *web_auth, *tls_cert, *tls_key;
    char *master_bind_host;
    int master_bind_port;
    int expect_workers; /**< resolved: --local-workers when not given, else 1 */
    double expect_workers_max_wait;
    int local_workers; /**< "auto" resolved to the number of CPUs */
    char *csv;
    bool csv_full_history;
    char *html;
    bool json, only_summary, reset_stats;
    double stop_timeout; /**< seconds; < 0 = not set (nil on the wire) */
    int exit_code_on_error;
    char **tags, **exclude_tags;
    char *port_file;
    char **check;
    bool allow_lost_reports;  /**< exit as if complete when report intervals were lost */
    char *scenario_dir;       /**< NULL or the directory shipped with the scenario (#10) */
    int max_bundle_size;      /**< bytes of the scenario bundle (default ACR_CLI_BUNDLE_MAX) */
    char *gen_key;            /**< --gen-key FILE: write a new cluster key and exit */
    int max_entry_names;      /**< distinct request names kept; later ones fold into [other] */
    int max_workers;          /**< registered workers at most */
    double registration_rate; /**< client_ready frames accepted per second */
    /* acrida-worker */
    char *master_host;
    int master_port;
    int processes; /**< 0 = no fork; "auto" resolved to the number of CPUs */
    char *node_id; /**< NULL or "" = generated; else 1..ACR_PROTO_NODE_ID_MAX printable bytes, the
                    *   "-N" suffix of --processes included (checked) */
    bool trust_master;     /**< run a scenario from a master reached without key over the network */
    bool exit_on_quit;     /**< Locust's one-shot worker: exit on the master's quit */
    double master_timeout; /**< seconds without a word from the master before users stop */
    double stall_timeout;  /**< seconds of Lua without yielding before the watchdog acts; 0 off */
} acr_cli_opts_t;

/**
 * Sets @o to the defaults, parses the command line, environment and config file for @role, and
 * checks the values. Returns 0, ACR_OPTS_EXIT or -EINVAL (message in @err, e.g. "--node-id is 300
 * bytes: at most 255"). Free @o with acr_cli_free() whatever it returns.
 */
int acr_cli_parse(acr_cli_opts_t *o, acr_cli_role_t role, int argc, char **argv, char *err,
                  size_t errlen);

/** The default --max-lua-memory: physical RAM / (2 x online cores), within 64 MiB .. 4 GiB. */
size_t acr_cli_default_lua_memory(void);

/** Parses a size: a whole number of bytes with an optional binary suffix (K, M, G, T, with or
 *  without B or iB, any case: "64MB" = "64MiB" = 64 x 2^20). Returns 0 or -EINVAL. */
int acr_cli_parse_size(const char *s, size_t *out);

/** Frees the strings and lists in @o. */
void acr_cli_free(acr_cli_opts_t *o);

/** Checks a target URL as -H and /swarm's host take it: http:// or https://, a host, ASCII
 *  without spaces or control characters, no credentials, a port from 1 to 65535. @what names it
 *  in the message ("--host", whose messages suggest the corrected command, or "host"); @shown is
 *  the URL as the message shows it (NULL: @url). Returns 0 or -EINVAL with the message in @err. */
int acr_cli_check_url(const char *url, const char *what, const char *shown, char *err,
                      size_t errlen);

#endif
