/*
 * The HTTP client's resolver: uv_getaddrinfo behind a per-client cache (answers kept 60 s,
 * failures 5 s). Concurrent lookups of one host share one getaddrinfo request: later askers
 * queue as waiters on the pending entry. IPv4 addresses are ordered first (a test server on
 * 127.0.0.1 is reached through "localhost" even when ::1 is listed first). IP literals never get
 * here (the session converts them directly).
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "worker/http/http_internal.h"

#define NBUCKETS 64

struct acr__http_dns_entry {
    acr__http_dns_entry_t *next;
    acr__http_dns_t *d; /* NULL once orphaned by acr__http_dns_free */
    uv_getaddrinfo_t req;
    bool pending, notifying;
    int status;
    uint64_t expires; /* uv_now() ms */
    int naddrs;
    acr__http_addr_t addrs[ACR__HTTP_DNS_MAX_ADDRS];
    acr__http_dns_waiter_t *waiters;
    char host[];
};

struct acr__http_dns {
    uv_loop_t *loop;
    uint64_t *lookups;
    unsigned count;
    acr__http_dns_entry_t *buckets[NBUCKETS];
};

acr__http_dns_t *acr__http_dns_new(uv_loop_t *loop, uint64_t *lookups_counter)
{
    acr__http_dns_t *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->loop = loop;
    d->lookups = lookups_counter;
    return d;
}

static unsigned hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h % NBUCKETS;
}

/* Drops every entry that is not pending or being notified (the cache is full). */
static void evict(acr__http_dns_t *d)
{
    for (unsigned b = 0; b < NBUCKETS; b++) {
        acr__http_dns_entry_t **pp = &d->buckets[b];
        while (*pp) {
            acr__http_dns_entry_t *e = *pp;
            if (!e->pending && !e->notifying && !e->waiters) {
                *pp = e->next;
                free(e);
                d->count--;
            } else {
                pp = &e->next;
            }
        }
    }
}

static void store(acr__http_dns_entry_t *e, const struct addrinfo *res)
{
    e->naddrs = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (const struct addrinfo *ai = res; ai && e->naddrs < ACR__HTTP_DNS_MAX_ADDRS;
             ai = ai->ai_next) {
            int want = pass == 0 ? AF_INET : AF_INET6;
            if (ai->ai_family != want || ai->ai_addrlen > sizeof(acr__http_addr_t)) continue;
            memset(&e->addrs[e->naddrs], 0, sizeof e->addrs[0]);
            memcpy(&e->addrs[e->naddrs], ai->ai_addr, ai->ai_addrlen);
            e->naddrs++;
        }
    }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    acr__http_dns_entry_t *e = acr_container_of(req, acr__http_dns_entry_t, req);
    e->pending = false;
    if (!e->d) {
        uv_freeaddrinfo(res);
        free(e);
        return;
    }
    if (status == 0) {
        store(e, res);
        if (e->naddrs == 0) status = UV_EAI_NODATA;
    }
    uv_freeaddrinfo(res);
    e->status = status;
    e->expires =
        uv_now(e->d->loop) + (status == 0 ? ACR__HTTP_DNS_TTL_OK_MS : ACR__HTTP_DNS_TTL_FAIL_MS);
    e->notifying = true;
    while (e->waiters) {
        acr__http_dns_waiter_t *w = e->waiters;
        acr__http_dns_cancel(w);
        w->cb(w, e->status, e->addrs, e->naddrs);
    }
    e->notifying = false;
}

int acr__http_dns_resolve(acr__http_dns_t *d, const char *host, acr__http_dns_waiter_t *w,
                          acr__http_addr_t *addrs, int *naddrs)
{
    unsigned b = hash(host);
    acr__http_dns_entry_t *e = d->buckets[b];
    while (e && strcmp(e->host, host) != 0) e = e->next;
    if (e && !e->pending && uv_now(d->loop) < e->expires) {
        if (e->status < 0) return e->status;
        memcpy(addrs, e->addrs, sizeof e->addrs[0] * (size_t)e->naddrs);
        *naddrs = e->naddrs;
        return 1;
    }
    if (!e) {
        if (d->count >= ACR__HTTP_DNS_MAX_ENTRIES) {
            evict(d);
            b = hash(host);
        }
        size_t n = strlen(host);
        e = calloc(1, sizeof *e + n + 1);
        if (!e) return UV_ENOMEM;
        memcpy(e->host, host, n + 1);
        e->d = d;
        e->next = d->buckets[b];
        d->buckets[b] = e;
        d->count++;
    }
    if (!e->pending) {
        struct addrinfo hints;
        memset(&hints, 0, sizeof hints);
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        int rc = uv_getaddrinfo(d->loop, &e->req, on_resolved, e->host, NULL, &hints);
        if (rc < 0) return rc;
        e->pending = true;
        if (d->lookups) (*d->lookups)++;
    }
    w->entry = e;
    w->next = e->waiters;
    if (w->next) w->next->pprev = &w->next;
    w->pprev = &e->waiters;
    e->waiters = w;
    return 0;
}

void acr__http_dns_cancel(acr__http_dns_waiter_t *w)
{
    if (!w->pprev) return;
    *w->pprev = w->next;
    if (w->next) w->next->pprev = w->pprev;
    w->next = NULL;
    w->pprev = NULL;
    w->entry = NULL;
}

void acr__http_dns_free(acr__http_dns_t *d)
{
    if (!d) return;
    for (unsigned b = 0; b < NBUCKETS; b++) {
        acr__http_dns_entry_t *e = d->buckets[b];
        while (e) {
            acr__http_dns_entry_t *next = e->next;
            while (e->waiters) acr__http_dns_cancel(e->waiters);
            if (e->pending) {
                e->d = NULL; /* on_resolved frees it */
                uv_cancel((uv_req_t *)&e->req);
            } else {
                free(e);
            }
            e = next;
        }
    }
    free(d);
}
