/*
 * Small helpers both daemons use: clocks, time spans, a growable byte buffer, container_of.
 * Error convention: 0 or a negative errno.
 */
#ifndef ACR_UTIL_H
#define ACR_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define acr_container_of(ptr, type, member) ((type *)(((char *)(ptr)) - offsetof(type, member)))
#define ACR_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/** Wall clock, epoch seconds with µs resolution. */
double acr_now(void);
/** Monotonic clock in microseconds / seconds. */
uint64_t acr_mono_us(void);
double acr_mono_s(void);

/** The longest timer timeout used (about 31 years): any duration in seconds fits. */
#define ACR_TIMER_MAX_MS 1000000000000ULL
/** @seconds as a libuv timer timeout: milliseconds rounded up; 0 for <= 0 or NaN, at most
 *  ACR_TIMER_MAX_MS. */
uint64_t acr_timer_ms(double seconds);

/**
 * Parses a Locust time span: "20" (seconds), "20s", "3m", "2h", "1h20m", "3h30m10s", also with
 * fractions ("0.5s"). Returns 0 and the seconds in *out, or -EINVAL.
 */
int acr_parse_timespan(const char *s, double *out);

/**
 * The growable byte buffer of the whole code base. Owned memory in .data (NULL until the first
 * append); after every append .data is NUL-terminated (the NUL is not counted in .len). The
 * usable room grows by doubling from 64 bytes (the allocation is room + 1 for the NUL, so a
 * power-of-two payload fits without doubling). Code that sets .len itself (truncation) keeps the
 * contents but not the terminating NUL.
 */
typedef struct acr_buf {
    char *data;
    size_t len, cap; /**< cap: bytes allocated */
} acr_buf_t;

/** Ensures room for @extra more bytes (and the NUL). 0 or -ENOMEM. */
int acr_buf_reserve(acr_buf_t *b, size_t extra);
int acr_buf_append(acr_buf_t *b, const void *p, size_t n);
/** acr_buf_reserve / acr_buf_append that also add 1 to *@grows (may be NULL) at each heap growth:
 *  the worker's HTTP client asserts its allocation budget on that count. */
int acr_buf_reserve_counted(acr_buf_t *b, size_t extra, uint64_t *grows);
int acr_buf_append_counted(acr_buf_t *b, const void *p, size_t n, uint64_t *grows);
int acr_buf_appendf(acr_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int acr_buf_putc(acr_buf_t *b, char c);
void acr_buf_reset(acr_buf_t *b); /**< len = 0, keeps memory */
/** Empties @b and frees its memory when more than @keep bytes are allocated. */
void acr_buf_trim(acr_buf_t *b, size_t keep);
void acr_buf_free(acr_buf_t *b);

/** Writes @len bytes to @path atomically (temp file + rename). Returns 0 or -errno. */
int acr_write_file_atomic(const char *path, const void *data, size_t len);

/** Whether @host (a name, an IPv4 or IPv6 literal) means this machine only: every address it
 *  resolves to is in 127.0.0.0/8 or ::1. "*" and names that do not resolve are not. */
bool acr_host_is_loopback(const char *host);

/** strdup that returns NULL for NULL. */
char *acr_strdup(const char *s);

/** The reason phrase of HTTP status @status ("Not Found"); a generic one ("OK", "Redirect",
 *  "Error") for a code it does not name. */
const char *acr_http_reason(int status);

/** Number of online CPUs (at least 1). */
int acr_cpu_count(void);

#endif
