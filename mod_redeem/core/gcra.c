#include "core/gcra.h"

#include <stddef.h>

int redeem_gcra_policy_init(redeem_gcra_policy_t *p, uint32_t count, uint32_t period_s)
{
    if (count < 1 || period_s < 1 || period_s > REDEEM_GCRA_MAX_PERIOD_S)
        return -1;
    int64_t period_ms = (int64_t)period_s * 1000; /* <= 3.2e10 */
    int64_t interval = period_ms / count;
    /* Rounding the interval down keeps the burst exactly COUNT and the whole
     * quota back within the period; it speeds the long-run rate up by
     * remainder / (period - remainder), which we keep under 1%. */
    int64_t remainder = period_ms - interval * count;
    if (interval < 1 || remainder * 100 > period_ms)
        return -1;
    p->count = count;
    p->period_s = period_s;
    p->interval_ms = interval;
    p->limit_ms = interval * count;
    return 0;
}

static int policy_valid(const redeem_gcra_policy_t *p)
{
    return p && p->interval_ms >= 1 && p->limit_ms >= p->interval_ms &&
           p->limit_ms <= (int64_t)REDEEM_GCRA_MAX_PERIOD_S * 1000;
}

int64_t redeem_gcra_step(const redeem_gcra_policy_t *p, int64_t tat, int64_t now_ms,
                         redeem_gcra_verdict_t *v)
{
    if (!policy_valid(p)) {
        v->allowed = 0;
        v->remaining = 0;
        v->retry_after_ms = 1;
        v->reset_ms = 1;
        return tat;
    }
    int64_t interval = p->interval_ms, limit = p->limit_ms;
    /* The level: how far the TAT runs ahead of now, at most the limit (more
     * only happens when the clock went back). Unsigned subtraction is exact
     * here since tat > now_ms, even across the whole int64 range. */
    int64_t level = 0;
    if (tat > now_ms) {
        uint64_t ahead = (uint64_t)tat - (uint64_t)now_ms;
        level = ahead > (uint64_t)limit ? limit : (int64_t)ahead;
    }
    int64_t next = level + interval; /* <= 2 * limit: no overflow */
    if (next > limit) {
        v->allowed = 0;
        v->remaining = 0;
        v->retry_after_ms = next - limit;
        v->reset_ms = level;
        /* level <= tat - now_ms, so now_ms + level <= tat cannot overflow. */
        return now_ms + level;
    }
    v->allowed = 1;
    v->remaining = (uint32_t)((limit - next) / interval);
    v->retry_after_ms = 0;
    v->reset_ms = next;
    return now_ms > INT64_MAX - next ? INT64_MAX : now_ms + next;
}

int64_t redeem_gcra_seconds_up(int64_t ms)
{
    if (ms <= 0)
        return 0;
    return ms / 1000 + (ms % 1000 != 0);
}
