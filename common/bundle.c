/*
 * Scenario bundles (common/bundle.h): collecting files with their checks, the canonical blob and
 * its hash, the hostile-input decoder, reassembly from parts, and extraction into a private
 * directory.
 */
#define _GNU_SOURCE
#include "common/bundle.h"

#include "common/log.h"
#include "common/util.h"

#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

static const char MAGIC[] = "acrida-bundle-1\n";
#define MAGIC_LEN (sizeof(MAGIC) - 1)
#define STALE_PREFIX "acrida-bundle-" /* then <pid>-XXXXXX: the extraction directories */

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

void acr_bundle_sha256_hex(const void *p, size_t n, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    out[0] = '\0';
    if (!EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32) return;
    for (unsigned i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
}

bool acr_bundle_path_ok(const char *path, size_t len, char *err, size_t errlen)
{
    char sh[160];
    if (len == 0) return fail(err, errlen, 0, "an empty file name"), false;
    if (len > ACR_BUNDLE_PATH_MAX) {
        fail(err, errlen, 0, "the file name '%s...' is longer than %d bytes",
             acr_log_escape(sh, sizeof sh, path, 60), ACR_BUNDLE_PATH_MAX);
        return false;
    }
    acr_log_escape(sh, sizeof sh, path, len);
    if (path[0] == '/') return fail(err, errlen, 0, "'%s' is an absolute path", sh), false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)path[i];
        if (ch == 0) return fail(err, errlen, 0, "'%s' contains a NUL byte", sh), false;
        if (ch < 0x20 || ch == 0x7f || ch == '\\') {
            fail(err, errlen, 0, "'%s' contains a control character or a backslash", sh);
            return false;
        }
    }
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && path[i] != '/') continue;
        size_t n = i - start;
        if (n == 0 || (n == 1 && path[start] == '.')) {
            fail(err, errlen, 0, "'%s' has an empty or '.' component", sh);
            return false;
        }
        if (n == 2 && path[start] == '.' && path[start + 1] == '.') {
            fail(err, errlen, 0, "'%s' is outside the scenario's directory ('..')", sh);
            return false;
        }
        start = i + 1;
    }
    return true;
}

bool acr_bundle_has(const acr_bundle_t *b, const char *rel)
{
    return acr_bundle_get(b, rel) != NULL;
}

const acr_bundle_file_t *acr_bundle_get(const acr_bundle_t *b, const char *rel)
{
    for (size_t i = 0; i < b->nfiles; i++)
        if (strcmp(b->files[i].path, rel) == 0) return &b->files[i];
    return NULL;
}

static int push_file(acr_bundle_t *b, char *path, char *data, size_t len)
{
    if (b->nfiles >= ACR_BUNDLE_FILES_MAX) return -EFBIG;
    if (b->nfiles == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 16;
        void *p = realloc(b->files, nc * sizeof(*b->files));
        if (!p) return -ENOMEM;
        b->files = p;
        b->cap = nc;
    }
    b->files[b->nfiles++] = (acr_bundle_file_t){path, data, len};
    b->content_bytes += len;
    return 0;
}

/* Reads the regular file @fd into a new buffer of at most @max bytes. */
static int read_fd(int fd, size_t max, char **out, size_t *outlen)
{
    acr_buf_t buf = {0};
    char chunk[65536];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int e = errno;
            acr_buf_free(&buf);
            return -e;
        }
        if (n == 0) break;
        if (buf.len + (size_t)n > max) {
            acr_buf_free(&buf);
            return -EFBIG;
        }
        if (acr_buf_append(&buf, chunk, (size_t)n) < 0) {
            acr_buf_free(&buf);
            return -ENOMEM;
        }
    }
    if (acr_buf_putc(&buf, '\0') < 0) {
        acr_buf_free(&buf);
        return -ENOMEM;
    }
    *outlen = buf.len - 1;
    *out = buf.data;
    return 0;
}

/* Whether the real path @real lies under the real directory @rroot. */
static bool under(const char *rroot, const char *real)
{
    size_t n = strlen(rroot);
    if (n == 1 && rroot[0] == '/') return true;
    return strncmp(real, rroot, n) == 0 && (real[n] == '/' || real[n] == '\0');
}

int acr_bundle_add_file(acr_bundle_t *b, const char *root, const char *rel, size_t max, char *err,
                        size_t errlen)
{
    char why[256];
    if (!acr_bundle_path_ok(rel, strlen(rel), why, sizeof why))
        return fail(err, errlen, -EINVAL, "%s", why);
    if (acr_bundle_has(b, rel)) return 0;
    char *full = NULL, *rroot = NULL, *real = NULL, *data = NULL, *path = NULL;
    size_t len = 0;
    int rc = 0, fd = -1;
    if (asprintf(&full, "%s/%s", root, rel) < 0) {
        full = NULL;
        return -ENOMEM;
    }
    rroot = realpath(root, NULL);
    real = realpath(full, NULL);
    if (!rroot || !real) {
        rc = fail(err, errlen, -errno, "cannot read '%s': %s", rel, strerror(errno));
        goto out;
    }
    if (!under(rroot, real)) {
        rc = fail(err, errlen, -EINVAL, "'%s' is a symlink to a file outside %s", rel, root);
        goto out;
    }
    fd = open(real, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        rc = fail(err, errlen, -errno, "cannot read '%s': %s", rel, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = fail(err, errlen, -EINVAL, "'%s' is not a regular file", rel);
        goto out;
    }
    size_t room = max > b->content_bytes ? max - b->content_bytes : 0;
    rc = read_fd(fd, room, &data, &len);
    if (rc == -EFBIG) {
        fail(err, errlen, rc, "'%s' (%lld bytes) makes the bundle larger than %zu bytes", rel,
             (long long)st.st_size, max);
        goto out;
    }
    if (rc < 0) {
        fail(err, errlen, rc, "cannot read '%s': %s", rel, strerror(-rc));
        goto out;
    }
    if (!(path = strdup(rel)) || (rc = push_file(b, path, data, len)) < 0) {
        if (rc == 0) rc = -ENOMEM;
        fail(err, errlen, rc, "cannot add '%s': %s", rel,
             rc == -EFBIG ? "too many files" : strerror(-rc));
        free(path);
        free(data);
        goto out;
    }
out:
    if (fd >= 0) close(fd);
    free(full);
    free(rroot);
    free(real);
    return rc;
}

/* Adds the files under @root/@rel (@rel "" for the root itself). */
static int add_tree(acr_bundle_t *b, const char *root, const char *rel, size_t max, int depth,
                    char *err, size_t errlen)
{
    if (depth > 64) return fail(err, errlen, -ELOOP, "'%s' is nested too deeply", rel);
    char *dirpath = NULL;
    if (asprintf(&dirpath, "%s%s%s", root, *rel ? "/" : "", rel) < 0) return -ENOMEM;
    DIR *d = opendir(dirpath);
    if (!d) {
        int rc =
            fail(err, errlen, -errno, "cannot read the directory %s: %s", dirpath, strerror(errno));
        free(dirpath);
        return rc;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char *child = NULL;
        if (asprintf(&child, "%s%s%s", rel, *rel ? "/" : "", e->d_name) < 0) {
            rc = -ENOMEM;
            break;
        }
        char *full = NULL;
        struct stat st;
        if (asprintf(&full, "%s/%s", root, child) < 0) {
            free(child);
            rc = -ENOMEM;
            break;
        }
        if (stat(full, &st) < 0) {
            rc = fail(err, errlen, -errno, "cannot read '%s': %s", child, strerror(errno));
        } else if (S_ISDIR(st.st_mode)) {
            struct stat lst;
            if (lstat(full, &lst) == 0 && S_ISLNK(lst.st_mode))
                rc = fail(err, errlen, -EINVAL, "'%s' is a symlink to a directory (not shipped)",
                          child);
            else
                rc = add_tree(b, root, child, max, depth + 1, err, errlen);
        } else if (S_ISREG(st.st_mode)) {
            rc = acr_bundle_add_file(b, root, child, max, err, errlen);
        } /* sockets, fifos, devices: not files to ship */
        free(full);
        free(child);
    }
    closedir(d);
    free(dirpath);
    return rc;
}

int acr_bundle_add_dir(acr_bundle_t *b, const char *root, size_t max, char *err, size_t errlen)
{
    return add_tree(b, root, "", max, 0, err, errlen);
}

static int cmp_path(const void *a, const void *b)
{
    return strcmp(((const acr_bundle_file_t *)a)->path, ((const acr_bundle_file_t *)b)->path);
}

static int put_be(acr_buf_t *buf, uint64_t v, int bytes)
{
    unsigned char o[8];
    for (int i = 0; i < bytes; i++) o[i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
    return acr_buf_append(buf, o, (size_t)bytes);
}

int acr_bundle_finish(acr_bundle_t *b, char *err, size_t errlen)
{
    if (b->nfiles) qsort(b->files, b->nfiles, sizeof(*b->files), cmp_path);
    acr_buf_t buf = {0};
    int rc = acr_buf_append(&buf, MAGIC, MAGIC_LEN);
    if (rc == 0) rc = put_be(&buf, b->nfiles, 4);
    for (size_t i = 0; i < b->nfiles && rc == 0; i++) {
        const acr_bundle_file_t *f = &b->files[i];
        size_t pl = strlen(f->path);
        rc = put_be(&buf, pl, 4);
        if (rc == 0) rc = acr_buf_append(&buf, f->path, pl);
        if (rc == 0) rc = put_be(&buf, f->len, 8);
        if (rc == 0 && f->len) rc = acr_buf_append(&buf, f->data, f->len);
    }
    if (rc < 0) {
        acr_buf_free(&buf);
        return fail(err, errlen, -ENOMEM, "out of memory encoding the bundle");
    }
    free(b->blob);
    b->blob = buf.data;
    b->blob_len = buf.len;
    acr_bundle_sha256_hex(b->blob, b->blob_len, b->sha256);
    if (!b->sha256[0]) return fail(err, errlen, -ENOMEM, "cannot hash the bundle");
    return 0;
}

size_t acr_bundle_largest(const acr_bundle_t *b, const acr_bundle_file_t **out, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < b->nfiles; i++) {
        const acr_bundle_file_t *f = &b->files[i];
        size_t j = k < n ? k++ : n;
        if (j == n && (n == 0 || f->len <= out[n - 1]->len)) continue;
        if (j == n) j = n - 1;
        while (j > 0 && out[j - 1]->len < f->len) {
            out[j] = out[j - 1];
            j--;
        }
        out[j] = f;
    }
    return k;
}

static uint64_t get_be(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v = (v << 8) | p[i];
    return v;
}

static bool hex64(const char *s)
{
    if (!s || strlen(s) != 64) return false;
    for (size_t i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return true;
}

/* Decodes the files of the blob @p (@len bytes) into @out. */
static int decode_files(const unsigned char *p, size_t len, acr_bundle_t *out, char *err,
                        size_t errlen)
{
    char why[256];
    if (len < MAGIC_LEN + 4 || memcmp(p, MAGIC, MAGIC_LEN) != 0)
        return fail(err, errlen, -EINVAL, "not an acrida bundle (bad header)");
    size_t off = MAGIC_LEN;
    uint64_t count = get_be(p + off, 4);
    off += 4;
    if (count > ACR_BUNDLE_FILES_MAX || count > (len - off) / 12)
        return fail(err, errlen, -EINVAL, "the bundle claims %llu files",
                    (unsigned long long)count);
    for (uint64_t i = 0; i < count; i++) {
        if (len - off < 4)
            return fail(err, errlen, -EINVAL, "file %llu: truncated", (unsigned long long)i);
        uint64_t pl = get_be(p + off, 4);
        off += 4;
        if (pl > len - off || len - off - pl < 8)
            return fail(err, errlen, -EINVAL, "file %llu: the name runs past the end",
                        (unsigned long long)i);
        const char *name = (const char *)p + off;
        if (!acr_bundle_path_ok(name, (size_t)pl, why, sizeof why))
            return fail(err, errlen, -EINVAL, "file %llu: %s", (unsigned long long)i, why);
        off += pl;
        uint64_t cl = get_be(p + off, 8);
        off += 8;
        if (cl > len - off)
            return fail(err, errlen, -EINVAL, "file %llu: the content runs past the end",
                        (unsigned long long)i);
        char *path = strndup(name, (size_t)pl);
        char *data = malloc((size_t)cl + 1);
        int rc = path && data ? 0 : -ENOMEM;
        if (rc == 0) {
            if (cl) memcpy(data, p + off, (size_t)cl);
            data[cl] = '\0';
            rc = push_file(out, path, data, (size_t)cl);
        }
        if (rc < 0) {
            free(path);
            free(data);
            return fail(err, errlen, rc, "out of memory decoding the bundle");
        }
        off += cl;
        if (i > 0 && strcmp(out->files[i - 1].path, out->files[i].path) >= 0)
            return fail(err, errlen, -EINVAL, "file %llu: names not sorted or repeated",
                        (unsigned long long)i);
    }
    if (off != len)
        return fail(err, errlen, -EINVAL, "%zu trailing bytes after the last file", len - off);
    return 0;
}

int acr_bundle_decode(const void *blob, size_t len, const char *sha256, acr_bundle_t *out,
                      char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (!hex64(sha256)) return fail(err, errlen, -EINVAL, "the bundle's sha256 is not 64 hex");
    char got[65];
    acr_bundle_sha256_hex(blob, len, got);
    if (!got[0]) return fail(err, errlen, -ENOMEM, "cannot hash the bundle");
    if (strcmp(got, sha256) != 0)
        return fail(err, errlen, -EINVAL, "the bundle's sha256 is %.12s..., not %.12s...", got,
                    sha256);
    int rc = decode_files(blob, len, out, err, errlen);
    if (rc == 0 && !(out->blob = malloc(len ? len : 1))) rc = -ENOMEM;
    if (rc < 0) {
        acr_bundle_free(out);
        return rc;
    }
    memcpy(out->blob, blob, len);
    out->blob_len = len;
    memcpy(out->sha256, got, sizeof got);
    return 0;
}

/* mkdir -p of the directories of @rel inside @dir (all created by us, 0700). */
static int make_parents(const char *dir, const char *rel)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/%s", dir, rel);
    if (n < 0 || (size_t)n >= sizeof path) return -ENAMETOOLONG;
    size_t base = strlen(dir) + 1;
    for (char *s = path + base; (s = strchr(s, '/')) != NULL; s++) {
        *s = '\0';
        if (mkdir(path, 0700) < 0 && errno != EEXIST) return -errno;
        struct stat st; /* an existing component must be a directory we made, never a link */
        if (lstat(path, &st) < 0) return -errno;
        if (!S_ISDIR(st.st_mode)) return -ENOTDIR;
        *s = '/';
    }
    return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

const char *acr_bundle_tmpdir(void)
{
    const char *tmp = getenv("TMPDIR");
    return tmp && *tmp ? tmp : "/tmp";
}

int acr_bundle_extract(const acr_bundle_t *b, char **dir_out, char *err, size_t errlen)
{
    const char *tmp = acr_bundle_tmpdir();
    char *dir = NULL;
    *dir_out = NULL;
    /* the owner's pid in the name: a later worker removes the directory if this one dies
     * without doing it (acr_bundle_remove_stale) */
    if (asprintf(&dir, "%s/" STALE_PREFIX "%ld-XXXXXX", tmp, (long)getpid()) < 0) return -ENOMEM;
    if (!mkdtemp(dir)) {
        int rc =
            fail(err, errlen, -errno, "cannot create a directory in %s: %s", tmp, strerror(errno));
        free(dir);
        return rc;
    }
    int rc = 0;
    char why[256];
    for (size_t i = 0; i < b->nfiles && rc == 0; i++) {
        const acr_bundle_file_t *f = &b->files[i];
        if (!acr_bundle_path_ok(f->path, strlen(f->path), why, sizeof why)) {
            rc = fail(err, errlen, -EINVAL, "%s", why);
            break;
        }
        char path[PATH_MAX];
        int n = snprintf(path, sizeof path, "%s/%s", dir, f->path);
        if (n < 0 || (size_t)n >= sizeof path) {
            rc = fail(err, errlen, -ENAMETOOLONG, "'%s': name too long", f->path);
            break;
        }
        rc = make_parents(dir, f->path);
        int fd =
            rc == 0 ? open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600) : -1;
        if (rc == 0 && fd < 0) rc = -errno;
        if (rc == 0) rc = write_all(fd, f->data, f->len);
        if (fd >= 0 && close(fd) < 0 && rc == 0) rc = -errno;
        if (rc < 0)
            fail(err, errlen, rc, "cannot write '%s' in %s: %s", f->path, dir, strerror(-rc));
    }
    if (rc < 0) {
        acr_bundle_remove_dir(dir);
        free(dir);
        return rc;
    }
    *dir_out = dir;
    return 0;
}

static int remove_at(int dfd)
{
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return -errno;
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) continue;
        if (S_ISDIR(st.st_mode)) {
            int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0) rc = remove_at(sub) < 0 ? -EIO : rc;
            if (unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR) < 0) rc = -errno;
        } else if (unlinkat(dirfd(d), e->d_name, 0) < 0) {
            rc = -errno;
        }
    }
    closedir(d);
    return rc;
}

int acr_bundle_remove_dir(const char *dir)
{
    if (!dir) return 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return -errno;
    int rc = remove_at(fd);
    if (rmdir(dir) < 0 && rc == 0) rc = -errno;
    return rc;
}

/* The pid in @name if it is exactly STALE_PREFIX "<pid>-XXXXXX" (a decimal pid without a leading
 * zero, then mkdtemp's six letters or digits), else 0. */
static pid_t stale_name_pid(const char *name)
{
    size_t plen = sizeof STALE_PREFIX - 1;
    if (strncmp(name, STALE_PREFIX, plen) != 0) return 0;
    const char *p = name + plen;
    long pid = 0;
    size_t digits = 0;
    for (; p[digits] >= '0' && p[digits] <= '9'; digits++) {
        if (digits == 9) return 0; /* pid_max is at most 2^22 */
        pid = pid * 10 + (p[digits] - '0');
    }
    if (digits == 0 || p[0] == '0' || p[digits] != '-') return 0;
    p += digits + 1;
    for (size_t i = 0; i < 6; i++) {
        char ch = p[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')))
            return 0;
    }
    return p[6] == 0 ? (pid_t)pid : 0;
}

/* Removes the directory entry @name of @dfd if it is still the directory @st describes (no
 * symlink is followed: a swap between the check and the open is refused). */
static int remove_stale(int dfd, const char *name, const struct stat *st)
{
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return -errno;
    struct stat now;
    if (fstat(fd, &now) < 0 || now.st_dev != st->st_dev || now.st_ino != st->st_ino) {
        close(fd);
        return -ESTALE;
    }
    int rc = remove_at(fd); /* closes fd */
    if (unlinkat(dfd, name, AT_REMOVEDIR) < 0 && rc == 0) rc = -errno;
    return rc;
}

int acr_bundle_remove_stale(const char *tmp, size_t *removed, size_t *failed)
{
    *removed = *failed = 0;
    DIR *d = opendir(tmp);
    if (!d) return -errno;
    uid_t me = geteuid();
    pid_t self = getpid();
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        pid_t pid = stale_name_pid(e->d_name);
        if (pid <= 0 || pid == self) continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) continue;
        if (!S_ISDIR(st.st_mode) || st.st_uid != me) continue; /* symlinks, others' files */
        if (kill(pid, 0) == 0 || errno != ESRCH) continue;     /* alive (or not ours to ask) */
        if (remove_stale(dirfd(d), e->d_name, &st) == 0)
            (*removed)++;
        else
            (*failed)++;
    }
    closedir(d);
    return 0;
}

void acr_bundle_free(acr_bundle_t *b)
{
    if (!b) return;
    for (size_t i = 0; i < b->nfiles; i++) {
        free(b->files[i].path);
        free(b->files[i].data);
    }
    free(b->files);
    free(b->blob);
    memset(b, 0, sizeof(*b));
}

/* ---- require scan ---- */

static bool ident_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_';
}

static size_t skip_space(const char *s, size_t i, size_t len)
{
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    return i;
}

void acr_bundle_scan_requires(const char *src, size_t len,
                              void (*fn)(const char *name, size_t n, void *ud), void *ud)
{
    static const char kw[] = "require";
    const size_t kl = sizeof(kw) - 1;
    for (size_t i = 0; i + kl <= len; i++) {
        if (memcmp(src + i, kw, kl) != 0) continue;
        if ((i > 0 && (ident_char(src[i - 1]) || src[i - 1] == '.' || src[i - 1] == ':')) ||
            (i + kl < len && ident_char(src[i + kl])))
            continue;
        size_t j = skip_space(src, i + kl, len);
        if (j < len && src[j] == '(') j = skip_space(src, j + 1, len);
        if (j >= len) break;
        size_t start, end;
        if (src[j] == '"' || src[j] == '\'') {
            char q = src[j];
            start = j + 1;
            end = start;
            while (end < len && src[end] != q && src[end] != '\n' && src[end] != '\\') end++;
            if (end >= len || src[end] != q) continue;
        } else if (j + 1 < len && src[j] == '[' && src[j + 1] == '[') {
            start = j + 2;
            const char *close = memmem(src + start, len - start, "]]", 2);
            if (!close) continue;
            end = (size_t)(close - src);
        } else {
            continue;
        }
        if (end > start && end - start <= 256) fn(src + start, end - start, ud);
        i = end;
    }
}

bool acr_bundle_module_path(const char *root, const char *name, char *out, size_t outlen)
{
    char rel[ACR_BUNDLE_PATH_MAX + 16];
    size_t n = strlen(name);
    if (n == 0 || n > ACR_BUNDLE_PATH_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (!ident_char(ch) && ch != '.' && ch != '-') return false;
    }
    static const char *const suffix[] = {".lua", "/init.lua"};
    for (size_t k = 0; k < 2; k++) {
        snprintf(rel, sizeof rel, "%s%s", name, suffix[k]);
        for (char *s = rel; *s && s < rel + n; s++)
            if (*s == '.') *s = '/';
        if (!acr_bundle_path_ok(rel, strlen(rel), NULL, 0)) return false;
        char full[PATH_MAX];
        int fl = snprintf(full, sizeof full, "%s/%s", root, rel);
        struct stat st;
        if (fl < 0 || (size_t)fl >= sizeof full || stat(full, &st) < 0 || !S_ISREG(st.st_mode))
            continue;
        if (strlen(rel) >= outlen) return false;
        memcpy(out, rel, strlen(rel) + 1);
        return true;
    }
    return false;
}

/* ---- reassembly ---- */

void acr_bundle_rx_reset(acr_bundle_rx_t *rx)
{
    free(rx->buf);
    memset(rx, 0, sizeof(*rx));
}

bool acr_bundle_rx_active(const acr_bundle_rx_t *rx)
{
    return rx->parts > 0 && rx->next < rx->parts;
}

int acr_bundle_rx_begin(acr_bundle_rx_t *rx, const char *sha256, size_t total, uint32_t parts,
                        char *err, size_t errlen)
{
    acr_bundle_rx_reset(rx);
    if (!hex64(sha256)) return fail(err, errlen, -EINVAL, "the bundle's sha256 is not 64 hex");
    if (total > ACR_BUNDLE_SIZE_MAX)
        return fail(err, errlen, -EFBIG, "a bundle of %zu bytes is over the %zu-byte limit", total,
                    ACR_BUNDLE_SIZE_MAX);
    uint64_t want = total ? (total + ACR_BUNDLE_PART_SIZE - 1) / ACR_BUNDLE_PART_SIZE : 1;
    if (parts != want)
        return fail(err, errlen, -EINVAL, "%u parts for %zu bytes (expected %llu)", parts, total,
                    (unsigned long long)want);
    rx->buf = malloc(total ? total : 1);
    if (!rx->buf) return fail(err, errlen, -ENOMEM, "no memory for a %zu-byte bundle", total);
    memcpy(rx->sha256, sha256, 65);
    rx->total = total;
    rx->parts = parts;
    return 0;
}

int acr_bundle_rx_part(acr_bundle_rx_t *rx, const char *sha256, uint32_t index, const void *data,
                       size_t len, char *err, size_t errlen)
{
    int rc = 0;
    if (!acr_bundle_rx_active(rx))
        rc = fail(err, errlen, -EINVAL, "part %u of a bundle that was not announced", index);
    else if (!sha256 || strcmp(sha256, rx->sha256) != 0)
        rc = fail(err, errlen, -EINVAL, "part %u of another bundle", index);
    else if (index != rx->next)
        rc = fail(err, errlen, -EINVAL, "part %u out of order (expected %u)", index, rx->next);
    else if (len > rx->total - rx->got || (index + 1 < rx->parts && len != ACR_BUNDLE_PART_SIZE) ||
             (index + 1 == rx->parts && len != rx->total - rx->got))
        rc = fail(err, errlen, -EINVAL,
                  "part %u has %zu bytes, which does not fit the announced %zu", index, len,
                  rx->total);
    if (rc < 0) {
        acr_bundle_rx_reset(rx);
        return rc;
    }
    if (len) memcpy(rx->buf + rx->got, data, len);
    rx->got += len;
    rx->next++;
    return rx->next == rx->parts ? 1 : 0;
}
