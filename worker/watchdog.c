/*
 * The stall watchdog (worker/watchdog.h). The loop publishes, with atomics only, when it last
 * turned (a 250 ms timer) and when the current user's resume began; the thread wakes every 100 ms
 * (poll on a self-pipe, which also brings SIGTERM/SIGINT) and compares. Interrupting means
 * lua_sethook with a count of 1 on the watched state: LuaJIT's lua_sethook only stores the hook and
 * switches the interpreter's dispatch table, which is what lua.c does from a signal handler. The
 * hook runs on the loop's thread at the next VM instruction and asks acr_watchdog_reason why.
 * Compiled traces never look at hooks; the watched state runs LuaJIT's profiler (PROFILE_MODE),
 * whose line-level checks make a trace leave to the interpreter at the next sample (every 100 ms of
 * CPU), where the hook then runs: the JIT stays on. A mutex
 * orders the calls of lua_sethook between the two threads and guards the state's pointer, which
 * the loop changes when a scenario is (re)loaded.
 */
#define _GNU_SOURCE /* pipe2 */
#include "worker/watchdog.h"

#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <luajit.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TICK_MS 100
#define BEAT_MS 250
#define SIGNAL_INTERRUPT_MS 500 /* a signal the loop has not taken: interrupt the Lua code */
#define SIGNAL_EXIT_MS 1500     /* ... and exit when it still has not */
/* LuaJIT's profiler at line granularity, a sample every 100 ms of CPU time: traces compiled
 * while it runs check its flag at every new line and leave to the interpreter when a sample is
 * due, where the count hook then runs (docs/platform-notes.md). */
#define PROFILE_MODE "li100"

struct acr_watchdog {
    uv_loop_t *loop;
    uint64_t timeout_ms;
    void (*on_signal)(int signum, void *ud);
    void *ud;
    uv_async_t async;
    uv_timer_t beat_timer;
    int closes;
    void (*closed)(void *ud);
    void *closed_ud;
    pthread_t thread;
    bool thread_on;
    int pipe_rd, pipe_wr;               /* the signal handler's self-pipe */
    struct sigaction old_term, old_int; /* restored by acr_watchdog_free */
    pthread_mutex_t mu;                 /* guards L, hook and every lua_sethook */
    lua_State *L;
    lua_Hook hook;
    /* written by the loop */
    _Atomic uint64_t beat_ms;  /* monotonic ms of the last loop turn */
    _Atomic uint64_t since_ms; /* monotonic ms the current resume began; 0: none */
    _Atomic uint64_t seq;      /* resumes so far */
    _Atomic(const char *) cls; /* the current resume's class, NULL for a spawned task */
    _Atomic bool sig_taken;    /* the loop took the first signal */
    /* written by the thread */
    _Atomic bool armed;         /* the hook is set for an interruption */
    _Atomic uint64_t armed_seq; /* the resume it is for; 0: not a resume */
    _Atomic int reason;         /* acr_wd_reason_t */
    _Atomic uint64_t ran_ms;    /* how long the stalled code had run when armed */
    _Atomic int sig_pending;    /* a signal for the loop */
    _Atomic uint64_t sig_at_ms; /* when the first signal arrived; 0: none */
    _Atomic bool quit;
};

/* The write end of the running watchdog's self-pipe, -1 when none: the only process-wide state
 * here, because a signal handler gets no argument (one watchdog per worker process). */
static volatile sig_atomic_t signal_fd = -1;

/* SIGTERM/SIGINT: one byte, the signal's number, to the thread (write is async-signal-safe).
 * A handler rather than a blocked mask, so that processes the scenario starts (os.execute,
 * io.popen) do not inherit SIGTERM blocked. */
static void on_signal_handler(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    if (signal_fd >= 0 && write(signal_fd, &b, 1) < 0) {
        /* the pipe is full: signals are already pending */
    }
    errno = saved;
}

static uint64_t now_ms(void)
{
    return acr_mono_us() / 1000;
}

/* Thread: sets the hook for @reason (the resume @seq, 0 for none). */
static void arm(acr_watchdog_t *wd, acr_wd_reason_t reason, uint64_t seq, uint64_t ran)
{
    pthread_mutex_lock(&wd->mu);
    atomic_store(&wd->reason, (int)reason);
    atomic_store(&wd->ran_ms, ran);
    atomic_store(&wd->armed_seq, seq);
    atomic_store(&wd->armed, true);
    if (wd->L && wd->hook) lua_sethook(wd->L, wd->hook, LUA_MASKCOUNT, 1);
    pthread_mutex_unlock(&wd->mu);
}

/* "user class <name>" (escaped: a scenario's text) or "a task of acrida.spawn", into @buf. */
static const char *who(const char *cls, char *buf, size_t len)
{
    char esc[ACR_ESC_MAX];
    if (!cls) return "a task of acrida.spawn";
    snprintf(buf, len, "user class %s", acr_log_escape_str(esc, sizeof esc, cls));
    return buf;
}

/* Thread: the loop stayed stuck; nothing more can be done from here. */
static void fatal(const char *what, const char *cls, double secs)
{
    char wb[ACR_ESC_MAX + 16];
    ACR_ERROR("%s: %s has run Lua code for %.1f s without yielding and could not be "
              "interrupted (C code or a blocking call); exiting with code %d, no final report can "
              "be sent",
              what, who(cls, wb, sizeof wb), secs, ACR_WATCHDOG_EXIT_CODE);
    fflush(NULL);
    _exit(ACR_WATCHDOG_EXIT_CODE);
}

typedef struct thread_state {
    uint64_t stall_seq;  /* the resume whose stall was armed */
    uint64_t armed_at;   /* when it was armed */
    uint64_t loop_armed; /* when a loop stall (outside a resume) was last armed */
    bool sig_armed;
} thread_state_t;

static void check_stall(acr_watchdog_t *wd, thread_state_t *ts, uint64_t now)
{
    if (wd->timeout_ms == 0) return;
    uint64_t since = atomic_load(&wd->since_ms), seq = atomic_load(&wd->seq);
    if (since && now - since >= wd->timeout_ms) {
        const char *cls = atomic_load(&wd->cls);
        if (ts->stall_seq != seq) {
            char wb[ACR_ESC_MAX + 16];
            ACR_WARN("stall: %s has run Lua code for %.1f s without yielding; "
                     "interrupting it",
                     who(cls, wb, sizeof wb), (double)(now - since) / 1000);
            arm(wd, ACR_WD_STALL, seq, now - since);
            ts->stall_seq = seq;
            ts->armed_at = now;
        } else if (now - ts->armed_at >= (uint64_t)(ACR_WATCHDOG_GRACE_S * 1000)) {
            fatal("stalled", cls, (double)(now - since) / 1000);
        }
        return;
    }
    uint64_t beat = atomic_load(&wd->beat_ms);
    if (!since && now > beat && now - beat >= wd->timeout_ms &&
        (!ts->loop_armed || now - ts->loop_armed >= wd->timeout_ms)) {
        /* outside users' tasks (the main chunk, a listener, C work): interrupt Lua if it runs,
         * never exit, since slow C work of our own ends by itself */
        ACR_WARN("stall: the event loop has not turned for %.1f s (not in a user's task); "
                 "interrupting any Lua code that runs",
                 (double)(now - beat) / 1000);
        arm(wd, ACR_WD_STALL, 0, now - beat);
        ts->loop_armed = now;
    }
}

static void check_signal(acr_watchdog_t *wd, thread_state_t *ts, uint64_t now)
{
    uint64_t at = atomic_load(&wd->sig_at_ms);
    if (!at || atomic_load(&wd->sig_taken)) return;
    const char *cls = atomic_load(&wd->cls);
    bool in_user = atomic_load(&wd->since_ms) != 0;
    char wb[ACR_ESC_MAX + 16];
    if (now - at >= SIGNAL_EXIT_MS) {
        ACR_ERROR("SIGTERM/SIGINT: the event loop is stuck%s%s and could not be interrupted; "
                  "exiting with code %d now, no final report can be sent",
                  in_user ? " in " : "", in_user ? who(cls, wb, sizeof wb) : "",
                  ACR_WATCHDOG_EXIT_CODE);
        fflush(NULL);
        _exit(ACR_WATCHDOG_EXIT_CODE);
    }
    if (now - at >= SIGNAL_INTERRUPT_MS && !ts->sig_armed) {
        ts->sig_armed = true;
        ACR_WARN("SIGTERM/SIGINT: the event loop has not taken it for %.1f s%s%s; interrupting "
                 "the Lua code",
                 (double)(now - at) / 1000, in_user ? ", busy in " : "",
                 in_user ? who(cls, wb, sizeof wb) : "");
        uint64_t since = atomic_load(&wd->since_ms);
        arm(wd, ACR_WD_SIGNAL, since ? atomic_load(&wd->seq) : 0, since ? now - since : 0);
    }
}

static void *thread_main(void *arg)
{
    acr_watchdog_t *wd = arg;
    thread_state_t ts = {0};
    while (!atomic_load(&wd->quit)) {
        struct pollfd pfd = {.fd = wd->pipe_rd, .events = POLLIN};
        unsigned char b = 0;
        int sig = 0;
        if (poll(&pfd, 1, TICK_MS) > 0 && read(wd->pipe_rd, &b, 1) == 1) sig = b;
        uint64_t now = now_ms();
        if (sig == SIGTERM || sig == SIGINT) {
            ACR_INFO("received %s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
            uint64_t zero = 0;
            atomic_compare_exchange_strong(&wd->sig_at_ms, &zero, now);
            atomic_store(&wd->sig_pending, sig);
            uv_async_send(&wd->async);
        }
        check_signal(wd, &ts, now);
        check_stall(wd, &ts, now);
    }
    return NULL;
}

static void async_cb(uv_async_t *a)
{
    acr_watchdog_t *wd = a->data;
    atomic_store(&wd->beat_ms, now_ms());
    int sig = atomic_exchange(&wd->sig_pending, 0);
    if (!sig) return;
    atomic_store(&wd->sig_taken, true);
    if (wd->on_signal) wd->on_signal(sig, wd->ud);
}

static void beat_cb(uv_timer_t *t)
{
    acr_watchdog_t *wd = t->data;
    atomic_store(&wd->beat_ms, now_ms());
    /* The loop turns again: a hook armed for a stall outside users' tasks that no Lua code met
     * (slow C work of our own) must not fail whatever Lua runs next. */
    if (!atomic_load(&wd->armed) || atomic_load(&wd->armed_seq) != 0) return;
    pthread_mutex_lock(&wd->mu);
    if (atomic_load(&wd->armed) && atomic_load(&wd->armed_seq) == 0) {
        atomic_store(&wd->armed, false);
        if (wd->L) lua_sethook(wd->L, NULL, 0, 0);
    }
    pthread_mutex_unlock(&wd->mu);
}

int acr_watchdog_start(acr_watchdog_t **out, const acr_watchdog_config_t *cfg, char *err,
                       size_t errlen)
{
    *out = NULL;
    acr_watchdog_t *wd = calloc(1, sizeof(*wd));
    if (!wd) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    wd->loop = cfg->loop;
    wd->timeout_ms = cfg->stall_timeout > 0 ? (uint64_t)(cfg->stall_timeout * 1000) : 0;
    wd->on_signal = cfg->on_signal;
    wd->ud = cfg->ud;
    atomic_store(&wd->beat_ms, now_ms());
    pthread_mutex_init(&wd->mu, NULL);
    wd->pipe_rd = wd->pipe_wr = -1;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot start the watchdog: pipe: %s", strerror(e));
        pthread_mutex_destroy(&wd->mu);
        free(wd);
        return -e;
    }
    wd->pipe_rd = fds[0];
    wd->pipe_wr = fds[1];
    signal_fd = wd->pipe_wr;
    struct sigaction sa = {.sa_handler = on_signal_handler, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, &wd->old_term);
    sigaction(SIGINT, &sa, &wd->old_int);
    int rc = uv_async_init(cfg->loop, &wd->async, async_cb);
    if (rc == 0) {
        wd->async.data = wd;
        wd->closes++;
        rc = uv_timer_init(cfg->loop, &wd->beat_timer);
    }
    if (rc == 0) {
        wd->beat_timer.data = wd;
        wd->closes++;
        uv_timer_start(&wd->beat_timer, beat_cb, BEAT_MS, BEAT_MS);
        uv_unref((uv_handle_t *)&wd->beat_timer);
        uv_unref((uv_handle_t *)&wd->async);
        rc = -pthread_create(&wd->thread, NULL, thread_main, wd);
        wd->thread_on = rc == 0;
    }
    *out = wd;
    if (rc < 0) {
        snprintf(err, errlen, "cannot start the watchdog: %s",
                 rc > -1000 ? strerror(-rc) : uv_strerror(rc));
        return rc;
    }
    return 0;
}

double acr_watchdog_timeout(const acr_watchdog_t *wd)
{
    return (double)wd->timeout_ms / 1000;
}

/* The profiler's callback: nothing to record, it is only there for its trace exits. */
static void profile_cb(void *data, lua_State *L, int samples, int vmstate)
{
    (void)data;
    (void)L;
    (void)samples;
    (void)vmstate;
}

/* SIGPROF while LuaJIT's profiler is off: nothing to do. */
static void stray_sigprof(int signum)
{
    (void)signum;
}

/* LuaJIT's profiler puts SIGPROF's previous action back when it stops, but its timer is
 * process-wide and a tick generated just before can still be delivered afterwards (valgrind
 * delivers it late enough to see it): with the default action that kills the worker. A handler
 * that does nothing stays after the profiler stops and, unlike SIG_IGN, is not inherited by the
 * programs a scenario runs. */
static void keep_stray_sigprof(void)
{
    struct sigaction old;
    if (sigaction(SIGPROF, NULL, &old) < 0 || old.sa_handler != SIG_DFL) return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = stray_sigprof;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGPROF, &sa, NULL);
}

void acr_watchdog_set_lua(acr_watchdog_t *wd, lua_State *L, lua_Hook hook)
{
    keep_stray_sigprof();
    pthread_mutex_lock(&wd->mu);
    if (wd->L && wd->L != L) luaJIT_profile_stop(wd->L); /* one profiled state per process */
    wd->L = L;
    wd->hook = hook;
    pthread_mutex_unlock(&wd->mu);
    if (L) luaJIT_profile_start(L, PROFILE_MODE, profile_cb, NULL);
}

void acr_watchdog_drop_lua(acr_watchdog_t *wd, lua_State *L)
{
    pthread_mutex_lock(&wd->mu);
    if (wd->L == L) {
        luaJIT_profile_stop(L);
        wd->L = NULL;
        wd->hook = NULL;
    }
    pthread_mutex_unlock(&wd->mu);
}

void acr_watchdog_enter(acr_watchdog_t *wd, const char *cls)
{
    atomic_store(&wd->cls, cls);
    atomic_fetch_add(&wd->seq, 1);
    atomic_store(&wd->since_ms, now_ms());
}

bool acr_watchdog_leave(acr_watchdog_t *wd)
{
    uint64_t now = now_ms();
    atomic_store(&wd->since_ms, 0);
    atomic_store(&wd->beat_ms, now);
    if (!atomic_load(&wd->armed)) return false;
    pthread_mutex_lock(&wd->mu);
    bool was = atomic_exchange(&wd->armed, false);
    if (was && wd->L) lua_sethook(wd->L, NULL, 0, 0);
    pthread_mutex_unlock(&wd->mu);
    return was;
}

acr_wd_reason_t acr_watchdog_reason(acr_watchdog_t *wd, double *secs)
{
    uint64_t aseq = atomic_load(&wd->armed_seq);
    bool in_resume = atomic_load(&wd->since_ms) != 0;
    if (atomic_load(&wd->armed) &&
        ((aseq && in_resume && aseq == atomic_load(&wd->seq)) || (!aseq && !in_resume))) {
        *secs = (double)atomic_load(&wd->ran_ms) / 1000;
        acr_wd_reason_t r = (acr_wd_reason_t)atomic_load(&wd->reason);
        if (!aseq) { /* not a resume: one interruption is enough */
            pthread_mutex_lock(&wd->mu);
            atomic_store(&wd->armed, false);
            if (wd->L) lua_sethook(wd->L, NULL, 0, 0);
            pthread_mutex_unlock(&wd->mu);
        }
        return r;
    }
    pthread_mutex_lock(&wd->mu); /* a stray hook (the resume it was for has ended) */
    if (wd->L) lua_sethook(wd->L, NULL, 0, 0);
    if (aseq && aseq != atomic_load(&wd->seq)) atomic_store(&wd->armed, false);
    pthread_mutex_unlock(&wd->mu);
    return ACR_WD_NONE;
}

void acr_watchdog_rearm(acr_watchdog_t *wd, int count)
{
    pthread_mutex_lock(&wd->mu);
    if (wd->L && wd->hook && atomic_load(&wd->armed))
        lua_sethook(wd->L, wd->hook, LUA_MASKCOUNT, count);
    pthread_mutex_unlock(&wd->mu);
}

static void handle_closed(uv_handle_t *h)
{
    acr_watchdog_t *wd = h->data;
    if (--wd->closes == 0 && wd->closed) wd->closed(wd->closed_ud);
}

void acr_watchdog_close(acr_watchdog_t *wd, void (*closed)(void *ud), void *ud)
{
    atomic_store(&wd->quit, true);
    if (wd->thread_on) pthread_join(wd->thread, NULL);
    wd->thread_on = false;
    wd->closed = closed;
    wd->closed_ud = ud;
    int n = wd->closes;
    if (n == 0) {
        if (closed) closed(ud);
        return;
    }
    uv_handle_t *hs[] = {(uv_handle_t *)&wd->async, (uv_handle_t *)&wd->beat_timer};
    for (int i = 0; i < n; i++) uv_close(hs[i], handle_closed);
}

void acr_watchdog_free(acr_watchdog_t *wd)
{
    if (!wd) return;
    if (wd->thread_on) {
        atomic_store(&wd->quit, true);
        pthread_join(wd->thread, NULL);
    }
    sigaction(SIGTERM, &wd->old_term, NULL);
    sigaction(SIGINT, &wd->old_int, NULL);
    if (signal_fd == wd->pipe_wr) signal_fd = -1;
    close(wd->pipe_rd);
    close(wd->pipe_wr);
    pthread_mutex_destroy(&wd->mu);
    free(wd);
}
