/*
 * The master <-> worker messages: Locust 2.x's wire format, one msgpack array
 * [type: str, data: any, node_id: str] per ZeroMQ payload frame, plus acrida's negotiated
 * extensions (see proto/PROTOCOL.md). This is the only module that uses msgpack-c (the data of
 * custom messages is read and written by common/lua_value.c).
 *
 * Decoding treats every byte as hostile: the frame size is checked first, a pre-scan rejects
 * container counts larger than the remaining bytes and nesting deeper than ACR_MSG_MAX_DEPTH,
 * and every field is type-checked. A frame that fails any check is rejected whole with a reason.
 *
 * Error convention: 0 or a negative errno (-EPROTO for malformed input with the reason in @err,
 * -ENOMEM).
 */
#ifndef ACR_PROTO_MSG_H
#define ACR_PROTO_MSG_H

#include "common/stats.h"
#include "common/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ACR_MSG_MAX_FRAME (64u << 20) /**< bytes; also set as ZMQ_MAXMSGSIZE */
#define ACR_MSG_MAX_DEPTH 16
/** Bytes of objects msgpack-c may allocate to decode one frame (24 per array element, 48 per map
 *  pair; strings point into the frame), checked by the pre-scan before anything is allocated: a
 *  stats report of 10000 entries with ~100 histogram buckets each needs ~120 MiB, 64 MiB of nils
 *  would need 1.5 GiB. */
#define ACR_MSG_MAX_DECODED ((uint64_t)256 << 20)
/** The same for the types whose data is a few fields (client_ready, heartbeat, ...). */
#define ACR_MSG_MAX_DECODED_SMALL ((uint64_t)1 << 20)
/** Entries per stats report accepted on receive: each decoded entry holds a ~16 KB histogram, so
 *  this bounds a report's memory (~160 MB) whatever the frame holds. A worker's table keeps at
 *  most ACR_STATS_MAX_NAMES names plus its [other] entries (common/stats.h), so any report it
 *  sends fits. */
#define ACR_MSG_MAX_ENTRIES (ACR_STATS_MAX_NAMES + ACR_STATS_MAX_OTHER + 1)
/** Tags per list in a spawn's parsed_options, and bytes per tag, accepted on receive. */
#define ACR_MSG_MAX_TAGS 1000
#define ACR_MSG_TAG_MAX 1024

typedef enum {
    ACR_MSG_CUSTOM = 0, /**< any type we do not know: only its type_name is kept */
    ACR_MSG_CLIENT_READY,
    ACR_MSG_ACK,
    ACR_MSG_HEARTBEAT,
    ACR_MSG_SPAWN, /**< also "hatch" on receive */
    ACR_MSG_SPAWNING,
    ACR_MSG_SPAWNING_COMPLETE, /**< also "hatching_complete" on receive */
    ACR_MSG_STATS,
    ACR_MSG_STOP,
    ACR_MSG_CLIENT_STOPPED,
    ACR_MSG_QUIT,
    ACR_MSG_EXCEPTION,
    ACR_MSG_RECONNECT,
    ACR_MSG_SCENARIO, /**< acrida extension: master ships the scenario source */
    ACR_MSG_POOL_REQ, /**< acrida extension: "acrida_pool_req", a worker's data pool request */
    ACR_MSG_POOL_REP, /**< acrida extension: "acrida_pool_rep", the master's answer */
    /** acrida extension: "acrida_spawning_complete", the master to its acrida workers when the
     *  cluster's ramp reached its target (user_count: the target) */
    ACR_MSG_RAMP_DONE,
    /** acrida extension: "acrida_rejoin", a worker's re-registration with a new master instance
     *  (its test, state, users and last report sequence; proto/PROTOCOL.md) */
    ACR_MSG_REJOIN,
    /** acrida extension: "acrida_bundle_part", one part of the scenario bundle's blob */
    ACR_MSG_BUNDLE_PART,
    /** acrida extension: "acrida_scenario_loaded", a worker's scenario hash or load error */
    ACR_MSG_SCENARIO_LOADED,
    /** acrida extension: "acrida_stall", a worker's watchdog interrupted a user class's task that
     *  ran too long without yielding (the master quarantines the class) */
    ACR_MSG_STALL,
} acr_msg_type_t;

/** Hex characters of a master instance id and of a test id (16 random bytes, lowercase hex). */
#define ACR_MSG_ID_HEX 32
/** Hex characters of a scenario's sha256. */
#define ACR_MSG_SHA256_HEX 64

/** The operation of an acrida_pool_req (proto/PROTOCOL.md, "Data pools"). */
typedef enum {
    ACR_POOL_OP_ACQUIRE = 0,  /**< lease a free row (waits up to the timeout) */
    ACR_POOL_OP_NEXT,         /**< the next row of a queue, circular or random pool */
    ACR_POOL_OP_RELEASE,      /**< give back one leased row (no answer) */
    ACR_POOL_OP_RELEASE_USER, /**< a user ended: give back its rows, drop its waits (no answer) */
    ACR_POOL_OP_SIZE,         /**< size and available */
} acr_pool_op_t;

/** Bytes of a pool name on the wire. */
#define ACR_MSG_POOL_NAME_MAX 256

/** The fields of acrida_pool_req / acrida_pool_rep in a decoded message; strings owned by it. */
typedef struct acr_msg_pool {
    char *name; /**< req: the pool */
    acr_pool_op_t op;
    uint64_t req_id;         /**< both: the worker's request id, echoed in the answer */
    uint64_t user;           /**< req: the user, unique on its worker */
    int64_t row_id;          /**< req (release) and rep (a leased row): -1 when absent */
    double timeout;          /**< req (acquire): seconds, < 0 = wait without limit */
    char *error;             /**< rep: NULL, "timeout", "exhausted", "unknown pool 'x'", ... */
    int64_t size, available; /**< rep: -1 when absent */
} acr_msg_pool_t;

/** The scenario bundle fields of `scenario` (its "acrida_bundle" manifest), acrida_bundle_part
 *  and acrida_scenario_loaded (proto/PROTOCOL.md); strings owned by the message. */
typedef struct acr_msg_bundle {
    bool present;   /**< scenario: the manifest was there */
    char *sha256;   /**< 64 lowercase hex: the bundle's (all three) */
    char *main;     /**< scenario: the scenario's path in the bundle */
    uint64_t size;  /**< scenario: bytes of the blob (<= ACR_MSG_BUNDLE_MAX) */
    uint32_t parts; /**< scenario: acrida_bundle_part frames that follow */
    uint32_t index; /**< acrida_bundle_part: 0-based; the bytes are in acr_msg_t.data */
    char *error;    /**< acrida_scenario_loaded: NULL when loaded, else the reason */
} acr_msg_bundle_t;

/** Wire name of a known type ("client_ready", ...). */
const char *acr_msg_type_name(acr_msg_type_t t);
/** Whether @name is one of the protocol's own types (legacy names included), which a custom
 *  message may not use. */
bool acr_msg_type_is_builtin(const char *name);

typedef struct acr_class_count {
    char *name;
    int64_t count;
} acr_class_count_t;

/** A decoded message. Every pointer is owned by the message and freed by acr_msg_free(). */
typedef struct acr_msg {
    acr_msg_type_t type;
    char *type_name; /**< as received */
    char *node_id;   /**< third element ("" when nil) */

    /* client_ready */
    char *version; /**< "" for Debian's Locust; "acrida/<v>" for acrida workers. For an ack:
                    *   the acrida master's version from its capabilities map, else NULL */
    /* ack */
    int64_t index;  /**< -1 when absent */
    bool acrida;    /**< ack carried acrida capabilities / client_ready came from acrida */
    char *instance; /**< ack: the acrida master's instance id (ACR_MSG_ID_HEX lowercase hex),
                     *   NULL when absent */
    /* heartbeat */
    char *state; /**< "ready" | "spawning" | "running" | "stopped" | ...; NULL for the acrida
                  *   master's heartbeat (nil data) */
    double cpu_usage;
    int64_t memory_usage;
    int64_t nofile; /**< acrida_nofile: the worker's soft RLIMIT_NOFILE; 0 when absent */
    /* spawn (acrida_test_id, NULL when absent) and acrida_rejoin (test_id, "" or ACR_MSG_ID_HEX
     * lowercase hex): the test the users belong to */
    char *test_id;
    /* acrida_rejoin: also state ("spawning" | "running" | "stopped"), classes, user_count, host,
     * stop_timeout, tags, exclude_tags and seq (last_seq: the last acrida_seq the worker sent) */
    char *scenario_sha256; /**< ACR_MSG_SHA256_HEX lowercase hex */
    /** acrida_rejoin: epoch s of the test's first spawn on the worker (finite, > 0); 0 when
     *  absent or nil (an older worker). Whether it is plausible is acr_msg_check_started_at's. */
    double started_at;
    /* spawn */
    double timestamp;
    char *host;          /**< NULL when nil */
    double stop_timeout; /**< < 0 when nil */
    /** parsed_options.tags / .exclude_tags (--tags / --exclude-tags): NULL-terminated lists, NULL
     *  when absent or nil */
    char **tags, **exclude_tags;
    /* spawn, spawning_complete, stats */
    acr_class_count_t *classes;
    size_t nclasses;
    int64_t user_count; /**< spawning_complete, stats, acrida_spawning_complete; -1 when absent */
    /* exception; exc_count is acrida's "count" (occurrences aggregated by the worker over one
     * report interval), 1 when absent (a Locust worker sends one message per occurrence) */
    char *exc_msg, *exc_traceback;
    uint64_t exc_count;
    /* stats: the decoded delta (entries, total, errors) and acrida's sequence number (-1 when the
     * peer sent none, i.e. a Locust worker). Also "final": true on a worker's last report. */
    acr_stats_t *stats;
    int64_t seq;
    bool final;
    /** stats: "acrida_cumulative": true, the report holds the worker's whole test since its first
     *  spawn (sent after an acrida_rejoin), not a delta */
    bool cumulative;
    /* scenario */
    char *scenario_name, *scenario_source;
    size_t scenario_len;
    /* custom: the data element, re-encoded as one msgpack value (NULL when nil). stats: the
     * report's fields other than the protocol's (those report_to_master listeners added) as one
     * msgpack map (NULL when there are none). Either is at most ACR_MSG_MAX_DEPTH deep. */
    char *data;
    size_t data_len;
    /* acrida_pool_req / acrida_pool_rep; a reply's row is in data / data_len (NULL for nil) */
    acr_msg_pool_t pool;
    /* scenario's bundle manifest, acrida_bundle_part (its bytes in data / data_len),
     * acrida_scenario_loaded */
    acr_msg_bundle_t bundle;
    /* acrida_stall: the user class, its task and how long it ran without yielding (s) */
    char *stall_class, *stall_task;
    double stall_seconds;
} acr_msg_t;

/**
 * Decodes one payload frame into @out (which the caller provides; it is zeroed first).
 * @err receives a short reason such as "frame is not a 3-element array" or
 * "heartbeat: 'state' missing or not a string". On failure @out holds nothing to free.
 */
int acr_msg_decode(const void *buf, size_t len, acr_msg_t *out, char *err, size_t errlen);
/**
 * acr_msg_decode, where a stats report is decoded into *@spare (a table emptied with
 * acr_stats_clear; *@spare then becomes NULL: the message owns it) when it is not NULL, instead of
 * a new table. A receiver of many reports hands each message's table back as the next spare, so
 * that its entries' nodes are reused (common/stats.c).
 */
int acr_msg_decode_reuse(const void *buf, size_t len, acr_msg_t *out, acr_stats_t **spare,
                         char *err, size_t errlen);
void acr_msg_free(acr_msg_t *m);

/* ---- encoders: each appends one complete payload to @b (which the caller resets) ---- */

int acr_msg_encode_client_ready(acr_buf_t *b, const char *version, const char *node_id);
/** @acrida adds the acrida capabilities map: {"index": i, "acrida": {"version": ...}}. */
int acr_msg_encode_ack(acr_buf_t *b, int64_t index, bool acrida, const char *node_id);
/** The acrida ack with the master's @instance id (ACR_MSG_ID_HEX lowercase hex) in the acrida
 *  map: {"index": i, "acrida": {"version": ..., "instance": ...}}. -EINVAL for a malformed id. */
int acr_msg_encode_ack_instance(acr_buf_t *b, int64_t index, const char *instance,
                                const char *node_id);
/** @nofile > 0 adds acrida_nofile (the worker's descriptor limit); 0 leaves it out. */
int acr_msg_encode_heartbeat(acr_buf_t *b, const char *state, double cpu, int64_t mem,
                             int64_t nofile, const char *node_id);
/** @host may be NULL; @stop_timeout < 0 is nil. parsed_options is sent as an empty map. */
int acr_msg_encode_spawn(acr_buf_t *b, double timestamp, const acr_class_count_t *classes, size_t n,
                         const char *host, double stop_timeout, const char *node_id);
/** acr_msg_encode_spawn with the master's --tags / --exclude-tags (NULL-terminated lists, NULL =
 *  none) in parsed_options, as Locust's `tags` and `exclude_tags`; without either,
 *  parsed_options is {} as from acr_msg_encode_spawn. */
int acr_msg_encode_spawn_tags(acr_buf_t *b, double timestamp, const acr_class_count_t *classes,
                              size_t n, const char *host, double stop_timeout,
                              const char *const *tags, const char *const *exclude_tags,
                              const char *node_id);
/** acr_msg_encode_spawn_tags plus the acrida master's "acrida_test_id" (@test_id: ACR_MSG_ID_HEX
 *  lowercase hex; NULL leaves the key out). -EINVAL for a malformed id. */
int acr_msg_encode_spawn_test(acr_buf_t *b, double timestamp, const acr_class_count_t *classes,
                              size_t n, const char *host, double stop_timeout,
                              const char *const *tags, const char *const *exclude_tags,
                              const char *test_id, const char *node_id);
/** A message whose data is nil: spawning, stop, client_stopped, quit, reconnect, and a bare
 *  master heartbeat. */
int acr_msg_encode_nil(acr_buf_t *b, const char *type, const char *node_id);
int acr_msg_encode_spawning_complete(acr_buf_t *b, const acr_class_count_t *classes, size_t n,
                                     int64_t user_count, const char *node_id);
/**
 * The stats report: every entry of @delta with requests or failures since the last report,
 * stats_total, errors (keys as Locust: sha256 hex of method.name.repr(error)),
 * user_classes_count, user_count, plus acrida's "acrida_seq" and "acrida_final" and, per entry,
 * the lossless histogram "acrida_hist" ([index, count, ...] pairs, µs buckets) next to Locust's
 * rounded response_times buckets.
 */
int acr_msg_encode_stats(acr_buf_t *b, acr_stats_t *delta, const acr_class_count_t *classes,
                         size_t n, int64_t user_count, int64_t seq, bool final,
                         const char *node_id);
/** The same report with @nextra more fields: @extra holds @nextra key/value pairs packed as the
 *  body of a msgpack map (common/lua_value.h, acr_lua_value_encode_pairs), none of them a key of
 *  the report itself. */
int acr_msg_encode_stats_extra(acr_buf_t *b, acr_stats_t *delta, const acr_class_count_t *classes,
                               size_t n, int64_t user_count, int64_t seq, bool final,
                               const void *extra, size_t extra_len, uint32_t nextra,
                               const char *node_id);
/** A report holding the worker's cumulative stats of its test (every entry with requests or
 *  failures, errors with their total occurrences) with "acrida_cumulative": true; sent right
 *  after an acrida_rejoin (proto/PROTOCOL.md). */
int acr_msg_encode_stats_cumulative(acr_buf_t *b, acr_stats_t *cumulative,
                                    const acr_class_count_t *classes, size_t n, int64_t user_count,
                                    int64_t seq, bool final, const char *node_id);
/** The keys of a stats report's data map, NULL-terminated: fields added to a report may not use
 *  them. */
extern const char *const acr_msg_stats_keys[];
/** A custom message [type, data, node_id]: @data is one msgpack value of @len bytes (NULL: nil).
 *  -EINVAL when @type is a built-in type. */
int acr_msg_encode_custom(acr_buf_t *b, const char *type, const void *data, size_t len,
                          const char *node_id);
int acr_msg_encode_exception(acr_buf_t *b, const char *msg, const char *traceback, uint64_t count,
                             const char *node_id);
int acr_msg_encode_scenario(acr_buf_t *b, const char *name, const char *source, size_t len,
                            const char *node_id);

/** acrida_pool_req [proto/PROTOCOL.md]: @row_id < 0 and @timeout < 0 are sent as nil. */
int acr_msg_encode_pool_req(acr_buf_t *b, const char *pool, acr_pool_op_t op, uint64_t req_id,
                            uint64_t user, int64_t row_id, double timeout, const char *node_id);
/** acrida_pool_rep: @row is one msgpack value of @row_len bytes (NULL: nil); @row_id < 0 is nil;
 *  @error NULL is nil. */
int acr_msg_encode_pool_rep(acr_buf_t *b, uint64_t req_id, const void *row, size_t row_len,
                            int64_t row_id, int64_t size, int64_t available, const char *error,
                            const char *node_id);

/** acrida_spawning_complete {user_count} (master -> acrida workers, proto/PROTOCOL.md): the
 *  cluster's ramp reached its target of @user_count users (>= 0). */
int acr_msg_encode_ramp_done(acr_buf_t *b, int64_t user_count, const char *node_id);

/** The data of acrida_rejoin (W->M, proto/PROTOCOL.md); strings borrowed. */
typedef struct acr_msg_rejoin {
    const char *test_id; /**< "" or ACR_MSG_ID_HEX lowercase hex */
    const char *state;   /**< "spawning" | "running" | "stopped" */
    const acr_class_count_t *classes;
    size_t nclasses;
    int64_t user_count;                            /**< >= 0 */
    const char *scenario_sha256;                   /**< ACR_MSG_SHA256_HEX lowercase hex */
    const char *host;                              /**< NULL: nil */
    double stop_timeout;                           /**< < 0: nil */
    const char *const *tags, *const *exclude_tags; /**< NULL-terminated; NULL or empty: nil */
    int64_t last_seq;                              /**< >= 0: the last acrida_seq sent */
    double started_at; /**< epoch s of the test's first spawn here; <= 0: nil (unknown) */
} acr_msg_rejoin_t;

/** acrida_rejoin: -EINVAL when a field is out of its range (as the decoder would refuse it). */
int acr_msg_encode_rejoin(acr_buf_t *b, const acr_msg_rejoin_t *r, const char *node_id);

/** How far in the future (receiver's clock) a rejoin's started_at may be: the clocks of a master
 *  and its workers may differ by this much. */
#define ACR_MSG_CLOCK_SKEW_S 60.0
/** How old a rejoin's started_at may be: a test older than this is not believed (400 days). */
#define ACR_MSG_MAX_TEST_AGE_S (400.0 * 86400.0)

/**
 * Whether a decoded acrida_rejoin's @started_at (> 0) is plausible at @now (the receiver's epoch
 * s): at most ACR_MSG_CLOCK_SKEW_S in the future and at most ACR_MSG_MAX_TEST_AGE_S old. Returns 0,
 * or -ERANGE with the reason in @err ("'started_at' is 3600 s in the future (clock skew?)").
 */
int acr_msg_check_started_at(double started_at, double now, char *err, size_t errlen);

/** Whether @s is exactly @n lowercase hex characters. */
bool acr_msg_is_hex(const char *s, size_t n);
/** Largest bundle blob announced in a `scenario` that decodes (also common/bundle.h's limit). */
#define ACR_MSG_BUNDLE_MAX ((uint64_t)INT32_MAX)

/** `scenario` with the bundle manifest @mf (NULL: without one, as acr_msg_encode_scenario). */
int acr_msg_encode_scenario_bundle(acr_buf_t *b, const char *name, const char *source, size_t len,
                                   const acr_msg_bundle_t *mf, const char *node_id);
/** acrida_bundle_part {sha256, index, data: bin}. */
int acr_msg_encode_bundle_part(acr_buf_t *b, const char *sha256, uint32_t index, const void *data,
                               size_t len, const char *node_id);
/** acrida_stall {class, task, seconds} (proto/PROTOCOL.md). */
int acr_msg_encode_stall(acr_buf_t *b, const char *cls, const char *task, double seconds,
                         const char *node_id);
/** acrida_scenario_loaded {sha256, error}: @error NULL is nil (loaded). */
int acr_msg_encode_scenario_loaded(acr_buf_t *b, const char *sha256, const char *error,
                                   const char *node_id);

/** Locust's error key: sha256 hex of "<method>.<name>.<python repr of error>" (65 bytes incl.
 *  NUL in @out; "" only if OpenSSL cannot allocate). Python's repr quoting is reproduced exactly
 *  for ASCII and for the common non-printable code points (C1 controls, Unicode spaces, format
 *  characters, separators, private use); unassigned code points are passed through. */
void acr_msg_error_key(const char *method, const char *name, const char *error, char out[65]);

#endif
