/*
 * acrida's data pool messages (proto/PROTOCOL.md, "Data pools"): acrida_pool_req (worker ->
 * master) and acrida_pool_rep (master -> worker), their encoders and their checked decoders.
 */
#include "proto/msg_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const op_names[] = {
    [ACR_POOL_OP_ACQUIRE] = "acquire", [ACR_POOL_OP_NEXT] = "next",
    [ACR_POOL_OP_RELEASE] = "release", [ACR_POOL_OP_RELEASE_USER] = "release_user",
    [ACR_POOL_OP_SIZE] = "size",
};

/* The largest timeout accepted (about 31 years): beyond it a wait is unbounded anyway. */
#define POOL_TIMEOUT_MAX 1e9

static void pool_defaults(acr_msg_t *m)
{
    m->pool.row_id = -1;
    m->pool.timeout = -1;
    m->pool.size = m->pool.available = -1;
}

static int get_row_id(acr__dec_t *d, const msgpack_object *data, acr_msg_t *m)
{
    int64_t v;
    int r = acr__get_i64(d, data, "row_id", ACR__NIL_OK, &v);
    if (r <= 0) return r;
    if (v < 0) return acr__dec_fail(d, "'row_id' is negative");
    m->pool.row_id = v;
    return 0;
}

int acr__msg_decode_pool_req(acr__dec_t *d, const msgpack_object *data, acr_msg_t *m)
{
    pool_defaults(m);
    if (data->type != MSGPACK_OBJECT_MAP) return acr__dec_fail(d, "data is not a map");
    int r = acr__get_str(d, data, "pool", ACR__REQ, &m->pool.name);
    if (r < 0) return r;
    size_t n = strlen(m->pool.name);
    if (n == 0 || n > ACR_MSG_POOL_NAME_MAX)
        return acr__dec_fail(d, "'pool' must be 1 to %d bytes", ACR_MSG_POOL_NAME_MAX);
    const msgpack_object *op = acr__map_get(data, "op");
    if (!op || op->type != MSGPACK_OBJECT_STR)
        return acr__dec_fail(d, "'op' missing or not a string");
    size_t i;
    for (i = 0; i < ACR_ARRAY_SIZE(op_names); i++)
        if (strlen(op_names[i]) == op->via.str.size &&
            memcmp(op_names[i], op->via.str.ptr, op->via.str.size) == 0)
            break;
    if (i == ACR_ARRAY_SIZE(op_names)) return acr__dec_fail(d, "'op' is not a known operation");
    m->pool.op = (acr_pool_op_t)i;
    if ((r = acr__get_u64(d, data, "req_id", ACR__REQ, &m->pool.req_id)) < 0) return r;
    if ((r = acr__get_u64(d, data, "user", ACR__REQ, &m->pool.user)) < 0) return r;
    if ((r = get_row_id(d, data, m)) < 0) return r;
    if (m->pool.op == ACR_POOL_OP_RELEASE && m->pool.row_id < 0)
        return acr__dec_fail(d, "'row_id' missing for a release");
    double t;
    r = acr__get_num(d, data, "timeout", ACR__NIL_OK, &t);
    if (r < 0) return r;
    if (r == 1) {
        if (!(t >= 0) || !isfinite(t) || t > POOL_TIMEOUT_MAX)
            return acr__dec_fail(d, "'timeout' must be a number of seconds from 0 to 1e9");
        m->pool.timeout = t;
    }
    return 0;
}

int acr__msg_decode_pool_rep(acr__dec_t *d, const msgpack_object *data, acr_msg_t *m)
{
    pool_defaults(m);
    if (data->type != MSGPACK_OBJECT_MAP) return acr__dec_fail(d, "data is not a map");
    int r = acr__get_u64(d, data, "req_id", ACR__REQ, &m->pool.req_id);
    if (r < 0) return r;
    if ((r = get_row_id(d, data, m)) < 0) return r;
    int64_t v;
    if ((r = acr__get_i64(d, data, "size", ACR__NIL_OK, &v)) < 0) return r;
    if (r == 1) m->pool.size = v < 0 ? -1 : v;
    if ((r = acr__get_i64(d, data, "available", ACR__NIL_OK, &v)) < 0) return r;
    if (r == 1) m->pool.available = v < 0 ? -1 : v;
    if ((r = acr__get_str(d, data, "error", ACR__NIL_OK, &m->pool.error)) < 0) return r;
    const msgpack_object *row = acr__map_get(data, "row");
    if (row && row->type != MSGPACK_OBJECT_NIL) return acr__repack(row, &m->data, &m->data_len);
    return 0;
}

/* ---- encoders ---- */

static int pack_key(msgpack_packer *pk, const char *k)
{
    return acr__pack_str(pk, k);
}

static int pack_i64_or_nil(msgpack_packer *pk, int64_t v)
{
    return v < 0 ? msgpack_pack_nil(pk) : msgpack_pack_int64(pk, v);
}

int acr_msg_encode_pool_req(acr_buf_t *b, const char *pool, acr_pool_op_t op, uint64_t req_id,
                            uint64_t user, int64_t row_id, double timeout, const char *node_id)
{
    if ((unsigned)op >= ACR_ARRAY_SIZE(op_names)) return -EINVAL;
    msgpack_packer pk;
    size_t start = b->len;
    acr__packer_init(&pk, b);
    int r = msgpack_pack_array(&pk, 3);
    r = r ? r : acr__pack_str(&pk, "acrida_pool_req");
    r = r ? r : msgpack_pack_map(&pk, 6);
    r = r ? r : pack_key(&pk, "pool");
    r = r ? r : acr__pack_str(&pk, pool);
    r = r ? r : pack_key(&pk, "op");
    r = r ? r : acr__pack_str(&pk, op_names[op]);
    r = r ? r : pack_key(&pk, "req_id");
    r = r ? r : msgpack_pack_uint64(&pk, req_id);
    r = r ? r : pack_key(&pk, "user");
    r = r ? r : msgpack_pack_uint64(&pk, user);
    r = r ? r : pack_key(&pk, "row_id");
    r = r ? r : pack_i64_or_nil(&pk, row_id);
    r = r ? r : pack_key(&pk, "timeout");
    r = r ? r : (timeout < 0 ? msgpack_pack_nil(&pk) : msgpack_pack_double(&pk, timeout));
    r = r ? r : acr__pack_str(&pk, node_id);
    if (r) {
        b->len = start;
        return -ENOMEM;
    }
    return 0;
}

int acr_msg_encode_pool_rep(acr_buf_t *b, uint64_t req_id, const void *row, size_t row_len,
                            int64_t row_id, int64_t size, int64_t available, const char *error,
                            const char *node_id)
{
    msgpack_packer pk;
    size_t start = b->len;
    acr__packer_init(&pk, b);
    int r = msgpack_pack_array(&pk, 3);
    r = r ? r : acr__pack_str(&pk, "acrida_pool_rep");
    r = r ? r : msgpack_pack_map(&pk, 6);
    r = r ? r : pack_key(&pk, "req_id");
    r = r ? r : msgpack_pack_uint64(&pk, req_id);
    r = r ? r : pack_key(&pk, "row");
    r = r ? r : (row && row_len ? acr_buf_append(b, row, row_len) : msgpack_pack_nil(&pk));
    r = r ? r : pack_key(&pk, "row_id");
    r = r ? r : pack_i64_or_nil(&pk, row_id);
    r = r ? r : pack_key(&pk, "size");
    r = r ? r : pack_i64_or_nil(&pk, size);
    r = r ? r : pack_key(&pk, "available");
    r = r ? r : pack_i64_or_nil(&pk, available);
    r = r ? r : pack_key(&pk, "error");
    r = r ? r : (error ? acr__pack_str(&pk, error) : msgpack_pack_nil(&pk));
    r = r ? r : acr__pack_str(&pk, node_id);
    if (r) {
        b->len = start;
        return -ENOMEM;
    }
    return 0;
}
