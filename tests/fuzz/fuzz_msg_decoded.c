/*
 * libFuzzer driver for the decoded-size accounting of the pre-scan (proto/msg_scan.c): for any
 * input the pre-scan accepts, the objects msgpack-c then allocates (24 bytes per array element, 48
 * per map pair, counted by walking what it decoded) must stay within ACR_MSG_MAX_DECODED, and a
 * value the pre-scan refuses must carry a reason. The input is also tried with its first byte
 * repeated into a run of up to 1 MiB (the input's second byte picks the length), so that the
 * fuzzer reaches counts of many cheap elements (nils, fixints) the accounting exists for.
 * Seeds: tests/fuzz/corpus/fuzz_msg_decoded/.
 */
#include "proto/msg_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t cost(const msgpack_object *o)
{
    uint64_t c = 0;
    if (o->type == MSGPACK_OBJECT_ARRAY) {
        c += (uint64_t)o->via.array.size * sizeof(msgpack_object);
        for (uint32_t i = 0; i < o->via.array.size; i++) c += cost(&o->via.array.ptr[i]);
    } else if (o->type == MSGPACK_OBJECT_MAP) {
        c += (uint64_t)o->via.map.size * sizeof(msgpack_object_kv);
        for (uint32_t i = 0; i < o->via.map.size; i++)
            c += cost(&o->via.map.ptr[i].key) + cost(&o->via.map.ptr[i].val);
    }
    return c;
}

static void check(const uint8_t *p, size_t len)
{
    char err[256] = "";
    if (acr__msg_prescan(p, len, err, sizeof err) != 0) {
        if (err[0] == '\0') abort();
        return;
    }
    msgpack_unpacked res;
    size_t off = 0;
    msgpack_unpacked_init(&res);
    if (msgpack_unpack_next(&res, (const char *)p, len, &off) == MSGPACK_UNPACK_SUCCESS &&
        cost(&res.data) + sizeof(msgpack_object) > ACR_MSG_MAX_DECODED)
        abort(); /* the pre-scan let through more than the budget */
    msgpack_unpacked_destroy(&res);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check(data, size);
    if (size < 3) return 0;
    /* [header bytes...][run byte][run length / 4 KiB] -> header + run, the rest appended */
    size_t run = ((size_t)data[size - 1] + 1) * 4096;
    uint8_t *buf = malloc(size - 2 + run);
    if (!buf) return 0;
    memcpy(buf, data, size - 2);
    memset(buf + size - 2, data[size - 2], run);
    check(buf, size - 2 + run);
    free(buf);
    return 0;
}
