/* libFuzzer target over the httpd-free core: whatever the bytes, the parsers
 * of untrusted input must neither crash nor read out of bounds. The first
 * byte picks the parser; the rest is its input. Run with `make fuzz`. */
#include "core/code.h"
#include "core/email.h"
#include "core/password.h"
#include "core/text.h"
#include "core/timestamp.h"
#include "core/token.h"

#include <apr_general.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static apr_pool_t *pool;
static redeem_code_keys_t keys;
static const char secret[] = "fuzzing-secret-0123456789abcdef-0123456789";

static void setup(void)
{
    unsigned char mac[32], enc[32];
    apr_initialize();
    apr_pool_create(&pool, NULL);
    memset(mac, 7, sizeof mac);
    memset(enc, 9, sizeof enc);
    redeem_code_keys_init(&keys, mac, sizeof mac, enc, sizeof enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!pool)
        setup();
    if (size < 1)
        return 0;
    /* A NUL-terminated copy, as the module's callers hold their strings. */
    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    size_t len = size - 1;

    switch (data[0] % 5) {
    case 0: {
        redeem_token_config_t cfg = {(const unsigned char *)secret, strlen(secret), "iss", 3600, 5};
        int64_t user_id;
        redeem_token_verify(&cfg, text, strlen(text), 1800000000, &user_id);
        break;
    }
    case 1: {
        char symbols[REDEEM_CODE_SYMBOLS];
        unsigned char hash[REDEEM_CODE_HASH_LEN];
        if (redeem_code_normalize(text, len, symbols) == 0 && redeem_code_check(&keys, symbols))
            redeem_code_lookup_hash(&keys, symbols, hash);
        break;
    }
    case 2: {
        int64_t usec;
        redeem_timestamp_parse(text, &usec);
        break;
    }
    case 3: {
        char *normalized;
        redeem_email_normalize(pool, text, len, &normalized);
        redeem_password_check_policy(text, len);
        break;
    }
    case 4: {
        unsigned char hash[REDEEM_CODE_HASH_LEN] = {0}, out[REDEEM_CODE_HASH_LEN];
        char symbols[REDEEM_CODE_SYMBOLS];
        redeem_text_hex_decode(text, out, sizeof out);
        redeem_code_open(&keys, (const unsigned char *)text, len, hash, symbols);
        break;
    }
    }
    free(text);
    apr_pool_clear(pool);
    return 0;
}
