/* A TCP connection to a host named by address or by name, made within one
 * deadline that bounds the name's lookup too. The system's getaddrinfo()
 * waits on its resolver as long as resolv.conf says (5 s a try by default)
 * and cannot be told otherwise: a lookup here runs in glibc's own thread
 * (getaddrinfo_a) and is left behind, still running, when the deadline
 * comes. No httpd headers: unit tests call it. */
#ifndef REDEEM_TCP_CONNECT_H
#define REDEEM_TCP_CONNECT_H

#include <stdint.h>

typedef enum {
    REDEEM_TCP_CONNECTED = 0,
    REDEEM_TCP_LOOKUP_SLOW,   /* the name had no answer before the deadline */
    REDEEM_TCP_NO_ADDRESS,    /* the resolver says the name has no address */
    REDEEM_TCP_LOOKUP_FAILED, /* the resolver failed, could not be reached, or the lookup
                               * could not start */
    REDEEM_TCP_REFUSED        /* no address of it took the connection in time */
} redeem_tcp_result_t;

/* Connects to host (an IPv4 or IPv6 address, or a name), port, until the
 * monotonic deadline (redeem_clock_monotonic's microseconds), trying each
 * address of a name in turn. On REDEEM_TCP_CONNECTED, *fd is a blocking
 * socket with TCP_NODELAY and close-on-exec; else *fd is -1. */
redeem_tcp_result_t redeem_tcp_connect(const char *host, int port, int64_t deadline, int *fd);

/* What a result means, for a log line. */
const char *redeem_tcp_result_text(redeem_tcp_result_t result);

#endif
