/* Locks and condition variables for the module's own waits: a request in
 * line for a pooled connection (pool_gate.c), for a user read
 * (user_reads.c), for a hashing slot (hashing.c). APR's
 * apr_thread_cond_timedwait sleeps until an instant of the wall clock,
 * fixed as the wait begins, so a step of that clock back while a request
 * sleeps (NTP at boot, a VM resumed, a hand) would keep it asleep for the
 * step on top of its timeout. A timed wait here counts its timeout on
 * CLOCK_MONOTONIC, which is never stepped. No httpd headers: unit tests
 * call it. */
#ifndef REDEEM_SYNC_H
#define REDEEM_SYNC_H

#include <apr_pools.h>
#include <apr_time.h>

typedef struct redeem_sync_lock redeem_sync_lock_t;
typedef struct redeem_sync_cond redeem_sync_cond_t;

/* Made in p and destroyed with it: APR_SUCCESS, or the error. */
apr_status_t redeem_sync_lock_create(redeem_sync_lock_t **lock, apr_pool_t *p);
void redeem_sync_lock(redeem_sync_lock_t *lock);
void redeem_sync_unlock(redeem_sync_lock_t *lock);

/* Made in p and destroyed with it: APR_SUCCESS, or the error. */
apr_status_t redeem_sync_cond_create(redeem_sync_cond_t **cond, apr_pool_t *p);
/* With lock held: sleeps until signalled (or woken spuriously). */
void redeem_sync_wait(redeem_sync_cond_t *cond, redeem_sync_lock_t *lock);
/* With lock held: sleeps until signalled, or for at most timeout of the
 * monotonic clock. APR_TIMEUP when the time ran out, else APR_SUCCESS (a
 * wake-up, which may be spurious: callers check their condition). */
apr_status_t redeem_sync_timedwait(redeem_sync_cond_t *cond, redeem_sync_lock_t *lock,
                                   apr_interval_time_t timeout);
void redeem_sync_signal(redeem_sync_cond_t *cond);
void redeem_sync_broadcast(redeem_sync_cond_t *cond);

struct timespec;
/* The instant `timeout` (µs; a negative one counts as 0) after `now`: what
 * redeem_sync_timedwait sleeps until, on the monotonic clock. */
void redeem_sync_deadline(const struct timespec *now, apr_interval_time_t timeout,
                          struct timespec *until);

#endif
