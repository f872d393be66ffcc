/* A fixed-size table of GCRA states in one block of shared memory.
 * No httpd or APR headers. The glue maps the block (anonymous shared memory,
 * before forking) and formats it once; every process, of any generation,
 * then checks keys against it without locks: nothing a killed process leaves
 * behind can block the others.
 *
 * Layout: a 64-byte header, then buckets of 8 slots, one 64-byte cache line
 * each. A slot is one uint64: a 24-bit key fingerprint, a pending bit and a
 * 39-bit TAT in ms after the table's epoch (17.4 years of range). A keyed
 * SipHash-2-4 of the key picks the bucket and the fingerprint; a key's state
 * lives in one slot of its bucket. Memory: 8 bytes per entry, entries rounded
 * up to a multiple of 8, plus 64 bytes. */
#ifndef REDEEM_LIMIT_TABLE_H
#define REDEEM_LIMIT_TABLE_H

#include "core/gcra.h"

#include <stddef.h>
#include <stdint.h>

#define REDEEM_LIMIT_TABLE_HASH_KEY_LEN 16
#define REDEEM_LIMIT_TABLE_ALIGN 64

/* Bytes needed for a table of at least this many entries; 0 when entries is 0
 * or the size does not fit a size_t. */
size_t redeem_limit_table_bytes(uint32_t entries);

/* Formats mem (aligned to REDEEM_LIMIT_TABLE_ALIGN, at least
 * redeem_limit_table_bytes(entries) long). hash_key: 16 random bytes, fresh
 * per table. epoch_ms: the origin of stored times, read from the same clock
 * as every now_ms passed later (e.g. CLOCK_MONOTONIC at creation). Not safe
 * against concurrent checks: format before forking. 0 on success, -1 on bad
 * arguments. */
int redeem_limit_table_init(void *mem, size_t bytes, uint32_t entries,
                            const unsigned char hash_key[REDEEM_LIMIT_TABLE_HASH_KEY_LEN],
                            int64_t epoch_ms);

/* 1 when mem holds a table formatted by this version of the code that fits in
 * bytes, else 0: check it before re-attaching a block kept across a restart. */
int redeem_limit_table_valid(const void *mem, size_t bytes);

/* Charges one request of key (the caller prefixes the scope, unambiguously,
 * to the key bytes) at now_ms under policy p and fills *v. *evicted (may be
 * NULL) is set to 1 when the key's bucket was full and another live key's
 * state was dropped to make room (that key starts afresh: log it), else 0.
 * Returns 0, or -1 when the table is not formatted, p is invalid, now_ms is
 * too far past the epoch (17.4 years less the period), or the bucket changed
 * under every one of CHECK_ROUNDS attempts: then *v is untouched
 * and the caller decides (fail open or closed). Lock-free and O(1); it may
 * yield the CPU briefly (up to 2000 sched_yield calls) when it meets another
 * process's unfinished creation of the same key, and clears that claim if the
 * process died. */
int redeem_limit_table_check(void *mem, const redeem_gcra_policy_t *p, const void *key,
                             size_t key_len, int64_t now_ms, redeem_gcra_verdict_t *v,
                             int *evicted);

typedef struct {
    uint32_t entries;   /* slots in the table */
    uint32_t live;      /* slots holding a state that still matters at now_ms */
    uint64_t evictions; /* live states dropped for room since formatting */
} redeem_limit_table_stats_t;

/* A racy but harmless snapshot, for a status page or a test. 0, or -1 when
 * the table is not formatted. */
int redeem_limit_table_stats(const void *mem, int64_t now_ms, redeem_limit_table_stats_t *stats);

/* How many slots hold a live state with key's fingerprint at now_ms (0 or 1
 * normally; for tests and diagnostics). -1 when the table is not formatted. */
int redeem_limit_table_key_slots(const void *mem, const void *key, size_t key_len, int64_t now_ms);

/* SipHash-2-4 (Aumasson and Bernstein) of data under a 16-byte key, as the
 * little-endian 64-bit value of the reference implementation. */
uint64_t redeem_limit_table_siphash(const unsigned char key[16], const void *data, size_t len);

#endif
