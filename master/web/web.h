/*
 * Web mode, the master's second front-end (the headless console being the first): the HTTP
 * server (master/web/httpd.h) on --web-host/--web-port with --web-auth and --tls-cert/--tls-key,
 * every request answered by the API's routes (master/web/routes.h) over the control core and the
 * chart history. Tests start and stop from the API (POST /swarm, /stop), any number of them in a
 * row, the workers staying connected in between; --autostart starts one at once with -u/-r/-t
 * (the same wait for --expect-workers as --headless, master/headless.c) and --autoquit S ends the
 * process S seconds after a test ends. Without --autoquit the process runs until SIGINT/SIGTERM
 * (master/finish.c). Error convention: 0 or a negative errno; detail goes to the log.
 */
#ifndef ACR_MASTER_WEB_H
#define ACR_MASTER_WEB_H

#include "master/master.h"

/** Starts the HTTP server and sets m->web_port; warns when the dashboard is reachable from the
 *  network without --web-auth. Returns 0 or a negative errno (logged); *@out (owned,
 *  acr__web_free after the loop closed its handles). */
int acr__web_start(acr_master_t *m, acr_web_t **out);
/** Web mode once the workers can come (after --local-workers started): logs the dashboard's URL
 *  and begins --autostart. Returns 0 or a negative errno. */
int acr__web_run(acr_web_t *w);
/** The target host of the last test started from the API; "" = --host. NULL for NULL. */
const char *acr__web_test_host(const acr_web_t *w);
/** Closes the server and the --autoquit timer (the loop then closes their handles). NULL is
 *  fine. */
void acr__web_close(acr_web_t *w);
void acr__web_free(acr_web_t *w);

#endif
