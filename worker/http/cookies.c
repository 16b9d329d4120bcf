/*
 * The per-session cookie jar of the HTTP client: stores Set-Cookie values (RFC 6265 basics:
 * host-only unless Domain, Domain must cover the request host, Path default = the request
 * path's directory, Max-Age over Expires, expired cookies removed, Secure only over https) and
 * renders the matching ones as one Cookie header. At most ACR__HTTP_COOKIE_MAX cookies per jar (the
 * oldest is dropped); values beyond ACR__HTTP_COOKIE_MAX_LEN are ignored. Dates are parsed with
 * RFC 6265's lenient cookie-date algorithm.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "worker/http/http_internal.h"

struct acr__http_cookie {
    acr__http_cookie_t *next;
    double expires; /* epoch seconds; 0 = session cookie */
    bool host_only, secure;
    uint16_t cap; /* bytes of data[] */
    uint16_t name_len, value_len, domain_len, path_len;
    char data[]; /* name, value, domain, path (not NUL-terminated) */
};

#define C_NAME(k) ((k)->data)
#define C_VALUE(k) ((k)->data + (k)->name_len)
#define C_DOMAIN(k) (C_VALUE(k) + (k)->value_len)
#define C_PATH(k) (C_DOMAIN(k) + (k)->domain_len)

static void trim_ows(const char **p, size_t *n)
{
    while (*n && (**p == ' ' || **p == '\t')) (*p)++, (*n)--;
    while (*n && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t')) (*n)--;
}

static bool ieq(const char *a, size_t an, const char *b)
{
    return strlen(b) == an && strncasecmp(a, b, an) == 0;
}

/* ---- dates (RFC 6265 section 5.1.1) ---- */

static bool delim(unsigned char ch)
{
    return ch == 0x09 || (ch >= 0x20 && ch <= 0x2f) || (ch >= 0x3b && ch <= 0x40) ||
           (ch >= 0x5b && ch <= 0x60) || (ch >= 0x7b && ch <= 0x7e);
}

static int digits(const char *t, size_t n, size_t min, size_t max, int *out)
{
    size_t i = 0;
    int v = 0;
    while (i < n && i < max && t[i] >= '0' && t[i] <= '9') v = v * 10 + (t[i++] - '0');
    if (i < min) return -1;
    *out = v;
    return (int)i;
}

int acr__http_cookie_date(const char *s, size_t n, double *out)
{
    static const char months[] = "janfebmaraprmayjunjulaugsepoctnovdec";
    int hh = -1, mi = 0, ss = 0, day = -1, mon = -1, year = -1;
    size_t i = 0;
    while (i < n) {
        while (i < n && delim((unsigned char)s[i])) i++;
        size_t st = i;
        while (i < n && !delim((unsigned char)s[i])) i++;
        const char *t = s + st;
        size_t tl = i - st;
        if (tl == 0) continue;
        int a, b, c, k;
        if (hh < 0 && (k = digits(t, tl, 1, 2, &a)) > 0 && (size_t)k < tl && t[k] == ':') {
            int k2 = digits(t + k + 1, tl - (size_t)k - 1, 1, 2, &b);
            if (k2 > 0 && (size_t)(k + 1 + k2) < tl && t[k + 1 + k2] == ':' &&
                digits(t + k + 2 + k2, tl - (size_t)(k + 2 + k2), 1, 2, &c) > 0) {
                hh = a, mi = b, ss = c;
                continue;
            }
        }
        if (day < 0 && digits(t, tl, 1, 2, &a) > 0 && (tl <= 2 || !isdigit((unsigned char)t[2]))) {
            day = a;
            continue;
        }
        if (mon < 0 && tl >= 3) {
            for (int m = 0; m < 12; m++)
                if (strncasecmp(t, months + 3 * m, 3) == 0) mon = m;
            if (mon >= 0) continue;
        }
        if (year < 0 && digits(t, tl, 2, 4, &a) > 0) {
            year = a;
            continue;
        }
    }
    if (hh < 0 || day < 0 || mon < 0 || year < 0) return -1;
    if (year >= 70 && year <= 99) year += 1900;
    if (year < 70) year += 2000;
    if (day < 1 || day > 31 || year < 1601 || hh > 23 || mi > 59 || ss > 59) return -1;
    struct tm tm = {0};
    tm.tm_year = year - 1900;
    tm.tm_mon = mon;
    tm.tm_mday = day;
    tm.tm_hour = hh;
    tm.tm_min = mi;
    tm.tm_sec = ss;
    *out = (double)timegm(&tm);
    return 0;
}

/* ---- jar ---- */

static bool domain_match(const char *host, size_t hl, const char *dom, size_t dl)
{
    if (hl == dl) return strncasecmp(host, dom, hl) == 0;
    return hl > dl && host[hl - dl - 1] == '.' && strncasecmp(host + hl - dl, dom, dl) == 0;
}

static bool path_match(const char *req, size_t rl, const char *cp, size_t cl)
{
    if (rl < cl || memcmp(req, cp, cl) != 0) return false;
    return rl == cl || cp[cl - 1] == '/' || req[cl] == '/';
}

static void unlink_cookie(acr__http_jar_t *j, acr__http_cookie_t **pp)
{
    acr__http_cookie_t *k = *pp;
    *pp = k->next;
    free(k);
    j->count--;
}

void acr__http_jar_set(acr__http_jar_t *j, const char *host, size_t host_len, const char *path,
                       size_t path_len, const char *v, size_t vlen, double now)
{
    if (vlen > ACR__HTTP_COOKIE_MAX_LEN) return;
    const char *end = v + vlen;
    const char *semi = memchr(v, ';', vlen);
    const char *pair_end = semi ? semi : end;
    const char *eq = memchr(v, '=', (size_t)(pair_end - v));
    if (!eq) return;
    const char *name = v, *value = eq + 1;
    size_t name_len = (size_t)(eq - v), value_len = (size_t)(pair_end - value);
    trim_ows(&name, &name_len);
    trim_ows(&value, &value_len);
    if (name_len == 0) return;
    for (size_t i = 0; i < name_len; i++)
        if ((unsigned char)name[i] <= 0x20 || name[i] == 0x7f) return;
    for (size_t i = 0; i < value_len; i++)
        if ((unsigned char)value[i] < 0x20 || value[i] == 0x7f) return;

    const char *domain = host, *cpath = NULL;
    size_t domain_len = host_len, cpath_len = 0;
    bool host_only = true, secure = false, have_max_age = false;
    double expires = 0;
    const char *p = semi ? semi + 1 : end;
    while (p < end) {
        const char *ae = memchr(p, ';', (size_t)(end - p));
        if (!ae) ae = end;
        const char *an = p, *av = NULL;
        size_t anl = (size_t)(ae - p), avl = 0;
        const char *aeq = memchr(p, '=', anl);
        if (aeq) {
            anl = (size_t)(aeq - p);
            av = aeq + 1;
            avl = (size_t)(ae - av);
            trim_ows(&av, &avl);
        }
        trim_ows(&an, &anl);
        if (ieq(an, anl, "domain") && avl > 0) {
            if (av[0] == '.') av++, avl--;
            if (avl == 0 || !domain_match(host, host_len, av, avl)) return;
            domain = av;
            domain_len = avl;
            host_only = false;
        } else if (ieq(an, anl, "path") && avl > 0 && av[0] == '/') {
            cpath = av;
            cpath_len = avl;
        } else if (ieq(an, anl, "max-age") && avl > 0) {
            char *ep;
            char tmp[32];
            if (avl >= sizeof tmp) avl = sizeof tmp - 1;
            memcpy(tmp, av, avl);
            tmp[avl] = '\0';
            long long secs = strtoll(tmp, &ep, 10);
            if (ep != tmp && *ep == '\0') {
                have_max_age = true;
                expires = secs <= 0 ? -1 : now + (double)secs;
            }
        } else if (ieq(an, anl, "expires") && avl > 0 && !have_max_age) {
            double t;
            if (acr__http_cookie_date(av, avl, &t) == 0) expires = t <= now ? -1 : t;
        } else if (ieq(an, anl, "secure")) {
            secure = true;
        }
        p = ae + 1;
    }
    if (!cpath) {
        size_t q = 0;
        while (q < path_len && path[q] != '?') q++;
        size_t d = q;
        while (d > 0 && path[d - 1] != '/') d--;
        cpath = path;
        cpath_len = d > 1 ? d - 1 : 1;
        if (q == 0 || path[0] != '/') cpath = "/", cpath_len = 1;
    }
    if (domain_len > 255 || cpath_len > 1024) return;

    size_t need = name_len + value_len + domain_len + cpath_len;
    acr__http_cookie_t *k = NULL;
    for (acr__http_cookie_t **pp = &j->head; *pp; pp = &(*pp)->next) {
        acr__http_cookie_t *old = *pp;
        if (old->name_len == name_len && memcmp(C_NAME(old), name, name_len) == 0 &&
            old->domain_len == domain_len && strncasecmp(C_DOMAIN(old), domain, domain_len) == 0 &&
            old->path_len == cpath_len && memcmp(C_PATH(old), cpath, cpath_len) == 0) {
            if (expires >= 0 && need <= old->cap) {
                k = old; /* refreshed in place: no allocation when a server re-sends it */
                break;
            }
            unlink_cookie(j, pp);
            break;
        }
    }
    if (expires < 0) return;
    if (!k) {
        if (j->count >= ACR__HTTP_COOKIE_MAX) unlink_cookie(j, &j->head);
        k = malloc(sizeof *k + need);
        if (!k) return;
        k->next = NULL;
        k->cap = (uint16_t)need;
        acr__http_cookie_t **tail = &j->head;
        while (*tail) tail = &(*tail)->next;
        *tail = k;
        j->count++;
    }
    k->expires = expires;
    k->host_only = host_only;
    k->secure = secure;
    k->name_len = (uint16_t)name_len;
    k->value_len = (uint16_t)value_len;
    k->domain_len = (uint16_t)domain_len;
    k->path_len = (uint16_t)cpath_len;
    memcpy(C_NAME(k), name, name_len);
    memcpy(C_VALUE(k), value, value_len);
    for (size_t i = 0; i < domain_len; i++)
        C_DOMAIN(k)[i] = (char)tolower((unsigned char)domain[i]);
    memcpy(C_PATH(k), cpath, cpath_len);
}

int acr__http_jar_header(acr__http_jar_t *j, const char *host, size_t host_len, const char *path,
                         size_t path_len, bool tls, double now, acr_buf_t *out, uint64_t *grows)
{
    size_t q = 0;
    while (q < path_len && path[q] != '?') q++;
    if (q == 0) path = "/", q = 1;
    bool first = true;
    int rc = 0;
    acr__http_cookie_t **pp = &j->head;
    while (*pp) {
        acr__http_cookie_t *k = *pp;
        if (k->expires != 0 && k->expires <= now) {
            unlink_cookie(j, pp);
            continue;
        }
        pp = &k->next;
        bool dom = k->host_only ? (k->domain_len == host_len &&
                                   strncasecmp(C_DOMAIN(k), host, host_len) == 0)
                                : domain_match(host, host_len, C_DOMAIN(k), k->domain_len);
        if (!dom || !path_match(path, q, C_PATH(k), k->path_len) || (k->secure && !tls)) continue;
        if ((rc = acr_buf_append_counted(out, first ? "Cookie: " : "; ", first ? 8 : 2, grows)) <
                0 ||
            (rc = acr_buf_append_counted(out, C_NAME(k), k->name_len, grows)) < 0 ||
            (rc = acr_buf_append_counted(out, "=", 1, grows)) < 0 ||
            (rc = acr_buf_append_counted(out, C_VALUE(k), k->value_len, grows)) < 0)
            return rc;
        first = false;
    }
    if (!first) rc = acr_buf_append_counted(out, "\r\n", 2, grows);
    return rc;
}

void acr__http_jar_free(acr__http_jar_t *j)
{
    while (j->head) unlink_cookie(j, &j->head);
}
