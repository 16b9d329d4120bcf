/*
 * The scenario bundle's messages (proto/PROTOCOL.md, "scenario", "acrida_bundle_part",
 * "acrida_scenario_loaded"): the "acrida_bundle" manifest a `scenario` may carry, the parts of
 * the bundle's blob that follow it, and a worker's report of the scenario it loaded (its hash,
 * or why it could not load it). Encoders and checked decoders.
 */
#include "proto/msg_internal.h"

#include "common/bundle.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

/* A lowercase 64-hex string under @key into *@out. */
static int get_sha(acr__dec_t *d, const msgpack_object *map, const char *key, char **out)
{
    int r = acr__get_str(d, map, key, ACR__REQ, out);
    if (r < 0) return r;
    bool ok = strlen(*out) == 64;
    for (size_t i = 0; ok && i < 64; i++) {
        char ch = (*out)[i];
        ok = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f');
    }
    if (!ok) return acr__dec_fail(d, "'%s' is not 64 lowercase hex characters", key);
    return 0;
}

int acr__msg_decode_bundle_manifest(acr__dec_t *d, const msgpack_object *data, acr_msg_t *m)
{
    const msgpack_object *mf = acr__map_get(data, "acrida_bundle");
    if (!mf || mf->type == MSGPACK_OBJECT_NIL) return 0; /* a plain scenario (older masters) */
    if (mf->type != MSGPACK_OBJECT_MAP) return acr__dec_fail(d, "'acrida_bundle' is not a map");
    acr_msg_bundle_t *bd = &m->bundle;
    snprintf(d->prefix, sizeof(d->prefix), "scenario: acrida_bundle: ");
    int r = get_sha(d, mf, "sha256", &bd->sha256);
    if (r < 0) return r;
    if ((r = acr__get_str(d, mf, "main", ACR__REQ, &bd->main)) < 0) return r;
    char why[256];
    if (!acr_bundle_path_ok(bd->main, strlen(bd->main), why, sizeof why))
        return acr__dec_fail(d, "'main': %s", why);
    uint64_t size, parts;
    if ((r = acr__get_u64(d, mf, "size", ACR__REQ, &size)) < 0) return r;
    if (size > ACR_MSG_BUNDLE_MAX)
        return acr__dec_fail(d, "'size' %llu is over the %llu-byte limit", (unsigned long long)size,
                             (unsigned long long)ACR_MSG_BUNDLE_MAX);
    if ((r = acr__get_u64(d, mf, "parts", ACR__REQ, &parts)) < 0) return r;
    uint64_t want = size ? (size + ACR_BUNDLE_PART_SIZE - 1) / ACR_BUNDLE_PART_SIZE : 1;
    if (parts != want)
        return acr__dec_fail(d, "'parts' is %llu for %llu bytes (expected %llu)",
                             (unsigned long long)parts, (unsigned long long)size,
                             (unsigned long long)want);
    bd->size = size;
    bd->parts = (uint32_t)parts;
    bd->present = true;
    return 0;
}

int acr__msg_decode_bundle_part(acr__dec_t *d, const msgpack_object *data, acr_msg_t *m)
{
    if (data->type != MSGPACK_OBJECT_MAP) return acr__dec_fail(d, "data is not a map");
    int r = get_sha(d, data, "sha256", &m->bundle.sha256);
    if (r < 0) return r;
    uint64_t index;
    if ((r = acr__get_u64(d, data, "index", ACR__REQ, &index)) < 0) return r;
    if (index >= ACR_MSG_BUNDLE_MAX / ACR_BUNDLE_PART_SIZE + 1)
        return acr__dec_fail(d, "'index' %llu is out of range", (unsigned long long)index);
    m->bundle.index = (uint32_t)index;
    const msgpack_object *bytes = acr__map_get(data, "data");
    if (!bytes || (bytes->type != MSGPACK_OBJECT_BIN && bytes->type != MSGPACK_OBJECT_STR))
        return acr__dec_fail(d, "'data' missing or not bytes");
    size_t n = bytes->via.bin.size;
    if (n > ACR_BUNDLE_PART_SIZE)
        return acr__dec_fail(d, "'data' of %zu bytes is over the %u-byte part size", n,
                             ACR_BUNDLE_PART_SIZE);
    m->data = malloc(n ? n : 1);
    if (!m->data) return -ENOMEM;
    if (n) memcpy(m->data, bytes->via.bin.ptr, n);
    m->data_len = n;
    return 0;
}

int acr__msg_decode_scenario_loaded(acr__dec_t *d, const msgpack_object *data, acr_msg_t *m)
{
    if (data->type != MSGPACK_OBJECT_MAP) return acr__dec_fail(d, "data is not a map");
    int r = get_sha(d, data, "sha256", &m->bundle.sha256);
    if (r < 0) return r;
    r = acr__get_str(d, data, "error", ACR__NIL_OK, &m->bundle.error);
    return r < 0 ? r : 0;
}

/* ---- encoders ---- */

#define PACK(x)                                                                                    \
    do {                                                                                           \
        if ((x) != 0) goto fail;                                                                   \
    } while (0)

int acr_msg_encode_scenario_bundle(acr_buf_t *b, const char *name, const char *source, size_t len,
                                   const acr_msg_bundle_t *mf, const char *node_id)
{
    char hex[65];
    acr_bundle_sha256_hex(source, len, hex);
    if (!hex[0]) return -ENOMEM;
    msgpack_packer pk;
    size_t start = b->len;
    acr__packer_init(&pk, b);
    PACK(msgpack_pack_array(&pk, 3));
    PACK(acr__pack_str(&pk, "scenario"));
    PACK(msgpack_pack_map(&pk, mf ? 4 : 3));
    PACK(acr__pack_str(&pk, "name"));
    PACK(acr__pack_str(&pk, name));
    PACK(acr__pack_str(&pk, "source"));
    PACK(msgpack_pack_str_with_body(&pk, source, len));
    PACK(acr__pack_str(&pk, "sha256"));
    PACK(acr__pack_str(&pk, hex));
    if (mf) {
        PACK(acr__pack_str(&pk, "acrida_bundle"));
        PACK(msgpack_pack_map(&pk, 4));
        PACK(acr__pack_str(&pk, "sha256"));
        PACK(acr__pack_str(&pk, mf->sha256));
        PACK(acr__pack_str(&pk, "main"));
        PACK(acr__pack_str(&pk, mf->main));
        PACK(acr__pack_str(&pk, "size"));
        PACK(msgpack_pack_uint64(&pk, mf->size));
        PACK(acr__pack_str(&pk, "parts"));
        PACK(msgpack_pack_uint32(&pk, mf->parts));
    }
    PACK(acr__pack_str(&pk, node_id));
    return 0;
fail:
    b->len = start;
    return -ENOMEM;
}

int acr_msg_encode_bundle_part(acr_buf_t *b, const char *sha256, uint32_t index, const void *data,
                               size_t len, const char *node_id)
{
    msgpack_packer pk;
    size_t start = b->len;
    acr__packer_init(&pk, b);
    PACK(msgpack_pack_array(&pk, 3));
    PACK(acr__pack_str(&pk, "acrida_bundle_part"));
    PACK(msgpack_pack_map(&pk, 3));
    PACK(acr__pack_str(&pk, "sha256"));
    PACK(acr__pack_str(&pk, sha256));
    PACK(acr__pack_str(&pk, "index"));
    PACK(msgpack_pack_uint32(&pk, index));
    PACK(acr__pack_str(&pk, "data"));
    PACK(msgpack_pack_bin_with_body(&pk, data, len));
    PACK(acr__pack_str(&pk, node_id));
    return 0;
fail:
    b->len = start;
    return -ENOMEM;
}

int acr_msg_encode_scenario_loaded(acr_buf_t *b, const char *sha256, const char *error,
                                   const char *node_id)
{
    msgpack_packer pk;
    size_t start = b->len;
    acr__packer_init(&pk, b);
    PACK(msgpack_pack_array(&pk, 3));
    PACK(acr__pack_str(&pk, "acrida_scenario_loaded"));
    PACK(msgpack_pack_map(&pk, 2));
    PACK(acr__pack_str(&pk, "sha256"));
    PACK(acr__pack_str(&pk, sha256));
    PACK(acr__pack_str(&pk, "error"));
    PACK(error ? acr__pack_str(&pk, error) : msgpack_pack_nil(&pk));
    PACK(acr__pack_str(&pk, node_id));
    return 0;
fail:
    b->len = start;
    return -ENOMEM;
}
