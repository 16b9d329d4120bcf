/*
 * Unit tests of common/bundle.c and the bundle messages of proto/msg_bundle.c: the canonical blob
 * (order-independent hash), path checks ("..", absolute, NUL, control characters), decoding of
 * hostile blobs (wrong hash, truncated, unsorted, trailing bytes), reassembly (out of order, a
 * part of another bundle, bytes beyond the announced size, an oversize total), extraction into a
 * private directory and its removal, the require scan, symlinks escaping the directory, and the
 * messages' round trips and refusals.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/bundle.h"
#include "proto/msg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* A temporary directory with files, removed by the test. */
static char *make_tree(void)
{
    char tmpl[] = "/tmp/acrida-ut-XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    char *dir = strdup(d);
    char p[512];
    snprintf(p, sizeof p, "%s/lib", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    static const struct {
        const char *name, *text;
    } files[] = {
        {"main.lua", "local h = require \"helper\"\nlocal u = require('lib.util')\n"
                     "-- require [[gone]]\nlocal x = myrequire 'no'\n"},
        {"helper.lua", "return { require = 1 }\n"},
        {"lib/util.lua", "return require(\"lib.deep\")\n"},
        {"lib/deep.lua", "return 1\n"},
        {"data.csv", "a,b\n1,2\n"},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i].name);
        FILE *f = fopen(p, "w");
        assert_non_null(f);
        fputs(files[i].text, f);
        fclose(f);
    }
    return dir;
}

static void test_paths(void **state)
{
    (void)state;
    char err[256];
    assert_true(acr_bundle_path_ok("a.lua", 5, err, sizeof err));
    assert_true(acr_bundle_path_ok("lib/x.y/z.csv", 13, err, sizeof err));
    assert_false(acr_bundle_path_ok("../etc/passwd", 13, err, sizeof err));
    assert_non_null(strstr(err, "outside the scenario's directory"));
    assert_false(acr_bundle_path_ok("a/../../b", 9, err, sizeof err));
    assert_false(acr_bundle_path_ok("/etc/passwd", 11, err, sizeof err));
    assert_non_null(strstr(err, "absolute"));
    assert_false(acr_bundle_path_ok("a\0b", 3, err, sizeof err));
    assert_non_null(strstr(err, "NUL"));
    assert_false(acr_bundle_path_ok("a\nb", 3, err, sizeof err));
    assert_false(acr_bundle_path_ok("a\\b", 3, err, sizeof err));
    assert_false(acr_bundle_path_ok("a//b", 4, err, sizeof err));
    assert_false(acr_bundle_path_ok("./a", 3, err, sizeof err));
    assert_false(acr_bundle_path_ok("a/", 2, err, sizeof err));
    assert_false(acr_bundle_path_ok("", 0, err, sizeof err));
}

/* The same files added in another order give the same blob and hash. */
static void test_canonical(void **state)
{
    (void)state;
    char *dir = make_tree(), err[256];
    acr_bundle_t a = {0}, b = {0};
    const char *order1[] = {"main.lua", "helper.lua", "data.csv"};
    const char *order2[] = {"data.csv", "main.lua", "helper.lua", "main.lua"};
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(acr_bundle_add_file(&a, dir, order1[i], 1 << 20, err, sizeof err), 0);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(acr_bundle_add_file(&b, dir, order2[i], 1 << 20, err, sizeof err), 0);
    assert_int_equal(b.nfiles, 3);
    assert_int_equal(acr_bundle_finish(&a, err, sizeof err), 0);
    assert_int_equal(acr_bundle_finish(&b, err, sizeof err), 0);
    assert_string_equal(a.sha256, b.sha256);
    assert_int_equal(a.blob_len, b.blob_len);
    assert_memory_equal(a.blob, b.blob, a.blob_len);
    assert_string_equal(a.files[0].path, "data.csv");

    acr_bundle_t d;
    assert_int_equal(acr_bundle_decode(a.blob, a.blob_len, a.sha256, &d, err, sizeof err), 0);
    assert_int_equal(d.nfiles, 3);
    assert_string_equal(acr_bundle_get(&d, "helper.lua")->data, "return { require = 1 }\n");
    acr_bundle_free(&d);

    /* a changed content changes the hash */
    a.files[0].data[0] = 'X';
    assert_int_equal(acr_bundle_finish(&a, err, sizeof err), 0);
    assert_string_not_equal(a.sha256, b.sha256);

    /* size limit and refusals while adding */
    acr_bundle_t c = {0};
    assert_int_equal(acr_bundle_add_file(&c, dir, "main.lua", 10, err, sizeof err), -EFBIG);
    assert_non_null(strstr(err, "main.lua"));
    assert_int_equal(acr_bundle_add_file(&c, dir, "../x", 1 << 20, err, sizeof err), -EINVAL);
    assert_int_equal(acr_bundle_add_file(&c, dir, "nope.csv", 1 << 20, err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, "nope.csv"));
    assert_int_equal(acr_bundle_add_file(&c, dir, "lib", 1 << 20, err, sizeof err), -EINVAL);
    char link[512];
    snprintf(link, sizeof link, "%s/escape.txt", dir);
    assert_int_equal(symlink("/etc/hostname", link), 0);
    assert_int_equal(acr_bundle_add_file(&c, dir, "escape.txt", 1 << 20, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "outside"));
    assert_int_equal(acr_bundle_add_dir(&c, dir, 1 << 20, err, sizeof err), -EINVAL);
    unlink(link);
    acr_bundle_free(&c);
    assert_int_equal(acr_bundle_add_dir(&c, dir, 1 << 20, err, sizeof err), 0);
    assert_int_equal(c.nfiles, 5);
    assert_true(acr_bundle_has(&c, "lib/deep.lua"));

    const acr_bundle_file_t *big[2];
    assert_int_equal(acr_bundle_largest(&c, big, 2), 2);
    assert_string_equal(big[0]->path, "main.lua");
    assert_true(big[0]->len >= big[1]->len);

    acr_bundle_free(&a);
    acr_bundle_free(&b);
    acr_bundle_free(&c);
    assert_int_equal(acr_bundle_remove_dir(dir), 0);
    free(dir);
}

/* Builds a blob by hand: @n files of (path, content). */
static void put_be(char **p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++) *(*p)++ = (char)(v >> (8 * (bytes - 1 - i)));
}

static size_t hand_blob(char *out, const char *const *paths, size_t n)
{
    char *p = out;
    memcpy(p, "acrida-bundle-1\n", 16);
    p += 16;
    put_be(&p, n, 4);
    for (size_t i = 0; i < n; i++) {
        size_t pl = strlen(paths[i]);
        put_be(&p, pl, 4);
        memcpy(p, paths[i], pl);
        p += pl;
        put_be(&p, 2, 8);
        memcpy(p, "hi", 2);
        p += 2;
    }
    return (size_t)(p - out);
}

static void expect_decode_err(const char *blob, size_t len, const char *want)
{
    char sha[65], err[256];
    acr_bundle_t d;
    acr_bundle_sha256_hex(blob, len, sha);
    assert_int_equal(acr_bundle_decode(blob, len, sha, &d, err, sizeof err), -EINVAL);
    if (!strstr(err, want)) fail_msg("error '%s', expected '%s'", err, want);
    assert_int_equal(d.nfiles, 0);
}

static void test_decode_hostile(void **state)
{
    (void)state;
    char blob[512], sha[65], err[256];
    acr_bundle_t d;
    const char *ok[] = {"a.lua", "b/c.csv"};
    size_t n = hand_blob(blob, ok, 2);
    acr_bundle_sha256_hex(blob, n, sha);
    assert_int_equal(acr_bundle_decode(blob, n, sha, &d, err, sizeof err), 0);
    acr_bundle_free(&d);
    /* the wrong hash: nothing is decoded */
    char wrong[65];
    memcpy(wrong, sha, sizeof wrong);
    wrong[0] = wrong[0] == '0' ? '1' : '0';
    assert_int_equal(acr_bundle_decode(blob, n, wrong, &d, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "sha256"));
    assert_int_equal(acr_bundle_decode(blob, n, "xyz", &d, err, sizeof err), -EINVAL);

    const char *dotdot[] = {"../x"};
    expect_decode_err(blob, hand_blob(blob, dotdot, 1), "outside");
    const char *abs[] = {"/etc/passwd"};
    expect_decode_err(blob, hand_blob(blob, abs, 1), "absolute");
    const char *nul[] = {"a\001b"};
    size_t k = hand_blob(blob, nul, 1);
    blob[16 + 4 + 4 + 1] = '\0'; /* a NUL inside the name */
    expect_decode_err(blob, k, "NUL");
    const char *unsorted[] = {"b", "a"};
    expect_decode_err(blob, hand_blob(blob, unsorted, 2), "sorted");
    const char *dup[] = {"a", "a"};
    expect_decode_err(blob, hand_blob(blob, dup, 2), "sorted");
    n = hand_blob(blob, ok, 2);
    expect_decode_err(blob, n - 1, "past the end");
    blob[n] = 'x';
    expect_decode_err(blob, n + 1, "trailing");
    expect_decode_err("nope", 4, "header");
    /* a count larger than the blob could hold */
    n = hand_blob(blob, ok, 2);
    blob[16] = 0x7f;
    expect_decode_err(blob, n, "claims");
}

static void test_rx(void **state)
{
    (void)state;
    acr_bundle_rx_t rx = {0};
    char err[256], sha[65];
    size_t total = ACR_BUNDLE_PART_SIZE + 10;
    char *blob = calloc(1, total);
    assert_non_null(blob);
    blob[total - 1] = 'z';
    acr_bundle_sha256_hex(blob, total, sha);

    /* announced sizes that do not agree, or beyond the limit */
    assert_int_equal(acr_bundle_rx_begin(&rx, sha, total, 1, err, sizeof err), -EINVAL);
    assert_int_equal(acr_bundle_rx_begin(&rx, sha, ACR_BUNDLE_SIZE_MAX + 1, 512, err, sizeof err),
                     -EFBIG);
    assert_int_equal(acr_bundle_rx_begin(&rx, "nothex", total, 2, err, sizeof err), -EINVAL);

    /* in order: complete */
    assert_int_equal(acr_bundle_rx_begin(&rx, sha, total, 2, err, sizeof err), 0);
    assert_int_equal(acr_bundle_rx_part(&rx, sha, 0, blob, ACR_BUNDLE_PART_SIZE, err, sizeof err),
                     0);
    assert_true(acr_bundle_rx_active(&rx));
    assert_int_equal(
        acr_bundle_rx_part(&rx, sha, 1, blob + ACR_BUNDLE_PART_SIZE, 10, err, sizeof err), 1);
    assert_memory_equal(rx.buf, blob, total);
    assert_false(acr_bundle_rx_active(&rx));

    /* out of order */
    assert_int_equal(acr_bundle_rx_begin(&rx, sha, total, 2, err, sizeof err), 0);
    assert_int_equal(
        acr_bundle_rx_part(&rx, sha, 1, blob + ACR_BUNDLE_PART_SIZE, 10, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "out of order"));
    assert_false(acr_bundle_rx_active(&rx)); /* dropped */

    /* a part of another bundle */
    char other[65];
    memcpy(other, sha, sizeof other);
    other[5] = other[5] == 'a' ? 'b' : 'a';
    assert_int_equal(acr_bundle_rx_begin(&rx, sha, total, 2, err, sizeof err), 0);
    assert_int_equal(acr_bundle_rx_part(&rx, other, 0, blob, ACR_BUNDLE_PART_SIZE, err, sizeof err),
                     -EINVAL);

    /* more bytes than announced, a short middle part */
    assert_int_equal(acr_bundle_rx_begin(&rx, sha, total, 2, err, sizeof err), 0);
    assert_int_equal(acr_bundle_rx_part(&rx, sha, 0, blob, ACR_BUNDLE_PART_SIZE, err, sizeof err),
                     0);
    assert_int_equal(
        acr_bundle_rx_part(&rx, sha, 1, blob + ACR_BUNDLE_PART_SIZE, 11, err, sizeof err), -EINVAL);
    assert_int_equal(acr_bundle_rx_begin(&rx, sha, total, 2, err, sizeof err), 0);
    assert_int_equal(acr_bundle_rx_part(&rx, sha, 0, blob, 100, err, sizeof err), -EINVAL);

    /* a part nobody announced */
    assert_int_equal(acr_bundle_rx_part(&rx, sha, 0, blob, 10, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "not announced"));

    /* the complete blob with a flipped byte fails the decoder's hash check */
    assert_int_equal(acr_bundle_rx_begin(&rx, sha, total, 2, err, sizeof err), 0);
    blob[3] = 1;
    acr_bundle_rx_part(&rx, sha, 0, blob, ACR_BUNDLE_PART_SIZE, err, sizeof err);
    assert_int_equal(
        acr_bundle_rx_part(&rx, sha, 1, blob + ACR_BUNDLE_PART_SIZE, 10, err, sizeof err), 1);
    acr_bundle_t d;
    assert_int_equal(acr_bundle_decode(rx.buf, rx.total, rx.sha256, &d, err, sizeof err), -EINVAL);
    acr_bundle_rx_reset(&rx);
    free(blob);
}

static void test_extract(void **state)
{
    (void)state;
    char *dir = make_tree(), err[256], *out = NULL;
    acr_bundle_t b = {0};
    assert_int_equal(acr_bundle_add_dir(&b, dir, 1 << 20, err, sizeof err), 0);
    assert_int_equal(acr_bundle_finish(&b, err, sizeof err), 0);
    assert_int_equal(acr_bundle_extract(&b, &out, err, sizeof err), 0);
    struct stat st;
    assert_int_equal(stat(out, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    char p[512];
    snprintf(p, sizeof p, "%s/lib/deep.lua", out);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    char line[64] = "";
    assert_non_null(fgets(line, sizeof line, f));
    fclose(f);
    assert_string_equal(line, "return 1\n");
    assert_int_equal(acr_bundle_remove_dir(out), 0);
    assert_int_equal(stat(out, &st), -1);
    free(out);
    acr_bundle_free(&b);
    assert_int_equal(acr_bundle_remove_dir(dir), 0);
    free(dir);
}

static void mk(const char *root, const char *name)
{
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", root, name);
    assert_int_equal(mkdir(p, 0700), 0);
}

static bool exists(const char *root, const char *name)
{
    char p[2048];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", root, name);
    return lstat(p, &st) == 0;
}

/* The directories of dead owners go, exactly those: not a live or our own pid's, not a name off
 * the pattern, not a symlink (nor what it points to), not a file. */
static void test_remove_stale(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/acrida-ut-XXXXXX", vtmpl[] = "/tmp/acrida-ut-XXXXXX";
    char *tmp = mkdtemp(tmpl), *victim = mkdtemp(vtmpl), n[128], p[512];
    assert_non_null(tmp);
    assert_non_null(victim);
    pid_t dead = fork();
    if (dead == 0) _exit(0);
    assert_true(dead > 0);
    assert_int_equal(waitpid(dead, NULL, 0), dead);
    snprintf(n, sizeof n, "acrida-bundle-%d-abcDE9", (int)dead);
    mk(tmp, n);
    snprintf(p, sizeof p, "%s/%s/lib", tmp, n);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/%s/lib/x.lua", tmp, n);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(p, sizeof p, "%s/keep.txt", victim);
    assert_non_null(f = fopen(p, "w"));
    fclose(f);
    const char *kept_fmt[] = {"acrida-bundle-%d-abcde", "acrida-bundle-%d-abcdefg",
                              "acrida-bundle-0%d-abcdef", "acrida-bundle-%d-abc.ef",
                              "acrida-bundle-%dabcdef"};
    char kept[8][128];
    size_t nkept = 0;
    for (size_t i = 0; i < sizeof kept_fmt / sizeof kept_fmt[0]; i++) {
        snprintf(kept[nkept], sizeof kept[0], kept_fmt[i], (int)dead);
        mk(tmp, kept[nkept++]);
    }
    snprintf(kept[nkept], sizeof kept[0], "acrida-bundle-%d-abcdef", (int)getpid());
    mk(tmp, kept[nkept++]);
    snprintf(kept[nkept], sizeof kept[0], "acrida-bundle-%d-abcdef", (int)getppid());
    mk(tmp, kept[nkept++]);
    snprintf(kept[nkept], sizeof kept[0], "acrida-bundle-%d-symlnk", (int)dead);
    snprintf(p, sizeof p, "%s/%s", tmp, kept[nkept++]);
    assert_int_equal(symlink(victim, p), 0);
    size_t removed = 9, failed = 9;
    assert_int_equal(acr_bundle_remove_stale(tmp, &removed, &failed), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(failed, 0);
    assert_false(exists(tmp, n));
    for (size_t i = 0; i < nkept; i++) assert_true(exists(tmp, kept[i]));
    assert_true(exists(victim, "keep.txt"));
    assert_int_equal(acr_bundle_remove_stale("/nonexistent-acrida", &removed, &failed), -ENOENT);

    /* an extraction is named after its owner, and left alone while the owner lives */
    setenv("TMPDIR", tmp, 1);
    acr_bundle_t b = {0};
    char err[256], *out = NULL;
    assert_int_equal(acr_bundle_finish(&b, err, sizeof err), 0);
    assert_int_equal(acr_bundle_extract(&b, &out, err, sizeof err), 0);
    unsetenv("TMPDIR");
    snprintf(p, sizeof p, "%s/acrida-bundle-%d-", tmp, (int)getpid());
    assert_int_equal(strncmp(out, p, strlen(p)), 0);
    assert_int_equal(strlen(out), strlen(p) + 6);
    assert_int_equal(acr_bundle_remove_stale(tmp, &removed, &failed), 0);
    assert_int_equal(removed, 0);
    assert_true(exists(out, "."));
    free(out);
    acr_bundle_free(&b);
    assert_int_equal(acr_bundle_remove_dir(tmp), 0);
    assert_int_equal(acr_bundle_remove_dir(victim), 0);
}

struct names {
    char list[8][32];
    int n;
};

static void collect(const char *name, size_t n, void *ud)
{
    struct names *ns = ud;
    if (ns->n < 8) snprintf(ns->list[ns->n++], 32, "%.*s", (int)n, name);
}

static void test_scan(void **state)
{
    (void)state;
    const char *src = "local a = require \"a\"\nlocal b = require('b.c')\nrequire [[d]]\n"
                      "x.require 'no' obj:require('no') myrequire 'no' require(x)\n"
                      "require\n  ( 'e' )\nrequire 'unterminated";
    struct names ns = {0};
    acr_bundle_scan_requires(src, strlen(src), collect, &ns);
    assert_int_equal(ns.n, 4);
    assert_string_equal(ns.list[0], "a");
    assert_string_equal(ns.list[1], "b.c");
    assert_string_equal(ns.list[2], "d");
    assert_string_equal(ns.list[3], "e");

    char *dir = make_tree(), rel[256];
    assert_true(acr_bundle_module_path(dir, "lib.util", rel, sizeof rel));
    assert_string_equal(rel, "lib/util.lua");
    assert_false(acr_bundle_module_path(dir, "gone", rel, sizeof rel));
    assert_false(acr_bundle_module_path(dir, "..helper", rel, sizeof rel));
    assert_false(acr_bundle_module_path(dir, "/etc/x", rel, sizeof rel));
    assert_int_equal(acr_bundle_remove_dir(dir), 0);
    free(dir);
}

static void test_messages(void **state)
{
    (void)state;
    acr_buf_t b = {0};
    acr_msg_t m;
    char err[256], sha[65];
    acr_bundle_sha256_hex("x", 1, sha);
    acr_msg_bundle_t mf = {.sha256 = sha, .main = "sub/main.lua", .size = 10, .parts = 1};
    assert_int_equal(acr_msg_encode_scenario_bundle(&b, "main.lua", "src", 3, &mf, "w1"), 0);
    assert_int_equal(acr_msg_decode(b.data, b.len, &m, err, sizeof err), 0);
    assert_int_equal(m.type, ACR_MSG_SCENARIO);
    assert_true(m.bundle.present);
    assert_string_equal(m.bundle.main, "sub/main.lua");
    assert_int_equal(m.bundle.size, 10);
    assert_string_equal(m.scenario_source, "src");
    acr_msg_free(&m);

    /* without a manifest (an older master) */
    acr_buf_reset(&b);
    assert_int_equal(acr_msg_encode_scenario(&b, "main.lua", "src", 3, "w1"), 0);
    assert_int_equal(acr_msg_decode(b.data, b.len, &m, err, sizeof err), 0);
    assert_false(m.bundle.present);
    acr_msg_free(&m);

    /* hostile manifests */
    acr_msg_bundle_t bad[] = {
        {.sha256 = sha, .main = "../main.lua", .size = 10, .parts = 1},
        {.sha256 = sha, .main = "/main.lua", .size = 10, .parts = 1},
        {.sha256 = sha, .main = "m.lua", .size = 10, .parts = 2},
        {.sha256 = sha, .main = "m.lua", .size = (uint64_t)INT32_MAX + 1, .parts = 513},
        {.sha256 = "ABC", .main = "m.lua", .size = 10, .parts = 1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        acr_buf_reset(&b);
        assert_int_equal(acr_msg_encode_scenario_bundle(&b, "m.lua", "s", 1, &bad[i], "w1"), 0);
        assert_int_equal(acr_msg_decode(b.data, b.len, &m, err, sizeof err), -EPROTO);
        assert_non_null(strstr(err, "scenario: acrida_bundle: "));
    }

    acr_buf_reset(&b);
    assert_int_equal(acr_msg_encode_bundle_part(&b, sha, 3, "abc", 3, "w1"), 0);
    assert_int_equal(acr_msg_decode(b.data, b.len, &m, err, sizeof err), 0);
    assert_int_equal(m.type, ACR_MSG_BUNDLE_PART);
    assert_int_equal(m.bundle.index, 3);
    assert_int_equal(m.data_len, 3);
    assert_memory_equal(m.data, "abc", 3);
    acr_msg_free(&m);
    acr_buf_reset(&b);
    assert_int_equal(acr_msg_encode_bundle_part(&b, "nothex", 0, "abc", 3, "w1"), 0);
    assert_int_equal(acr_msg_decode(b.data, b.len, &m, err, sizeof err), -EPROTO);

    acr_buf_reset(&b);
    assert_int_equal(acr_msg_encode_scenario_loaded(&b, sha, "x.lua:2: boom", "w1"), 0);
    assert_int_equal(acr_msg_decode(b.data, b.len, &m, err, sizeof err), 0);
    assert_int_equal(m.type, ACR_MSG_SCENARIO_LOADED);
    assert_string_equal(m.bundle.error, "x.lua:2: boom");
    assert_string_equal(m.bundle.sha256, sha);
    acr_msg_free(&m);
    acr_buf_reset(&b);
    assert_int_equal(acr_msg_encode_scenario_loaded(&b, sha, NULL, "w1"), 0);
    assert_int_equal(acr_msg_decode(b.data, b.len, &m, err, sizeof err), 0);
    assert_null(m.bundle.error);
    acr_msg_free(&m);
    assert_true(acr_msg_type_is_builtin("acrida_bundle_part"));
    assert_true(acr_msg_type_is_builtin("acrida_scenario_loaded"));
    acr_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths),          cmocka_unit_test(test_canonical),
        cmocka_unit_test(test_decode_hostile), cmocka_unit_test(test_rx),
        cmocka_unit_test(test_extract),        cmocka_unit_test(test_scan),
        cmocka_unit_test(test_messages),       cmocka_unit_test(test_remove_stale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
