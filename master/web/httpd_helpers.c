/*
 * Helpers for the master's HTTP handlers (httpd.h): form fields and JSON error answers.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "master/report.h"
#include "master/web/httpd.h"

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* The next decoded byte of a form component of @n bytes at *@i < @n ('+' is a space, %XX a byte;
 * a bad escape is kept as it is, and so is %00, which a C string cannot hold). */
static char form_next(const char *s, size_t n, size_t *i)
{
    char ch = s[(*i)++];
    if (ch == '+') return ' ';
    if (ch == '%' && n - *i >= 2) {
        int hi = hexval((unsigned char)s[*i]), lo = hexval((unsigned char)s[*i + 1]);
        if (hi >= 0 && lo >= 0 && (hi | lo) != 0) {
            *i += 2;
            return (char)(hi * 16 + lo);
        }
    }
    return ch;
}

/* Whether the form component @k (@n bytes) decodes to @name. */
static bool form_key_is(const char *k, size_t n, const char *name)
{
    size_t i = 0;
    while (i < n) {
        if (*name == '\0' || form_next(k, n, &i) != *name) return false;
        name++;
    }
    return *name == '\0';
}

char *acr_httpd_form_get(const char *form, size_t len, const char *name)
{
    size_t pos = 0;

    if (!form || !name) return NULL;
    while (pos < len) {
        size_t end = pos, eq = pos;
        while (end < len && form[end] != '&') end++;
        while (eq < end && form[eq] != '=') eq++;
        if (end > pos && form_key_is(form + pos, eq - pos, name)) {
            size_t vs = eq < end ? eq + 1 : end, vn = end - vs, o = 0, i = 0;
            char *v = malloc(vn + 1);
            if (!v) return NULL;
            while (i < vn) v[o++] = form_next(form + vs, vn, &i);
            v[o] = '\0';
            return v; /* the first value wins */
        }
        pos = end + 1;
    }
    return NULL;
}

void acr_httpd_json_error(acr_httpd_resp_t *resp, int status, const char *msg)
{
    json_t *doc;
    char *dump = NULL;

    resp->status = status;
    resp->content_type = "application/json";
    acr_buf_reset(&resp->body);
    doc = json_pack("{s:b, s:s}", "success", 0, "message", msg ? msg : "");
    if (!doc) /* not UTF-8 */
        doc = json_pack("{s:b, s:s}", "success", 0, "message", "invalid message");
    if (doc) dump = json_dumps(doc, JSON_SORT_KEYS | JSON_INDENT(2) | JSON_ENSURE_ASCII);
    json_decref(doc);
    /* written like the routes' JSON (and Flask's): lower-case \uXXXX, a final newline */
    if (!dump || acr_report_pythonic_json(&resp->body, dump) < 0) {
        static const char fallback[] = "{\"message\": \"internal error\", \"success\": false}\n";
        acr_buf_reset(&resp->body);
        acr_buf_append(&resp->body, fallback, sizeof(fallback) - 1);
    }
    free(dump);
}
