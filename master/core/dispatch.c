/*
 * Locust's UsersDispatcher as a state machine (see dispatch.h for the contract). Python generators
 * become explicit positions: the ramp (`_dispatcher`) is a phase enum, the user generator
 * (`_user_gen`) keeps its fixed-loop flags, and the two endless cycles are precomputed sequences
 * with a position.
 */
#include "master/core/dispatch.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct dworker {
    char *id;
    int index_within_host;
    bool live; /* in the worker list (and the cycle); false only after removing the last one */
    int64_t *counts;
} dworker_t;

typedef struct dactive {
    dworker_t *w;
    int cls;
} dactive_t;

typedef enum { PHASE_IDLE, PHASE_START, PHASE_AFTER_REBALANCE, PHASE_LOOP } dphase_t;

struct acr_dispatch {
    /* classes, sorted by name */
    size_t nclasses;
    char **names;
    double *weights;
    long *fixed;
    bool *allowed; /* the classes new users are picked from (acr_dispatch_set_classes) */

    /* the map (users_on_workers) and the worker list in cycle order */
    dworker_t **map;
    size_t nmap, capmap;
    dworker_t **order;
    size_t norder;
    size_t worker_pos;

    dactive_t *active;
    size_t nactive, capactive;
    long excluded; /* placed users of classes not allowed: replaced by the ramp */

    /* user generator */
    int *fixed_seq, *weighted_seq;
    long fixed_len, weighted_len, fixed_pos, weighted_pos;
    bool in_fixed, resume_check;
    int64_t *fixed_cur;
    bool try_fixed;

    /* ramp */
    dphase_t phase;
    long target, current;
    long per_iteration;
    double wait;
    bool in_progress, rebalance, no_user_to_spawn;
};

/* ---- smooth weighted round robin (roundrobin.smooth) ---- */

long acr_dispatch_swrr_sequence(const double *weights, size_t n, int **seq)
{
    *seq = NULL;
    if (n == 0) return 0;
    double minw = weights[0];
    for (size_t i = 1; i < n; i++)
        if (weights[i] < minw) minw = weights[i];
    long *norm = calloc(n, sizeof(*norm));
    long *cur = calloc(n, sizeof(*cur));
    long total = 0;
    if (!norm || !cur) goto fail;
    for (size_t i = 0; i < n; i++) {
        /* nearbyint rounds half to even in the default rounding mode, like Python's round() */
        norm[i] = (long)nearbyint(2.0 * weights[i] / minw);
        total += norm[i];
    }
    if (total <= 0) {
        free(norm);
        free(cur);
        return 0;
    }
    *seq = malloc((size_t)total * sizeof(**seq));
    if (!*seq) goto fail;
    for (long k = 0; k < total; k++) {
        if (n == 1) {
            (*seq)[k] = 0;
            continue;
        }
        long sum = 0;
        size_t best = 0;
        bool have = false;
        for (size_t i = 0; i < n; i++) {
            cur[i] += norm[i];
            sum += norm[i];
            if (!have || cur[best] < cur[i]) {
                best = i;
                have = true;
            }
        }
        cur[best] -= sum;
        (*seq)[k] = (int)best;
    }
    free(norm);
    free(cur);
    return total;
fail:
    free(norm);
    free(cur);
    return -ENOMEM;
}

/* ---- user generator ---- */

static int64_t class_total(const acr_dispatch_t *d, size_t c)
{
    int64_t n = 0;
    for (size_t i = 0; i < d->nmap; i++) n += d->map[i]->counts[c];
    return n;
}

static void recompute_fixed(acr_dispatch_t *d)
{
    for (size_t c = 0; c < d->nclasses; c++)
        d->fixed_cur[c] = d->fixed[c] > 0 ? class_total(d, c) : 0;
}

static bool fixed_all_full(const acr_dispatch_t *d)
{
    for (size_t c = 0; c < d->nclasses; c++)
        if (d->allowed[c] && d->fixed[c] > 0 && d->fixed_cur[c] < d->fixed[c]) return false;
    return true;
}

static int weighted_next(acr_dispatch_t *d)
{
    if (d->weighted_len <= 0) return -1;
    int c = d->weighted_seq[d->weighted_pos];
    d->weighted_pos = (d->weighted_pos + 1) % d->weighted_len;
    return c;
}

/* The next class to place (Locust's _user_gen), or -1 for "no user to spawn". */
static int gen_next(acr_dispatch_t *d)
{
    for (;;) {
        if (!d->in_fixed) {
            if (!d->try_fixed) return weighted_next(d);
            d->try_fixed = false;
            recompute_fixed(d);
            d->in_fixed = true;
            d->resume_check = false;
        } else if (d->resume_check) {
            d->resume_check = false;
            if (d->try_fixed) {
                recompute_fixed(d);
                d->try_fixed = false;
            }
        }
        if (fixed_all_full(d) || d->fixed_len <= 0) {
            d->in_fixed = false;
            return weighted_next(d);
        }
        int c = d->fixed_seq[d->fixed_pos];
        d->fixed_pos = (d->fixed_pos + 1) % d->fixed_len;
        if (d->fixed_cur[c] < d->fixed[c]) {
            d->fixed_cur[c]++;
            d->resume_check = true;
            return c;
        }
    }
}

/* A fresh generator (new cycles): Locust's self._user_gen(). */
static void gen_reset(acr_dispatch_t *d)
{
    d->fixed_pos = d->weighted_pos = 0;
    d->in_fixed = d->resume_check = false;
}

/* Builds the fixed and weighted sequences over the allowed classes (replacing earlier ones). */
static int gen_build(acr_dispatch_t *d)
{
    size_t n = d->nclasses;
    double *w = calloc(n ? n : 1, sizeof(*w));
    int *idx = calloc(n ? n : 1, sizeof(*idx));
    int *seqs[2] = {NULL, NULL};
    long lens[2] = {0, 0};
    int rc = -ENOMEM;
    if (!w || !idx) goto out;
    for (int pass = 0; pass < 2; pass++) {
        size_t k = 0;
        for (size_t c = 0; c < n; c++) {
            bool is_fixed = d->fixed[c] > 0;
            if (!d->allowed[c] || is_fixed != (pass == 0)) continue;
            w[k] = is_fixed ? (double)d->fixed[c] : d->weights[c];
            idx[k++] = (int)c;
        }
        lens[pass] = acr_dispatch_swrr_sequence(w, k, &seqs[pass]);
        if (lens[pass] < 0) goto out;
        for (long i = 0; i < lens[pass]; i++) seqs[pass][i] = idx[seqs[pass][i]];
    }
    free(d->fixed_seq);
    free(d->weighted_seq);
    d->fixed_seq = seqs[0];
    d->fixed_len = lens[0];
    d->weighted_seq = seqs[1];
    d->weighted_len = lens[1];
    seqs[0] = seqs[1] = NULL;
    rc = 0;
out:
    free(seqs[0]);
    free(seqs[1]);
    free(w);
    free(idx);
    return rc;
}

/* ---- workers ---- */

static const char *host_end(const char *id)
{
    const char *u = strchr(id, '_');
    return u ? u : id + strlen(id);
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp((*(dworker_t *const *)a)->id, (*(dworker_t *const *)b)->id);
}

static int cmp_order(const void *a, const void *b)
{
    const dworker_t *x = *(dworker_t *const *)a, *y = *(dworker_t *const *)b;
    if (x->index_within_host != y->index_within_host)
        return x->index_within_host < y->index_within_host ? -1 : 1;
    return strcmp(x->id, y->id);
}

/* Locust's _sort_workers: index within host by id order, then sort by (index, id). */
static void sort_workers(acr_dispatch_t *d)
{
    qsort(d->order, d->norder, sizeof(*d->order), cmp_id);
    for (size_t i = 0; i < d->norder; i++) {
        const char *id = d->order[i]->id;
        size_t hl = (size_t)(host_end(id) - id);
        int k = 0;
        for (size_t j = 0; j < i; j++) {
            const char *o = d->order[j]->id;
            if ((size_t)(host_end(o) - o) == hl && memcmp(o, id, hl) == 0) k++;
        }
        d->order[i]->index_within_host = k;
    }
    qsort(d->order, d->norder, sizeof(*d->order), cmp_order);
}

static void dworker_free(dworker_t *w)
{
    if (!w) return;
    free(w->id);
    free(w->counts);
    free(w);
}

static dworker_t *worker_new(const acr_dispatch_t *d, const char *id)
{
    dworker_t *w = calloc(1, sizeof(*w));
    if (!w) return NULL;
    w->id = strdup(id);
    w->counts = calloc(d->nclasses ? d->nclasses : 1, sizeof(*w->counts));
    w->live = true;
    if (!w->id || !w->counts) {
        dworker_free(w);
        return NULL;
    }
    return w;
}

static dworker_t *map_find(const acr_dispatch_t *d, const char *id, size_t *pos)
{
    for (size_t i = 0; i < d->nmap; i++)
        if (strcmp(d->map[i]->id, id) == 0) {
            if (pos) *pos = i;
            return d->map[i];
        }
    return NULL;
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 8;
    while (nc < need) nc *= 2;
    void *p = realloc(*arr, nc * elem);
    if (!p) return -ENOMEM;
    *arr = p;
    *cap = nc;
    return 0;
}

static int active_push(acr_dispatch_t *d, dworker_t *w, int cls)
{
    if (grow((void **)&d->active, &d->capactive, d->nactive + 1, sizeof(*d->active)) < 0)
        return -ENOMEM;
    d->active[d->nactive++] = (dactive_t){w, cls};
    return 0;
}

/* Places one user of class @c on the next worker of the cycle. */
static int place(acr_dispatch_t *d, int c)
{
    dworker_t *w = d->order[d->worker_pos];
    d->worker_pos = (d->worker_pos + 1) % d->norder;
    if (active_push(d, w, c) < 0) return -ENOMEM;
    w->counts[c]++;
    d->current++;
    return 0;
}

/* Locust's _prepare_rebalance + _distribute_users: the map becomes the live workers (cycle order)
 * with zero users, then the current count is placed from scratch with fresh generators. */
static void prepare_rebalance(acr_dispatch_t *d)
{
    size_t k = 0;
    for (size_t i = 0; i < d->nmap; i++) {
        if (!d->map[i]->live) {
            dworker_free(d->map[i]);
            continue;
        }
        d->map[k++] = d->map[i];
    }
    d->nmap = k;
    for (size_t i = 0; i < d->norder; i++) {
        d->map[i] = d->order[i];
        memset(d->order[i]->counts, 0, d->nclasses * sizeof(int64_t));
    }
    long want = d->current;
    d->current = 0;
    d->nactive = 0;
    d->try_fixed = true;
    gen_reset(d);
    d->worker_pos = 0;
    while (d->current < want) {
        int c = gen_next(d);
        if (c < 0 || d->norder == 0) break;
        if (place(d, c) < 0) break; /* out of memory: keep what was placed */
    }
    d->excluded = 0;
    d->rebalance = true;
}

int acr_dispatch_add_worker(acr_dispatch_t *d, const char *id)
{
    dworker_t *w = map_find(d, id, NULL);
    if (w && w->live) {
        prepare_rebalance(d);
        return 0;
    }
    if (grow((void **)&d->map, &d->capmap, d->nmap + 1, sizeof(*d->map)) < 0) return -ENOMEM;
    if (!w) {
        w = worker_new(d, id);
        if (!w) return -ENOMEM;
        d->map[d->nmap++] = w;
    }
    w->live = true;
    dworker_t **no = realloc(d->order, d->capmap * sizeof(*d->order));
    if (!no) return -ENOMEM;
    d->order = no;
    d->order[d->norder++] = w;
    sort_workers(d);
    prepare_rebalance(d);
    return 0;
}

int acr_dispatch_remove_worker(acr_dispatch_t *d, const char *id)
{
    size_t i;
    for (i = 0; i < d->norder; i++)
        if (strcmp(d->order[i]->id, id) == 0) break;
    if (i == d->norder) return -ENOENT;
    d->order[i]->live = false;
    memmove(&d->order[i], &d->order[i + 1], (d->norder - i - 1) * sizeof(*d->order));
    d->norder--;
    if (d->norder == 0) {
        d->worker_pos = 0;
        return 0;
    }
    /* as Locust: the remaining list keeps its order (no re-sort on removal) */
    prepare_rebalance(d);
    return 0;
}

/* ---- construction ---- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int acr_dispatch_new(const acr_user_class_t *classes, size_t nclasses,
                     const char *const *worker_ids, size_t nworkers, acr_dispatch_t **out)
{
    *out = NULL;
    if (nclasses == 0) return -EINVAL;
    acr_dispatch_t *d = calloc(1, sizeof(*d));
    if (!d) return -ENOMEM;
    d->nclasses = nclasses;
    d->names = calloc(nclasses, sizeof(*d->names));
    d->weights = calloc(nclasses, sizeof(*d->weights));
    d->fixed = calloc(nclasses, sizeof(*d->fixed));
    d->fixed_cur = calloc(nclasses, sizeof(*d->fixed_cur));
    d->allowed = calloc(nclasses, sizeof(*d->allowed));
    if (!d->names || !d->weights || !d->fixed || !d->fixed_cur || !d->allowed) goto nomem;
    for (size_t i = 0; i < nclasses; i++) d->allowed[i] = true;
    for (size_t i = 0; i < nclasses; i++)
        if (!(d->names[i] = strdup(classes[i].name))) goto nomem;
    qsort(d->names, nclasses, sizeof(*d->names), cmp_str);
    for (size_t i = 0; i < nclasses; i++) {
        if (i > 0 && strcmp(d->names[i - 1], d->names[i]) == 0) {
            acr_dispatch_free(d);
            return -EINVAL;
        }
        for (size_t j = 0; j < nclasses; j++)
            if (strcmp(classes[j].name, d->names[i]) == 0) {
                d->weights[i] = classes[j].weight;
                d->fixed[i] = classes[j].fixed_count > 0 ? classes[j].fixed_count : 0;
            }
    }
    if (gen_build(d) < 0) goto nomem;
    if (grow((void **)&d->map, &d->capmap, nworkers, sizeof(*d->map)) < 0) goto nomem;
    d->order = calloc(d->capmap ? d->capmap : 1, sizeof(*d->order));
    if (!d->order) goto nomem;
    for (size_t i = 0; i < nworkers; i++) {
        if (map_find(d, worker_ids[i], NULL)) continue;
        dworker_t *w = worker_new(d, worker_ids[i]);
        if (!w) goto nomem;
        d->map[d->nmap++] = w;
        d->order[d->norder++] = w;
    }
    sort_workers(d);
    d->try_fixed = true;
    d->phase = PHASE_IDLE;
    *out = d;
    return 0;
nomem:
    acr_dispatch_free(d);
    return -ENOMEM;
}

void acr_dispatch_free(acr_dispatch_t *d)
{
    if (!d) return;
    for (size_t i = 0; i < d->nmap; i++) dworker_free(d->map[i]);
    if (d->names)
        for (size_t i = 0; i < d->nclasses; i++) free(d->names[i]);
    free(d->names);
    free(d->weights);
    free(d->fixed);
    free(d->fixed_cur);
    free(d->allowed);
    free(d->fixed_seq);
    free(d->weighted_seq);
    free(d->map);
    free(d->order);
    free(d->active);
    free(d);
}

/* ---- the classes ---- */

static long count_excluded(const acr_dispatch_t *d)
{
    long n = 0;
    for (size_t c = 0; c < d->nclasses; c++)
        if (!d->allowed[c]) n += (long)class_total(d, c);
    return n;
}

int acr_dispatch_set_classes(acr_dispatch_t *d, const char *const *names, size_t n)
{
    bool *want = calloc(d->nclasses, sizeof(*want));
    if (!want) return -ENOMEM;
    for (size_t c = 0; c < d->nclasses; c++) want[c] = !names || n == 0;
    for (size_t i = 0; names && i < n; i++) {
        size_t c = 0;
        while (c < d->nclasses && !(names[i] && strcmp(names[i], d->names[c]) == 0)) c++;
        if (c == d->nclasses) {
            free(want);
            return -EINVAL;
        }
        want[c] = true;
    }
    if (memcmp(want, d->allowed, d->nclasses * sizeof(*want)) == 0) {
        free(want);
        return 0;
    }
    bool *old = d->allowed;
    d->allowed = want;
    if (gen_build(d) < 0) {
        d->allowed = old;
        free(want);
        return -ENOMEM;
    }
    free(old);
    gen_reset(d);
    /* Locust keeps its try-fixed flag here, so a fixed class that enters the subset after a
     * ramp-up with no removal would never be placed; a new subset always looks at them. */
    d->try_fixed = true;
    d->excluded = count_excluded(d);
    return 0;
}

/* ---- ramp ---- */

void acr_dispatch_new_dispatch(acr_dispatch_t *d, long target, double rate)
{
    if (target < 0) target = 0;
    if (!(rate > 0)) rate = 1;
    d->target = target;
    double fl = floor(rate);
    d->per_iteration = fl < 1 ? 1 : (fl > 1e9 ? 1000000000L : (long)fl);
    d->wait = (double)d->per_iteration / rate;
    d->current = 0;
    for (size_t i = 0; i < d->nmap; i++)
        for (size_t c = 0; c < d->nclasses; c++) d->current += d->map[i]->counts[c];
    d->excluded = count_excluded(d);
    d->phase = PHASE_START;
}

/* The ramp is over: the target is reached and every user is of an allowed class. */
static bool ramp_done(const acr_dispatch_t *d)
{
    return d->current == d->target && d->excluded == 0;
}

/* Places up to @n users from the generator; sets no_user_to_spawn when it has none. */
static void add_n(acr_dispatch_t *d, long n)
{
    for (long i = 0; i < n; i++) {
        int c = d->norder ? gen_next(d) : -1;
        if (c < 0 || place(d, c) < 0) {
            d->no_user_to_spawn = true;
            return;
        }
    }
}

static void add_users(acr_dispatch_t *d)
{
    long goal = d->current + d->per_iteration;
    if (goal > d->target) goal = d->target;
    add_n(d, goal - d->current);
}

static void remove_users(acr_dispatch_t *d)
{
    long goal = d->current - d->per_iteration;
    if (goal < d->target) goal = d->target;
    while (d->nactive > 0) {
        dactive_t a = d->active[--d->nactive];
        a.w->counts[a.cls]--;
        d->current--;
        d->try_fixed = true;
        if (d->current == 0 || d->current <= goal) break;
    }
}

/* Removes the @n most recently added users whose class is (@of_allowed) or is not allowed, in one
 * pass over the active list. Returns how many went. */
static long remove_last_of(acr_dispatch_t *d, long n, bool of_allowed)
{
    size_t i = d->nactive, lowest = d->nactive;
    long found = 0;
    while (i > 0 && found < n) {
        i--;
        if (d->allowed[d->active[i].cls] == of_allowed) {
            found++;
            lowest = i;
        }
    }
    size_t o = lowest;
    for (size_t j = lowest; j < d->nactive; j++) {
        dactive_t a = d->active[j];
        if (d->allowed[a.cls] != of_allowed) {
            d->active[o++] = a;
            continue;
        }
        a.w->counts[a.cls]--;
        d->current--;
        if (!of_allowed) d->excluded--;
    }
    d->nactive = o;
    if (found > 0) d->try_fixed = true;
    return found;
}

/* One iteration while users of classes outside the subset remain: up to per_iteration of them
 * stop (most recent first), then, within the same budget, allowed users above the target; and up
 * to per_iteration allowed users start while the allowed count is below the target. The total
 * stays at or below max(before, target) and the swap takes max(excluded, |target - allowed|) /
 * rate seconds. */
static void replace_users(acr_dispatch_t *d)
{
    long allowed = d->current - d->excluded;
    long gone =
        remove_last_of(d, d->excluded < d->per_iteration ? d->excluded : d->per_iteration, false);
    long over = allowed - d->target, room = d->per_iteration - gone;
    if (over > 0 && room > 0) allowed -= remove_last_of(d, over < room ? over : room, true);
    long under = d->target - allowed;
    if (under > 0) add_n(d, under < d->per_iteration ? under : d->per_iteration);
}

int acr_dispatch_next(acr_dispatch_t *d, double *delay)
{
    *delay = 0;
    switch (d->phase) {
    case PHASE_IDLE:
        return 0;
    case PHASE_START:
        d->in_progress = true;
        if (d->rebalance) {
            d->rebalance = false;
            /* Locust leaves dispatch_in_progress set here (docs/locust-compatibility.md,
             * dispatcher); we clear it so later joins still rebalance. */
            if (ramp_done(d)) {
                d->in_progress = false;
                d->phase = PHASE_IDLE;
            } else {
                d->phase = PHASE_AFTER_REBALANCE;
            }
            return 1;
        }
        /* fall through */
    case PHASE_AFTER_REBALANCE:
        if (ramp_done(d)) {
            d->in_progress = false;
            d->phase = PHASE_IDLE;
            return 1;
        }
        d->phase = PHASE_LOOP;
        /* fall through */
    case PHASE_LOOP:
        if (d->rebalance) {
            d->rebalance = false;
            return 1;
        }
        if (d->excluded > 0) {
            replace_users(d);
            *delay = ramp_done(d) ? 0 : d->wait;
            return 1;
        }
        if (d->no_user_to_spawn) {
            d->no_user_to_spawn = false;
            if (d->current < d->target) {
                d->in_progress = false;
                d->phase = PHASE_IDLE;
                return 0;
            }
        }
        if (d->current < d->target) {
            add_users(d);
        } else if (d->current > d->target) {
            remove_users(d);
        } else {
            d->in_progress = false;
            d->phase = PHASE_IDLE;
            return 0;
        }
        *delay = d->current == d->target ? 0 : d->wait;
        return 1;
    }
    return 0;
}

bool acr_dispatch_take_rebalance(acr_dispatch_t *d)
{
    bool r = d->rebalance;
    d->rebalance = false;
    return r;
}

long acr_dispatch_user_count(const acr_dispatch_t *d)
{
    return d->current;
}

size_t acr_dispatch_nclasses(const acr_dispatch_t *d)
{
    return d->nclasses;
}

bool acr_dispatch_class_allowed(const acr_dispatch_t *d, size_t c)
{
    return c < d->nclasses && d->allowed[c];
}

const char *acr_dispatch_class_name(const acr_dispatch_t *d, size_t c)
{
    return c < d->nclasses ? d->names[c] : NULL;
}

size_t acr_dispatch_nentries(const acr_dispatch_t *d)
{
    return d->nmap;
}

const char *acr_dispatch_entry_id(const acr_dispatch_t *d, size_t i)
{
    return i < d->nmap ? d->map[i]->id : NULL;
}

const int64_t *acr_dispatch_entry_counts(const acr_dispatch_t *d, size_t i)
{
    return i < d->nmap ? d->map[i]->counts : NULL;
}

size_t acr_dispatch_nworkers(const acr_dispatch_t *d)
{
    return d->norder;
}

/* ---- adoption ---- */

int acr_dispatch_adopt(acr_dispatch_t *d, const char *id, const int64_t *counts)
{
    dworker_t *w = map_find(d, id, NULL);
    if (!w || !w->live) {
        if (grow((void **)&d->map, &d->capmap, d->nmap + 1, sizeof(*d->map)) < 0) return -ENOMEM;
        if (!w) {
            if (!(w = worker_new(d, id))) return -ENOMEM;
            d->map[d->nmap++] = w;
        }
        dworker_t **no = realloc(d->order, d->capmap * sizeof(*d->order));
        if (!no) return -ENOMEM;
        d->order = no;
        d->order[d->norder++] = w;
        w->live = true;
        sort_workers(d);
    }
    /* its old users leave the LIFO list, its actual ones join it */
    size_t k = 0;
    for (size_t i = 0; i < d->nactive; i++)
        if (d->active[i].w != w) d->active[k++] = d->active[i];
    d->nactive = k;
    for (size_t c = 0; c < d->nclasses; c++) {
        d->current -= (long)w->counts[c];
        w->counts[c] = 0;
        for (int64_t u = 0; u < (counts[c] > 0 ? counts[c] : 0); u++) {
            if (active_push(d, w, (int)c) < 0) return -ENOMEM;
            w->counts[c]++;
            d->current++;
        }
    }
    d->target = d->current;
    d->try_fixed = true;
    return 0;
}
