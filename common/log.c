/*
 * The process logger (common/log.h): level filter, component name, stderr plus an optional
 * appended log file. One logger per process, configured once in main(); not thread-safe (every
 * acrida process logs from its single event-loop thread).
 */
#include "common/log.h"

#include <errno.h>
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

void acr_log(acr_log_level_t level, const char *fmt, ...)
{
    char line[4096];
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
    if (n >= sizeof(line)) n = sizeof(line) - 1;
    va_start(ap, fmt);
    m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    if (m > 0) n += (size_t)m;
    if (n > sizeof(line) - 2) n = sizeof(line) - 2; /* truncated: keep room for '\n' */
    while (n > 0 && line[n - 1] == '\n') n--;
    line[n++] = '\n';
    line[n] = '\0';
    fwrite(line, 1, n, stderr);
    if (logger.file) fwrite(line, 1, n, logger.file);
}
