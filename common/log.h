/*
 * Logging: one logger per process (configured once in main(), like stderr itself), lines
 * "YYYY-mm-ddTHH:MM:SS.mmmZ LEVEL component: message" to stderr and, when set, a log file.
 */
#ifndef ACR_LOG_H
#define ACR_LOG_H

#include <stdarg.h>

typedef enum { ACR_LOG_DEBUG = 0, ACR_LOG_INFO, ACR_LOG_WARNING, ACR_LOG_ERROR } acr_log_level_t;

/** Parses "DEBUG", "INFO", "WARNING" (or "WARN"), "ERROR", "CRITICAL" (any case).
 *  Returns 0 or -EINVAL. */
int acr_log_parse_level(const char *s, acr_log_level_t *out);

/** Sets the level, the component name printed on every line ("master", "worker[1]"), and the
 *  optional log file (appended; NULL = stderr only). Returns 0 or a negative errno for the file. */
int acr_log_setup(acr_log_level_t level, const char *component, const char *logfile);
void acr_log_close(void);
int acr_log_enabled(acr_log_level_t level);

void acr_log(acr_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define ACR_DEBUG(...) acr_log(ACR_LOG_DEBUG, __VA_ARGS__)
#define ACR_INFO(...) acr_log(ACR_LOG_INFO, __VA_ARGS__)
#define ACR_WARN(...) acr_log(ACR_LOG_WARNING, __VA_ARGS__)
#define ACR_ERROR(...) acr_log(ACR_LOG_ERROR, __VA_ARGS__)

#endif
