/*
 * The strict CSV reader (common/csv.h): one pass over the input with a small state machine per
 * field; fields are collected into a growable array of strings, the first record becoming the
 * column names.
 */
#include "common/csv.h"

#include "common/util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
    const char *p, *end;
    const char *name;
    size_t line; /**< 1-based line of p */
    char *err;
    size_t errlen;
    acr_buf_t field;
    char **cells; /**< header and records, flat */
    size_t ncells, capcells;
    size_t ncols;      /**< 0 until the header is read */
    size_t rec_fields; /**< fields of the record being read */
    size_t rec_line;   /**< where the record being read started */
} parser_t;

static int fail(parser_t *ps, size_t line, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(parser_t *ps, size_t line, int rc, const char *fmt, ...)
{
    if (!ps->errlen) return rc;
    int n = snprintf(ps->err, ps->errlen, "%s:%zu: ", ps->name, line);
    if (n >= 0 && (size_t)n < ps->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static int field_byte(parser_t *ps, char ch)
{
    if (ch == '\0') return fail(ps, ps->line, -EINVAL, "NUL byte in the data");
    if (ps->field.len >= ACR_CSV_MAX_FIELD)
        return fail(ps, ps->line, -EFBIG, "field longer than %u bytes", ACR_CSV_MAX_FIELD);
    return acr_buf_append(&ps->field, &ch, 1) < 0 ? -ENOMEM : 0;
}

/* Ends the current field: appends it as a cell. */
static int end_field(parser_t *ps)
{
    if (ps->ncols ? ps->rec_fields >= ps->ncols : ps->rec_fields >= ACR_CSV_MAX_COLS) {
        if (ps->ncols)
            return fail(ps, ps->rec_line, -EINVAL, "record has more fields than the header's %zu",
                        ps->ncols);
        return fail(ps, ps->rec_line, -EFBIG, "more than %d columns", ACR_CSV_MAX_COLS);
    }
    if (ps->ncells == ps->capcells) {
        size_t nc = ps->capcells ? ps->capcells * 2 : 64;
        char **c = realloc(ps->cells, nc * sizeof(*c));
        if (!c) return -ENOMEM;
        ps->cells = c;
        ps->capcells = nc;
    }
    char *s = malloc(ps->field.len + 1);
    if (!s) return -ENOMEM;
    if (ps->field.len) memcpy(s, ps->field.data, ps->field.len);
    s[ps->field.len] = '\0';
    ps->cells[ps->ncells++] = s;
    ps->rec_fields++;
    ps->field.len = 0;
    return 0;
}

/* Ends the current record: checks it against the header (or makes it the header). */
static int end_record(parser_t *ps)
{
    if (!ps->ncols) {
        ps->ncols = ps->rec_fields;
        for (size_t i = 0; i < ps->ncols; i++) {
            if (!ps->cells[i][0])
                return fail(ps, ps->rec_line, -EINVAL, "column %zu of the header has no name",
                            i + 1);
            for (size_t j = 0; j < i; j++)
                if (strcmp(ps->cells[i], ps->cells[j]) == 0)
                    return fail(ps, ps->rec_line, -EINVAL, "column name '%s' appears twice",
                                ps->cells[i]);
        }
    } else if (ps->rec_fields != ps->ncols) {
        return fail(ps, ps->rec_line, -EINVAL, "record has %zu field%s, the header has %zu",
                    ps->rec_fields, ps->rec_fields == 1 ? "" : "s", ps->ncols);
    } else if (ps->ncells / ps->ncols - 1 > ACR_CSV_MAX_ROWS) {
        return fail(ps, ps->rec_line, -EFBIG, "more than %d records", ACR_CSV_MAX_ROWS);
    }
    ps->rec_fields = 0;
    return 0;
}

/* A line end at ps->p ('\n' or "\r\n"): consumes it and returns 1; a bare CR fails; else 0. */
static int line_end(parser_t *ps)
{
    if (*ps->p == '\n') {
        ps->p++;
        ps->line++;
        return 1;
    }
    if (*ps->p != '\r') return 0;
    if (ps->p + 1 < ps->end && ps->p[1] == '\n') {
        ps->p += 2;
        ps->line++;
        return 1;
    }
    return fail(ps, ps->line, -EINVAL, "carriage return not followed by a line feed");
}

/* A quoted field from its opening quote; leaves p on what follows the closing quote. */
static int quoted(parser_t *ps)
{
    size_t opened = ps->line;
    ps->p++;
    for (;;) {
        if (ps->p >= ps->end)
            return fail(ps, opened, -EINVAL, "quoted field not closed before the end of the file");
        char ch = *ps->p;
        if (ch == '"') {
            if (ps->p + 1 < ps->end && ps->p[1] == '"') {
                int rc = field_byte(ps, '"');
                if (rc < 0) return rc;
                ps->p += 2;
                continue;
            }
            ps->p++;
            if (ps->p < ps->end && *ps->p != ',' && *ps->p != '\n' && *ps->p != '\r')
                return fail(ps, ps->line, -EINVAL, "text after the closing quote of a field");
            return 0;
        }
        if (ch == '\n') ps->line++;
        int rc = field_byte(ps, ch);
        if (rc < 0) return rc;
        ps->p++;
    }
}

static int parse(parser_t *ps)
{
    int rc;
    if (ps->end - ps->p >= 3 && memcmp(ps->p, "\xEF\xBB\xBF", 3) == 0) ps->p += 3;
    while (ps->p < ps->end) {
        /* at the start of a record */
        if ((rc = line_end(ps)) != 0) { /* an empty line */
            if (rc < 0) return rc;
            continue;
        }
        ps->rec_line = ps->line;
        for (;;) { /* one field per turn */
            if (ps->p < ps->end && *ps->p == '"') {
                if ((rc = quoted(ps)) < 0) return rc;
            } else {
                while (ps->p < ps->end && *ps->p != ',' && *ps->p != '\n' && *ps->p != '\r') {
                    if (*ps->p == '"')
                        return fail(ps, ps->line, -EINVAL,
                                    "quote inside an unquoted field (quote the whole field and "
                                    "double the quote)");
                    if ((rc = field_byte(ps, *ps->p)) < 0) return rc;
                    ps->p++;
                }
            }
            if ((rc = end_field(ps)) < 0) return rc;
            if (ps->p < ps->end && *ps->p == ',') {
                ps->p++;
                continue;
            }
            if (ps->p < ps->end && (rc = line_end(ps)) < 0) return rc;
            break;
        }
        if ((rc = end_record(ps)) < 0) return rc;
    }
    if (!ps->ncols) return fail(ps, ps->line, -EINVAL, "no header row (the file is empty)");
    return 0;
}

int acr_csv_parse(const char *buf, size_t len, const char *name, acr_csv_t *out, char *err,
                  size_t errlen)
{
    parser_t ps = {.p = buf,
                   .end = buf + len,
                   .name = name ? name : "csv",
                   .line = 1,
                   .err = err,
                   .errlen = errlen};
    memset(out, 0, sizeof(*out));
    if (errlen) err[0] = '\0';
    int rc = len > ACR_CSV_MAX_BYTES
                 ? fail(&ps, 1, -EFBIG, "larger than %u bytes", ACR_CSV_MAX_BYTES)
                 : parse(&ps);
    acr_buf_free(&ps.field);
    if (rc == -ENOMEM && errlen) snprintf(err, errlen, "%s: out of memory", ps.name);
    if (rc < 0) {
        for (size_t i = 0; i < ps.ncells; i++) free(ps.cells[i]);
        free(ps.cells);
        return rc;
    }
    /* the header's cells become the names; the records' cells follow them */
    out->ncols = ps.ncols;
    out->nrows = ps.ncells / ps.ncols - 1;
    out->cols = ps.cells;
    out->cells = ps.cells + ps.ncols;
    return 0;
}

int acr_csv_read_file(const char *path, acr_csv_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(e));
        return -e;
    }
    acr_buf_t b = {0};
    int rc = 0;
    for (;;) {
        if (acr_buf_reserve(&b, 65536) < 0) {
            rc = -ENOMEM;
            snprintf(err, errlen, "%s: out of memory", path);
            break;
        }
        size_t n = fread(b.data + b.len, 1, 65536, f);
        b.len += n;
        if (b.len > ACR_CSV_MAX_BYTES) {
            rc = -EFBIG;
            snprintf(err, errlen, "%s: larger than %u bytes", path, ACR_CSV_MAX_BYTES);
            break;
        }
        if (n < 65536) {
            if (ferror(f)) {
                rc = -EIO;
                snprintf(err, errlen, "%s: read error", path);
            }
            break;
        }
    }
    fclose(f);
    if (rc == 0) rc = acr_csv_parse(b.data ? b.data : "", b.len, path, out, err, errlen);
    acr_buf_free(&b);
    return rc;
}

void acr_csv_free(acr_csv_t *t)
{
    if (!t || !t->cols) return;
    size_t n = t->ncols * (t->nrows + 1);
    for (size_t i = 0; i < n; i++) free(t->cols[i]);
    free(t->cols);
    memset(t, 0, sizeof(*t));
}
