/* A warning told once in a while, an outage told once (see log_throttle.h). */
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

void redeem_outage_begin(uint32_t *state)
{
    uint32_t expected = REDEEM_OUTAGE_NONE;
    __atomic_compare_exchange_n(state, &expected, REDEEM_OUTAGE_UNTOLD, 0, __ATOMIC_ACQ_REL,
                                __ATOMIC_ACQUIRE);
}

int redeem_outage_claim(uint32_t *state, int may_tell)
{
    /* Only from untold: an answer since the failure ended the outage
     * (nothing to tell), and one told already is not told again. */
    uint32_t expected = REDEEM_OUTAGE_UNTOLD;
    return may_tell && __atomic_compare_exchange_n(state, &expected, REDEEM_OUTAGE_TOLD, 0,
                                                   __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

int redeem_outage_failed(uint32_t *state, int may_tell)
{
    redeem_outage_begin(state);
    return redeem_outage_claim(state, may_tell);
}

int redeem_outage_ended(uint32_t *state)
{
    /* A plain read first: while the service answers, every call passes
     * here, and a write would bounce the word between the cores. */
    if (__atomic_load_n(state, __ATOMIC_ACQUIRE) == REDEEM_OUTAGE_NONE)
        return 0;
    return __atomic_exchange_n(state, REDEEM_OUTAGE_NONE, __ATOMIC_ACQ_REL) == REDEEM_OUTAGE_TOLD;
}
