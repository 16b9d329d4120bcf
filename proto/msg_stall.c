/*
 * acrida_stall (proto/PROTOCOL.md): a worker's watchdog (worker/watchdog.h) interrupted a task of
 * a user class that ran for the stall timeout without yielding. Data: {class: str, task: str,
 * seconds: number}; the master quarantines the class.
 */
#include "proto/msg_internal.h"

#include <errno.h>
#include <math.h>

int acr__msg_decode_stall(acr__dec_t *d, const msgpack_object *data, acr_msg_t *m)
{
    if (data->type != MSGPACK_OBJECT_MAP) return acr__dec_fail(d, "data is not a map");
    int r = acr__get_str(d, data, "class", ACR__REQ, &m->stall_class);
    if (r < 0) return r;
    if (!*m->stall_class) return acr__dec_fail(d, "'class' is empty");
    r = acr__get_str(d, data, "task", ACR__REQ, &m->stall_task);
    if (r < 0) return r;
    r = acr__get_num(d, data, "seconds", ACR__REQ, &m->stall_seconds);
    if (r < 0) return r;
    if (!(m->stall_seconds >= 0) || m->stall_seconds > 1e9)
        return acr__dec_fail(d, "'seconds' is out of range");
    return 0;
}

#define PACK(x)                                                                                    \
    do {                                                                                           \
        if ((x) != 0) goto fail;                                                                   \
    } while (0)

int acr_msg_encode_stall(acr_buf_t *b, const char *cls, const char *task, double seconds,
                         const char *node_id)
{
    if (!cls || !*cls || !task || !(seconds >= 0) || isinf(seconds)) return -EINVAL;
    msgpack_packer pk;
    size_t start = b->len;
    acr__packer_init(&pk, b);
    PACK(msgpack_pack_array(&pk, 3));
    PACK(acr__pack_str(&pk, "acrida_stall"));
    PACK(msgpack_pack_map(&pk, 3));
    PACK(acr__pack_str(&pk, "class"));
    PACK(acr__pack_str(&pk, cls));
    PACK(acr__pack_str(&pk, "task"));
    PACK(acr__pack_str(&pk, task));
    PACK(acr__pack_str(&pk, "seconds"));
    PACK(msgpack_pack_double(&pk, seconds));
    PACK(acr__pack_str(&pk, node_id));
    return 0;
fail:
    b->len = start;
    return -ENOMEM;
}
