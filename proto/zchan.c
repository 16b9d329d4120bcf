/*
 * ZeroMQ ROUTER/DEALER sockets inside a libuv loop (docs/platform-notes.md, ZeroMQ).
 *
 * ZMQ_FD is edge-triggered: it signals a change of the socket's state, not "data available". So
 * the channel (1) drains by looping on ZMQ_EVENTS (never on the fd) until POLLIN is clear,
 * (2) re-reads ZMQ_EVENTS after every send, scheduling a drain on a uv_idle when input is
 * pending, and (3) stops after DRAIN_BUDGET messages per callback and resumes on the uv_idle so
 * one busy peer cannot starve the loop. The receive callback may send and may close the channel:
 * close is deferred to the end of the drain and memory is freed in the last close_cb.
 *
 * Socket options: LINGER 0, MAXMSGSIZE ACR_MSG_MAX_FRAME, TCP_KEEPALIVE 1 / IDLE 30 (as Locust),
 * SNDHWM/RCVHWM 10000 messages (Locust: libzmq's 1000; larger so a burst of stats or spawns from
 * many workers is not refused), ROUTER_MANDATORY 1 on the ROUTER (unknown peer -> EHOSTUNREACH,
 * full peer -> EAGAIN instead of a silent drop).
 */
#include "proto/zchan.h"

#include "common/keys.h"
#include "proto/msg.h"
#include "proto/proto.h"
#include "proto/zap.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define DRAIN_BUDGET 1000
#define ZCHAN_HWM 10000

struct acr_zchan {
    uv_loop_t *loop;
    void *ctx, *sock;
    bool router;
    bool draining;     /* inside drain(): the recv callback may be running */
    bool closing;      /* acr_zchan_close() was called */
    bool close_queued; /* the uv handles are being closed */
    int open_handles;
    uv_poll_t poll;
    uv_idle_t idle; /* deferred drain (after a send or when the budget ran out) */
    acr_zchan_recv_cb cb;
    void *ud;
    uint64_t dropped;
    acr_zap_t *zap; /* the ROUTER's authentication thread, with a cluster key */
    void (*closed_cb)(void *ud);
    void *closed_ud;
};

static int zerr(void)
{
    int e = zmq_errno();
    return e > 0 ? -e : -EIO;
}

static int zevents(acr_zchan_t *ch)
{
    int ev = 0;
    size_t n = sizeof(ev);
    if (zmq_getsockopt(ch->sock, ZMQ_EVENTS, &ev, &n) != 0) return 0;
    return ev;
}

static void do_close(acr_zchan_t *ch);

/* Receives one whole multipart message; returns 1 when one was consumed, 0 when none was
 * pending. Messages with the wrong number of frames are dropped and counted. */
static int recv_one(acr_zchan_t *ch)
{
    const unsigned want = ch->router ? 2 : 1;
    zmq_msg_t parts[2];
    unsigned got = 0, total = 0;
    int more = 0;

    do {
        zmq_msg_t tmp, *m = got < want ? &parts[got] : &tmp;
        zmq_msg_init(m);
        if (zmq_msg_recv(m, ch->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(m);
            if (total == 0) goto none; /* EAGAIN: nothing pending */
            break;                     /* cannot happen: multipart messages are atomic */
        }
        more = zmq_msg_more(m);
        total++;
        if (m == &tmp)
            zmq_msg_close(m);
        else
            got++;
    } while (more);

    if (total != want) {
        ch->dropped++;
    } else if (ch->router) {
        ch->cb(ch, zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]), zmq_msg_data(&parts[1]),
               zmq_msg_size(&parts[1]), ch->ud);
    } else {
        ch->cb(ch, NULL, 0, zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]), ch->ud);
    }
    for (unsigned i = 0; i < got; i++) zmq_msg_close(&parts[i]);
    return 1;
none:
    for (unsigned i = 0; i < got; i++) zmq_msg_close(&parts[i]);
    return 0;
}

static void idle_cb(uv_idle_t *h);

static void drain(acr_zchan_t *ch)
{
    if (ch->draining || ch->closing) return;
    ch->draining = true;
    unsigned handled = 0;
    bool pending = false;
    while (!ch->closing) {
        if (!(zevents(ch) & ZMQ_POLLIN)) break;
        if (handled == DRAIN_BUDGET) {
            pending = true;
            break;
        }
        if (!recv_one(ch)) break;
        handled++;
    }
    ch->draining = false;
    if (ch->closing) {
        do_close(ch);
        return;
    }
    if (pending)
        uv_idle_start(&ch->idle, idle_cb);
    else
        uv_idle_stop(&ch->idle);
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    drain(acr_container_of(h, acr_zchan_t, poll));
}

static void idle_cb(uv_idle_t *h)
{
    acr_zchan_t *ch = acr_container_of(h, acr_zchan_t, idle);
    uv_idle_stop(h);
    drain(ch);
}

static int set_opts(acr_zchan_t *ch)
{
    int linger = 0, one = 1, idle = 30, hwm = ZCHAN_HWM;
    int64_t maxsz = ACR_MSG_MAX_FRAME;
    if (zmq_setsockopt(ch->sock, ZMQ_LINGER, &linger, sizeof(linger)) ||
        zmq_setsockopt(ch->sock, ZMQ_MAXMSGSIZE, &maxsz, sizeof(maxsz)) ||
        zmq_setsockopt(ch->sock, ZMQ_TCP_KEEPALIVE, &one, sizeof(one)) ||
        zmq_setsockopt(ch->sock, ZMQ_TCP_KEEPALIVE_IDLE, &idle, sizeof(idle)) ||
        zmq_setsockopt(ch->sock, ZMQ_SNDHWM, &hwm, sizeof(hwm)) ||
        zmq_setsockopt(ch->sock, ZMQ_RCVHWM, &hwm, sizeof(hwm)))
        return zerr();
    if (ch->router && zmq_setsockopt(ch->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof(one)))
        return zerr();
    return 0;
}

/* Creates the context and socket; the uv handles come later (start_poll). */
static int chan_new(uv_loop_t *loop, bool router, acr_zchan_recv_cb cb, void *ud, acr_zchan_t **out)
{
    acr_zchan_t *ch = calloc(1, sizeof(*ch));
    if (!ch) return -ENOMEM;
    ch->loop = loop;
    ch->router = router;
    ch->cb = cb;
    ch->ud = ud;
    ch->ctx = zmq_ctx_new();
    if (!ch->ctx) {
        free(ch);
        return -ENOMEM;
    }
    ch->sock = zmq_socket(ch->ctx, router ? ZMQ_ROUTER : ZMQ_DEALER);
    if (!ch->sock) {
        int r = zerr();
        zmq_ctx_term(ch->ctx);
        free(ch);
        return r;
    }
    *out = ch;
    return 0;
}

/* Closes the socket, ends the ZAP thread (a shutdown context fails its blocking receive) and
 * terminates the context. */
static void chan_release(acr_zchan_t *ch)
{
    zmq_close(ch->sock);
    if (ch->zap) {
        zmq_ctx_shutdown(ch->ctx);
        acr_zap_stop(ch->zap);
        ch->zap = NULL;
    }
    zmq_ctx_term(ch->ctx);
}

/* Frees a channel whose uv handles were never started. */
static void chan_destroy(acr_zchan_t *ch)
{
    chan_release(ch);
    free(ch);
}

/* CURVE for a channel with a cluster key: the server side (with its ZAP handler, bound before the
 * ROUTER binds so that no peer is ever let in unchecked) or the client side. */
static int set_curve(acr_zchan_t *ch, const acr_keys_t *k)
{
    if (!k) return 0;
    int one = 1;
    if (ch->router) {
        int r = acr_zap_start(ch->ctx, ch->sock, k->worker_public, &ch->zap);
        if (r) return r;
        if (zmq_setsockopt(ch->sock, ZMQ_CURVE_SERVER, &one, sizeof one) ||
            zmq_setsockopt(ch->sock, ZMQ_CURVE_SECRETKEY, k->master_secret, ACR_KEY_Z85_LEN) ||
            zmq_setsockopt(ch->sock, ZMQ_ZAP_DOMAIN, "acrida", 6))
            return zerr();
        return 0;
    }
    if (zmq_setsockopt(ch->sock, ZMQ_CURVE_SERVERKEY, k->master_public, ACR_KEY_Z85_LEN) ||
        zmq_setsockopt(ch->sock, ZMQ_CURVE_PUBLICKEY, k->worker_public, ACR_KEY_Z85_LEN) ||
        zmq_setsockopt(ch->sock, ZMQ_CURVE_SECRETKEY, k->worker_secret, ACR_KEY_Z85_LEN))
        return zerr();
    return 0;
}

static int start_poll(acr_zchan_t *ch)
{
    int fd;
    size_t n = sizeof(fd);
    if (zmq_getsockopt(ch->sock, ZMQ_FD, &fd, &n) != 0) return zerr();
    int r = uv_poll_init(ch->loop, &ch->poll, fd);
    if (r) return r;
    ch->open_handles = 1;
    uv_idle_init(ch->loop, &ch->idle);
    ch->open_handles = 2;
    r = uv_poll_start(&ch->poll, UV_READABLE, poll_cb);
    if (r) return r;
    /* Anything already queued (or an edge consumed before the poll started) is picked up by one
     * drain on the next loop iteration. */
    uv_idle_start(&ch->idle, idle_cb);
    return 0;
}

static void fmt_endpoint(char *buf, size_t n, const char *host, int port)
{
    if (strchr(host, ':'))
        snprintf(buf, n, "tcp://[%s]:%d", host, port);
    else
        snprintf(buf, n, "tcp://%s:%d", host, port);
}

static int enable_ipv6(acr_zchan_t *ch, const char *host)
{
    int one = 1;
    if (!strchr(host, ':')) return 0;
    return zmq_setsockopt(ch->sock, ZMQ_IPV6, &one, sizeof(one)) ? zerr() : 0;
}

int acr_zchan_bind(uv_loop_t *loop, const char *host, int port, acr_zchan_recv_cb cb, void *ud,
                   acr_zchan_t **out, int *bound_port, char *err, size_t errlen)
{
    return acr_zchan_bind_keyed(loop, host, port, NULL, cb, ud, out, bound_port, err, errlen);
}

int acr_zchan_bind_keyed(uv_loop_t *loop, const char *host, int port, const acr_keys_t *keys,
                         acr_zchan_recv_cb cb, void *ud, acr_zchan_t **out, int *bound_port,
                         char *err, size_t errlen)
{
    acr_zchan_t *ch = NULL;
    char ep[300], last[300];
    size_t n = sizeof(last);
    int r;

    *out = NULL;
    if (port < 0 || port > 65535) {
        snprintf(err, errlen, "bind: bad port %d", port);
        return -EINVAL;
    }
    fmt_endpoint(ep, sizeof(ep), host, port);
    r = chan_new(loop, true, cb, ud, &ch);
    if (r) {
        snprintf(err, errlen, "bind %s: %s", ep, r == -ENOMEM ? "out of memory" : zmq_strerror(-r));
        return r;
    }
    if ((r = set_opts(ch)) || (r = enable_ipv6(ch, host)) || (r = set_curve(ch, keys))) {
        snprintf(err, errlen, "bind %s: setsockopt: %s", ep, zmq_strerror(-r));
        goto fail;
    }
    if (zmq_bind(ch->sock, ep) != 0) {
        r = zerr();
        snprintf(err, errlen, "bind %s: %s", ep, zmq_strerror(-r));
        goto fail;
    }
    if (zmq_getsockopt(ch->sock, ZMQ_LAST_ENDPOINT, last, &n) != 0) {
        r = zerr();
        snprintf(err, errlen, "bind %s: last endpoint: %s", ep, zmq_strerror(-r));
        goto fail;
    }
    last[sizeof(last) - 1] = '\0';
    const char *colon = strrchr(last, ':');
    int real = colon ? atoi(colon + 1) : 0;
    if (real <= 0) {
        r = -EIO;
        snprintf(err, errlen, "bind %s: cannot read the bound port from '%s'", ep, last);
        goto fail;
    }
    if (bound_port) *bound_port = real;
    if ((r = start_poll(ch))) {
        snprintf(err, errlen, "bind %s: uv_poll: %s", ep, uv_strerror(r));
        goto fail_handles;
    }
    *out = ch;
    return 0;
fail_handles:
    if (ch->open_handles) {
        /* The handles must be closed through the loop; the memory goes in close_cb. */
        acr_zchan_close(ch, NULL, NULL);
        return r;
    }
fail:
    chan_destroy(ch);
    return r;
}

int acr_zchan_connect(uv_loop_t *loop, const char *host, int port, const char *identity,
                      acr_zchan_recv_cb cb, void *ud, acr_zchan_t **out, char *err, size_t errlen)
{
    return acr_zchan_connect_keyed(loop, host, port, identity, NULL, cb, ud, out, err, errlen);
}

int acr_zchan_connect_keyed(uv_loop_t *loop, const char *host, int port, const char *identity,
                            const acr_keys_t *keys, acr_zchan_recv_cb cb, void *ud,
                            acr_zchan_t **out, char *err, size_t errlen)
{
    acr_zchan_t *ch = NULL;
    char ep[300];
    int r;

    *out = NULL;
    if (port <= 0 || port > 65535) {
        snprintf(err, errlen, "connect: bad port %d", port);
        return -EINVAL;
    }
    fmt_endpoint(ep, sizeof(ep), host, port);
    size_t idlen = identity ? strlen(identity) : 0;
    if (idlen == 0 || idlen > ACR_PROTO_NODE_ID_MAX) {
        snprintf(err, errlen, "connect %s: routing id must be 1..%d bytes", ep,
                 ACR_PROTO_NODE_ID_MAX);
        return -EINVAL;
    }
    r = chan_new(loop, false, cb, ud, &ch);
    if (r) {
        snprintf(err, errlen, "connect %s: %s", ep,
                 r == -ENOMEM ? "out of memory" : zmq_strerror(-r));
        return r;
    }
    if ((r = set_opts(ch)) || (r = enable_ipv6(ch, host)) || (r = set_curve(ch, keys)) ||
        (zmq_setsockopt(ch->sock, ZMQ_ROUTING_ID, identity, idlen) != 0 && (r = zerr()))) {
        snprintf(err, errlen, "connect %s: setsockopt: %s", ep, zmq_strerror(-r));
        goto fail;
    }
    if (zmq_connect(ch->sock, ep) != 0) {
        r = zerr();
        snprintf(err, errlen, "connect %s: %s", ep, zmq_strerror(-r));
        goto fail;
    }
    if ((r = start_poll(ch))) {
        snprintf(err, errlen, "connect %s: uv_poll: %s", ep, uv_strerror(r));
        if (ch->open_handles) {
            acr_zchan_close(ch, NULL, NULL);
            return r;
        }
        goto fail;
    }
    *out = ch;
    return 0;
fail:
    chan_destroy(ch);
    return r;
}

int acr_zchan_send(acr_zchan_t *ch, const char *peer, size_t peer_len, const void *data, size_t len)
{
    int r = 0;
    if (ch->closing) return -ECANCELED;
    if (ch->router) {
        if (!peer || peer_len == 0) return -EINVAL;
        if (zmq_send(ch->sock, peer, peer_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
            r = zerr();
            goto out;
        }
    }
    if (zmq_send(ch->sock, data, len, ZMQ_DONTWAIT) < 0) r = zerr();
out:
    /* A send may consume the readiness edge: re-check and drain from the loop if input waits.
     * Inside drain() the loop re-reads ZMQ_EVENTS itself. */
    if (!ch->draining && (zevents(ch) & ZMQ_POLLIN)) uv_idle_start(&ch->idle, idle_cb);
    return r;
}

bool acr_zchan_kick(acr_zchan_t *ch)
{
    if (ch->closing || ch->draining || !(zevents(ch) & ZMQ_POLLIN)) return false;
    uv_idle_start(&ch->idle, idle_cb);
    return true;
}

uint64_t acr_zchan_dropped(const acr_zchan_t *ch)
{
    return ch->dropped;
}

uint64_t acr_zchan_refused(const acr_zchan_t *ch)
{
    return ch->zap ? acr_zap_refused(ch->zap) : 0;
}

static void handle_closed(uv_handle_t *h)
{
    acr_zchan_t *ch = h->data;
    if (--ch->open_handles > 0) return;
    chan_release(ch);
    void (*cb)(void *) = ch->closed_cb;
    void *ud = ch->closed_ud;
    free(ch);
    if (cb) cb(ud);
}

static void do_close(acr_zchan_t *ch)
{
    if (ch->close_queued) return;
    ch->close_queued = true;
    /* open_handles >= 1 here: channels without handles are freed by chan_destroy(). The fd
     * stays open (zmq_close comes in the last close_cb) until libuv has let go of it. */
    int n = ch->open_handles;
    ch->poll.data = ch;
    uv_poll_stop(&ch->poll);
    uv_close((uv_handle_t *)&ch->poll, handle_closed);
    if (n >= 2) {
        ch->idle.data = ch;
        uv_idle_stop(&ch->idle);
        uv_close((uv_handle_t *)&ch->idle, handle_closed);
    }
}

void acr_zchan_close(acr_zchan_t *ch, void (*closed_cb)(void *ud), void *ud)
{
    if (!ch || ch->closing) return;
    ch->closing = true;
    ch->closed_cb = closed_cb;
    ch->closed_ud = ud;
    if (!ch->draining) do_close(ch);
}
