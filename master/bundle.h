/*
 * The bundle the master ships to its acrida workers (common/bundle.h, proto/PROTOCOL.md
 * "scenario"): built once at start from the scenario the master loaded (its required modules and
 * acrida.files, or --scenario-dir), with the --max-bundle-size check, and the hash a worker
 * running its own -f is compared with.
 *
 * Error convention: 0 or a negative errno with the reason in a caller buffer; -EFBIG for a bundle
 * over --max-bundle-size (the reason names its size and its largest files).
 */
#ifndef ACR_MASTER_BUNDLE_H
#define ACR_MASTER_BUNDLE_H

#include "common/bundle.h"

#include <stddef.h>

struct lua_State;
struct acr_cli_opts;

typedef struct acr_master_bundle {
    acr_bundle_t b; /**< what is shipped */
    char *main;     /**< the scenario's path in it */
    /** The hash of the bundle the default rules give (required modules + acrida.files): what a
     *  worker with its own -f reports. Equal to b.sha256 without --scenario-dir. */
    char default_sha256[65];
} acr_master_bundle_t;

/** Builds @mb from the scenario that ran in @L and the options (scenario, scenario_dir,
 *  max_bundle_size). */
int acr_master_bundle_build(struct lua_State *L, const struct acr_cli_opts *o,
                            acr_master_bundle_t *mb, char *err, size_t errlen);
void acr_master_bundle_free(acr_master_bundle_t *mb);

#endif
