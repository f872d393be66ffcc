/* A warning that can come once a request under overload (a pool or the
 * hashing slots full), told once in a while rather than once a request. No
 * httpd headers: unit tests call it. */
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

#endif
