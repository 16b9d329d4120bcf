/*
 * acrida-master's process: the context main.c owns (acr_master_t: the loop, the options, the
 * control core and the front-end on it, the local workers) and the entry points of the files
 * that are not the core. The control core (master/core/core.h) runs the workers and the test;
 * the headless console (headless.c) is one of its front-ends, local.c starts --local-workers,
 * report.c writes the outputs. Error convention: 0 or a negative errno; human-readable detail
 * goes to the log.
 */
#ifndef ACR_MASTER_H
#define ACR_MASTER_H

#include "common/cli.h"
#include "master/core/core.h"

#include <stdbool.h>
#include <uv.h>

/** acrida-master's exit codes (docs/cli.md). When several apply, the first in this order wins:
 *  USAGE, FATAL, INCOMPLETE, then --exit-code-on-error for failures, then OK. */
typedef enum {
    ACR_EXIT_OK = 0,
    ACR_EXIT_FATAL = 1,      /**< no usable run: workers never came, scenario or port failed */
    ACR_EXIT_USAGE = 2,      /**< bad option or config value */
    ACR_EXIT_INCOMPLETE = 4, /**< report intervals lost with dead workers (--allow-lost-reports) */
} acr_master_exit_t;

typedef struct acr_local acr_local_t;
typedef struct acr_headless acr_headless_t;

/** What is process-wide. One per process, owned by main.c. */
typedef struct acr_master {
    uv_loop_t *loop;
    acr_cli_opts_t *opts;
    acr_core_t *core;
    acr_headless_t *headless;
    acr_local_t *local;
    int bound_port;
    bool shutting_down;
    int exit_code;
} acr_master_t;

/* headless.c */
/** Starts the headless console on m->core: it subscribes to the core, waits for
 *  --expect-workers, runs the test and ends the process with acr__master_shutdown. Returns 0 or
 *  a negative errno; *@out (owned, acr__headless_free after the loop closed its handles). */
int acr__headless_start(acr_master_t *m, acr_headless_t **out);
/** Closes the console's timers and signal handlers (the loop then closes them). */
void acr__headless_close(acr_headless_t *h);
void acr__headless_free(acr_headless_t *h);

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
void acr__local_free(acr_master_t *m);

/** Begins the shutdown (main.c): closes the core, the front-end and signals and stops the local
 *  workers, so the loop can end. */
void acr__master_shutdown(acr_master_t *m);

#endif
