/*
 * ZeroMQ sockets driven by a libuv loop: a ROUTER the master binds, a DEALER a worker connects.
 * ZMQ_FD is edge-triggered, so the channel drains ZMQ_EVENTS after every poll callback and after
 * every send (docs/platform-notes.md, ZeroMQ). Each channel owns its zmq context; LINGER is 0;
 * ZMQ_MAXMSGSIZE is ACR_MSG_MAX_FRAME; TCP keepalive 1/30 as Locust.
 *
 * The receive callback gets each payload frame (and for a ROUTER the peer's routing id); frames
 * beyond the expected count are dropped and counted. The callback may send and may close the
 * channel.
 * Error convention: 0 or a negative errno; zmq errors are mapped to -errno.
 */
#ifndef ACR_PROTO_ZCHAN_H
#define ACR_PROTO_ZCHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct acr_zchan acr_zchan_t;
typedef struct acr_keys acr_keys_t;

/** @peer/@peer_len: the routing id of the sender (ROUTER) or NULL/0 (DEALER). @data is valid
 *  only during the call. */
typedef void (*acr_zchan_recv_cb)(acr_zchan_t *ch, const char *peer, size_t peer_len,
                                  const void *data, size_t len, void *ud);

/** Binds a ROUTER to tcp://@host:@port (@host "*" for all, an IPv6 literal enables IPv6; @port 0 =
 *  ephemeral). The real port is stored in *@bound_port. On failure *@out is NULL and @err holds
 *  e.g. "bind tcp://127.0.0.1:5557: Address already in use" (-EADDRINUSE). */
int acr_zchan_bind(uv_loop_t *loop, const char *host, int port, acr_zchan_recv_cb cb, void *ud,
                   acr_zchan_t **out, int *bound_port, char *err, size_t errlen);

/** acr_zchan_bind with CURVE when @keys is not NULL (common/keys.h): the ROUTER serves CURVE with
 *  the master key pair, and a ZAP handler (proto/zap.h) admits only peers presenting the worker
 *  public key. Every frame is then encrypted. */
int acr_zchan_bind_keyed(uv_loop_t *loop, const char *host, int port, const acr_keys_t *keys,
                         acr_zchan_recv_cb cb, void *ud, acr_zchan_t **out, int *bound_port,
                         char *err, size_t errlen);

/** Connects a DEALER with routing id @identity to tcp://@host:@port (retried forever by zmq). */
int acr_zchan_connect(uv_loop_t *loop, const char *host, int port, const char *identity,
                      acr_zchan_recv_cb cb, void *ud, acr_zchan_t **out, char *err, size_t errlen);

/** acr_zchan_connect with CURVE when @keys is not NULL: the worker key pair, and only a server
 *  proving the master secret key is talked to. */
int acr_zchan_connect_keyed(uv_loop_t *loop, const char *host, int port, const char *identity,
                            const acr_keys_t *keys, acr_zchan_recv_cb cb, void *ud,
                            acr_zchan_t **out, char *err, size_t errlen);

/** Sends one payload (to @peer on a ROUTER; @peer NULL on a DEALER); the data is copied. Never
 *  blocks: returns -EAGAIN when the peer's queue is full, -EHOSTUNREACH for an unknown ROUTER peer,
 *  -EINVAL for a ROUTER send without a peer, -ECANCELED once acr_zchan_close() was called. */
int acr_zchan_send(acr_zchan_t *ch, const char *peer, size_t peer_len, const void *data,
                   size_t len);

/** Messages dropped for a wrong number of frames (the master adds them to its malformed count). */
uint64_t acr_zchan_dropped(const acr_zchan_t *ch);

/** Whether frames wait to be received (ZMQ_EVENTS), and if so schedules their delivery from the
 *  loop: for a caller about to conclude that its peer went silent. */
bool acr_zchan_kick(acr_zchan_t *ch);

/** Peers the ZAP handler refused (0 without a cluster key). */
uint64_t acr_zchan_refused(const acr_zchan_t *ch);

/** Stops polling, closes the uv handle and the socket and terminates the context; @closed_cb (may
 *  be NULL) runs from the loop once the memory is gone. Safe to call from the receive callback. */
void acr_zchan_close(acr_zchan_t *ch, void (*closed_cb)(void *ud), void *ud);

#endif
