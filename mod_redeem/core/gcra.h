/* GCRA (generic cell rate algorithm) arithmetic for the rate limiter.
 * No httpd or APR headers: unit tests and any store (shared table, Redis
 * script mirror) call it.
 *
 * A policy is COUNT requests per PERIOD seconds. Each key keeps one value,
 * its theoretical arrival time (TAT) in milliseconds. A fresh key may send
 * COUNT requests at once, then one more every interval. All arithmetic is
 * integer and free of overflow for any int64 times. */
#ifndef REDEEM_GCRA_H
#define REDEEM_GCRA_H

#include <stdint.h>

/* The longest period a policy may have: 366 days. */
#define REDEEM_GCRA_MAX_PERIOD_S 31622400u

typedef struct {
    uint32_t count;      /* requests per period, >= 1 */
    uint32_t period_s;   /* seconds, 1 .. REDEEM_GCRA_MAX_PERIOD_S */
    int64_t interval_ms; /* period / count, rounded down to whole ms (>= 1) */
    int64_t limit_ms;    /* count * interval_ms: how far the TAT may run ahead of
                          * now; equals the period when count divides it */
} redeem_gcra_policy_t;

/* 0 and the policy filled, or -1 when count or period is out of range, or when
 * the period in ms divided by count is under 1 ms or leaves a remainder of
 * more than 1% of the period (the rounded interval would let the rate exceed
 * the policy by more than 1%). Every policy of up to 10 requests per second
 * on average is accepted. */
int redeem_gcra_policy_init(redeem_gcra_policy_t *p, uint32_t count, uint32_t period_s);

typedef struct {
    int allowed;            /* 1: serve the request; 0: refuse it (429) */
    uint32_t remaining;     /* further requests allowed right now after this one */
    int64_t retry_after_ms; /* when refused: time until one more request is
                             * allowed (> 0); 0 when allowed */
    int64_t reset_ms;       /* time until the whole quota is back (0 when the key
                             * carries no charge) */
} redeem_gcra_verdict_t;

/* Charges one request at now_ms against the stored tat (0, or any value at or
 * before now_ms, means no state) and fills *v. Returns the TAT to store: the
 * new one when allowed; when refused the old one, except that a TAT more than
 * limit_ms ahead of now (the clock went back) is pulled in to now + limit_ms,
 * so a backward clock never locks a key out for longer than one period.
 * p must come from redeem_gcra_policy_init (anything else is refused).
 * Exact unless now_ms is within 2 * limit_ms of INT64_MAX, where the returned
 * TAT saturates. */
int64_t redeem_gcra_step(const redeem_gcra_policy_t *p, int64_t tat, int64_t now_ms,
                         redeem_gcra_verdict_t *v);

/* Whole seconds for headers (Retry-After, RateLimit t=): ms rounded up, 0
 * for ms <= 0. A refused verdict has retry_after_ms and reset_ms > 0, so
 * both give at least 1. */
int64_t redeem_gcra_seconds_up(int64_t ms);

#endif
