/*
 * acrida-master's process: the context main.c owns (acr_master_t: the loop, the options, the
 * control core, the chart history, the front-end on the core, the end of the process, the local
 * workers) and the entry points of the files that are not the core.
 *
 * The control core (master/core/core.h) runs the workers and the tests. On top of it:
 *   headless.c  the automatic start: waits for --expect-workers, starts the test with -u/-r/-t,
 *               prints the table every 2 s (--headless) and, with --headless, ends the process
 *               when the test ends; web mode's --autostart uses the same wait and start;
 *   web/web.c   web mode: the HTTP server (web/httpd.h) with the API's routes (web/routes.h),
 *               any number of tests in a row, --autostart and --autoquit;
 *   finish.c    what both modes share: SIGINT/SIGTERM, the history CSV, the outputs of each test
 *               in web mode and the final outputs (tables, CSV files, --json, --html, --check
 *               lines) and the exit code;
 *   local.c     --local-workers; report.c, html.c the writers.
 * Error convention: 0 or a negative errno; human-readable detail goes to the log.
 */
#ifndef ACR_MASTER_H
#define ACR_MASTER_H

#include "common/cli.h"
#include "common/keys.h"
#include "common/scenario.h"
#include "master/core/core.h"

#include <stdbool.h>
#include <uv.h>

/** acrida-master's exit codes (docs/cli.md). When several apply, the first in this order wins:
 *  USAGE, FATAL, INCOMPLETE, CHECK, then --exit-code-on-error for failures, then OK. */
typedef enum {
    ACR_EXIT_OK = 0,
    ACR_EXIT_FATAL = 1,      /**< no usable run: workers never came, scenario or port failed, or a
                              *   user class stalled a worker (quarantined) */
    ACR_EXIT_USAGE = 2,      /**< bad option or config value */
    ACR_EXIT_CHECK = 3,      /**< a --check threshold failed */
    ACR_EXIT_INCOMPLETE = 4, /**< report intervals lost with dead workers (--allow-lost-reports) */
} acr_master_exit_t;

typedef struct acr_local acr_local_t;
typedef struct acr_headless acr_headless_t;
typedef struct acr_web acr_web_t; /**< master/web/web.h */
typedef struct acr_finish acr_finish_t;
typedef struct acr_history acr_history_t;
typedef struct acr_check acr_check_t;
typedef struct acr_lua_rt acr_lua_rt_t; /**< master/lua_rt.h */
typedef struct acr_shape acr_shape_t;   /**< master/shape.h */

/** What is process-wide. One per process, owned by main.c. */
typedef struct acr_master {
    uv_loop_t *loop;
    acr_cli_opts_t *opts;
    const acr_user_class_t *classes; /**< the scenario's classes */
    size_t nclasses;
    const acr_check_t *checks; /**< --check, parsed before anything started; NULL = none */
    acr_core_t *core;
    acr_lua_rt_t *lua; /**< the scenario's runtime on the master (events, messages) */
    const struct acr_master_bundle *bundle; /**< what is shipped to workers (master/bundle.h) */
    acr_shape_t *shape; /**< the scenario's load shape; NULL = none (-u/-r, /swarm's fields) */
    acr_history_t *history;
    acr_finish_t *finish;
    acr_headless_t *headless; /**< --headless, or web mode's --autostart */
    acr_web_t *web;           /**< web mode */
    acr_local_t *local;
    const acr_keys_t *keys;   /**< --cluster-key, loaded; NULL = none (no CURVE) */
    int bound_port, web_port; /**< web_port 0 in headless mode */
    bool shutting_down;
    bool gave_up;      /**< no test ran: the workers never came (no tables, exit 1) */
    bool start_failed; /**< the core refused the automatic start (exit 1) */
    bool workers_gone; /**< --headless: the test ended because no worker remained (exit 1) */
    int exit_code;
} acr_master_t;

/* headless.c */
/** Starts the automatic start on m->core: it waits for --expect-workers ready workers (giving up
 *  after --expect-workers-max-wait, or when a local worker exits first: exit 1), then starts the
 *  test with -u/-r/-t. With --headless it also prints the table every 2 s (unless
 *  --only-summary) and ends the process when the test is stopped (acr__finish_request_quit).
 *  Returns 0 or a negative errno; *@out (owned, acr__headless_free after the loop closed its
 *  handles). */
int acr__headless_start(acr_master_t *m, acr_headless_t **out);
/** Whether @h is still waiting for workers before its start (false for NULL). */
bool acr__headless_waiting(const acr_headless_t *h);
/** Closes the console's timers (the loop then closes them). NULL is fine. */
void acr__headless_close(acr_headless_t *h);
void acr__headless_free(acr_headless_t *h);

/* finish.c */
/** Subscribes to m->core, handles SIGINT/SIGTERM (the first stops a test under way and ends the
 *  process once it is stopped; a second one skips the waits), appends a --csv history row every
 *  second from now on, and in web mode writes the CSV files and the --html report each time a
 *  test is stopped. Returns 0 or a negative errno; *@out as for acr__headless_start. */
int acr__finish_start(acr_master_t *m, acr_finish_t **out);
/** Ends the process: stops a test under way, sends `quit` to the workers once the run is stopped
 *  (or at once), then writes the final outputs, sets m->exit_code and calls
 *  acr__master_shutdown. Calls after the first do nothing. */
void acr__finish_request_quit(acr_master_t *m);
void acr__finish_close(acr_finish_t *f);
void acr__finish_free(acr_finish_t *f);

/* local.c */
/** Starts @n local workers for the bound port. Returns 0 or a negative errno (logged). */
int acr__local_start(acr_master_t *m, int n);
/** Lets the live local workers exit on their own (2 s), then SIGTERM, then SIGKILL after
 *  @grace_s; handles close when they exit. */
void acr__local_stop(acr_master_t *m, double grace_s);
size_t acr__local_alive(const acr_master_t *m);
/** The address local workers connect to for --master-bind-host @bind_host: loopback for a
 *  wildcard bind, else the bound address itself (static or @bind_host). */
const char *acr__local_connect_host(const char *bind_host);
/** How many local workers have exited (0 without --local-workers). */
size_t acr__local_exited(const acr_master_t *m);
/** How many local workers were ended by a signal the master did not send (a crash: logged as an
 *  ERROR naming the signal; the run then exits 1). */
size_t acr__local_crashed(const acr_master_t *m);
void acr__local_free(acr_master_t *m);

/** Begins the shutdown (main.c): closes the core, the front-ends, the history, the signals and
 *  the server, and stops the local workers, so the loop can end. */
void acr__master_shutdown(acr_master_t *m);

#endif
