/* libFuzzer target: access tokens (redeem_token_verify, redeem_token_issue).
 *
 * Input: first byte even: the rest is the token as the Authorization header
 * hands it over (NUL-terminated at its length, as auth.c passes it).
 * First byte 1 mod 4: a token the harness builds. Next byte: flags; the rest
 * is the header JSON, a NUL byte, the claims JSON. The harness
 * base64url-encodes both and signs them with the configured secret (so the
 * fuzzer gets past the signature and into the header and claim checks),
 * unless the flags ask for another digest, another key or a flipped
 * signature.
 * First byte 3 mod 4: a token the module issues (redeem_token_issue), for
 * the user id in the next 8 bytes (made positive), the token generation in
 * the 8 after them (made at most 2^31 - 1) and the rest as email,
 * normalized first as register does: it must fit the length cap, verify to
 * that user id and generation until exp + leeway, and be refused from then
 * on.
 *
 * Invariants on any token verify accepts: three canonical segments, the
 * signature is HMAC-SHA256 under the secret, the header is {"alg":"HS256"}
 * with at most "typ":"JWT", exp/iat/nbf are integers and in range (computed
 * without overflow), iss matches, user_id is positive and sub its decimal
 * form, the holder's user id was set to it, email is a string of at most
 * REDEEM_TOKEN_EMAIL_MAX bytes without NUL and the holder's email is it, gen
 * is absent or an integer of 0 or more and the holder's generation is it (0
 * when absent). A token signed any other way is
 * refused; a secret under 32 bytes refuses everything.
 *
 * Every token is verified twice, its claims read in place and by jansson
 * (generic_claims): the answers and holders must be the same.
 *
 * FUZZ_STRICT=dup-keys: an accepted token has no duplicate key in its header
 * or claims (token.c parses both itself with JSON_REJECT_DUPLICATES).
 * FUZZ_SKIP=exp-overflow: steps around claims whose exp + leeway overflows
 * (open item: UBSan signed overflow in check_claims), for long runs only. */
#include "fuzz_common.h"

#include "core/email.h"
#include "core/token.h"

#include <apr_general.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define NOW INT64_C(1800000000)
#define LEEWAY INT64_C(60)
#define ISSUER "https://redeem.example/fuzz"
/* A site's name in its tokens, as redeem_auth_audience makes it. */
#define AUDIENCE "0123456789abcdef"

static const char secret[] = "fuzzing-secret-0123456789abcdef-0123456789";
static int strict_dup_keys, skip_exp_overflow;
static apr_pool_t *pool;
/* The secret with its MAC keyed once (redeem_token_prepare), kept for the run. */
static apr_pool_t *keep;
static redeem_token_config_t prepared;

/* Frees the prepared MAC at exit: its context is referenced only from pool
 * memory, which LeakSanitizer does not count as a root. */
static void free_keep(void)
{
    apr_pool_destroy(keep);
}

static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Unpadded base64url of in[0..len) into out (4 * ceil(len/3) + 1 bytes). */
static size_t b64url_encode(const unsigned char *in, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[o++] = B64URL[v >> 18 & 63];
        out[o++] = B64URL[v >> 12 & 63];
        if (i + 1 < len)
            out[o++] = B64URL[v >> 6 & 63];
        if (i + 2 < len)
            out[o++] = B64URL[v & 63];
    }
    out[o] = '\0';
    return o;
}

static int b64url_value(char c)
{
    const char *at = c ? strchr(B64URL, c) : NULL;
    return at ? (int)(at - B64URL) : -1;
}

/* Decodes a segment of base64url symbols into a malloc'ed NUL-terminated
 * buffer; trailing bits that make no whole byte are dropped. NULL when a
 * symbol is not base64url. */
static unsigned char *b64url_decode(const char *in, size_t len, size_t *out_len)
{
    unsigned char *out = malloc(len * 3 / 4 + 2);
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value(in[i]);
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = (acc << 6 | (uint32_t)v) & 0xFFFFFF;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    out[o] = '\0';
    *out_len = o;
    return out;
}

/* What a C-string reader (libjwt's, a log's) sees: the decoded segment read by
 * json_loads, so up to a NUL. */
static json_t *segment_json(const char *seg, size_t len, int flags)
{
    size_t n;
    unsigned char *text = b64url_decode(seg, len, &n);
    if (!text)
        return NULL;
    json_t *value = json_loads((const char *)text, (size_t)flags, NULL);
    free(text);
    return value;
}

static int64_t integer_claim(json_t *claims, const char *name, int *present)
{
    json_t *v = json_object_get(claims, name);
    *present = v != NULL;
    FUZZ_CHECK(!v || json_is_integer(v), "accepted token has a time claim that is no integer");
    return v ? (int64_t)json_integer_value(v) : 0;
}

/* Everything an accepted token must satisfy. */
static void check_accepted(const redeem_token_config_t *cfg, const char *token, size_t len,
                           const redeem_token_holder_t *holder)
{
    int64_t user_id = holder->user_id;
    FUZZ_CHECK(len <= REDEEM_TOKEN_MAX_LEN, "accepted token longer than the cap");
    const char *dot1 = memchr(token, '.', len);
    FUZZ_CHECK(dot1 != NULL, "accepted token without a dot");
    const char *dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token));
    FUZZ_CHECK(dot2 != NULL, "accepted token with one dot");
    const char *sig = dot2 + 1;
    size_t sig_len = len - (size_t)(sig - token);
    FUZZ_CHECK(memchr(sig, '.', sig_len) == NULL, "accepted token with a fourth segment");
    for (size_t i = 0; i < len; i++)
        FUZZ_CHECK(token[i] == '.' || b64url_value(token[i]) >= 0,
                   "accepted token holds a character outside base64url");

    /* The signature: HMAC-SHA256 of "header.claims" under the secret, canonical. */
    unsigned char mac[32];
    unsigned int mac_len = sizeof mac;
    char expected[48];
    HMAC(EVP_sha256(), cfg->secret, (int)cfg->secret_len, (const unsigned char *)token,
         (size_t)(dot2 - token), mac, &mac_len);
    size_t expected_len = b64url_encode(mac, mac_len, expected);
    FUZZ_CHECK(sig_len == expected_len && memcmp(sig, expected, sig_len) == 0,
               "accepted token whose signature is not HMAC-SHA256 under the secret");

    json_t *header = segment_json(token, (size_t)(dot1 - token), 0);
    FUZZ_CHECK(json_is_object(header), "accepted token whose header is not an object");
    const char *key;
    json_t *value;
    json_object_foreach(header, key, value)
    {
        if (strcmp(key, "alg") == 0)
            FUZZ_CHECK(json_is_string(value) && strcmp(json_string_value(value), "HS256") == 0,
                       "accepted token with alg other than HS256");
        else if (strcmp(key, "typ") == 0)
            FUZZ_CHECK(json_is_string(value) && strcmp(json_string_value(value), "JWT") == 0,
                       "accepted token with typ other than JWT");
        else
            FUZZ_CHECK(0, "accepted token with a header key other than alg and typ");
    }
    FUZZ_CHECK(json_object_get(header, "alg") != NULL, "accepted token without alg");
    json_decref(header);

    json_t *claims = segment_json(dot1 + 1, (size_t)(dot2 - dot1 - 1), 0);
    FUZZ_CHECK(json_is_object(claims), "accepted token whose claims are not an object");
    int has_exp, has_iat, has_nbf;
    int64_t exp = integer_claim(claims, "exp", &has_exp);
    int64_t iat = integer_claim(claims, "iat", &has_iat);
    int64_t nbf = integer_claim(claims, "nbf", &has_nbf);
    FUZZ_CHECK(has_exp, "accepted token without exp");
    FUZZ_CHECK((__int128)exp + cfg->leeway > NOW, "accepted an expired token");
    FUZZ_CHECK(!has_iat || (__int128)iat <= (__int128)NOW + cfg->leeway,
               "accepted a token issued in the future");
    FUZZ_CHECK(!has_nbf || (__int128)nbf <= (__int128)NOW + cfg->leeway,
               "accepted a token not yet valid");
    if (cfg->issuer) {
        json_t *iss = json_object_get(claims, "iss");
        FUZZ_CHECK(json_is_string(iss) && strcmp(json_string_value(iss), cfg->issuer) == 0,
                   "accepted a token of another issuer");
    }
    if (cfg->audience) {
        json_t *aud = json_object_get(claims, "aud");
        FUZZ_CHECK(json_is_string(aud) && strcmp(json_string_value(aud), cfg->audience) == 0,
                   "accepted a token of another site (aud)");
    }
    json_t *uid = json_object_get(claims, "user_id"), *sub = json_object_get(claims, "sub");
    FUZZ_CHECK(json_is_integer(uid) && json_integer_value(uid) > 0,
               "accepted a token without a positive user_id");
    FUZZ_CHECK(user_id == (int64_t)json_integer_value(uid), "*user_id is not the claim");
    char decimal[32];
    snprintf(decimal, sizeof decimal, "%lld", (long long)user_id);
    FUZZ_CHECK(json_is_string(sub) && strcmp(json_string_value(sub), decimal) == 0,
               "accepted a token whose sub is not user_id");
    json_t *email = json_object_get(claims, "email");
    FUZZ_CHECK(json_is_string(email) && json_string_length(email) > 0 &&
                   json_string_length(email) <= REDEEM_TOKEN_EMAIL_MAX &&
                   strlen(json_string_value(email)) == json_string_length(email),
               "accepted a token whose email is not a string of an address's length");
    FUZZ_CHECK(strcmp(holder->email, json_string_value(email)) == 0,
               "the holder's email is not the email claim");
    json_t *gen = json_object_get(claims, "gen");
    FUZZ_CHECK(!gen || (json_is_integer(gen) && json_integer_value(gen) >= 0),
               "accepted a token whose gen is not an integer of 0 or more");
    FUZZ_CHECK(holder->generation == (gen ? (int64_t)json_integer_value(gen) : 0),
               "the generation is not the gen claim (0 without one)");
    json_decref(claims);

    if (strict_dup_keys) {
        json_t *h = segment_json(token, (size_t)(dot1 - token), JSON_REJECT_DUPLICATES);
        json_t *c = segment_json(dot1 + 1, (size_t)(dot2 - dot1 - 1), JSON_REJECT_DUPLICATES);
        FUZZ_CHECK(h != NULL, "[dup-keys] accepted a token whose header repeats a key");
        FUZZ_CHECK(c != NULL, "[dup-keys] accepted a token whose claims repeat a key");
        json_decref(h);
        json_decref(c);
    }
}

/* exp as json_loads reads it from the claims text, when it would overflow. */
static int exp_overflows(const char *claims_text, size_t len)
{
    char *text = fuzz_cstring((const uint8_t *)claims_text, len);
    json_t *claims = json_loads(text, 0, NULL);
    json_t *exp = json_object_get(claims, "exp");
    int overflow = json_is_integer(exp) && json_integer_value(exp) > INT64_MAX - LEEWAY;
    json_decref(claims);
    free(text);
    return overflow;
}

/* Builds header.claims.signature; flags: bits 0-1 the digest (1 SHA-384,
 * 2 SHA-512, else SHA-256), bit 2 a wrong key, bit 3 a flipped signature. */
static char *build_token(const uint8_t *data, size_t size, uint8_t flags, int *forged)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t header_len = nul ? (size_t)(nul - data) : size;
    const uint8_t *claims = nul ? nul + 1 : data + size;
    size_t claims_len = nul ? size - header_len - 1 : 0;
    if (skip_exp_overflow && exp_overflows((const char *)claims, claims_len))
        return NULL;

    char *token = malloc(4 * (header_len + claims_len) / 3 + 200);
    size_t at = b64url_encode(data, header_len, token);
    token[at++] = '.';
    at += b64url_encode(claims, claims_len, token + at);

    const EVP_MD *md = (flags & 3) == 1   ? EVP_sha384()
                       : (flags & 3) == 2 ? EVP_sha512()
                                          : EVP_sha256();
    static const char wrong[] = "fuzzing-secret-0123456789abcdef-012345678X";
    const char *key = flags & 4 ? wrong : secret;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    HMAC(md, key, (int)strlen(key), (const unsigned char *)token, at, mac, &mac_len);
    if (flags & 8)
        mac[0] ^= 1;
    *forged = md != EVP_sha256() || (flags & 4) || (flags & 8);
    token[at++] = '.';
    b64url_encode(mac, mac_len, token + at);
    return token;
}

/* What the module issues, it accepts: for the token's lifetime plus the
 * leeway, and not one second more. */
static void issue_round_trip(const redeem_token_config_t *cfg, const uint8_t *data, size_t size)
{
    fuzz_reader_t r = {data, size, 0};
    int64_t uid = (int64_t)(fuzz_u64(&r) & INT64_MAX);
    if (uid == 0)
        uid = 1;
    int64_t generation = (int64_t)(fuzz_u64(&r) & INT32_MAX);
    size_t len = fuzz_left(&r);
    const char *in = (const char *)data + r.at;
    char *email;
    if (!fuzz_utf8_valid((const unsigned char *)in, len) || memchr(in, 0, len) ||
        redeem_email_normalize(pool, in, len, &email) != NULL)
        return;
    redeem_token_subject_t sub = {uid, email, (int)(data[0] & 1), generation};
    char *token = NULL;
    const char *why = redeem_token_issue(pool, cfg, &sub, NOW, &token);
    FUZZ_CHECK(why == NULL && token, "issuing a token for an accepted address failed");
    size_t n = strlen(token);
    FUZZ_CHECK(n <= REDEEM_TOKEN_MAX_LEN, "an issued token is longer than verify accepts");
    redeem_token_holder_t got = {.user_id = -1, .generation = -1};
    int64_t last = NOW + cfg->lifetime + cfg->leeway - 1;
    FUZZ_CHECK(redeem_token_verify(cfg, token, n, NOW, &got) == NULL && got.user_id == uid &&
                   got.generation == generation && strcmp(got.email, email) == 0,
               "an issued token does not verify to its user, generation and email");
    FUZZ_CHECK(redeem_token_verify(cfg, token, n, last, &got) == NULL,
               "an issued token expires before lifetime + leeway");
    FUZZ_CHECK(redeem_token_verify(cfg, token, n, last + 1, &got) != NULL,
               "an issued token outlives lifetime + leeway");
    check_accepted(cfg, token, n, &got);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        strict_dup_keys = fuzz_strict("dup-keys");
        skip_exp_overflow = fuzz_skip("exp-overflow");
        apr_initialize();
        apr_pool_create(&pool, NULL);
        apr_pool_create(&keep, NULL);
        prepared.secret = (const unsigned char *)secret;
        prepared.secret_len = strlen(secret);
        if (redeem_token_prepare(keep, &prepared) != NULL)
            abort();
        atexit(free_keep);
        ready = 1;
    }
    if (size < 1)
        return 0;
    redeem_token_config_t cfg = {
        (const unsigned char *)secret, strlen(secret), ISSUER, NULL, 3600, LEEWAY, NULL, 0};
    /* Half the inputs check with the MAC keyed once, as the module does;
     * half require the site's audience, as the module does. */
    if (data[0] & 8)
        cfg.mac = prepared.mac;
    if (data[0] & 16)
        cfg.audience = AUDIENCE;
    if (data[0] % 4 == 3) {
        issue_round_trip(&cfg, data + 1, size - 1);
        apr_pool_clear(pool);
        return 0;
    }
    char *token;
    int forged = 0;
    if (data[0] % 2 == 0)
        token = fuzz_cstring(data + 1, size - 1);
    else {
        if (size < 2)
            return 0;
        if (data[1] & 16)
            cfg.issuer = NULL;
        token = build_token(data + 2, size - 2, data[1], &forged);
        if (!token)
            return 0;
    }
    /* The length auth.c passes: the header's, up to its end. An embedded
     * NUL is passed too (when the raw input holds one), which the shape
     * check must refuse. */
    size_t len = data[0] % 2 == 0 ? size - 1 : strlen(token);

    redeem_token_holder_t holder = {.user_id = -1, .generation = -1};
    const char *why = redeem_token_verify(&cfg, token, len, NOW, &holder);
    if (!why) {
        FUZZ_CHECK(!forged, "accepted a token not signed HS256 with the secret");
        check_accepted(&cfg, token, len, &holder);
    }
    /* The claims' in-place reader and jansson's agree on every token: the
     * same answer, the same holder. */
    redeem_token_config_t generic = cfg;
    generic.generic_claims = 1;
    redeem_token_holder_t by_generic = {.user_id = -1, .generation = -1};
    const char *why_generic = redeem_token_verify(&generic, token, len, NOW, &by_generic);
    FUZZ_CHECK((why == NULL) == (why_generic == NULL) && (!why || strcmp(why, why_generic) == 0),
               "the in-place claims reader and jansson disagree on a token");
    FUZZ_CHECK(why || (holder.user_id == by_generic.user_id &&
                       holder.generation == by_generic.generation &&
                       strcmp(holder.email, by_generic.email) == 0),
               "the in-place claims reader and jansson name another holder");

    /* A secret under 32 bytes must refuse every token: libjwt would not verify. */
    redeem_token_config_t weak = cfg;
    weak.secret_len = REDEEM_TOKEN_SECRET_MIN_LEN - 1;
    FUZZ_CHECK(redeem_token_verify(&weak, token, len, NOW, &holder) != NULL,
               "a secret under 32 bytes accepted a token");
    weak.secret = NULL;
    weak.secret_len = 0;
    FUZZ_CHECK(redeem_token_verify(&weak, token, len, NOW, &holder) != NULL,
               "no secret accepted a token");
    free(token);
    return 0;
}
