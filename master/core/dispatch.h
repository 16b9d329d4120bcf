/*
 * The users dispatcher: Locust 2.12's UsersDispatcher (docs/locust-compatibility.md) as an explicit
 * state machine instead of a Python generator. It decides, per ramp iteration, the absolute user
 * count per worker and class; the runner paces the iterations and sends one `spawn` per worker.
 *
 * Kept exactly as Locust: classes sorted by name; workers ordered by (index_within_host, id);
 * smooth weighted round robin over weights normalised to round(2*w/min_w) (half to even),
 * precomputed over sum(normalised) picks and cycled; fixed_count classes first; per_iteration =
 * max(1, floor(rate)), wait = per_iteration / rate; ramp-down removes the most recently added users
 * first (LIFO); add/remove of a worker rebalances the current user count from scratch (a removal
 * keeps the remaining workers in their order, as Locust, while an add re-sorts them). One
 * deliberate difference: Locust's fixed-class loop never ends when a fixed class is already full
 * when it (re)starts (a hang, e.g. ramping 9 -> 3 -> 9 with a fixed class); here the loop ends once
 * every fixed class is full. In every case where Locust terminates, the sequence is the same.
 *
 * A class subset (acr_dispatch_set_classes, a shape's classes) rebuilds the generator for that
 * subset, as Locust's new_dispatch(..., user_classes) does: new users are picked from it only, and
 * rebalances place users from it only. Locust then leaves the users of the other classes running
 * (they go only when a ramp-down's LIFO reaches them, so a shape moving 10 users from class A to
 * class B keeps 10 A users); here the next ramp stops them, most recent first, and starts allowed
 * users in their place, per_iteration of each per iteration (docs/locust-compatibility.md).
 *
 * No I/O and no clock: it only computes. Error convention: 0 or -ENOMEM / -EINVAL.
 */
#ifndef ACR_MASTER_DISPATCH_H
#define ACR_MASTER_DISPATCH_H

#include "common/scenario.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct acr_dispatch acr_dispatch_t;

/**
 * Creates a dispatcher for @classes (copied; sorted by name inside) and the initial @worker_ids
 * (copied). Returns 0 and *@out, -EINVAL for no class or a duplicate class name, or -ENOMEM.
 */
int acr_dispatch_new(const acr_user_class_t *classes, size_t nclasses,
                     const char *const *worker_ids, size_t nworkers, acr_dispatch_t **out);
void acr_dispatch_free(acr_dispatch_t *d);

/** Adds a worker (an id already present is not duplicated) and prepares a rebalance. */
int acr_dispatch_add_worker(acr_dispatch_t *d, const char *id);
/** Removes a worker and prepares a rebalance (nothing happens when it was the last one). Returns 0
 *  or -ENOENT for an unknown id. */
int acr_dispatch_remove_worker(acr_dispatch_t *d, const char *id);

/**
 * Restricts new users to the classes named in @names (NULL or @n 0: every class) from the next
 * ramp on; the next acr_dispatch_new_dispatch replaces the users of the other classes. The same
 * subset again changes nothing. Returns 0, -EINVAL for a name that is not a class (nothing
 * changes), or -ENOMEM.
 */
int acr_dispatch_set_classes(acr_dispatch_t *d, const char *const *names, size_t n);

/** Adoption (a restarted master takes over running workers): places worker @id (added when new,
 *  without a rebalance) with exactly @counts users per class (nclasses counters in class order,
 *  negative = 0), replacing what it had, so that nobody moves. Returns 0 or -ENOMEM. */
int acr_dispatch_adopt(acr_dispatch_t *d, const char *id, const int64_t *counts);

/** Starts a new ramp (Locust's new_dispatch): from the current distribution to @target users at
 *  @rate users/s (rate > 0). */
void acr_dispatch_new_dispatch(acr_dispatch_t *d, long target, double rate);

/**
 * Computes the next iteration. Returns 1 when a distribution was produced (read it with the
 * accessors below and send it), 0 when the ramp is over. *@delay receives the seconds to wait
 * before calling again (the ramp wait after an add/remove step that did not reach the target, else
 * 0).
 */
int acr_dispatch_next(acr_dispatch_t *d, double *delay);

/** True when a rebalance is pending; clears it. The current distribution is the rebalanced one, so
 *  the runner can send it at once instead of waiting for the next ramp step. */
bool acr_dispatch_take_rebalance(acr_dispatch_t *d);

/** Users currently placed. */
long acr_dispatch_user_count(const acr_dispatch_t *d);

/** The classes, sorted by name. Strings are owned by the dispatcher. */
size_t acr_dispatch_nclasses(const acr_dispatch_t *d);
const char *acr_dispatch_class_name(const acr_dispatch_t *d, size_t c);
/** Whether class @c (the dispatcher's order) is in the current subset (acr_dispatch_set_classes).
 */
bool acr_dispatch_class_allowed(const acr_dispatch_t *d, size_t c);

/**
 * The distribution map (Locust's users_on_workers): entries in map order; @counts points at
 * nclasses counters in class order. Valid until the next call that changes the dispatcher.
 */
size_t acr_dispatch_nentries(const acr_dispatch_t *d);
const char *acr_dispatch_entry_id(const acr_dispatch_t *d, size_t i);
const int64_t *acr_dispatch_entry_counts(const acr_dispatch_t *d, size_t i);

/** Number of workers in the cycle. */
size_t acr_dispatch_nworkers(const acr_dispatch_t *d);

/** Computes the smooth weighted round-robin sequence Locust cycles over: weights normalised to
 *  round(2*w/min_w) half-to-even; the sequence has sum(normalised) picks written as indexes into
 *  @weights to *@seq (malloc'ed, caller frees). Returns its length, 0 for n == 0, or -ENOMEM. */
long acr_dispatch_swrr_sequence(const double *weights, size_t n, int **seq);

#endif
