/*
 * libFuzzer driver for the master's HTTP request path (master/web/httpd.c): any byte string fed
 * to a connection, whole or in pieces, must be parsed and answered or refused without crashes,
 * leaks or undefined behaviour, and whatever the connection writes must be HTTP/1.1 responses.
 * The first input byte picks Basic auth on or off and the piece size; the handler decodes form
 * fields from the query and the body and answers with extra headers, JSON errors or HEAD-able
 * bodies. The same bytes also go through acr_httpd_form_get directly.
 */
#include "master/web/httpd_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void handler(const acr_httpd_req_t *req, acr_httpd_resp_t *resp, void *ud)
{
    char *a = acr_httpd_form_get(req->query, strlen(req->query), "a");
    char *b = acr_httpd_form_get(req->body, req->body_len, "user_count");
    (void)ud;
    if (a && a[0] == 'e') {
        acr_httpd_json_error(resp, 400, a);
    } else {
        resp->content_type = req->content_type[0] ? "application/json" : NULL;
        acr_buf_appendf(&resp->headers, "X-Path-Len: %zu\r\n", strlen(req->path));
        acr_buf_appendf(&resp->body, "%s %s %s %s", req->method, req->path, a ? a : "-",
                        b ? b : "-");
        if (a && a[0] == 's') resp->status = 204;
    }
    free(a);
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    acr_httpd_config_t cfg = {.handler = handler};
    acr_httpd_t *s;
    acr__httpd_conn_t *c;
    size_t piece, off;
    acr_buf_t *out;

    if (size == 0) return 0;
    if (data[0] & 1) cfg.auth = "user:pass";
    piece = (data[0] >> 1) ? (data[0] >> 1) : size; /* 1..127 bytes, or all at once */
    data++;
    size--;

    free(acr_httpd_form_get((const char *)data, size, "a"));
    s = acr__httpd_new_detached(&cfg);
    if (!s) return 0;
    c = acr__httpd_conn_detached(s);
    if (!c) {
        acr_httpd_free(s);
        return 0;
    }
    for (off = 0; off < size; off += piece) {
        size_t n = size - off < piece ? size - off : piece;
        if (!acr__httpd_feed(c, (const char *)data + off, n)) break;
    }
    out = acr__httpd_sink(c);
    if (out->len > 0 && (out->len < 12 || memcmp(out->data, "HTTP/1.1 ", 9) != 0)) abort();
    acr__httpd_conn_free_detached(c);
    acr_httpd_free(s);
    return 0;
}
