/* This host's monotonic clock, for times compared only with each other (a
 * child's "the database answered at", "try it again at", a warning's last
 * telling, every deadline of a request's): the wall clock (apr_time_now) can be stepped, by NTP or
 * by hand, and a step back would stretch every such interval by its length. No httpd headers: unit
 * tests call it, or put their own clock in its place. */
#ifndef REDEEM_CLOCK_H
#define REDEEM_CLOCK_H

#include <stdint.h>

/* Microseconds of CLOCK_MONOTONIC: never stepped, never 0. */
int64_t redeem_clock_monotonic(void);

#endif
