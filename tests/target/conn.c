/*
 * acrida-target connections: accept, read, TLS (OpenSSL over memory BIOs), llhttp request
 * parsing, the output queue and the connection state machine (tgt_conn_state_t).
 *
 * Requests on a connection are answered strictly in order: the parser pauses at the end of every
 * message, the route queues its response, and parsing resumes only when the connection is back
 * in TGT_C_READING (a /delay response waits for its timer, /hang never returns). Input that
 * arrives meanwhile is stashed (bounded; reading stops above TGT_STASH_LIMIT). Responses of
 * pipelined requests accumulate in one queue and go out with one uv_write; a second queue
 * collects while a write is in flight. Buffers are reused, so the steady state allocates nothing.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>

#include "common/log.h"
#include "tests/target/target.h"

static const char *const state_names[] = {
    "handshake", "reading", "waiting", "hanging", "blocked", "draining", "resetting", "closed",
};

static void conn_run(tgt_conn_t *c);
static void flush(tgt_conn_t *c);

/* The one place a connection changes state. */
static void set_state(tgt_conn_t *c, tgt_conn_state_t st)
{
    if (c->state == st) return;
    if (acr_log_enabled(ACR_LOG_DEBUG))
        ACR_DEBUG("conn %p: %s -> %s", (void *)c, state_names[c->state], state_names[st]);
    c->state = st;
}

/* ---- output queue ---------------------------------------------------------------------- */

static tgt_outq_t *cur_q(tgt_conn_t *c)
{
    return c->ssl ? &c->q[0] : &c->q[c->fill];
}

static void outq_reset(tgt_outq_t *q)
{
    acr_buf_reset(&q->buf);
    q->nrefs = 0;
    q->bytes = 0;
}

static void outq_free(tgt_outq_t *q)
{
    acr_buf_free(&q->buf);
    free(q->refs);
    q->refs = NULL;
    q->nrefs = q->caprefs = 0;
    q->bytes = 0;
}

static uint64_t pending_out(const tgt_conn_t *c)
{
    return c->q[0].bytes + c->q[1].bytes + c->enc[0].len + c->enc[1].len;
}

void acr__tgt_out(tgt_conn_t *c, const void *p, size_t n)
{
    tgt_outq_t *q = cur_q(c);
    if (acr_buf_append(&q->buf, p, n) < 0) {
        c->failed = true;
        return;
    }
    q->bytes += n;
}

void acr__tgt_outs(tgt_conn_t *c, const char *s)
{
    acr__tgt_out(c, s, strlen(s));
}

void acr__tgt_outf(tgt_conn_t *c, const char *fmt, ...)
{
    tgt_outq_t *q = cur_q(c);
    size_t before = q->buf.len;
    char small[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        c->failed = true;
        return;
    }
    if ((size_t)n < sizeof(small)) {
        acr__tgt_out(c, small, (size_t)n);
        return;
    }
    if (acr_buf_reserve(&q->buf, (size_t)n) < 0) {
        c->failed = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(q->buf.data + before, q->buf.cap - before, fmt, ap);
    va_end(ap);
    q->buf.len += (size_t)n;
    q->bytes += (size_t)n;
}

void acr__tgt_out_ref(tgt_conn_t *c, const char *p, size_t n)
{
    tgt_outq_t *q = cur_q(c);
    tgt_ref_t *last = q->nrefs ? &q->refs[q->nrefs - 1] : NULL;

    if (n == 0) return;
    if (last && last->at == q->buf.len && last->p + last->n == p) {
        last->n += n;
    } else {
        if (q->nrefs == q->caprefs) {
            size_t cap = q->caprefs ? q->caprefs * 2 : 8;
            tgt_ref_t *r = realloc(q->refs, cap * sizeof(*r));
            if (!r) {
                c->failed = true;
                return;
            }
            q->refs = r;
            q->caprefs = cap;
        }
        q->refs[q->nrefs++] = (tgt_ref_t){q->buf.len, p, n};
    }
    q->bytes += n;
}

/* Builds c->iov for @q (buffered pieces with the references spliced in). Returns the count. */
static int outq_iov(tgt_conn_t *c, tgt_outq_t *q)
{
    size_t need = 2 * q->nrefs + 1, n = 0, pos = 0;

    if (need > c->iovcap) {
        uv_buf_t *v = realloc(c->iov, need * sizeof(*v));
        if (!v) return -ENOMEM;
        c->iov = v;
        c->iovcap = need;
    }
    for (size_t i = 0; i < q->nrefs; i++) {
        tgt_ref_t *r = &q->refs[i];
        if (r->at > pos) c->iov[n++] = uv_buf_init(q->buf.data + pos, (unsigned)(r->at - pos));
        c->iov[n++] = uv_buf_init((char *)r->p, (unsigned)r->n);
        pos = r->at;
    }
    if (q->buf.len > pos)
        c->iov[n++] = uv_buf_init(q->buf.data + pos, (unsigned)(q->buf.len - pos));
    return (int)n;
}

/* ---- closing ----------------------------------------------------------------------------- */

static void conn_free(tgt_conn_t *c)
{
    tgt_server_t *srv = c->srv;

    if (c->prev)
        c->prev->next = c->next;
    else if (srv->conns == c)
        srv->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    acr_buf_free(&c->url);
    acr_buf_free(&c->hdrs);
    acr_buf_free(&c->body);
    acr_buf_free(&c->stash);
    outq_free(&c->q[0]);
    outq_free(&c->q[1]);
    acr_buf_free(&c->enc[0]);
    acr_buf_free(&c->enc[1]);
    free(c->iov);
    if (c->ssl) SSL_free(c->ssl); /* frees both BIOs */
    free(c);
}

static void on_close(uv_handle_t *h)
{
    tgt_conn_t *c = h->data;
    if (--c->closes_pending == 0) conn_free(c);
}

void acr__tgt_close(tgt_conn_t *c, bool reset)
{
    if (c->state == TGT_C_CLOSED) return;
    set_state(c, TGT_C_CLOSED);
    c->closes_pending = 2;
    uv_close((uv_handle_t *)&c->timer, on_close);
    if (!reset || uv_tcp_close_reset(&c->tcp, on_close) != 0)
        uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void on_linger_timeout(uv_timer_t *t)
{
    acr__tgt_close(t->data, false);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    tgt_conn_t *c = req->handle->data;
    if (c->state == TGT_C_CLOSED) return;
    /* our FIN is out; give the client a moment to read and close its side (no RST on unread
     * input), then close regardless */
    if (status < 0 || c->eof || uv_timer_start(&c->timer, on_linger_timeout, 2000, 0) < 0)
        acr__tgt_close(c, false);
}

/* Called when everything queued has been written. */
static void finish_if_done(tgt_conn_t *c)
{
    if (c->state == TGT_C_RESETTING) {
        acr__tgt_close(c, true);
    } else if (c->state == TGT_C_DRAINING && !c->shutting) {
        c->shutting = true;
        if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) < 0)
            acr__tgt_close(c, false);
    }
}

/* ---- writing ----------------------------------------------------------------------------- */

static void on_write(uv_write_t *req, int status)
{
    tgt_conn_t *c = acr_container_of(req, tgt_conn_t, wreq);

    c->writing = false;
    if (c->state == TGT_C_CLOSED) return;
    if (status < 0) {
        ACR_DEBUG("conn %p: write failed: %s", (void *)c, uv_strerror(status));
        acr__tgt_close(c, false);
        return;
    }
    if (c->ssl)
        acr_buf_reset(&c->enc[c->encfill ^ 1]);
    else
        outq_reset(&c->q[c->fill ^ 1]);
    if (c->state == TGT_C_BLOCKED && pending_out(c) < TGT_OUT_LIMIT) set_state(c, TGT_C_READING);
    conn_run(c); /* parses what was waiting, then flushes */
}

static int tls_encrypt(tgt_conn_t *c, const char *p, size_t n)
{
    while (n > 0) {
        int chunk = n > (1u << 20) ? (1 << 20) : (int)n, w;
        ERR_clear_error();
        w = SSL_write(c->ssl, p, chunk);
        if (w <= 0) return -EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Moves everything OpenSSL has produced into the encrypted buffer being filled. */
static int tls_drain_wbio(tgt_conn_t *c)
{
    acr_buf_t *e = &c->enc[c->encfill];
    size_t p;

    while ((p = BIO_ctrl_pending(c->wbio)) > 0) {
        int n;
        if (acr_buf_reserve(e, p) < 0) return -ENOMEM;
        n = BIO_read(c->wbio, e->data + e->len, (int)(p > INT_MAX ? INT_MAX : p));
        if (n <= 0) break;
        e->len += (size_t)n;
    }
    return 0;
}

static void tls_flush(tgt_conn_t *c)
{
    tgt_outq_t *q = &c->q[0];
    acr_buf_t *e;
    uv_buf_t b;
    int n;

    if (q->bytes) {
        n = outq_iov(c, q);
        for (int i = 0; i < n && !c->failed; i++)
            if (tls_encrypt(c, c->iov[i].base, c->iov[i].len) < 0) c->failed = true;
        outq_reset(q);
    }
    if (c->state == TGT_C_DRAINING && !c->shutting && SSL_is_init_finished(c->ssl)) {
        ERR_clear_error();
        SSL_shutdown(c->ssl); /* queues close_notify */
    }
    if (c->failed || tls_drain_wbio(c) < 0) {
        acr__tgt_close(c, false);
        return;
    }
    e = &c->enc[c->encfill];
    if (e->len == 0) {
        finish_if_done(c);
        return;
    }
    b = uv_buf_init(e->data, (unsigned)e->len);
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write) < 0) {
        acr__tgt_close(c, false);
        return;
    }
    c->writing = true;
    c->encfill ^= 1;
}

/* Hands the queued output to libuv (one uv_write), unless a write is already in flight. */
static void flush(tgt_conn_t *c)
{
    tgt_outq_t *q;
    int n;

    if (c->writing || c->state == TGT_C_CLOSED) return;
    if (c->ssl) {
        tls_flush(c);
        return;
    }
    q = &c->q[c->fill];
    if (q->bytes == 0) {
        finish_if_done(c);
        return;
    }
    n = outq_iov(c, q);
    if (n < 0 || uv_write(&c->wreq, (uv_stream_t *)&c->tcp, c->iov, (unsigned)n, on_write) < 0) {
        acr__tgt_close(c, false);
        return;
    }
    c->writing = true;
    c->fill ^= 1;
}

/* ---- reading ----------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    tgt_conn_t *c = h->data;
    (void)suggested;
    *buf = uv_buf_init(c->srv->rbuf, sizeof(c->srv->rbuf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void update_reading(tgt_conn_t *c)
{
    bool want = false;
    size_t buffered = c->stash.len + (c->rbio ? BIO_ctrl_pending(c->rbio) : 0);

    switch (c->state) {
    case TGT_C_HANDSHAKE:
    case TGT_C_READING:
    case TGT_C_WAITING:
    case TGT_C_HANGING:
    case TGT_C_DRAINING: /* read and discard: see EOF, avoid RST on unread input */
        want = !c->eof && buffered <= TGT_STASH_LIMIT;
        break;
    case TGT_C_BLOCKED:
    case TGT_C_RESETTING:
    case TGT_C_CLOSED:
        break;
    }
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->reading = true;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

/* Makes the unconsumed input survive the shared read buffer: moves it to the stash front. */
static void keep_view(tgt_conn_t *c)
{
    if (c->ilen == 0) {
        acr_buf_reset(&c->stash);
        c->ip = NULL;
        return;
    }
    if (c->stash.data && c->ip >= c->stash.data && c->ip < c->stash.data + c->stash.len) {
        memmove(c->stash.data, c->ip, c->ilen);
        c->stash.len = c->ilen;
    } else {
        acr_buf_reset(&c->stash);
        if (acr_buf_append(&c->stash, c->ip, c->ilen) < 0) {
            c->failed = true;
            c->ilen = 0;
            return;
        }
    }
    c->ip = c->stash.data;
}

static void stash_add(tgt_conn_t *c, const char *p, size_t n)
{
    keep_view(c);
    if (acr_buf_append(&c->stash, p, n) < 0) {
        c->failed = true;
        return;
    }
    c->ip = c->stash.data;
    c->ilen = c->stash.len;
}

/* TLS: decrypts the next piece of plaintext into the view. Returns true if there is some. */
static bool tls_pull(tgt_conn_t *c)
{
    int n, e;

    ERR_clear_error();
    n = SSL_read(c->ssl, c->srv->pbuf, sizeof(c->srv->pbuf));
    if (n > 0) {
        c->ip = c->srv->pbuf;
        c->ilen = (size_t)n;
        return true;
    }
    e = SSL_get_error(c->ssl, n);
    if (e == SSL_ERROR_WANT_READ) return false;
    if (e == SSL_ERROR_ZERO_RETURN || c->eof) {
        c->eof = true;
        return false;
    }
    ACR_DEBUG("conn %p: TLS read error %d", (void *)c, e);
    c->failed = true;
    return false;
}

/* Applies a route's action to the connection state. */
static void after_response(tgt_conn_t *c, tgt_action_t a)
{
    switch (a) {
    case TGT_A_NEXT:
        if (!c->keep_alive || c->upgrade)
            set_state(c, TGT_C_DRAINING);
        else if (pending_out(c) > TGT_OUT_LIMIT)
            set_state(c, TGT_C_BLOCKED);
        else
            set_state(c, TGT_C_READING);
        break;
    case TGT_A_CLOSE:
        set_state(c, TGT_C_DRAINING);
        break;
    case TGT_A_RESET:
        set_state(c, TGT_C_RESETTING);
        break;
    case TGT_A_WAIT:
        set_state(c, TGT_C_WAITING);
        break;
    case TGT_A_HANG:
        set_state(c, TGT_C_HANGING);
        break;
    }
}

/* Parses and answers requests while the connection is READING, then flushes. */
static void conn_run(tgt_conn_t *c)
{
    while (c->state == TGT_C_READING && !c->failed) {
        enum llhttp_errno err;
        if (c->ilen == 0 && !(c->ssl && tls_pull(c))) break;
        err = llhttp_execute(&c->parser, c->ip, c->ilen);
        if (err == HPE_OK) {
            c->ilen = 0;
        } else if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
            const char *pos = llhttp_get_error_pos(&c->parser);
            if (pos && pos >= c->ip && pos <= c->ip + c->ilen) {
                c->ilen -= (size_t)(pos - c->ip);
                c->ip = pos;
            } else {
                c->ilen = 0;
            }
            if (err == HPE_PAUSED)
                llhttp_resume(&c->parser);
            else
                c->upgrade = true; /* the rest is not HTTP: answer, then close */
            after_response(c, acr__tgt_route(c));
        } else {
            if (acr_log_enabled(ACR_LOG_DEBUG))
                ACR_DEBUG("conn %p: bad request: %s (%s)", (void *)c, llhttp_errno_name(err),
                          llhttp_get_error_reason(&c->parser));
            acr__tgt_bad_request(c, c->limit_status ? c->limit_status : 400);
            c->ilen = 0;
            set_state(c, TGT_C_DRAINING);
        }
    }
    if (c->failed) {
        acr__tgt_close(c, false);
        return;
    }
    if (c->state == TGT_C_CLOSED) return;
    keep_view(c);
    if (c->eof && c->state == TGT_C_READING && c->ilen == 0) set_state(c, TGT_C_DRAINING);
    flush(c);
    if (c->state != TGT_C_CLOSED) update_reading(c);
}

static void on_eof(tgt_conn_t *c)
{
    c->eof = true;
    c->reading = false; /* libuv stops reading at EOF */
    if (c->rbio) BIO_set_mem_eof_return(c->rbio, 0);
    switch (c->state) {
    case TGT_C_HANDSHAKE:
    case TGT_C_WAITING:
    case TGT_C_HANGING:
        acr__tgt_close(c, false); /* the client is gone */
        break;
    case TGT_C_READING:
        conn_run(c);
        break;
    case TGT_C_DRAINING:
        if (c->shutting && !c->writing) acr__tgt_close(c, false);
        break;
    case TGT_C_BLOCKED:
    case TGT_C_RESETTING:
    case TGT_C_CLOSED:
        break;
    }
}

static void tls_handshake(tgt_conn_t *c)
{
    int rc, e;

    ERR_clear_error();
    rc = SSL_do_handshake(c->ssl);
    if (rc == 1) {
        set_state(c, TGT_C_READING);
        return;
    }
    e = SSL_get_error(c->ssl, rc);
    if (e == SSL_ERROR_WANT_READ) return;
    if (acr_log_enabled(ACR_LOG_DEBUG)) {
        char msg[256];
        ERR_error_string_n(ERR_peek_last_error(), msg, sizeof(msg));
        ACR_DEBUG("conn %p: TLS handshake failed: %s", (void *)c, msg);
    }
    set_state(c, TGT_C_DRAINING); /* send the alert, then close */
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    tgt_conn_t *c = s->data;

    if (c->state == TGT_C_CLOSED || nread == 0) return;
    if (nread < 0) {
        if (nread == UV_EOF)
            on_eof(c);
        else
            acr__tgt_close(c, false);
        return;
    }
    if (c->state == TGT_C_DRAINING || c->state == TGT_C_RESETTING) return; /* discard */
    if (c->ssl) {
        if (BIO_write(c->rbio, buf->base, (int)nread) != (int)nread) {
            acr__tgt_close(c, false);
            return;
        }
        if (c->state == TGT_C_HANDSHAKE) tls_handshake(c);
    } else if (c->state == TGT_C_READING && c->ilen == 0) {
        c->ip = buf->base; /* parse straight from the shared read buffer */
        c->ilen = (size_t)nread;
    } else {
        stash_add(c, buf->base, (size_t)nread);
    }
    conn_run(c);
}

/* ---- request parsing (llhttp callbacks) ----------------------------------------------------- */

static int limit(tgt_conn_t *c, int status, const char *reason)
{
    c->limit_status = status;
    llhttp_set_error_reason(&c->parser, reason);
    return HPE_USER;
}

static int head_bytes(tgt_conn_t *c, size_t n)
{
    c->head_bytes += n;
    if (c->head_bytes > TGT_MAX_HEADER_BYTES) return limit(c, 431, "request headers too large");
    return 0;
}

static int on_message_begin(llhttp_t *p)
{
    tgt_conn_t *c = p->data;
    acr_buf_reset(&c->url);
    acr_buf_reset(&c->hdrs);
    acr_buf_reset(&c->body);
    c->nhdrs = 0;
    c->hdr_phase = 0;
    c->head_bytes = 0;
    c->body_bytes = 0;
    c->limit_status = 0;
    c->keep_body = false;
    c->early = false;
    c->upgrade = false;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    tgt_conn_t *c = p->data;
    if (head_bytes(c, len)) return HPE_USER;
    if (acr_buf_append(&c->url, at, len) < 0) return limit(c, 0, "out of memory");
    return 0;
}

static int on_url_complete(llhttp_t *p)
{
    tgt_conn_t *c = p->data;
    c->keep_body = c->url.data && strstr(c->url.data, "/echo") != NULL;
    return 0;
}

/* Finishes a header whose value callbacks never came (an empty value). */
static void end_header(tgt_conn_t *c)
{
    if (c->hdr_phase == 2) {
        c->hv[c->nhdrs].vlen = (uint32_t)(c->hdrs.len - c->hv[c->nhdrs].voff);
        c->nhdrs++;
    }
    c->hdr_phase = 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    tgt_conn_t *c = p->data;
    if (head_bytes(c, len)) return HPE_USER;
    if (c->hdr_phase != 1) {
        end_header(c);
        if (c->nhdrs >= TGT_MAX_HEADERS) return limit(c, 431, "too many request headers");
        c->hv[c->nhdrs] = (tgt_hdr_t){(uint32_t)c->hdrs.len, 0, 0, 0};
        c->hdr_phase = 1;
    }
    if (acr_buf_append(&c->hdrs, at, len) < 0) return limit(c, 0, "out of memory");
    c->hv[c->nhdrs].nlen += (uint32_t)len;
    return 0;
}

static int on_header_field_complete(llhttp_t *p)
{
    tgt_conn_t *c = p->data;
    if (c->hdr_phase != 1) return 0;
    c->hv[c->nhdrs].voff = (uint32_t)c->hdrs.len;
    c->hdr_phase = 2;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    tgt_conn_t *c = p->data;
    if (head_bytes(c, len)) return HPE_USER;
    if (c->hdr_phase != 2) return 0;
    if (acr_buf_append(&c->hdrs, at, len) < 0) return limit(c, 0, "out of memory");
    return 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    end_header(p->data);
    return 0;
}

/* /early's hold is over: the rest of its request is read (and discarded) as usual. */
static void on_hold(uv_timer_t *t)
{
    tgt_conn_t *c = t->data;
    if (c->state != TGT_C_WAITING || !c->early) return;
    set_state(c, TGT_C_READING);
    conn_run(c);
}

static int on_headers_complete(llhttp_t *p)
{
    tgt_conn_t *c = p->data;
    const char *v;
    size_t vlen;

    end_header(c);
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > TGT_MAX_BODY_BYTES)
        return limit(c, 413, "request body too large");
    v = acr__tgt_header(c, "expect", &vlen);
    if (v && vlen == 12 && strncasecmp(v, "100-continue", 12) == 0 && p->http_minor >= 1)
        acr__tgt_outs(c, "HTTP/1.1 100 Continue\r\n\r\n");
    if (acr__tgt_early(c, llhttp_should_keep_alive(p), p->method == HTTP_HEAD)) {
        /* the answer goes out with this read; the body waits, so a client sending a large one
         * gets the response while its request is still being written */
        set_state(c, TGT_C_WAITING);
        uv_timer_start(&c->timer, on_hold, TGT_EARLY_HOLD_MS, 0);
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    tgt_conn_t *c = p->data;
    c->body_bytes += len;
    if (c->body_bytes > TGT_MAX_BODY_BYTES) return limit(c, 413, "request body too large");
    if (c->keep_body && acr_buf_append(&c->body, at, len) < 0) return limit(c, 0, "out of memory");
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    tgt_conn_t *c = p->data;
    end_header(c);
    c->method = p->method;
    c->head = p->method == HTTP_HEAD;
    c->keep_alive = llhttp_should_keep_alive(p);
    c->http10 = p->http_major == 1 && p->http_minor == 0;
    c->upgrade = c->upgrade || p->upgrade;
    return HPE_PAUSED; /* answer this request before parsing the next */
}

static const llhttp_settings_t parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_url_complete = on_url_complete,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

const char *acr__tgt_header(tgt_conn_t *c, const char *name, size_t *len)
{
    size_t n = strlen(name);
    for (unsigned i = 0; i < c->nhdrs; i++) {
        const tgt_hdr_t *h = &c->hv[i];
        if (h->nlen == n && strncasecmp(c->hdrs.data + h->noff, name, n) == 0) {
            if (len) *len = h->vlen;
            return c->hdrs.data + h->voff;
        }
    }
    return NULL;
}

/* ---- timers and accept ----------------------------------------------------------------------- */

static void on_delay(uv_timer_t *t)
{
    tgt_conn_t *c = t->data;
    if (c->state != TGT_C_WAITING) return;
    acr__tgt_route_delayed(c);
    after_response(c, TGT_A_NEXT);
    conn_run(c);
}

int acr__tgt_start_delay(tgt_conn_t *c, uint64_t ms)
{
    c->delay_ms = ms;
    return uv_timer_start(&c->timer, on_delay, ms, 0);
}

void acr__tgt_accept(tgt_server_t *srv)
{
    tgt_conn_t *c = calloc(1, sizeof(*c));
    int rc;

    if (!c) {
        ACR_ERROR("out of memory accepting a connection");
        return;
    }
    c->srv = srv;
    uv_tcp_init(srv->loop, &c->tcp);
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->next = srv->conns;
    if (srv->conns) srv->conns->prev = c;
    srv->conns = c;
    llhttp_init(&c->parser, HTTP_REQUEST, &parser_settings);
    c->parser.data = c; /* after llhttp_init, which zeroes it */

    rc = uv_accept((uv_stream_t *)&srv->listener, (uv_stream_t *)&c->tcp);
    if (rc < 0) {
        ACR_WARN("accept failed: %s", uv_strerror(rc));
        goto fail;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    srv->cnt.connections++;
    if (srv->ssl_ctx) {
        c->ssl = SSL_new(srv->ssl_ctx);
        c->rbio = BIO_new(BIO_s_mem());
        c->wbio = BIO_new(BIO_s_mem());
        if (!c->ssl || !c->rbio || !c->wbio) {
            ACR_ERROR("out of memory for a TLS connection");
            if (c->ssl) {
                SSL_free(c->ssl);
                c->ssl = NULL;
            }
            BIO_free(c->rbio);
            BIO_free(c->wbio);
            c->rbio = c->wbio = NULL;
            goto fail;
        }
        SSL_set_bio(c->ssl, c->rbio, c->wbio); /* the SSL owns both BIOs now */
        SSL_set_accept_state(c->ssl);
        c->state = TGT_C_HANDSHAKE;
    } else {
        c->state = TGT_C_READING;
    }
    update_reading(c);
    return;
fail:
    acr__tgt_close(c, false);
}
