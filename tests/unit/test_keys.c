/*
 * Unit tests of common/keys.c: a generated key file has mode 0600 and loads back with four valid
 * keys, is never overwritten, and the reader refuses a file others may read or write, a missing
 * key, an unknown or repeated name, a key that is not 40 Z85 characters, and binary content.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/keys.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/acrida-keys-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void path_of(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

static void expect_refused(const char *text, mode_t mode, int want_rc, const char *want)
{
    char p[128], err[512] = "";
    acr_keys_t k;
    path_of(p, sizeof p, "bad.key");
    unlink(p);
    write_file(p, text, mode);
    int rc = acr_keys_load(p, &k, err, sizeof err);
    assert_int_equal(rc, want_rc);
    if (!strstr(err, want)) fail_msg("error '%s' lacks '%s'", err, want);
    if (want_rc != 0) assert_int_equal(k.master_secret[0], 0); /* nothing half-loaded is kept */
}

static void test_generate_and_load(void **state)
{
    (void)state;
    char p[128], err[512];
    path_of(p, sizeof p, "cluster.key");
    assert_int_equal(acr_keys_generate(p, err, sizeof err), 0);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    acr_keys_t k;
    assert_int_equal(acr_keys_load(p, &k, err, sizeof err), 0);
    assert_int_equal(strlen(k.master_public), ACR_KEY_Z85_LEN);
    assert_int_equal(strlen(k.worker_secret), ACR_KEY_Z85_LEN);
    assert_string_not_equal(k.master_public, k.worker_public);
    assert_string_not_equal(k.master_secret, k.worker_secret);
    /* never overwritten */
    assert_int_equal(acr_keys_generate(p, err, sizeof err), -EEXIST);
    assert_non_null(strstr(err, "never overwritten"));
    acr_keys_t again;
    assert_int_equal(acr_keys_load(p, &again, err, sizeof err), 0);
    assert_string_equal(again.master_secret, k.master_secret);
    acr_keys_wipe(&k);
    assert_int_equal(k.master_secret[0], 0);
}

static void test_modes_refused(void **state)
{
    (void)state;
    char p[128], src[128], err[512], text[1024];
    path_of(src, sizeof src, "ok.key");
    assert_int_equal(acr_keys_generate(src, err, sizeof err), 0);
    FILE *f = fopen(src, "r");
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    expect_refused(text, 0644, -EPERM, "chmod 600");
    expect_refused(text, 0640, -EPERM, "chmod 600");
    expect_refused(text, 0602, -EPERM, "chmod 600");
    expect_refused(text, 0400, 0, ""); /* read-only for the owner is fine */
    path_of(p, sizeof p, "missing.key");
    acr_keys_t k;
    assert_int_equal(acr_keys_load(p, &k, err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, "missing.key"));
}

static void test_malformed_refused(void **state)
{
    (void)state;
    const char *key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
    char text[512];
    expect_refused("# only a comment\n", 0600, -EINVAL, "needs master-public");
    snprintf(text, sizeof text, "master-public = %s\nmaster-secret = %s\nworker-public = %s\n", key,
             key, key);
    expect_refused(text, 0600, -EINVAL, "worker-secret");
    snprintf(text, sizeof text, "master-public = %s\nmaster-public = %s\n", key, key);
    expect_refused(text, 0600, -EINVAL, ":2: 'master-public' given twice");
    expect_refused("server-key = abc\n", 0600, -EINVAL, ":1: unknown name 'server-key'");
    expect_refused("master-public = short\n", 0600, -EINVAL, ":1: not a 40-character Z85");
    expect_refused("master-public\n", 0600, -EINVAL, ":1: expected name = key");
    /* 40 characters, but not Z85 (a double quote is outside its alphabet) */
    expect_refused("master-public = rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8\"yf7\n", 0600, -EINVAL,
                   "Z85");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_and_load),
        cmocka_unit_test(test_modes_refused),
        cmocka_unit_test(test_malformed_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
