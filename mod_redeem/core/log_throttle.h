/* A warning that can come once a request under overload (a pool or the
 * hashing slots full), told once in a while rather than once a request;
 * and an outage told once at its start and once at its end. No httpd
 * headers: unit tests call it. */
#ifndef REDEEM_LOG_THROTTLE_H
#define REDEEM_LOG_THROTTLE_H

#include <stdint.h>

/* Zeroed, ready; shared by a child's threads (its fields are atomic). */
typedef struct {
    int64_t told_at;    /* when the warning was last told (µs), 0: never */
    uint32_t held_back; /* occurrences not told since */
} redeem_log_throttle_t;

/* One more occurrence at `now` (µs of a monotonic clock, read by the
 * caller; threads may pass slightly different ones). Returns 1 if it is to
 * be told: none was told within `every` before it; *held_back is
 * then the count of those not told since the last one, which this call
 * clears. Returns 0 (and counts it) otherwise. */
int redeem_log_throttle_due(redeem_log_throttle_t *throttle, int64_t now, int64_t every,
                            uint32_t *held_back);

/* Forgets when it was last told: the next occurrence is told at once. */
void redeem_log_throttle_reset(redeem_log_throttle_t *throttle);

/* An outage of a service, in one word that every process shares: its
 * start and its end are told once each, by whichever process sees them
 * first, whatever the interleaving of the processes and whatever instant
 * one of them is killed at (two words, "down" and "told", could be left
 * told while up: the end never told, and the next outage never either). */
enum {
    REDEEM_OUTAGE_NONE = 0,   /* the service answers */
    REDEEM_OUTAGE_UNTOLD = 1, /* down, not told yet */
    REDEEM_OUTAGE_TOLD = 2    /* down, told: its end is to be told */
};

/* A failure: the outage begins, if it had not. Returns 1 if the caller is
 * to tell of it: `may_tell` (not within a quiet time after the last one),
 * and no other has told of this outage. Its two steps, below, each one
 * atomic: another process may act between them, or this one die there. */
int redeem_outage_failed(uint32_t *state, int may_tell);
void redeem_outage_begin(uint32_t *state);
int redeem_outage_claim(uint32_t *state, int may_tell);

/* An answer: the outage, if any, is over. Returns 1 if the caller is to
 * tell of its end (its start was told). */
int redeem_outage_ended(uint32_t *state);

#endif
