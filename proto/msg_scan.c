/*
 * The pre-scan of a received frame: a small msgpack walker that validates the structure without
 * allocating, so msgpack-c (which allocates count * 24 bytes as soon as it reads a container
 * header, docs/platform-notes.md, msgpack-c) only ever sees frames whose every container is backed
 * by real bytes, and whose objects fit the decoded-size budget of their type (ACR_MSG_MAX_DECODED:
 * counts within the frame's bytes are not enough, 64 MiB of nils would still cost 1.5 GiB). Also
 * the UTF-8 validator used for every decoded string.
 */
#include "proto/msg_internal.h"
#include "proto/proto.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

typedef struct scan {
    const uint8_t *p;
    size_t len, off;
    char *err;
    size_t errlen;
    uint64_t decoded; /* bytes msgpack-c's zone will allocate for the objects seen so far */
    uint64_t budget;  /* the most @decoded may reach (acr__msg_decoded_budget) */
} scan_t;

static int scan_fail(scan_t *s, const char *what)
{
    snprintf(s->err, s->errlen, "malformed msgpack at byte %zu: %s", s->off, what);
    return -EPROTO;
}

static int need(scan_t *s, size_t n)
{
    if (s->len - s->off < n) return scan_fail(s, "truncated");
    return 0;
}

static uint64_t be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

/* Reads an n-byte big-endian length after the type byte (already consumed). */
static int read_len(scan_t *s, unsigned n, uint64_t *out)
{
    int r = need(s, n);
    if (r) return r;
    *out = be(s->p + s->off, n);
    s->off += n;
    return 0;
}

static int skip(scan_t *s, uint64_t n)
{
    if (s->len - s->off < n)
        return scan_fail(s, "truncated (string or binary longer than the frame)");
    s->off += (size_t)n;
    return 0;
}

static int walk(scan_t *s, unsigned depth);

static int walk_container(scan_t *s, uint64_t count, bool map, unsigned depth)
{
    if (depth + 1 > ACR_MSG_MAX_DEPTH) return scan_fail(s, "nesting deeper than the limit");
    size_t rem = s->len - s->off;
    /* Every element needs at least one byte. */
    if (map ? count > rem / 2 : count > rem)
        return scan_fail(s, map ? "map count larger than the frame"
                                : "array count larger than the frame");
    /* msgpack-c allocates the whole container up front: count objects (24 bytes) or key/value
     * pairs (48 bytes); strings and binaries point into the frame and cost nothing. Checked
     * before the first element, so a huge count is refused by its header alone. */
    s->decoded += count * (map ? sizeof(msgpack_object_kv) : sizeof(msgpack_object));
    if (s->decoded > s->budget) {
        snprintf(s->err, s->errlen,
                 "frame would decode to %llu MiB of objects (limit %llu MiB for this type): "
                 "refused",
                 (unsigned long long)((s->decoded + (1u << 20) - 1) >> 20),
                 (unsigned long long)(s->budget >> 20));
        return -EPROTO;
    }
    uint64_t items = map ? count * 2 : count;
    for (uint64_t i = 0; i < items; i++) {
        int r = walk(s, depth + 1);
        if (r) return r;
    }
    return 0;
}

static int walk(scan_t *s, unsigned depth)
{
    int r = need(s, 1);
    if (r) return r;
    uint8_t t = s->p[s->off++];
    uint64_t n = 0;

    if (t <= 0x7f || t >= 0xe0) return 0; /* fixint */
    if (t >= 0x80 && t <= 0x8f) return walk_container(s, t & 0x0f, true, depth);
    if (t >= 0x90 && t <= 0x9f) return walk_container(s, t & 0x0f, false, depth);
    if (t >= 0xa0 && t <= 0xbf) return skip(s, t & 0x1f); /* fixstr */
    switch (t) {
    case 0xc0: /* nil */
    case 0xc2: /* false */
    case 0xc3: /* true */
        return 0;
    case 0xc1:
        return scan_fail(s, "reserved byte 0xc1");
    case 0xc4: /* bin8 */
    case 0xd9: /* str8 */
        return (r = read_len(s, 1, &n)) ? r : skip(s, n);
    case 0xc5: /* bin16 */
    case 0xda: /* str16 */
        return (r = read_len(s, 2, &n)) ? r : skip(s, n);
    case 0xc6: /* bin32 */
    case 0xdb: /* str32 */
        return (r = read_len(s, 4, &n)) ? r : skip(s, n);
    case 0xc7:
    case 0xc8:
    case 0xc9:
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
        return scan_fail(s, "ext types are not allowed");
    case 0xca: /* float32 */
        return skip(s, 4);
    case 0xcb: /* float64 */
        return skip(s, 8);
    case 0xcc:
    case 0xd0:
        return skip(s, 1);
    case 0xcd:
    case 0xd1:
        return skip(s, 2);
    case 0xce:
    case 0xd2:
        return skip(s, 4);
    case 0xcf:
    case 0xd3:
        return skip(s, 8);
    case 0xdc: /* array16 */
        return (r = read_len(s, 2, &n)) ? r : walk_container(s, n, false, depth);
    case 0xdd: /* array32 */
        return (r = read_len(s, 4, &n)) ? r : walk_container(s, n, false, depth);
    case 0xde: /* map16 */
        return (r = read_len(s, 2, &n)) ? r : walk_container(s, n, true, depth);
    case 0xdf: /* map32 */
        return (r = read_len(s, 4, &n)) ? r : walk_container(s, n, true, depth);
    default:
        return scan_fail(s, "unknown type byte");
    }
}

/* The message types whose data is a few small fields: their frames get ACR_MSG_MAX_DECODED_SMALL
 * (anything bigger is a flood, not a message). */
static const char *const small_types[] = {
    "client_ready",
    "ack",
    "heartbeat",
    "spawning",
    "spawning_complete",
    "hatching_complete",
    "stop",
    "quit",
    "reconnect",
    "client_stopped",
    "exception",
    "acrida_spawning_complete",
    "acrida_rejoin",
    "acrida_scenario_loaded",
};

/* The decoded-size budget of a frame, from the type string its envelope starts with (when it has
 * the envelope's shape: the walk checks everything else). */
static uint64_t decoded_budget(const uint8_t *p, size_t len)
{
    size_t off = 1, n = 0;
    if (len < 2) return ACR_MSG_MAX_DECODED;
    if (p[0] == 0xdc)
        off = 3;
    else if (p[0] == 0xdd)
        off = 5;
    else if (p[0] < 0x90 || p[0] > 0x9f)
        return ACR_MSG_MAX_DECODED;
    if (off >= len) return ACR_MSG_MAX_DECODED;
    uint8_t t = p[off++];
    if (t >= 0xa0 && t <= 0xbf) {
        n = t & 0x1f;
    } else if (t == 0xd9 && off < len) {
        n = p[off++];
    } else {
        return ACR_MSG_MAX_DECODED;
    }
    if (len - off < n) return ACR_MSG_MAX_DECODED;
    for (size_t i = 0; i < sizeof small_types / sizeof small_types[0]; i++)
        if (strlen(small_types[i]) == n && memcmp(small_types[i], p + off, n) == 0)
            return ACR_MSG_MAX_DECODED_SMALL;
    return ACR_MSG_MAX_DECODED;
}

int acr__msg_prescan(const uint8_t *p, size_t len, char *err, size_t errlen)
{
    scan_t s = {.p = p, .len = len, .off = 0, .err = err, .errlen = errlen};
    if (len == 0) {
        snprintf(err, errlen, "empty frame");
        return -EPROTO;
    }
    s.budget = decoded_budget(p, len);
    s.decoded = sizeof(msgpack_object); /* the root */
    int r = walk(&s, 0);
    if (r) return r;
    if (s.off != len) {
        snprintf(err, errlen, "%zu trailing bytes after the message", len - s.off);
        return -EPROTO;
    }
    return 0;
}

bool acr_proto_utf8_valid(const char *s, size_t n)
{
    return acr__utf8_valid(s, n);
}

bool acr__utf8_valid(const char *str, size_t n)
{
    const uint8_t *s = (const uint8_t *)str;
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        unsigned extra;
        uint32_t cp, min;
        if (c >= 0xc2 && c <= 0xdf) {
            extra = 1, cp = c & 0x1f, min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            extra = 2, cp = c & 0x0f, min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            extra = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i <= extra) return false;
        for (unsigned k = 1; k <= extra; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += extra + 1;
    }
    return true;
}
