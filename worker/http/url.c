/*
 * The HTTP client's URLs: absolute URL parsing (http/https, host or [IPv6], port, path+query)
 * and redirect Location resolution. Buffers grow through acr_buf_append_counted, so the growth
 * events count in the client's allocation budget (acr__http_stats_t.buf_grows).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "worker/http/http_internal.h"

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

int acr__http_url_resolve(const char *base, const acr__http_url_t *u, const char *loc,
                          size_t loc_len, acr_buf_t *out, uint64_t *grows)
{
    acr_buf_reset(out);
    while (loc_len && (loc[0] == ' ' || loc[0] == '\t')) loc++, loc_len--;
    while (loc_len && (loc[loc_len - 1] == ' ' || loc[loc_len - 1] == '\t')) loc_len--;
    if (loc_len == 0 || loc_len > 8192) return -EINVAL;
    for (size_t k = 0; k < loc_len; k++)
        if ((unsigned char)loc[k] < 0x20 || loc[k] == 0x7f) return -EINVAL;
    if ((loc_len > 7 && strncasecmp(loc, "http://", 7) == 0) ||
        (loc_len > 8 && strncasecmp(loc, "https://", 8) == 0))
        return acr_buf_append_counted(out, loc, loc_len, grows);
    const char *scheme = u->tls ? "https:" : "http:";
    if (loc_len >= 2 && loc[0] == '/' && loc[1] == '/') {
        int rc = acr_buf_append_counted(out, scheme, strlen(scheme), grows);
        return rc < 0 ? rc : acr_buf_append_counted(out, loc, loc_len, grows);
    }
    /* same origin: scheme://authority */
    int rc = acr_buf_append_counted(out, base, u->path_off, grows);
    if (rc < 0) return rc;
    if (loc[0] == '/') return acr_buf_append_counted(out, loc, loc_len, grows);
    const char *path = base + u->path_off;
    size_t plen = u->path_len;
    size_t q = 0;
    while (q < plen && path[q] != '?') q++;
    if (loc[0] == '?') {
        rc = q ? acr_buf_append_counted(out, path, q, grows)
               : acr_buf_append_counted(out, "/", 1, grows);
        return rc < 0 ? rc : acr_buf_append_counted(out, loc, loc_len, grows);
    }
    /* relative path: the base path's directory + loc */
    size_t dir = q;
    while (dir > 0 && path[dir - 1] != '/') dir--;
    rc = dir ? acr_buf_append_counted(out, path, dir, grows)
             : acr_buf_append_counted(out, "/", 1, grows);
    return rc < 0 ? rc : acr_buf_append_counted(out, loc, loc_len, grows);
}
