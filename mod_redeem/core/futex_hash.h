/* The size of a process's private futex hash (Linux 6.16 and later).
 * No httpd or APR headers: unit tests call it.
 *
 * Such a kernel gives each threaded process its own futex hash, sized by
 * the CPUs online (16 buckets on 2 cores), not by its threads. An event-MPM
 * child's idle workers all wait on one condition variable, so one bucket
 * holds about ThreadsPerChild waiters; every other futex that hashes to that
 * bucket (a mutex, a condition variable) walks them on each wake. A bigger
 * hash makes that unlikely. The setting belongs to the whole process, so the
 * module only makes it when the operator asks (RedeemFutexHashSlots). */
#ifndef REDEEM_FUTEX_HASH_H
#define REDEEM_FUTEX_HASH_H

/* The sizes accepted: a power of two in this range (the kernel wants a
 * power of two of at least 2; the top keeps the table at a few MB). */
#define REDEEM_FUTEX_HASH_MIN_SLOTS 2
#define REDEEM_FUTEX_HASH_MAX_SLOTS 65536

/* NULL when SLOTS is a size the directive accepts, else why not. */
const char *redeem_futex_hash_check(long long slots);

/* Gives this process a private futex hash of SLOTS buckets. 0 and *now set
 * to the size the kernel reports afterwards, or an errno: EINVAL from a
 * kernel without the setting (before 6.16, or built without it) or for a
 * size it refuses, ENOMEM. */
int redeem_futex_hash_resize(unsigned int slots, unsigned int *now);

/* The size of this process's private futex hash: 0 when it uses the
 * system-wide hash, -1 with errno set when the kernel cannot tell. */
int redeem_futex_hash_slots(void);

#endif
