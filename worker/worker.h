/*
 * The worker daemon's protocol side: a DEALER to the master speaking Locust 2.x's worker role
 * (client_ready/ack, heartbeat every 1 s, stats deltas every 3 s with exceptions before them,
 * spawn -> spawning / spawning_complete, stop -> graceful stop, final stats, client_stopped,
 * client_ready, quit) plus acrida's extensions (report sequence numbers, final flag, the
 * master's heartbeat and master-loss timeout, re-registration with a restarted master, the shipped
 * scenario). It owns the loop's runtime (worker/runtime.h), HTTP
 * client and stats.
 */
#ifndef ACR_WORKER_WORKER_H
#define ACR_WORKER_WORKER_H

#include <stdbool.h>
#include <stddef.h>

typedef struct acr_worker_config {
    const char *master_host; /**< default "127.0.0.1" */
    int master_port;         /**< default 5557 */
    const char *scenario;    /**< local scenario file, or NULL to wait for the master's */
    const char *node_id;     /**< routing id; NULL = <hostname>_<32 hex> */
    bool insecure;           /**< no TLS verification for targets */
    size_t body_cap;         /**< bytes of a body kept for r.body; 0 = the client's default */
    /** exit after the master's quit (and after losing an acrida master) instead of waiting for
     *  the next master: Locust's one-shot worker, what the master's local workers use */
    bool exit_on_quit;
    double master_timeout; /**< s of silence from an acrida master before its users stop; 0: 10 */
    const struct acr_keys *keys; /**< the cluster key (CURVE to the master); NULL = none */
    bool trust_master;           /**< run a scenario shipped by a keyless master over the network */
    /** s of Lua code without yielding before the watchdog interrupts it (worker/watchdog.h);
     *  0: no stall checks, the JIT stays on */
    double stall_timeout;
    size_t lua_memory; /**< cap on the scenario's Lua state in bytes (--max-lua-memory); 0: none */
} acr_worker_config_t;

/**
 * Runs one worker process until SIGTERM/SIGINT (returns 0), a quit from the master with
 * @exit_on_quit (returns 0; 1 after losing the master), or a fatal error such as a scenario that
 * fails to load (the reason is logged and sent to the master as an exception; returns 1). Without
 * @exit_on_quit the worker is a daemon: it goes back to ready after every test and after a master
 * quit or vanished, and waits for the next one.
 */
int acr_worker_run(const acr_worker_config_t *cfg);

/** Writes "<hostname>_<32 lowercase hex from /dev/urandom>" into @out. Returns 0 or -errno. */
int acr_worker_make_node_id(char *out, size_t len);

#endif
