/* Password policy and argon2id hashing. No httpd headers: unit tests call it. */
#ifndef REDEEM_PASSWORD_H
#define REDEEM_PASSWORD_H

#include <apr_pools.h>
#include <stddef.h>
#include <stdint.h>

#define REDEEM_PASSWORD_MIN_CHARS 8
#define REDEEM_PASSWORD_MAX_CHARS 128

/* OWASP's minimum for argon2id: 19 MiB, two passes, one lane. */
#define REDEEM_PASSWORD_DEFAULT_MEMORY_KIB 19456
#define REDEEM_PASSWORD_DEFAULT_ITERATIONS 2
#define REDEEM_PASSWORD_DEFAULT_PARALLELISM 1

typedef struct {
    uint32_t memory_kib;
    uint32_t iterations;
    uint32_t parallelism;
} redeem_password_cost_t;

typedef enum {
    REDEEM_PASSWORD_MISMATCH = 0,
    REDEEM_PASSWORD_MATCH = 1,
    REDEEM_PASSWORD_ERROR = -1 /* malformed stored hash, out of memory */
} redeem_password_result_e;

/* NULL when pw satisfies the policy, else the reason, fit for a 400 response.
 * Lengths count characters, not bytes; nothing is ever truncated. */
const char *redeem_password_check_policy(const char *pw, size_t len);

/* NULL when the cost is usable by libargon2, else the reason. */
const char *redeem_password_cost_check(const redeem_password_cost_t *cost);

/* Hashes pw with a fresh random salt into a PHC string. Returns NULL on
 * success, else libargon2's or OpenSSL's reason. */
const char *redeem_password_hash(apr_pool_t *p, const redeem_password_cost_t *cost, const char *pw,
                                 size_t len, char **encoded);

redeem_password_result_e redeem_password_verify(const char *encoded, const char *pw, size_t len);

#endif
