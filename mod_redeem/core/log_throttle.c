/* A warning told once in a while (see log_throttle.h). */
#include "core/log_throttle.h"

int redeem_log_throttle_due(redeem_log_throttle_t *throttle, int64_t now, int64_t every,
                            uint32_t *held_back)
{
    int64_t told = __atomic_load_n(&throttle->told_at, __ATOMIC_RELAXED);
    /* Of the threads that find it due, the one that moves told_at tells.
     * The clock is monotonic: a `now` before told_at is a thread that read
     * it before the one that told (not due: it would tell again and move
     * told_at back). */
    if ((told == 0 || now - told >= every) &&
        __atomic_compare_exchange_n(&throttle->told_at, &told, now ? now : 1, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_RELAXED)) {
        *held_back = __atomic_exchange_n(&throttle->held_back, 0, __ATOMIC_ACQ_REL);
        return 1;
    }
    __atomic_add_fetch(&throttle->held_back, 1, __ATOMIC_RELAXED);
    *held_back = 0;
    return 0;
}

void redeem_log_throttle_reset(redeem_log_throttle_t *throttle)
{
    __atomic_store_n(&throttle->told_at, 0, __ATOMIC_RELAXED);
}
