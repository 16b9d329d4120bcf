/*
 * Loading a Lua scenario file and reading the user classes it declares. The master uses this to
 * validate a scenario (syntax and load errors with file:line, exit 1) and to learn the classes
 * the dispatcher places; the worker's runtime builds on the same loader (worker/runtime*.c) to
 * run them. The Lua C API is used only here and in the worker's runtime.
 *
 * Error convention: 0 or a negative errno; -EINVAL with a message such as
 * "examples/bad.lua:3: '=' expected near 'end'" or "scenario declares no user class" in @err.
 */
#ifndef ACR_SCENARIO_H
#define ACR_SCENARIO_H

#include <stdbool.h>
#include <stddef.h>

typedef struct acr_user_class {
    char *name;       /**< unique class name */
    double weight;    /**< >= 0; ignored when fixed_count > 0 */
    long fixed_count; /**< 0 = weighted */
    char *host;       /**< the class's host, or NULL */
    /** The tasks with weight > 0 in declaration order (GET /tasks): their names (the task's
     *  `name`, else "task<i>" with i its 1-based position in `tasks`) and weights (> 0). Filled
     *  by acr_scenario_read_classes; NULL and 0 in classes built by hand. */
    char **task_names;
    double *task_weights;
    size_t ntasks;
} acr_user_class_t;

/**
 * Loads @path in a fresh Lua state in the "master" role (acrida.runner.role == "master"; user
 * classes are recorded, nothing runs) and returns the classes in declaration order.
 * *@out is malloc'ed; free it with acr_scenario_classes_free(). Classes with weight 0 and
 * fixed_count 0 are dropped, as Locust does; none left is an error.
 */
int acr_scenario_classes(const char *path, acr_user_class_t **out, size_t *n, char *err,
                         size_t errlen);
void acr_scenario_classes_free(acr_user_class_t *classes, size_t n);

/**
 * acr_scenario_classes with the tag filter of --tags/--exclude-tags (NULL-terminated lists, NULL
 * or empty = no filter; see acr_scenario_apply_tags). A class left without a task is an error:
 * "user class 'X' has no task left after --tags/--exclude-tags".
 */
int acr_scenario_classes_tagged(const char *path, const char *const *tags,
                                const char *const *exclude, acr_user_class_t **out, size_t *n,
                                char *err, size_t errlen);

/* ---- lower level, for the worker's runtime (worker/runtime*.c) ---- */

struct lua_State;

/**
 * Opens LuaJIT's standard libraries in @L and installs the `acrida` module (package.loaded and the
 * global) for @role ("master" or "worker"): acrida.user, the wait_time helpers, acrida.time,
 * acrida.runner.role, and role defaults for acrida.sleep (an error outside a worker's user) and
 * acrida.report (a no-op), acrida.spawn (an error outside a worker), and acrida.events
 * (common/events.h). The worker's runtime then replaces sleep, report and spawn. Seeds
 * math.random from the pid and the clock. Returns 0 or -EINVAL (message in @err), -ENOMEM.
 */
int acr_scenario_open(struct lua_State *L, const char *role, char *err, size_t errlen);

/**
 * Runs the scenario file @path (or the in-memory @src of @len bytes named @chunkname) in a state
 * prepared by acr_scenario_open(). `require` then also finds modules next to the file. Errors:
 * "<file>:<line>: <message>" in @err, -EINVAL.
 */
int acr_scenario_exec_file(struct lua_State *L, const char *path, char *err, size_t errlen);
int acr_scenario_exec_string(struct lua_State *L, const char *chunkname, const char *src,
                             size_t len, char *err, size_t errlen);

/** Runs the in-memory @src named @chunkname as acr_scenario_exec_string, without adding a
 *  directory to package.path. */
int acr_scenario_exec_chunk(struct lua_State *L, const char *chunkname, const char *src, size_t len,
                            char *err, size_t errlen);

/**
 * Runs the scenario @src (@len bytes) of a bundle extracted in @root, where it is the file @main
 * (a bundle path, common/bundle.h): `require` looks in the scenario's directory of the bundle and
 * then its root first (chunk names are bundle paths: "lib/util.lua:3: ..."), relative
 * (./) entries leave package.path and package.cpath, and relative paths given to io.open,
 * io.lines, dofile and loadfile resolve against the scenario's directory in @root. Errors as
 * acr_scenario_exec_file.
 */
int acr_scenario_exec_bundle(struct lua_State *L, const char *root, const char *main,
                             const char *src, size_t len, char *err, size_t errlen);

/** Installs acrida.files (called by acr_scenario_open): the scenario declares data files, each
 *  name checked (relative, no "..", common/bundle.h) with a file:line error otherwise, and
 *  recorded for acr_scenario_push_files; nothing else happens and it returns nothing. */
int acr_scenario_files_open(struct lua_State *L);
/** Pushes the list of the names acrida.files recorded, in declaration order. */
void acr_scenario_push_files(struct lua_State *L);

struct acr_bundle;
/**
 * The bundle of the scenario @scenario that ran in @L (common/bundle.h): without @scenario_dir,
 * the scenario file, the modules of package.loaded and those named by `require "x"` literals in
 * the shipped Lua files (recursively) that are files in the scenario's directory, and the files
 * of acrida.files; with @scenario_dir, every file under it (the scenario must be inside it) and
 * the declared files must be among them. *@main_out (malloc'ed) is the scenario's path in the
 * bundle. -EFBIG when the content passes @max bytes; errors name the file.
 */
int acr_scenario_bundle_build(struct lua_State *L, const char *scenario, const char *scenario_dir,
                              size_t max, struct acr_bundle *out, char **main_out, char *err,
                              size_t errlen);

/**
 * Filters the task trees of every declared class: a task runs only if its tags (its own, and
 * those of the tasksets around it) include one of @tags (when non-empty) and none of @exclude;
 * tasksets left empty are dropped. The filter starts from the declared tasks each time, so a
 * later call with other lists replaces it; empty lists restore every task. A class with weight
 * or fixed_count > 0 left without a task fails the whole call (nothing changes): -EINVAL with
 * "user class 'X' has no task left after --tags/--exclude-tags" in @err.
 */
int acr_scenario_apply_tags(struct lua_State *L, const char *const *tags,
                            const char *const *exclude, char *err, size_t errlen);

/** Number of classes declared so far (acrida.user calls), including weight-0 ones. */
size_t acr_scenario_nclasses(struct lua_State *L);

/**
 * Pushes the validated class table @i (0-based, declaration order) on @L's stack. Its fields:
 * name, weight, fixed_count, host (nil or without a trailing '/'), wait_time (nil or function),
 * on_start, on_stop, entries (the declared task list), root (the runnable task tree after the
 * tag filter: items, n, cum, total, names, seq, decl, wait_time, on_start, on_stop; nil when the
 * filter left nothing), ntasks, task_fns, task_cum (cumulative weights), task_names (of the
 * root's entries), total (sum of weights) and proto (the extra fields, the instances' __index).
 */
void acr_scenario_push_class(struct lua_State *L, size_t i);

/** Reads every declared class into *@out (malloc'ed, free with acr_scenario_classes_free()).
 *  @drop_zero drops classes with weight 0 and fixed_count 0; none left is an error. */
int acr_scenario_read_classes(struct lua_State *L, bool drop_zero, acr_user_class_t **out,
                              size_t *n, char *err, size_t errlen);

#endif
