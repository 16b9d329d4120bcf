/*
 * The worker side of the scenario's data pools (docs/scenario-api.md, "Pools"): acrida.pool on the
 * worker returns a pool object whose methods (acquire, release, next, size, available) ask the
 * master with acrida_pool_req and suspend the calling user until the acrida_pool_rep answer
 * (proto/PROTOCOL.md, "Data pools"). The master owns the rows and decides every lease; the worker
 * only remembers which rows each user holds, so that release(row) can refuse a row the user does
 * not hold, and tells the master when a user ends (release_user) so its rows return at once.
 * Nothing is prefetched. Leases are used only while the master was heard within 2 s (self-fencing,
 * worker/pools.c).
 *
 * The runtime's internals (installing acrida.pool, a user's coroutine dropped, a user gone) are in
 * worker/runtime_int.h; this header is what the protocol side (worker.c) calls.
 */
#ifndef ACR_WORKER_POOLS_H
#define ACR_WORKER_POOLS_H

#include "proto/msg.h"
#include "worker/runtime.h"

#include <stddef.h>

/** Sends one encoded frame to the master. Returns 0, or a negative errno: -ENOTSUP when the
 *  master is not an acrida master (pools are an acrida extension), -ENOTCONN, ... */
typedef int (*acr_rt_pool_send_fn)(const void *frame, size_t len, void *ud);

/** Sets how pool requests reach the master (NULL: pool methods raise "not connected"). */
void acr_rt_pools_set_sender(acr_rt_t *rt, acr_rt_pool_send_fn send, void *ud);

/**
 * A message from the (acrida) master arrived at monotonic time @now: leases stay usable for
 * ACR__LEASE_FENCE_S (2 s) from here. Call it for every message, before handling it: when it ends
 * a longer silence, the users holding leases are fenced first (worker/pools.c, "Self-fencing").
 */
void acr_rt_pools_contact(acr_rt_t *rt, double now);

/** An acrida_pool_rep from the master: resumes the user that asked, if it still waits. */
void acr_rt_pools_on_reply(acr_rt_t *rt, const acr_msg_t *m);

#endif
