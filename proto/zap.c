/*
 * The master's ZAP handler (proto/zap.h): one thread answering libzmq's authentication requests.
 * A request is 7 frames (version "1.0", request id, domain, address, routing id, mechanism,
 * credentials: the client's 32-byte public key for CURVE); the reply is 6 frames (version,
 * request id, status "200" or "400", status text, user id, metadata).
 */
#include "proto/zap.h"

#include "common/log.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define REQ_FRAMES 7
#define SUMMARY_S 10 /* seconds between two log lines about refusals */

struct acr_zap {
    void *sock;
    void *monitor; /* PAIR connected to the ROUTER's monitor: failed handshakes */
    pthread_t thread;
    uint8_t allowed[32];
    _Atomic uint64_t refused, admitted;
    /* the thread's own: the summary of refusals since the last log line, by reason */
    uint64_t unlogged, unlogged_handshake, unlogged_key;
    char last_addr[64];
    double last_log;
};

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Receives one multipart request into @f (at most REQ_FRAMES frames kept; more are read and
 * dropped). Returns the frame count, or -1 when the context is ending (ETERM). */
static int recv_request(void *sock, zmq_msg_t *f)
{
    int n = 0;
    for (;;) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, sock, 0) < 0) {
            zmq_msg_close(&part);
            if (zmq_errno() == EINTR) continue;
            for (int i = 0; i < n && i < REQ_FRAMES; i++) zmq_msg_close(&f[i]);
            return -1;
        }
        bool more = zmq_msg_more(&part);
        if (n < REQ_FRAMES)
            f[n] = part;
        else
            zmq_msg_close(&part);
        n++;
        if (!more) return n;
    }
}

static void send_frame(void *sock, const void *data, size_t len, bool more)
{
    zmq_send(sock, data, len, more ? ZMQ_SNDMORE : 0);
}

static void reply(void *sock, const zmq_msg_t *reqid, bool ok)
{
    send_frame(sock, "1.0", 3, true);
    send_frame(sock, reqid ? zmq_msg_data((zmq_msg_t *)reqid) : "",
               reqid ? zmq_msg_size((zmq_msg_t *)reqid) : 0, true);
    send_frame(sock, ok ? "200" : "400", 3, true);
    send_frame(sock, ok ? "OK" : "not a cluster key", ok ? 2 : 17, true);
    send_frame(sock, "", 0, true);
    send_frame(sock, "", 0, false);
}

/* The peer's address as text for the log, escaped (it came from libzmq, but never trust). */
static void copy_addr(char *dst, size_t n, zmq_msg_t *m)
{
    acr_log_escape(dst, n, zmq_msg_data(m), zmq_msg_size(m));
}

/* @handshake: a failed CURVE handshake (no key, or another master's); else a ZAP refusal. */
static void note_refusal(acr_zap_t *z, zmq_msg_t *addr, bool handshake, const char *why)
{
    atomic_fetch_add(&z->refused, 1);
    if (addr) copy_addr(z->last_addr, sizeof z->last_addr, addr);
    z->unlogged++;
    if (handshake)
        z->unlogged_handshake++;
    else
        z->unlogged_key++;
    double now = mono_s();
    if (z->last_log > 0 && now - z->last_log < SUMMARY_S) return;
    if (z->unlogged == 1 && z->last_addr[0] && !handshake)
        ACR_WARN("refused a peer from %s on the master port: %s (the cluster key is required)",
                 z->last_addr, why);
    else if (z->unlogged == 1)
        ACR_WARN("refused a peer on the master port: %s (no cluster key, or another one)", why);
    else
        ACR_WARN("refused %llu peers on the master port since the last report: %llu failed the "
                 "CURVE handshake (no cluster key, or another one), %llu presented an unknown "
                 "public key%s%s",
                 (unsigned long long)z->unlogged, (unsigned long long)z->unlogged_handshake,
                 (unsigned long long)z->unlogged_key, z->last_addr[0] ? "; last from " : "",
                 z->last_addr);
    z->unlogged = z->unlogged_handshake = z->unlogged_key = 0;
    z->last_log = now;
}

static void handle(acr_zap_t *z, zmq_msg_t *f, int n)
{
    if (n != REQ_FRAMES || zmq_msg_size(&f[0]) != 3 || memcmp(zmq_msg_data(&f[0]), "1.0", 3)) {
        note_refusal(z, n > 3 ? &f[3] : NULL, false, "malformed ZAP request");
        reply(z->sock, n > 1 ? &f[1] : NULL, false);
        return;
    }
    bool curve = zmq_msg_size(&f[5]) == 5 && memcmp(zmq_msg_data(&f[5]), "CURVE", 5) == 0;
    bool ok =
        curve && zmq_msg_size(&f[6]) == 32 && memcmp(zmq_msg_data(&f[6]), z->allowed, 32) == 0;
    if (ok)
        atomic_fetch_add(&z->admitted, 1);
    else
        note_refusal(z, &f[3], false, curve ? "unknown public key" : "not CURVE");
    reply(z->sock, &f[1], ok);
}

/* One monitor event (2 frames: event id and value, then an endpoint); a failed handshake is a
 * peer without the cluster key (no CURVE, or keys that do not match the master's). Returns -1
 * when the context is ending. */
static int monitor_event(acr_zap_t *z)
{
    uint8_t ev[6];
    int n = zmq_recv(z->monitor, ev, sizeof ev, 0);
    if (n < 0) return zmq_errno() == EINTR ? 0 : -1;
    int more = 0;
    size_t ml = sizeof more;
    while (zmq_getsockopt(z->monitor, ZMQ_RCVMORE, &more, &ml) == 0 && more) {
        char skip[256];
        if (zmq_recv(z->monitor, skip, sizeof skip, 0) < 0) return -1;
    }
    if (n == (int)sizeof ev) note_refusal(z, NULL, true, "failed CURVE handshake");
    return 0;
}

static void *run(void *arg)
{
    acr_zap_t *z = arg;
    for (;;) {
        zmq_pollitem_t items[2] = {{z->sock, 0, ZMQ_POLLIN, 0}, {z->monitor, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, z->monitor ? 2 : 1, -1) < 0) {
            if (zmq_errno() == EINTR) continue;
            break;
        }
        if (items[1].revents & ZMQ_POLLIN && monitor_event(z) < 0) break;
        if (!(items[0].revents & ZMQ_POLLIN)) continue;
        zmq_msg_t f[REQ_FRAMES];
        int n = recv_request(z->sock, f);
        if (n < 0) break;
        handle(z, f, n);
        for (int i = 0; i < n && i < REQ_FRAMES; i++) zmq_msg_close(&f[i]);
    }
    zmq_close(z->sock);
    if (z->monitor) zmq_close(z->monitor);
    return NULL;
}

/* Failed handshakes are not ZAP requests: libzmq reports them on a monitor of the ROUTER. */
static int start_monitor(acr_zap_t *z, void *ctx, void *router)
{
    char ep[64];
    int linger = 0;
    snprintf(ep, sizeof ep, "inproc://acrida-zap-monitor-%p", (void *)z);
    if (zmq_socket_monitor(router, ep,
                           ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) != 0)
        return -1;
    z->monitor = zmq_socket(ctx, ZMQ_PAIR);
    if (!z->monitor || zmq_setsockopt(z->monitor, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_connect(z->monitor, ep)) {
        if (z->monitor) zmq_close(z->monitor);
        z->monitor = NULL;
        return -1;
    }
    return 0;
}

int acr_zap_start(void *ctx, void *router, const char *worker_public, acr_zap_t **out)
{
    *out = NULL;
    acr_zap_t *z = calloc(1, sizeof(*z));
    if (!z) return -ENOMEM;
    if (!zmq_z85_decode(z->allowed, worker_public)) {
        free(z);
        return -EINVAL;
    }
    int linger = 0;
    z->sock = zmq_socket(ctx, ZMQ_REP);
    if (!z->sock || zmq_setsockopt(z->sock, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_bind(z->sock, ZAP_ENDPOINT) || start_monitor(z, ctx, router)) {
        int e = zmq_errno();
        if (z->sock) zmq_close(z->sock);
        free(z);
        return e > 0 ? -e : -EIO;
    }
    /* the thread inherits a mask blocking every signal: they stay with the loop's thread */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int r = pthread_create(&z->thread, NULL, run, z);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r) {
        zmq_close(z->sock);
        zmq_close(z->monitor);
        free(z);
        return -r;
    }
    *out = z;
    return 0;
}

void acr_zap_stop(acr_zap_t *z)
{
    if (!z) return;
    pthread_join(z->thread, NULL);
    memset(z->allowed, 0, sizeof z->allowed);
    free(z);
}

uint64_t acr_zap_refused(const acr_zap_t *z)
{
    return atomic_load(&((acr_zap_t *)z)->refused);
}

uint64_t acr_zap_admitted(const acr_zap_t *z)
{
    return atomic_load(&((acr_zap_t *)z)->admitted);
}
