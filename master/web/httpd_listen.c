/*
 * The master's HTTP server (httpd.h): binding the listening socket and the connection cap that
 * follows from the open-file limit. The connections themselves are httpd.c's.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "master/web/httpd_int.h"

/* The connection cap: @want, or half the open-file limit when that is lower, so that however many
 * clients connect, the rest of the master (workers' sockets, CSV and log files) still gets file
 * descriptors. */
unsigned acr__httpd_conn_cap(unsigned want)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur / 2 < want) {
        unsigned cap = rl.rlim_cur / 2 > 0 ? (unsigned)(rl.rlim_cur / 2) : 1;
        ACR_DEBUG("web: at most %u connections (half the open-file limit %llu)", cap,
                  (unsigned long long)rl.rlim_cur);
        return cap;
    }
    return want;
}

/* ---- listening ------------------------------------------------------------------------------- */

/* Binds and listens on @sa with a plain socket (so a failed address can be retried at once), then
 * gives it to libuv. 0 or a negative errno. */
static int listen_on(acr_httpd_t *s, const struct sockaddr *sa, socklen_t salen,
                     uv_connection_cb cb)
{
    int fd, one = 1, zero = 0, rc;

    fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (sa->sa_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (bind(fd, sa, salen) < 0 || listen(fd, 511) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    uv_tcp_init(s->loop, &s->listener);
    s->listening = true;
    if ((rc = uv_tcp_open(&s->listener, fd)) < 0) {
        close(fd);
        return rc;
    }
    return uv_listen((uv_stream_t *)&s->listener, 511, cb);
}

int acr__httpd_bound_port(acr_httpd_t *s)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len) != 0) return -1;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* "" or "*": every interface, IPv6 and IPv4 on one socket when the host has IPv6, else 0.0.0.0.
 * Otherwise the first address @host resolves to that can be bound ("[::1]" brackets allowed). */
int acr__httpd_bind(acr_httpd_t *s, const char *host, int port, uv_connection_cb cb, char *err,
                    size_t errlen)
{
    char name[256];
    int rc = -EINVAL;

    if (!host || !*host || strcmp(host, "*") == 0) {
        struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
        struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a6.sin6_addr = in6addr_any;
        a4.sin_addr.s_addr = htonl(INADDR_ANY);
        rc = listen_on(s, (struct sockaddr *)&a6, sizeof(a6), cb);
        if (rc == -EAFNOSUPPORT || rc == -EADDRNOTAVAIL || rc == -EPROTONOSUPPORT)
            rc = listen_on(s, (struct sockaddr *)&a4, sizeof(a4), cb);
        if (rc < 0) snprintf(err, errlen, "cannot listen on *:%d: %s", port, strerror(-rc));
        return rc;
    }
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        host++;
        n -= 2;
    }
    if (n >= sizeof(name)) {
        snprintf(err, errlen, "web host name too long");
        return -EINVAL;
    }
    memcpy(name, host, n);
    name[n] = '\0';

    uv_getaddrinfo_t gai;
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    rc = uv_getaddrinfo(s->loop, &gai, NULL, name, portstr, &hints); /* synchronous */
    if (rc < 0) {
        snprintf(err, errlen, "cannot resolve web host '%s': %s", name, uv_strerror(rc));
        return rc;
    }
    rc = -EADDRNOTAVAIL;
    for (struct addrinfo *ai = gai.addrinfo; ai; ai = ai->ai_next) {
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
        rc = listen_on(s, ai->ai_addr, ai->ai_addrlen, cb);
        if (rc == 0 || s->listening) break; /* a libuv failure ends the search: handle is used */
    }
    uv_freeaddrinfo(gai.addrinfo);
    if (rc < 0) snprintf(err, errlen, "cannot listen on %s:%d: %s", name, port, strerror(-rc));
    return rc;
}
