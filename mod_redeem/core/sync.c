/* Locks, monotonic condition variables and events (see sync.h). */
#include "core/sync.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct redeem_sync_lock {
    pthread_mutex_t mutex;
};

struct redeem_sync_cond {
    pthread_cond_t cond;
};

static apr_status_t destroy_lock(void *data)
{
    redeem_sync_lock_t *lock = data;
    pthread_mutex_destroy(&lock->mutex);
    return APR_SUCCESS;
}

apr_status_t redeem_sync_lock_create(redeem_sync_lock_t **made, apr_pool_t *p)
{
    redeem_sync_lock_t *lock = apr_palloc(p, sizeof *lock);
    int rv = pthread_mutex_init(&lock->mutex, NULL);
    if (rv)
        return rv;
    apr_pool_cleanup_register(p, lock, destroy_lock, apr_pool_cleanup_null);
    *made = lock;
    return APR_SUCCESS;
}

void redeem_sync_lock(redeem_sync_lock_t *lock)
{
    pthread_mutex_lock(&lock->mutex);
}

void redeem_sync_unlock(redeem_sync_lock_t *lock)
{
    pthread_mutex_unlock(&lock->mutex);
}

static apr_status_t destroy_cond(void *data)
{
    redeem_sync_cond_t *cond = data;
    pthread_cond_destroy(&cond->cond);
    return APR_SUCCESS;
}

apr_status_t redeem_sync_cond_create(redeem_sync_cond_t **made, apr_pool_t *p)
{
    redeem_sync_cond_t *cond = apr_palloc(p, sizeof *cond);
    pthread_condattr_t attr;
    int rv = pthread_condattr_init(&attr);
    if (rv)
        return rv;
    rv = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (!rv)
        rv = pthread_cond_init(&cond->cond, &attr);
    pthread_condattr_destroy(&attr);
    if (rv)
        return rv;
    apr_pool_cleanup_register(p, cond, destroy_cond, apr_pool_cleanup_null);
    *made = cond;
    return APR_SUCCESS;
}

void redeem_sync_deadline(const struct timespec *now, apr_interval_time_t timeout,
                          struct timespec *until)
{
    if (timeout < 0)
        timeout = 0;
    long long nsec = now->tv_nsec + (long long)(timeout % APR_USEC_PER_SEC) * 1000;
    until->tv_sec =
        now->tv_sec + (time_t)(timeout / APR_USEC_PER_SEC) + (time_t)(nsec / 1000000000);
    until->tv_nsec = (long)(nsec % 1000000000);
}

apr_status_t redeem_sync_timedwait(redeem_sync_cond_t *cond, redeem_sync_lock_t *lock,
                                   apr_interval_time_t timeout)
{
    struct timespec now, until;
    clock_gettime(CLOCK_MONOTONIC, &now);
    redeem_sync_deadline(&now, timeout, &until);
    int rv = pthread_cond_timedwait(&cond->cond, &lock->mutex, &until);
    return rv == ETIMEDOUT ? APR_TIMEUP : APR_SUCCESS;
}

void redeem_sync_signal(redeem_sync_cond_t *cond)
{
    pthread_cond_signal(&cond->cond);
}

void redeem_sync_broadcast(redeem_sync_cond_t *cond)
{
    pthread_cond_broadcast(&cond->cond);
}

/* The word's top bit: finished. The bits below count nudges, wrapping
 * within them. */
#define EVENT_DONE 0x80000000u

void redeem_sync_event_init(redeem_sync_event_t *event)
{
    __atomic_store_n(&event->word, 0, __ATOMIC_RELAXED);
}

apr_uint32_t redeem_sync_event_seen(const redeem_sync_event_t *event)
{
    return __atomic_load_n(&event->word, __ATOMIC_ACQUIRE);
}

int redeem_sync_event_done(apr_uint32_t seen)
{
    return (seen & EVENT_DONE) != 0;
}

void redeem_sync_event_nudge(redeem_sync_event_t *event)
{
    apr_uint32_t old = __atomic_load_n(&event->word, __ATOMIC_RELAXED), next;
    do
        next = (old & EVENT_DONE) | ((old + 1) & ~EVENT_DONE);
    while (!__atomic_compare_exchange_n(&event->word, &old, next, 1, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED));
}

void redeem_sync_event_finish(redeem_sync_event_t *event)
{
    __atomic_fetch_or(&event->word, EVENT_DONE, __ATOMIC_RELEASE);
}

void redeem_sync_event_wake(redeem_sync_event_t *event)
{
    syscall(SYS_futex, &event->word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

apr_status_t redeem_sync_event_wait(redeem_sync_event_t *event, apr_uint32_t seen,
                                    apr_interval_time_t timeout)
{
    /* FUTEX_WAIT's timeout is an interval, counted on CLOCK_MONOTONIC. */
    struct timespec interval, *limit = NULL;
    if (timeout >= 0) {
        interval.tv_sec = (time_t)(timeout / APR_USEC_PER_SEC);
        interval.tv_nsec = (long)(timeout % APR_USEC_PER_SEC) * 1000;
        limit = &interval;
    }
    if (syscall(SYS_futex, &event->word, FUTEX_WAIT_PRIVATE, seen, limit, NULL, 0) == -1 &&
        errno == ETIMEDOUT)
        return APR_TIMEUP;
    return APR_SUCCESS;
}
