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

#include <stddef.h>

typedef struct acr_user_class {
    char *name;      /**< unique class name */
    double weight;   /**< >= 0; ignored when fixed_count > 0 */
    long fixed_count; /**< 0 = weighted */
    char *host;      /**< the class's host, or NULL */
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

#endif
