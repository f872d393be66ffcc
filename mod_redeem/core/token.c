#include "core/token.h"
#include "core/text.h"

#include <apr_strings.h>
#include <jansson.h>
#include <inttypes.h>
#include <jwt.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

static int is_base64url(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* Three non-empty base64url segments, nothing else (no padding, no spaces). */
static const char *check_shape(const char *token, size_t len)
{
    if (len > REDEEM_TOKEN_MAX_LEN)
        return "token too long";
    size_t dots = 0, segment = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)token[i];
        if (c == '.') {
            if (segment == 0)
                return "empty token segment";
            dots++;
            segment = 0;
        }
        else if (is_base64url(c))
            segment++;
        else
            return "token holds a character outside base64url";
    }
    if (dots != 2 || segment == 0)
        return "token is not three segments";
    return NULL;
}

/* A segment of the token as JSON, read by us and not by libjwt (which keeps
 * the last of two equal keys): an object without duplicate keys, or NULL.
 * A NUL byte anywhere refuses it: jansson reads on past one between tokens,
 * where any C-string reader of the same text (libjwt's, a log's) stops. */
static json_t *segment_json(const char *segment, size_t len)
{
    /* check_shape capped the whole token: a segment decodes into this. */
    unsigned char bytes[REDEEM_TOKEN_MAX_LEN * 3 / 4 + 1];
    size_t n = 0;
    json_t *value = NULL;
    if (len <= REDEEM_TOKEN_MAX_LEN &&
        redeem_text_base64_decode(REDEEM_TEXT_BASE64URL, segment, len, bytes, &n) == 0 &&
        memchr(bytes, '\0', n) == NULL)
        value = json_loadb((const char *)bytes, n, JSON_REJECT_DUPLICATES, NULL);
    if (value && !json_is_object(value)) {
        json_decref(value);
        value = NULL;
    }
    return value;
}

struct redeem_token_mac {
    EVP_MAC_CTX *keyed; /* never updated: each check works on a copy */
};

static apr_status_t free_mac(void *data)
{
    redeem_token_mac_t *mac = data;
    EVP_MAC_CTX_free(mac->keyed);
    mac->keyed = NULL;
    return APR_SUCCESS;
}

const char *redeem_token_prepare(apr_pool_t *p, redeem_token_config_t *cfg)
{
    if (cfg->secret == NULL || cfg->secret_len < REDEEM_TOKEN_SECRET_MIN_LEN)
        return "no usable secret";
    redeem_token_mac_t *mac = apr_pcalloc(p, sizeof *mac);
    EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end()};
    mac->keyed = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
    EVP_MAC_free(hmac); /* the context holds its own reference */
    if (!mac->keyed || !EVP_MAC_init(mac->keyed, cfg->secret, cfg->secret_len, params)) {
        EVP_MAC_CTX_free(mac->keyed);
        return "HMAC-SHA256 is not available";
    }
    apr_pool_cleanup_register(p, mac, free_mac, apr_pool_cleanup_null);
    cfg->mac = mac;
    return NULL;
}

/* HMAC-SHA256 of data under cfg's secret: from the prepared key when there
 * is one (one-shot HMAC() looks the algorithm up by name under a lock at
 * every call: half of a token check's time), else keyed here. */
static int compute_mac(const redeem_token_config_t *cfg, const char *data, size_t len,
                       unsigned char mac[32])
{
    if (!cfg->mac) {
        unsigned int mac_len = 0;
        return HMAC(EVP_sha256(), cfg->secret, (int)cfg->secret_len, (const unsigned char *)data,
                    len, mac, &mac_len) != NULL &&
               mac_len == 32;
    }
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(cfg->mac->keyed);
    size_t mac_len = 0;
    int ok = ctx && EVP_MAC_update(ctx, (const unsigned char *)data, len) &&
             EVP_MAC_final(ctx, mac, &mac_len, 32) && mac_len == 32;
    EVP_MAC_CTX_free(ctx);
    return ok;
}

/* The signature: HMAC-SHA256 of "header.claims" as sent, in base64url
 * without padding (its one canonical form: 43 symbols), compared in
 * constant time. Ours, not libjwt's jwt_decode, which would decode and
 * parse both segments again and encode the MAC through a BIO chain: most of
 * a request's token check, for nothing the checks here do not do. */
static const char *check_signature(const redeem_token_config_t *cfg, const char *token,
                                   size_t signed_len, const char *signature, size_t signature_len)
{
    unsigned char mac[32];
    char expected[44];
    if (!compute_mac(cfg, token, signed_len, mac))
        return "the signature cannot be computed";
    redeem_text_base64_encode(REDEEM_TEXT_BASE64URL, mac, sizeof mac, expected);
    int valid =
        signature_len == strlen(expected) && CRYPTO_memcmp(signature, expected, signature_len) == 0;
    OPENSSL_cleanse(mac, sizeof mac);
    return valid ? NULL : "signature or encoding invalid";
}

static const char *check_header(json_t *header)
{
    const char *why = NULL;
    const char *key;
    json_t *value;
    json_object_foreach(header, key, value)
    {
        if (strcmp(key, "alg") == 0) {
            if (!json_is_string(value) || strcmp(json_string_value(value), "HS256") != 0)
                why = "header alg is not exactly HS256";
        }
        else if (strcmp(key, "typ") == 0) {
            if (!json_is_string(value) || strcmp(json_string_value(value), "JWT") != 0)
                why = "header typ is not JWT";
        }
        else
            why = "header has a key other than alg and typ";
        if (why)
            break;
    }
    if (!why && !json_object_get(header, "alg"))
        why = "header has no alg";
    return why;
}

/* A time claim must be a JSON integer: a string or real must not read as 0. */
static const char *time_claim(json_t *claims, const char *name, int required, int64_t *out)
{
    json_t *value = json_object_get(claims, name);
    if (value == NULL)
        return required ? "required time claim missing" : NULL;
    if (!json_is_integer(value))
        return "time claim is not an integer";
    *out = json_integer_value(value);
    return NULL;
}

static const char *check_claims(const redeem_token_config_t *cfg, json_t *claims, int64_t now,
                                redeem_token_holder_t *holder)
{
    int64_t exp = 0, iat = 0, nbf = 0;
    const char *why;
    if ((why = time_claim(claims, "exp", 1, &exp)))
        return why;
    /* now - leeway, not exp + leeway: exp comes from the client and may be
     * near INT64_MAX. */
    if (exp <= now - cfg->leeway)
        return "token expired";
    if (json_object_get(claims, "iat")) {
        if ((why = time_claim(claims, "iat", 0, &iat)))
            return why;
        if (iat > now + cfg->leeway)
            return "token issued in the future";
    }
    if (json_object_get(claims, "nbf")) {
        if ((why = time_claim(claims, "nbf", 0, &nbf)))
            return why;
        if (nbf > now + cfg->leeway)
            return "token not yet valid";
    }
    if (cfg->issuer) {
        json_t *iss = json_object_get(claims, "iss");
        if (!json_is_string(iss) || strcmp(json_string_value(iss), cfg->issuer) != 0)
            return "issuer does not match";
    }
    if (cfg->audience) {
        json_t *aud = json_object_get(claims, "aud");
        if (!json_is_string(aud) || strcmp(json_string_value(aud), cfg->audience) != 0)
            return "audience does not match (another site's token, or one issued before tokens "
                   "named their site)";
    }
    json_t *uid = json_object_get(claims, "user_id");
    json_t *sub = json_object_get(claims, "sub");
    if (!json_is_integer(uid) || json_integer_value(uid) <= 0)
        return "user_id is not a positive integer";
    if (!json_is_string(sub))
        return "sub is not a string";
    char expected_sub[24];
    snprintf(expected_sub, sizeof expected_sub, "%" JSON_INTEGER_FORMAT, json_integer_value(uid));
    if (strcmp(json_string_value(sub), expected_sub) != 0)
        return "sub does not match user_id";
    json_t *email = json_object_get(claims, "email");
    size_t email_len = json_is_string(email) ? json_string_length(email) : 0;
    if (!email_len || email_len > REDEEM_TOKEN_EMAIL_MAX ||
        memchr(json_string_value(email), '\0', email_len))
        return "email is not a string of an address's length";
    json_t *gen = json_object_get(claims, "gen");
    if (gen && (!json_is_integer(gen) || json_integer_value(gen) < 0))
        return "gen is not an integer of 0 or more";
    memcpy(holder->email, json_string_value(email), email_len + 1);
    holder->user_id = json_integer_value(uid);
    holder->generation = gen ? json_integer_value(gen) : 0;
    return NULL;
}

/* The header of every token we issue: libjwt's {"alg":"HS256","typ":"JWT"},
 * in base64url. A token that carries exactly this has its header accepted
 * unparsed (check_header accepts these bytes: unit tests); any other is
 * parsed and checked. */
static const char issued_header[] = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

const char *redeem_token_verify(const redeem_token_config_t *cfg, const char *token, size_t len,
                                int64_t now, redeem_token_holder_t *holder)
{
    const char *why = check_shape(token, len);
    if (why)
        return why;
    if (cfg->secret == NULL || cfg->secret_len < REDEEM_TOKEN_SECRET_MIN_LEN)
        return "no usable secret"; /* a short key is no key */

    /* The segments as they are in the token (check_shape saw exactly two
     * dots); the signature first, so that nothing unsigned is parsed. */
    const char *first_dot = memchr(token, '.', len);
    const char *second_dot = memchr(first_dot + 1, '.', len - (size_t)(first_dot + 1 - token));
    size_t header_len = (size_t)(first_dot - token);
    if ((why = check_signature(cfg, token, (size_t)(second_dot - token), second_dot + 1,
                               len - (size_t)(second_dot + 1 - token))))
        return why;
    if (header_len != sizeof issued_header - 1 || memcmp(token, issued_header, header_len) != 0) {
        json_t *header = segment_json(token, header_len);
        /* alg exactly HS256, nothing else */
        why = header ? check_header(header) : "header is not a JSON object without duplicate keys";
        json_decref(header);
        if (why)
            return why;
    }
    json_t *claims = segment_json(first_dot + 1, (size_t)(second_dot - first_dot - 1));
    why = claims ? check_claims(cfg, claims, now, holder)
                 : "claims are not a JSON object without duplicate keys";
    json_decref(claims);
    return why;
}

const char *redeem_token_issue(apr_pool_t *p, const redeem_token_config_t *cfg,
                               const redeem_token_subject_t *sub, int64_t now, char **token)
{
    unsigned char jti_bytes[16];
    char jti[33];
    if (RAND_bytes(jti_bytes, sizeof jti_bytes) != 1)
        return "the random number generator failed";
    for (size_t i = 0; i < sizeof jti_bytes; i++)
        snprintf(jti + 2 * i, 3, "%02x", jti_bytes[i]);

    jwt_t *jwt = NULL;
    if (jwt_new(&jwt) != 0)
        return "out of memory";
    const char *why = NULL;
    char sub_text[24];
    snprintf(sub_text, sizeof sub_text, "%" PRId64, sub->user_id);
    if (jwt_add_grant(jwt, "sub", sub_text) ||
        jwt_add_grant_int(jwt, "user_id", (long)sub->user_id) ||
        jwt_add_grant(jwt, "email", sub->email) || jwt_add_grant_bool(jwt, "admin", sub->admin) ||
        jwt_add_grant_int(jwt, "gen", (long)sub->generation) ||
        jwt_add_grant_int(jwt, "iat", (long)now) ||
        jwt_add_grant_int(jwt, "exp", (long)(now + cfg->lifetime)) ||
        jwt_add_grant(jwt, "jti", jti) || (cfg->issuer && jwt_add_grant(jwt, "iss", cfg->issuer)) ||
        (cfg->audience && jwt_add_grant(jwt, "aud", cfg->audience)) ||
        jwt_set_alg(jwt, JWT_ALG_HS256, cfg->secret, (int)cfg->secret_len)) {
        why = "could not build the token";
    }
    else {
        char *encoded = jwt_encode_str(jwt);
        if (encoded == NULL)
            why = "could not sign the token";
        else {
            *token = apr_pstrdup(p, encoded);
            free(encoded);
        }
    }
    jwt_free(jwt);
    return why;
}
