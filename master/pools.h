/*
 * The scenario's data pools on the master (docs/scenario-api.md, "Pools"): the master owns every
 * row and is the only authority on who holds one, so a lease is exclusive across the cluster
 * however many workers ask. Workers send acrida_pool_req messages and get acrida_pool_rep answers
 * (proto/PROTOCOL.md, "Data pools"); there is no prefetch by workers in this version.
 *
 * A pool is declared by the scenario with acrida.pool(name, {csv = "file.csv" | rows = {...},
 * mode = ...}) on the master's Lua state (acr_pools_open); each row is kept as one msgpack value
 * (common/lua_value.h), sent as is. Modes:
 *   lease     acquire gives a free row to one user until released; with none free the request
 *             waits (FIFO) until a release or its timeout (answered nil, "timeout");
 *   queue     next gives each row once per test across the cluster, then nil, "exhausted";
 *   circular  next gives the rows in order, round and round;
 *   random    next gives a row at random.
 * Leases return when the user releases them, when its worker says the user ended
 * (release_user), when the master loses the worker (acr_pools_release_node: missing, quit,
 * removed) and when the test stops (acr_pools_test_stop).
 *
 * The store itself is plain C without sockets or handles (unit-tested): answers go through a
 * callback and time is passed in; the master's runtime calls acr_pools_expire at every liveness
 * tick of the core (250 ms), which is cheap while no wait is due.
 *
 * Error convention: 0 or a negative errno, the reason in a caller buffer.
 */
#ifndef ACR_MASTER_POOLS_H
#define ACR_MASTER_POOLS_H

#include "proto/msg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ACR_POOLS_MAX 1000           /**< pools in one scenario */
#define ACR_POOL_MAX_ROWS 1000000    /**< rows in one pool */
#define ACR_POOL_ROW_MAX_BYTES 65536 /**< encoded bytes of one row */

typedef enum {
    ACR_POOL_LEASE = 0,
    ACR_POOL_QUEUE,
    ACR_POOL_CIRCULAR,
    ACR_POOL_RANDOM,
} acr_pool_mode_t;

/** "lease", "queue", "circular", "random". */
const char *acr_pool_mode_name(acr_pool_mode_t m);

typedef struct acr_pools acr_pools_t;

/** One answer to a worker: @row (msgpack, @row_len bytes; NULL = nil) is valid during the call. */
typedef struct acr_pool_reply {
    uint64_t req_id;
    const void *row;
    size_t row_len;
    int64_t row_id; /**< the leased row's id (lease pools), else -1 */
    int64_t size, available;
    const char *error; /**< NULL, "timeout", "exhausted", "test stopped", or what is wrong */
} acr_pool_reply_t;

/** Sends @rep to worker @node_id. */
typedef void (*acr_pools_reply_fn)(const char *node_id, const acr_pool_reply_t *rep, void *ud);

/** What one pool looks like now (for /stats/requests). */
typedef struct acr_pool_stat {
    const char *name; /**< owned by the store */
    acr_pool_mode_t mode;
    size_t size, available, leased, waiting;
} acr_pool_stat_t;

/** A new empty store answering through @reply. NULL when out of memory. */
acr_pools_t *acr_pools_new(acr_pools_reply_fn reply, void *ud);
/** Seeds the random mode's generator (tests); the default seed comes from the clock. */
void acr_pools_seed(acr_pools_t *p, uint64_t seed);

/** Adds an empty pool; -EEXIST for a name already declared, -ENOSPC past ACR_POOLS_MAX, -EBUSY
 *  once requests began (pools and rows are declared at load), -ENOMEM. *@idx receives its
 *  index. */
int acr_pools_add(acr_pools_t *p, const char *name, acr_pool_mode_t mode, size_t *idx);
/** Appends a row (@len bytes of one msgpack value, copied) to pool @idx. -EFBIG past the limits,
 *  -EBUSY once requests began, -ENOMEM. */
int acr_pools_add_row(acr_pools_t *p, size_t idx, const void *row, size_t len);

/** Handles one request of worker @node_id at monotonic time @now (seconds): answers at once
 *  through the callback, or queues an acquire until a row is free. */
void acr_pools_request(acr_pools_t *p, const char *node_id, const acr_msg_pool_t *req, double now);
/** Answers the waits whose timeout has passed at @now (nil, "timeout"). */
void acr_pools_expire(acr_pools_t *p, double now);
/** The master lost worker @node_id (missing, quit, removed): its leases return to their pools and
 *  its waits are dropped without an answer. */
void acr_pools_release_node(acr_pools_t *p, const char *node_id);
/** A test starts: queue pools start over from their first row. */
void acr_pools_test_start(acr_pools_t *p);
/** The test stopped: every lease returns and every wait is answered nil, "test stopped". */
void acr_pools_test_stop(acr_pools_t *p);

size_t acr_pools_count(const acr_pools_t *p);
/** Fills *@out for pool @i (< acr_pools_count). */
void acr_pools_stat(const acr_pools_t *p, size_t i, acr_pool_stat_t *out);

void acr_pools_free(acr_pools_t *p);

struct lua_State;

/**
 * Installs acrida.pool(name, opts) in @L (opened by acr_scenario_open in the master role): it
 * checks the declaration, reads the CSV file (relative paths from @base_dir, the scenario's
 * directory) or the rows table, adds the pool to @p and returns a table {name = ..., mode = ...}.
 * Errors name the scenario's file:line, and the CSV file:line for a malformed file.
 */
int acr_pools_open(struct lua_State *L, acr_pools_t *p, const char *base_dir);

#endif
