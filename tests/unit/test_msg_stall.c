/*
 * Unit tests of acrida_stall (#12, proto/PROTOCOL.md): the round trip, and hostile frames refused
 * with a reason naming the field (missing, empty or mistyped class, task, seconds out of range).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "proto/msg.h"

#include <errno.h>
#include <math.h>
#include <msgpack.h>
#include <string.h>

#define NODE "vm_1fa5b852a1cb47fc97be8a84bca4536d"

static void pack_s(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* An acrida_stall frame; @cls/@task NULL leave the key out, @secs NAN too; @cls_int sends the
 * class as an integer. */
static void stall_frame(msgpack_sbuffer *sb, const char *cls, bool cls_int, const char *task,
                        double secs)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    pack_s(&pk, "acrida_stall");
    msgpack_pack_map(&pk, (cls || cls_int) + (task != NULL) + !isnan(secs));
    if (cls_int) {
        pack_s(&pk, "class");
        msgpack_pack_int(&pk, 7);
    } else if (cls) {
        pack_s(&pk, "class");
        pack_s(&pk, cls);
    }
    if (task) {
        pack_s(&pk, "task");
        pack_s(&pk, task);
    }
    if (!isnan(secs)) {
        pack_s(&pk, "seconds");
        msgpack_pack_double(&pk, secs);
    }
    pack_s(&pk, NODE);
}

static void expect_refused(const char *cls, bool cls_int, const char *task, double secs,
                           const char *reason)
{
    msgpack_sbuffer sb;
    stall_frame(&sb, cls, cls_int, task, secs);
    acr_msg_t m;
    char err[256];
    int r = acr_msg_decode(sb.data, sb.size, &m, err, sizeof(err));
    msgpack_sbuffer_destroy(&sb);
    if (r != -EPROTO) fail_msg("decode returned %d, expected -EPROTO (%s)", r, reason);
    if (!strstr(err, reason)) fail_msg("reason '%s' does not contain '%s'", err, reason);
}

static void test_round_trip(void **state)
{
    (void)state;
    acr_buf_t b = {0};
    assert_int_equal(acr_msg_encode_stall(&b, "Spin", "spin", 10.05, NODE), 0);
    acr_msg_t m;
    char err[256];
    assert_int_equal(acr_msg_decode(b.data, b.len, &m, err, sizeof err), 0);
    assert_int_equal(m.type, ACR_MSG_STALL);
    assert_string_equal(m.stall_class, "Spin");
    assert_string_equal(m.stall_task, "spin");
    assert_true(fabs(m.stall_seconds - 10.05) < 1e-9);
    assert_string_equal(m.node_id, NODE);
    assert_string_equal(acr_msg_type_name(ACR_MSG_STALL), "acrida_stall");
    assert_true(acr_msg_type_is_builtin("acrida_stall"));
    acr_msg_free(&m);
    acr_buf_free(&b);
}

static void test_encoder_refuses(void **state)
{
    (void)state;
    acr_buf_t b = {0};
    assert_int_equal(acr_msg_encode_stall(&b, "", "t", 1, NODE), -EINVAL);
    assert_int_equal(acr_msg_encode_stall(&b, NULL, "t", 1, NODE), -EINVAL);
    assert_int_equal(acr_msg_encode_stall(&b, "C", NULL, 1, NODE), -EINVAL);
    assert_int_equal(acr_msg_encode_stall(&b, "C", "t", -1, NODE), -EINVAL);
    assert_int_equal(acr_msg_encode_stall(&b, "C", "t", NAN, NODE), -EINVAL);
    assert_int_equal(b.len, 0);
    acr_buf_free(&b);
}

static void test_hostile_frames(void **state)
{
    (void)state;
    expect_refused(NULL, false, "t", 1, "class");
    expect_refused("", false, "t", 1, "'class' is empty");
    expect_refused(NULL, true, "t", 1, "class");
    expect_refused("C", false, NULL, 1, "task");
    expect_refused("C", false, "t", NAN, "seconds");
    expect_refused("C", false, "t", -0.5, "'seconds' is out of range");
    expect_refused("C", false, "t", 1e12, "'seconds' is out of range");
    expect_refused("C", false, "t", INFINITY, "seconds");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_encoder_refuses),
        cmocka_unit_test(test_hostile_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
