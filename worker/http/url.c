/*
 * The HTTP client's byte handling: the growable buffer that counts its growth events (the
 * allocation budget of issue #3 is asserted on that counter), absolute URL parsing
 * (http/https, host or [IPv6], port, path+query) and redirect Location resolution.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "worker/http/http_internal.h"

int acr__buf_reserve(acr__buf_t *b, size_t extra, uint64_t *grows)
{
    if (extra <= b->cap - b->len) return 0;
    if (extra > SIZE_MAX / 2 - b->len) return -ENOMEM;
    size_t need = b->len + extra;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) return -ENOMEM;
    b->data = p;
    b->cap = cap;
    if (grows) (*grows)++;
    return 0;
}

int acr__buf_append(acr__buf_t *b, const void *p, size_t n, uint64_t *grows)
{
    if (n == 0) return 0;
    int rc = acr__buf_reserve(b, n, grows);
    if (rc < 0) return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void acr__buf_trim(acr__buf_t *b, size_t keep)
{
    b->len = 0;
    if (b->cap > keep) acr__buf_free(b);
}

void acr__buf_free(acr__buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static int lower(int ch)
{
    return (ch >= 'A' && ch <= 'Z') ? ch + 32 : ch;
}

/* Host characters we accept: reg-name letters, digits, '-', '.', '_' (no percent-encoding). */
static bool host_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '.' || ch == '_';
}

int acr__http_url_parse(char *s, acr__http_url_t *u)
{
    memset(u, 0, sizeof *u);
    size_t i;
    if (strncasecmp(s, "http://", 7) == 0) {
        i = 7;
    } else if (strncasecmp(s, "https://", 8) == 0) {
        u->tls = true;
        i = 8;
    } else {
        return -EINVAL;
    }
    for (size_t k = 0; k < i; k++) s[k] = (char)lower((unsigned char)s[k]);
    u->port = u->tls ? 443 : 80;
    u->auth_off = i;
    size_t end = i;
    while (s[end] && s[end] != '/' && s[end] != '?' && s[end] != '#') end++;
    u->auth_len = end - i;
    /* authority: host, [v6], optional :port; no userinfo */
    size_t h = i, hend;
    if (s[h] == '[') {
        const char *close = memchr(s + h, ']', end - h);
        if (!close) return -EINVAL;
        u->ipv6 = true;
        u->host_off = h + 1;
        u->host_len = (size_t)(close - s) - u->host_off;
        for (size_t k = u->host_off; k < u->host_off + u->host_len; k++) {
            char ch = s[k];
            if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
                  (ch >= 'A' && ch <= 'F') || ch == ':' || ch == '.'))
                return -EINVAL;
        }
        hend = (size_t)(close - s) + 1;
    } else {
        u->host_off = h;
        hend = h;
        while (hend < end && s[hend] != ':') {
            if (!host_char(s[hend])) return -EINVAL;
            hend++;
        }
        u->host_len = hend - h;
    }
    if (u->host_len == 0 || u->host_len > 253) return -EINVAL;
    for (size_t k = u->host_off; k < u->host_off + u->host_len; k++)
        s[k] = (char)lower((unsigned char)s[k]);
    if (hend < end) {
        if (s[hend] != ':') return -EINVAL;
        size_t p = hend + 1;
        if (p == end) return -EINVAL;
        unsigned long port = 0;
        for (; p < end; p++) {
            if (s[p] < '0' || s[p] > '9' || p - hend > 5) return -EINVAL;
            port = port * 10 + (unsigned long)(s[p] - '0');
        }
        if (port == 0 || port > 65535) return -EINVAL;
        u->port = (uint16_t)port;
    }
    u->path_off = end;
    size_t pe = end;
    while (s[pe] && s[pe] != '#') pe++;
    u->path_len = pe - end;
    return 0;
}

/* Appends @n bytes of @p, then a NUL that is not counted in len. */
static int put(acr__buf_t *out, const char *p, size_t n, uint64_t *grows)
{
    int rc = acr__buf_reserve(out, n + 1, grows);
    if (rc < 0) return rc;
    memcpy(out->data + out->len, p, n);
    out->len += n;
    out->data[out->len] = '\0';
    return 0;
}

int acr__http_url_resolve(const char *base, const acr__http_url_t *u, const char *loc,
                          size_t loc_len, acr__buf_t *out, uint64_t *grows)
{
    out->len = 0;
    while (loc_len && (loc[0] == ' ' || loc[0] == '\t')) loc++, loc_len--;
    while (loc_len && (loc[loc_len - 1] == ' ' || loc[loc_len - 1] == '\t')) loc_len--;
    if (loc_len == 0 || loc_len > 8192) return -EINVAL;
    for (size_t k = 0; k < loc_len; k++)
        if ((unsigned char)loc[k] < 0x20 || loc[k] == 0x7f) return -EINVAL;
    if ((loc_len > 7 && strncasecmp(loc, "http://", 7) == 0) ||
        (loc_len > 8 && strncasecmp(loc, "https://", 8) == 0))
        return put(out, loc, loc_len, grows);
    const char *scheme = u->tls ? "https:" : "http:";
    if (loc_len >= 2 && loc[0] == '/' && loc[1] == '/') {
        int rc = put(out, scheme, strlen(scheme), grows);
        return rc < 0 ? rc : put(out, loc, loc_len, grows);
    }
    /* same origin: scheme://authority */
    int rc = put(out, base, u->path_off, grows);
    if (rc < 0) return rc;
    if (loc[0] == '/') return put(out, loc, loc_len, grows);
    const char *path = base + u->path_off;
    size_t plen = u->path_len;
    size_t q = 0;
    while (q < plen && path[q] != '?') q++;
    if (loc[0] == '?') {
        rc = q ? put(out, path, q, grows) : put(out, "/", 1, grows);
        return rc < 0 ? rc : put(out, loc, loc_len, grows);
    }
    /* relative path: the base path's directory + loc */
    size_t dir = q;
    while (dir > 0 && path[dir - 1] != '/') dir--;
    rc = dir ? put(out, path, dir, grows) : put(out, "/", 1, grows);
    return rc < 0 ? rc : put(out, loc, loc_len, grows);
}
