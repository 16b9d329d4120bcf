/*
 * The decoded-size budget of received frames (proto/msg_scan.c, proto/PROTOCOL.md section 3): a
 * frame whose containers would make msgpack-c allocate more than its type's budget is refused by
 * the pre-scan, before anything is allocated (checked in a child whose address space is too small
 * for the objects), while a big valid stats report is still accepted.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "proto/msg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

#define NODE "node_1"

/* ["<type>", [nil x count], "node_1"] of exactly the size the count needs. */
static uint8_t *nils_frame(const char *type, uint32_t count, size_t *len)
{
    size_t tl = strlen(type);
    size_t n = 1 + 1 + tl + 5 + count + 1 + strlen(NODE);
    uint8_t *p = malloc(n);
    if (!p) return NULL;
    size_t o = 0;
    p[o++] = 0x93;
    p[o++] = (uint8_t)(0xa0 | tl);
    memcpy(p + o, type, tl);
    o += tl;
    p[o++] = 0xdd;
    p[o++] = (uint8_t)(count >> 24);
    p[o++] = (uint8_t)(count >> 16);
    p[o++] = (uint8_t)(count >> 8);
    p[o++] = (uint8_t)count;
    memset(p + o, 0xc0, count);
    o += count;
    p[o++] = (uint8_t)(0xa0 | strlen(NODE));
    memcpy(p + o, NODE, strlen(NODE));
    o += strlen(NODE);
    *len = o;
    return p;
}

static void test_64m_nils_refused_by_the_header(void **state)
{
    (void)state;
    size_t len = 0;
    uint8_t *f = nils_frame("stats", ACR_MSG_MAX_FRAME - 64, &len);
    assert_non_null(f);
    assert_true(len <= ACR_MSG_MAX_FRAME);
    acr_msg_t m;
    char err[256] = "";
    assert_int_equal(acr_msg_decode(f, len, &m, err, sizeof err), -EPROTO);
    if (!strstr(err, "frame would decode to 1536 MiB of objects (limit 256 MiB"))
        fail_msg("reason '%s'", err);
    if (!strstr(err, "refused")) fail_msg("reason '%s'", err);

#ifndef UNDER_ASAN
    /* The same decode in a child that cannot map even 256 MiB more: a refusal there proves that
     * nothing of the 1.5 GiB was allocated first (msgpack-c would fail with NOMEM instead). */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit rl;
        FILE *st = fopen("/proc/self/statm", "r");
        unsigned long pages = 0;
        if (!st || fscanf(st, "%lu", &pages) != 1) _exit(3);
        fclose(st);
        rl.rlim_cur = rl.rlim_max = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (64u << 20);
        if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(4);
        acr_msg_t cm;
        char cerr[256] = "";
        int r = acr_msg_decode(f, len, &cm, cerr, sizeof cerr);
        _exit(r == -EPROTO && strstr(cerr, "would decode to") ? 0 : 5);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
#endif
    free(f);
}

static void test_small_types_have_a_small_budget(void **state)
{
    (void)state;
    /* 1 MiB / 24 bytes = 43690 objects: a heartbeat of 50000 nils (50 KB) is refused, 40000 pass
     * the scan (and then fail as a heartbeat whose data is not a map) */
    size_t len = 0;
    uint8_t *f = nils_frame("heartbeat", 50000, &len);
    assert_non_null(f);
    acr_msg_t m;
    char err[256] = "";
    assert_int_equal(acr_msg_decode(f, len, &m, err, sizeof err), -EPROTO);
    if (!strstr(err, "frame would decode to 2 MiB of objects (limit 1 MiB for this type)"))
        fail_msg("reason '%s'", err);
    free(f);
    f = nils_frame("heartbeat", 40000, &len);
    assert_non_null(f);
    assert_int_equal(acr_msg_decode(f, len, &m, err, sizeof err), -EPROTO);
    if (strstr(err, "would decode")) fail_msg("reason '%s'", err);
    free(f);
    /* a custom message of 50000 nils is a scenario's data: within the large budget */
    f = nils_frame("my_custom", 50000, &len);
    assert_non_null(f);
    assert_int_equal(acr_msg_decode(f, len, &m, err, sizeof err), 0);
    assert_int_equal(m.type, ACR_MSG_CUSTOM);
    acr_msg_free(&m);
    free(f);
}

static void test_budget_sums_every_container(void **state)
{
    (void)state;
    /* ["stats", [[nil x 60000] x 200], "n"]: each inner array is small, together 288 MiB */
    acr_buf_t b = {0};
    static const char head[] = "\x93\xa5stats\xdc\x00\xc8";
    assert_int_equal(acr_buf_append(&b, head, sizeof(head) - 1), 0);
    for (int i = 0; i < 200; i++) {
        assert_int_equal(acr_buf_append(&b, "\xdd\x00\x00\xea\x60", 5), 0);
        for (int k = 0; k < 60000; k++) assert_int_equal(acr_buf_putc(&b, (char)0xc0), 0);
    }
    assert_int_equal(acr_buf_append(&b, "\xa1n", 2), 0);
    acr_msg_t m;
    char err[256] = "";
    assert_int_equal(acr_msg_decode(b.data, b.len, &m, err, sizeof err), -EPROTO);
    if (!strstr(err, "would decode to 257 MiB of objects (limit 256 MiB")) fail_msg("'%s'", err);
    acr_buf_free(&b);
}

static void test_big_valid_report_accepted(void **state)
{
    (void)state;
    /* 10000 entries, each with 200 distinct response times: the most names a worker's table holds
     * (ACR_STATS_MAX_NAMES), with more buckets than a 3 s interval usually has */
    acr_stats_t *s = acr_stats_new(1700000000.0);
    assert_non_null(s);
    char name[32];
    for (unsigned i = 0; i < ACR_STATS_MAX_NAMES; i++) {
        snprintf(name, sizeof name, "/u/%u", i);
        acr_stats_entry_t *e = acr_stats_get(s, "GET", name);
        assert_non_null(e);
        for (unsigned k = 0; k < 200; k++)
            acr_stats_log(s, e, true, 1000 + (uint64_t)k * 5000, 10, NULL, 1700000000.0 + k % 3);
    }
    acr_buf_t b = {0};
    assert_int_equal(acr_msg_encode_stats(&b, s, NULL, 0, 1, 1, false, NODE), 0);
    acr_msg_t m;
    char err[256] = "";
    int r = acr_msg_decode(b.data, b.len, &m, err, sizeof err);
    if (r != 0) fail_msg("a valid report of %zu bytes refused: %s", b.len, err);
    assert_int_equal(acr_stats_count(m.stats), ACR_STATS_MAX_NAMES);
    assert_int_equal(acr_stats_total(m.stats)->num_requests, ACR_STATS_MAX_NAMES * 200);
    acr_msg_free(&m);
    acr_buf_free(&b);
    acr_stats_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_64m_nils_refused_by_the_header),
        cmocka_unit_test(test_small_types_have_a_small_budget),
        cmocka_unit_test(test_budget_sums_every_container),
        cmocka_unit_test(test_big_valid_report_accepted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
