/*
 * The worker's stall watchdog and its signal handling: a thread that does not depend on the event
 * loop. It notices when Lua code has run for --stall-timeout without yielding (a user's resume,
 * from worker/users.c's acr_watchdog_enter/leave) or when the loop has not turned for that long
 * (the scenario's main chunk, an event listener), and interrupts the Lua code with an instruction
 * hook (lua_sethook from another thread, as lua.c does on SIGINT): the runtime's hook
 * (worker/runtime.c) raises "stalled: ..." in the running code, which ends that user. When the
 * code cannot be interrupted (a blocking C call) the process exits with ACR_WATCHDOG_EXIT_CODE
 * after a further ACR_WATCHDOG_GRACE_S, naming the class.
 *
 * It also receives SIGTERM and SIGINT (a handler writes to its self-pipe) and hands them to the
 * loop through a uv_async_t; when the loop does not take a signal within 0.5 s it interrupts the
 * Lua code the same way, and after 1.5 s the process exits with a message (no final report is
 * possible then).
 *
 * LuaJIT's compiled traces never look at hooks: the watched state runs LuaJIT's profiler at line
 * granularity, whose checks in compiled code send a spinning trace back to the interpreter within
 * 100 ms of CPU time, where the hook runs (docs/platform-notes.md).
 */
#ifndef ACR_WORKER_WATCHDOG_H
#define ACR_WORKER_WATCHDOG_H

#include <lua.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define ACR_WATCHDOG_EXIT_CODE 3 /**< the loop stayed stuck: no interruption was possible */
#define ACR_WATCHDOG_GRACE_S 2.0 /**< after the interruption is asked, before that exit */

typedef struct acr_watchdog acr_watchdog_t;

/** Why the running Lua code is being interrupted. */
typedef enum {
    ACR_WD_NONE = 0,
    ACR_WD_STALL,  /**< ran for the stall timeout without yielding */
    ACR_WD_SIGNAL, /**< SIGTERM/SIGINT arrived and the loop did not take it */
} acr_wd_reason_t;

typedef struct acr_watchdog_config {
    uv_loop_t *loop;
    double stall_timeout; /**< seconds; 0 = no stall checks (signals are still handled) */
    /** SIGTERM or SIGINT, called on the loop */
    void (*on_signal)(int signum, void *ud);
    void *ud;
} acr_watchdog_config_t;

/**
 * Installs the SIGTERM and SIGINT handlers (one watchdog per process), starts the thread and the
 * loop's handles. Returns 0 or a negative errno / libuv error with the reason in @err.
 */
int acr_watchdog_start(acr_watchdog_t **out, const acr_watchdog_config_t *cfg, char *err,
                       size_t errlen);
/** The stall timeout in seconds (0: off). */
double acr_watchdog_timeout(const acr_watchdog_t *wd);
/** The Lua state to interrupt with @hook from now on (loop thread); starts LuaJIT's profiler on it
 *  (stopped on the state watched before: LuaJIT profiles one state per process). */
void acr_watchdog_set_lua(acr_watchdog_t *wd, lua_State *L, lua_Hook hook);
/** Forgets @L if it is the watched state and stops its profiler (before it is closed). */
void acr_watchdog_drop_lua(acr_watchdog_t *wd, lua_State *L);

/** A user's resume starts (loop thread): @cls names its class (NULL for a spawned task); the
 *  string must live until the matching acr_watchdog_leave. */
void acr_watchdog_enter(acr_watchdog_t *wd, const char *cls);
/** The resume returned. Returns whether the hook was armed for it (then it has been removed). */
bool acr_watchdog_leave(acr_watchdog_t *wd);
/** For the hook, on the loop: why the running code is interrupted (ACR_WD_NONE: a stray hook,
 *  remove it) and, for a stall, how long it had run (seconds) in *@secs. */
acr_wd_reason_t acr_watchdog_reason(acr_watchdog_t *wd, double *secs);

/** From the hook, after raising its error: the hook fires again every @count VM instructions
 *  until the resume ends, so code that catches the error cannot go on. */
void acr_watchdog_rearm(acr_watchdog_t *wd, int count);

/** Stops the thread (joined at once) and closes the loop's handles; @closed runs on the loop
 *  once they are closed. The signal handlers stay until acr_watchdog_free. */
void acr_watchdog_close(acr_watchdog_t *wd, void (*closed)(void *ud), void *ud);
/** Frees a closed watchdog (after the loop ran the close callbacks) and restores the signal
 *  handlers acr_watchdog_start replaced. NULL is fine. */
void acr_watchdog_free(acr_watchdog_t *wd);

#endif
