#include "core/token.h"
#include "core/json_out.h"
#include "core/text.h"

#include <apr_strings.h>
#include <jansson.h>
#include <inttypes.h>
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

/* check_shape capped the whole token: a segment decodes into this. */
#define SEGMENT_MAX_BYTES (REDEEM_TOKEN_MAX_LEN * 3 / 4 + 1)

/* A segment's bytes: 0, or -1 when it is not canonical base64url. */
static int decode_segment(const char *segment, size_t len, unsigned char bytes[SEGMENT_MAX_BYTES],
                          size_t *n)
{
    return len <= REDEEM_TOKEN_MAX_LEN &&
                   redeem_text_base64_decode(REDEEM_TEXT_BASE64URL, segment, len, bytes, n) == 0
               ? 0
               : -1;
}

/* A segment's bytes as JSON, read by us and not by libjwt (which keeps the
 * last of two equal keys): an object without duplicate keys, or NULL. A
 * NUL byte anywhere refuses it: jansson reads on past one between tokens,
 * where any C-string reader of the same text (libjwt's, a log's) stops. */
static json_t *object_json(const unsigned char *bytes, size_t n)
{
    json_t *value = memchr(bytes, '\0', n) == NULL
                        ? json_loadb((const char *)bytes, n, JSON_REJECT_DUPLICATES, NULL)
                        : NULL;
    if (value && !json_is_object(value)) {
        json_decref(value);
        value = NULL;
    }
    return value;
}

static json_t *segment_json(const char *segment, size_t len)
{
    unsigned char bytes[SEGMENT_MAX_BYTES];
    size_t n = 0;
    return decode_segment(segment, len, bytes, &n) == 0 ? object_json(bytes, n) : NULL;
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

/* The claims the checks read, each as its JSON value's kind. Both readers
 * below fill these, so that one set of checks judges every token. */
typedef enum { CLAIM_ABSENT, CLAIM_INTEGER, CLAIM_STRING, CLAIM_OTHER } claim_kind_e;
typedef struct {
    claim_kind_e kind;
    int64_t integer;  /* CLAIM_INTEGER */
    const char *text; /* CLAIM_STRING: its bytes (no NUL among them), len of them */
    size_t len;
} claim_t;
enum {
    CLAIM_EXP,
    CLAIM_IAT,
    CLAIM_NBF,
    CLAIM_ISS,
    CLAIM_AUD,
    CLAIM_USER_ID,
    CLAIM_SUB,
    CLAIM_EMAIL,
    CLAIM_GEN,
    CLAIM_COUNT
};
static const char *const claim_names[CLAIM_COUNT] = {
    [CLAIM_EXP] = "exp", [CLAIM_IAT] = "iat",     [CLAIM_NBF] = "nbf",
    [CLAIM_ISS] = "iss", [CLAIM_AUD] = "aud",     [CLAIM_USER_ID] = "user_id",
    [CLAIM_SUB] = "sub", [CLAIM_EMAIL] = "email", [CLAIM_GEN] = "gen"};

static int claim_named(const char *name, size_t name_len)
{
    for (int c = 0; c < CLAIM_COUNT; c++)
        if (strlen(claim_names[c]) == name_len && memcmp(claim_names[c], name, name_len) == 0)
            return c;
    return -1;
}

/* The claims of an object jansson read (JSON_REJECT_DUPLICATES). */
static void claims_of_json(json_t *object, claim_t claims[CLAIM_COUNT])
{
    const char *key;
    json_t *value;
    for (int c = 0; c < CLAIM_COUNT; c++)
        claims[c].kind = CLAIM_ABSENT;
    json_object_foreach(object, key, value)
    {
        int c = claim_named(key, strlen(key));
        if (c < 0)
            continue;
        claims[c].kind = json_is_integer(value)  ? CLAIM_INTEGER
                         : json_is_string(value) ? CLAIM_STRING
                                                 : CLAIM_OTHER;
        claims[c].integer = json_is_integer(value) ? json_integer_value(value) : 0;
        claims[c].text = json_is_string(value) ? json_string_value(value) : NULL;
        claims[c].len = json_is_string(value) ? json_string_length(value) : 0;
    }
}

/* The flat reader: the claims of the objects we issue, read in place with
 * no allocation (jansson's parse was a third of a token check). It takes a
 * JSON object whose values are integers, strings of printable ASCII without
 * escapes, true, false or null, with at most FLAT_MAX_KEYS keys, none
 * repeated; for anything else (a real, an escape, a byte over 0x7F, a
 * nested value, a repeated key, an integer out of range, text that is no
 * JSON) it returns 0 and jansson reads the segment as before, so that both
 * accept and refuse exactly the same. fuzz_token.c checks the two agree. */
#define FLAT_MAX_KEYS 24

static int flat_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t flat_skip_space(const unsigned char *s, size_t n, size_t i)
{
    while (i < n && flat_space(s[i]))
        i++;
    return i;
}

/* A string at s[*i] (its opening quote): 1 with its bytes, or 0. */
static int flat_string(const unsigned char *s, size_t n, size_t *i, const char **text, size_t *len)
{
    size_t at = *i + 1;
    for (size_t j = at; j < n; j++) {
        if (s[j] == '"') {
            *text = (const char *)s + at;
            *len = j - at;
            *i = j + 1;
            return 1;
        }
        if (s[j] < 0x20 || s[j] > 0x7f || s[j] == '\\')
            return 0;
    }
    return 0;
}

/* An integer at s[*i] in JSON's form (no leading zero, no fraction or
 * exponent) within int64_t: 1 with its value, or 0. */
static int flat_integer(const unsigned char *s, size_t n, size_t *i, int64_t *value)
{
    size_t j = *i;
    int negative = j < n && s[j] == '-';
    if (negative)
        j++;
    if (j >= n || s[j] < '0' || s[j] > '9' ||
        (s[j] == '0' && j + 1 < n && s[j + 1] >= '0' && s[j + 1] <= '9'))
        return 0;
    uint64_t magnitude = 0, limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; j < n && s[j] >= '0' && s[j] <= '9'; j++) {
        unsigned digit = (unsigned)(s[j] - '0');
        if (magnitude > (limit - digit) / 10)
            return 0;
        magnitude = magnitude * 10 + digit;
    }
    if (j < n && (s[j] == '.' || s[j] == 'e' || s[j] == 'E'))
        return 0;
    *value = negative ? (int64_t)(0 - magnitude) : (int64_t)magnitude;
    *i = j;
    return 1;
}

static int flat_literal(const unsigned char *s, size_t n, size_t *i)
{
    static const char *const literals[] = {"true", "false", "null"};
    for (size_t k = 0; k < sizeof literals / sizeof *literals; k++) {
        size_t len = strlen(literals[k]);
        if (n - *i >= len && memcmp(s + *i, literals[k], len) == 0) {
            *i += len;
            return 1;
        }
    }
    return 0;
}

static int flat_claims(const unsigned char *s, size_t n, claim_t claims[CLAIM_COUNT])
{
    struct {
        const char *text;
        size_t len;
    } keys[FLAT_MAX_KEYS];
    size_t nkeys = 0, i = flat_skip_space(s, n, 0);
    for (int c = 0; c < CLAIM_COUNT; c++)
        claims[c].kind = CLAIM_ABSENT;
    if (i >= n || s[i] != '{')
        return 0;
    i = flat_skip_space(s, n, i + 1);
    if (i < n && s[i] == '}')
        return flat_skip_space(s, n, i + 1) == n;
    for (;;) {
        const char *key;
        size_t key_len;
        if (i >= n || s[i] != '"' || !flat_string(s, n, &i, &key, &key_len) ||
            nkeys == FLAT_MAX_KEYS)
            return 0;
        for (size_t k = 0; k < nkeys; k++)
            if (keys[k].len == key_len && memcmp(keys[k].text, key, key_len) == 0)
                return 0;
        keys[nkeys].text = key;
        keys[nkeys++].len = key_len;
        i = flat_skip_space(s, n, i);
        if (i >= n || s[i] != ':')
            return 0;
        i = flat_skip_space(s, n, i + 1);
        claim_t value = {CLAIM_OTHER, 0, NULL, 0};
        if (i < n && s[i] == '"') {
            if (!flat_string(s, n, &i, &value.text, &value.len))
                return 0;
            value.kind = CLAIM_STRING;
        }
        else if (i < n && (s[i] == '-' || (s[i] >= '0' && s[i] <= '9'))) {
            if (!flat_integer(s, n, &i, &value.integer))
                return 0;
            value.kind = CLAIM_INTEGER;
        }
        else if (i >= n || !flat_literal(s, n, &i))
            return 0;
        int c = claim_named(key, key_len);
        if (c >= 0)
            claims[c] = value;
        i = flat_skip_space(s, n, i);
        if (i < n && s[i] == ',') {
            i = flat_skip_space(s, n, i + 1);
            continue;
        }
        if (i < n && s[i] == '}')
            return flat_skip_space(s, n, i + 1) == n;
        return 0;
    }
}

static int claim_is(const claim_t *claim, const char *text)
{
    size_t len = strlen(text);
    return claim->kind == CLAIM_STRING && claim->len == len && memcmp(claim->text, text, len) == 0;
}

/* A time claim must be a JSON integer: a string or real must not read as 0. */
static const char *time_claim(const claim_t *claim, int required, int64_t *out)
{
    if (claim->kind == CLAIM_ABSENT)
        return required ? "required time claim missing" : NULL;
    if (claim->kind != CLAIM_INTEGER)
        return "time claim is not an integer";
    *out = claim->integer;
    return NULL;
}

static const char *check_claims(const redeem_token_config_t *cfg, const claim_t claims[CLAIM_COUNT],
                                int64_t now, redeem_token_holder_t *holder)
{
    int64_t exp = 0, iat = 0, nbf = 0;
    const char *why;
    if ((why = time_claim(&claims[CLAIM_EXP], 1, &exp)))
        return why;
    /* now - leeway, not exp + leeway: exp comes from the client and may be
     * near INT64_MAX. */
    if (exp <= now - cfg->leeway)
        return "token expired";
    if (claims[CLAIM_IAT].kind != CLAIM_ABSENT) {
        if ((why = time_claim(&claims[CLAIM_IAT], 0, &iat)))
            return why;
        if (iat > now + cfg->leeway)
            return "token issued in the future";
    }
    if (claims[CLAIM_NBF].kind != CLAIM_ABSENT) {
        if ((why = time_claim(&claims[CLAIM_NBF], 0, &nbf)))
            return why;
        if (nbf > now + cfg->leeway)
            return "token not yet valid";
    }
    if (cfg->issuer && !claim_is(&claims[CLAIM_ISS], cfg->issuer))
        return "issuer does not match";
    if (cfg->audience && !claim_is(&claims[CLAIM_AUD], cfg->audience))
        return "audience does not match (another site's token, or one issued before tokens "
               "named their site)";
    const claim_t *uid = &claims[CLAIM_USER_ID], *email = &claims[CLAIM_EMAIL],
                  *gen = &claims[CLAIM_GEN];
    if (uid->kind != CLAIM_INTEGER || uid->integer <= 0)
        return "user_id is not a positive integer";
    if (claims[CLAIM_SUB].kind != CLAIM_STRING)
        return "sub is not a string";
    char expected_sub[24];
    snprintf(expected_sub, sizeof expected_sub, "%" PRId64, uid->integer);
    if (!claim_is(&claims[CLAIM_SUB], expected_sub))
        return "sub does not match user_id";
    size_t email_len = email->kind == CLAIM_STRING ? email->len : 0;
    if (!email_len || email_len > REDEEM_TOKEN_EMAIL_MAX || memchr(email->text, '\0', email_len))
        return "email is not a string of an address's length";
    if (gen->kind != CLAIM_ABSENT && (gen->kind != CLAIM_INTEGER || gen->integer < 0))
        return "gen is not an integer of 0 or more";
    memcpy(holder->email, email->text, email_len);
    holder->email[email_len] = '\0';
    holder->user_id = uid->integer;
    holder->generation = gen->kind == CLAIM_INTEGER ? gen->integer : 0;
    return NULL;
}

/* The claims segment read and checked: in place when the flat reader takes
 * it, else by jansson. */
static const char *read_claims(const redeem_token_config_t *cfg, const char *segment, size_t len,
                               int64_t now, redeem_token_holder_t *holder)
{
    unsigned char bytes[SEGMENT_MAX_BYTES];
    size_t n = 0;
    claim_t claims[CLAIM_COUNT];
    if (decode_segment(segment, len, bytes, &n) != 0)
        return "claims are not a JSON object without duplicate keys";
    if (!cfg->generic_claims && flat_claims(bytes, n, claims))
        return check_claims(cfg, claims, now, holder);
    /* Decoded once: jansson reads the same bytes. */
    json_t *object = object_json(bytes, n);
    if (!object)
        return "claims are not a JSON object without duplicate keys";
    claims_of_json(object, claims);
    const char *why = check_claims(cfg, claims, now, holder);
    json_decref(object);
    return why;
}

/* The header of every token we issue, as libjwt wrote it:
 * {"alg":"HS256","typ":"JWT"} in base64url. A token that carries exactly
 * this has its header accepted unparsed (check_header accepts these bytes:
 * unit tests); any other is parsed and checked. */
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
    return read_claims(cfg, first_dot + 1, (size_t)(second_dot - first_dot - 1), now, holder);
}

/* The claims in the order libjwt wrote them (its keys sorted), written into
 * the pool: the token is the same text libjwt 1.10 makes of the same claims
 * (unit tests build both and compare), without the jansson objects, BIO
 * chain and strings it malloc'd and freed at every login, whose freed chunks
 * each of a child's threads kept in its own cache of glibc's
 * (docs/performance.md, "A login's response and token written into pool
 * memory"). */
const char *redeem_token_issue(apr_pool_t *p, const redeem_token_config_t *cfg,
                               const redeem_token_subject_t *sub, int64_t now, char **token)
{
    if (cfg->secret == NULL || cfg->secret_len < REDEEM_TOKEN_SECRET_MIN_LEN)
        return "no usable secret";
    unsigned char jti_bytes[16];
    char jti[33];
    if (RAND_bytes(jti_bytes, sizeof jti_bytes) != 1)
        return "the random number generator failed";
    for (size_t i = 0; i < sizeof jti_bytes; i++)
        snprintf(jti + 2 * i, 3, "%02x", jti_bytes[i]);
    char sub_text[24];
    snprintf(sub_text, sizeof sub_text, "%" PRId64, sub->user_id);

    redeem_json_out_t claims;
    redeem_json_out_begin(&claims, p);
    redeem_json_out_bool(&claims, "admin", sub->admin);
    if (cfg->audience)
        redeem_json_out_string(&claims, "aud", cfg->audience);
    redeem_json_out_string(&claims, "email", sub->email);
    int64_t exp;
    if (__builtin_add_overflow(now, cfg->lifetime, &exp))
        return "could not build the token"; /* no time that late */
    redeem_json_out_int(&claims, "exp", exp);
    redeem_json_out_int(&claims, "gen", sub->generation);
    redeem_json_out_int(&claims, "iat", now);
    if (cfg->issuer)
        redeem_json_out_string(&claims, "iss", cfg->issuer);
    redeem_json_out_string(&claims, "jti", jti);
    redeem_json_out_string(&claims, "sub", sub_text);
    redeem_json_out_int(&claims, "user_id", sub->user_id);
    size_t claims_len = 0;
    const char *claims_text = redeem_json_out_end(&claims, &claims_len);
    if (!claims_text)
        return "could not build the token"; /* an email that is not UTF-8 */

    /* header "." claims "." signature, each in base64url without padding */
    size_t header_len = sizeof issued_header - 1;
    size_t claims_b64_len = (claims_len * 4 + 2) / 3;
    char *text = apr_palloc(p, header_len + 1 + claims_b64_len + 1 + 43 + 1);
    memcpy(text, issued_header, header_len);
    text[header_len] = '.';
    redeem_text_base64_encode(REDEEM_TEXT_BASE64URL, (const unsigned char *)claims_text, claims_len,
                              text + header_len + 1);
    size_t signed_len = header_len + 1 + claims_b64_len;
    unsigned char mac[32];
    if (!compute_mac(cfg, text, signed_len, mac))
        return "could not sign the token";
    text[signed_len] = '.';
    redeem_text_base64_encode(REDEEM_TEXT_BASE64URL, mac, sizeof mac, text + signed_len + 1);
    OPENSSL_cleanse(mac, sizeof mac);
    *token = text;
    return NULL;
}
