/*
 * The master's scenario bundle (master/bundle.h).
 */
#include "master/bundle.h"

#include "common/cli.h"
#include "common/scenario.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "12.3 MiB" for @n bytes. */
static const char *human(size_t n, char *buf, size_t len)
{
    if (n >= (1u << 20))
        snprintf(buf, len, "%.1f MiB", (double)n / (1u << 20));
    else if (n >= 1024)
        snprintf(buf, len, "%.1f KiB", (double)n / 1024);
    else
        snprintf(buf, len, "%zu bytes", n);
    return buf;
}

/* Appends the largest files of @b to @err (after what is there). */
static void append_largest(const acr_bundle_t *b, char *err, size_t errlen)
{
    const acr_bundle_file_t *big[3];
    size_t n = acr_bundle_largest(b, big, 3);
    size_t k = strlen(err);
    for (size_t i = 0; i < n && k < errlen; i++) {
        char h[32];
        k += (size_t)snprintf(err + k, errlen - k, "%s%s (%s)",
                              i ? ", " : "; largest files: ", big[i]->path,
                              human(big[i]->len, h, sizeof h));
    }
}

static int too_big(const acr_bundle_t *b, size_t max, const char *why, char *err, size_t errlen)
{
    char h[32], hm[32];
    if (why)
        snprintf(err, errlen, "the scenario bundle is over --max-bundle-size %zu bytes (%s): %s",
                 max, human(max, hm, sizeof hm), why);
    else
        snprintf(err, errlen,
                 "the scenario bundle is %zu bytes (%s), over --max-bundle-size %zu bytes (%s)",
                 b->blob_len, human(b->blob_len, h, sizeof h), max, human(max, hm, sizeof hm));
    append_largest(b, err, errlen);
    size_t k = strlen(err);
    if (k < errlen)
        snprintf(err + k, errlen - k,
                 " (ship less with acrida.files or --scenario-dir, or raise --max-bundle-size)");
    return -EFBIG;
}

int acr_master_bundle_build(struct lua_State *L, const acr_cli_opts_t *o, acr_master_bundle_t *mb,
                            char *err, size_t errlen)
{
    memset(mb, 0, sizeof(*mb));
    size_t max = o->max_bundle_size > 0 ? (size_t)o->max_bundle_size : ACR_CLI_BUNDLE_MAX;
    char why[1024];
    int rc = acr_scenario_bundle_build(L, o->scenario, o->scenario_dir, max, &mb->b, &mb->main, why,
                                       sizeof why);
    if (rc == -EFBIG) {
        rc = too_big(&mb->b, max, why, err, errlen);
    } else if (rc < 0) {
        snprintf(err, errlen, "cannot build the scenario bundle: %s", why);
    } else if (mb->b.blob_len > max) {
        rc = too_big(&mb->b, max, NULL, err, errlen);
    }
    if (rc == 0 && o->scenario_dir) { /* the hash of the default rules, for -f workers */
        acr_bundle_t def;
        char *main = NULL;
        rc = acr_scenario_bundle_build(L, o->scenario, NULL, ACR_BUNDLE_SIZE_MAX, &def, &main, why,
                                       sizeof why);
        if (rc == 0) memcpy(mb->default_sha256, def.sha256, sizeof def.sha256);
        if (rc < 0) snprintf(err, errlen, "cannot build the scenario bundle: %s", why);
        acr_bundle_free(&def);
        free(main);
    } else if (rc == 0) {
        memcpy(mb->default_sha256, mb->b.sha256, sizeof mb->b.sha256);
    }
    if (rc < 0) acr_master_bundle_free(mb);
    return rc;
}

void acr_master_bundle_free(acr_master_bundle_t *mb)
{
    if (!mb) return;
    acr_bundle_free(&mb->b);
    free(mb->main);
    mb->main = NULL;
}
