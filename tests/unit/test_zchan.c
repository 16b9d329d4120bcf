/*
 * Unit tests of proto/zchan: a ROUTER and a DEALER in one libuv loop over tcp://127.0.0.1.
 * The ping-pong tests stall (and hit the watchdog) if ZMQ_FD's edge-triggered readiness is not
 * handled after sends; the burst test exceeds the per-callback budget; the others cover port 0,
 * bind errors, unknown peers, closing from inside the callback and dropped multipart frames.
 * Every test runs the loop to completion and checks uv_loop_close() (no handle left open).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "proto/zchan.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define N_MSGS 10000
#define WATCHDOG_MS 60000 /* catches a stall, not a slow machine: all 7 tests take ~2 s idle */

typedef struct ctx {
    uv_loop_t loop;
    uv_timer_t watchdog;
    uv_timer_t kick;
    acr_zchan_t *router, *dealer;
    int port;
    unsigned router_got, dealer_got, dealer_sent;
    unsigned closed;
    bool timed_out, bad_payload, deferred;
    char peer[64];
    size_t peer_len;
    unsigned pending_replies;
} ctx_t;

static void on_closed(void *ud)
{
    ((ctx_t *)ud)->closed++;
}

static void close_all(ctx_t *c)
{
    if (c->router) acr_zchan_close(c->router, on_closed, c);
    if (c->dealer) acr_zchan_close(c->dealer, on_closed, c);
    c->router = c->dealer = NULL;
    uv_timer_stop(&c->watchdog);
    uv_timer_stop(&c->kick);
}

static void watchdog_cb(uv_timer_t *t)
{
    ctx_t *c = t->data;
    c->timed_out = true;
    close_all(c);
}

static void ctx_init(ctx_t *c)
{
    memset(c, 0, sizeof(*c));
    assert_int_equal(uv_loop_init(&c->loop), 0);
    uv_timer_init(&c->loop, &c->watchdog);
    uv_timer_init(&c->loop, &c->kick);
    c->watchdog.data = c->kick.data = c;
    uv_timer_start(&c->watchdog, watchdog_cb, WATCHDOG_MS, 0);
}

static void ctx_finish(ctx_t *c, unsigned expect_closed)
{
    /* Runs until both channels are closed (close_all stops the timers) or the watchdog fires. */
    uv_run(&c->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&c->watchdog, NULL);
    uv_close((uv_handle_t *)&c->kick, NULL);
    assert_int_equal(uv_run(&c->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(c->closed, expect_closed);
    assert_int_equal(uv_loop_close(&c->loop), 0);
    if (c->timed_out)
        fail_msg("watchdog: stalled with router_got %u, dealer_got %u, dealer_sent %u",
                 c->router_got, c->dealer_got, c->dealer_sent);
}

static void bind_and_connect(ctx_t *c, acr_zchan_recv_cb rcb, acr_zchan_recv_cb dcb)
{
    char err[256] = "";
    int r =
        acr_zchan_bind(&c->loop, "127.0.0.1", 0, rcb, c, &c->router, &c->port, err, sizeof(err));
    if (r) fail_msg("bind: %d %s", r, err);
    assert_true(c->port > 0 && c->port < 65536);
    r = acr_zchan_connect(&c->loop, "127.0.0.1", c->port, "worker-1", dcb, c, &c->dealer, err,
                          sizeof(err));
    if (r) fail_msg("connect: %d %s", r, err);
}

static int send_seq(acr_zchan_t *ch, const char *peer, size_t plen, unsigned seq)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%u", seq);
    return acr_zchan_send(ch, peer, plen, buf, (size_t)n);
}

static bool payload_is(const void *data, size_t len, unsigned seq)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%u", seq);
    return len == (size_t)n && memcmp(data, buf, len) == 0;
}

/* ---- ping-pong: replies sent inside the callback, or deferred to a timer ---- */

static void kick_cb(uv_timer_t *t);

static void pp_router_cb(acr_zchan_t *ch, const char *peer, size_t plen, const void *data,
                         size_t len, void *ud)
{
    ctx_t *c = ud;
    if (!payload_is(data, len, c->router_got)) c->bad_payload = true;
    c->router_got++;
    if (plen != 8 || memcmp(peer, "worker-1", 8) != 0) c->bad_payload = true;
    if (c->deferred) {
        memcpy(c->peer, peer, plen);
        c->peer_len = plen;
        c->pending_replies++;
        uv_timer_start(&c->kick, kick_cb, 0, 0);
        return;
    }
    assert_int_equal(acr_zchan_send(ch, peer, plen, data, len), 0);
}

static void pp_dealer_cb(acr_zchan_t *ch, const char *peer, size_t plen, const void *data,
                         size_t len, void *ud)
{
    ctx_t *c = ud;
    (void)ch;
    if (peer || plen) c->bad_payload = true;
    if (!payload_is(data, len, c->dealer_got)) c->bad_payload = true;
    c->dealer_got++;
    if (c->dealer_got == N_MSGS) {
        close_all(c);
        return;
    }
    if (c->deferred) {
        uv_timer_start(&c->kick, kick_cb, 0, 0);
        return;
    }
    assert_int_equal(send_seq(c->dealer, NULL, 0, c->dealer_sent++), 0);
}

/* Deferred sends: outside any zchan callback, from a timer. */
static void kick_cb(uv_timer_t *t)
{
    ctx_t *c = t->data;
    for (; c->pending_replies; c->pending_replies--)
        assert_int_equal(send_seq(c->router, c->peer, c->peer_len, c->router_got - 1), 0);
    if (c->dealer_sent == c->dealer_got && c->dealer_sent < N_MSGS)
        assert_int_equal(send_seq(c->dealer, NULL, 0, c->dealer_sent++), 0);
}

static void run_pingpong(bool deferred)
{
    ctx_t c;
    ctx_init(&c);
    c.deferred = deferred;
    bind_and_connect(&c, pp_router_cb, pp_dealer_cb);
    /* First send before the loop runs and before the connection exists: it is queued. */
    assert_int_equal(send_seq(c.dealer, NULL, 0, c.dealer_sent++), 0);
    ctx_finish(&c, 2);
    assert_int_equal(c.router_got, N_MSGS);
    assert_int_equal(c.dealer_got, N_MSGS);
    assert_false(c.bad_payload);
}

static void test_pingpong_inline(void **state)
{
    (void)state;
    run_pingpong(false);
}

static void test_pingpong_deferred(void **state)
{
    (void)state;
    run_pingpong(true);
}

/* ---- crossing traffic: both sides send from a timer while input is pending ----
 * libuv runs timers before polling, so a send from a timer often processes the activate_read
 * command of a message that already arrived: ZMQ_FD is reset, POLLIN is set, and unless the
 * channel re-checks ZMQ_EVENTS after the send, that peer's pipe never signals again. */

#define CROSS_PER_TICK 20

static void cross_router_cb(acr_zchan_t *ch, const char *peer, size_t plen, const void *data,
                            size_t len, void *ud)
{
    ctx_t *c = ud;
    (void)ch;
    if (!payload_is(data, len, c->router_got)) c->bad_payload = true;
    c->router_got++;
    memcpy(c->peer, peer, plen);
    c->peer_len = plen;
}

static void cross_dealer_cb(acr_zchan_t *ch, const char *peer, size_t plen, const void *data,
                            size_t len, void *ud)
{
    ctx_t *c = ud;
    (void)ch, (void)peer, (void)plen;
    if (!payload_is(data, len, c->dealer_got)) c->bad_payload = true;
    c->dealer_got++;
}

static void cross_tick(uv_timer_t *t)
{
    ctx_t *c = t->data;
    for (unsigned i = 0; i < CROSS_PER_TICK && c->dealer_sent < N_MSGS; i++)
        assert_int_equal(send_seq(c->dealer, NULL, 0, c->dealer_sent++), 0);
    /* the router learns the peer from its first message */
    for (unsigned i = 0; c->peer_len && i < CROSS_PER_TICK && c->pending_replies < N_MSGS; i++)
        assert_int_equal(send_seq(c->router, c->peer, c->peer_len, c->pending_replies++), 0);
    if (c->router_got == N_MSGS && c->dealer_got == N_MSGS) close_all(c);
}

static void test_crossing_traffic(void **state)
{
    (void)state;
    ctx_t c;
    ctx_init(&c);
    bind_and_connect(&c, cross_router_cb, cross_dealer_cb);
    uv_timer_start(&c.kick, cross_tick, 0, 1);
    ctx_finish(&c, 2);
    assert_int_equal(c.router_got, N_MSGS);
    assert_int_equal(c.dealer_got, N_MSGS);
    assert_false(c.bad_payload);
}

/* ---- a send right before every poll (a uv_prepare) on the side that is being pinged: the send
 * consumes the readiness of a ping that has just arrived, and since the pinging side then waits,
 * nothing else would ever wake the fd. ---- */

typedef struct prep_ctx {
    ctx_t c;
    uv_prepare_t prep;
    unsigned hb_got;
} prep_ctx_t;

static void prep_router_cb(acr_zchan_t *ch, const char *peer, size_t plen, const void *data,
                           size_t len, void *ud)
{
    ctx_t *c = ud;
    if (!payload_is(data, len, c->router_got)) c->bad_payload = true;
    c->router_got++;
    memcpy(c->peer, peer, plen);
    c->peer_len = plen;
    assert_int_equal(acr_zchan_send(ch, peer, plen, data, len), 0);
}

static void prep_dealer_cb(acr_zchan_t *ch, const char *peer, size_t plen, const void *data,
                           size_t len, void *ud)
{
    prep_ctx_t *p = ud;
    ctx_t *c = &p->c;
    (void)peer, (void)plen;
    if (len == 2 && memcmp(data, "hb", 2) == 0) {
        p->hb_got++;
        return;
    }
    if (!payload_is(data, len, c->dealer_got)) c->bad_payload = true;
    if (++c->dealer_got == N_MSGS) {
        uv_prepare_stop(&p->prep);
        close_all(c);
        return;
    }
    assert_int_equal(send_seq(ch, NULL, 0, c->dealer_sent++), 0);
}

static void prep_cb(uv_prepare_t *h)
{
    prep_ctx_t *p = h->data;
    if (!p->c.router) { /* closed by the watchdog */
        uv_prepare_stop(h);
        return;
    }
    if (p->c.peer_len) {
        int r = acr_zchan_send(p->c.router, p->c.peer, p->c.peer_len, "hb", 2);
        if (r != 0 && r != -EAGAIN) fail_msg("heartbeat send: %d", r);
    }
}

static void test_send_before_poll(void **state)
{
    (void)state;
    prep_ctx_t p;
    ctx_init(&p.c);
    p.hb_got = 0;
    char err[256] = "";
    int r = acr_zchan_bind(&p.c.loop, "127.0.0.1", 0, prep_router_cb, &p.c, &p.c.router, &p.c.port,
                           err, sizeof(err));
    if (r) fail_msg("bind: %d %s", r, err);
    r = acr_zchan_connect(&p.c.loop, "127.0.0.1", p.c.port, "worker-1", prep_dealer_cb, &p,
                          &p.c.dealer, err, sizeof(err));
    if (r) fail_msg("connect: %d %s", r, err);
    uv_prepare_init(&p.c.loop, &p.prep);
    p.prep.data = &p;
    uv_prepare_start(&p.prep, prep_cb);
    assert_int_equal(send_seq(p.c.dealer, NULL, 0, p.c.dealer_sent++), 0);
    uv_run(&p.c.loop, UV_RUN_DEFAULT);
    uv_prepare_stop(&p.prep);
    uv_close((uv_handle_t *)&p.prep, NULL);
    ctx_finish(&p.c, 2);
    assert_int_equal(p.c.dealer_got, N_MSGS);
    assert_false(p.c.bad_payload);
    assert_true(p.hb_got > 0);
}

/* ---- burst: 5000 queued at once each way (more than one drain budget) ---- */

#define BURST 5000

static void burst_router_cb(acr_zchan_t *ch, const char *peer, size_t plen, const void *data,
                            size_t len, void *ud)
{
    ctx_t *c = ud;
    if (!payload_is(data, len, c->router_got)) c->bad_payload = true;
    c->router_got++;
    if (c->router_got == BURST) /* answer with a burst of our own, from inside the callback */
        for (unsigned i = 0; i < BURST; i++) assert_int_equal(send_seq(ch, peer, plen, i), 0);
}

static void burst_dealer_cb(acr_zchan_t *ch, const char *peer, size_t plen, const void *data,
                            size_t len, void *ud)
{
    ctx_t *c = ud;
    (void)ch, (void)peer, (void)plen;
    if (!payload_is(data, len, c->dealer_got)) c->bad_payload = true;
    if (++c->dealer_got == BURST) close_all(c);
}

static void test_burst(void **state)
{
    (void)state;
    ctx_t c;
    ctx_init(&c);
    bind_and_connect(&c, burst_router_cb, burst_dealer_cb);
    for (unsigned i = 0; i < BURST; i++) assert_int_equal(send_seq(c.dealer, NULL, 0, i), 0);
    ctx_finish(&c, 2);
    assert_int_equal(c.router_got, BURST);
    assert_int_equal(c.dealer_got, BURST);
    assert_false(c.bad_payload);
}

/* ---- port 0, bind errors, unknown peers ---- */

static void noop_cb(acr_zchan_t *ch, const char *peer, size_t plen, const void *data, size_t len,
                    void *ud)
{
    (void)ch, (void)peer, (void)plen, (void)data, (void)len, (void)ud;
}

static void test_bind_port0_and_errors(void **state)
{
    (void)state;
    ctx_t c;
    ctx_init(&c);
    char err[256] = "";
    int port = 0;
    assert_int_equal(
        acr_zchan_bind(&c.loop, "*", 0, noop_cb, &c, &c.router, &port, err, sizeof(err)), 0);
    assert_true(port > 0);

    acr_zchan_t *again = NULL;
    int port2 = 0;
    int r =
        acr_zchan_bind(&c.loop, "127.0.0.1", port, noop_cb, &c, &again, &port2, err, sizeof(err));
    assert_int_equal(r, -EADDRINUSE);
    assert_null(again);
    if (!strstr(err, "Address already in use") || !strstr(err, "bind tcp://127.0.0.1:"))
        fail_msg("bind error text: '%s'", err);

    r = acr_zchan_bind(&c.loop, "127.0.0.1", 70000, noop_cb, &c, &again, &port2, err, sizeof(err));
    assert_int_equal(r, -EINVAL);

    /* ROUTER_MANDATORY: unknown peers are reported, not silently dropped */
    assert_int_equal(acr_zchan_send(c.router, "nobody", 6, "x", 1), -EHOSTUNREACH);
    assert_int_equal(acr_zchan_send(c.router, NULL, 0, "x", 1), -EINVAL);
    close_all(&c);
    ctx_finish(&c, 1);
}

/* ---- close from inside the receive callback ---- */

static void closing_kick_cb(uv_timer_t *t);

static void closing_router_cb(acr_zchan_t *ch, const char *peer, size_t plen, const void *data,
                              size_t len, void *ud)
{
    ctx_t *c = ud;
    (void)peer, (void)plen, (void)data, (void)len;
    c->router_got++;
    /* Sending after close is refused; the close itself happens after this callback. */
    acr_zchan_close(ch, on_closed, c);
    assert_int_equal(acr_zchan_send(ch, "worker-1", 8, "x", 1), -ECANCELED);
    acr_zchan_close(ch, on_closed, c); /* idempotent */
    c->router = NULL;
    /* Let the other 99 messages arrive at the closed channel before closing the dealer. */
    uv_timer_start(&c->kick, closing_kick_cb, 200, 0);
}

static void closing_kick_cb(uv_timer_t *t)
{
    ctx_t *c = t->data;
    close_all(c);
}

static void test_close_inside_callback(void **state)
{
    (void)state;
    ctx_t c;
    ctx_init(&c);
    bind_and_connect(&c, closing_router_cb, noop_cb);
    for (unsigned i = 0; i < 100; i++) assert_int_equal(send_seq(c.dealer, NULL, 0, i), 0);
    ctx_finish(&c, 2);
    assert_int_equal(c.router_got, 1);
}

/* ---- wrong frame count from a raw socket ---- */

static void frames_router_cb(acr_zchan_t *ch, const char *peer, size_t plen, const void *data,
                             size_t len, void *ud)
{
    ctx_t *c = ud;
    (void)peer, (void)plen;
    c->router_got++;
    if (len != 4 || memcmp(data, "good", 4) != 0) c->bad_payload = true;
    c->dealer_got = (unsigned)acr_zchan_dropped(ch);
    close_all(c);
}

static void test_wrong_frame_count_dropped(void **state)
{
    (void)state;
    ctx_t c;
    ctx_init(&c);
    char err[256] = "", ep[64];
    assert_int_equal(acr_zchan_bind(&c.loop, "127.0.0.1", 0, frames_router_cb, &c, &c.router,
                                    &c.port, err, sizeof(err)),
                     0);
    void *zctx = zmq_ctx_new();
    void *raw = zmq_socket(zctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(raw, ZMQ_LINGER, &linger, sizeof(linger));
    snprintf(ep, sizeof(ep), "tcp://127.0.0.1:%d", c.port);
    assert_int_equal(zmq_connect(raw, ep), 0);
    /* [id, "a", "b"] at the ROUTER: 3 frames, dropped; then a proper one */
    assert_int_equal(zmq_send(raw, "a", 1, ZMQ_SNDMORE), 1);
    assert_int_equal(zmq_send(raw, "b", 1, 0), 1);
    assert_int_equal(zmq_send(raw, "good", 4, 0), 4);
    ctx_finish(&c, 1);
    assert_int_equal(c.router_got, 1);
    assert_int_equal(c.dealer_got, 1); /* dropped count seen from the callback */
    assert_false(c.bad_payload);
    zmq_close(raw);
    zmq_ctx_term(zctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pingpong_inline),
        cmocka_unit_test(test_pingpong_deferred),
        cmocka_unit_test(test_crossing_traffic),
        cmocka_unit_test(test_send_before_poll),
        cmocka_unit_test(test_burst),
        cmocka_unit_test(test_bind_port0_and_errors),
        cmocka_unit_test(test_close_inside_callback),
        cmocka_unit_test(test_wrong_frame_count_dropped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
