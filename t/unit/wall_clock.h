/* The wall clock of a unit test's process, stepped by the test: every
 * reading of it (apr_time_now, the module's and APR's own, which reads it
 * through gettimeofday) is the real time plus wall_step. A test that steps
 * it sees what a step of the host's clock does to whatever counts on the
 * wall clock, without touching the host's. Include in one file of a test
 * program. */
#ifndef REDEEM_TEST_WALL_CLOCK_H
#define REDEEM_TEST_WALL_CLOCK_H

#include <apr_time.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static apr_interval_time_t wall_step;

/* Defined in the program, so found before libc's by every library it
 * loads (libapr's apr_time_now calls it). The real time comes from the
 * kernel itself, not from libc's clock_gettime, which ASan may wrap. */
int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
    struct timespec now;
    (void)tz;
    syscall(SYS_clock_gettime, CLOCK_REALTIME, &now);
    long long us = (long long)now.tv_sec * 1000000 + now.tv_nsec / 1000 +
                   __atomic_load_n(&wall_step, __ATOMIC_RELAXED);
    tv->tv_sec = (time_t)(us / 1000000);
    tv->tv_usec = (suseconds_t)(us % 1000000);
    return 0;
}

/* Real time, unstepped (µs). */
static inline apr_time_t wall_clock_real(void)
{
    struct timespec now;
    syscall(SYS_clock_gettime, CLOCK_REALTIME, &now);
    return (apr_time_t)now.tv_sec * APR_USEC_PER_SEC + now.tv_nsec / 1000;
}

#endif
