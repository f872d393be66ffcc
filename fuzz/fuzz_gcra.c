/* libFuzzer target: the rate limiter's arithmetic (gcra.c) and its shared
 * table (limit_table.c), single-threaded, with arbitrary policies, stored
 * TATs, epochs and clocks (forward, still, backward, jumps to any int64).
 *
 * Input: first byte picks the mode:
 *   0: a policy from redeem_gcra_policy_init(count, period), a stored TAT,
 *      a start time, then steps of the clock, each charging one request;
 *   1: the same with a policy struct filled by hand (step must refuse what
 *      init would not make, and never misbehave);
 *   2: a table of 8..64 entries (1..8 buckets of 8, so evictions happen),
 *      an epoch, then requests of 12 keys under 3 policies at stepped times.
 *
 * Invariants: policy_init accepts exactly what gcra.h documents, with
 * interval * count == limit <= period; every verdict is coherent (allowed:
 * retry 0, remaining < count, 0 < reset <= limit, the new TAT is now +
 * reset; refused: remaining 0, 0 < retry <= interval, 0 < reset <= limit,
 * the TAT never grows and is at most now + limit); over any stretch of the
 * clock that does not go back, requests allowed in [t_i, t_j] number at
 * most floor((t_j - t_i + limit) / interval): never more than COUNT at one
 * instant (times within 2 * limit of INT64_MAX, where the TAT saturates by
 * design, excepted). The table agrees with the same arithmetic run on a
 * model of each key's TAT (a key whose state an eviction may have dropped
 * may also start afresh; after the clock went back any coherent verdict
 * goes), refuses exactly the times too far past its epoch, and holds one
 * live slot per key just charged (or more once the clock went back: an
 * expired state comes back to life next to the newer one, by design). */
#include "fuzz_common.h"

#include "core/gcra.h"
#include "core/limit_table.h"

#define MAX_STEPS 128
#define TAT_MASK ((INT64_C(1) << 39) - 1) /* limit_table.c's range of stored TATs */

static int64_t clamp64(__int128 v)
{
    return v > INT64_MAX ? INT64_MAX : v < INT64_MIN ? INT64_MIN : (int64_t)v;
}

/* The next clock reading. */
static int64_t advance(fuzz_reader_t *r, int64_t now, const redeem_gcra_policy_t *p)
{
    uint8_t op = fuzz_u8(r);
    switch (op % 8) {
    case 0: return now;
    case 1: return clamp64((__int128)now + fuzz_u8(r));
    case 2: return clamp64((__int128)now + (fuzz_u32(r) & 0xFFFF));
    case 3: return clamp64((__int128)now + fuzz_u32(r));
    case 4: return clamp64((__int128)now - (fuzz_u32(r) & 0xFFFF) - 1);
    case 5: return (int64_t)fuzz_u64(r);
    case 6: return clamp64((__int128)now + (__int128)p->interval_ms * fuzz_u8(r));
    default: return clamp64((__int128)now + p->limit_ms + (op >> 3) - 16);
    }
}

static int policy_valid(const redeem_gcra_policy_t *p)
{
    return p->interval_ms >= 1 && p->limit_ms >= p->interval_ms &&
           p->limit_ms <= (int64_t)REDEEM_GCRA_MAX_PERIOD_S * 1000;
}

/* One verdict (and the TAT step returned) against the rules of gcra.h. */
static void check_verdict(const redeem_gcra_policy_t *p, int64_t tat, int64_t now, int64_t next,
                          const redeem_gcra_verdict_t *v, int from_init)
{
    if (!policy_valid(p)) {
        FUZZ_CHECK(!v->allowed && v->retry_after_ms > 0, "an invalid policy allowed a request");
        FUZZ_CHECK(next == tat, "an invalid policy changed the TAT");
        return;
    }
    int64_t limit = p->limit_ms, interval = p->interval_ms;
    FUZZ_CHECK(v->allowed == 0 || v->allowed == 1, "allowed is not 0 or 1");
    FUZZ_CHECK(v->reset_ms > 0 && v->reset_ms <= limit, "reset out of (0, limit]");
    FUZZ_CHECK(redeem_gcra_seconds_up(v->reset_ms) * 1000 >= v->reset_ms,
               "seconds_up rounds reset down");
    if (v->allowed) {
        FUZZ_CHECK(v->retry_after_ms == 0, "allowed with a retry-after");
        FUZZ_CHECK((int64_t)v->remaining * interval <= limit - interval,
                   "remaining more than the quota left");
        if (from_init)
            FUZZ_CHECK(v->remaining < p->count, "remaining not under count");
        FUZZ_CHECK(now > INT64_MAX - v->reset_ms ? next == INT64_MAX : next == now + v->reset_ms,
                   "allowed: the new TAT is not now + reset");
    }
    else {
        FUZZ_CHECK(v->remaining == 0, "refused with requests remaining");
        FUZZ_CHECK(v->retry_after_ms > 0 && v->retry_after_ms <= interval,
                   "refused: retry-after out of (0, interval]");
        FUZZ_CHECK(redeem_gcra_seconds_up(v->retry_after_ms) >= 1, "Retry-After of 0 s");
        FUZZ_CHECK(next <= tat && (__int128)next <= (__int128)now + limit,
                   "refused: the TAT grew or runs more than a limit ahead");
        FUZZ_CHECK(v->reset_ms > 0, "refused with a reset of 0");
    }
}

/* Allowed times of a stretch where the clock does not go back. */
typedef struct {
    int64_t times[MAX_STEPS];
    int n;
} burst_t;

static void burst_allowed(burst_t *b, const redeem_gcra_policy_t *p, int64_t now)
{
    b->times[b->n++] = now;
    for (int i = 0; i < b->n; i++) {
        __int128 window = (__int128)now - b->times[i];
        __int128 bound = (window + p->limit_ms) / p->interval_ms;
        FUZZ_CHECK(b->n - i <= bound, "more requests allowed than the policy lets through");
    }
}

static void fuzz_steps(fuzz_reader_t *r, int raw)
{
    redeem_gcra_policy_t p;
    memset(&p, 0, sizeof p);
    if (raw) {
        p.count = fuzz_u32(r);
        p.period_s = fuzz_u32(r);
        p.interval_ms = (int64_t)fuzz_u64(r);
        p.limit_ms = (int64_t)fuzz_u64(r);
    }
    else {
        uint32_t count = fuzz_u32(r), period = fuzz_u32(r);
        int rc = redeem_gcra_policy_init(&p, count, period);
        __int128 period_ms = (__int128)period * 1000;
        __int128 interval = count ? period_ms / count : 0;
        int expected = count >= 1 && period >= 1 && period <= REDEEM_GCRA_MAX_PERIOD_S &&
                       interval >= 1 && (period_ms - interval * count) * 100 <= period_ms;
        FUZZ_CHECK((rc == 0) == expected, "policy_init accepts or refuses against gcra.h");
        if (count >= 1 && period >= 1 && period <= REDEEM_GCRA_MAX_PERIOD_S &&
            (uint64_t)count <= UINT64_C(10) * period)
            FUZZ_CHECK(rc == 0, "policy_init refuses a policy of at most 10 requests per second");
        if (rc != 0)
            return;
        FUZZ_CHECK(p.count == count && p.period_s == period && p.interval_ms == interval &&
                       p.limit_ms == p.interval_ms * count && p.limit_ms <= period_ms,
                   "policy_init filled the policy wrongly");
    }
    int64_t tat = (int64_t)fuzz_u64(r), now = (int64_t)fuzz_u64(r);
    if (fuzz_u8(r) & 1)
        tat = 0;
    burst_t burst = {.n = 0};
    int64_t last = now;
    for (int step = 0; step < MAX_STEPS && fuzz_left(r) > 0; step++) {
        now = advance(r, now, &p);
        if (now < last)
            burst.n = 0; /* the clock went back: a new stretch */
        last = now;
        redeem_gcra_verdict_t v;
        memset(&v, 0xA5, sizeof v);
        int64_t next = redeem_gcra_step(&p, tat, now, &v);
        check_verdict(&p, tat, now, next, &v, !raw);
        if (policy_valid(&p) && v.allowed && now <= INT64_MAX - 2 * p.limit_ms)
            burst_allowed(&burst, &p, now);
        tat = next;
    }
}

/* ---- the shared table against a model ---- */

#define KEYS 12
#define POLICIES 3

typedef struct {
    int64_t tat;  /* the model's TAT, relative to the epoch (0: none) */
    int may_drop; /* the table may have dropped the state (an eviction) */
    int unknown;  /* the clock went back: states that had expired may be
                   * live again, next to newer ones (limit_table.c: the one
                   * further ahead is charged); from then on any coherent
                   * verdict goes */
} model_key_t;

static void fuzz_table(fuzz_reader_t *r)
{
    static const unsigned char hash_key[16] = "fuzz-limit-key!";
    uint32_t entries = 8u * (1 + fuzz_u8(r) % 8);
    int64_t epoch = (int64_t)fuzz_u64(r);
    size_t bytes = redeem_limit_table_bytes(entries);
    FUZZ_CHECK(bytes == 64 + entries * 8u, "table bytes");
    void *mem = aligned_alloc(REDEEM_LIMIT_TABLE_ALIGN, bytes);
    FUZZ_CHECK(redeem_limit_table_init(mem, bytes, entries, hash_key, epoch) == 0, "table init");
    FUZZ_CHECK(redeem_limit_table_valid(mem, bytes) == 1, "a fresh table is not valid");
    FUZZ_CHECK(redeem_limit_table_valid(mem, bytes - 8) == 0, "a short block is valid");

    redeem_gcra_policy_t policies[POLICIES];
    redeem_gcra_policy_init(&policies[0], 3, 1);
    redeem_gcra_policy_init(&policies[1], 5, 60);
    uint32_t count = 1 + fuzz_u8(r) % 200, period = 1 + fuzz_u32(r) % REDEEM_GCRA_MAX_PERIOD_S;
    if (redeem_gcra_policy_init(&policies[2], count, period) != 0)
        redeem_gcra_policy_init(&policies[2], 10, 3600);

    static int fingerprints_checked;
    if (!fingerprints_checked) {
        /* The keys' fingerprints differ (else they would share a state by design). */
        for (int i = 0; i < KEYS; i++)
            for (int j = 0; j < i; j++) {
                char a[16], b[16];
                snprintf(a, sizeof a, "scope:%d", i);
                snprintf(b, sizeof b, "scope:%d", j);
                FUZZ_CHECK(redeem_limit_table_siphash(hash_key, a, strlen(a)) >> 40 !=
                               redeem_limit_table_siphash(hash_key, b, strlen(b)) >> 40,
                           "two model keys share a fingerprint: pick another hash key");
            }
        fingerprints_checked = 1;
    }

    model_key_t model[KEYS];
    memset(model, 0, sizeof model);
    int64_t now = (int64_t)fuzz_u64(r), last = now;
    int went_back = 0;
    for (int step = 0; step < MAX_STEPS && fuzz_left(r) > 0; step++) {
        int k = fuzz_u8(r) % KEYS;
        const redeem_gcra_policy_t *p = &policies[k % POLICIES];
        now = advance(r, now, p);
        if (now < last) {
            for (int i = 0; i < KEYS; i++)
                model[i].unknown = 1;
            went_back = 1;
        }
        last = now;
        char key[16];
        snprintf(key, sizeof key, "scope:%d", k);
        redeem_gcra_verdict_t v;
        memset(&v, 0xA5, sizeof v);
        int evicted = -1;
        int rc = redeem_limit_table_check(mem, p, key, strlen(key), now, &v, &evicted);

        __int128 after = (__int128)now - epoch;
        int64_t rel = now <= epoch ? 1 : after > TAT_MASK ? -1 : (int64_t)after;
        int too_far = now > epoch && after > (__int128)TAT_MASK - p->limit_ms;
        FUZZ_CHECK((rc != 0) == too_far, "table refuses a time it holds, or holds one it cannot");
        FUZZ_CHECK(evicted == 0 || evicted == 1, "evicted is not 0 or 1");
        if (rc != 0)
            continue;

        redeem_gcra_verdict_t kept, fresh;
        int64_t kept_tat = redeem_gcra_step(p, model[k].tat, rel, &kept);
        int64_t fresh_tat = redeem_gcra_step(p, 0, rel, &fresh);
        int same_kept = memcmp(&v, &kept, sizeof v) == 0;
        int same_fresh = memcmp(&v, &fresh, sizeof v) == 0;
        if (model[k].unknown) {
            check_verdict(p, INT64_MAX, rel, rel + v.reset_ms, &v, 1);
            model[k].tat = rel + v.reset_ms;
        }
        else {
            FUZZ_CHECK(same_kept || (model[k].may_drop && same_fresh),
                       "table verdict differs from GCRA on the key's TAT");
            model[k].tat = same_kept ? kept_tat : fresh_tat;
        }
        model[k].may_drop = 0; /* unknown stays: a stale state may outrun the new one */
        if (evicted) {
            for (int i = 0; i < KEYS; i++)
                if (i != k)
                    model[i].may_drop = 1;
        }
        int slots = redeem_limit_table_key_slots(mem, key, strlen(key), now);
        FUZZ_CHECK(slots == 1 || (went_back && slots >= 1 && slots <= 8),
                   "a key just charged has not exactly one live slot");
        redeem_limit_table_stats_t stats;
        FUZZ_CHECK(redeem_limit_table_stats(mem, now, &stats) == 0 && stats.entries == entries &&
                       stats.live >= 1 && stats.live <= entries,
                   "table stats out of range");
    }
    free(mem);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    fuzz_reader_t r = {data, size, 1};
    switch (data[0] % 3) {
    case 0: fuzz_steps(&r, 0); break;
    case 1: fuzz_steps(&r, 1); break;
    default: fuzz_table(&r); break;
    }
    /* seconds_up over the whole range. */
    fuzz_reader_t s = {data, size, 1};
    int64_t ms = (int64_t)fuzz_u64(&s);
    int64_t secs = redeem_gcra_seconds_up(ms);
    FUZZ_CHECK(ms <= 0 ? secs == 0
                       : (__int128)secs * 1000 >= ms && (__int128)(secs - 1) * 1000 < ms,
               "seconds_up is not ms rounded up");
    return 0;
}
