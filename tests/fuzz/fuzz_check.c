/*
 * libFuzzer driver for --check expressions (master/check.c): the input, split at newlines, is a
 * list of expressions. Any input must give 0 or -EINVAL with a message, never a crash or a leak;
 * what parses is evaluated against an empty and a one-entry stats set.
 */
#include "master/check.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    const char *exprs[17];
    size_t n = 0;
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    for (char *p = text; p && n < 16; n++) {
        exprs[n] = p;
        p = strchr(p, '\n');
        if (p) *p++ = '\0';
    }
    exprs[n] = NULL;
    char err[512];
    acr_check_t *c = NULL;
    if (acr_check_parse(exprs, &c, err, sizeof err) == 0 && c) {
        acr_stats_t *s = acr_stats_new(1000.0);
        FILE *devnull = fopen("/dev/null", "w");
        if (s && devnull) {
            acr_check_eval(c, s, 10.0, devnull);
            acr_stats_log(s, acr_stats_get(s, "GET", "/a:b"), true, 1234, 10, NULL, 1001.0);
            acr_check_eval(c, s, 10.0, devnull);
        }
        if (devnull) fclose(devnull);
        acr_stats_free(s);
        acr_check_free(c);
    }
    free(text);
    return 0;
}
