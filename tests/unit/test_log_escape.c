/*
 * Unit tests for the escaping of text from outside in common/log.c: acr_log_escape() and its
 * wrappers on every class of byte (printable ASCII, backslash, C0 controls, DEL, valid UTF-8, C1
 * controls, separators and bidi controls, each kind of invalid UTF-8), cutting, and the logger's
 * own pass over a formatted line (one record = one line starting with a timestamp).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

static void expect(const char *in, size_t len, const char *want)
{
    char out[512];
    acr_log_escape(out, sizeof out, in, len);
    if (strcmp(out, want) != 0) fail_msg("escaped '%s', expected '%s'", out, want);
}

#define EXPECT(lit, want) expect(lit, sizeof(lit) - 1, want)

static void test_printable_ascii_kept(void **state)
{
    (void)state;
    EXPECT("GET /api/items?id=1&x=%20", "GET /api/items?id=1&x=%20");
    EXPECT(" ~!\"#$%&'()*+,-./09:;<=>?@AZ[]^_`az{|}", " ~!\"#$%&'()*+,-./09:;<=>?@AZ[]^_`az{|}");
    EXPECT("", "");
    EXPECT("a\\b", "a\\\\b"); /* a backslash is doubled: "\n" in a name is not a newline */
    EXPECT("\\n", "\\\\n");
}

static void test_c0_and_del(void **state)
{
    (void)state;
    EXPECT("a\nb", "a\\nb");
    EXPECT("a\rb", "a\\rb");
    EXPECT("a\tb", "a\\tb");
    EXPECT("\x1b[31mred", "\\x1b[31mred");
    EXPECT("\x1b]0;title\x07", "\\x1b]0;title\\x07");
    EXPECT("\x7f", "\\x7f");
    EXPECT("\x08\x0b\x0c\x1f", "\\x08\\x0b\\x0c\\x1f");
    expect("a\0b", 3, "a\\x00b"); /* a NUL inside a counted string */
    /* every C0 control and DEL: escaped, nothing below 0x20 or 0x7f left */
    for (int c = 0; c < 0x80; c++) {
        char in[1] = {(char)c}, out[16];
        acr_log_escape(out, sizeof out, in, 1);
        for (const char *p = out; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f) fail_msg("byte 0x%02x kept raw", c);
        if (c < 0x20 || c == 0x7f) assert_int_equal(out[0], '\\');
    }
}

static void test_utf8_kept(void **state)
{
    (void)state;
    EXPECT("/caf\xc3\xa9", "/caf\xc3\xa9");                                 /* U+00E9 */
    EXPECT("\xe2\x82\xac", "\xe2\x82\xac");                                 /* U+20AC euro */
    EXPECT("\xf0\x9f\x90\x9c ant", "\xf0\x9f\x90\x9c ant");                 /* U+1F41C */
    EXPECT("\xef\xbf\xbd\xf4\x8f\xbf\xbf", "\xef\xbf\xbd\xf4\x8f\xbf\xbf"); /* U+FFFD, U+10FFFF */
    EXPECT("\xc2\xa0", "\xc2\xa0"); /* U+00A0, first after C1 */
}

static void test_c1_separators_bidi(void **state)
{
    (void)state;
    EXPECT("\xc2\x80", "\\u0080");
    EXPECT("\xc2\x9b"
           "31m",
           "\\u009b31m"); /* CSI */
    EXPECT("\xc2\x9f", "\\u009f");
    EXPECT("a\xe2\x80\xa8"
           "b\xe2\x80\xa9",
           "a\\u2028b\\u2029");
    EXPECT("\xe2\x80\xae"
           "txt",
           "\\u202etxt"); /* right-to-left override */
    EXPECT("\xe2\x80\xaa\xe2\x81\xa6\xe2\x81\xa9", "\\u202a\\u2066\\u2069");
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    EXPECT("\x9b"
           "31m",
           "\\x9b31m");                        /* a raw 8-bit CSI: a stray continuation byte */
    EXPECT("\x80\xbf", "\\x80\\xbf");          /* continuation bytes alone */
    EXPECT("\xc0\x80", "\\xc0\\x80");          /* overlong NUL */
    EXPECT("\xc1\xbf", "\\xc1\\xbf");          /* overlong */
    EXPECT("\xe0\x80\xaf", "\\xe0\\x80\\xaf"); /* overlong '/' */
    EXPECT("\xed\xa0\x80", "\\xed\\xa0\\x80"); /* surrogate U+D800 */
    EXPECT("\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80"); /* beyond U+10FFFF */
    EXPECT("\xf5\xff\xfe", "\\xf5\\xff\\xfe");
    EXPECT("ab\xc3", "ab\\xc3"); /* cut short at the end */
    EXPECT("\xe2\x82"
           "x",
           "\\xe2\\x82x");                   /* cut short before ASCII */
    EXPECT("\xc3\xc3\xa9", "\\xc3\xc3\xa9"); /* resynchronises on the next lead */
    EXPECT("\xf0\x9f\x90"
           "\n",
           "\\xf0\\x9f\\x90\\n");
}

static void test_cut_between_escapes(void **state)
{
    char out[16];
    (void)state;
    /* fits exactly: 15 bytes and the NUL */
    assert_string_equal(acr_log_escape_str(out, sizeof out, "0123456789abcde"), "0123456789abcde");
    assert_string_equal(acr_log_escape_str(out, sizeof out, "0123456789abcdef"), "0123456789ab...");
    /* an escape is never split: "\x1b" (4 bytes) does not fit after 9 characters and "..." */
    assert_string_equal(acr_log_escape_str(out, sizeof out, "012345678\x1bxyzw"), "012345678...");
    /* a UTF-8 sequence is never split either */
    assert_string_equal(acr_log_escape_str(out, sizeof out, "0123456789a\xe2\x82\xac--"),
                        "0123456789a...");
    /* the rest fits without "...": kept whole */
    assert_string_equal(acr_log_escape_str(out, sizeof out, "0123456789\\\\"),
                        "0123456789\\\\\\\\");
    /* tiny buffers */
    assert_string_equal(acr_log_escape_str(out, 4, "abcdef"), "...");
    assert_string_equal(acr_log_escape_str(out, 3, "abcdef"), "..");
    assert_string_equal(acr_log_escape_str(out, 1, "abcdef"), "");
    assert_string_equal(acr_log_escape_str(out, 4, "abc"), "abc");
    assert_string_equal(acr_log_escape(out, 0, "abc", 3), "");
    assert_string_equal(acr_log_escape_str(out, sizeof out, NULL), "(null)");
}

static void test_macros(void **state)
{
    char big[600];
    (void)state;
    assert_string_equal(ACR_ESC("node\n1"), "node\\n1");
    assert_string_equal(ACR_ESCN("abc\x1b", 4), "abc\\x1b");
    memset(big, '\n', sizeof big - 1);
    big[sizeof big - 1] = 0;
    const char *s = ACR_ESC(big);
    assert_int_equal(strlen(s), ACR_ESC_MAX - 1); /* 126 "\n" and "..." */
    assert_string_equal(s + strlen(s) - 3, "...");
    s = ACR_ESC_LONG(big);
    assert_int_equal(strlen(s), 2 * (sizeof big - 1)); /* 1,198 bytes: all of it */
    /* two copies in one call are distinct */
    char line[64];
    snprintf(line, sizeof line, "%s|%s", ACR_ESC("a\rb"), ACR_ESC("\x1b"));
    assert_string_equal(line, "a\\rb|\\x1b");
}

static void test_escape_file(void **state)
{
    char buf[256] = {0};
    (void)state;
    FILE *f = fmemopen(buf, sizeof buf - 1, "w");
    assert_non_null(f);
    size_t n = acr_log_escape_file(f, "GET /\x1b[2J\r\n\xc2\x9b\\");
    n += acr_log_escape_file(f, NULL);
    fclose(f);
    assert_string_equal(buf, "GET /\\x1b[2J\\r\\n\\u009b\\\\(null)");
    assert_int_equal(n, strlen(buf));
}

/* The logger's own pass: a raw control byte that reaches acr_log() is escaped there; text
 * escaped at the call site is not escaped twice; every record is one line with a timestamp. */
static void test_logger_one_line_per_record(void **state)
{
    char path[] = "/tmp/acrida-test-logesc-XXXXXX", line[4200];
    int fd = mkstemp(path);
    (void)state;
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(acr_log_setup(ACR_LOG_INFO, "master", path), 0);
    ACR_WARN("Unknown message type received from worker %s: %s", "w\n2024-01-01T00:00:00.000Z INFO",
             "\x1b]0;owned\x07\r");
    ACR_WARN("escaped at the call site: %s", ACR_ESC("a\\b\nc"));
    ACR_ERROR("traceback follows:\n%s\n", "line 1\nline 2\xc2\x9b");
    char huge[5000];
    memset(huge, '\x1b', sizeof huge - 1);
    huge[sizeof huge - 1] = 0;
    ACR_ERROR("%s", huge);
    ACR_DEBUG("not logged: %s", "x"); /* below the level */
    acr_log_setup(ACR_LOG_INFO, "test", NULL);

    FILE *f = fopen(path, "r");
    assert_non_null(f);
    const char *want[] = {
        "WARNING master: Unknown message type received from worker w\\n2024-01-01T00:00:00.000Z "
        "INFO: \\x1b]0;owned\\x07\\r\n",
        "WARNING master: escaped at the call site: a\\\\b\\nc\n",
        "ERROR master: traceback follows:\\nline 1\\nline 2\\u009b\n",
    };
    size_t k = 0;
    while (fgets(line, sizeof line, f)) {
        size_t len = strlen(line);
        assert_true(len > 24 && line[len - 1] == '\n');
        /* "YYYY-mm-ddTHH:MM:SS.mmmZ " */
        assert_true(isdigit((unsigned char)line[0]) && line[4] == '-' && line[10] == 'T' &&
                    line[19] == '.' && line[23] == 'Z' && line[24] == ' ');
        for (size_t i = 0; i + 1 < len; i++)
            if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
                fail_msg("record %zu has a raw control byte 0x%02x", k, (unsigned char)line[i]);
        if (k < 3) {
            assert_string_equal(line + 25, want[k]);
        } else {
            assert_true(len <= 4096);
            assert_string_equal(line + len - 4, "...\n");
            assert_non_null(strstr(line, "ERROR master: \\x1b\\x1b"));
        }
        k++;
    }
    fclose(f);
    unlink(path);
    assert_int_equal(k, 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_printable_ascii_kept),
        cmocka_unit_test(test_c0_and_del),
        cmocka_unit_test(test_utf8_kept),
        cmocka_unit_test(test_c1_separators_bidi),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_cut_between_escapes),
        cmocka_unit_test(test_macros),
        cmocka_unit_test(test_escape_file),
        cmocka_unit_test(test_logger_one_line_per_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
