/*
 * The scenario's events (acrida.events.<name>, acrida.event()) for both roles. An event is a Lua
 * object with add_listener(fn), remove_listener(fn) and fire(...); listeners run in registration
 * order, each protected: an error in one is reported (as an exception on workers, a log line and
 * an exception row on the master) and the next one still runs. The standard events: init,
 * test_start, test_stop, spawning_complete, user_start, user_stop, request, report_to_master,
 * worker_report, quitting (docs/scenario-api.md says where and how often each fires).
 * Error convention: 0 or a negative errno.
 */
#ifndef ACR_EVENTS_H
#define ACR_EVENTS_H

#include <stdbool.h>

struct lua_State;

/** Called for each listener that raised: @msg the error message, @traceback its traceback
 *  (file:line lines), both valid during the call. */
typedef void (*acr_events_error_fn)(const char *msg, const char *traceback, void *ud);

/** Installs acrida.events (the standard events) and acrida.event() into the acrida module at
 *  the top of @L's stack... or in package.loaded.acrida; call once per state, after
 *  acr_scenario_open. Returns 0 or -ENOMEM. */
int acr_events_open(struct lua_State *L);

/** Fires the event @name with the @nargs values on top of @L's stack (popped), calling each
 *  listener protected on @L (listeners cannot wait: acrida.sleep inside one is an error). Errors
 *  go to @on_error (NULL: logged). Returns the number of listeners that raised; 0 when none is
 *  registered. */
int acr_events_fire(struct lua_State *L, const char *name, int nargs, acr_events_error_fn on_error,
                    void *ud);

/** Whether the event @name has at least one listener: the cheap test before building the
 *  arguments of a hot event such as `request`. */
bool acr_events_has_listeners(struct lua_State *L, const char *name);

#endif
