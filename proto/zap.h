/*
 * The master's ZAP handler (ZeroMQ RFC 27): with a cluster key (common/keys.h) the ROUTER serves
 * CURVE, and libzmq asks this handler about every peer that completed the CURVE handshake; it
 * admits only peers presenting the cluster's worker public key. It runs on its own thread with a
 * blocking REP socket on inproc://zeromq.zap.01 of the channel's context, so a busy or stalled
 * event loop never delays a handshake; it ends when the context is shut down.
 *
 * Refusals (ZAP denials and failed handshakes) are counted and logged from that thread: the first
 * one at once, then at most one summary line per 10 s (a flood of rogue peers cannot flood the
 * log). Addresses in the log are the peers' IP addresses as libzmq reports them.
 */
#ifndef ACR_PROTO_ZAP_H
#define ACR_PROTO_ZAP_H

#include <stdint.h>

typedef struct acr_zap acr_zap_t;

/** Binds the handler in @ctx (before @router, a CURVE server socket of @ctx, binds), monitors
 *  @router's failed handshakes (peers without the cluster key never reach ZAP) and starts the
 *  thread; @worker_public is the admitted key (40 Z85 characters). Returns 0 and *@out, or
 *  -errno. */
int acr_zap_start(void *ctx, void *router, const char *worker_public, acr_zap_t **out);

/** Joins the thread: call after zmq_ctx_shutdown(ctx) (its blocking receive then fails with
 *  ETERM and it closes its socket), before zmq_ctx_term. Frees @z. */
void acr_zap_stop(acr_zap_t *z);

/** Peers refused and admitted so far. */
uint64_t acr_zap_refused(const acr_zap_t *z);
uint64_t acr_zap_admitted(const acr_zap_t *z);

#endif
