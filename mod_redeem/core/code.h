/* Redeem codes: format, keyed check, lookup hash and sealed storage.
 * No httpd headers: unit tests and fuzzers call it.
 *
 * A code is 24 symbols of Crockford base32, shown as 12-4-8 with hyphens.
 * The first 20 symbols (100 bits) come from the OpenSSL CSPRNG; the last 4
 * (20 bits) are an HMAC-SHA256 check over them, so a mistyped or forged code
 * is refused without touching the database. The database holds only an
 * HMAC-SHA256 of the code (the lookup key) and the code sealed with
 * AES-256-GCM (for the admin listing).
 *
 * Buckets. The lookup hash is random, so each code of a batch would go to
 * another leaf of the database's unique index on its first 8 bytes, and the
 * first change of a leaf after a checkpoint writes the whole leaf to the WAL:
 * at 10 million codes a batch of 100,000 touched nearly every leaf (220 MB of
 * WAL). So a code is made in one of REDEEM_CODE_BUCKETS buckets, which take
 * turns by the hour, and the first 4 bits of its lookup hash are its bucket:
 * a batch's keys share a sixteenth of the index. The bucket rides in the
 * check: the check symbols are the HMAC's first 20 bits with the bucket's 4
 * bits XORed into the last 4 bits of the first check symbol and again into
 * the last 4 of the second (code.c, bucket_bits). So 16 of the 2^20 values
 * pass: a forged code passes the check 1 time in 65,536 (and is then not
 * found); two buckets differ in two symbols, so a change of any one check
 * symbol always fails it; and the bucket, hidden under the HMAC, shows
 * nothing to whoever holds the code. Bucket 0 is a code made before
 * buckets: its check symbols are the HMAC's 20 bits as they are and its
 * lookup hash the HMAC as it is, so such codes stay valid and stored as
 * they were (checked, like every code, by the 16 bits of the check proper). */
#ifndef REDEEM_CODE_H
#define REDEEM_CODE_H

#include <openssl/types.h>
#include <stddef.h>
#include <stdint.h>

#define REDEEM_CODE_SYMBOLS 24
#define REDEEM_CODE_RANDOM_SYMBOLS 20
#define REDEEM_CODE_DISPLAY_LEN 26 /* 24 symbols and two hyphens */
#define REDEEM_CODE_HASH_LEN 32
#define REDEEM_CODE_NONCE_LEN 12
#define REDEEM_CODE_TAG_LEN 16
#define REDEEM_CODE_SEALED_LEN (REDEEM_CODE_NONCE_LEN + REDEEM_CODE_SYMBOLS + REDEEM_CODE_TAG_LEN)
#define REDEEM_CODE_KEY_MIN_LEN 32
#define REDEEM_CODE_BUCKETS 15 /* 1..15; 0: a code made before buckets */

typedef struct {
    unsigned char check_key[32];  /* derived from the MAC key */
    unsigned char lookup_key[32]; /* derived from the MAC key */
    unsigned char seal_key[32];   /* the encryption key, for AES-256-GCM */
    /* OpenSSL's algorithms looked up once, and the two MACs keyed once:
     * OpenSSL 3 would look them up by name on every call (most of the time
     * of a batch of 100,000 codes). Each use works on a copy. */
    EVP_MAC_CTX *check_mac, *lookup_mac;
    /* A subkey of the MAC key for names that must not show what they stand
     * for (the rate limiter's keys in Redis): redeem_code_keys_pseudonym. */
    EVP_MAC_CTX *pseudonym_mac;
    EVP_CIPHER *cipher;
    int ready;
} redeem_code_keys_t;

/* Derives the subkeys; mac_key and enc_key must each be at least 32 bytes.
 * Returns NULL or the reason. redeem_code_keys_free releases what it holds. */
const char *redeem_code_keys_init(redeem_code_keys_t *keys, const unsigned char *mac_key,
                                  size_t mac_len, const unsigned char *enc_key, size_t enc_len);
void redeem_code_keys_free(redeem_code_keys_t *keys);

/* HMAC-SHA256 of data under the pseudonym subkey (HMAC-SHA256 of the MAC key
 * and "mod_redeem pseudonym v1"): every host with the same keys makes the
 * same, and without the key a guess cannot be tested against it. 0, or -1
 * when OpenSSL fails. */
int redeem_code_keys_pseudonym(const redeem_code_keys_t *keys, const void *data, size_t len,
                               unsigned char out[32]);

/* Trims, uppercases, drops hyphens, reads O as 0 and I/L as 1. Returns 0 and
 * fills symbols[24] when exactly 24 valid symbols remain, else -1. */
int redeem_code_normalize(const char *in, size_t len, char symbols[REDEEM_CODE_SYMBOLS]);

/* The bucket of codes made at unix_seconds: 1..REDEEM_CODE_BUCKETS, by the
 * hour. */
int redeem_code_bucket_at(int64_t unix_seconds);

/* The code's bucket (0..REDEEM_CODE_BUCKETS; 0: made before buckets) when
 * its check symbols match the random ones under this key, else -1. */
int redeem_code_check(const redeem_code_keys_t *keys, const char symbols[REDEEM_CODE_SYMBOLS]);

/* A fresh code in bucket (0..REDEEM_CODE_BUCKETS); 0 on success, -1 for a
 * bucket out of range or when the CSPRNG or the HMAC fails. */
int redeem_code_generate(const redeem_code_keys_t *keys, int bucket,
                         char symbols[REDEEM_CODE_SYMBOLS]);

/* XXXXXXXXXXXX-XXXX-XXXXXXXX and a NUL. */
void redeem_code_display(const char symbols[REDEEM_CODE_SYMBOLS],
                         char out[REDEEM_CODE_DISPLAY_LEN + 1]);

/* The hash the code is stored and found by: HMAC-SHA256 of its symbols,
 * its first 4 bits the bucket (redeem_code_check's) unless that is 0. A
 * bucket out of range, or a failure of the HMAC, gives all zeros, which
 * matches no stored code. */
void redeem_code_lookup_hash(const redeem_code_keys_t *keys,
                             const char symbols[REDEEM_CODE_SYMBOLS], int bucket,
                             unsigned char hash[REDEEM_CODE_HASH_LEN]);

/* The hash's place in the order of the database's lookup key
 * (code_lookup_key, sql/008: its first 8 bytes as a signed big-endian
 * bigint): a < b exactly when the keys compare so. */
uint64_t redeem_code_lookup_order(const unsigned char hash[REDEEM_CODE_HASH_LEN]);

/* Seals the code, bound to its lookup hash; 0 on success. */
int redeem_code_seal(const redeem_code_keys_t *keys, const char symbols[REDEEM_CODE_SYMBOLS],
                     const unsigned char hash[REDEEM_CODE_HASH_LEN],
                     unsigned char sealed[REDEEM_CODE_SEALED_LEN]);

/* Opens what redeem_code_seal made; 0 on success, -1 when it fails to
 * authenticate (another key, or tampered data). */
int redeem_code_open(const redeem_code_keys_t *keys, const unsigned char *sealed, size_t len,
                     const unsigned char hash[REDEEM_CODE_HASH_LEN],
                     char symbols[REDEEM_CODE_SYMBOLS]);

/* Many new codes in a row (POST /admin/generate-codes): the two MACs copied
 * once, the AES key scheduled once, random bytes drawn in bulk; each code
 * as redeem_code_generate, redeem_code_lookup_hash and redeem_code_seal
 * would make it. One thread at a time; begin, next as often as needed, end. */
#define REDEEM_CODE_BATCH_RANDOM 4000 /* bytes drawn at once: 160 codes */
typedef struct {
    const redeem_code_keys_t *keys;
    int bucket;
    EVP_MAC_CTX *check_mac, *lookup_mac;
    EVP_CIPHER_CTX *seal;
    unsigned char random[REDEEM_CODE_BATCH_RANDOM];
    size_t random_used;
} redeem_code_batch_t;
/* Every code of the batch in bucket (0..REDEEM_CODE_BUCKETS). 0, or -1 for
 * a bucket out of range or when OpenSSL fails (nothing to end then). */
int redeem_code_batch_begin(redeem_code_batch_t *batch, const redeem_code_keys_t *keys, int bucket);
/* The next code: its symbols, lookup hash and sealed form; 0 or -1. */
int redeem_code_batch_next(redeem_code_batch_t *batch, char symbols[REDEEM_CODE_SYMBOLS],
                           unsigned char hash[REDEEM_CODE_HASH_LEN],
                           unsigned char sealed[REDEEM_CODE_SEALED_LEN]);
/* Frees the contexts and wipes what is left of the random bytes. */
void redeem_code_batch_end(redeem_code_batch_t *batch);

#endif
