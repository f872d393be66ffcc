#include "core/code.h"

#include "core/text.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <string.h>

static const char ALPHABET[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static void hmac_sha256(const unsigned char *key, size_t key_len, const void *data, size_t len,
                        unsigned char out[32])
{
    unsigned int out_len = 32;
    HMAC(EVP_sha256(), key, (int)key_len, data, len, out, &out_len);
}

/* An HMAC-SHA256 keyed once, to be copied for each use. */
static EVP_MAC_CTX *keyed_mac(const unsigned char key[32])
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    EVP_MAC_free(mac); /* the context keeps its own reference */
    if (ctx && EVP_MAC_init(ctx, key, 32, params) != 1) {
        EVP_MAC_CTX_free(ctx);
        ctx = NULL;
    }
    return ctx;
}

/* HMAC of data under a keyed template; 0, or -1 when OpenSSL fails. */
static int keyed_hmac(const EVP_MAC_CTX *keyed, const void *data, size_t len, unsigned char out[32])
{
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(keyed);
    size_t out_len = 0;
    int ok =
        ctx && EVP_MAC_update(ctx, data, len) == 1 && EVP_MAC_final(ctx, out, &out_len, 32) == 1;
    EVP_MAC_CTX_free(ctx);
    return ok && out_len == 32 ? 0 : -1;
}

void redeem_code_keys_free(redeem_code_keys_t *keys)
{
    EVP_MAC_CTX_free(keys->check_mac);
    EVP_MAC_CTX_free(keys->lookup_mac);
    EVP_MAC_CTX_free(keys->pseudonym_mac);
    EVP_CIPHER_free(keys->cipher);
    keys->check_mac = keys->lookup_mac = keys->pseudonym_mac = NULL;
    keys->cipher = NULL;
    keys->ready = 0;
}

const char *redeem_code_keys_init(redeem_code_keys_t *keys, const unsigned char *mac_key,
                                  size_t mac_len, const unsigned char *enc_key, size_t enc_len)
{
    if (mac_len < REDEEM_CODE_KEY_MIN_LEN)
        return "the code MAC key is shorter than 32 bytes";
    if (enc_len < REDEEM_CODE_KEY_MIN_LEN)
        return "the code encryption key is shorter than 32 bytes";
    if (mac_len == enc_len && memcmp(mac_key, enc_key, mac_len) == 0)
        return "the code MAC key and encryption key must differ";
    /* Separate keys per use, so the short check can never help forge a lookup. */
    hmac_sha256(mac_key, mac_len, "mod_redeem code check v1", 24, keys->check_key);
    hmac_sha256(mac_key, mac_len, "mod_redeem code lookup v1", 25, keys->lookup_key);
    hmac_sha256(enc_key, enc_len, "mod_redeem code seal v1", 23, keys->seal_key);
    unsigned char pseudonym_key[32];
    hmac_sha256(mac_key, mac_len, "mod_redeem pseudonym v1", 23, pseudonym_key);
    keys->check_mac = keyed_mac(keys->check_key);
    keys->lookup_mac = keyed_mac(keys->lookup_key);
    keys->pseudonym_mac = keyed_mac(pseudonym_key);
    OPENSSL_cleanse(pseudonym_key, sizeof pseudonym_key);
    keys->cipher = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    if (!keys->check_mac || !keys->lookup_mac || !keys->pseudonym_mac || !keys->cipher) {
        redeem_code_keys_free(keys);
        return "OpenSSL has no HMAC-SHA256 or AES-256-GCM";
    }
    keys->ready = 1;
    return NULL;
}

int redeem_code_keys_pseudonym(const redeem_code_keys_t *keys, const void *data, size_t len,
                               unsigned char out[32])
{
    return keys->ready ? keyed_hmac(keys->pseudonym_mac, data, len, out) : -1;
}

static int symbol_value(char c)
{
    const char *at = strchr(ALPHABET, c);
    return (c != '\0' && at) ? (int)(at - ALPHABET) : -1;
}

int redeem_code_normalize(const char *in, size_t len, char symbols[REDEEM_CODE_SYMBOLS])
{
    size_t start = 0, end = len, count = 0;
    while (start < end && redeem_text_is_space(in[start]))
        start++;
    while (end > start && redeem_text_is_space(in[end - 1]))
        end--;
    for (size_t i = start; i < end; i++) {
        char c = in[i];
        if (c == '-')
            continue;
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        if (c == 'O')
            c = '0';
        else if (c == 'I' || c == 'L')
            c = '1';
        if (symbol_value(c) < 0 || count == REDEEM_CODE_SYMBOLS)
            return -1;
        symbols[count++] = c;
    }
    return count == REDEEM_CODE_SYMBOLS ? 0 : -1;
}

/* The check's 20 bits: the first bits of an HMAC of the random part. */
static unsigned int check_bits(const unsigned char mac[32])
{
    return ((unsigned int)mac[0] << 12) | ((unsigned int)mac[1] << 4) | (mac[2] >> 4);
}

/* The bucket in the check's 20 bits: its 4 bits in the last 4 of the first
 * check symbol and again in the last 4 of the second. Two buckets then
 * differ in two symbols, so no change of one symbol turns a code of one
 * bucket into a valid code of another, and each one-symbol change of the
 * check still fails it. */
_Static_assert(REDEEM_CODE_BUCKETS == 15, "the check carries a bucket in 4 bits, 0 the oldest");

static int bucket_in_range(int bucket)
{
    return bucket >= 0 && bucket <= REDEEM_CODE_BUCKETS;
}

static unsigned int bucket_bits(int bucket)
{
    return (unsigned int)bucket << 15 | (unsigned int)bucket << 10;
}

/* The check symbols of a code in bucket: the HMAC's 20 bits XOR the
 * bucket's. */
static void symbols_of_check(const unsigned char mac[32], int bucket, char out[4])
{
    unsigned int bits = check_bits(mac) ^ bucket_bits(bucket);
    for (int i = 3; i >= 0; i--) {
        out[i] = ALPHABET[bits & 31];
        bits >>= 5;
    }
}

int redeem_code_bucket_at(int64_t unix_seconds)
{
    int64_t hour = unix_seconds >= 0 ? unix_seconds / 3600 : 0;
    return 1 + (int)(hour % REDEEM_CODE_BUCKETS);
}

int redeem_code_check(const redeem_code_keys_t *keys, const char symbols[REDEEM_CODE_SYMBOLS])
{
    unsigned char mac[32];
    if (keyed_hmac(keys->check_mac, symbols, REDEEM_CODE_RANDOM_SYMBOLS, mac) != 0)
        return -1;
    unsigned int given = 0;
    for (int i = 0; i < 4; i++) {
        int value = symbol_value(symbols[REDEEM_CODE_RANDOM_SYMBOLS + i]);
        if (value < 0)
            return -1; /* not normalized */
        given = given << 5 | (unsigned int)value;
    }
    unsigned int apart = given ^ check_bits(mac);
    int bucket = (int)(apart >> 15 & 15);
    return apart == bucket_bits(bucket) ? bucket : -1;
}

#define RANDOM_BYTES 13 /* 104 bits, of which 100 are used */

/* The 20 random symbols from 13 random bytes. */
static void random_symbols(const unsigned char random[RANDOM_BYTES],
                           char symbols[REDEEM_CODE_SYMBOLS])
{
    for (int i = 0; i < REDEEM_CODE_RANDOM_SYMBOLS; i++) {
        int bit = i * 5, byte = bit / 8, shift = bit % 8;
        unsigned int window = ((unsigned int)random[byte] << 8) | random[byte + 1];
        symbols[i] = ALPHABET[(window >> (11 - shift)) & 31];
    }
}

int redeem_code_generate(const redeem_code_keys_t *keys, int bucket,
                         char symbols[REDEEM_CODE_SYMBOLS])
{
    unsigned char random[RANDOM_BYTES], mac[32];
    if (!bucket_in_range(bucket) || RAND_bytes(random, sizeof random) != 1)
        return -1;
    random_symbols(random, symbols);
    if (keyed_hmac(keys->check_mac, symbols, REDEEM_CODE_RANDOM_SYMBOLS, mac) != 0)
        return -1;
    symbols_of_check(mac, bucket, symbols + REDEEM_CODE_RANDOM_SYMBOLS);
    return 0;
}

void redeem_code_display(const char symbols[REDEEM_CODE_SYMBOLS],
                         char out[REDEEM_CODE_DISPLAY_LEN + 1])
{
    memcpy(out, symbols, 12);
    out[12] = '-';
    memcpy(out + 13, symbols + 12, 4);
    out[17] = '-';
    memcpy(out + 18, symbols + 16, 8);
    out[26] = '\0';
}

uint64_t redeem_code_lookup_order(const unsigned char hash[REDEEM_CODE_HASH_LEN])
{
    uint64_t key = 0;
    for (int i = 0; i < 8; i++)
        key = key << 8 | hash[i];
    /* Two's complement order as unsigned order: the sign bit flipped. */
    return key ^ UINT64_C(0x8000000000000000);
}

/* The bucket into the hash's first 4 bits (sql/008's key: its first 8 bytes). */
static void put_bucket(unsigned char hash[REDEEM_CODE_HASH_LEN], int bucket)
{
    if (bucket > 0)
        hash[0] = (unsigned char)(bucket << 4 | (hash[0] & 0x0f));
}

void redeem_code_lookup_hash(const redeem_code_keys_t *keys,
                             const char symbols[REDEEM_CODE_SYMBOLS], int bucket,
                             unsigned char hash[REDEEM_CODE_HASH_LEN])
{
    if (!bucket_in_range(bucket) ||
        keyed_hmac(keys->lookup_mac, symbols, REDEEM_CODE_SYMBOLS, hash) != 0)
        memset(hash, 0, REDEEM_CODE_HASH_LEN); /* matches no stored code */
    else
        put_bucket(hash, bucket);
}

int redeem_code_seal(const redeem_code_keys_t *keys, const char symbols[REDEEM_CODE_SYMBOLS],
                     const unsigned char hash[REDEEM_CODE_HASH_LEN],
                     unsigned char sealed[REDEEM_CODE_SEALED_LEN])
{
    unsigned char *nonce = sealed, *cipher = sealed + REDEEM_CODE_NONCE_LEN,
                  *tag = cipher + REDEEM_CODE_SYMBOLS;
    int len = 0, ok = 0;
    if (RAND_bytes(nonce, REDEEM_CODE_NONCE_LEN) != 1)
        return -1;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx && EVP_EncryptInit_ex2(ctx, keys->cipher, keys->seal_key, nonce, NULL) == 1 &&
        EVP_EncryptUpdate(ctx, NULL, &len, hash, REDEEM_CODE_HASH_LEN) == 1 &&
        EVP_EncryptUpdate(ctx, cipher, &len, (const unsigned char *)symbols, REDEEM_CODE_SYMBOLS) ==
            1 &&
        EVP_EncryptFinal_ex(ctx, cipher + len, &len) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, REDEEM_CODE_TAG_LEN, tag) == 1)
        ok = 1;
    EVP_CIPHER_CTX_free(ctx);
    return ok ? 0 : -1;
}

int redeem_code_open(const redeem_code_keys_t *keys, const unsigned char *sealed, size_t len,
                     const unsigned char hash[REDEEM_CODE_HASH_LEN],
                     char symbols[REDEEM_CODE_SYMBOLS])
{
    if (len != REDEEM_CODE_SEALED_LEN)
        return -1;
    const unsigned char *nonce = sealed, *cipher = sealed + REDEEM_CODE_NONCE_LEN,
                        *tag = cipher + REDEEM_CODE_SYMBOLS;
    unsigned char plain[REDEEM_CODE_SYMBOLS];
    int out_len = 0, ok = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx && EVP_DecryptInit_ex2(ctx, keys->cipher, keys->seal_key, nonce, NULL) == 1 &&
        EVP_DecryptUpdate(ctx, NULL, &out_len, hash, REDEEM_CODE_HASH_LEN) == 1 &&
        EVP_DecryptUpdate(ctx, plain, &out_len, cipher, REDEEM_CODE_SYMBOLS) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, REDEEM_CODE_TAG_LEN, (void *)tag) == 1 &&
        EVP_DecryptFinal_ex(ctx, plain + out_len, &out_len) == 1)
        ok = 1;
    EVP_CIPHER_CTX_free(ctx);
    if (ok)
        memcpy(symbols, plain, REDEEM_CODE_SYMBOLS);
    return ok ? 0 : -1;
}

int redeem_code_batch_begin(redeem_code_batch_t *batch, const redeem_code_keys_t *keys, int bucket)
{
    memset(batch, 0, sizeof *batch);
    if (!bucket_in_range(bucket))
        return -1;
    batch->keys = keys;
    batch->bucket = bucket;
    batch->random_used = sizeof batch->random; /* drawn at the first code */
    batch->check_mac = EVP_MAC_CTX_dup(keys->check_mac);
    batch->lookup_mac = EVP_MAC_CTX_dup(keys->lookup_mac);
    batch->seal = EVP_CIPHER_CTX_new();
    if (batch->check_mac && batch->lookup_mac && batch->seal &&
        EVP_EncryptInit_ex2(batch->seal, keys->cipher, keys->seal_key, NULL, NULL) == 1)
        return 0;
    redeem_code_batch_end(batch);
    return -1;
}

void redeem_code_batch_end(redeem_code_batch_t *batch)
{
    EVP_MAC_CTX_free(batch->check_mac);
    EVP_MAC_CTX_free(batch->lookup_mac);
    EVP_CIPHER_CTX_free(batch->seal);
    batch->check_mac = batch->lookup_mac = NULL;
    batch->seal = NULL;
    OPENSSL_cleanse(batch->random, sizeof batch->random);
}

/* n bytes of the bulk draw, drawing again when it runs out. */
static const unsigned char *batch_random(redeem_code_batch_t *batch, size_t n)
{
    if (batch->random_used + n > sizeof batch->random) {
        if (RAND_bytes(batch->random, sizeof batch->random) != 1)
            return NULL;
        batch->random_used = 0;
    }
    const unsigned char *bytes = batch->random + batch->random_used;
    batch->random_used += n;
    return bytes;
}

/* HMAC under a context keyed once: re-initialized with the key it holds. */
static int batch_hmac(EVP_MAC_CTX *ctx, const void *data, size_t len, unsigned char out[32])
{
    size_t out_len = 0;
    return EVP_MAC_init(ctx, NULL, 0, NULL) == 1 && EVP_MAC_update(ctx, data, len) == 1 &&
                   EVP_MAC_final(ctx, out, &out_len, 32) == 1 && out_len == 32
               ? 0
               : -1;
}

int redeem_code_batch_next(redeem_code_batch_t *batch, char symbols[REDEEM_CODE_SYMBOLS],
                           unsigned char hash[REDEEM_CODE_HASH_LEN],
                           unsigned char sealed[REDEEM_CODE_SEALED_LEN])
{
    unsigned char mac[32];
    const unsigned char *random = batch_random(batch, RANDOM_BYTES + REDEEM_CODE_NONCE_LEN);
    if (!random)
        return -1;
    random_symbols(random, symbols);
    if (batch_hmac(batch->check_mac, symbols, REDEEM_CODE_RANDOM_SYMBOLS, mac) != 0)
        return -1;
    symbols_of_check(mac, batch->bucket, symbols + REDEEM_CODE_RANDOM_SYMBOLS);
    if (batch_hmac(batch->lookup_mac, symbols, REDEEM_CODE_SYMBOLS, hash) != 0)
        return -1;
    put_bucket(hash, batch->bucket);

    unsigned char *nonce = sealed, *cipher = sealed + REDEEM_CODE_NONCE_LEN,
                  *tag = cipher + REDEEM_CODE_SYMBOLS;
    int len = 0;
    memcpy(nonce, random + RANDOM_BYTES, REDEEM_CODE_NONCE_LEN);
    return EVP_EncryptInit_ex2(batch->seal, NULL, NULL, nonce, NULL) == 1 &&
                   EVP_EncryptUpdate(batch->seal, NULL, &len, hash, REDEEM_CODE_HASH_LEN) == 1 &&
                   EVP_EncryptUpdate(batch->seal, cipher, &len, (const unsigned char *)symbols,
                                     REDEEM_CODE_SYMBOLS) == 1 &&
                   EVP_EncryptFinal_ex(batch->seal, cipher + len, &len) == 1 &&
                   EVP_CIPHER_CTX_ctrl(batch->seal, EVP_CTRL_GCM_GET_TAG, REDEEM_CODE_TAG_LEN,
                                       tag) == 1
               ? 0
               : -1;
}
