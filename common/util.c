/*
 * Small shared helpers (common/util.h): clocks, Locust time spans, the growable byte buffer,
 * atomic file writes, CPU count.
 */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

double acr_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)(ts.tv_nsec / 1000) / 1e6;
}

uint64_t acr_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

double acr_mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

uint64_t acr_timer_ms(double seconds)
{
    double ms = ceil(seconds * 1000.0);
    if (!(ms > 0)) return 0;
    return ms >= (double)ACR_TIMER_MAX_MS ? ACR_TIMER_MAX_MS : (uint64_t)ms;
}

/* Reads "digits[.digits]" (or ".digits") at *p; advances *p. Returns 0 or -EINVAL. */
static int timespan_number(const char **p, double *out)
{
    char tmp[32];
    const char *s = *p;
    size_t n = 0, digits = 0;
    int dots = 0;

    for (; s[n] == '.' || (s[n] >= '0' && s[n] <= '9'); n++) {
        if (s[n] == '.')
            dots++;
        else
            digits++;
    }
    if (digits == 0 || dots > 1 || n >= sizeof(tmp)) return -EINVAL;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    *out = strtod(tmp, NULL);
    *p = s + n;
    return 0;
}

int acr_parse_timespan(const char *s, double *out)
{
    static const struct {
        char unit;
        double mult;
    } units[] = {{'h', 3600.0}, {'m', 60.0}, {'s', 1.0}};
    const char *p = s;
    double total = 0, v;
    size_t next_unit = 0;

    if (!s || !*s) return -EINVAL;
    while (*p) {
        size_t u;
        if (timespan_number(&p, &v) < 0) return -EINVAL;
        if (*p == '\0') {
            /* a bare number: seconds, only as the whole string ("20", "0.5") */
            if (next_unit != 0) return -EINVAL;
            total = v;
            break;
        }
        for (u = next_unit; u < ACR_ARRAY_SIZE(units) && units[u].unit != *p; u++) {
        }
        if (u == ACR_ARRAY_SIZE(units)) return -EINVAL; /* unknown or out-of-order unit */
        total += v * units[u].mult;
        next_unit = u + 1;
        p++;
    }
    /* at most 10^12 s, so that the span in microseconds fits any 64-bit integer */
    if (!isfinite(total) || total > 1e12) return -EINVAL;
    *out = total;
    return 0;
}

int acr_buf_reserve_counted(acr_buf_t *b, size_t extra, uint64_t *grows)
{
    size_t room;
    char *d;

    if (b->len > SIZE_MAX / 2 || extra > SIZE_MAX / 2 - b->len) return -ENOMEM;
    if (b->len + extra < b->cap) return 0; /* the NUL fits too */
    room = b->cap > 1 ? b->cap - 1 : 64;
    while (room < b->len + extra) room *= 2;
    d = realloc(b->data, room + 1);
    if (!d) return -ENOMEM;
    b->data = d;
    b->cap = room + 1;
    if (grows) (*grows)++;
    return 0;
}

int acr_buf_reserve(acr_buf_t *b, size_t extra)
{
    return acr_buf_reserve_counted(b, extra, NULL);
}

int acr_buf_append_counted(acr_buf_t *b, const void *p, size_t n, uint64_t *grows)
{
    int rc = acr_buf_reserve_counted(b, n, grows);
    if (rc < 0) return rc;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int acr_buf_append(acr_buf_t *b, const void *p, size_t n)
{
    return acr_buf_append_counted(b, p, n, NULL);
}

int acr_buf_appendf(acr_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n, rc;

    va_start(ap, fmt);
    n = vsnprintf(b->data ? b->data + b->len : NULL, b->data ? b->cap - b->len : 0, fmt, ap);
    va_end(ap);
    if (n < 0) return -EINVAL;
    if (b->data && (size_t)n < b->cap - b->len) {
        b->len += (size_t)n;
        return 0;
    }
    rc = acr_buf_reserve(b, (size_t)n);
    if (rc < 0) {
        if (b->data) b->data[b->len] = '\0';
        return rc;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int acr_buf_putc(acr_buf_t *b, char c)
{
    return acr_buf_append(b, &c, 1);
}

void acr_buf_reset(acr_buf_t *b)
{
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

void acr_buf_trim(acr_buf_t *b, size_t keep)
{
    if (b->cap > keep) {
        acr_buf_free(b);
    } else {
        acr_buf_reset(b);
    }
}

void acr_buf_free(acr_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int acr_write_file_atomic(const char *path, const void *data, size_t len)
{
    char tmp[4096];
    const char *p = data;
    int fd = -1, rc = 0, n;

    n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof(tmp)) return -ENAMETOOLONG;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -errno;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            rc = -errno;
            goto fail;
        }
        p += w;
        len -= (size_t)w;
    }
    if (fsync(fd) < 0) {
        rc = -errno;
        goto fail;
    }
    if (close(fd) < 0) {
        fd = -1;
        rc = -errno;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        rc = -errno;
        goto fail;
    }
    return 0;
fail:
    if (fd >= 0) close(fd);
    unlink(tmp);
    return rc;
}

char *acr_strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

int acr_cpu_count(void)
{
    cpu_set_t set;
    long n;

    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        int c = CPU_COUNT(&set);
        if (c > 0) return c;
    }
    n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

const char *acr_http_reason(int status)
{
    static const struct {
        int status;
        const char *reason;
    } reasons[] = {
        {100, "Continue"},
        {101, "Switching Protocols"},
        {200, "OK"},
        {201, "Created"},
        {202, "Accepted"},
        {204, "No Content"},
        {206, "Partial Content"},
        {301, "Moved Permanently"},
        {302, "Found"},
        {303, "See Other"},
        {304, "Not Modified"},
        {307, "Temporary Redirect"},
        {308, "Permanent Redirect"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {408, "Request Timeout"},
        {409, "Conflict"},
        {413, "Content Too Large"},
        {415, "Unsupported Media Type"},
        {422, "Unprocessable Content"},
        {429, "Too Many Requests"},
        {431, "Request Header Fields Too Large"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
        {505, "HTTP Version Not Supported"},
    };
    for (size_t i = 0; i < ACR_ARRAY_SIZE(reasons); i++)
        if (reasons[i].status == status) return reasons[i].reason;
    return status < 300 ? "OK" : status < 400 ? "Redirect" : "Error";
}

bool acr_host_is_loopback(const char *host)
{
    if (!host || !*host || strcmp(host, "*") == 0) return false;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res) return false;
    bool all = true;
    for (struct addrinfo *a = res; a && all; a = a->ai_next) {
        if (a->ai_family == AF_INET) {
            const struct sockaddr_in *in = (const struct sockaddr_in *)a->ai_addr;
            all = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
        } else if (a->ai_family == AF_INET6) {
            const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)a->ai_addr;
            all = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
        } else {
            all = false;
        }
    }
    freeaddrinfo(res);
    return all;
}
