/* libFuzzer target: redeem codes (normalize, check, lookup hash, seal/open).
 *
 * Input: first byte picks the mode, the rest is its input.
 *   0: a code as a client types it (the card_code string of POST /redeem):
 *      normalize; when it normalizes, its symbols re-normalize to themselves,
 *      its display form and its lowercase form normalize to the same symbols;
 *      the check and lookup run as handle_redeem.c runs them.
 *   1: the same text with its check symbols recomputed by the harness for a
 *      bucket the input picks (0-15), so the keyed check passes: check reads
 *      that bucket and refuses each one-symbol change of the check part; the
 *      lookup hash is bucket 0's with the bucket in its first 4 bits; seal
 *      then open round-trips, and open refuses another hash or a flipped
 *      byte.
 *   2: sealed bytes from the database: the first 32 bytes are the lookup
 *      hash, the rest the sealed code (opened as code_json in
 *      handle_codes.c does, also after hex decoding of the text). Opening
 *      must fail unless the bytes came from seal under the same keys. */
#include "fuzz_common.h"

#include "core/code.h"
#include "core/text.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

static const char ALPHABET[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
static redeem_code_keys_t keys, other_keys;

static void setup(void)
{
    unsigned char mac[32], enc[32], other[32];
    memset(mac, 7, sizeof mac);
    memset(enc, 9, sizeof enc);
    memset(other, 11, sizeof other);
    FUZZ_CHECK(redeem_code_keys_init(&keys, mac, sizeof mac, enc, sizeof enc) == NULL, "keys");
    FUZZ_CHECK(redeem_code_keys_init(&other_keys, other, sizeof other, enc, sizeof enc) == NULL,
               "other keys");
}

static int in_alphabet(char c)
{
    return c != '\0' && strchr(ALPHABET, c) != NULL;
}

/* The documented check: the first 20 bits of HMAC-SHA256(check_key, the 20
 * random symbols), the bucket XORed into the last 4 bits of the first two
 * symbols, as 4 symbols. An independent oracle for code.c. */
static void oracle_check(const char symbols[REDEEM_CODE_SYMBOLS], int bucket, char out[4])
{
    unsigned char mac[32];
    unsigned int mac_len = sizeof mac;
    HMAC(EVP_sha256(), keys.check_key, sizeof keys.check_key, (const unsigned char *)symbols,
         REDEEM_CODE_RANDOM_SYMBOLS, mac, &mac_len);
    uint32_t bits = ((uint32_t)mac[0] << 12 | (uint32_t)mac[1] << 4 | mac[2] >> 4) ^
                    (uint32_t)bucket << 15 ^ (uint32_t)bucket << 10;
    for (int i = 0; i < 4; i++)
        out[i] = ALPHABET[(bits >> (15 - 5 * i)) & 31];
}

static void check_normalized(const char *text, size_t len, const char symbols[24])
{
    for (int i = 0; i < REDEEM_CODE_SYMBOLS; i++)
        FUZZ_CHECK(in_alphabet(symbols[i]), "normalized symbol outside Crockford base32");

    char again[REDEEM_CODE_SYMBOLS];
    FUZZ_CHECK(redeem_code_normalize(symbols, REDEEM_CODE_SYMBOLS, again) == 0 &&
                   memcmp(again, symbols, REDEEM_CODE_SYMBOLS) == 0,
               "normalized code does not re-normalize to itself");

    char display[REDEEM_CODE_DISPLAY_LEN + 1];
    memset(display, 'Q', sizeof display);
    redeem_code_display(symbols, display);
    FUZZ_CHECK(strlen(display) == REDEEM_CODE_DISPLAY_LEN && display[12] == '-' &&
                   display[17] == '-',
               "display is not XXXXXXXXXXXX-XXXX-XXXXXXXX");
    FUZZ_CHECK(redeem_code_normalize(display, strlen(display), again) == 0 &&
                   memcmp(again, symbols, REDEEM_CODE_SYMBOLS) == 0,
               "display then normalize does not round-trip");

    /* Case does not matter: the lowercase input gives the same symbols. */
    char *lower = malloc(len + 1);
    for (size_t i = 0; i < len; i++)
        lower[i] = (char)(text[i] >= 'A' && text[i] <= 'Z' ? text[i] - 'A' + 'a' : text[i]);
    lower[len] = '\0';
    FUZZ_CHECK(redeem_code_normalize(lower, len, again) == 0 &&
                   memcmp(again, symbols, REDEEM_CODE_SYMBOLS) == 0,
               "lowercase input normalizes differently");
    free(lower);
}

static void check_keyed(char symbols[REDEEM_CODE_SYMBOLS])
{
    char expected[4];
    int bucket = (int)(strchr(ALPHABET, symbols[0]) - ALPHABET) % (REDEEM_CODE_BUCKETS + 1);
    oracle_check(symbols, bucket, expected);
    memcpy(symbols + REDEEM_CODE_RANDOM_SYMBOLS, expected, 4);
    FUZZ_CHECK(redeem_code_check(&keys, symbols) == bucket,
               "check refuses a code with a correct check, or reads another bucket");
    for (int i = 0; i < 4; i++) {
        char changed[REDEEM_CODE_SYMBOLS];
        memcpy(changed, symbols, sizeof changed);
        const char *at = strchr(ALPHABET, changed[REDEEM_CODE_RANDOM_SYMBOLS + i]);
        changed[REDEEM_CODE_RANDOM_SYMBOLS + i] = ALPHABET[(at - ALPHABET + 1) % 32];
        FUZZ_CHECK(redeem_code_check(&keys, changed) < 0, "check accepts a wrong check symbol");
    }

    unsigned char hash[REDEEM_CODE_HASH_LEN], hash2[REDEEM_CODE_HASH_LEN],
        other_hash[REDEEM_CODE_HASH_LEN], unbucketed[REDEEM_CODE_HASH_LEN];
    redeem_code_lookup_hash(&keys, symbols, bucket, hash);
    redeem_code_lookup_hash(&keys, symbols, bucket, hash2);
    FUZZ_CHECK(memcmp(hash, hash2, sizeof hash) == 0, "lookup hash is not deterministic");
    /* The documented hash: HMAC-SHA256(lookup_key, the 24 symbols), its
     * first 4 bits the bucket unless that is 0; computed here apart. */
    unsigned int plain_len = sizeof unbucketed;
    HMAC(EVP_sha256(), keys.lookup_key, sizeof keys.lookup_key, (const unsigned char *)symbols,
         REDEEM_CODE_SYMBOLS, unbucketed, &plain_len);
    FUZZ_CHECK(memcmp(hash + 1, unbucketed + 1, sizeof hash - 1) == 0 &&
                   (hash[0] & 0x0f) == (unbucketed[0] & 0x0f) &&
                   hash[0] >> 4 == (bucket ? bucket : unbucketed[0] >> 4),
               "lookup hash is not the HMAC with the bucket in its first 4 bits");
    redeem_code_lookup_hash(&other_keys, symbols, bucket, other_hash);
    FUZZ_CHECK(memcmp(hash, other_hash, sizeof hash) != 0, "lookup hash ignores the key");

    unsigned char sealed[REDEEM_CODE_SEALED_LEN];
    char opened[REDEEM_CODE_SYMBOLS];
    FUZZ_CHECK(redeem_code_seal(&keys, symbols, hash, sealed) == 0, "seal failed");
    FUZZ_CHECK(redeem_code_open(&keys, sealed, sizeof sealed, hash, opened) == 0 &&
                   memcmp(opened, symbols, REDEEM_CODE_SYMBOLS) == 0,
               "seal then open does not round-trip");

    /* As stored: hex text, decoded again before opening. */
    char hex[2 * REDEEM_CODE_SEALED_LEN + 1];
    unsigned char back[REDEEM_CODE_SEALED_LEN];
    redeem_text_hex_encode(sealed, sizeof sealed, hex);
    FUZZ_CHECK(redeem_text_hex_decode(hex, back, sizeof back) == 0 &&
                   memcmp(back, sealed, sizeof sealed) == 0,
               "sealed code does not survive hex");

    FUZZ_CHECK(redeem_code_open(&keys, sealed, sizeof sealed, other_hash, opened) != 0,
               "open accepts another lookup hash");
    FUZZ_CHECK(redeem_code_open(&keys, sealed, sizeof sealed - 1, hash, opened) != 0,
               "open accepts a short box");
    unsigned char flipped[REDEEM_CODE_SEALED_LEN];
    size_t at = (size_t)(unsigned char)symbols[0] % sizeof flipped;
    memcpy(flipped, sealed, sizeof flipped);
    flipped[at] ^= 0x20;
    FUZZ_CHECK(redeem_code_open(&keys, flipped, sizeof flipped, hash, opened) != 0,
               "open accepts a tampered box");
}

static void open_bytes(const uint8_t *data, size_t size)
{
    unsigned char hash[REDEEM_CODE_HASH_LEN] = {0};
    char symbols[REDEEM_CODE_SYMBOLS];
    size_t n = size < sizeof hash ? size : sizeof hash;
    memcpy(hash, data, n);
    /* Raw bytes: random data must never authenticate. */
    int rc = redeem_code_open(&keys, data + n, size - n, hash, symbols);
    FUZZ_CHECK(rc != 0 || size - n == REDEEM_CODE_SEALED_LEN, "open accepts a wrong length");

    /* The same bytes as the hex text of a database cell. */
    char *text = fuzz_cstring(data, size);
    unsigned char box[REDEEM_CODE_SEALED_LEN];
    if (redeem_text_hex_decode(text, box, sizeof box) == 0)
        rc = redeem_code_open(&keys, box, sizeof box, hash, symbols);
    free(text);
    (void)rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        setup();
        ready = 1;
    }
    if (size < 1)
        return 0;
    int mode = data[0] % 3;
    data++;
    size--;
    if (mode == 2) {
        open_bytes(data, size);
        return 0;
    }
    /* The module passes a jansson string: NUL-free, its length from jansson. */
    char *text = fuzz_cstring(data, size);
    char symbols[REDEEM_CODE_SYMBOLS];
    if (redeem_code_normalize(text, size, symbols) == 0) {
        check_normalized(text, size, symbols);
        if (mode == 0) {
            int bucket = redeem_code_check(&keys, symbols);
            FUZZ_CHECK(bucket >= -1 && bucket <= REDEEM_CODE_BUCKETS, "check out of range");
            if (bucket >= 0) {
                unsigned char hash[REDEEM_CODE_HASH_LEN];
                redeem_code_lookup_hash(&keys, symbols, bucket, hash);
            }
        }
        else
            check_keyed(symbols);
    }
    free(text);
    return 0;
}
