#include "core/futex_hash.h"

#include <errno.h>
#include <stddef.h>
#include <sys/prctl.h>

/* From <linux/prctl.h> of 6.16; Debian 12's headers predate it. */
#ifndef PR_FUTEX_HASH
#define PR_FUTEX_HASH 78
#define PR_FUTEX_HASH_SET_SLOTS 1
#define PR_FUTEX_HASH_GET_SLOTS 2
#endif

#define TEXT_OF(value) #value
#define TEXT(value) TEXT_OF(value)

const char *redeem_futex_hash_check(long long slots)
{
    if (slots < REDEEM_FUTEX_HASH_MIN_SLOTS || slots > REDEEM_FUTEX_HASH_MAX_SLOTS ||
        (slots & (slots - 1)) != 0)
        return "must be a power of two from " TEXT(REDEEM_FUTEX_HASH_MIN_SLOTS) " to " TEXT(
            REDEEM_FUTEX_HASH_MAX_SLOTS);
    return NULL;
}

int redeem_futex_hash_slots(void)
{
    return prctl(PR_FUTEX_HASH, PR_FUTEX_HASH_GET_SLOTS, 0, 0, 0);
}

int redeem_futex_hash_resize(unsigned int slots, unsigned int *now)
{
    /* The fourth argument, flags, is 0: the table stays resizable by the
     * kernel's rules, only its size is ours. */
    if (prctl(PR_FUTEX_HASH, PR_FUTEX_HASH_SET_SLOTS, (unsigned long)slots, 0UL, 0UL) != 0)
        return errno;
    int got = redeem_futex_hash_slots();
    if (got < 0)
        return errno;
    *now = (unsigned int)got;
    return 0;
}
