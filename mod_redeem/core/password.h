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
    REDEEM_PASSWORD_ERROR = -1, /* the stored hash is malformed or not one argon2id can check */
    REDEEM_PASSWORD_FAILED = -2 /* argon2 could not run (no memory, no thread): a server fault,
                                 * not the hash's nor the password's */
} redeem_password_result_e;

/* NULL when pw satisfies the policy, else the reason, fit for a 400 response.
 * Lengths count characters, not bytes; nothing is ever truncated. */
const char *redeem_password_check_policy(const char *pw, size_t len);

/* NULL when the cost is usable by libargon2, else the reason. */
const char *redeem_password_cost_check(const redeem_password_cost_t *cost);

/* The memory argon2 works in, kept from one hash to the next by a caller
 * that hashes often (one per hashing slot; never two hashes at once): mapped
 * at its first hash, mapped anew when a hash needs more, wiped by libargon2
 * after each hash. Start it zeroed; redeem_password_memory_release unmaps it.
 * NULL instead: the memory is mapped for one hash and unmapped after it. */
typedef struct {
    void *block;
    size_t bytes;
} redeem_password_memory_t;
void redeem_password_memory_release(redeem_password_memory_t *memory);

/* Hashes pw with a fresh random salt into a PHC string. Returns NULL on
 * success, else libargon2's or OpenSSL's reason. */
const char *redeem_password_hash(apr_pool_t *p, const redeem_password_cost_t *cost,
                                 redeem_password_memory_t *memory, const char *pw, size_t len,
                                 char **encoded);

/* 1 when a stored PHC string was not made at this cost (or is not one of
 * ours): a login that verified it should store a new hash at the cost, so
 * that every account's check costs what an unknown email's does (login
 * answers an unknown email after a check of the same cost). */
int redeem_password_needs_rehash(const char *encoded, const redeem_password_cost_t *cost);

redeem_password_result_e redeem_password_verify(redeem_password_memory_t *memory,
                                                const char *encoded, const char *pw, size_t len);

#endif
