/*
 * A strict CSV reader for the scenario's data pools (docs/scenario-api.md, "Pools"): RFC 4180
 * with the first record as the header (the field names).
 *
 * Rules: fields separated by ','; records end with CRLF or LF (the last one may have no line
 * end); a field is quoted when it starts with '"', may then hold ',', '"' doubled as '""', CR and
 * LF, and must be followed by ',', a line end or the end of the input. A UTF-8 byte-order mark at
 * the start is skipped. Empty lines (outside quotes) are ignored. Refused, each with the line where
 * the problem is: a quote inside an unquoted field, text after a closing quote, a quoted field
 * left open at the end of the input, a bare CR, a NUL byte, a record whose field count differs
 * from the header's, an empty or duplicate column name, no header at all, and input beyond the
 * limits below.
 *
 * Error convention: 0 or a negative errno (-EINVAL for malformed input, -EFBIG past a limit,
 * -ENOMEM, or the errno of reading the file), the reason in a caller buffer as
 * "<name>:<line>: <message>" (e.g. "accounts.csv:4: record has 2 fields, the header has 3").
 */
#ifndef ACR_COMMON_CSV_H
#define ACR_COMMON_CSV_H

#include <stddef.h>

#define ACR_CSV_MAX_BYTES (64u << 20) /**< whole input */
#define ACR_CSV_MAX_FIELD (1u << 20)  /**< bytes of one field */
#define ACR_CSV_MAX_COLS 1024
#define ACR_CSV_MAX_ROWS 1000000

/** A parsed file: @ncols column names and @nrows records of @ncols fields each. Every string is
 *  NUL-terminated (fields never contain NUL) and owned by the table (acr_csv_free). */
typedef struct acr_csv {
    size_t ncols, nrows;
    char **cols;  /**< column names */
    char **cells; /**< row r, column c at cells[r * ncols + c] */
} acr_csv_t;

/** Parses @len bytes at @buf; @name prefixes errors. On failure *@out holds nothing to free. */
int acr_csv_parse(const char *buf, size_t len, const char *name, acr_csv_t *out, char *err,
                  size_t errlen);

/** Reads and parses the file @path (at most ACR_CSV_MAX_BYTES); errors name @path. */
int acr_csv_read_file(const char *path, acr_csv_t *out, char *err, size_t errlen);

/** Frees what @t owns and zeroes it. NULL is fine. */
void acr_csv_free(acr_csv_t *t);

#endif
