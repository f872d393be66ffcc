/* A TCP connection within a deadline, the lookup included (see tcp_connect.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getaddrinfo_a */
#endif
#include "core/tcp_connect.h"
#include "core/clock.h"
#include "core/sync.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A lookup in glibc's thread, held by its caller and by its completion's
 * notification: whichever lets go last frees it, so a caller that gave up
 * leaves nothing behind once the resolver answers. The caller waits on an
 * event of its own, not in gai_suspend(): one that times out just as the
 * lookup ends leaves its waiting entry, on its stack, linked to the request,
 * and glibc's thread then writes to that stack (glibc 2.36; the unit tests
 * crashed in 3 runs of 48 with it, in none of 65 since). */
typedef struct {
    struct gaicb request;
    struct addrinfo hints;
    redeem_sync_event_t finished; /* once the lookup has ended */
    atomic_int holders;
    char service[16];
    char host[]; /* request.ar_name */
} lookup_t;

static void lookup_release(lookup_t *lookup)
{
    if (atomic_fetch_sub(&lookup->holders, 1) != 1)
        return;
    if (lookup->request.ar_result)
        freeaddrinfo(lookup->request.ar_result);
    free(lookup);
}

static void lookup_finished(union sigval value)
{
    lookup_t *lookup = value.sival_ptr;
    redeem_sync_event_finish(&lookup->finished);
    redeem_sync_event_wake(&lookup->finished);
    lookup_release(lookup);
}

/* One address: a connected, blocking socket, or -1. */
static int connect_one(const struct addrinfo *address, int64_t deadline)
{
    int fd = socket(address->ai_family, address->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    address->ai_protocol);
    if (fd < 0)
        return -1;
    int connected = connect(fd, address->ai_addr, address->ai_addrlen) == 0;
    int pending = !connected && errno == EINPROGRESS;
    while (pending) {
        int64_t left = deadline - redeem_clock_monotonic();
        if (left <= 0)
            break;
        struct pollfd writable = {fd, POLLOUT, 0};
        int ready = poll(&writable, 1, (int)((left + 999) / 1000));
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready > 0) {
            int error = 0;
            socklen_t size = sizeof error;
            connected = getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size) == 0 && error == 0;
        }
        break;
    }
    int flags = connected ? fcntl(fd, F_GETFL) : -1, one = 1;
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The addresses in turn, IPv4 ones first (as hiredis's own connect tries
 * them), until one takes the connection or the deadline passes. */
static redeem_tcp_result_t connect_any(const struct addrinfo *addresses, int64_t deadline, int *fd)
{
    for (int pass = 0; pass < 2; pass++)
        for (const struct addrinfo *a = addresses; a; a = a->ai_next) {
            if ((a->ai_family == AF_INET) != (pass == 0))
                continue;
            if (redeem_clock_monotonic() >= deadline)
                return REDEEM_TCP_REFUSED;
            if ((*fd = connect_one(a, deadline)) >= 0)
                return REDEEM_TCP_CONNECTED;
        }
    return REDEEM_TCP_REFUSED;
}

static redeem_tcp_result_t connect_by_name(const char *host, const char *service,
                                           const struct addrinfo *hints, int64_t deadline, int *fd)
{
    size_t length = strlen(host);
    lookup_t *lookup = calloc(1, sizeof *lookup + length + 1);
    if (!lookup)
        return REDEEM_TCP_LOOKUP_FAILED;
    memcpy(lookup->host, host, length + 1);
    snprintf(lookup->service, sizeof lookup->service, "%s", service);
    lookup->hints = *hints;
    lookup->request.ar_name = lookup->host;
    lookup->request.ar_service = lookup->service;
    lookup->request.ar_request = &lookup->hints;
    redeem_sync_event_init(&lookup->finished);
    atomic_init(&lookup->holders, 2);
    struct sigevent finished;
    memset(&finished, 0, sizeof finished);
    finished.sigev_notify = SIGEV_THREAD;
    finished.sigev_notify_function = lookup_finished;
    finished.sigev_value.sival_ptr = lookup;
    struct gaicb *requests[1] = {&lookup->request};
    if (getaddrinfo_a(GAI_NOWAIT, requests, 1, &finished) != 0) {
        /* Only the caller's hold is let go: glibc may have queued the
         * lookup all the same (a later allocation failed), or notify of it
         * although none was queued. When it never notifies, the lookup is
         * left (a few hundred bytes, where memory or threads ran out). */
        lookup_release(lookup);
        return REDEEM_TCP_LOOKUP_FAILED;
    }
    apr_uint32_t seen;
    for (;;) {
        seen = redeem_sync_event_seen(&lookup->finished);
        int64_t left = deadline - redeem_clock_monotonic();
        if (redeem_sync_event_done(seen) || left <= 0)
            break;
        redeem_sync_event_wait(&lookup->finished, seen, left);
    }
    int status = redeem_sync_event_done(seen) ? gai_error(&lookup->request) : EAI_INPROGRESS;
    redeem_tcp_result_t result =
        status == 0                ? connect_any(lookup->request.ar_result, deadline, fd)
        : status == EAI_INPROGRESS ? REDEEM_TCP_LOOKUP_SLOW
        : status == EAI_NONAME || status == EAI_NODATA || status == EAI_ADDRFAMILY
            ? REDEEM_TCP_NO_ADDRESS
            : REDEEM_TCP_LOOKUP_FAILED;
    lookup_release(lookup);
    return result;
}

redeem_tcp_result_t redeem_tcp_connect(const char *host, int port, int64_t deadline, int *fd)
{
    *fd = -1;
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    /* An address is parsed at once, with no thread and no resolver. */
    struct addrinfo *numeric = NULL;
    if (getaddrinfo(host, service, &hints, &numeric) == 0) {
        redeem_tcp_result_t result = connect_any(numeric, deadline, fd);
        freeaddrinfo(numeric);
        return result;
    }
    hints.ai_flags = AI_NUMERICSERV;
    return connect_by_name(host, service, &hints, deadline, fd);
}

const char *redeem_tcp_result_text(redeem_tcp_result_t result)
{
    switch (result) {
    case REDEEM_TCP_CONNECTED: return "connected";
    case REDEEM_TCP_LOOKUP_SLOW: return "no answer from the resolver for its host name in time";
    case REDEEM_TCP_NO_ADDRESS: return "its host name has no address";
    case REDEEM_TCP_LOOKUP_FAILED: return "the lookup of its host name failed";
    case REDEEM_TCP_REFUSED: break;
    }
    return "cannot connect";
}
