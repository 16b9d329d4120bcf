/*
 * Unit tests of common/csv.c: the header and records, RFC 4180 quoting (commas, doubled quotes,
 * line breaks inside quotes), CRLF and LF, a BOM, empty lines, the last line without a line end,
 * and every refusal with its line number (field count, quotes, bare CR, NUL, header problems,
 * limits, a missing file).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/csv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static acr_csv_t parse_ok(const char *src)
{
    acr_csv_t t;
    char err[256];
    int rc = acr_csv_parse(src, strlen(src), "t.csv", &t, err, sizeof err);
    if (rc != 0) fail_msg("parse failed: %s", err);
    return t;
}

static void expect_err(const char *src, size_t len, int want_rc, const char *want)
{
    acr_csv_t t;
    char err[256];
    int rc = acr_csv_parse(src, len, "t.csv", &t, err, sizeof err);
    assert_int_equal(rc, want_rc);
    if (strcmp(err, want) != 0) fail_msg("error '%s', expected '%s'", err, want);
    assert_null(t.cols);
}

static void test_basic(void **state)
{
    (void)state;
    acr_csv_t t = parse_ok("user,password\nalice,a1\nbob,b2\n");
    assert_int_equal(t.ncols, 2);
    assert_int_equal(t.nrows, 2);
    assert_string_equal(t.cols[0], "user");
    assert_string_equal(t.cols[1], "password");
    assert_string_equal(t.cells[0], "alice");
    assert_string_equal(t.cells[3], "b2");
    acr_csv_free(&t);
    assert_null(t.cols);
}

static void test_quoting(void **state)
{
    (void)state;
    acr_csv_t t = parse_ok("a,b,c\r\n\"x,y\",\"say \"\"hi\"\"\",\"two\r\nlines\"\r\n\"\",,\"\"");
    assert_int_equal(t.nrows, 2);
    assert_string_equal(t.cells[0], "x,y");
    assert_string_equal(t.cells[1], "say \"hi\"");
    assert_string_equal(t.cells[2], "two\r\nlines");
    assert_string_equal(t.cells[3], "");
    assert_string_equal(t.cells[4], "");
    assert_string_equal(t.cells[5], "");
    acr_csv_free(&t);
}

static void test_bom_empty_lines_no_final_eol(void **state)
{
    (void)state;
    acr_csv_t t = parse_ok("\xEF\xBB\xBFurl\n\n/a\r\n\r\n/b");
    assert_int_equal(t.ncols, 1);
    assert_int_equal(t.nrows, 2);
    assert_string_equal(t.cols[0], "url");
    assert_string_equal(t.cells[0], "/a");
    assert_string_equal(t.cells[1], "/b");
    acr_csv_free(&t);
    t = parse_ok("only,header\n");
    assert_int_equal(t.nrows, 0);
    acr_csv_free(&t);
    t = parse_ok("a,b\n1,\n"); /* an empty last field */
    assert_string_equal(t.cells[1], "");
    acr_csv_free(&t);
}

static void test_errors(void **state)
{
    (void)state;
    const char *s;
    s = "a,b,c\n1,2,3\n4,5\n";
    expect_err(s, strlen(s), -EINVAL, "t.csv:3: record has 2 fields, the header has 3");
    s = "a,b\n1,2,3\n";
    expect_err(s, strlen(s), -EINVAL, "t.csv:2: record has more fields than the header's 2");
    s = "a\nx\"y\n";
    expect_err(s, strlen(s), -EINVAL,
               "t.csv:2: quote inside an unquoted field (quote the whole field and double the "
               "quote)");
    s = "a,b\n\"x\"y,1\n";
    expect_err(s, strlen(s), -EINVAL, "t.csv:2: text after the closing quote of a field");
    s = "a,b\n1,2\n\"open,\n\n";
    expect_err(s, strlen(s), -EINVAL,
               "t.csv:3: quoted field not closed before the end of the file");
    s = "a,b\n1,2\r3,4\n";
    expect_err(s, strlen(s), -EINVAL, "t.csv:2: carriage return not followed by a line feed");
    expect_err("a\nx\0y\n", 6, -EINVAL, "t.csv:2: NUL byte in the data");
    expect_err("", 0, -EINVAL, "t.csv:1: no header row (the file is empty)");
    s = "\n\n";
    expect_err(s, strlen(s), -EINVAL, "t.csv:3: no header row (the file is empty)");
    s = "a,,c\n";
    expect_err(s, strlen(s), -EINVAL, "t.csv:1: column 2 of the header has no name");
    s = "id,name,id\n";
    expect_err(s, strlen(s), -EINVAL, "t.csv:1: column name 'id' appears twice");
}

static void test_limits(void **state)
{
    (void)state;
    char err[256];
    acr_csv_t t;
    /* a field one byte over the limit */
    size_t n = ACR_CSV_MAX_FIELD + 1;
    char *big = malloc(n + 4);
    assert_non_null(big);
    memcpy(big, "a\n", 2);
    memset(big + 2, 'x', n);
    assert_int_equal(acr_csv_parse(big, n + 2, "t.csv", &t, err, sizeof err), -EFBIG);
    assert_string_equal(err, "t.csv:2: field longer than 1048576 bytes");
    free(big);
    /* too many columns */
    size_t cols = ACR_CSV_MAX_COLS + 1;
    char *hdr = malloc(cols * 8);
    assert_non_null(hdr);
    size_t off = 0;
    for (size_t i = 0; i < cols; i++) off += (size_t)sprintf(hdr + off, "%sc%zu", i ? "," : "", i);
    assert_int_equal(acr_csv_parse(hdr, off, "t.csv", &t, err, sizeof err), -EFBIG);
    assert_string_equal(err, "t.csv:1: more than 1024 columns");
    free(hdr);
    /* the whole input */
    assert_int_equal(
        acr_csv_parse("a", (size_t)ACR_CSV_MAX_BYTES + 1, "t.csv", &t, err, sizeof err), -EFBIG);
}

static void test_file(void **state)
{
    (void)state;
    char path[] = "/tmp/test_csv_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *src = "k,v\n1,one\n";
    assert_int_equal(write(fd, src, strlen(src)), (ssize_t)strlen(src));
    close(fd);
    acr_csv_t t;
    char err[256];
    assert_int_equal(acr_csv_read_file(path, &t, err, sizeof err), 0);
    assert_int_equal(t.nrows, 1);
    assert_string_equal(t.cells[1], "one");
    acr_csv_free(&t);
    unlink(path);
    assert_int_equal(acr_csv_read_file(path, &t, err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, "cannot open: No such file or directory"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_quoting),
        cmocka_unit_test(test_bom_empty_lines_no_final_eol),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
