/*
 * Logging: one logger per process (configured once in main(), like stderr itself), lines
 * "YYYY-mm-ddTHH:MM:SS.mmmZ LEVEL component: message" to stderr and, when set, a log file.
 *
 * Every record is exactly one line of text: text from outside (a worker, the master, an HTTP
 * client, a target's response, a scenario) is passed through acr_log_escape() / ACR_ESC() at the
 * call site, and acr_log() itself escapes whatever control byte or invalid UTF-8 is left in the
 * formatted message, so a peer can neither forge a log line nor drive the operator's terminal
 * (docs/security.md, "Logs and the console").
 */
#ifndef ACR_LOG_H
#define ACR_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

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

/* The arguments (and the ACR_ESC() copies among them) are evaluated only when the level is on. */
#define ACR_LOG_AT(level, ...)                                                                     \
    do {                                                                                           \
        if (acr_log_enabled(level)) acr_log(level, __VA_ARGS__);                                   \
    } while (0)
#define ACR_DEBUG(...) ACR_LOG_AT(ACR_LOG_DEBUG, __VA_ARGS__)
#define ACR_INFO(...) ACR_LOG_AT(ACR_LOG_INFO, __VA_ARGS__)
#define ACR_WARN(...) ACR_LOG_AT(ACR_LOG_WARNING, __VA_ARGS__)
#define ACR_ERROR(...) ACR_LOG_AT(ACR_LOG_ERROR, __VA_ARGS__)

/* ---- escaping text from outside ---- */

/** Escapes @src[0..@len) into @dst (@n bytes, always NUL-terminated when @n > 0) as one line of
 *  plain text that cannot drive a terminal:
 *    - printable ASCII and valid UTF-8 are kept, a backslash is doubled;
 *    - newline, carriage return and tab become \n \r \t, other C0 controls and DEL \xHH (ESC:
 * \x1b);
 *    - C1 controls (U+0080..U+009F), the line and paragraph separators U+2028/U+2029 and the
 *      bidirectional overrides and isolates (U+202A..U+202E, U+2066..U+2069) become \uXXXX;
 *    - each byte of invalid UTF-8 (stray continuation, overlong form, surrogate, beyond U+10FFFF,
 *      cut short) becomes \xHH.
 *  When the result does not fit, it is cut between two escapes and ends with "...". @src NULL is
 *  "(null)". Returns @dst. Pure: safe from any thread. */
const char *acr_log_escape(char *dst, size_t n, const char *src, size_t len);
/** acr_log_escape() of the NUL-terminated @s (NULL: "(null)"). */
const char *acr_log_escape_str(char *dst, size_t n, const char *s);
/** Writes @s (NUL-terminated, NULL: "(null)") escaped as acr_log_escape() does, never cut, to @f.
 *  Returns the number of bytes written (for column padding). */
size_t acr_log_escape_file(FILE *f, const char *s);
/** The same for @len bytes at @src. */
size_t acr_log_escape_filen(FILE *f, const char *src, size_t len);

#define ACR_ESC_MAX 256       /**< bytes of an ACR_ESC() copy (node ids, names, types) */
#define ACR_ESC_LONG_MAX 1536 /**< bytes of an ACR_ESC_LONG() copy (error texts, tracebacks) */

/** An escaped copy of the NUL-terminated @s in a buffer of the enclosing block (a compound
 *  literal), for an argument of ACR_INFO() & co: ACR_WARN("from %s", ACR_ESC(peer_id)). */
#define ACR_ESC(s) acr_log_escape_str((char[ACR_ESC_MAX]){0}, ACR_ESC_MAX, (s))
/** The same for @len bytes at @p (not NUL-terminated). */
#define ACR_ESCN(p, len) acr_log_escape((char[ACR_ESC_MAX]){0}, ACR_ESC_MAX, (p), (len))
/** ACR_ESC() with room for an error message or a traceback. */
#define ACR_ESC_LONG(s) acr_log_escape_str((char[ACR_ESC_LONG_MAX]){0}, ACR_ESC_LONG_MAX, (s))

#endif
