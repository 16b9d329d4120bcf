/*
 * Unit tests of proto/msg's re-registration fields (#10, proto/PROTOCOL.md): the master instance
 * in ack.acrida, spawn's acrida_test_id, the acrida_rejoin message (its started_at and the check of
 * its plausibility included) and the cumulative stats report: round trips, what is optional, and
 * hostile frames refused with a reason naming the field.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "proto/msg.h"

#include <errno.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NODE "vm_1fa5b852a1cb47fc97be8a84bca4536d"
#define INST "0123456789abcdef0123456789abcdef"
#define TEST_ID "fedcba9876543210fedcba9876543210"
#define SHA "abababababababababababababababababababababababababababababababab"

static void decode_ok(const acr_buf_t *b, acr_msg_t *m)
{
    char err[256];
    int r = acr_msg_decode(b->data, b->len, m, err, sizeof(err));
    if (r) fail_msg("decode failed: %d (%s)", r, err);
}

/* The frame in @sb must be refused with a reason containing @reason. */
static void expect_refused(const msgpack_sbuffer *sb, const char *reason)
{
    acr_msg_t m;
    char err[256];
    int r = acr_msg_decode(sb->data, sb->size, &m, err, sizeof(err));
    if (r != -EPROTO) fail_msg("decode returned %d, expected -EPROTO (%s)", r, reason);
    if (!strstr(err, reason)) fail_msg("reason '%s' does not contain '%s'", err, reason);
}

static void pack_s(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* ---- ack.acrida.instance ---- */

static void ack_frame(msgpack_sbuffer *sb, const char *instance_or_null, bool as_int)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    pack_s(&pk, "ack");
    msgpack_pack_map(&pk, 2);
    pack_s(&pk, "index");
    msgpack_pack_int(&pk, 1);
    pack_s(&pk, "acrida");
    msgpack_pack_map(&pk, 2);
    pack_s(&pk, "version");
    pack_s(&pk, "x");
    pack_s(&pk, "instance");
    if (as_int)
        msgpack_pack_int(&pk, 5);
    else if (instance_or_null)
        pack_s(&pk, instance_or_null);
    else
        msgpack_pack_nil(&pk);
    pack_s(&pk, NODE);
}

static void test_ack_instance(void **state)
{
    (void)state;
    acr_buf_t b = {0};
    acr_msg_t m;

    assert_int_equal(acr_msg_encode_ack_instance(&b, 4, INST, NODE), 0);
    decode_ok(&b, &m);
    assert_int_equal(m.type, ACR_MSG_ACK);
    assert_int_equal(m.index, 4);
    assert_true(m.acrida);
    assert_string_equal(m.version, ACR_VERSION);
    assert_string_equal(m.instance, INST);
    acr_msg_free(&m);

    /* the acrida ack of an older master: no instance */
    acr_buf_reset(&b);
    assert_int_equal(acr_msg_encode_ack(&b, 4, true, NODE), 0);
    decode_ok(&b, &m);
    assert_true(m.acrida);
    assert_null(m.instance);
    acr_msg_free(&m);

    /* the encoder refuses what the decoder would */
    acr_buf_reset(&b);
    assert_int_equal(acr_msg_encode_ack_instance(&b, 4, "0123", NODE), -EINVAL);
    assert_int_equal(acr_msg_encode_ack_instance(&b, 4, NULL, NODE), -EINVAL);
    assert_int_equal(acr_msg_encode_ack_instance(&b, 4, "0123456789ABCDEF0123456789abcdef", NODE),
                     -EINVAL);
    assert_int_equal(b.len, 0);
    acr_buf_free(&b);

    msgpack_sbuffer sb;
    ack_frame(&sb, NULL, false); /* nil: absent */
    assert_int_equal(acr_msg_decode(sb.data, sb.size, &m, (char[64]){0}, 64), 0);
    assert_null(m.instance);
    acr_msg_free(&m);
    msgpack_sbuffer_destroy(&sb);

    static const char *const bad[] = {"", "0123456789abcdef", INST "0",
                                      "0123456789abcdef0123456789abcdeG"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ack_frame(&sb, bad[i], false);
        expect_refused(&sb, "ack: acrida: 'instance' is not 32 lowercase hex characters");
        msgpack_sbuffer_destroy(&sb);
    }
    ack_frame(&sb, NULL, true);
    expect_refused(&sb, "ack: acrida: 'instance' missing or not a string");
    msgpack_sbuffer_destroy(&sb);
}

/* ---- spawn.acrida_test_id ---- */

static void test_spawn_test_id(void **state)
{
    (void)state;
    acr_class_count_t cls[] = {{"WebUser", 2}};
    const char *tags[] = {"a", NULL};
    acr_buf_t b = {0};
    acr_msg_t m;

    assert_int_equal(
        acr_msg_encode_spawn_test(&b, 3.0, cls, 1, "http://h", 1.5, tags, NULL, TEST_ID, NODE), 0);
    decode_ok(&b, &m);
    assert_int_equal(m.type, ACR_MSG_SPAWN);
    assert_string_equal(m.test_id, TEST_ID);
    assert_string_equal(m.host, "http://h");
    assert_string_equal(m.tags[0], "a");
    assert_int_equal(m.classes[0].count, 2);
    acr_msg_free(&m);

    /* a Locust master's spawn: no id */
    acr_buf_reset(&b);
    assert_int_equal(acr_msg_encode_spawn(&b, 3.0, cls, 1, NULL, -1, NODE), 0);
    decode_ok(&b, &m);
    assert_null(m.test_id);
    acr_msg_free(&m);

    acr_buf_reset(&b);
    assert_int_equal(acr_msg_encode_spawn_test(&b, 3.0, cls, 1, NULL, -1, NULL, NULL, "x", NODE),
                     -EINVAL);
    acr_buf_free(&b);

    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    pack_s(&pk, "spawn");
    msgpack_pack_map(&pk, 3);
    pack_s(&pk, "timestamp");
    msgpack_pack_double(&pk, 1.0);
    pack_s(&pk, "user_classes_count");
    msgpack_pack_map(&pk, 0);
    pack_s(&pk, "acrida_test_id");
    pack_s(&pk, "FEDCBA9876543210FEDCBA9876543210");
    pack_s(&pk, NODE);
    expect_refused(&sb, "spawn: 'acrida_test_id' is not 32 lowercase hex characters");
    msgpack_sbuffer_destroy(&sb);
}

/* ---- acrida_rejoin ---- */

static void test_rejoin_roundtrip(void **state)
{
    (void)state;
    acr_class_count_t cls[] = {{"WebUser", 3}, {"Admin", 1}};
    const char *tags[] = {"checkout", NULL};
    const char *excl[] = {"slow", "x", NULL};
    acr_msg_rejoin_t r = {.test_id = TEST_ID,
                          .state = "running",
                          .classes = cls,
                          .nclasses = 2,
                          .user_count = 4,
                          .scenario_sha256 = SHA,
                          .host = "http://t:1",
                          .stop_timeout = 2.5,
                          .tags = tags,
                          .exclude_tags = excl,
                          .last_seq = 17,
                          .started_at = 1764547200.25};
    acr_buf_t b = {0};
    acr_msg_t m;

    assert_true(acr_msg_type_is_builtin("acrida_rejoin"));
    assert_string_equal(acr_msg_type_name(ACR_MSG_REJOIN), "acrida_rejoin");
    assert_int_equal(acr_msg_encode_rejoin(&b, &r, NODE), 0);
    decode_ok(&b, &m);
    assert_int_equal(m.type, ACR_MSG_REJOIN);
    assert_string_equal(m.node_id, NODE);
    assert_string_equal(m.test_id, TEST_ID);
    assert_string_equal(m.state, "running");
    assert_int_equal(m.nclasses, 2);
    assert_string_equal(m.classes[1].name, "Admin");
    assert_int_equal(m.classes[0].count, 3);
    assert_int_equal(m.user_count, 4);
    assert_string_equal(m.scenario_sha256, SHA);
    assert_string_equal(m.host, "http://t:1");
    assert_true(m.stop_timeout == 2.5);
    assert_string_equal(m.tags[0], "checkout");
    assert_null(m.tags[1]);
    assert_string_equal(m.exclude_tags[1], "x");
    assert_int_equal(m.seq, 17);
    assert_true(m.started_at == 1764547200.25);
    acr_msg_free(&m);

    /* the optional fields nil, an empty test id (a spawn without one), state stopped */
    acr_msg_rejoin_t r2 = {.test_id = "",
                           .state = "stopped",
                           .scenario_sha256 = SHA,
                           .stop_timeout = -1,
                           .last_seq = 0};
    acr_buf_reset(&b);
    assert_int_equal(acr_msg_encode_rejoin(&b, &r2, NODE), 0);
    decode_ok(&b, &m);
    assert_string_equal(m.test_id, "");
    assert_string_equal(m.state, "stopped");
    assert_int_equal(m.nclasses, 0);
    assert_int_equal(m.user_count, 0);
    assert_null(m.host);
    assert_true(m.stop_timeout < 0);
    assert_null(m.tags);
    assert_null(m.exclude_tags);
    assert_int_equal(m.seq, 0);
    assert_true(m.started_at == 0); /* 0 is sent as nil: unknown */
    acr_msg_free(&m);

    /* the encoder refuses out-of-range fields */
    acr_buf_reset(&b);
    r2.state = "stopping";
    assert_int_equal(acr_msg_encode_rejoin(&b, &r2, NODE), -EINVAL);
    r2.state = "running";
    r2.scenario_sha256 = "abc";
    assert_int_equal(acr_msg_encode_rejoin(&b, &r2, NODE), -EINVAL);
    r2.scenario_sha256 = SHA;
    r2.last_seq = -1;
    assert_int_equal(acr_msg_encode_rejoin(&b, &r2, NODE), -EINVAL);
    r2.last_seq = 0;
    r2.started_at = NAN;
    assert_int_equal(acr_msg_encode_rejoin(&b, &r2, NODE), -EINVAL);
    r2.started_at = INFINITY;
    assert_int_equal(acr_msg_encode_rejoin(&b, &r2, NODE), -EINVAL);
    assert_int_equal(b.len, 0);
    acr_buf_free(&b);
}

/* A rejoin frame whose field @bad_key is replaced by a str/int/nil/float value (or dropped). */
enum { V_DROP, V_STR, V_INT, V_NIL, V_DBL };

static void rejoin_frame(msgpack_sbuffer *sb, const char *bad_key, int kind, const char *s,
                         int64_t i, double f)
{
    static const char *const keys[] = {"test_id",    "state",           "user_classes_count",
                                       "user_count", "scenario_sha256", "last_seq"};
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    pack_s(&pk, "acrida_rejoin");
    size_t n = sizeof(keys) / sizeof(keys[0]);
    bool extra = true;
    for (size_t k = 0; k < n; k++)
        if (!strcmp(keys[k], bad_key)) extra = false;
    msgpack_pack_map(&pk, n + (extra ? 1 : 0) - (kind == V_DROP ? 1 : 0));
    for (size_t k = 0; k < n + (extra ? 1 : 0); k++) {
        const char *key = k < n ? keys[k] : bad_key;
        if (!strcmp(key, bad_key)) {
            if (kind == V_DROP) continue;
            pack_s(&pk, key);
            if (kind == V_STR)
                pack_s(&pk, s);
            else if (kind == V_INT)
                msgpack_pack_int64(&pk, i);
            else if (kind == V_DBL)
                msgpack_pack_double(&pk, f);
            else
                msgpack_pack_nil(&pk);
            continue;
        }
        pack_s(&pk, key);
        if (!strcmp(key, "test_id"))
            pack_s(&pk, TEST_ID);
        else if (!strcmp(key, "state"))
            pack_s(&pk, "running");
        else if (!strcmp(key, "user_classes_count"))
            msgpack_pack_map(&pk, 0);
        else if (!strcmp(key, "scenario_sha256"))
            pack_s(&pk, SHA);
        else
            msgpack_pack_int(&pk, 0);
    }
    pack_s(&pk, NODE);
}

static void test_rejoin_refused(void **state)
{
    (void)state;
    static const struct {
        const char *key;
        int kind;
        const char *s;
        int64_t i;
        const char *reason;
    } cases[] = {
        {"test_id", V_DROP, NULL, 0, "acrida_rejoin: 'test_id' missing"},
        {"test_id", V_STR, "abc", 0, "'test_id' is neither empty nor 32 lowercase hex"},
        {"test_id", V_INT, NULL, 3, "'test_id' missing or not a string"},
        {"state", V_DROP, NULL, 0, "'state' missing"},
        {"state", V_STR, "stopping", 0, "'state' is not \"spawning\", \"running\" or \"stopped\""},
        {"user_classes_count", V_DROP, NULL, 0, "'user_classes_count' missing"},
        {"user_classes_count", V_INT, NULL, 1, "'user_classes_count' is not a map"},
        {"user_count", V_DROP, NULL, 0, "'user_count' missing"},
        {"user_count", V_INT, NULL, -1, "'user_count' is negative"},
        {"user_count", V_STR, "1", 0, "'user_count' is not an integer"},
        {"scenario_sha256", V_DROP, NULL, 0, "'scenario_sha256' missing"},
        {"scenario_sha256", V_STR, "abc", 0, "'scenario_sha256' is not 64 lowercase hex"},
        {"last_seq", V_DROP, NULL, 0, "'last_seq' missing"},
        {"last_seq", V_INT, NULL, -5, "'last_seq' is negative"},
        {"stop_timeout", V_INT, NULL, -1, "'stop_timeout' is negative"},
        {"host", V_INT, NULL, 1, "'host' missing or not a string"},
        {"tags", V_STR, "a", 0, "'tags' is not an array"},
        {"exclude_tags", V_INT, NULL, 0, "'exclude_tags' is not an array"},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        msgpack_sbuffer sb;
        rejoin_frame(&sb, cases[c].key, cases[c].kind, cases[c].s, cases[c].i, 0);
        expect_refused(&sb, cases[c].reason);
        msgpack_sbuffer_destroy(&sb);
    }
    /* the well-formed frame of the same builder passes (the cases fail for their own reason) */
    msgpack_sbuffer sb;
    acr_msg_t m;
    char err[256];
    rejoin_frame(&sb, "host", V_NIL, NULL, 0, 0);
    assert_int_equal(acr_msg_decode(sb.data, sb.size, &m, err, sizeof err), 0);
    assert_null(m.host);
    acr_msg_free(&m);
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer sb2;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb2);
    msgpack_packer_init(&pk, &sb2, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    pack_s(&pk, "acrida_rejoin");
    msgpack_pack_nil(&pk);
    pack_s(&pk, NODE);
    expect_refused(&sb2, "acrida_rejoin: data is not a map");
    msgpack_sbuffer_destroy(&sb2);
}

/* started_at (the test's first spawn on the worker, for a load shape to resume): optional, a
 * finite epoch time > 0 or the frame is refused (a NaN or an infinity is "not a number"); its
 * plausibility against the receiver's clock is acr_msg_check_started_at's (the master ignores an
 * implausible one with a warning). */
static void test_rejoin_started_at(void **state)
{
    (void)state;
    static const struct {
        int kind;
        const char *s;
        int64_t i;
        double f;
        double want; /* < 0: refused */
        const char *reason;
    } cases[] = {
        {V_DROP, NULL, 0, 0, 0, NULL},                      /* an older worker: unknown */
        {V_NIL, NULL, 0, 0, 0, NULL},                       /* nil: unknown */
        {V_DBL, NULL, 0, 1764547200.5, 1764547200.5, NULL}, /* as acrida sends it */
        {V_INT, NULL, 1764547200, 0, 1764547200, NULL},     /* an integer is a number too */
        {V_DBL, NULL, 0, NAN, -1, "acrida_rejoin: 'started_at' is not a number"},
        {V_DBL, NULL, 0, INFINITY, -1, "acrida_rejoin: 'started_at' is not a number"},
        {V_DBL, NULL, 0, -INFINITY, -1, "acrida_rejoin: 'started_at' is not a number"},
        {V_DBL, NULL, 0, -5.0, -1, "acrida_rejoin: 'started_at' is not an epoch time > 0"},
        {V_DBL, NULL, 0, 0.0, -1, "acrida_rejoin: 'started_at' is not an epoch time > 0"},
        {V_INT, NULL, 0, 0, -1, "acrida_rejoin: 'started_at' is not an epoch time > 0"},
        {V_INT, NULL, -1, 0, -1, "acrida_rejoin: 'started_at' is not an epoch time > 0"},
        {V_STR, "1764547200", 0, 0, -1, "acrida_rejoin: 'started_at' is not a number"},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        msgpack_sbuffer sb;
        acr_msg_t m;
        char err[256] = "";
        rejoin_frame(&sb, "started_at", cases[c].kind, cases[c].s, cases[c].i, cases[c].f);
        if (cases[c].want < 0) {
            expect_refused(&sb, cases[c].reason);
        } else {
            int r = acr_msg_decode(sb.data, sb.size, &m, err, sizeof err);
            if (r != 0) fail_msg("case %zu: decode failed: %d (%s)", c, r, err);
            if (m.started_at != cases[c].want)
                fail_msg("case %zu: started_at %f, expected %f", c, m.started_at, cases[c].want);
            acr_msg_free(&m);
        }
        msgpack_sbuffer_destroy(&sb);
    }

    /* plausible on the receiver's clock: up to the skew ahead, up to the age limit behind */
    const double now = 1764547200.0;
    char err[256];
    assert_int_equal(acr_msg_check_started_at(now - 25, now, err, sizeof err), 0);
    assert_int_equal(acr_msg_check_started_at(now, now, err, sizeof err), 0);
    assert_int_equal(acr_msg_check_started_at(now + ACR_MSG_CLOCK_SKEW_S, now, err, sizeof err), 0);
    assert_int_equal(acr_msg_check_started_at(now - 30 * 86400.0, now, err, sizeof err), 0);
    assert_int_equal(acr_msg_check_started_at(now + 3600, now, err, sizeof err), -ERANGE);
    assert_string_equal(err, "'started_at' is 3600 s in the future of this host's clock (more "
                             "than 60 s: clock skew?)");
    assert_int_equal(
        acr_msg_check_started_at(now - ACR_MSG_MAX_TEST_AGE_S - 86400.0, now, err, sizeof err),
        -ERANGE);
    assert_string_equal(err, "'started_at' is 401 days old (more than 400)");
    assert_int_equal(acr_msg_check_started_at(1.0, now, err, sizeof err), -ERANGE);
    assert_non_null(strstr(err, "days old"));
}

/* ---- stats: acrida_cumulative ---- */

static void test_stats_cumulative(void **state)
{
    (void)state;
    acr_stats_t *s = acr_stats_new(1000.0);
    assert_non_null(s);
    acr_stats_entry_t *e = acr_stats_get(s, "GET", "/a");
    assert_non_null(e);
    acr_stats_log(s, e, true, 12000, 10, NULL, 1000.5);
    assert_int_equal(acr_stats_add_error(s, "GET", "/a", "boom", 7), 0);
    acr_class_count_t cls[] = {{"WebUser", 3}};
    acr_buf_t b = {0};
    acr_msg_t m;

    assert_int_equal(acr_msg_encode_stats_cumulative(&b, s, cls, 1, 3, 9, false, NODE), 0);
    decode_ok(&b, &m);
    assert_int_equal(m.type, ACR_MSG_STATS);
    assert_true(m.cumulative);
    assert_false(m.final);
    assert_int_equal(m.seq, 9);
    assert_int_equal(m.user_count, 3);
    assert_null(m.data); /* acrida_cumulative is a protocol key, not a listener's field */
    const acr_stats_entry_t *got = acr_stats_find(m.stats, "GET", "/a");
    assert_non_null(got);
    assert_int_equal(got->num_requests, 1);
    size_t ne = 0;
    acr_stats_error_t *const *errs = acr_stats_errors(m.stats, &ne);
    assert_int_equal(ne, 1);
    assert_int_equal(errs[0]->occurrences, 7);
    acr_msg_free(&m);

    acr_buf_reset(&b);
    assert_int_equal(acr_msg_encode_stats_cumulative(&b, s, cls, 1, 0, 10, true, NODE), 0);
    decode_ok(&b, &m);
    assert_true(m.cumulative);
    assert_true(m.final);
    acr_msg_free(&m);

    /* an ordinary delta is not cumulative */
    acr_buf_reset(&b);
    assert_int_equal(acr_msg_encode_stats(&b, s, cls, 1, 3, 11, false, NODE), 0);
    decode_ok(&b, &m);
    assert_false(m.cumulative);
    acr_msg_free(&m);
    acr_buf_free(&b);
    acr_stats_free(s);

    bool listed = false;
    for (const char *const *k = acr_msg_stats_keys; *k; k++)
        listed |= strcmp(*k, "acrida_cumulative") == 0;
    assert_true(listed);

    /* a non-boolean flag rejects the report */
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    pack_s(&pk, "stats");
    msgpack_pack_map(&pk, 4);
    pack_s(&pk, "stats");
    msgpack_pack_array(&pk, 0);
    pack_s(&pk, "stats_total");
    msgpack_pack_map(&pk, 0);
    pack_s(&pk, "errors");
    msgpack_pack_map(&pk, 0);
    pack_s(&pk, "acrida_cumulative");
    msgpack_pack_int(&pk, 1);
    pack_s(&pk, NODE);
    expect_refused(&sb, "stats: 'acrida_cumulative' is not a boolean");
    msgpack_sbuffer_destroy(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ack_instance),      cmocka_unit_test(test_spawn_test_id),
        cmocka_unit_test(test_rejoin_roundtrip),  cmocka_unit_test(test_rejoin_refused),
        cmocka_unit_test(test_rejoin_started_at), cmocka_unit_test(test_stats_cumulative),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
