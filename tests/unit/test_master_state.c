/*
 * The master's run state machine (master/runner.c): every legal and illegal transition, through
 * the one transition function, and the stopped notification.
 */
#include "master/master.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static const char *const legal_pairs[] = {
    "ready>spawning",   "spawning>running", "spawning>stopping", "running>spawning",
    "running>stopping", "stopping>stopped", "stopped>spawning",
};

static bool expected_legal(acr_run_state_t from, acr_run_state_t to)
{
    char key[64];
    snprintf(key, sizeof key, "%s>%s", acr_run_state_name(from), acr_run_state_name(to));
    for (size_t i = 0; i < sizeof(legal_pairs) / sizeof(legal_pairs[0]); i++)
        if (strcmp(legal_pairs[i], key) == 0) return true;
    return false;
}

static int stopped_calls;
static void on_stopped(acr_master_t *m)
{
    (void)m;
    stopped_calls++;
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(acr_run_state_name(ACR_RUN_READY), "ready");
    assert_string_equal(acr_run_state_name(ACR_RUN_SPAWNING), "spawning");
    assert_string_equal(acr_run_state_name(ACR_RUN_RUNNING), "running");
    assert_string_equal(acr_run_state_name(ACR_RUN_STOPPING), "stopping");
    assert_string_equal(acr_run_state_name(ACR_RUN_STOPPED), "stopped");
    assert_string_equal(acr_run_state_name(ACR_RUN__COUNT), "?");
}

static void test_every_pair(void **state)
{
    (void)state;
    for (int f = 0; f < ACR_RUN__COUNT; f++)
        for (int t = 0; t < ACR_RUN__COUNT; t++) {
            acr_master_t m;
            memset(&m, 0, sizeof m);
            m.state = (acr_run_state_t)f;
            m.on_stopped = on_stopped;
            stopped_calls = 0;
            bool want = expected_legal(m.state, (acr_run_state_t)t);
            bool got = acr_run_transition_legal(m.state, (acr_run_state_t)t);
            if (want != got)
                fail_msg("%s -> %s: expected %s, table says %s", acr_run_state_name(m.state),
                         acr_run_state_name((acr_run_state_t)t), want ? "legal" : "illegal",
                         got ? "legal" : "illegal");
            int rc = acr__run_set_state(&m, (acr_run_state_t)t);
            if (want) {
                if (rc != 0 || m.state != (acr_run_state_t)t)
                    fail_msg("%s -> %s: rc %d, state %s", acr_run_state_name((acr_run_state_t)f),
                             acr_run_state_name((acr_run_state_t)t), rc,
                             acr_run_state_name(m.state));
                assert_int_equal(stopped_calls, t == ACR_RUN_STOPPED ? 1 : 0);
            } else {
                if (rc != -EINVAL || m.state != (acr_run_state_t)f)
                    fail_msg("%s -> %s should be refused: rc %d, state %s",
                             acr_run_state_name((acr_run_state_t)f),
                             acr_run_state_name((acr_run_state_t)t), rc,
                             acr_run_state_name(m.state));
                assert_int_equal(stopped_calls, 0);
            }
        }
}

static void test_full_cycle(void **state)
{
    (void)state;
    acr_master_t m;
    memset(&m, 0, sizeof m);
    const acr_run_state_t path[] = {ACR_RUN_SPAWNING, ACR_RUN_RUNNING,  ACR_RUN_SPAWNING,
                                    ACR_RUN_RUNNING,  ACR_RUN_STOPPING, ACR_RUN_STOPPED,
                                    ACR_RUN_SPAWNING, ACR_RUN_STOPPING, ACR_RUN_STOPPED};
    for (size_t i = 0; i < sizeof(path) / sizeof(path[0]); i++) {
        assert_int_equal(acr__run_set_state(&m, path[i]), 0);
        assert_int_equal(m.state, path[i]);
    }
    assert_false(acr_run_transition_legal(ACR_RUN__COUNT, ACR_RUN_READY));
    assert_false(acr_run_transition_legal(ACR_RUN_READY, ACR_RUN__COUNT));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_every_pair),
        cmocka_unit_test(test_full_cycle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
