/*
 * acrida-target: the demo/test HTTP server (docs/target.md). Options, listener, optional TLS
 * context, --port-file, signals. Connections live in conn.c, responses in routes.c.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "common/log.h"
#include "common/opts.h"
#include "tests/target/target.h"

typedef struct tgt_opts {
    char *host;
    int port;
    char *port_file;
    char *tls_cert;
    char *tls_key;
    char *loglevel;
    char *logfile;
} tgt_opts_t;

static const acr_opt_def_t opt_defs[] = {
    {"host", 0, NULL, ACR_OPT_STR, offsetof(tgt_opts_t, host), 0, 0, "ADDR",
     "address to listen on (default 127.0.0.1)", 0},
    {"port", 'p', NULL, ACR_OPT_INT, offsetof(tgt_opts_t, port), 0, 65535, "PORT",
     "port to listen on (default 8080; 0 = ephemeral)", 0},
    {"port-file", 0, NULL, ACR_OPT_STR, offsetof(tgt_opts_t, port_file), 0, 0, "FILE",
     "after binding, write \"port=N\" to FILE atomically", 0},
    {"tls-cert", 0, NULL, ACR_OPT_STR, offsetof(tgt_opts_t, tls_cert), 0, 0, "FILE",
     "serve HTTPS with this PEM certificate chain (needs --tls-key)", 0},
    {"tls-key", 0, NULL, ACR_OPT_STR, offsetof(tgt_opts_t, tls_key), 0, 0, "FILE",
     "PEM private key for --tls-cert", 0},
    {"loglevel", 'L', NULL, ACR_OPT_STR, offsetof(tgt_opts_t, loglevel), 0, 0, "LEVEL",
     "DEBUG, INFO (default), WARNING, ERROR", 0},
    {"logfile", 0, NULL, ACR_OPT_STR, offsetof(tgt_opts_t, logfile), 0, 0, "FILE",
     "also append the log to FILE", 0},
};

static const acr_opts_spec_t opt_spec = {
    .prog = "acrida-target",
    .usage = "[options]",
    .env_prefix = "ACRIDA_TARGET_",
    .defs = opt_defs,
    .ndefs = sizeof(opt_defs) / sizeof(opt_defs[0]),
    .no_default_config = true, /* ./acrida.conf belongs to the daemons */
};

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    static const unsigned char ours[] = "\x08http/1.1";
    (void)ssl;
    (void)arg;
    if (SSL_select_next_proto((unsigned char **)out, outlen, ours, sizeof(ours) - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *tls_context(const char *cert, const char *key)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    char msg[256];

    if (!ctx) goto fail;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) goto fail;
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) goto fail;
    if (SSL_CTX_check_private_key(ctx) != 1) goto fail;
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    return ctx;
fail:
    ERR_error_string_n(ERR_get_error(), msg, sizeof(msg));
    ACR_ERROR("TLS setup with --tls-cert %s --tls-key %s failed: %s", cert, key, msg);
    SSL_CTX_free(ctx);
    return NULL;
}

static void on_connection(uv_stream_t *listener, int status)
{
    tgt_server_t *srv = listener->data;
    if (status < 0) {
        ACR_WARN("listener error: %s", uv_strerror(status));
        return;
    }
    acr__tgt_accept(srv);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    tgt_server_t *srv = sig->data;
    ACR_INFO("signal %d: shutting down", signum);
    srv->stopping = true;
    uv_close((uv_handle_t *)&srv->listener, NULL);
    uv_close((uv_handle_t *)&srv->sigterm, NULL);
    uv_close((uv_handle_t *)&srv->sigint, NULL);
    /* closing a connection only schedules its free, so the list stays walkable */
    for (tgt_conn_t *c = srv->conns; c; c = c->next) acr__tgt_close(c, false);
}

static int listen_on(tgt_server_t *srv, const char *host, int port, int *bound)
{
    struct sockaddr_storage ss;
    struct sockaddr_storage name;
    int namelen = sizeof(name), rc;

    if (strchr(host, ':'))
        rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss);
    else
        rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&ss);
    if (rc < 0) {
        ACR_ERROR("invalid --host '%s': %s", host, uv_strerror(rc));
        return rc;
    }
    uv_tcp_init(srv->loop, &srv->listener);
    srv->listener.data = srv;
    rc = uv_tcp_bind(&srv->listener, (struct sockaddr *)&ss, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&srv->listener, 1024, on_connection);
    if (rc == 0) rc = uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&name, &namelen);
    if (rc < 0) {
        ACR_ERROR("cannot listen on %s:%d: %s", host, port, uv_strerror(rc));
        uv_close((uv_handle_t *)&srv->listener, NULL);
        return rc;
    }
    *bound = ntohs(name.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&name)->sin6_port
                                              : ((struct sockaddr_in *)&name)->sin_port);
    return 0;
}

int main(int argc, char **argv)
{
    tgt_opts_t o = {.host = "127.0.0.1", .port = 8080, .loglevel = "INFO"};
    tgt_server_t *srv = NULL;
    acr_log_level_t level;
    char err[512];
    int rc, port = 0, exit_code = 1;

    rc = acr_opts_parse(&opt_spec, &o, argc, argv, err, sizeof(err));
    if (rc != 0) {
        if (rc != ACR_OPTS_EXIT) fprintf(stderr, "acrida-target: %s\n", err);
        acr_opts_free(&opt_spec, &o);
        return rc == ACR_OPTS_EXIT ? 0 : 2;
    }
    if (acr_log_parse_level(o.loglevel, &level) < 0) {
        fprintf(stderr,
                "acrida-target: invalid value '%s' for --loglevel: expected DEBUG, INFO, "
                "WARNING or ERROR\n",
                o.loglevel);
        exit_code = 2;
        goto out;
    }
    if (!o.tls_cert != !o.tls_key) {
        fprintf(stderr, "acrida-target: --tls-cert and --tls-key go together\n");
        exit_code = 2;
        goto out;
    }
    if ((rc = acr_log_setup(level, "target", o.logfile)) < 0) {
        fprintf(stderr, "acrida-target: cannot open --logfile %s: %s\n", o.logfile, strerror(-rc));
        exit_code = 2;
        goto out;
    }
    signal(SIGPIPE, SIG_IGN);

    srv = calloc(1, sizeof(*srv));
    if (!srv || acr__tgt_routes_init(srv) < 0) {
        ACR_ERROR("out of memory");
        goto out;
    }
    srv->loop = uv_default_loop();
    if (o.tls_cert && !(srv->ssl_ctx = tls_context(o.tls_cert, o.tls_key))) goto out;
    if (listen_on(srv, o.host, o.port, &port) < 0) goto out_loop;
    uv_signal_init(srv->loop, &srv->sigterm);
    uv_signal_init(srv->loop, &srv->sigint);
    srv->sigterm.data = srv->sigint.data = srv;
    uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
    uv_signal_start(&srv->sigint, on_signal, SIGINT);
    if (o.port_file) {
        char line[32];
        int n = snprintf(line, sizeof(line), "port=%d\n", port);
        if ((rc = acr_write_file_atomic(o.port_file, line, (size_t)n)) < 0) {
            ACR_ERROR("cannot write --port-file %s: %s", o.port_file, strerror(-rc));
            uv_close((uv_handle_t *)&srv->listener, NULL);
            uv_close((uv_handle_t *)&srv->sigterm, NULL);
            uv_close((uv_handle_t *)&srv->sigint, NULL);
            goto out_loop;
        }
    }
    ACR_INFO("listening on %s://%s:%d", srv->ssl_ctx ? "https" : "http", o.host, port);
    uv_run(srv->loop, UV_RUN_DEFAULT);
    fprintf(stderr, "acrida-target: served %llu requests\n", (unsigned long long)srv->cnt.served);
    exit_code = 0;
out_loop:
    uv_run(srv->loop, UV_RUN_DEFAULT); /* let pending closes finish */
    uv_loop_close(srv->loop);
out:
    if (srv) {
        SSL_CTX_free(srv->ssl_ctx);
        acr__tgt_routes_free(srv);
        free(srv);
    }
    acr_log_close();
    acr_opts_free(&opt_spec, &o);
    return exit_code;
}
