/*
 * HTTPS for the master's HTTP server: the server SSL_CTX (TLS 1.2 and later, ALPN "http/1.1",
 * no renegotiation) and, per connection, an SSL over two memory BIOs. The socket stays with
 * libuv: bytes read go into the read BIO, whatever OpenSSL writes (handshake, records, alerts)
 * is moved from the write BIO into the connection's output buffer and written by httpd.c. With
 * memory BIOs SSL_write never blocks, so backpressure is httpd.c's output accounting.
 * SSL_OP_IGNORE_UNEXPECTED_EOF makes a TCP close without close_notify a plain end of stream.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "common/log.h"
#include "master/web/httpd_int.h"

/* The reason of the last OpenSSL error (the queue is cleared). */
static const char *ssl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    snprintf(buf, len, "%s", r ? r : "unknown OpenSSL error");
    ERR_clear_error();
    return buf;
}

/* Only http/1.1 is spoken; a client offering nothing we know proceeds without ALPN. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    static const unsigned char protos[] = "\x08http/1.1";
    unsigned char *sel = NULL;
    (void)ssl;
    (void)arg;
    if (SSL_select_next_proto(&sel, outlen, protos, sizeof(protos) - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* Fails with the file's errno when it cannot be opened (clearer than OpenSSL's text). */
static int readable(const char *opt, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "cannot load %s %s: %s", opt, path, strerror(e));
        return -e;
    }
    fclose(f);
    return 0;
}

int acr__httpd_tls_ctx_new(const char *cert, const char *key, SSL_CTX **out, char *err,
                           size_t errlen)
{
    SSL_CTX *ctx = NULL;
    char why[256];
    int rc;

    *out = NULL;
    if (!cert || !key || !*cert || !*key) {
        snprintf(err, errlen, "--tls-cert and --tls-key must be given together");
        return -EINVAL;
    }
    if ((rc = readable("--tls-cert", cert, err, errlen)) < 0) return rc;
    if ((rc = readable("--tls-key", key, err, errlen)) < 0) return rc;
    ERR_clear_error();
    ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(err, errlen, "cannot create a TLS context: %s", ssl_reason(why, sizeof(why)));
        return -ENOMEM;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        snprintf(err, errlen, "cannot load --tls-cert %s: %s", cert, ssl_reason(why, sizeof(why)));
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        int r = ERR_GET_REASON(ERR_peek_last_error());
        if (r == X509_R_KEY_VALUES_MISMATCH || r == X509_R_KEY_TYPE_MISMATCH ||
            r == SSL_R_PRIVATE_KEY_MISMATCH) {
            ERR_clear_error();
            snprintf(err, errlen, "--tls-key %s does not match --tls-cert %s", key, cert);
        } else {
            snprintf(err, errlen, "cannot load --tls-key %s: %s", key,
                     ssl_reason(why, sizeof(why)));
        }
        goto fail;
    }
    *out = ctx;
    return 0;
fail:
    SSL_CTX_free(ctx);
    return -EINVAL;
}

int acr__httpd_tls_conn(acr__httpd_conn_t *c)
{
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    SSL *ssl = SSL_new(c->srv->ssl_ctx);

    if (!ssl || !rb || !wb) {
        SSL_free(ssl);
        BIO_free(rb);
        BIO_free(wb);
        ERR_clear_error();
        return -ENOMEM;
    }
    SSL_set_bio(ssl, rb, wb); /* ssl owns both */
    SSL_set_accept_state(ssl);
    c->ssl = ssl;
    c->rbio = rb;
    c->wbio = wb;
    return 0;
}

int acr__httpd_tls_input(acr__httpd_conn_t *c, const char *p, size_t n)
{
    while (n > 0) {
        int chunk = n > INT_MAX ? INT_MAX : (int)n;
        int w = BIO_write(c->rbio, p, chunk);
        if (w <= 0) return -EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int acr__httpd_tls_handshake(acr__httpd_conn_t *c)
{
    int rc, e;

    ERR_clear_error();
    rc = SSL_do_handshake(c->ssl);
    if (rc == 1) {
        if (acr_log_enabled(ACR_LOG_DEBUG))
            ACR_DEBUG("web: %s: TLS handshake done (%s)", c->peer, SSL_get_version(c->ssl));
        return 1;
    }
    e = SSL_get_error(c->ssl, rc);
    if (e == SSL_ERROR_WANT_READ) return 0;
    if (acr_log_enabled(ACR_LOG_DEBUG)) {
        char why[256];
        ACR_DEBUG("web: %s: TLS handshake failed: %s", c->peer, ssl_reason(why, sizeof(why)));
    }
    ERR_clear_error();
    return -1;
}

bool acr__httpd_tls_pull(acr__httpd_conn_t *c)
{
    int n, e;

    if (c->failed) return false;
    ERR_clear_error();
    n = SSL_read(c->ssl, c->srv->pbuf, (int)sizeof(c->srv->pbuf));
    if (n > 0) {
        c->ip = c->srv->pbuf;
        c->ilen = (size_t)n;
        return true;
    }
    e = SSL_get_error(c->ssl, n);
    if (e == SSL_ERROR_WANT_READ) return false;
    if (e == SSL_ERROR_ZERO_RETURN || c->eof) {
        c->eof = true;
        ERR_clear_error();
        return false;
    }
    if (acr_log_enabled(ACR_LOG_DEBUG)) {
        char why[256];
        ACR_DEBUG("web: %s: TLS read failed: %s", c->peer, ssl_reason(why, sizeof(why)));
    }
    ERR_clear_error();
    c->failed = true;
    return false;
}

int acr__httpd_tls_drain(acr__httpd_conn_t *c)
{
    size_t p;

    while ((p = BIO_ctrl_pending(c->wbio)) > 0) {
        int n;
        if (p > INT_MAX) p = INT_MAX;
        if (acr_buf_reserve(&c->out, p) < 0) return -ENOMEM;
        n = BIO_read(c->wbio, c->out.data + c->out.len, (int)p);
        if (n <= 0) break;
        c->out.len += (size_t)n;
        c->out.data[c->out.len] = '\0';
    }
    return 0;
}

int acr__httpd_tls_emit(acr__httpd_conn_t *c, const char *p, size_t n)
{
    while (n > 0) {
        int chunk = n > (1u << 20) ? (1 << 20) : (int)n;
        int w;
        ERR_clear_error();
        w = SSL_write(c->ssl, p, chunk);
        if (w <= 0) {
            ERR_clear_error();
            return -EIO;
        }
        p += w;
        n -= (size_t)w;
        /* move each record out at once: the write BIO would otherwise hold a second copy */
        if (acr__httpd_tls_drain(c) < 0) return -ENOMEM;
    }
    return 0;
}

void acr__httpd_tls_shutdown(acr__httpd_conn_t *c)
{
    if (c->tls_shut || !SSL_is_init_finished(c->ssl)) return;
    c->tls_shut = true;
    ERR_clear_error();
    SSL_shutdown(c->ssl); /* queues close_notify; the peer's is not waited for */
    ERR_clear_error();
}
