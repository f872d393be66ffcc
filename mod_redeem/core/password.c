#include "core/password.h"
#include "core/text.h"

#include <argon2.h>
#include <apr_strings.h>
#include <openssl/rand.h>

#define SALT_BYTES 16
#define HASH_BYTES 32

const char *redeem_password_check_policy(const char *pw, size_t len)
{
    size_t chars = redeem_text_utf8_length(pw, len);
    if (chars < REDEEM_PASSWORD_MIN_CHARS)
        return "Password must be at least 8 characters";
    if (chars > REDEEM_PASSWORD_MAX_CHARS)
        return "Password must be at most 128 characters";

    int has_letter = 0, has_digit = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)pw[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80)
            has_letter = 1; /* any non-ASCII character counts as a letter */
        else if (c >= '0' && c <= '9')
            has_digit = 1;
    }
    if (!has_letter || !has_digit)
        return "Password must contain at least one letter and one digit";
    return NULL;
}

const char *redeem_password_cost_check(const redeem_password_cost_t *cost)
{
    if (cost->parallelism < ARGON2_MIN_LANES || cost->parallelism > 64)
        return "parallelism must be between 1 and 64";
    if (cost->iterations < ARGON2_MIN_TIME || cost->iterations > 64)
        return "iterations must be between 1 and 64";
    if (cost->memory_kib < 8 * cost->parallelism || cost->memory_kib > 4 * 1024 * 1024)
        return "memory must be between 8 KiB per lane and 4 GiB";
    return NULL;
}

const char *redeem_password_hash(apr_pool_t *p, const redeem_password_cost_t *cost, const char *pw,
                                 size_t len, char **encoded)
{
    unsigned char salt[SALT_BYTES];
    if (RAND_bytes(salt, sizeof salt) != 1)
        return "the random number generator failed";

    size_t encoded_len = argon2_encodedlen(cost->iterations, cost->memory_kib, cost->parallelism,
                                           SALT_BYTES, HASH_BYTES, Argon2_id);
    char *out = apr_palloc(p, encoded_len);
    int rc = argon2id_hash_encoded(cost->iterations, cost->memory_kib, cost->parallelism, pw, len,
                                   salt, sizeof salt, HASH_BYTES, out, encoded_len);
    if (rc != ARGON2_OK)
        return argon2_error_message(rc);
    *encoded = out;
    return NULL;
}

redeem_password_result_e redeem_password_verify(const char *encoded, const char *pw, size_t len)
{
    int rc = argon2id_verify(encoded, pw, len);
    if (rc == ARGON2_OK)
        return REDEEM_PASSWORD_MATCH;
    if (rc == ARGON2_VERIFY_MISMATCH)
        return REDEEM_PASSWORD_MISMATCH;
    return REDEEM_PASSWORD_ERROR;
}
