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

/** Installs acrida.events (the standard events) and acrida.event([name]) into the acrida module
 *  (the one acr_scenario_open registered, else package.loaded.acrida). Call after
 *  acr_scenario_open; a second call on the same state does nothing. Returns 0, -EINVAL when there
 *  is no acrida module, or -ENOMEM. */
int acr_events_open(struct lua_State *L);

/** Fires the standard event @name with the @nargs values on top of @L's stack (popped), calling
 *  each listener protected on @L, in registration order (listeners should not wait: acrida.sleep
 *  inside one raises, and that error is reported like any other). Each error goes to @on_error
 *  (NULL: the state's handler, see acr_events_set_error_handler, else the log). Returns the
 *  number of listeners that raised; 0 when none is registered. */
int acr_events_fire(struct lua_State *L, const char *name, int nargs, acr_events_error_fn on_error,
                    void *ud);

/** Calls the function below the @nargs values on top of @L's stack (all popped) protected as a
 *  listener is: an error goes to @on_error (NULL: the state's handler, else the log, naming
 *  @what). For message handlers and other scenario callbacks. Returns 0, or 1 when it raised. */
int acr_events_call(struct lua_State *L, int nargs, const char *what, acr_events_error_fn on_error,
                    void *ud);

/** The handler of listener errors for @L: errors raised by listeners during a Lua-side
 *  `ev:fire(...)` (standard or custom event) go there, and those of acr_events_fire called with a
 *  NULL @on_error. The listener's error never propagates to the code that fired the event. Until a
 *  handler is set, errors are logged. A later call replaces the handler. */
void acr_events_set_error_handler(struct lua_State *L, acr_events_error_fn fn, void *ud);

/** Whether the event @name has at least one listener: the cheap test before building the
 *  arguments of a hot event such as `request`. */
bool acr_events_has_listeners(struct lua_State *L, const char *name);

#endif
