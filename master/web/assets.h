/*
 * The dashboard's files, embedded in acrida-master at build time (the Makefile generates their
 * table from master/web/assets/ and from uPlot's npm package), so the dashboard and the HTML
 * report need no network. Names are file names without a directory: "index.html", "app.js",
 * "style.css", "uPlot.iife.min.js", "uPlot.min.css".
 */
#ifndef ACR_MASTER_ASSETS_H
#define ACR_MASTER_ASSETS_H

#include <stddef.h>

typedef struct acr_asset {
    const char *name;
    const char *content_type; /**< "text/html; charset=utf-8", "text/javascript", "text/css", ... */
    const unsigned char *data; /**< NUL-terminated after len, for convenience */
    size_t len;
} acr_asset_t;

/** The asset called @name, or NULL. */
const acr_asset_t *acr_asset_find(const char *name);
/** Every asset, @n of them. */
const acr_asset_t *acr_assets(size_t *n);

#endif
