/*
 * libFuzzer driver for the option parser's config-file path: the input is the content of a
 * config file (through a memfd), parsed with a table that has every option kind. Any input must
 * give 0 or -EINVAL with a message, never a crash or a leak.
 */
#define _GNU_SOURCE
#include "common/opts.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct fuzz_opts {
    bool flag;
    char *str;
    int num;
    double real, span;
    char **list;
} fuzz_opts_t;

#define O(f) offsetof(fuzz_opts_t, f)
static const acr_opt_def_t defs[] = {
    {.name = "flag", .short_name = 'x', .kind = ACR_OPT_FLAG, .offset = O(flag), .help = "f"},
    {.name = "str", .aliases = "alias-str", .kind = ACR_OPT_STR, .offset = O(str), .help = "s"},
    {.name = "num",
     .short_name = 'n',
     .kind = ACR_OPT_INT,
     .offset = O(num),
     .min = 0,
     .max = 100,
     .help = "n"},
    {.name = "real", .kind = ACR_OPT_DOUBLE, .offset = O(real), .help = "r"},
    {.name = "span", .kind = ACR_OPT_TIMESPAN, .offset = O(span), .help = "t"},
    {.name = "list", .short_name = 'T', .kind = ACR_OPT_STRLIST, .offset = O(list), .help = "l"},
};
static const acr_opts_spec_t spec = {
    .prog = "fuzz",
    .usage = "",
    .env_prefix = "ACRIDA_FUZZ_",
    .defs = defs,
    .ndefs = sizeof(defs) / sizeof(defs[0]),
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("acrida.conf", 0);
    if (fd < 0) return 0;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64], err[512];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    char *argv[] = {"fuzz", "--config", path, NULL};
    fuzz_opts_t o = {0};
    acr_opts_parse(&spec, &o, 3, argv, err, sizeof err);
    acr_opts_free(&spec, &o);
    close(fd);
    return 0;
}
