/*
 * The cluster key file (common/keys.h): generation with libzmq's CURVE key pairs, and a strict
 * reader that refuses a file others could read, a line it does not know and a key that is not 40
 * Z85 characters decoding to 32 bytes.
 */
#include "common/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#define MAX_FILE 4096

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

void acr_keys_wipe(acr_keys_t *k)
{
    /* volatile: the stores must happen although the memory is about to be released */
    volatile char *p = (volatile char *)k;
    for (size_t i = 0; i < sizeof(*k); i++) p[i] = 0;
}

int acr_keys_generate(const char *path, char *err, size_t errlen)
{
    if (!zmq_has("curve"))
        return fail(err, errlen, -ENOTSUP, "this libzmq was built without CURVE support");
    acr_keys_t k;
    if (zmq_curve_keypair(k.master_public, k.master_secret) != 0 ||
        zmq_curve_keypair(k.worker_public, k.worker_secret) != 0)
        return fail(err, errlen, -EIO, "cannot generate a CURVE key pair: %s",
                    zmq_strerror(zmq_errno()));
    char text[512];
    int n = snprintf(text, sizeof text,
                     "# acrida cluster key (acrida-master --gen-key): copy it to the master and to "
                     "every worker,\n# readable by the daemons' user only (mode 0600)\n"
                     "master-public = %s\nmaster-secret = %s\nworker-public = %s\n"
                     "worker-secret = %s\n",
                     k.master_public, k.master_secret, k.worker_public, k.worker_secret);
    acr_keys_wipe(&k);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        int e = errno;
        memset(text, 0, sizeof text);
        if (e == EEXIST)
            return fail(err, errlen, -EEXIST,
                        "%s exists: it is never overwritten (remove it first)", path);
        return fail(err, errlen, -e, "cannot create %s: %s", path, strerror(e));
    }
    ssize_t w = write(fd, text, (size_t)n);
    int e = errno;
    memset(text, 0, sizeof text);
    if (w != n || fsync(fd) != 0) {
        if (w == n) e = errno;
        close(fd);
        unlink(path);
        return fail(err, errlen, -e, "cannot write %s: %s", path, strerror(e));
    }
    if (close(fd) != 0) {
        e = errno;
        unlink(path);
        return fail(err, errlen, -e, "cannot write %s: %s", path, strerror(e));
    }
    return 0;
}

static int check_file(int fd, const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return fail(err, errlen, -errno, "cannot stat %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return fail(err, errlen, -EINVAL, "cluster key %s is not a regular file", path);
    if (st.st_uid != geteuid() && st.st_uid != 0)
        return fail(err, errlen, -EPERM,
                    "cluster key %s belongs to uid %u, not to this user (uid %u): chown it", path,
                    (unsigned)st.st_uid, (unsigned)geteuid());
    if (st.st_mode & (S_IRWXG | S_IRWXO))
        return fail(err, errlen, -EPERM,
                    "cluster key %s is accessible by others (mode %04o): run chmod 600 %s", path,
                    (unsigned)(st.st_mode & 07777), path);
    if (st.st_size > MAX_FILE)
        return fail(err, errlen, -EINVAL, "cluster key %s is %lld bytes: not a key file", path,
                    (long long)st.st_size);
    return 0;
}

/* A Z85 key: exactly 40 characters that decode to 32 bytes. */
static bool valid_key(const char *v, size_t len)
{
    if (len != ACR_KEY_Z85_LEN) return false;
    char z[ACR_KEY_Z85_LEN + 1];
    memcpy(z, v, len);
    z[len] = 0;
    uint8_t raw[32];
    bool ok = zmq_z85_decode(raw, z) != NULL;
    memset(raw, 0, sizeof raw);
    return ok;
}

static char *field(acr_keys_t *k, const char *name, size_t len)
{
    static const struct {
        const char *name;
        size_t off;
    } fields[] = {
        {"master-public", offsetof(acr_keys_t, master_public)},
        {"master-secret", offsetof(acr_keys_t, master_secret)},
        {"worker-public", offsetof(acr_keys_t, worker_public)},
        {"worker-secret", offsetof(acr_keys_t, worker_secret)},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (strlen(fields[i].name) == len && memcmp(fields[i].name, name, len) == 0)
            return (char *)k + fields[i].off;
    return NULL;
}

static void trim(const char **s, const char **e)
{
    while (*s < *e && (**s == ' ' || **s == '\t')) (*s)++;
    while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t' || (*e)[-1] == '\r')) (*e)--;
}

static int parse(char *text, const char *path, acr_keys_t *out, char *err, size_t errlen)
{
    int line = 0;
    for (char *p = text; *p;) {
        char *nl = strchr(p, '\n');
        char *end = nl ? nl : p + strlen(p);
        line++;
        const char *s = p, *e = end;
        trim(&s, &e);
        p = nl ? nl + 1 : end;
        if (s == e || *s == '#') continue;
        const char *eq = memchr(s, '=', (size_t)(e - s));
        if (!eq) return fail(err, errlen, -EINVAL, "%s:%d: expected name = key", path, line);
        const char *ns = s, *ne = eq, *vs = eq + 1, *ve = e;
        trim(&ns, &ne);
        trim(&vs, &ve);
        char *dst = field(out, ns, (size_t)(ne - ns));
        if (!dst)
            return fail(err, errlen, -EINVAL, "%s:%d: unknown name '%.*s'", path, line,
                        (int)(ne - ns > 40 ? 40 : ne - ns), ns);
        if (*dst)
            return fail(err, errlen, -EINVAL, "%s:%d: '%.*s' given twice", path, line,
                        (int)(ne - ns), ns);
        if (!valid_key(vs, (size_t)(ve - vs)))
            return fail(err, errlen, -EINVAL, "%s:%d: not a 40-character Z85 CURVE key", path,
                        line);
        memcpy(dst, vs, ACR_KEY_Z85_LEN);
        dst[ACR_KEY_Z85_LEN] = 0;
    }
    if (!out->master_public[0] || !out->master_secret[0] || !out->worker_public[0] ||
        !out->worker_secret[0])
        return fail(err, errlen, -EINVAL,
                    "%s: a cluster key needs master-public, master-secret, worker-public and "
                    "worker-secret (generate one with acrida-master --gen-key FILE)",
                    path);
    return 0;
}

int acr_keys_load(const char *path, acr_keys_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (!zmq_has("curve"))
        return fail(err, errlen, -ENOTSUP, "this libzmq was built without CURVE support");
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return fail(err, errlen, -errno, "cannot open cluster key %s: %s", path, strerror(errno));
    int rc = check_file(fd, path, err, errlen);
    char text[MAX_FILE + 1];
    ssize_t n = 0;
    if (rc == 0) {
        n = read(fd, text, MAX_FILE);
        if (n < 0) rc = fail(err, errlen, -errno, "cannot read %s: %s", path, strerror(errno));
    }
    close(fd);
    if (rc == 0) {
        text[n] = 0;
        if (memchr(text, 0, (size_t)n))
            rc = fail(err, errlen, -EINVAL, "%s: not a text file", path);
        else
            rc = parse(text, path, out, err, errlen);
    }
    memset(text, 0, sizeof text);
    if (rc != 0) acr_keys_wipe(out);
    return rc;
}
