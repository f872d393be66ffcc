/* Locks, condition variables and events for the module's own waits: a
 * request in line for a pooled connection (pool_gate.c), for a user read
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
/* With lock held: sleeps until signalled, or for at most timeout of the
 * monotonic clock. APR_TIMEUP when the time ran out, else APR_SUCCESS (a
 * wake-up, which may be spurious: callers check their condition). */
apr_status_t redeem_sync_timedwait(redeem_sync_cond_t *cond, redeem_sync_lock_t *lock,
                                   apr_interval_time_t timeout);
void redeem_sync_signal(redeem_sync_cond_t *cond);
void redeem_sync_broadcast(redeem_sync_cond_t *cond);

/* A one-way wake-up that a sleeper needs no lock to notice: a request in
 * line for a user read (user_reads.c) sleeps on its own event. Woken through
 * a condition variable, it would first have to take the line's lock back,
 * which its waker, or another woken request, still holds: it would sleep a
 * second time, on the lock, and be woken again by its unlock (perf of an
 * httpd child under the profile load: a twelfth of its CPU in those
 * wake-ups). An event is a 32-bit word (a Linux futex): a count of nudges,
 * and a bit that says it is finished for good.
 *
 * The waker may wake an event whose owner already left (it saw the change
 * and returned without sleeping): a wake-up of an address nobody sleeps on
 * does nothing, and one that reaches a later sleeper on the same address is
 * a spurious wake-up, which every futex user (glibc's locks, this) checks
 * its condition after. */
typedef struct redeem_sync_event {
    apr_uint32_t word;
} redeem_sync_event_t;

void redeem_sync_event_init(redeem_sync_event_t *event);
/* The event's word, read with acquire order: what a sleeper passes to
 * redeem_sync_event_wait, and what redeem_sync_event_done tells about
 * (after which the finisher's writes before redeem_sync_event_finish are
 * visible). */
apr_uint32_t redeem_sync_event_seen(const redeem_sync_event_t *event);
int redeem_sync_event_done(apr_uint32_t seen);
/* Changes the word, so that a sleeper that read it before sleeps no
 * longer: nudge while it is not finished, finish (release order) once the
 * sleeper's results are written. Neither wakes anyone: redeem_sync_event_wake
 * after them does, with no lock held where it can be. */
void redeem_sync_event_nudge(redeem_sync_event_t *event);
void redeem_sync_event_finish(redeem_sync_event_t *event);
void redeem_sync_event_wake(redeem_sync_event_t *event);
/* Sleeps while the word is still `seen`, for at most timeout of the
 * monotonic clock (a negative one: no limit). APR_TIMEUP when the time
 * ran out, else APR_SUCCESS: woken, the word changed before it slept, or
 * spuriously; callers read the word again. */
apr_status_t redeem_sync_event_wait(redeem_sync_event_t *event, apr_uint32_t seen,
                                    apr_interval_time_t timeout);

struct timespec;
/* The instant `timeout` (µs; a negative one counts as 0) after `now`: what
 * redeem_sync_timedwait sleeps until, on the monotonic clock. */
void redeem_sync_deadline(const struct timespec *now, apr_interval_time_t timeout,
                          struct timespec *until);

#endif
