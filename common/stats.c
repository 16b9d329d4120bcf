/*
 * Statistics tables (stats.h): entries keyed by (method, name), the Aggregated total, failures
 * keyed by (method, name, error) and exceptions keyed by traceback.
 *
 * Each table is a chained hash table of separately allocated nodes, so entry pointers stay put
 * while the table grows. The sorted views are arrays of pointers into the nodes, rebuilt lazily
 * when a table changed (the *_dirty flags). Past max_names distinct names a new (method, name)
 * is folded into the (method, ACR_STATS_OTHER) entry, its failures with it.
 *
 * An entry node holds a whole histogram (about 16 KiB). acr_stats_clear keeps up to SPARE_NODES
 * of the nodes it removes and acr_stats_get takes them back before allocating: the master decodes
 * every report into one recycled table (master/core/registry.c), so a report of 100 entries,
 * hundreds of times a second, allocates no histogram and gives no memory back to the system
 * only to fault it in again.
 */
#include "common/stats.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPARE_NODES 256 /* about 4 MiB of histograms kept by a cleared table at most */

/* ---- a small chained hash table of nodes that start with an hnode_t ---- */

typedef struct hnode {
    struct hnode *next;
    uint64_t hash;
} hnode_t;

typedef struct htab {
    hnode_t **b;
    size_t nb; /* bucket count, a power of two (0 before the first insert) */
    size_t n;
} htab_t;

typedef struct ent_node {
    hnode_t h;
    acr_stats_entry_t e;
} ent_node_t;

typedef struct err_node {
    hnode_t h;
    acr_stats_error_t e;
} err_node_t;

typedef struct exc_node {
    hnode_t h;
    acr_stats_exception_t e;
} exc_node_t;

struct acr_stats {
    acr_stats_entry_t total;
    htab_t entries, errors, exceptions;
    double last_now;    /* latest time seen (new entries start then) */
    size_t max_names;   /* distinct names kept before folding (0 = no cap) */
    size_t nother;      /* entries named ACR_STATS_OTHER (not counted against the cap) */
    char *first_folded; /* "METHOD name" of the first name folded since the last clear */
    bool fold_noticed;  /* acr_stats_fold_notice() returned it */
    hnode_t *spare;     /* entry nodes kept by acr_stats_clear, chained by next */
    size_t nspare;

    acr_stats_entry_t **sorted_entries;
    acr_stats_error_t **sorted_errors;
    acr_stats_exception_t **sorted_exceptions;
    bool entries_dirty, errors_dirty, exceptions_dirty;
};

static uint64_t hash_str(uint64_t h, const char *s)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    /* a separator byte so ("ab", "c") and ("a", "bc") differ */
    h ^= 0xff;
    h *= 0x100000001b3ull;
    return h;
}

#define HASH_SEED 0xcbf29ce484222325ull

static int htab_insert(htab_t *t, hnode_t *node)
{
    if (t->n + 1 > t->nb - t->nb / 4) { /* load factor 3/4; true when nb == 0 */
        size_t nb = t->nb ? t->nb * 2 : 16;
        hnode_t **b = calloc(nb, sizeof(*b));
        if (!b) return -ENOMEM;
        for (size_t i = 0; i < t->nb; i++) {
            hnode_t *x = t->b[i];
            while (x) {
                hnode_t *next = x->next;
                size_t j = x->hash & (nb - 1);
                x->next = b[j];
                b[j] = x;
                x = next;
            }
        }
        free(t->b);
        t->b = b;
        t->nb = nb;
    }
    size_t j = node->hash & (t->nb - 1);
    node->next = t->b[j];
    t->b[j] = node;
    t->n++;
    return 0;
}

static hnode_t *htab_first(const htab_t *t, uint64_t hash)
{
    return t->nb ? t->b[hash & (t->nb - 1)] : NULL;
}

/* The node after @x in bucket order (the first one when @x is NULL), or NULL at the end. */
static hnode_t *htab_next(const htab_t *t, const hnode_t *x)
{
    if (x && x->next) return x->next;
    for (size_t i = x ? (x->hash & (t->nb - 1)) + 1 : 0; i < t->nb; i++)
        if (t->b[i]) return t->b[i];
    return NULL;
}

/* Removes every node, calling @fn on each. */
static void htab_drain(htab_t *t, void (*fn)(hnode_t *))
{
    for (size_t i = 0; i < t->nb; i++) {
        hnode_t *x = t->b[i];
        while (x) {
            hnode_t *next = x->next;
            fn(x);
            x = next;
        }
        t->b[i] = NULL;
    }
    t->n = 0;
}

/* ---- entries ---- */

void acr_persec_add(acr_persec_t *p, int64_t sec, uint32_t n, uint32_t f)
{
    int64_t slot = sec % ACR_PERSEC_SLOTS;
    if (slot < 0) slot += ACR_PERSEC_SLOTS;
    if (p->sec[slot] == sec) {
        p->reqs[slot] += n;
        p->fails[slot] += f;
    } else if (p->sec[slot] < sec) { /* unused (INT64_MIN) or an older second */
        p->sec[slot] = sec;
        p->reqs[slot] = n;
        p->fails[slot] = f;
    }
}

void acr_persec_reset(acr_persec_t *p)
{
    for (int i = 0; i < ACR_PERSEC_SLOTS; i++) p->sec[i] = INT64_MIN;
    memset(p->reqs, 0, sizeof(p->reqs));
    memset(p->fails, 0, sizeof(p->fails));
}

bool acr_persec_get(const acr_persec_t *p, int64_t sec, uint32_t *reqs, uint32_t *fails)
{
    int64_t slot = sec % ACR_PERSEC_SLOTS;
    if (slot < 0) slot += ACR_PERSEC_SLOTS;
    bool hit = sec != INT64_MIN && p->sec[slot] == sec;
    if (reqs) *reqs = hit ? p->reqs[slot] : 0;
    if (fails) *fails = hit ? p->fails[slot] : 0;
    return hit;
}

void acr_stats_entry_zero(acr_stats_entry_t *e, double now)
{
    e->num_requests = 0;
    e->num_none_requests = 0;
    e->num_failures = 0;
    e->num_aborted = 0;
    e->total_rt_us = 0;
    e->total_content_length = 0;
    e->start_time = now;
    e->last_request_ts = 0;
    acr_persec_reset(&e->persec);
    acr_hist_clear(&e->hist); /* entries are calloc'd: a zeroed histogram is one */
}

static void ent_free(hnode_t *x)
{
    ent_node_t *en = (ent_node_t *)x;
    free(en->e.method);
    free(en->e.name);
    free(en);
}

static void err_free(hnode_t *x)
{
    err_node_t *en = (err_node_t *)x;
    free(en->e.method);
    free(en->e.name);
    free(en->e.error);
    free(en);
}

static void exc_free(hnode_t *x)
{
    exc_node_t *en = (exc_node_t *)x;
    free(en->e.msg);
    free(en->e.traceback);
    free(en->e.nodes);
    free(en);
}

/* An entry node for acr_stats_get: a spare one (its histogram is one already, so clearing its
 * range is enough) or a zeroed new one. */
static ent_node_t *ent_alloc(acr_stats_t *s)
{
    if (!s->spare) return calloc(1, sizeof(ent_node_t));
    ent_node_t *en = (ent_node_t *)s->spare;
    s->spare = en->h.next;
    s->nspare--;
    en->h.next = NULL;
    return en;
}

/* htab_drain's callback of acr_stats_clear: the node's names go, the node is kept while there is
 * room. */
static void ent_recycle(acr_stats_t *s, hnode_t *x)
{
    ent_node_t *en = (ent_node_t *)x;
    if (s->nspare >= SPARE_NODES) {
        ent_free(x);
        return;
    }
    free(en->e.method);
    free(en->e.name);
    en->e.method = en->e.name = NULL;
    en->h.next = s->spare;
    s->spare = x;
    s->nspare++;
}

acr_stats_t *acr_stats_new(double now)
{
    acr_stats_t *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->total.method = strdup("");
    s->total.name = strdup("Aggregated");
    if (!s->total.method || !s->total.name) goto fail;
    acr_stats_entry_zero(&s->total, now);
    s->last_now = now;
    s->max_names = ACR_STATS_MAX_NAMES;
    s->entries_dirty = s->errors_dirty = s->exceptions_dirty = true;
    return s;
fail:
    free(s->total.method);
    free(s->total.name);
    free(s);
    return NULL;
}

void acr_stats_free(acr_stats_t *s)
{
    if (!s) return;
    htab_drain(&s->entries, ent_free);
    while (s->spare) {
        hnode_t *next = s->spare->next;
        free(s->spare);
        s->spare = next;
    }
    htab_drain(&s->errors, err_free);
    htab_drain(&s->exceptions, exc_free);
    free(s->entries.b);
    free(s->errors.b);
    free(s->exceptions.b);
    free(s->sorted_entries);
    free(s->sorted_errors);
    free(s->sorted_exceptions);
    free(s->total.method);
    free(s->total.name);
    free(s->first_folded);
    free(s);
}

acr_stats_entry_t *acr_stats_total(acr_stats_t *s)
{
    return &s->total;
}

static uint64_t entry_hash(const char *method, const char *name)
{
    return hash_str(hash_str(HASH_SEED, method), name);
}

static ent_node_t *entry_lookup(const acr_stats_t *s, const char *method, const char *name,
                                uint64_t hash)
{
    for (hnode_t *x = htab_first(&s->entries, hash); x; x = x->next) {
        ent_node_t *en = (ent_node_t *)x;
        if (x->hash == hash && !strcmp(en->e.method, method) && !strcmp(en->e.name, name))
            return en;
    }
    return NULL;
}

acr_stats_entry_t *acr_stats_find(const acr_stats_t *s, const char *method, const char *name)
{
    if (!method) method = "";
    if (!name) name = "";
    ent_node_t *en = entry_lookup(s, method, name, entry_hash(method, name));
    return en ? &en->e : NULL;
}

static bool is_other(const char *name)
{
    return strcmp(name, ACR_STATS_OTHER) == 0;
}

/* Whether a new (method, name) must be folded, and into which method's ACR_STATS_OTHER entry:
 * its own while fewer than ACR_STATS_MAX_OTHER methods have one, else the catch-all
 * (ACR_STATS_OTHER, ACR_STATS_OTHER); an ACR_STATS_OTHER entry of one more method (a report's)
 * goes to the catch-all too. Remembers the first folded name. */
static bool fold_target(acr_stats_t *s, const char *method, const char *name, const char **to)
{
    if (!s->max_names) return false;
    bool room = s->nother < ACR_STATS_MAX_OTHER || is_other(method);
    if (is_other(name)) {
        *to = ACR_STATS_OTHER;
        return !room;
    }
    if (s->entries.n - s->nother < s->max_names) return false;
    if (!s->first_folded) {
        size_t n = strlen(method) + 1 + strlen(name) + 1;
        s->first_folded = malloc(n);
        if (s->first_folded) snprintf(s->first_folded, n, "%s %s", method, name);
    }
    bool own =
        room || entry_lookup(s, method, ACR_STATS_OTHER, entry_hash(method, ACR_STATS_OTHER));
    *to = own ? method : ACR_STATS_OTHER;
    return true;
}

acr_stats_entry_t *acr_stats_get(acr_stats_t *s, const char *method, const char *name)
{
    if (!method) method = "";
    if (!name) name = "";
    uint64_t hash = entry_hash(method, name);
    ent_node_t *en = entry_lookup(s, method, name, hash);
    if (en) return &en->e;
    const char *fold_method;
    if (fold_target(s, method, name, &fold_method))
        return acr_stats_get(s, fold_method, ACR_STATS_OTHER);

    en = ent_alloc(s);
    if (!en) return NULL;
    en->h.hash = hash;
    en->e.method = strdup(method);
    en->e.name = strdup(name);
    if (!en->e.method || !en->e.name) goto fail;
    acr_stats_entry_zero(&en->e, s->last_now);
    if (htab_insert(&s->entries, &en->h) < 0) goto fail;
    if (is_other(name)) s->nother++;
    s->entries_dirty = true;
    return &en->e;
fail:
    ent_free(&en->h);
    return NULL;
}

void acr_stats_set_max_names(acr_stats_t *s, size_t max)
{
    s->max_names = max;
}

const char *acr_stats_fold_notice(acr_stats_t *s)
{
    if (!s->first_folded || s->fold_noticed) return NULL;
    s->fold_noticed = true;
    return s->first_folded;
}

size_t acr_stats_count(const acr_stats_t *s)
{
    return s->entries.n;
}

/* ---- recording ---- */

static void entry_log(acr_stats_entry_t *e, bool has_rt, uint64_t rt_us, uint64_t content_length,
                      bool failed, double now)
{
    e->num_requests++;
    acr_persec_add(&e->persec, (int64_t)floor(now), 1, failed ? 1 : 0);
    if (now > e->last_request_ts) e->last_request_ts = now;
    if (has_rt) {
        e->total_rt_us += rt_us;
        acr_hist_record(&e->hist, rt_us);
    } else {
        e->num_none_requests++;
    }
    e->total_content_length += content_length;
    if (failed) e->num_failures++;
}

void acr_stats_log(acr_stats_t *s, acr_stats_entry_t *e, bool has_rt, uint64_t rt_us,
                   uint64_t content_length, const char *error, double now)
{
    if (now > s->last_now) s->last_now = now;
    entry_log(&s->total, has_rt, rt_us, content_length, error != NULL, now);
    if (e != &s->total) entry_log(e, has_rt, rt_us, content_length, error != NULL, now);
    /* On ENOMEM the failure is still counted on the entries; only its text is lost. */
    if (error) (void)acr_stats_add_error(s, e->method, e->name, error, 1);
}

void acr_stats_log_aborted(acr_stats_t *s, acr_stats_entry_t *e, double now)
{
    if (now > s->last_now) s->last_now = now;
    s->total.num_aborted++;
    if (e != &s->total) e->num_aborted++;
}

int acr_stats_add_error(acr_stats_t *s, const char *method, const char *name, const char *error,
                        uint64_t occurrences)
{
    if (!method) method = "";
    if (!name) name = "";
    if (!error) error = "";
    uint64_t hash = hash_str(hash_str(hash_str(HASH_SEED, method), name), error);
    for (hnode_t *x = htab_first(&s->errors, hash); x; x = x->next) {
        err_node_t *en = (err_node_t *)x;
        if (x->hash == hash && !strcmp(en->e.method, method) && !strcmp(en->e.name, name) &&
            !strcmp(en->e.error, error)) {
            en->e.occurrences += occurrences;
            return 0;
        }
    }
    err_node_t *en = calloc(1, sizeof(*en));
    if (!en) return -ENOMEM;
    en->h.hash = hash;
    en->e.method = strdup(method);
    en->e.name = strdup(name);
    en->e.error = strdup(error);
    en->e.occurrences = occurrences;
    if (!en->e.method || !en->e.name || !en->e.error) goto fail;
    if (htab_insert(&s->errors, &en->h) < 0) goto fail;
    s->errors_dirty = true;
    return 0;
fail:
    err_free(&en->h);
    return -ENOMEM;
}

/* Appends @node to the ", "-separated list *@nodes unless already present. */
static int nodes_add(char **nodes, const char *node, size_t len)
{
    if (len == 0) return 0;
    const char *p = *nodes;
    while (p && *p) {
        const char *end = strstr(p, ", ");
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == len && !memcmp(p, node, len)) return 0;
        p = end ? end + 2 : p + n;
    }
    size_t old = *nodes ? strlen(*nodes) : 0;
    char *m = realloc(*nodes, old + (old ? 2 : 0) + len + 1);
    if (!m) return -ENOMEM;
    if (old) memcpy(m + old, ", ", 2), old += 2;
    memcpy(m + old, node, len);
    m[old + len] = '\0';
    *nodes = m;
    return 0;
}

/* Adds every node of the ", "-separated list @list. */
static int nodes_add_list(char **nodes, const char *list)
{
    while (list && *list) {
        const char *end = strstr(list, ", ");
        size_t n = end ? (size_t)(end - list) : strlen(list);
        int rc = nodes_add(nodes, list, n);
        if (rc < 0) return rc;
        list = end ? end + 2 : list + n;
    }
    return 0;
}

/* Finds or creates (with count 0 and no nodes) the exception of @traceback. */
static exc_node_t *exception_get(acr_stats_t *s, const char *msg, const char *traceback)
{
    if (!msg) msg = "";
    if (!traceback) traceback = "";
    uint64_t hash = hash_str(HASH_SEED, traceback);
    for (hnode_t *x = htab_first(&s->exceptions, hash); x; x = x->next) {
        exc_node_t *c = (exc_node_t *)x;
        if (x->hash == hash && !strcmp(c->e.traceback, traceback)) return c;
    }
    exc_node_t *en = calloc(1, sizeof(*en));
    if (!en) return NULL;
    en->h.hash = hash;
    en->e.msg = strdup(msg);
    en->e.traceback = strdup(traceback);
    en->e.nodes = strdup("");
    if (!en->e.msg || !en->e.traceback || !en->e.nodes) goto fail;
    if (htab_insert(&s->exceptions, &en->h) < 0) goto fail;
    return en;
fail:
    exc_free(&en->h);
    return NULL;
}

int acr_stats_add_exception(acr_stats_t *s, const char *msg, const char *traceback,
                            const char *node_id, uint64_t count)
{
    exc_node_t *en = exception_get(s, msg, traceback);
    if (!en) return -ENOMEM;
    s->exceptions_dirty = true; /* the order depends on the counts */
    en->e.count += count;
    return node_id ? nodes_add(&en->e.nodes, node_id, strlen(node_id)) : 0;
}

/* ---- merging ---- */

void acr_stats_entry_merge(acr_stats_entry_t *dst, const acr_stats_entry_t *src)
{
    if (src->last_request_ts > dst->last_request_ts) dst->last_request_ts = src->last_request_ts;
    if (src->start_time > 0 && (dst->start_time <= 0 || src->start_time < dst->start_time))
        dst->start_time = src->start_time;
    dst->num_requests += src->num_requests;
    dst->num_none_requests += src->num_none_requests;
    dst->num_failures += src->num_failures;
    dst->num_aborted += src->num_aborted;
    dst->total_rt_us += src->total_rt_us;
    dst->total_content_length += src->total_content_length;
    for (int i = 0; i < ACR_PERSEC_SLOTS; i++)
        if (src->persec.sec[i] != INT64_MIN)
            acr_persec_add(&dst->persec, src->persec.sec[i], src->persec.reqs[i],
                           src->persec.fails[i]);
    acr_hist_merge(&dst->hist, &src->hist);
}

int acr_stats_merge(acr_stats_t *dst, const acr_stats_t *delta)
{
    if (delta->last_now > dst->last_now) dst->last_now = delta->last_now;
    const htab_t *t = &delta->entries;
    for (const hnode_t *x = htab_next(t, NULL); x; x = htab_next(t, x)) {
        const acr_stats_entry_t *src = &((const ent_node_t *)x)->e;
        /* Like Locust's serialize_stats(): untouched entries are not shipped. */
        if (src->num_requests == 0 && src->num_failures == 0 && src->num_aborted == 0) continue;
        acr_stats_entry_t *e = acr_stats_get(dst, src->method, src->name);
        if (!e) return -ENOMEM;
        acr_stats_entry_merge(e, src);
    }
    acr_stats_entry_merge(&dst->total, &delta->total);
    t = &delta->errors;
    for (const hnode_t *x = htab_next(t, NULL); x; x = htab_next(t, x)) {
        const acr_stats_error_t *er = &((const err_node_t *)x)->e;
        /* the failures of a folded name go with its requests */
        const char *method = er->method, *name = er->name;
        if (!acr_stats_find(dst, method, name) && fold_target(dst, method, name, &method))
            name = ACR_STATS_OTHER;
        int rc = acr_stats_add_error(dst, method, name, er->error, er->occurrences);
        if (rc < 0) return rc;
    }
    t = &delta->exceptions;
    for (const hnode_t *x = htab_next(t, NULL); x; x = htab_next(t, x)) {
        const acr_stats_exception_t *ex = &((const exc_node_t *)x)->e;
        exc_node_t *en = exception_get(dst, ex->msg, ex->traceback);
        if (!en) return -ENOMEM;
        dst->exceptions_dirty = true;
        en->e.count += ex->count;
        int rc = nodes_add_list(&en->e.nodes, ex->nodes);
        if (rc < 0) return rc;
    }
    return 0;
}

void acr_stats_reset(acr_stats_t *s, double now)
{
    s->last_now = now;
    acr_stats_entry_zero(&s->total, now);
    for (hnode_t *x = htab_next(&s->entries, NULL); x; x = htab_next(&s->entries, x))
        acr_stats_entry_zero(&((ent_node_t *)x)->e, now);
    htab_drain(&s->errors, err_free);
    htab_drain(&s->exceptions, exc_free);
    s->errors_dirty = s->exceptions_dirty = true;
}

void acr_stats_clear(acr_stats_t *s, double now)
{
    acr_stats_reset(s, now);
    for (size_t i = 0; i < s->entries.nb; i++) {
        for (hnode_t *x = s->entries.b[i], *next; x; x = next) {
            next = x->next;
            ent_recycle(s, x);
        }
        s->entries.b[i] = NULL;
    }
    s->entries.n = 0;
    s->nother = 0;
    free(s->first_folded);
    s->first_folded = NULL;
    s->fold_noticed = false;
    s->entries_dirty = true;
}

/* ---- sorted views ---- */

static int cmp_entry(const void *a, const void *b)
{
    const acr_stats_entry_t *x = *(acr_stats_entry_t *const *)a;
    const acr_stats_entry_t *y = *(acr_stats_entry_t *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->method, y->method);
}

static int cmp_error(const void *a, const void *b)
{
    const acr_stats_error_t *x = *(acr_stats_error_t *const *)a;
    const acr_stats_error_t *y = *(acr_stats_error_t *const *)b;
    int c = strcmp(x->method, y->method);
    if (!c) c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->error, y->error);
}

static int cmp_exception(const void *a, const void *b)
{
    const acr_stats_exception_t *x = *(acr_stats_exception_t *const *)a;
    const acr_stats_exception_t *y = *(acr_stats_exception_t *const *)b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    return strcmp(x->traceback, y->traceback);
}

acr_stats_entry_t *const *acr_stats_sorted(acr_stats_t *s, size_t *n)
{
    if (s->entries_dirty) {
        acr_stats_entry_t **arr = malloc((s->entries.n + 1) * sizeof(*arr));
        if (!arr) goto fail;
        size_t k = 0;
        for (hnode_t *x = htab_next(&s->entries, NULL); x; x = htab_next(&s->entries, x))
            arr[k++] = &((ent_node_t *)x)->e;
        qsort(arr, k, sizeof(*arr), cmp_entry);
        free(s->sorted_entries);
        s->sorted_entries = arr;
        s->entries_dirty = false;
    }
    *n = s->entries.n;
    return s->sorted_entries;
fail:
    *n = 0;
    return NULL;
}

acr_stats_error_t *const *acr_stats_errors(acr_stats_t *s, size_t *n)
{
    if (s->errors_dirty) {
        acr_stats_error_t **arr = malloc((s->errors.n + 1) * sizeof(*arr));
        if (!arr) goto fail;
        size_t k = 0;
        for (hnode_t *x = htab_next(&s->errors, NULL); x; x = htab_next(&s->errors, x))
            arr[k++] = &((err_node_t *)x)->e;
        qsort(arr, k, sizeof(*arr), cmp_error);
        free(s->sorted_errors);
        s->sorted_errors = arr;
        s->errors_dirty = false;
    }
    *n = s->errors.n;
    return s->sorted_errors;
fail:
    *n = 0;
    return NULL;
}

acr_stats_exception_t *const *acr_stats_exceptions(acr_stats_t *s, size_t *n)
{
    if (s->exceptions_dirty) {
        acr_stats_exception_t **arr = malloc((s->exceptions.n + 1) * sizeof(*arr));
        if (!arr) goto fail;
        size_t k = 0;
        for (hnode_t *x = htab_next(&s->exceptions, NULL); x; x = htab_next(&s->exceptions, x))
            arr[k++] = &((exc_node_t *)x)->e;
        qsort(arr, k, sizeof(*arr), cmp_exception);
        free(s->sorted_exceptions);
        s->sorted_exceptions = arr;
        s->exceptions_dirty = false;
    }
    *n = s->exceptions.n;
    return s->sorted_exceptions;
fail:
    *n = 0;
    return NULL;
}

/* ---- derived values ---- */

/* Locust's current_rps window: the seconds from 12 s up to 2 s before the last request (the last
 * 2 s are left out: they may not be complete yet). */
#define CURRENT_WINDOW_FROM_S 12
#define CURRENT_WINDOW_UNTIL_S 2

static double window_avg(const acr_stats_entry_t *e, const acr_stats_entry_t *total, bool fails)
{
    if (total->last_request_ts <= 0) return 0;
    int64_t last = (int64_t)floor(total->last_request_ts);
    int64_t start = last - CURRENT_WINDOW_FROM_S;
    int64_t t0 = (int64_t)floor(total->start_time);
    if (t0 > start) start = t0;
    int64_t end = last - CURRENT_WINDOW_UNTIL_S;
    if (end <= start) return 0.0;
    uint64_t sum = 0;
    for (int64_t t = start; t < end; t++) {
        uint32_t r, f;
        acr_persec_get(&e->persec, t, &r, &f);
        sum += fails ? f : r;
    }
    return (double)sum / (double)(end - start);
}

double acr_stats_current_rps(const acr_stats_entry_t *e, const acr_stats_entry_t *total)
{
    return window_avg(e, total, false);
}

double acr_stats_current_fail_per_sec(const acr_stats_entry_t *e, const acr_stats_entry_t *total)
{
    return window_avg(e, total, true);
}

static double whole_run_rate(uint64_t count, const acr_stats_entry_t *total)
{
    if (total->last_request_ts <= 0 || total->start_time <= 0) return 0.0;
    double span = total->last_request_ts - total->start_time;
    if (span <= 0) return 0.0;
    return (double)count / span;
}

double acr_stats_total_rps(const acr_stats_entry_t *e, const acr_stats_entry_t *total)
{
    return whole_run_rate(e->num_requests, total);
}

double acr_stats_total_fail_per_sec(const acr_stats_entry_t *e, const acr_stats_entry_t *total)
{
    return whole_run_rate(e->num_failures, total);
}

double acr_stats_avg_ms(const acr_stats_entry_t *e)
{
    uint64_t n = e->num_requests - e->num_none_requests;
    if (e->num_none_requests >= e->num_requests || n == 0) return 0.0;
    return (double)e->total_rt_us / (double)n / 1000.0;
}

double acr_stats_min_ms(const acr_stats_entry_t *e)
{
    return e->hist.count ? (double)e->hist.min_us / 1000.0 : 0.0;
}

double acr_stats_max_ms(const acr_stats_entry_t *e)
{
    return e->hist.count ? (double)e->hist.max_us / 1000.0 : 0.0;
}

double acr_stats_percentile_ms(const acr_stats_entry_t *e, double p)
{
    return (double)acr_hist_percentile(&e->hist, p) / 1000.0;
}

double acr_stats_fail_ratio(const acr_stats_entry_t *e)
{
    if (e->num_requests == 0) return e->num_failures ? 1.0 : 0.0;
    return (double)e->num_failures / (double)e->num_requests;
}

double acr_stats_avg_content_length(const acr_stats_entry_t *e)
{
    if (e->num_requests == 0) return 0.0;
    return (double)e->total_content_length / (double)e->num_requests;
}
