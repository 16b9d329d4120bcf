/*
 * Unit tests for common/util.c (time spans, buffers, clocks, atomic writes, CPU count) and
 * common/log.c (level names, line format, log file).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

static void test_timespan_valid(void **state)
{
    static const struct {
        const char *s;
        double want;
    } cases[] = {
        {"20", 20},       {"0", 0},        {"20s", 20},         {"3m", 180},
        {"2h", 7200},     {"1h20m", 4800}, {"3h30m10s", 12610}, {"1h10s", 3610},
        {"5m30s", 330},   {"0.5s", 0.5},   {"0.5", 0.5},        {"1.5h", 5400},
        {"1h0.5m", 3630}, {".25s", 0.25},  {"007s", 7},         {"1000000h", 3.6e9},
    };
    (void)state;
    for (size_t i = 0; i < ACR_ARRAY_SIZE(cases); i++) {
        double v = -1;
        int rc = acr_parse_timespan(cases[i].s, &v);
        if (rc != 0) fail_msg("'%s': rc %d, expected 0", cases[i].s, rc);
        if (fabs(v - cases[i].want) > 1e-9)
            fail_msg("'%s' = %.17g, expected %.17g", cases[i].s, v, cases[i].want);
    }
}

static void test_timespan_invalid(void **state)
{
    static const char *const bad[] = {
        "",
        "-1",
        "-5s",
        "5x",
        "abc",
        "1h1h",
        "10s5m",
        "5m1h",
        "1.2.3s",
        "h",
        "1 h",
        " 1s",
        "1s ",
        "1hm",
        "s5",
        ".",
        "1e5",
        "inf",
        "nan",
        "1d",
        "1h20",
        "2m30",
        "+5",
        "0x10",
        "99999999999999999999999999999999h",
        "999999999999999h",
    };
    (void)state;
    for (size_t i = 0; i < ACR_ARRAY_SIZE(bad); i++) {
        double v = 12345;
        int rc = acr_parse_timespan(bad[i], &v);
        if (rc != -EINVAL) fail_msg("'%s': rc %d (value %g), expected -EINVAL", bad[i], rc, v);
        assert_true(v == 12345); /* untouched on error */
    }
    assert_int_equal(acr_parse_timespan(NULL, &(double){0}), -EINVAL);
}

static void test_buf(void **state)
{
    acr_buf_t b = {0};
    (void)state;

    assert_int_equal(acr_buf_append(&b, "abc", 3), 0);
    assert_int_equal(b.len, 3);
    assert_string_equal(b.data, "abc"); /* stays NUL-terminated */
    assert_int_equal(acr_buf_putc(&b, '-'), 0);
    assert_int_equal(acr_buf_appendf(&b, "%d/%s", 42, "x"), 0);
    assert_int_equal(b.len, 8);
    assert_memory_equal(b.data, "abc-42/x", 8);
    assert_string_equal(b.data, "abc-42/x");

    /* growth across many appends, and a formatted append larger than the capacity */
    for (int i = 0; i < 10000; i++) assert_int_equal(acr_buf_appendf(&b, "%04d", i % 10000), 0);
    assert_int_equal(b.len, 8 + 40000);
    assert_memory_equal(b.data + 8 + 4 * 9999, "9999", 4);
    assert_true(b.cap > b.len);

    acr_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_non_null(b.data);
    assert_string_equal(b.data, "");
    char big[5000];
    memset(big, 'y', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(acr_buf_appendf(&b, "<%s>", big), 0);
    assert_int_equal(b.len, 5001);
    assert_int_equal(b.data[0], '<');
    assert_int_equal(b.data[5000], '>');
    assert_int_equal(b.data[5001], '\0');

    assert_int_equal(acr_buf_reserve(&b, SIZE_MAX), -ENOMEM);
    assert_int_equal(acr_buf_append(&b, "", 0), 0);
    assert_int_equal(b.len, 5001);
    acr_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);

    /* appendf into a fresh buffer */
    assert_int_equal(acr_buf_appendf(&b, "n=%zu", (size_t)7), 0);
    assert_string_equal(b.data, "n=7");
    acr_buf_free(&b);
}

static uint64_t mono_us_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Each clock lies between CLOCK_* reads taken just before and after it (units and clock checked
 * exactly, however loaded the machine), and the monotonic one advances across a sleep. */
static void test_clocks(void **state)
{
    (void)state;
    struct timespec r0, r1;
    clock_gettime(CLOCK_REALTIME, &r0);
    double w = acr_now();
    clock_gettime(CLOCK_REALTIME, &r1);
    assert_true(w > 1.6e9); /* after 2020 */
    if (w < (double)r0.tv_sec + (double)(r0.tv_nsec / 1000) / 1e6 - 1e-6 ||
        w > (double)r1.tv_sec + (double)r1.tv_nsec / 1e9 + 1e-6)
        fail_msg("acr_now() %.6f outside [%lld.%09ld, %lld.%09ld]", w, (long long)r0.tv_sec,
                 r0.tv_nsec, (long long)r1.tv_sec, r1.tv_nsec);

    uint64_t m0 = mono_us_now(), u1 = acr_mono_us(), m1 = mono_us_now();
    if (u1 < m0 || u1 > m1)
        fail_msg("acr_mono_us() %llu outside [%llu, %llu]", (unsigned long long)u1,
                 (unsigned long long)m0, (unsigned long long)m1);
    m0 = mono_us_now();
    double s1 = acr_mono_s();
    m1 = mono_us_now();
    if (s1 < (double)m0 / 1e6 - 1e-6 || s1 > (double)(m1 + 1) / 1e6)
        fail_msg("acr_mono_s() %.6f outside [%llu, %llu] us", s1, (unsigned long long)m0,
                 (unsigned long long)m1);

    usleep(20000);
    uint64_t u2 = acr_mono_us();
    if (u2 - u1 < 19990)
        fail_msg("monotonic us advanced by %llu over a 20 ms sleep", (unsigned long long)(u2 - u1));
    assert_true(acr_mono_s() - s1 >= 0.0199);
}

static void test_write_file_atomic(void **state)
{
    char dir[] = "/tmp/acrida-test-util-XXXXXX", path[256], buf[64], cmd[300];
    FILE *f;
    size_t n;
    struct stat st;
    (void)state;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/port", dir);
    assert_int_equal(acr_write_file_atomic(path, "port=1\n", 7), 0);
    assert_int_equal(acr_write_file_atomic(path, "port=12345\n", 11), 0);
    f = fopen(path, "r");
    assert_non_null(f);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    assert_string_equal(buf, "port=12345\n");
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 11);

    snprintf(path, sizeof(path), "%s/no/such/dir/file", dir);
    assert_int_equal(acr_write_file_atomic(path, "x", 1), -ENOENT);

    snprintf(cmd, sizeof(cmd), "ls -A '%s' | wc -l | grep -qx 1 && rm -rf '%s'", dir, dir);
    assert_int_equal(system(cmd), 0); /* no temp files left behind */
}

static void test_misc(void **state)
{
    char *s;
    (void)state;
    assert_null(acr_strdup(NULL));
    s = acr_strdup("hi");
    assert_string_equal(s, "hi");
    free(s);
    assert_true(acr_cpu_count() >= 1);
    assert_true(acr_cpu_count() <= 4096);
}

static void test_log(void **state)
{
    char path[] = "/tmp/acrida-test-log-XXXXXX", line[512];
    acr_log_level_t l = ACR_LOG_ERROR;
    FILE *f;
    int fd;
    (void)state;

    assert_int_equal(acr_log_parse_level("debug", &l), 0);
    assert_int_equal(l, ACR_LOG_DEBUG);
    assert_int_equal(acr_log_parse_level("INFO", &l), 0);
    assert_int_equal(l, ACR_LOG_INFO);
    assert_int_equal(acr_log_parse_level("Warn", &l), 0);
    assert_int_equal(l, ACR_LOG_WARNING);
    assert_int_equal(acr_log_parse_level("WARNING", &l), 0);
    assert_int_equal(l, ACR_LOG_WARNING);
    assert_int_equal(acr_log_parse_level("critical", &l), 0);
    assert_int_equal(l, ACR_LOG_ERROR);
    assert_int_equal(acr_log_parse_level("verbose", &l), -EINVAL);
    assert_int_equal(acr_log_parse_level(NULL, &l), -EINVAL);

    fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(acr_log_setup(ACR_LOG_WARNING, "worker[1]", path), 0);
    assert_false(acr_log_enabled(ACR_LOG_INFO));
    assert_true(acr_log_enabled(ACR_LOG_ERROR));
    ACR_INFO("hidden %d", 1);
    ACR_WARN("shown %d", 2);
    acr_log_close();
    f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(line, sizeof(line), f));
    assert_null(fgets(line + 256, 256, f)); /* exactly one line */
    fclose(f);
    unlink(path);
    /* "YYYY-mm-ddTHH:MM:SS.mmmZ LEVEL component: message" */
    assert_int_equal(strlen(line), strlen("2024-01-02T03:04:05.678Z WARNING worker[1]: shown 2\n"));
    assert_true(line[4] == '-' && line[10] == 'T' && line[19] == '.' && line[23] == 'Z');
    assert_string_equal(line + 24, " WARNING worker[1]: shown 2\n");
    assert_int_equal(acr_log_setup(ACR_LOG_INFO, "x", "/nonexistent/dir/log"), -ENOENT);
    assert_int_equal(acr_log_setup(ACR_LOG_INFO, "test", NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timespan_valid),
        cmocka_unit_test(test_timespan_invalid),
        cmocka_unit_test(test_buf),
        cmocka_unit_test(test_clocks),
        cmocka_unit_test(test_write_file_atomic),
        cmocka_unit_test(test_misc),
        cmocka_unit_test(test_log),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
