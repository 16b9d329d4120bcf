/*
 * Internals shared by the files of the proto/msg module (msg.c: envelope and small messages,
 * msg_stats.c: the stats report, msg_enc.c: encoders, msg_scan.c: the hostile-input pre-scan).
 * Nothing here is for other modules.
 *
 * Getter convention: acr__get_*() return 1 when the key is present and valid, 0 when it is absent
 * and optional, -EPROTO (reason written through the decoder context) otherwise.
 */
#ifndef ACR_PROTO_MSG_INTERNAL_H
#define ACR_PROTO_MSG_INTERNAL_H

#include "proto/msg.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Decoder context: where the reason goes and the prefix naming the place being decoded
 *  ("stats: entry 3: "). */
typedef struct acr__dec {
    char *err;
    size_t errlen;
    char prefix[128];
    acr_stats_t **spare; /**< acr_msg_decode_reuse's table for a report, or NULL */
} acr__dec_t;

/** Writes prefix + formatted reason into d->err and returns -EPROTO. */
int acr__dec_fail(acr__dec_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** The value stored under the str key @key in @map (a MAP object), or NULL. */
const msgpack_object *acr__map_get(const msgpack_object *map, const char *key);

bool acr__obj_is_int(const msgpack_object *o);
bool acr__obj_is_num(const msgpack_object *o);
/** Value of an integer or float object as a double (caller checked acr__obj_is_num). */
double acr__obj_num(const msgpack_object *o);

/** Copies a str object into a new NUL-terminated string after checking UTF-8 and the absence of
 *  NUL bytes. @what names the field in the reason. Returns 0, -EPROTO or -ENOMEM. */
int acr__dup_str(acr__dec_t *d, const msgpack_object *o, const char *what, char **out);

#define ACR__REQ 1u    /**< the key must be present */
#define ACR__NIL_OK 2u /**< nil is accepted and treated as absent */

int acr__get_str(acr__dec_t *d, const msgpack_object *map, const char *key, unsigned flags,
                 char **out);
/** Non-negative integer. */
int acr__get_u64(acr__dec_t *d, const msgpack_object *map, const char *key, unsigned flags,
                 uint64_t *out);
int acr__get_i64(acr__dec_t *d, const msgpack_object *map, const char *key, unsigned flags,
                 int64_t *out);
/** Finite integer or float. */
int acr__get_num(acr__dec_t *d, const msgpack_object *map, const char *key, unsigned flags,
                 double *out);
/** A map class name -> non-negative count. */
int acr__get_classes(acr__dec_t *d, const msgpack_object *map, const char *key, unsigned flags,
                     acr_class_count_t **out, size_t *n);
void acr__free_classes(acr_class_count_t *c, size_t n);

/** The pre-scan: walks the raw bytes without allocating and rejects truncation, 0xc1, ext types,
 *  container counts larger than the remaining bytes, nesting deeper than ACR_MSG_MAX_DEPTH and
 *  trailing bytes, and objects beyond the decoded-size budget of the frame's type
 *  (ACR_MSG_MAX_DECODED / _SMALL). Returns 0 or -EPROTO with the reason in @err. */
int acr__msg_prescan(const uint8_t *p, size_t len, char *err, size_t errlen);

/** Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool acr__utf8_valid(const char *s, size_t n);

/** Decodes a stats report's data map into m->stats, m->classes, m->user_count, m->seq,
 *  m->final. On failure the caller frees @m. */
int acr__msg_decode_stats(acr__dec_t *d, const msgpack_object *data, acr_msg_t *m);

/** The data of acrida_pool_req / acrida_pool_rep into m->pool (and a reply's row into m->data);
 *  msg_pool.c. On failure the caller frees @m. */
int acr__msg_decode_pool_req(acr__dec_t *d, const msgpack_object *data, acr_msg_t *m);
int acr__msg_decode_pool_rep(acr__dec_t *d, const msgpack_object *data, acr_msg_t *m);

/** The bundle fields (msg_bundle.c): the optional "acrida_bundle" manifest of a `scenario`, and
 *  the data of acrida_bundle_part / acrida_scenario_loaded. On failure the caller frees @m. */
int acr__msg_decode_bundle_manifest(acr__dec_t *d, const msgpack_object *data, acr_msg_t *m);
int acr__msg_decode_bundle_part(acr__dec_t *d, const msgpack_object *data, acr_msg_t *m);
/** The data of acrida_stall (proto/msg_stall.c). On failure the caller frees @m. */
int acr__msg_decode_stall(acr__dec_t *d, const msgpack_object *data, acr_msg_t *m);
int acr__msg_decode_scenario_loaded(acr__dec_t *d, const msgpack_object *data, acr_msg_t *m);

/** Locust's response_times key (ms, rounded as proto/PROTOCOL.md says) for @us microseconds. */
int64_t acr__locust_bucket_ms(uint64_t us);

/* ---- encoding helpers (msg_enc.c) ---- */

/** A packer appending to @b. */
void acr__packer_init(msgpack_packer *pk, acr_buf_t *b);
/** Packs a str (NULL packs ""). Returns 0 or non-zero on allocation failure (as msgpack-c). */
int acr__pack_str(msgpack_packer *pk, const char *s);
int acr__pack_classes(msgpack_packer *pk, const acr_class_count_t *c, size_t n);
#define ACR__STATS_FINAL 1u      /**< "acrida_final": true */
#define ACR__STATS_CUMULATIVE 2u /**< "acrida_cumulative": true */
/** The data map of a stats report (msg_stats.c); @flags: ACR__STATS_*. */
int acr__pack_stats_data(msgpack_packer *pk, acr_stats_t *delta, const acr_class_count_t *classes,
                         size_t n, int64_t user_count, int64_t seq, unsigned flags,
                         uint32_t nextra);
/** Re-encodes @o into a new malloc'ed buffer (*@out, *@len). 0 or -ENOMEM. */
int acr__repack(const msgpack_object *o, char **out, size_t *len);

#endif
