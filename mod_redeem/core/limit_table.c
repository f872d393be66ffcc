#include "core/limit_table.h"

#include <sched.h>
#include <string.h>

/* Slot word: fingerprint (24) | pending (1) | TAT in ms after the epoch (39).
 *
 * A key's state is its one committed (not pending) slot whose TAT is after
 * now; a slot whose TAT is at or before now says nothing GCRA needs (the key
 * would start afresh anyway), so it is free for any key.
 *
 * Concurrency, without locks:
 * - Charging an existing state is one compare-and-swap of its word, so
 *   fingerprint and TAT change together: if the slot was meanwhile given to
 *   another key, the CAS fails and we look again.
 * - A new state is first claimed pending (carrying the claimer's own request),
 *   then the claimer re-reads the bucket and commits only if no other slot
 *   holds the key. Claim and re-read are sequentially consistent, so of two
 *   concurrent claims at least one sees the other (Dekker): a key never gets
 *   two committed states from racing claims. On seeing a committed state, or
 *   a pending claim at a lower index, the claimer withdraws (frees its slot)
 *   and starts over; a pending claim at a higher index it waits out. A claim
 *   counts for nothing until committed, so withdrawing it loses no charge.
 * - Others that meet a pending claim of their key wait for it briefly; a
 *   claim left by a killed process is withdrawn by the waiter after that, so
 *   a dead process blocks nobody for long. Only the claimer ever commits its
 *   claim, so it always knows whether its request counted.
 * - Should two committed states of one key ever coexist (processes whose
 *   clocks disagree about whether a nearly drained state has expired), the
 *   one further ahead is charged: the other only expires.
 *
 * Fingerprints: a key whose bucket holds live states of other keys shares one
 * of their states when its 24-bit fingerprint equals one of theirs, with
 * probability at most 8 / 2^24 (about 4.8e-7) per lookup; that key is then
 * limited together with the other one until their state expires. The bucket
 * index takes other hash bits, so this is the whole false-sharing rate. */

#define TABLE_MAGIC UINT64_C(0x31544c6d65656472) /* "rdeemLT1" */
#define TABLE_VERSION 1u
#define HEADER_BYTES 64
#define SLOTS 8
#define BUCKET_BYTES (SLOTS * 8)
#define TAT_BITS 39
#define TAT_MASK ((UINT64_C(1) << TAT_BITS) - 1)
#define PENDING (UINT64_C(1) << TAT_BITS)
#define FP_SHIFT 40
#define FP_MASK (~UINT64_C(0) << FP_SHIFT)
#define AWAIT_ROUNDS 2000     /* yields before a pending claim counts as abandoned */
#define CHECK_ROUNDS 1000000L /* a safety net, never reached in practice */

typedef struct {
    uint64_t magic;
    uint32_t version;
    uint32_t buckets;
    int64_t epoch_ms;
    uint64_t k0, k1; /* the SipHash key */
    uint64_t evictions;
    uint64_t reserved[2];
} table_header_t;

_Static_assert(sizeof(table_header_t) == HEADER_BYTES, "the header is one cache line");

static uint64_t load_le64(const unsigned char *b)
{
    uint64_t x = 0;
    for (int i = 7; i >= 0; i--)
        x = x << 8 | b[i];
    return x;
}

static uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

#define SIP_ROUND(v0, v1, v2, v3)                                                                  \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = rotl(v1, 13) ^ v0;                                                                    \
        v0 = rotl(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = rotl(v3, 16) ^ v2;                                                                    \
        v0 += v3;                                                                                  \
        v3 = rotl(v3, 21) ^ v0;                                                                    \
        v2 += v1;                                                                                  \
        v1 = rotl(v1, 17) ^ v2;                                                                    \
        v2 = rotl(v2, 32);                                                                         \
    } while (0)

static uint64_t siphash24(uint64_t k0, uint64_t k1, const unsigned char *in, size_t len)
{
    uint64_t v0 = k0 ^ UINT64_C(0x736f6d6570736575), v1 = k1 ^ UINT64_C(0x646f72616e646f6d),
             v2 = k0 ^ UINT64_C(0x6c7967656e657261), v3 = k1 ^ UINT64_C(0x7465646279746573);
    size_t whole = len - len % 8;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = load_le64(in + i);
        v3 ^= m;
        SIP_ROUND(v0, v1, v2, v3);
        SIP_ROUND(v0, v1, v2, v3);
        v0 ^= m;
    }
    /* The last block: the remaining bytes, and the length's low byte on top. */
    uint64_t last = (uint64_t)len << 56;
    for (size_t i = whole; i < len; i++)
        last |= (uint64_t)in[i] << (8 * (i - whole));
    v3 ^= last;
    SIP_ROUND(v0, v1, v2, v3);
    SIP_ROUND(v0, v1, v2, v3);
    v0 ^= last;
    v2 ^= 0xff;
    for (int i = 0; i < 4; i++)
        SIP_ROUND(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t redeem_limit_table_siphash(const unsigned char key[16], const void *data, size_t len)
{
    return siphash24(load_le64(key), load_le64(key + 8), data, len);
}

size_t redeem_limit_table_bytes(uint32_t entries)
{
    if (entries == 0)
        return 0;
    uint64_t buckets = ((uint64_t)entries + SLOTS - 1) / SLOTS;
    uint64_t bytes = HEADER_BYTES + buckets * BUCKET_BYTES; /* < 2^36 */
    return bytes > SIZE_MAX ? 0 : (size_t)bytes;
}

static int formatted(const table_header_t *h)
{
    return h && __atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) == TABLE_MAGIC &&
           h->version == TABLE_VERSION && h->buckets >= 1;
}

int redeem_limit_table_init(void *mem, size_t bytes, uint32_t entries,
                            const unsigned char hash_key[REDEEM_LIMIT_TABLE_HASH_KEY_LEN],
                            int64_t epoch_ms)
{
    size_t need = redeem_limit_table_bytes(entries);
    if (!mem || !hash_key || need == 0 || bytes < need ||
        (uintptr_t)mem % REDEEM_LIMIT_TABLE_ALIGN != 0)
        return -1;
    memset(mem, 0, need);
    table_header_t *h = mem;
    h->version = TABLE_VERSION;
    h->buckets = (uint32_t)((need - HEADER_BYTES) / BUCKET_BYTES);
    h->epoch_ms = epoch_ms;
    h->k0 = load_le64(hash_key);
    h->k1 = load_le64(hash_key + 8);
    __atomic_store_n(&h->magic, TABLE_MAGIC, __ATOMIC_RELEASE);
    return 0;
}

int redeem_limit_table_valid(const void *mem, size_t bytes)
{
    const table_header_t *h = mem;
    if (!mem || (uintptr_t)mem % REDEEM_LIMIT_TABLE_ALIGN != 0 || bytes < HEADER_BYTES ||
        !formatted(h))
        return 0;
    return (uint64_t)h->buckets <= (bytes - HEADER_BYTES) / BUCKET_BYTES;
}

static uint64_t *bucket_of(table_header_t *h, uint64_t hash)
{
    /* Multiply-shift maps the low 32 hash bits onto [0, buckets) evenly; the
     * fingerprint takes the top 24. */
    uint64_t index = ((hash & 0xffffffffu) * h->buckets) >> 32;
    return (uint64_t *)((unsigned char *)h + HEADER_BYTES + index * BUCKET_BYTES);
}

/* now_ms as ms after the epoch, at least 1 (a clock read before the epoch
 * counts as its first ms); -1 when a TAT a whole limit ahead would not fit. */
static int64_t relative_now(const table_header_t *h, int64_t now_ms, int64_t limit_ms)
{
    if (now_ms <= h->epoch_ms)
        return 1;
    uint64_t after = (uint64_t)now_ms - (uint64_t)h->epoch_ms;
    return after > TAT_MASK - (uint64_t)limit_ms ? -1 : (int64_t)after;
}

static int policy_fits(const redeem_gcra_policy_t *p)
{
    return p && p->interval_ms >= 1 && p->limit_ms >= p->interval_ms &&
           p->limit_ms <= (int64_t)REDEEM_GCRA_MAX_PERIOD_S * 1000;
}

static uint64_t load(const uint64_t *slot)
{
    return __atomic_load_n(slot, __ATOMIC_SEQ_CST);
}

static int cas(uint64_t *slot, uint64_t expected, uint64_t desired)
{
    return __atomic_compare_exchange_n(slot, &expected, desired, 0, __ATOMIC_SEQ_CST,
                                       __ATOMIC_SEQ_CST);
}

static int64_t tat_of(uint64_t word)
{
    return (int64_t)(word & TAT_MASK);
}

static void pause_briefly(int round)
{
    if (round < 16) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        return;
    }
    sched_yield();
}

/* Waits for a pending claim to be committed or withdrawn; withdraws it when
 * that takes too long (its claimer was killed or is starved; if alive, its
 * commit then fails and it starts over). */
static void await_claim(uint64_t *slot, uint64_t word)
{
    for (int round = 0; round < AWAIT_ROUNDS; round++) {
        if (load(slot) != word)
            return;
        pause_briefly(round);
    }
    cas(slot, word, 0);
}

typedef struct {
    uint64_t words[SLOTS];
    int state;   /* the key's committed live slot (the furthest ahead), or -1 */
    int pending; /* the first pending claim of the key, or -1 */
    int free;    /* the first slot free at now, or -1 */
    /* The live slot to give up when none is free: the committed state with
     * the smallest TAT; only when every live slot is another key's pending
     * claim, the claim with the smallest TAT (victim_is_claim). A fresh claim
     * has the smallest TAT of a bucket, so taking claims first would drop
     * new keys' claims before any state, one key's claim after another's. */
    int victim;
    int victim_is_claim;
} bucket_view_t;

static void look(const uint64_t *slots, uint64_t fp, int64_t now, bucket_view_t *view)
{
    view->state = view->pending = view->free = view->victim = -1;
    view->victim_is_claim = 0;
    int victim_claim = 0;
    int64_t least = INT64_MAX, least_claim = INT64_MAX;
    for (int i = 0; i < SLOTS; i++) {
        uint64_t word = view->words[i] = load(&slots[i]);
        int64_t tat = tat_of(word);
        if (tat <= now) {
            if (view->free < 0)
                view->free = i;
            continue;
        }
        if ((word & FP_MASK) == fp) {
            if (word & PENDING) {
                if (view->pending < 0)
                    view->pending = i;
            }
            else if (view->state < 0 || tat > tat_of(view->words[view->state]))
                view->state = i;
        }
        if (word & PENDING) {
            if (tat < least_claim) {
                least_claim = tat;
                victim_claim = i;
            }
        }
        else if (tat < least) {
            least = tat;
            view->victim = i;
        }
    }
    if (view->victim < 0) {
        view->victim = victim_claim;
        view->victim_is_claim = 1;
    }
}

/* After claiming slot mine: 1 when the claim is committed, 0 when it was
 * withdrawn (by us or by a waiter) and the request must start over. */
static int settle_claim(uint64_t *slots, int mine, uint64_t claim, uint64_t fp, int64_t now)
{
    for (;;) {
        int withdraw = 0, wait = -1;
        uint64_t waited = 0;
        for (int i = 0; i < SLOTS && !withdraw; i++) {
            uint64_t word = i == mine ? 0 : load(&slots[i]);
            if ((word & FP_MASK) != fp || tat_of(word) <= now)
                continue;
            if (!(word & PENDING) || i < mine)
                withdraw = 1;
            else if (wait < 0) {
                wait = i;
                waited = word;
            }
        }
        if (withdraw) {
            cas(&slots[mine], claim, 0);
            return 0;
        }
        if (wait < 0)
            return cas(&slots[mine], claim, claim & ~PENDING);
        await_claim(&slots[wait], waited);
    }
}

int redeem_limit_table_check(void *mem, const redeem_gcra_policy_t *p, const void *key,
                             size_t key_len, int64_t now_ms, redeem_gcra_verdict_t *v, int *evicted)
{
    table_header_t *h = mem;
    if (evicted)
        *evicted = 0;
    if (!formatted(h) || !policy_fits(p) || (!key && key_len))
        return -1;
    int64_t now = relative_now(h, now_ms, p->limit_ms);
    if (now < 0)
        return -1;
    uint64_t hash = siphash24(h->k0, h->k1, key, key_len);
    uint64_t fp = hash & FP_MASK;
    uint64_t *slots = bucket_of(h, hash);
    int dropped = 0;
    for (long round = 0; round < CHECK_ROUNDS; round++) {
        bucket_view_t view;
        look(slots, fp, now, &view);
        if (view.state >= 0) {
            uint64_t word = view.words[view.state];
            int64_t tat = tat_of(word);
            redeem_gcra_verdict_t verdict;
            int64_t next = redeem_gcra_step(p, tat, now, &verdict);
            if (next != tat && !cas(&slots[view.state], word, fp | (uint64_t)next))
                continue;
            *v = verdict;
            if (evicted)
                *evicted = dropped;
            return 0;
        }
        if (view.pending >= 0) {
            await_claim(&slots[view.pending], view.words[view.pending]);
            continue;
        }
        /* A new state: the first free slot, so racing claimers of one key
         * usually meet on the same slot; or else the one least ahead. */
        int target = view.free >= 0 ? view.free : view.victim;
        redeem_gcra_verdict_t verdict;
        int64_t tat = redeem_gcra_step(p, 0, now, &verdict);
        uint64_t claim = fp | PENDING | (uint64_t)tat;
        if (!cas(&slots[target], view.words[target], claim))
            continue;
        /* A claim taken over loses nothing (its claimer starts over): only
         * a committed state dropped is an eviction. */
        if (view.free < 0 && !view.victim_is_claim) {
            dropped = 1;
            __atomic_fetch_add(&h->evictions, 1, __ATOMIC_RELAXED);
        }
        if (settle_claim(slots, target, claim, fp, now)) {
            *v = verdict;
            if (evicted)
                *evicted = dropped;
            return 0;
        }
    }
    if (evicted)
        *evicted = dropped;
    return -1;
}

int redeem_limit_table_stats(const void *mem, int64_t now_ms, redeem_limit_table_stats_t *stats)
{
    const table_header_t *h = mem;
    if (!formatted(h))
        return -1;
    int64_t now = relative_now(h, now_ms, 0);
    if (now < 0)
        now = (int64_t)TAT_MASK; /* past the table's range: nothing is live */
    const uint64_t *slots = (const uint64_t *)((const unsigned char *)h + HEADER_BYTES);
    uint64_t entries = (uint64_t)h->buckets * SLOTS;
    stats->entries = entries > UINT32_MAX ? UINT32_MAX : (uint32_t)entries;
    stats->live = 0;
    for (uint64_t i = 0; i < entries; i++)
        if (tat_of(load(&slots[i])) > now)
            stats->live++;
    stats->evictions = __atomic_load_n(&h->evictions, __ATOMIC_RELAXED);
    return 0;
}

int redeem_limit_table_key_slots(const void *mem, const void *key, size_t key_len, int64_t now_ms)
{
    table_header_t *h = (table_header_t *)mem;
    if (!formatted(h) || (!key && key_len))
        return -1;
    int64_t now = relative_now(h, now_ms, 0);
    if (now < 0)
        now = (int64_t)TAT_MASK;
    uint64_t hash = siphash24(h->k0, h->k1, key, key_len);
    const uint64_t *slots = bucket_of(h, hash);
    int found = 0;
    for (int i = 0; i < SLOTS; i++) {
        uint64_t word = load(&slots[i]);
        if ((word & FP_MASK) == (hash & FP_MASK) && tat_of(word) > now)
            found++;
    }
    return found;
}
