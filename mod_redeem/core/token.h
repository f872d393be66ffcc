/* HS256 access tokens: issued here, the text libjwt 1.10 wrote of the same
 * claims (unit tests compare the two); checked here, strictly (each
 * segment's one canonical base64url form, JSON objects without duplicate
 * keys, the header exactly {"alg": "HS256"[, "typ": "JWT"]}, the HMAC by
 * OpenSSL in constant time, every time claim an integer), which libjwt 1.10
 * does not do. No httpd headers: unit tests and fuzzers call it. */
#ifndef REDEEM_TOKEN_H
#define REDEEM_TOKEN_H

#include <apr_pools.h>
#include <stddef.h>
#include <stdint.h>

/* No token of ours is near this long: anything longer is refused unread. */
#define REDEEM_TOKEN_MAX_LEN 4096
#define REDEEM_TOKEN_SECRET_MIN_LEN 32

/* HMAC-SHA256 keyed once with the secret (redeem_token_prepare). */
typedef struct redeem_token_mac redeem_token_mac_t;

typedef struct {
    const unsigned char *secret;
    size_t secret_len;
    const char *issuer;            /* NULL: no iss claim issued nor required */
    const char *audience;          /* the site's name for its tokens (claim "aud"): a token
                                    * holds only where it was issued, not on another site that
                                    * shares the secret; NULL: none issued nor required */
    int64_t lifetime;              /* seconds */
    int64_t leeway;                /* seconds of clock skew tolerated */
    const redeem_token_mac_t *mac; /* NULL: the MAC is keyed at each check */
    int generic_claims;            /* tests: claims always read by jansson, the reference
                                    * the in-place reader is checked against */
} redeem_token_config_t;

typedef struct {
    int64_t user_id;
    const char *email;
    int admin;
    int64_t generation; /* the account's token generation (claim "gen") */
} redeem_token_subject_t;

/* An email claim's bytes at most: 254 characters of up to 4 bytes. */
#define REDEEM_TOKEN_EMAIL_MAX 1016

/* What a valid token says about its holder. */
typedef struct {
    int64_t user_id;
    /* The account's email when the token was issued (claim "email"): the
     * token holds only for the account of that id and that email, not for
     * the same id in another site's database. */
    char email[REDEEM_TOKEN_EMAIL_MAX + 1];
    /* The account's token generation when the token was issued (claim
     * "gen"; 0 when absent: tokens issued before there were generations).
     * The token holds only while the account is still at it. */
    int64_t generation;
} redeem_token_holder_t;

/* Signs a token for sub issued at `now` (Unix seconds). NULL on success, else
 * the reason. */
const char *redeem_token_issue(apr_pool_t *p, const redeem_token_config_t *cfg,
                               const redeem_token_subject_t *sub, int64_t now, char **token);

/* Keys the MAC of cfg's secret once, for every later check (read-only,
 * shared by threads); freed with p. NULL on success, else the reason. */
const char *redeem_token_prepare(apr_pool_t *p, redeem_token_config_t *cfg);

/* Checks everything about a token but whether its user still exists at its
 * generation. NULL when valid, with *holder set; else the reason (for the
 * log, not the client). */
const char *redeem_token_verify(const redeem_token_config_t *cfg, const char *token, size_t len,
                                int64_t now, redeem_token_holder_t *holder);

#endif
