/*
 * The process logger (common/log.h): level filter, component name, stderr plus an optional
 * appended log file, and the escaping of text from outside. One logger per process, configured
 * once in main(); not thread-safe (every acrida process logs from its single event-loop thread).
 */
#include "common/log.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

typedef struct acr_logger {
    acr_log_level_t level;
    char component[64];
    FILE *file; /* owned; NULL = stderr only */
} acr_logger_t;

/* The one per-process logger, like stderr itself (see log.h). */
static acr_logger_t logger = {ACR_LOG_INFO, "acrida", NULL};

static const char *const level_names[] = {"DEBUG", "INFO", "WARNING", "ERROR"};

int acr_log_parse_level(const char *s, acr_log_level_t *out)
{
    static const struct {
        const char *name;
        acr_log_level_t level;
    } names[] = {
        {"DEBUG", ACR_LOG_DEBUG},  {"INFO", ACR_LOG_INFO},   {"WARNING", ACR_LOG_WARNING},
        {"WARN", ACR_LOG_WARNING}, {"ERROR", ACR_LOG_ERROR}, {"CRITICAL", ACR_LOG_ERROR},
    };
    if (!s) return -EINVAL;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(s, names[i].name) == 0) {
            *out = names[i].level;
            return 0;
        }
    }
    return -EINVAL;
}

int acr_log_setup(acr_log_level_t level, const char *component, const char *logfile)
{
    FILE *f = NULL;

    if (logfile && *logfile) {
        f = fopen(logfile, "a");
        if (!f) return -errno;
        setvbuf(f, NULL, _IOLBF, 0);
    }
    acr_log_close();
    logger.level = level;
    snprintf(logger.component, sizeof(logger.component), "%s", component ? component : "acrida");
    logger.file = f;
    return 0;
}

void acr_log_close(void)
{
    if (logger.file) fclose(logger.file);
    logger.file = NULL;
}

int acr_log_enabled(acr_log_level_t level)
{
    return level >= logger.level;
}

/* ---- escaping ---- */

/* Code points kept out of a line even in valid UTF-8: C1 controls (U+009B is CSI), the line and
 * paragraph separators, the bidirectional overrides and isolates (text shown in another order). */
static bool escaped_cp(uint32_t cp)
{
    return (cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 ||
           (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

/* The length (2 to 4) of the valid UTF-8 sequence at @p (@left bytes) and its code point, or 0. */
static size_t utf8_seq(const unsigned char *p, size_t left, uint32_t *cp)
{
    size_t need;
    uint32_t v, min;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        need = 2, v = p[0] & 0x1fu, min = 0x80;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        need = 3, v = p[0] & 0x0fu, min = 0x800;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        need = 4, v = p[0] & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    if (left < need) return 0;
    for (size_t k = 1; k < need; k++) {
        if ((p[k] & 0xc0) != 0x80) return 0;
        v = v << 6 | (p[k] & 0x3fu);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
    *cp = v;
    return need;
}

/* One unit of @p (@left > 0 bytes) escaped into @out (at most 7 bytes, not terminated): the
 * number of input bytes it takes; *olen gets the output's. @backslash: a backslash is doubled (the
 * logger's own pass keeps it, so text escaped at the call site is not escaped twice). */
static size_t esc_unit(const unsigned char *p, size_t left, bool backslash, char out[8],
                       size_t *olen)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char ch = p[0];
    uint32_t cp = 0;
    size_t used = 1;

    if (ch >= 0x20 && ch < 0x7f) {
        if (ch == '\\' && backslash) {
            memcpy(out, "\\\\", 2);
            *olen = 2;
        } else {
            out[0] = (char)ch;
            *olen = 1;
        }
        return 1;
    }
    if (ch == '\n' || ch == '\r' || ch == '\t') {
        out[0] = '\\';
        out[1] = ch == '\n' ? 'n' : ch == '\r' ? 'r' : 't';
        *olen = 2;
        return 1;
    }
    if (ch >= 0x80 && (used = utf8_seq(p, left, &cp)) > 0) {
        if (!escaped_cp(cp)) {
            memcpy(out, p, used);
            *olen = used;
        } else {
            *olen = (size_t)snprintf(out, 8, "\\u%04x", (unsigned)cp);
        }
        return used;
    }
    /* a C0 control, DEL, or a byte that does not start valid UTF-8 */
    out[0] = '\\';
    out[1] = 'x';
    out[2] = hex[ch >> 4];
    out[3] = hex[ch & 15];
    *olen = 4;
    return 1;
}

/* The escaped length of @p[0..@len), or a value above @limit as soon as it passes it. */
static size_t escaped_len(const unsigned char *p, size_t len, bool backslash, size_t limit)
{
    size_t total = 0, olen;
    char u[8];
    for (size_t i = 0; i < len && total <= limit; total += olen)
        i += esc_unit(p + i, len - i, backslash, u, &olen);
    return total;
}

static const char *escape_into(char *dst, size_t n, const char *src, size_t len, bool backslash)
{
    const unsigned char *p = (const unsigned char *)(src ? src : "(null)");
    size_t o = 0, i = 0, olen;
    char u[8];

    if (n == 0) return "";
    if (!src) len = 6;
    while (i < len) {
        size_t used = esc_unit(p + i, len - i, backslash, u, &olen);
        /* room for this unit and "..." after it, or for the whole rest */
        if (o + olen + 4 > n && escaped_len(p + i, len - i, backslash, n - 1 - o) > n - 1 - o) {
            size_t k = n - 1 - o < 3 ? n - 1 - o : 3;
            memcpy(dst + o, "...", k);
            o += k;
            break;
        }
        memcpy(dst + o, u, olen);
        o += olen;
        i += used;
    }
    dst[o] = '\0';
    return dst;
}

const char *acr_log_escape(char *dst, size_t n, const char *src, size_t len)
{
    return escape_into(dst, n, src, len, true);
}

const char *acr_log_escape_str(char *dst, size_t n, const char *s)
{
    return escape_into(dst, n, s, s ? strlen(s) : 0, true);
}

size_t acr_log_escape_filen(FILE *f, const char *src, size_t len)
{
    const unsigned char *p = (const unsigned char *)(src ? src : "(null)");
    size_t total = 0, olen;
    char u[8];
    if (!src) len = 6;
    for (size_t i = 0; i < len; total += olen) {
        i += esc_unit(p + i, len - i, true, u, &olen);
        fwrite(u, 1, olen, f);
    }
    return total;
}

size_t acr_log_escape_file(FILE *f, const char *s)
{
    return acr_log_escape_filen(f, s, s ? strlen(s) : 0);
}

/* ---- the logger ---- */

void acr_log(acr_log_level_t level, const char *fmt, ...)
{
    char line[4096], msg[4096];
    struct timeval tv;
    struct tm tm;
    va_list ap;
    size_t n;
    int m;

    if (level < logger.level) return;
    if ((unsigned)level > ACR_LOG_ERROR) level = ACR_LOG_ERROR;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    m = snprintf(line + n, sizeof(line) - n, ".%03dZ %s %s: ", (int)(tv.tv_usec / 1000),
                 level_names[level], logger.component);
    if (m > 0) n += (size_t)m;
    if (n > sizeof(line) - 2) n = sizeof(line) - 2;
    va_start(ap, fmt);
    m = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    size_t mlen = m < 0 ? 0 : (size_t)m < sizeof(msg) ? (size_t)m : sizeof(msg) - 1;
    while (mlen > 0 && msg[mlen - 1] == '\n') mlen--;
    /* whatever control byte or invalid UTF-8 a call site let through is escaped here: a record is
     * one line (room is kept for its '\n') */
    escape_into(line + n, sizeof(line) - 1 - n, msg, mlen, false);
    n += strlen(line + n);
    line[n++] = '\n';
    line[n] = '\0';
    fwrite(line, 1, n, stderr);
    if (logger.file) fwrite(line, 1, n, logger.file);
}
