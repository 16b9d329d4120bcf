/*
 * Option parsing shared by the daemons: command line, ACRIDA_<NAME> environment variables and a
 * config file (`--config FILE`, else ./acrida.conf when it exists) with `key = value` lines using
 * the long option name and `#` comments. Precedence: command line > environment > config file >
 * default (the defaults are whatever the caller stored in the struct before parsing).
 *
 * The table-driven parser writes into a caller struct at each definition's offset. One table may
 * serve several programs (roles): each definition names the roles it belongs to, and a program
 * parses with its own role, so a shared config file and the environment carry every program's
 * options while each command line accepts only its own.
 * Error convention: acr_opts_parse returns 0, ACR_OPTS_EXIT (help/version printed: exit 0) or
 * -EINVAL with a message naming the option in @err (the caller exits 2).
 */
#ifndef ACR_OPTS_H
#define ACR_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef enum {
    ACR_OPT_FLAG,     /**< bool; "--x" sets true; env/config accept true/false/1/0/yes/no/on/off */
    ACR_OPT_STR,      /**< char * (strdup'ed; the caller frees with acr_opts_free) */
    ACR_OPT_INT,      /**< int; decimal, range-checked by min/max */
    ACR_OPT_DOUBLE,   /**< double; range-checked by min/max */
    ACR_OPT_TIMESPAN, /**< double seconds via acr_parse_timespan */
    ACR_OPT_STRLIST,  /**< char ** NULL-terminated; takes all following non-option words on the
                           command line, whitespace/comma separated in env/config */
    ACR_OPT_STRMULTI, /**< char ** NULL-terminated; repeatable: each occurrence takes one value
                           and adds its items (--check 'p95 < 300ms' --check rps>10); items
                           are separated by ';' in any source, spaces kept */
    ACR_OPT_COUNT,    /**< int; a decimal number or "auto" (the number of online CPUs),
                           range-checked by min/max */
} acr_opt_kind_t;

typedef struct acr_opt_def {
    const char *name;    /**< long name without dashes: "spawn-rate" */
    char short_name;     /**< 'r', or 0 */
    const char *aliases; /**< comma separated extra long names: "hatch-rate", or NULL */
    acr_opt_kind_t kind;
    size_t offset;   /**< offsetof(struct, field) */
    double min, max; /**< bounds for INT/DOUBLE/TIMESPAN when min < max */
    const char *metavar;
    const char *help;
    /** Bit set of the roles (acr_opts_spec_t.role) that take it; 0 = every role. One name may
     *  have a row per role (e.g. a different help text), all storing into the same field. */
    unsigned roles;
} acr_opt_def_t;

#define ACR_OPTS_EXIT 1

typedef struct acr_opts_spec {
    const char *prog;       /**< "acrida-master" */
    const char *usage;      /**< one line after "usage: prog " */
    const char *env_prefix; /**< "ACRIDA_" */
    const acr_opt_def_t *defs;
    size_t ndefs;
    /** The role bit of this program; 0 = every definition applies. A definition of other roles
     *  is refused on the command line ("option --x does not apply to <prog>"), skipped in the
     *  config file and the environment, and left out of the help. */
    unsigned role;
    /** Optional: do not read ./acrida.conf by default (only --config / ACRIDA_CONFIG files). */
    bool no_default_config;
} acr_opts_spec_t;

/**
 * Parses into @out. Handles --config, -h/--help and -V/--version itself (printing to stdout);
 * the short names 'h' and 'V' are reserved. Positional arguments are an error. @err receives e.g.
 * "unknown option '--foo'", "invalid value 'abc' for --users: expected an integer",
 * "unknown key 'foo' in acrida.conf:3", "option --users needs a value".
 *
 * Call once per @out. On entry the STR/STRLIST fields may hold borrowed defaults (literals);
 * whatever it returns, they are owned copies afterwards: free them with acr_opts_free.
 * Config files also accept `[section]` lines: `[acrida]`/`[common]`/`[*]` apply to every
 * program, `[acrida-worker]` or `[worker]` only to that @prog. Empty ACRIDA_* variables count
 * as unset; ACRIDA_* variables that match no option are ignored. ACRIDA_CONFIG names the config
 * file when --config is absent.
 */
int acr_opts_parse(const acr_opts_spec_t *spec, void *out, int argc, char **argv, char *err,
                   size_t errlen);

/** Frees the STR and STRLIST fields of every row in @out (other roles' rows included). */
void acr_opts_free(const acr_opts_spec_t *spec, void *out);

/** Prints the help text built from the definitions. */
void acr_opts_help(const acr_opts_spec_t *spec, FILE *f);

#endif
