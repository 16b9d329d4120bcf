/*
 * One keep-alive HTTP/1.1 connection of a session: the TCP handle, the write path (plain: the
 * session's serialized request in one uv_write; TLS: ciphertext double-buffered in c->wq), the
 * read path (the client's shared 64 KiB buffer, consumed synchronously; TLS decrypts into the
 * client's 16 KiB record buffer) and llhttp response parsing into per-connection header and body
 * buffers that keep their capacity across requests (up to ACR__HTTP_KEEP_BUF; all released by
 * acr_http_session_trim before a long wait).
 *
 * State machine: CONNECTING -> [HANDSHAKE ->] ACTIVE <-> IDLE, any -> CLOSING (see
 * acr__http_conn_transition_ok). One request is in flight at a time, so the method of the current
 * request decides whether a body follows (HEAD; also 1xx/204/304 never have one).
 *
 * Results go to the session through acr__http_session_conn_event(); the memory is freed only in the
 * handle's close_cb.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "common/util.h"
#include "worker/http/http_internal.h"

const char *const acr__http_conn_state_names[ACR__HTTP_CONN_NSTATES] = {
    "connecting", "handshake", "active", "idle", "closing"};

bool acr__http_conn_transition_ok(acr__http_conn_state_t from, acr__http_conn_state_t to)
{
    if (from >= ACR__HTTP_CONN_NSTATES || to >= ACR__HTTP_CONN_NSTATES) return false;
    static const bool ok[ACR__HTTP_CONN_NSTATES][ACR__HTTP_CONN_NSTATES] = {
        /* to:          connecting handshake active idle  closing */
        [ACR__HTTP_CONN_CONNECTING] = {false, true, true, false, true},
        [ACR__HTTP_CONN_HANDSHAKE] = {false, false, true, false, true},
        [ACR__HTTP_CONN_ACTIVE] = {false, false, false, true, true},
        [ACR__HTTP_CONN_IDLE] = {false, false, true, false, true},
        [ACR__HTTP_CONN_CLOSING] = {false, false, false, false, false},
    };
    return ok[from][to];
}

void acr__http_conn_set_state(acr__http_conn_t *c, acr__http_conn_state_t to)
{
    if (!acr__http_conn_transition_ok(c->state, to)) {
        ACR_ERROR("http: illegal connection transition %s -> %s (%s:%u)",
                  acr__http_conn_state_names[c->state], acr__http_conn_state_names[to],
                  ACR_ESC(c->host), (unsigned)c->port);
        return;
    }
    if (acr_log_enabled(ACR_LOG_DEBUG))
        ACR_DEBUG("http: conn %s:%u %s -> %s", ACR_ESC(c->host), (unsigned)c->port,
                  acr__http_conn_state_names[c->state], acr__http_conn_state_names[to]);
    c->state = to;
}

static uint64_t *grows(acr__http_conn_t *c)
{
    return &c->s->c->stats.buf_grows;
}

/* ---- llhttp callbacks ---- */

static int hdr_limit(llhttp_t *p, acr__http_conn_t *c, size_t len)
{
    c->hdr_bytes += len;
    if (c->hdr_bytes > ACR_HTTP_MAX_HEADER_BYTES) {
        llhttp_set_error_reason(p, "headers exceed 64 KiB");
        return HPE_USER;
    }
    return 0;
}

static void reset_message(acr__http_conn_t *c)
{
    c->hdrs.len = 0;
    c->nharr = 0;
    c->hstate = 0;
    c->body.len = 0;
    c->body_seen = 0;
    c->status = 0;
}

static int on_message_begin(llhttp_t *p)
{
    reset_message(p->data);
    return 0;
}

static int on_status(llhttp_t *p, const char *at, size_t len)
{
    (void)at;
    return hdr_limit(p, p->data, len);
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    acr__http_conn_t *c = p->data;
    if (hdr_limit(p, c, len)) return HPE_USER;
    if (p->flags & F_TRAILING) return 0; /* trailers are counted, not kept */
    if (c->hstate != 1) {
        if (c->nharr == ACR__HTTP_MAX_HEADERS) {
            llhttp_set_error_reason(p, "more than 1000 headers");
            return HPE_USER;
        }
        if (c->nharr == c->harr_cap) {
            size_t cap = c->harr_cap ? c->harr_cap * 2 : 8;
            acr_http_header_t *a = realloc(c->harr, cap * sizeof *a);
            if (!a) goto nomem;
            c->harr = a;
            c->harr_cap = cap;
            (*grows(c))++;
        }
        /* While parsing, .name/.value hold offsets into c->hdrs (it may move); they become
         * pointers in on_headers_complete. */
        acr_http_header_t *h = &c->harr[c->nharr++];
        h->name = (const char *)(uintptr_t)c->hdrs.len;
        h->name_len = 0;
        h->value = NULL;
        h->value_len = 0;
        c->hstate = 1;
    }
    if (acr_buf_reserve_counted(&c->hdrs, len, grows(c)) < 0) goto nomem;
    char *dst = c->hdrs.data + c->hdrs.len;
    for (size_t i = 0; i < len; i++) {
        char ch = at[i];
        dst[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
    }
    c->hdrs.len += len;
    c->harr[c->nharr - 1].name_len += len;
    return 0;
nomem:
    llhttp_set_error_reason(p, "out of memory");
    return HPE_USER;
}

static int on_header_field_complete(llhttp_t *p)
{
    acr__http_conn_t *c = p->data;
    if ((p->flags & F_TRAILING) || c->hstate != 1) return 0;
    if (acr_buf_append_counted(&c->hdrs, "", 1, grows(c)) < 0) {
        llhttp_set_error_reason(p, "out of memory");
        return HPE_USER;
    }
    c->harr[c->nharr - 1].value = (const char *)(uintptr_t)c->hdrs.len;
    c->hstate = 2;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    acr__http_conn_t *c = p->data;
    if (hdr_limit(p, c, len)) return HPE_USER;
    if ((p->flags & F_TRAILING) || c->hstate != 2) return 0;
    if (acr_buf_append_counted(&c->hdrs, at, len, grows(c)) < 0) {
        llhttp_set_error_reason(p, "out of memory");
        return HPE_USER;
    }
    c->harr[c->nharr - 1].value_len += len;
    return 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    acr__http_conn_t *c = p->data;
    if ((p->flags & F_TRAILING) || c->hstate != 2) return 0;
    acr_http_header_t *h = &c->harr[c->nharr - 1];
    while (h->value_len > 0) {
        char ch = c->hdrs.data[c->hdrs.len - 1];
        if (ch != ' ' && ch != '\t') break;
        c->hdrs.len--;
        h->value_len--;
    }
    c->hstate = 0;
    if (acr_buf_append_counted(&c->hdrs, "", 1, grows(c)) < 0) {
        llhttp_set_error_reason(p, "out of memory");
        return HPE_USER;
    }
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    acr__http_conn_t *c = p->data;
    c->status = p->status_code;
    for (size_t i = 0; i < c->nharr; i++) {
        acr_http_header_t *h = &c->harr[i];
        h->name = c->hdrs.data + (uintptr_t)h->name;
        h->value = h->value ? c->hdrs.data + (uintptr_t)h->value : h->name + h->name_len;
    }
    if (c->head_req || (c->status >= 100 && c->status < 200) || c->status == 204 ||
        c->status == 304)
        return 1; /* no body (llhttp cannot know: it never sees the request) */
    if (p->flags & F_CONTENT_LENGTH) {
        uint64_t want = p->content_length;
        size_t cap = c->s->c->body_cap;
        if (want > cap) want = cap;
        if (want > ACR__HTTP_READ_BUF) want = ACR__HTTP_READ_BUF;
        if (acr_buf_reserve_counted(&c->body, (size_t)want, grows(c)) < 0) {
            llhttp_set_error_reason(p, "out of memory");
            return -1;
        }
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    acr__http_conn_t *c = p->data;
    c->body_seen += len;
    size_t cap = c->s->c->body_cap;
    if (c->body.len < cap) {
        size_t n = cap - c->body.len < len ? cap - c->body.len : len;
        if (acr_buf_append_counted(&c->body, at, n, grows(c)) < 0) {
            llhttp_set_error_reason(p, "out of memory");
            return HPE_USER;
        }
    }
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    acr__http_conn_t *c = p->data;
    if (c->status >= 100 && c->status < 200 && c->status != 101) {
        reset_message(c); /* interim response: the real one follows */
        return 0;
    }
    c->msg_done = true;
    c->reusable = llhttp_should_keep_alive(p) && c->status != 101;
    return HPE_PAUSED;
}

static const llhttp_settings_t *settings(void)
{
    static llhttp_settings_t s;
    static bool init;
    if (!init) {
        llhttp_settings_init(&s);
        s.on_message_begin = on_message_begin;
        s.on_status = on_status;
        s.on_header_field = on_header_field;
        s.on_header_field_complete = on_header_field_complete;
        s.on_header_value = on_header_value;
        s.on_header_value_complete = on_header_value_complete;
        s.on_headers_complete = on_headers_complete;
        s.on_body = on_body;
        s.on_message_complete = on_message_complete;
        init = true;
    }
    return &s;
}

/* ---- lifecycle ---- */

acr__http_conn_t *acr__http_conn_new(acr_http_session_t *s, bool insecure)
{
    const acr__http_url_t *u = &s->u;
    acr__http_conn_t *c = calloc(1, sizeof *c + u->host_len + 1);
    if (!c) return NULL;
    c->s = s;
    memcpy(c->host, s->url.data + u->host_off, u->host_len);
    c->port = u->port;
    c->tls = u->tls;
    c->insecure = insecure;
    c->state = ACR__HTTP_CONN_CONNECTING;
    if (c->tls && acr__http_tls_attach(s->c->tls, c) < 0) {
        free(c);
        return NULL;
    }
    if (uv_tcp_init(s->c->loop, &c->tcp) < 0) {
        acr__http_tls_detach(c);
        free(c);
        return NULL;
    }
    c->tcp.data = c;
    llhttp_init(&c->parser, HTTP_RESPONSE, settings());
    c->parser.data = c; /* after llhttp_init, which zeroes it */
    c->next = s->conns;
    s->conns = c;
    s->c->stats.conns_opened++;
    s->c->nconns++;
    return c;
}

static void on_close(uv_handle_t *h)
{
    acr__http_conn_t *c = h->data;
    acr_http_session_t *s = c->s;
    acr__http_tls_detach(c);
    acr_buf_free(&c->hdrs);
    acr_buf_free(&c->body);
    acr_buf_free(&c->wq[0]);
    acr_buf_free(&c->wq[1]);
    free(c->harr);
    free(c->req);
    free(c);
    s->c->nconns--;
    acr__http_session_handle_closed(s);
}

void acr__http_conn_discard(acr__http_conn_t *c)
{
    if (c->state == ACR__HTTP_CONN_CLOSING) return;
    acr__http_conn_set_state(c, ACR__HTTP_CONN_CLOSING);
    acr_http_session_t *s = c->s;
    for (acr__http_conn_t **pp = &s->conns; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    c->next = NULL;
    if (s->cur == c) s->cur = NULL;
    s->pending_closes++;
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

/* True while request bytes are still queued. A write whose bytes all went out but whose callback
 * libuv has not run yet (it runs on the next loop iteration, often after the response was read
 * on loopback) does not count: the connection can take the next request. */
static bool write_busy(acr__http_conn_t *c)
{
    if (c->send_pending || uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > 0) return true;
    return c->tls && c->wq[c->wq_fill].len > 0;
}

void acr__http_conn_release(acr__http_conn_t *c)
{
    if (c->state != ACR__HTTP_CONN_ACTIVE) return;
    c->requests++;
    if (!c->reusable || write_busy(c)) {
        acr__http_conn_discard(c);
        return;
    }
    acr__http_conn_set_state(c, ACR__HTTP_CONN_IDLE);
}

void acr__http_conn_trim(acr__http_conn_t *c, size_t keep)
{
    if (c->state != ACR__HTTP_CONN_IDLE) return;
    /* An idle connection has no request bytes queued (acr__http_conn_release), so no pending write
     * still reads these buffers even when its callback has not run yet. */
    acr_buf_trim(&c->hdrs, keep);
    acr_buf_trim(&c->body, keep);
    acr_buf_trim(&c->wq[0], keep);
    acr_buf_trim(&c->wq[1], keep);
    c->nharr = 0;
    if (keep == 0 || c->harr_cap > 64) {
        free(c->harr);
        c->harr = NULL;
        c->harr_cap = 0;
    }
    if (keep == 0 && !c->writing) { /* the request struct is in use until on_write */
        free(c->req);
        c->req = NULL;
    }
}

static void report_error(acr__http_conn_t *c, int status, const char *err)
{
    if (c->state == ACR__HTTP_CONN_IDLE) { /* the peer closed a keep-alive connection: forget it */
        acr__http_conn_discard(c);
        return;
    }
    if (c->state == ACR__HTTP_CONN_CLOSING) return;
    acr__http_session_conn_event(c->s, c, ACR__HTTP_EV_ERROR, status, err);
}

/* ---- writing ---- */

static int write_buf(acr__http_conn_t *c, const uv_buf_t *buf);

static void on_write(uv_write_t *req, int status)
{
    acr__http_conn_t *c = req->data;
    c->writing = false;
    if (c->tls) c->wq[c->wq_fill ^ 1].len = 0;
    if (status == UV_ECANCELED || c->state == ACR__HTTP_CONN_CLOSING) return;
    if (status < 0) {
        report_error(c, status, NULL);
        return;
    }
    if (c->send_pending) {
        acr_http_session_t *s = c->s;
        uv_buf_t buf = uv_buf_init(s->out.data + c->send_off, (unsigned)(s->out.len - c->send_off));
        c->send_pending = false;
        int rc = write_buf(c, &buf);
        if (rc < 0) {
            report_error(c, rc, NULL);
            return;
        }
        return;
    }
    if (c->tls && c->wq[c->wq_fill].len > 0) {
        int rc = 0;
        acr_buf_t *b = &c->wq[c->wq_fill];
        uv_buf_t buf = uv_buf_init(b->data, (unsigned)b->len);
        c->wq_fill ^= 1;
        rc = write_buf(c, &buf);
        if (rc < 0) report_error(c, rc, NULL);
    }
}

/* Starts one uv_write of @buf with the connection's request struct (allocated at connect, kept
 * until acr__http_conn_trim), setting c->writing. 0 or a negative libuv error. */
static int write_buf(acr__http_conn_t *c, const uv_buf_t *buf)
{
    if (!c->req) {
        c->req = malloc(sizeof *c->req);
        if (!c->req) return UV_ENOMEM;
        (*grows(c))++;
    }
    c->req->write.data = c;
    int rc = uv_write(&c->req->write, (uv_stream_t *)&c->tcp, buf, 1, on_write);
    if (rc < 0) return rc;
    c->writing = true;
    return 0;
}

/* Sends what the TLS layer queued, unless a write is in flight (its callback continues). */
static int flush(acr__http_conn_t *c)
{
    if (c->writing || c->wq[c->wq_fill].len == 0) return 0;
    acr_buf_t *b = &c->wq[c->wq_fill];
    uv_buf_t buf = uv_buf_init(b->data, (unsigned)b->len);
    int rc = write_buf(c, &buf);
    if (rc < 0) return rc;
    c->wq_fill ^= 1;
    return 0;
}

int acr__http_conn_send(acr__http_conn_t *c, bool head, char *err, size_t errlen)
{
    acr_http_session_t *s = c->s;
    if (c->requests > 0) s->c->stats.conns_reused++;
    acr__http_conn_set_state(c, ACR__HTTP_CONN_ACTIVE);
    reset_message(c);
    c->msg_done = false;
    c->got_bytes = false;
    c->reusable = false;
    c->head_req = head;
    c->hdr_bytes = 0;
    c->t_sent = uv_hrtime();
    c->t_first = 0;
    if (c->tls) {
        int rc = acr__http_tls_write(c, s->out.data, s->out.len, err, errlen);
        if (rc < 0) return rc;
        return flush(c);
    }
    /* Most requests go out in one synchronous write, with no write request to track. Errors are
     * left to uv_write below, so they arrive through the callback like any other. */
    uv_buf_t buf = uv_buf_init(s->out.data, (unsigned)s->out.len);
    int w = uv_try_write((uv_stream_t *)&c->tcp, &buf, 1);
    if (w >= 0 && (size_t)w == s->out.len) return 0;
    size_t off = w > 0 ? (size_t)w : 0;
    if (c->writing) { /* the previous request's callback is pending: continue from it */
        c->send_off = (uint32_t)off;
        c->send_pending = true;
        return 0;
    }
    buf = uv_buf_init(s->out.data + off, (unsigned)(s->out.len - off));
    return write_buf(c, &buf);
}

/* ---- reading ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    acr__http_conn_t *c = h->data;
    *buf = uv_buf_init(c->s->c->rbuf, ACR__HTTP_READ_BUF);
}

static void response_done(acr__http_conn_t *c)
{
    acr__http_session_conn_event(c->s, c, ACR__HTTP_EV_RESPONSE, c->status, NULL);
}

/* Parses response bytes. Returns false when the connection must not be used further. */
static bool feed(acr__http_conn_t *c, const char *data, size_t len)
{
    if (c->state != ACR__HTTP_CONN_ACTIVE || c->msg_done) {
        /* bytes nobody asked for: the connection is out of step */
        if (c->state == ACR__HTTP_CONN_IDLE)
            acr__http_conn_discard(c);
        else
            c->reusable = false;
        return false;
    }
    if (!c->got_bytes) {
        c->got_bytes = true;
        c->t_first = uv_hrtime();
    }
    llhttp_errno_t err = llhttp_execute(&c->parser, data, len);
    if (err == HPE_OK) return true;
    if ((err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) && c->msg_done && write_busy(c)) {
        /* a whole response while request bytes are still queued: it cannot be the answer to
         * this request (a stale or early reply), so the request fails and the connection goes */
        c->reusable = false;
        report_error(c, UV_EPROTO,
                     "response before request: the target answered before the request was "
                     "fully sent");
        return false;
    }
    if ((err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) && c->msg_done) {
        const char *pos = llhttp_get_error_pos(&c->parser);
        if (pos && pos < data + len) c->reusable = false; /* extra bytes after the response */
        if (err == HPE_PAUSED) {
            llhttp_resume(&c->parser);
        } else {
            c->reusable = false; /* 101 Switching Protocols: not HTTP any more */
            llhttp_resume_after_upgrade(&c->parser);
        }
        response_done(c);
        return c->state != ACR__HTTP_CONN_CLOSING;
    }
    char msg[200];
    snprintf(msg, sizeof msg, "malformed response: %s", llhttp_get_error_reason(&c->parser));
    llhttp_reset(&c->parser);
    report_error(c, UV_EPROTO, msg);
    return false;
}

/* libuv reports UV_EOF without reading again when a partial read coincides with EPOLLHUP, so a
 * reset that arrives together with the last data looks like an orderly close. The socket's
 * pending error tells them apart. */
static int pending_socket_error(acr__http_conn_t *c, int status)
{
    uv_os_fd_t fd;
    int err = 0;
    socklen_t len = sizeof err;
    if (status != UV_EOF || uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0) return status;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err == 0) return status;
    return -err;
}

static void on_eof(acr__http_conn_t *c, int status)
{
    status = pending_socket_error(c, status);
    if (c->state == ACR__HTTP_CONN_ACTIVE && status == UV_EOF && c->got_bytes && !c->msg_done) {
        llhttp_errno_t err = llhttp_finish(&c->parser);
        if (err == HPE_PAUSED && c->msg_done) {
            c->reusable = false;
            llhttp_resume(&c->parser);
            response_done(c);
            return;
        }
    }
    report_error(c, status, NULL);
}

static void tls_ready(acr__http_conn_t *c)
{
    c->t_ready = uv_hrtime();
    acr__http_session_conn_event(c->s, c, ACR__HTTP_EV_READY, 0, NULL);
}

static void on_read_tls(acr__http_conn_t *c, const char *data, size_t len)
{
    char err[256];
    c->tls_in = data;
    c->tls_in_len = len;
    if (!c->tls_done) {
        int r = acr__http_tls_handshake(c, err, sizeof err);
        int frc = flush(c);
        if (r < 0) {
            report_error(c, UV_EPROTO, err);
            return;
        }
        if (frc < 0) {
            report_error(c, frc, NULL);
            return;
        }
        if (r == 0) {
            if (c->tls_eof)
                report_error(c, UV_EOF, "TLS handshake failed: connection closed by peer");
            return;
        }
        tls_ready(c);
        if (c->state == ACR__HTTP_CONN_CLOSING) return;
    }
    char *out = c->s->c->tlsbuf;
    uint32_t done0 = c->requests;
    for (;;) {
        int n = acr__http_tls_read(c, out, ACR__HTTP_TLS_BUF, err, sizeof err);
        int frc = flush(c);
        if (n > 0 && c->requests != done0) {
            /* more data after a response in the same read: the peer is out of step (a request
             * started from the completion callback cannot have its answer yet) */
            report_error(c, UV_EPROTO, "malformed response: data after the response");
            return;
        }
        if (n > 0) {
            if (!feed(c, out, (size_t)n)) return;
            continue;
        }
        if (n == 0) {
            if (frc < 0) report_error(c, frc, NULL);
            break;
        }
        if (n == UV_EOF)
            on_eof(c, UV_EOF);
        else
            report_error(c, UV_EPROTO, err);
        return;
    }
    c->tls_in = NULL;
    c->tls_in_len = 0;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    acr__http_conn_t *c = stream->data;
    if (nread == 0 || c->state == ACR__HTTP_CONN_CLOSING) return;
    if (nread < 0) {
        if (c->tls && nread == UV_EOF && c->state != ACR__HTTP_CONN_IDLE) {
            c->tls_eof = true;
            on_read_tls(c, NULL, 0);
            return;
        }
        uv_read_stop(stream);
        if (nread == UV_EOF)
            on_eof(c, UV_EOF);
        else
            report_error(c, (int)nread, NULL);
        return;
    }
    if (c->tls)
        on_read_tls(c, buf->base, (size_t)nread);
    else
        feed(c, buf->base, (size_t)nread);
}

/* ---- connecting ---- */

static void on_connect(uv_connect_t *req, int status)
{
    acr__http_conn_t *c = req->data;
    if (status == UV_ECANCELED || c->state == ACR__HTTP_CONN_CLOSING) return;
    if (status < 0) {
        report_error(c, status, NULL);
        return;
    }
    c->t_connected = uv_hrtime();
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc < 0) {
        report_error(c, rc, NULL);
        return;
    }
    if (!c->tls) {
        c->t_ready = c->t_connected;
        acr__http_session_conn_event(c->s, c, ACR__HTTP_EV_READY, 0, NULL);
        return;
    }
    acr__http_conn_set_state(c, ACR__HTTP_CONN_HANDSHAKE);
    on_read_tls(c, NULL, 0); /* writes the ClientHello */
}

int acr__http_conn_connect(acr__http_conn_t *c, const struct sockaddr *addr)
{
    c->t_start = uv_hrtime();
    if (!c->req) {
        c->req = malloc(sizeof *c->req);
        if (!c->req) return UV_ENOMEM;
    }
    c->req->connect.data = c;
    uv_tcp_nodelay(&c->tcp, 1);
    return uv_tcp_connect(&c->req->connect, &c->tcp, addr, on_connect);
}
