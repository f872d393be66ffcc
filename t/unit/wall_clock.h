/* The wall clock of a unit test's process, stepped by the test: every
 * reading of it through libc (gettimeofday, which apr_time_now reads, the
 * module's and APR's own; clock_gettime of CLOCK_REALTIME) is the real time
 * plus wall_step; the other clocks read as they are. A test that steps it
 * sees what a step of the host's clock does to whatever counts on the wall
 * clock, without touching the host's. Include in one file of a test
 * program.
 *
 * What a step cannot do here: move an instant the kernel already holds (a
 * wait until a wall-clock instant, begun before the step). A wait that
 * counted on the wall clock shows a step forward by sleeping the step
 * longer, and one back by waking at once, again and again, until its own
 * deadline (spinning): tests look at the time a wait took and at the CPU
 * it burned (thread_cpu_us). */
#ifndef REDEEM_TEST_WALL_CLOCK_H
#define REDEEM_TEST_WALL_CLOCK_H

#include <apr_time.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static apr_interval_time_t wall_step;

/* Defined in the program, so found before libc's (and ASan's) by every
 * library it loads. The kernel's clocks are read by the system call
 * itself. */
int clock_gettime(clockid_t clock, struct timespec *now)
{
    long rv = syscall(SYS_clock_gettime, clock, now);
    if (rv == 0 && (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE)) {
        long long ns = (long long)now->tv_sec * 1000000000 + now->tv_nsec +
                       (long long)__atomic_load_n(&wall_step, __ATOMIC_RELAXED) * 1000;
        now->tv_sec = (time_t)(ns / 1000000000);
        now->tv_nsec = (long)(ns % 1000000000);
    }
    return (int)rv;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
    struct timespec now;
    (void)tz;
    clock_gettime(CLOCK_REALTIME, &now);
    tv->tv_sec = now.tv_sec;
    tv->tv_usec = (suseconds_t)(now.tv_nsec / 1000);
    return 0;
}

/* Real time, unstepped (µs). */
static inline apr_time_t wall_clock_real(void)
{
    struct timespec now;
    syscall(SYS_clock_gettime, CLOCK_REALTIME, &now);
    return (apr_time_t)now.tv_sec * APR_USEC_PER_SEC + now.tv_nsec / 1000;
}

/* CPU time the calling thread has used (µs). */
static inline apr_int64_t thread_cpu_us(void)
{
    struct timespec used;
    syscall(SYS_clock_gettime, CLOCK_THREAD_CPUTIME_ID, &used);
    return (apr_int64_t)used.tv_sec * 1000000 + used.tv_nsec / 1000;
}

#endif
