/*
 * Table-driven option parsing (common/opts.h): command line, ACRIDA_<NAME> environment variables,
 * config file. The command line is scanned first into a list of (definition, raw value) items
 * pointing into argv; then the sources are applied from weakest to strongest (config file,
 * environment, command line), each later value replacing the earlier one.
 *
 * Config file syntax: `key = value` lines (key = long option name or alias, dashes or underscores,
 * optional leading "--"), `#` or `;` comment lines, blank lines, inline comments after " #",
 * values optionally in matching quotes. `[section]` lines scope the following keys: `[acrida]`,
 * `[common]` and `[*]` apply to every program, `[<prog>]` (e.g. `[acrida-worker]`, or just
 * `[worker]`) to that program only; keys in other programs' sections are skipped unread. A
 * section no program knows (`[mastr]`) is an error, so a typo cannot silently drop its keys.
 */
#include "common/opts.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/util.h"

#ifndef ACR_VERSION
#define ACR_VERSION "0.1.0"
#endif

#define DEFAULT_CONFIG "acrida.conf"

typedef struct cmd_item {
    const acr_opt_def_t *def;
    const char *val; /* raw value; NULL = bare flag or a word list */
    char **words;    /* STRLIST words taken from argv */
    int nwords;
} cmd_item_t;

/* Does @def belong to the program parsing with @spec? */
static bool applies(const acr_opts_spec_t *spec, const acr_opt_def_t *def)
{
    return spec->role == 0 || def->roles == 0 || (def->roles & spec->role) != 0;
}

static void *field_of(const acr_opt_def_t *def, void *out)
{
    return (char *)out + def->offset;
}

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || errlen == 0) return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void list_free(char **l)
{
    if (!l) return;
    for (char **p = l; *p; p++) free(*p);
    free(l);
}

/* Returns a NULL-terminated owned copy of @n words, or NULL on ENOMEM. */
static char **list_dup(char *const *words, size_t n)
{
    char **l = calloc(n + 1, sizeof(*l));
    if (!l) return NULL;
    for (size_t i = 0; i < n; i++) {
        l[i] = strdup(words[i]);
        if (!l[i]) {
            list_free(l);
            return NULL;
        }
    }
    return l;
}

/* Splits "a, b c" or "[a, b]" into an owned list. Quotes around words are stripped. */
/* Splits @s at ';' into trimmed, non-empty items (ACR_OPT_STRMULTI). NULL on ENOMEM. */
static char **list_split_semi(const char *s)
{
    char **l = calloc(1, sizeof(*l)), **nl;
    size_t n = 0;

    if (!l) return NULL;
    while (*s) {
        const char *b, *e;
        while (*s == ';' || isspace((unsigned char)*s)) s++;
        if (!*s) break;
        b = s;
        while (*s && *s != ';') s++;
        e = s;
        while (e > b && isspace((unsigned char)e[-1])) e--;
        nl = realloc(l, (n + 2) * sizeof(*l));
        if (!nl) goto fail;
        l = nl;
        l[n] = strndup(b, (size_t)(e - b));
        if (!l[n]) goto fail;
        l[++n] = NULL;
    }
    return l;
fail:
    l[n] = NULL;
    list_free(l);
    return NULL;
}

static char **list_split(const char *s)
{
    char **l = calloc(1, sizeof(*l)), **nl;
    size_t n = 0;

    if (!l) return NULL;
    while (*s) {
        const char *b;
        size_t len;
        while (*s && (isspace((unsigned char)*s) || *s == ',' || *s == '[' || *s == ']')) s++;
        if (!*s) break;
        b = s;
        while (*s && !isspace((unsigned char)*s) && *s != ',' && *s != ']') s++;
        len = (size_t)(s - b);
        if (len >= 2 && (b[0] == '"' || b[0] == '\'') && b[len - 1] == b[0]) {
            b++;
            len -= 2;
        }
        nl = realloc(l, (n + 2) * sizeof(*l));
        if (!nl) goto fail;
        l = nl;
        l[n] = strndup(b, len);
        if (!l[n]) goto fail;
        l[++n] = NULL;
    }
    return l;
fail:
    l[n] = NULL;
    list_free(l);
    return NULL;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "1", "yes", "on"};
    static const char *const no[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < ACR_ARRAY_SIZE(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -EINVAL;
}

static int check_range(const acr_opt_def_t *def, double v, const char *raw, const char *where,
                       char *err, size_t errlen)
{
    if (!(def->min < def->max)) return 0;
    if (v < def->min) {
        seterr(err, errlen, "invalid value '%s' for --%s%s: must be >= %g", raw, def->name, where,
               def->min);
        return -EINVAL;
    }
    if (v > def->max) {
        seterr(err, errlen, "invalid value '%s' for --%s%s: must be <= %g", raw, def->name, where,
               def->max);
        return -EINVAL;
    }
    return 0;
}

/*
 * Converts @val for @def and stores it in @out. @val NULL means a bare flag (or, for STRLIST,
 * @words/@nwords from argv). @where is "" or " in <source>" for messages.
 */
static int apply_value(const acr_opt_def_t *def, void *out, const char *val, char **words,
                       int nwords, const char *where, char *err, size_t errlen)
{
    void *f = field_of(def, out);
    char *end;

    switch (def->kind) {
    case ACR_OPT_FLAG: {
        bool b = true;
        if (val && parse_bool(val, &b) < 0) {
            seterr(err, errlen, "invalid value '%s' for --%s%s: expected true or false", val,
                   def->name, where);
            return -EINVAL;
        }
        *(bool *)f = b;
        return 0;
    }
    case ACR_OPT_STR: {
        char *s = strdup(val ? val : "");
        if (!s) goto nomem;
        free(*(char **)f);
        *(char **)f = s;
        return 0;
    }
    case ACR_OPT_COUNT:
    case ACR_OPT_INT: {
        long v;
        errno = 0;
        if (def->kind == ACR_OPT_COUNT && strcmp(val, "auto") == 0) {
            v = acr_cpu_count();
        } else {
            v = strtol(val, &end, 10);
            if (end == val || *end || isspace((unsigned char)*val)) {
                seterr(err, errlen, "invalid value '%s' for --%s%s: expected %s", val, def->name,
                       where, def->kind == ACR_OPT_COUNT ? "a number or 'auto'" : "an integer");
                return -EINVAL;
            }
        }
        if (errno == ERANGE || v < INT32_MIN || v > INT32_MAX) {
            seterr(err, errlen, "invalid value '%s' for --%s%s: out of range", val, def->name,
                   where);
            return -EINVAL;
        }
        if (check_range(def, (double)v, val, where, err, errlen) < 0) return -EINVAL;
        *(int *)f = (int)v;
        return 0;
    }
    case ACR_OPT_DOUBLE: {
        double v;
        v = strtod(val, &end);
        if (end == val || *end || isspace((unsigned char)*val) || !isfinite(v)) {
            seterr(err, errlen, "invalid value '%s' for --%s%s: expected a number", val, def->name,
                   where);
            return -EINVAL;
        }
        if (check_range(def, v, val, where, err, errlen) < 0) return -EINVAL;
        *(double *)f = v;
        return 0;
    }
    case ACR_OPT_TIMESPAN: {
        double v;
        if (acr_parse_timespan(val, &v) < 0) {
            seterr(err, errlen,
                   "invalid value '%s' for --%s%s: expected a time span like 20, 20s, 3m, 2h, "
                   "1h20m, 3h30m10s",
                   val, def->name, where);
            return -EINVAL;
        }
        if (check_range(def, v, val, where, err, errlen) < 0) return -EINVAL;
        *(double *)f = v;
        return 0;
    }
    case ACR_OPT_STRLIST:
    case ACR_OPT_STRMULTI: {
        char **l = def->kind == ACR_OPT_STRMULTI ? list_split_semi(val ? val : "")
                   : val                         ? list_split(val)
                                                 : list_dup(words, (size_t)nwords);
        if (!l) goto nomem;
        list_free(*(char ***)f);
        *(char ***)f = l;
        return 0;
    }
    }
    seterr(err, errlen, "option --%s has an unknown kind", def->name);
    return -EINVAL;
nomem:
    seterr(err, errlen, "out of memory for --%s", def->name);
    return -ENOMEM;
}

/* Compares a spelled name (length @len) with @want; '_' matches '-' when @loose. */
static bool name_eq(const char *name, size_t len, const char *want, size_t wlen, bool loose)
{
    if (len != wlen) return false;
    for (size_t i = 0; i < len; i++) {
        char a = name[i], b = want[i];
        if (loose && a == '_') a = '-';
        if (a != b) return false;
    }
    return true;
}

static bool has_name(const acr_opt_def_t *d, const char *name, size_t len, bool loose)
{
    const char *a = d->aliases;
    if (name_eq(name, len, d->name, strlen(d->name), loose)) return true;
    while (a && *a) {
        size_t alen = strcspn(a, ",");
        if (name_eq(name, len, a, alen, loose)) return true;
        a += alen;
        if (*a == ',') a++;
    }
    return false;
}

/* The row named @name: this program's row first (a name may have one row per role), else another
 * program's (which the caller refuses or skips). */
static const acr_opt_def_t *find_long(const acr_opts_spec_t *spec, const char *name, size_t len,
                                      bool loose)
{
    const acr_opt_def_t *other = NULL;
    for (size_t i = 0; i < spec->ndefs; i++) {
        const acr_opt_def_t *d = &spec->defs[i];
        if (!has_name(d, name, len, loose)) continue;
        if (applies(spec, d)) return d;
        if (!other) other = d;
    }
    return other;
}

/* Like find_long: this program's row first (two roles may use one letter), else another's. */
static const acr_opt_def_t *find_short(const acr_opts_spec_t *spec, char c)
{
    const acr_opt_def_t *other = NULL;
    for (size_t i = 0; i < spec->ndefs; i++) {
        if (spec->defs[i].short_name != c) continue;
        if (applies(spec, &spec->defs[i])) return &spec->defs[i];
        if (!other) other = &spec->defs[i];
    }
    return other;
}

static int not_here(const acr_opts_spec_t *spec, const acr_opt_def_t *def, char *err, size_t errlen)
{
    seterr(err, errlen, "option --%s does not apply to %s", def->name,
           spec->prog ? spec->prog : "this program");
    return -EINVAL;
}

/* Can @a be the value of the preceding option? Options can't; negative numbers and "-" can. */
static bool is_value_word(const char *a)
{
    if (a[0] != '-' || a[1] == '\0') return true;
    return isdigit((unsigned char)a[1]) || (a[1] == '.' && isdigit((unsigned char)a[2]));
}

/* Takes the items of a STRLIST from argv[*i + 1...] (words not starting with '-'). */
static void take_words(int argc, char **argv, int *i, cmd_item_t *it)
{
    it->words = &argv[*i + 1];
    it->nwords = 0;
    while (*i + 1 < argc && argv[*i + 1][0] != '-') {
        (*i)++;
        it->nwords++;
    }
}

typedef enum { SCAN_OK = 0, SCAN_HELP, SCAN_VERSION } scan_result_t;

/*
 * Pass 1: the command line into @items (at most argc), nothing applied yet. Sets *config_path
 * (pointer into argv) when --config is given. Returns a scan_result_t or -EINVAL.
 */
static int scan_cmdline(const acr_opts_spec_t *spec, int argc, char **argv, cmd_item_t *items,
                        size_t *nitems, const char **config_path, char *err, size_t errlen)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        cmd_item_t it = {0};

        if (strcmp(a, "--") == 0) {
            if (i + 1 < argc) {
                seterr(err, errlen, "unexpected argument '%s'", argv[i + 1]);
                return -EINVAL;
            }
            break;
        }
        if (a[0] == '-' && a[1] == '-') {
            const char *name = a + 2, *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);

            if (name_eq(name, len, "help", 4, false)) return SCAN_HELP;
            if (name_eq(name, len, "version", 7, false)) return SCAN_VERSION;
            if (name_eq(name, len, "config", 6, false)) {
                if (eq) {
                    *config_path = eq + 1;
                } else if (i + 1 < argc && is_value_word(argv[i + 1])) {
                    *config_path = argv[++i];
                } else {
                    seterr(err, errlen, "option --config needs a value");
                    return -EINVAL;
                }
                continue;
            }
            it.def = find_long(spec, name, len, false);
            if (!it.def) {
                seterr(err, errlen, "unknown option '--%.*s'", (int)len, name);
                return -EINVAL;
            }
            if (!applies(spec, it.def)) return not_here(spec, it.def, err, errlen);
            if (eq) {
                it.val = eq + 1;
            } else if (it.def->kind == ACR_OPT_STRLIST) {
                take_words(argc, argv, &i, &it);
            } else if (it.def->kind != ACR_OPT_FLAG) {
                if (i + 1 >= argc || !is_value_word(argv[i + 1])) {
                    seterr(err, errlen, "option --%s needs a value", it.def->name);
                    return -EINVAL;
                }
                it.val = argv[++i];
            }
            items[(*nitems)++] = it;
            continue;
        }
        if (a[0] == '-' && a[1] != '\0') {
            /* one or more short options: flags may be bundled, the last may carry a value */
            for (int j = 1; a[j]; j++) {
                cmd_item_t s = {0};
                const char *rest = a + j + 1;
                if (a[j] == 'h') return SCAN_HELP;
                if (a[j] == 'V') return SCAN_VERSION;
                s.def = find_short(spec, a[j]);
                if (!s.def) {
                    seterr(err, errlen, "unknown option '-%c'", a[j]);
                    return -EINVAL;
                }
                if (!applies(spec, s.def)) return not_here(spec, s.def, err, errlen);
                if (s.def->kind == ACR_OPT_FLAG) {
                    items[(*nitems)++] = s;
                    continue;
                }
                if (*rest == '=') rest++;
                if (*rest) {
                    s.val = rest;
                } else if (s.def->kind == ACR_OPT_STRLIST) {
                    take_words(argc, argv, &i, &s);
                } else if (i + 1 < argc && is_value_word(argv[i + 1])) {
                    s.val = argv[++i];
                } else {
                    seterr(err, errlen, "option --%s needs a value", s.def->name);
                    return -EINVAL;
                }
                items[(*nitems)++] = s;
                break;
            }
            continue;
        }
        seterr(err, errlen, "unexpected argument '%s'", a);
        return -EINVAL;
    }
    return SCAN_OK;
}

static char *trim(char *s)
{
    char *e;
    while (isspace((unsigned char)*s)) s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
    return s;
}

/* The programs that may share one config file, each with a section of its own. */
static const char *const section_progs[] = {"acrida-master", "acrida-worker", "acrida-target"};

/* Does the config section @sec (already trimmed, without brackets) apply to @prog? 1 yes, 0 no
 * (another program's section), -1 not a section any program knows (a typo). */
static int section_applies(const char *sec, const char *prog)
{
    const char *base = prog ? prog : "";
    if (!*sec || strcmp(sec, "*") == 0 || strcasecmp(sec, "acrida") == 0 ||
        strcasecmp(sec, "common") == 0)
        return 1;
    for (size_t i = 0; i < sizeof section_progs / sizeof *section_progs; i++) {
        const char *p = section_progs[i];
        if (strcasecmp(sec, p) == 0 || strcasecmp(sec, p + 7) == 0) return strcmp(p, base) == 0;
    }
    if (strcasecmp(sec, base) == 0) return 1;
    if (strncmp(base, "acrida-", 7) == 0 && strcasecmp(sec, base + 7) == 0) return 1;
    return -1;
}

static int apply_config(const acr_opts_spec_t *spec, void *out, const char *path, bool explicit,
                        char *err, size_t errlen)
{
    char line[8192], where[512];
    FILE *f = fopen(path, "r");
    bool active = true;
    int lineno = 0, rc = 0;

    if (!f) {
        if (!explicit && errno == ENOENT) return 0;
        seterr(err, errlen, "cannot read config file '%s': %s", path, strerror(errno));
        return -EINVAL;
    }
    while (fgets(line, sizeof(line), f)) {
        char *s, *eq, *key, *val, *c;
        const acr_opt_def_t *def;
        size_t vlen;

        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            seterr(err, errlen, "line too long in %s:%d", path, lineno);
            rc = -EINVAL;
            goto out;
        }
        s = trim(line);
        if (!*s || *s == '#' || *s == ';' || strcmp(s, "---") == 0) continue;
        if (*s == '[') {
            char *close = strchr(s, ']');
            if (!close) {
                seterr(err, errlen, "bad section line in %s:%d", path, lineno);
                rc = -EINVAL;
                goto out;
            }
            *close = '\0';
            char *sec = trim(s + 1);
            int applies_here = section_applies(sec, spec->prog);
            if (applies_here < 0) {
                seterr(err, errlen,
                       "unknown section [%s] in %s:%d (expected [acrida], [master] or [worker])",
                       sec, path, lineno);
                rc = -EINVAL;
                goto out;
            }
            active = applies_here == 1;
            continue;
        }
        eq = strchr(s, '=');
        if (!eq) {
            seterr(err, errlen, "expected 'key = value' in %s:%d", path, lineno);
            rc = -EINVAL;
            goto out;
        }
        *eq = '\0';
        key = trim(s);
        if (key[0] == '-' && key[1] == '-') key += 2;
        val = trim(eq + 1);
        for (c = val; (c = strchr(c, '#')) != NULL; c++) {
            if (c > val && isspace((unsigned char)c[-1])) {
                *c = '\0';
                val = trim(val);
                break;
            }
        }
        vlen = strlen(val);
        if (vlen >= 2 && (val[0] == '"' || val[0] == '\'') && val[vlen - 1] == val[0]) {
            val[vlen - 1] = '\0';
            val++;
        }
        if (!active) continue;
        def = find_long(spec, key, strlen(key), true);
        if (!def) {
            seterr(err, errlen, "unknown key '%s' in %s:%d", key, path, lineno);
            rc = -EINVAL;
            goto out;
        }
        if (!applies(spec, def)) continue; /* another program's key in a shared file */
        snprintf(where, sizeof(where), " in %s:%d", path, lineno);
        rc = apply_value(def, out, val, NULL, 0, where, err, errlen);
        if (rc < 0) goto out;
    }
    if (ferror(f)) {
        seterr(err, errlen, "cannot read config file '%s'", path);
        rc = -EINVAL;
    }
out:
    fclose(f);
    return rc;
}

/* Builds "<prefix><NAME>" for a long name of length @len into @buf. */
static void env_name(const acr_opts_spec_t *spec, const char *name, size_t len, char *buf,
                     size_t cap)
{
    const char *prefix = spec->env_prefix ? spec->env_prefix : "ACRIDA_";
    size_t n = (size_t)snprintf(buf, cap, "%s", prefix);
    for (size_t i = 0; i < len && n + 1 < cap; i++, n++)
        buf[n] = name[i] == '-' ? '_' : (char)toupper((unsigned char)name[i]);
    buf[n < cap ? n : cap - 1] = '\0';
}

static int apply_env_name(const acr_opt_def_t *def, void *out, const char *envvar, char *err,
                          size_t errlen)
{
    char where[300];
    const char *v = getenv(envvar);
    if (!v || !*v) return 0; /* empty = unset */
    snprintf(where, sizeof(where), " in %s", envvar);
    return apply_value(def, out, v, NULL, 0, where, err, errlen);
}

/* Environment: aliases first, then the canonical name, so the canonical spelling wins. */
static int apply_env(const acr_opts_spec_t *spec, void *out, char *err, size_t errlen)
{
    char var[256];
    int rc;

    for (size_t i = 0; i < spec->ndefs; i++) {
        const acr_opt_def_t *d = &spec->defs[i];
        const char *a = d->aliases;
        if (!applies(spec, d)) continue; /* another program's variable */
        while (a && *a) {
            size_t alen = strcspn(a, ",");
            env_name(spec, a, alen, var, sizeof(var));
            if ((rc = apply_env_name(d, out, var, err, errlen)) < 0) return rc;
            a += alen;
            if (*a == ',') a++;
        }
        env_name(spec, d->name, strlen(d->name), var, sizeof(var));
        if ((rc = apply_env_name(d, out, var, err, errlen)) < 0) return rc;
    }
    return 0;
}

/* Is @d's field also the field of an earlier row (one option with a row per role)? */
static bool field_seen(const acr_opts_spec_t *spec, const acr_opt_def_t *d)
{
    for (const acr_opt_def_t *e = spec->defs; e < d; e++)
        if (e->offset == d->offset) return true;
    return false;
}

/* Makes every STR/STRLIST default in @out an owned copy, so later values can replace them. */
static int own_defaults(const acr_opts_spec_t *spec, void *out, char *err, size_t errlen)
{
    int rc = 0;
    for (size_t i = 0; i < spec->ndefs; i++) {
        const acr_opt_def_t *d = &spec->defs[i];
        void *f = field_of(d, out);
        if (field_seen(spec, d)) continue;
        if (d->kind == ACR_OPT_STR && *(char **)f) {
            *(char **)f = strdup(*(char **)f);
            if (!*(char **)f) rc = -ENOMEM;
        } else if ((d->kind == ACR_OPT_STRLIST || d->kind == ACR_OPT_STRMULTI) && *(char ***)f) {
            char **src = *(char ***)f;
            size_t n = 0;
            while (src[n]) n++;
            *(char ***)f = list_dup(src, n);
            if (!*(char ***)f) rc = -ENOMEM;
        }
    }
    if (rc < 0) seterr(err, errlen, "out of memory");
    return rc;
}

/* Is items[@i] a list option given earlier on the same command line (--check a --check b)? */
static bool repeated(const cmd_item_t *items, size_t i)
{
    if (items[i].def->kind != ACR_OPT_STRLIST && items[i].def->kind != ACR_OPT_STRMULTI)
        return false;
    for (size_t j = 0; j < i; j++)
        if (items[j].def == items[i].def) return true;
    return false;
}

/* A repeated list option adds its items to those of its earlier occurrences. */
static int append_words(const cmd_item_t *it, void *out, char *err, size_t errlen)
{
    char ***f = field_of(it->def, out);
    char **add = it->def->kind == ACR_OPT_STRMULTI ? list_split_semi(it->val ? it->val : "")
                 : it->val                         ? list_split(it->val)
                                                   : list_dup(it->words, (size_t)it->nwords);
    size_t n = 0, k = 0;
    while (*f && (*f)[n]) n++;
    while (add && add[k]) k++;
    char **l = add ? calloc(n + k + 1, sizeof(*l)) : NULL;
    if (!l) {
        list_free(add);
        seterr(err, errlen, "out of memory for --%s", it->def->name);
        return -ENOMEM;
    }
    memcpy(l, *f, n * sizeof(*l));
    memcpy(l + n, add, k * sizeof(*l));
    free(*f); /* its strings moved to @l */
    free(add);
    *f = l;
    return 0;
}

int acr_opts_parse(const acr_opts_spec_t *spec, void *out, int argc, char **argv, char *err,
                   size_t errlen)
{
    cmd_item_t *items = NULL;
    size_t nitems = 0;
    const char *config = NULL, *prefix = spec->env_prefix ? spec->env_prefix : "ACRIDA_";
    char var[256];
    bool explicit = true;
    int rc;

    if (err && errlen) err[0] = '\0';
    rc = own_defaults(spec, out, err, errlen);
    if (rc < 0) goto out;
    items = calloc((size_t)(argc > 0 ? argc : 1), sizeof(*items));
    if (!items) {
        seterr(err, errlen, "out of memory");
        rc = -ENOMEM;
        goto out;
    }
    rc = scan_cmdline(spec, argc, argv, items, &nitems, &config, err, errlen);
    if (rc == SCAN_HELP) {
        acr_opts_help(spec, stdout);
        rc = ACR_OPTS_EXIT;
        goto out;
    }
    if (rc == SCAN_VERSION) {
        printf("%s %s\n", spec->prog ? spec->prog : "acrida", ACR_VERSION);
        rc = ACR_OPTS_EXIT;
        goto out;
    }
    if (rc < 0) goto out;

    if (!config) {
        snprintf(var, sizeof(var), "%sCONFIG", prefix);
        config = getenv(var);
        if (config && !*config) config = NULL;
    }
    if (!config && !spec->no_default_config) {
        config = DEFAULT_CONFIG;
        explicit = false;
    }
    if (config) {
        rc = apply_config(spec, out, config, explicit, err, errlen);
        if (rc < 0) goto out;
    }
    rc = apply_env(spec, out, err, errlen);
    if (rc < 0) goto out;
    for (size_t i = 0; i < nitems; i++) {
        rc = repeated(items, i) ? append_words(&items[i], out, err, errlen)
                                : apply_value(items[i].def, out, items[i].val, items[i].words,
                                              items[i].nwords, "", err, errlen);
        if (rc < 0) goto out;
    }
    rc = 0;
out:
    free(items);
    return rc;
}

void acr_opts_free(const acr_opts_spec_t *spec, void *out)
{
    for (size_t i = 0; i < spec->ndefs; i++) {
        const acr_opt_def_t *d = &spec->defs[i];
        void *f = field_of(d, out);
        if (d->kind == ACR_OPT_STR) {
            free(*(char **)f);
            *(char **)f = NULL;
        } else if (d->kind == ACR_OPT_STRLIST || d->kind == ACR_OPT_STRMULTI) {
            list_free(*(char ***)f);
            *(char ***)f = NULL;
        }
    }
}

static const char *default_metavar(acr_opt_kind_t kind)
{
    switch (kind) {
    case ACR_OPT_FLAG:
        return "";
    case ACR_OPT_INT:
        return "N";
    case ACR_OPT_COUNT:
        return "N|auto";
    case ACR_OPT_DOUBLE:
        return "X";
    case ACR_OPT_TIMESPAN:
        return "TIME";
    case ACR_OPT_STRLIST:
        return "VALUE...";
    case ACR_OPT_STRMULTI:
    case ACR_OPT_STR:
        break;
    }
    return "VALUE";
}

static void help_line(FILE *f, char short_name, const char *name, const char *metavar,
                      const char *help)
{
    char left[128];
    if (short_name)
        snprintf(left, sizeof(left), "  -%c, --%s%s%s", short_name, name, *metavar ? " " : "",
                 metavar);
    else
        snprintf(left, sizeof(left), "      --%s%s%s", name, *metavar ? " " : "", metavar);
    if (strlen(left) < 30)
        fprintf(f, "%-30s%s\n", left, help ? help : "");
    else
        fprintf(f, "%s\n%-30s%s\n", left, "", help ? help : "");
}

void acr_opts_help(const acr_opts_spec_t *spec, FILE *f)
{
    const char *prefix = spec->env_prefix ? spec->env_prefix : "ACRIDA_";

    fprintf(f, "usage: %s %s\n\noptions:\n", spec->prog ? spec->prog : "acrida",
            spec->usage ? spec->usage : "[options]");
    help_line(f, 'h', "help", "", "show this help and exit");
    help_line(f, 'V', "version", "", "show the version and exit");
    help_line(f, 0, "config", "FILE",
              spec->no_default_config ? "read options from FILE"
                                      : "read options from FILE (default ./" DEFAULT_CONFIG ")");
    for (size_t i = 0; i < spec->ndefs; i++) {
        const acr_opt_def_t *d = &spec->defs[i];
        if (!applies(spec, d)) continue;
        help_line(f, d->short_name, d->name, d->metavar ? d->metavar : default_metavar(d->kind),
                  d->help);
    }
    fprintf(f,
            "\nEvery option can also be set in the environment as %s<NAME> (upper case, dashes\n"
            "as underscores) or in the config file as `name = value`. Precedence: command line >\n"
            "environment > config file > default.\n",
            prefix);
}
