/*
 * Web mode (master/web/web.h): the HTTP server with the API's routes over the control core, the
 * --autostart and --autoquit of Locust's web mode, and the warnings of a dashboard reachable from
 * the network. Each test's end writes its files (master/finish.c); the process ends on
 * --autoquit or a signal.
 */
#include "master/web/web.h"

#include "common/log.h"
#include "common/util.h"
#include "master/lua_rt.h"
#include "master/web/httpd.h"
#include "master/web/routes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct acr_web {
    acr_master_t *m;
    acr_httpd_t *httpd;
    acr_routes_t routes;
    uv_timer_t autoquit_timer;
    bool closed;
};

static void handle(const acr_httpd_req_t *req, acr_httpd_resp_t *resp, void *ud)
{
    acr_web_t *w = ud;
    acr_routes_handle(&w->routes, req, resp);
}

static void autoquit_cb(uv_timer_t *t)
{
    acr_web_t *w = acr_container_of(t, acr_web_t, autoquit_timer);
    ACR_INFO("--autoquit time reached, shutting down");
    acr__finish_request_quit(w->m);
}

static void on_core_event(acr_core_t *c, const acr_core_event_t *ev, void *ud)
{
    acr_web_t *w = ud;
    acr_routes_core_listener(c, ev, &w->routes);
    if (ev->type != ACR_CORE_EV_STATE || w->closed) return;
    if (ev->to == ACR_RUN_SPAWNING) {
        uv_timer_stop(&w->autoquit_timer); /* a new test: no quit after the last one */
    } else if (ev->to == ACR_RUN_STOPPED) {
        int s = w->m->opts->autoquit;
        if (s >= 0) {
            ACR_INFO("The test has ended: quitting in %d s (--autoquit)", s);
            uv_timer_start(&w->autoquit_timer, autoquit_cb, (uint64_t)s * 1000, 0);
        }
    }
}

static bool wildcard(const char *host)
{
    return !*host || strcmp(host, "*") == 0 || strcmp(host, "0.0.0.0") == 0 ||
           strcmp(host, "::") == 0;
}

/* The dashboard's URL for the log: "http://127.0.0.1:8089", "https://[::1]:8443". */
static void dashboard_url(const acr_web_t *w, char *buf, size_t len)
{
    const acr_cli_opts_t *o = w->m->opts;
    const char *host = o->web_host ? o->web_host : "";
    if (!*host || strcmp(host, "*") == 0) host = "0.0.0.0";
    bool v6 = strchr(host, ':') != NULL;
    snprintf(buf, len, "%s://%s%s%s:%d", o->tls_cert && *o->tls_cert ? "https" : "http",
             v6 ? "[" : "", host, v6 ? "]" : "", w->m->web_port);
}

int acr__web_start(acr_master_t *m, acr_web_t **out)
{
    const acr_cli_opts_t *o = m->opts;
    acr_web_t *w = calloc(1, sizeof(*w));
    *out = w;
    if (!w) return -ENOMEM;
    w->m = m;
    w->routes = (acr_routes_t){
        .core = m->core,
        .history = m->history,
        .opts = o,
        .classes = m->classes,
        .nclasses = m->nclasses,
        .shape = m->shape,
        .pools = acr_lua_rt_pools(m->lua),
        .users = o->users,
        .spawn_rate = o->spawn_rate,
    };
    int rc = uv_timer_init(m->loop, &w->autoquit_timer);
    if (rc == 0) rc = acr_core_subscribe(m->core, on_core_event, w);
    if (rc < 0) return rc;
    const char *host = o->web_host ? o->web_host : "";
    acr_httpd_config_t cfg = {
        .host = host,
        .port = o->web_port,
        .auth = o->web_auth && *o->web_auth ? o->web_auth : NULL,
        .tls_cert = o->tls_cert && *o->tls_cert ? o->tls_cert : NULL,
        .tls_key = o->tls_key && *o->tls_key ? o->tls_key : NULL,
        .handler = handle,
        .ud = w,
    };
    char err[512] = "";
    rc = acr_httpd_start(m->loop, &cfg, &w->httpd, &m->web_port, err, sizeof err);
    if (rc < 0) {
        ACR_ERROR("The web interface (%s:%d) could not start: %s", *host ? host : "*", o->web_port,
                  *err ? err : strerror(-rc));
        return rc;
    }
    if (acr_host_is_loopback(host)) return 0;
    if (!cfg.auth)
        ACR_WARN("*** the dashboard on %s:%d is reachable from the network without --web-auth: "
                 "anyone who can reach it can start, stop and read tests ***",
                 wildcard(host) ? "all interfaces" : host, m->web_port);
    else if (!cfg.tls_cert)
        ACR_WARN("the dashboard on %s:%d is reachable from the network without --tls-cert: the "
                 "--web-auth password crosses the network unencrypted",
                 wildcard(host) ? "all interfaces" : host, m->web_port);
    return 0;
}

int acr__web_run(acr_web_t *w)
{
    char url[600];
    dashboard_url(w, url, sizeof url);
    ACR_INFO("Starting web interface at %s", url);
    if (!w->m->opts->autostart) return 0;
    return acr__headless_start(w->m, &w->m->headless);
}

const char *acr__web_test_host(const acr_web_t *w)
{
    return w ? w->routes.host : NULL;
}

void acr__web_close(acr_web_t *w)
{
    if (!w || w->closed) return;
    w->closed = true;
    if (w->httpd) acr_httpd_close(w->httpd);
    if (w->autoquit_timer.loop && !uv_is_closing((uv_handle_t *)&w->autoquit_timer))
        uv_close((uv_handle_t *)&w->autoquit_timer, NULL);
}

void acr__web_free(acr_web_t *w)
{
    if (!w) return;
    acr_httpd_free(w->httpd);
    free(w);
}
