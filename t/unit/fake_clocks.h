/* Both clocks of a unit test, the test's own (µs): the wall clock (the file
 * under test includes with apr_time_now renamed to fake_wall) and the
 * monotonic one (redeem_clock_monotonic; core/clock.c not linked). Time
 * passes only when the test says so. */
#ifndef REDEEM_TEST_FAKE_CLOCKS_H
#define REDEEM_TEST_FAKE_CLOCKS_H

#include <apr_time.h>
#include <stdint.h>

static apr_time_t wall_now = APR_INT64_C(1700000000) * APR_USEC_PER_SEC;
static apr_int64_t mono_now = APR_INT64_C(1000) * APR_USEC_PER_SEC;

apr_time_t fake_wall(void);
apr_time_t fake_wall(void)
{
    return wall_now;
}
int64_t redeem_clock_monotonic(void)
{
    return mono_now;
}
/* Time passing (both clocks), and the wall clock stepped alone. */
static inline void pass(apr_interval_time_t us)
{
    wall_now += us;
    mono_now += us;
}
static inline void step_wall(apr_interval_time_t us)
{
    wall_now += us;
}

#endif
