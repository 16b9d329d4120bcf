/*
 * Fake workers for unit tests that drive a real control core (master/core/) without sockets:
 * frames are encoded into a buffer and handed to the registry as if the ROUTER had received them
 * from the node id; the core is opened and closed on the test's own loop. Included by the tests
 * that also include the core's internals.
 */
#ifndef ACR_UNIT_CORE_H
#define ACR_UNIT_CORE_H

#include "master/core/core_int.h"
#include "proto/msg.h"

#include <string.h>

/* A core on @loop (initialised here) with @cfg, in *@c. */
static inline void ucore_open(uv_loop_t *loop, const acr_core_config_t *cfg, acr_core_t **c)
{
    assert_int_equal(uv_loop_init(loop), 0);
    assert_int_equal(acr_core_new(loop, cfg, c), 0);
}

/* Closes @c, runs @loop until every handle is closed, frees @c and closes @loop. */
static inline void ucore_close(uv_loop_t *loop, acr_core_t *c)
{
    acr_core_close(c);
    uv_run(loop, UV_RUN_DEFAULT);
    acr_core_free(c);
    assert_int_equal(uv_loop_close(loop), 0);
}

/* A stats delta of @requests GET / of 1 ms each, as a worker measures them; the caller frees it. */
static inline acr_stats_t *ucore_requests(int requests)
{
    acr_stats_t *st = acr_stats_new(acr_now());
    assert_non_null(st);
    acr_stats_entry_t *e = acr_stats_get(st, "GET", "/");
    for (int i = 0; i < requests; i++) acr_stats_log(st, e, true, 1000, 10, NULL, acr_now());
    return st;
}

/* Feeds the frame in @b to @c as worker @id's. */
static inline void ucore_feed(acr_core_t *c, acr_buf_t *b, const char *id)
{
    acr__registry_on_frame(NULL, id, strlen(id), b->data, b->len, c);
}

/* Worker @id says client_ready (an acrida worker). */
static inline void ucore_worker_ready(acr_core_t *c, acr_buf_t *b, const char *id)
{
    acr_buf_reset(b);
    assert_int_equal(acr_msg_encode_client_ready(b, "acrida/test", id), 0);
    ucore_feed(c, b, id);
}

/* Worker @id answers its last spawn with the counts the dispatcher gave it (two classes at most).
 */
static inline void ucore_worker_spawned(acr_core_t *c, acr_buf_t *b, const char *id)
{
    acr_dispatch_t *d = c->run.dispatch;
    assert_non_null(d);
    acr_class_count_t cc[2];
    size_t n = acr_dispatch_nclasses(d);
    long users = 0;
    assert_true(n <= 2);
    for (size_t e = 0; e < acr_dispatch_nentries(d); e++) {
        if (strcmp(acr_dispatch_entry_id(d, e), id) != 0) continue;
        for (size_t k = 0; k < n; k++) {
            cc[k].name = (char *)acr_dispatch_class_name(d, k);
            cc[k].count = acr_dispatch_entry_counts(d, e)[k];
            users += (long)cc[k].count;
        }
    }
    acr_buf_reset(b);
    assert_int_equal(acr_msg_encode_spawning_complete(b, cc, n, users, id), 0);
    ucore_feed(c, b, id);
}

/* Worker @id sends a message of @type without data (client_stopped, quit, ...). */
static inline void ucore_worker_nil(acr_core_t *c, acr_buf_t *b, const char *id, const char *type)
{
    acr_buf_reset(b);
    assert_int_equal(acr_msg_encode_nil(b, type, id), 0);
    ucore_feed(c, b, id);
}

#endif
