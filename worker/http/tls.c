/*
 * The HTTP client's TLS layer, the only file that touches OpenSSL. One client owns two SSL_CTX
 * (verified: SSL_VERIFY_PEER + system store + optional CA file; insecure: SSL_VERIFY_NONE) and a
 * session cache keyed by host:port:mode that resumes sessions across the client's connections.
 *
 * libuv owns the socket. Each SSL uses one custom in-memory BIO (the memory-BIO pattern without
 * a copy): reads come straight from the bytes of the current uv_read callback (c->tls_in), writes
 * are appended to the connection's write queue c->wq[c->wq_fill], which the connection flushes
 * with uv_write after every SSL call. EOF is reported to OpenSSL once the socket hit EOF; with
 * SSL_OP_IGNORE_UNEXPECTED_EOF a TCP close without close_notify is a plain end of stream.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "worker/http/http_internal.h"

#define NBUCKETS 64

typedef struct sess_entry {
    struct sess_entry *next;
    SSL_SESSION *sess;
    char key[];
} sess_entry_t;

struct acr__http_tls {
    SSL_CTX *verified, *insecure;
    BIO_METHOD *meth;
    unsigned nsess;
    sess_entry_t *buckets[NBUCKETS];
};

/* ---- the BIO ---- */

static int bio_write(BIO *b, const char *in, int inl)
{
    acr__http_conn_t *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (inl <= 0) return 0;
    if (acr_buf_append_counted(&c->wq[c->wq_fill], in, (size_t)inl, &c->s->c->stats.buf_grows) < 0)
        return -1;
    return inl;
}

static int bio_read(BIO *b, char *out, int outl)
{
    acr__http_conn_t *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (outl <= 0) return 0;
    if (c->tls_in_len == 0) {
        if (c->tls_eof) return 0;
        BIO_set_retry_read(b);
        return -1;
    }
    size_t n = (size_t)outl < c->tls_in_len ? (size_t)outl : c->tls_in_len;
    memcpy(out, c->tls_in, n);
    c->tls_in += n;
    c->tls_in_len -= n;
    return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    acr__http_conn_t *c = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
    case BIO_CTRL_DUP:
        return 1;
    case BIO_CTRL_PENDING:
        return c ? (long)c->tls_in_len : 0;
    case BIO_CTRL_EOF:
        return c && c->tls_eof && c->tls_in_len == 0;
    default:
        return 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static int bio_destroy(BIO *b)
{
    BIO_set_data(b, NULL);
    return 1;
}

/* ---- session cache ---- */

static unsigned key_hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h % NBUCKETS;
}

static void session_key(const acr__http_conn_t *c, char *key, size_t n)
{
    snprintf(key, n, "%s:%u:%c", c->host, (unsigned)c->port, c->insecure ? 'i' : 'v');
}

static void cache_clear(acr__http_tls_t *t)
{
    for (unsigned b = 0; b < NBUCKETS; b++) {
        while (t->buckets[b]) {
            sess_entry_t *e = t->buckets[b];
            t->buckets[b] = e->next;
            SSL_SESSION_free(e->sess);
            free(e);
        }
    }
    t->nsess = 0;
}

/* OpenSSL hands us a new resumable session (TLS 1.3: after the handshake, from SSL_read). */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    acr__http_conn_t *c = SSL_get_app_data(ssl);
    if (!c || !c->s) return 0;
    acr__http_tls_t *t = c->s->c->tls;
    char key[300];
    session_key(c, key, sizeof key);
    unsigned b = key_hash(key);
    for (sess_entry_t *e = t->buckets[b]; e; e = e->next) {
        if (strcmp(e->key, key) == 0) {
            SSL_SESSION_free(e->sess);
            e->sess = sess;
            return 1;
        }
    }
    if (t->nsess >= ACR__HTTP_TLS_MAX_SESSIONS) cache_clear(t);
    size_t n = strlen(key);
    sess_entry_t *e = malloc(sizeof *e + n + 1);
    if (!e) return 0;
    memcpy(e->key, key, n + 1);
    e->sess = sess;
    e->next = t->buckets[b];
    t->buckets[b] = e;
    t->nsess++;
    return 1;
}

static SSL_SESSION *cache_get(acr__http_tls_t *t, const acr__http_conn_t *c)
{
    char key[300];
    session_key(c, key, sizeof key);
    for (sess_entry_t *e = t->buckets[key_hash(key)]; e; e = e->next)
        if (strcmp(e->key, key) == 0) return e->sess;
    return NULL;
}

/* ---- contexts ---- */

static void last_error(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    snprintf(err, errlen, "%s: %s", what, r ? r : "unknown error");
    ERR_clear_error();
}

static SSL_CTX *ctx_new(bool verify, const char *ca_file, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) goto fail;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);
    if (SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x08http/1.1", 9) != 0) goto fail;
    if (verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (SSL_CTX_set_default_verify_paths(ctx) != 1) goto fail;
        if (ca_file && SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
            char what[300];
            snprintf(what, sizeof what, "cannot load CA file %s", ca_file);
            last_error(err, errlen, what);
            SSL_CTX_free(ctx);
            return NULL;
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    return ctx;
fail:
    last_error(err, errlen, "TLS setup failed");
    SSL_CTX_free(ctx);
    return NULL;
}

acr__http_tls_t *acr__http_tls_new(const char *ca_file, char *err, size_t errlen)
{
    acr__http_tls_t *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->meth = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "acrida-uv");
    if (!t->meth || !BIO_meth_set_write(t->meth, bio_write) ||
        !BIO_meth_set_read(t->meth, bio_read) || !BIO_meth_set_ctrl(t->meth, bio_ctrl) ||
        !BIO_meth_set_create(t->meth, bio_create) || !BIO_meth_set_destroy(t->meth, bio_destroy)) {
        last_error(err, errlen, "TLS setup failed");
        goto fail;
    }
    t->verified = ctx_new(true, ca_file, err, errlen);
    if (!t->verified) goto fail;
    t->insecure = ctx_new(false, NULL, err, errlen);
    if (!t->insecure) goto fail;
    return t;
fail:
    acr__http_tls_free(t);
    return NULL;
}

void acr__http_tls_free(acr__http_tls_t *t)
{
    if (!t) return;
    cache_clear(t);
    SSL_CTX_free(t->verified);
    SSL_CTX_free(t->insecure);
    BIO_meth_free(t->meth);
    free(t);
}

/* ---- per connection ---- */

static bool ip_literal(const char *host)
{
    struct sockaddr_in6 a6;
    struct sockaddr_in a4;
    return uv_ip4_addr(host, 0, &a4) == 0 || uv_ip6_addr(host, 0, &a6) == 0;
}

int acr__http_tls_attach(acr__http_tls_t *t, acr__http_conn_t *c)
{
    SSL *ssl = SSL_new(c->insecure ? t->insecure : t->verified);
    if (!ssl) goto fail;
    BIO *b = BIO_new(t->meth);
    if (!b) goto fail;
    BIO_set_data(b, c);
    SSL_set_bio(ssl, b, b); /* ssl owns the BIO */
    SSL_set_app_data(ssl, c);
    bool ip = ip_literal(c->host);
    if (!ip && SSL_set_tlsext_host_name(ssl, c->host) != 1) goto fail;
    if (!c->insecure) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
        int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, c->host) : SSL_set1_host(ssl, c->host);
        if (ok != 1) goto fail;
    }
    SSL_SESSION *sess = cache_get(t, c);
    if (sess) SSL_set_session(ssl, sess);
    SSL_set_connect_state(ssl);
    c->ssl = ssl;
    return 0;
fail:
    SSL_free(ssl);
    ERR_clear_error();
    return -ENOMEM;
}

void acr__http_tls_detach(acr__http_conn_t *c)
{
    if (!c->ssl) return;
    SSL_set_app_data((SSL *)c->ssl, NULL);
    /* SSL_free of a connection without close_notify marks its session not resumable; the
     * sessions we cached stay good whatever ended the TCP connection */
    if (c->tls_done) SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(c->ssl);
    c->ssl = NULL;
}

int acr__http_tls_handshake(acr__http_conn_t *c, char *err, size_t errlen)
{
    SSL *ssl = c->ssl;
    ERR_clear_error();
    int r = SSL_do_handshake(ssl);
    if (r == 1) {
        c->tls_done = true;
        c->s->c->stats.tls_handshakes++;
        if (SSL_session_reused(ssl)) c->s->c->stats.tls_resumed++;
        return 1;
    }
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
    unsigned long le = ERR_peek_last_error();
    long vr = SSL_get_verify_result(ssl);
    const char *reason = le ? ERR_reason_error_string(le) : NULL;
    if (le && ERR_GET_REASON(le) == SSL_R_CERTIFICATE_VERIFY_FAILED && vr != X509_V_OK)
        snprintf(err, errlen, "TLS handshake failed: %s (%s)", reason ? reason : "error",
                 X509_verify_cert_error_string(vr));
    else if (reason)
        snprintf(err, errlen, "TLS handshake failed: %s", reason);
    else if (c->tls_eof)
        snprintf(err, errlen, "TLS handshake failed: connection closed by peer");
    else
        snprintf(err, errlen, "TLS handshake failed: error %d", e);
    ERR_clear_error();
    return -EPROTO;
}

int acr__http_tls_write(acr__http_conn_t *c, const char *p, size_t n, char *err, size_t errlen)
{
    while (n > 0) {
        int chunk = n > (1u << 30) ? 1 << 30 : (int)n;
        ERR_clear_error();
        int r = SSL_write(c->ssl, p, chunk);
        if (r <= 0) {
            unsigned long le = ERR_peek_last_error();
            const char *reason = le ? ERR_reason_error_string(le) : NULL;
            snprintf(err, errlen, "TLS error: %s", reason ? reason : "write failed");
            ERR_clear_error();
            return -EPROTO;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

int acr__http_tls_read(acr__http_conn_t *c, char *out, size_t outlen, char *err, size_t errlen)
{
    ERR_clear_error();
    int r = SSL_read(c->ssl, out, outlen > INT32_MAX ? INT32_MAX : (int)outlen);
    if (r > 0) return r;
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && c->tls_eof)) {
        ERR_clear_error();
        return UV_EOF;
    }
    unsigned long le = ERR_peek_last_error();
    const char *reason = le ? ERR_reason_error_string(le) : NULL;
    snprintf(err, errlen, "TLS error: %s", reason ? reason : "read failed");
    ERR_clear_error();
    return -EPROTO;
}
