/*
 * A counting allocator for unit tests: every malloc/calloc/realloc/free (and the memalign family)
 * made by the process — acrida, libuv, OpenSSL, llhttp, glibc (getaddrinfo, stdio) — is counted,
 * except in threads that opt out with unit_alloc_ignore_thread() (the test servers of
 * unit_srv.h, which are not part of the code under test). Counted: calls that return memory,
 * and the bytes live from them (malloc_usable_size in the plain build, the requested size under
 * ASan). Not seen: memory a library maps itself (LuaJIT's GC heap, libuv's and glibc's thread
 * stacks, OpenSSL's secure heap, which acrida does not enable).
 *
 * Plain build: malloc and friends are defined here, in the test executable, so the dynamic
 * linker binds every library's calls to them; they count and forward to glibc's __libc_*.
 * Sanitizer build: ASan owns malloc, so the counts come from its malloc/free hooks instead
 * (installed by unit_alloc_snap's first call).
 *
 * Include from exactly one .c per test binary (this header defines functions with external
 * linkage).
 */
#ifndef ACR_UNIT_ALLOC_H
#define ACR_UNIT_ALLOC_H

#include <malloc.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#define UNIT_ALLOC_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNIT_ALLOC_ASAN 1
#endif
#endif

typedef struct unit_alloc_snap {
    uint64_t allocs; /* calls that returned memory (malloc, calloc, realloc, memalign, ...) */
    uint64_t frees;  /* free() of a non-NULL pointer, and realloc's release of the old block */
    int64_t live;    /* bytes allocated minus bytes freed */
} unit_alloc_snap_t;

static uint64_t unit_alloc_n, unit_free_n;
static int64_t unit_alloc_bytes;
static __thread bool unit_alloc_ignored;

/** Stops counting the calling thread's allocations (test servers call it first thing). */
static inline void unit_alloc_ignore_thread(void)
{
    unit_alloc_ignored = true;
}

static inline void unit_alloc_count(int64_t bytes)
{
    if (unit_alloc_ignored) return;
    __atomic_add_fetch(&unit_alloc_n, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&unit_alloc_bytes, bytes, __ATOMIC_RELAXED);
}

static inline void unit_free_count(int64_t bytes)
{
    if (unit_alloc_ignored) return;
    __atomic_add_fetch(&unit_free_n, 1, __ATOMIC_RELAXED);
    __atomic_sub_fetch(&unit_alloc_bytes, bytes, __ATOMIC_RELAXED);
}

#ifdef UNIT_ALLOC_ASAN

int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));
size_t __sanitizer_get_allocated_size(const volatile void *p);

static void unit_asan_malloc_hook(const volatile void *p, size_t size)
{
    if (p) unit_alloc_count((int64_t)size);
}

static void unit_asan_free_hook(const volatile void *p)
{
    if (p) unit_free_count((int64_t)__sanitizer_get_allocated_size(p));
}

static inline void unit_alloc_install(void)
{
    static bool installed;
    if (installed) return;
    installed = true;
    if (!__sanitizer_install_malloc_and_free_hooks(unit_asan_malloc_hook, unit_asan_free_hook))
        abort(); /* no hook slot left: every count would read zero */
}

#else

void *__libc_malloc(size_t size);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t size);
void __libc_free(void *p);
void *__libc_memalign(size_t align, size_t size);
void *__libc_valloc(size_t size);
void *__libc_pvalloc(size_t size);

static inline void *unit_counted(void *p)
{
    if (p) unit_alloc_count((int64_t)malloc_usable_size(p));
    return p;
}

void *malloc(size_t size)
{
    return unit_counted(__libc_malloc(size));
}

void *calloc(size_t n, size_t size)
{
    return unit_counted(__libc_calloc(n, size));
}

void free(void *p)
{
    if (!p) return;
    unit_free_count((int64_t)malloc_usable_size(p));
    __libc_free(p);
}

void *realloc(void *p, size_t size)
{
    size_t old = p ? malloc_usable_size(p) : 0;
    void *q = __libc_realloc(p, size);
    if (p && (q || size == 0)) unit_free_count((int64_t)old); /* the old block is gone */
    return unit_counted(q);
}

void *memalign(size_t align, size_t size)
{
    return unit_counted(__libc_memalign(align, size));
}

void *aligned_alloc(size_t align, size_t size)
{
    return unit_counted(__libc_memalign(align, size));
}

int posix_memalign(void **out, size_t align, size_t size)
{
    if (align < sizeof(void *) || (align & (align - 1)) != 0) return 22; /* EINVAL */
    void *p = unit_counted(__libc_memalign(align, size));
    if (!p) return 12; /* ENOMEM */
    *out = p;
    return 0;
}

void *valloc(size_t size)
{
    return unit_counted(__libc_valloc(size));
}

void *pvalloc(size_t size)
{
    return unit_counted(__libc_pvalloc(size));
}

static inline void unit_alloc_install(void) {}

#endif

/** The process's counts so far (start counting under ASan on the first call). */
static inline unit_alloc_snap_t unit_alloc_snap(void)
{
    unit_alloc_install();
    unit_alloc_snap_t s = {
        .allocs = __atomic_load_n(&unit_alloc_n, __ATOMIC_RELAXED),
        .frees = __atomic_load_n(&unit_free_n, __ATOMIC_RELAXED),
        .live = __atomic_load_n(&unit_alloc_bytes, __ATOMIC_RELAXED),
    };
    return s;
}

#endif
