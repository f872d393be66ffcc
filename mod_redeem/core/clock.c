/* The monotonic clock (see clock.h). */
#include "core/clock.h"

#include <time.h>

int64_t redeem_clock_monotonic(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t us = (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
    return us ? us : 1;
}
