/* libFuzzer target: the text helpers (text.c) that read untrusted input:
 * hex (database cells), decimal integers (query parameters, Content-Length),
 * UUIDs (batch_id), key material (key files) and UTF-8 lengths (policies).
 *
 * Input: first byte picks the helper, the rest is its input. Each helper is
 * compared with an independent oracle written from its header comment, and
 * encode/decode pairs must round-trip. */
#include "fuzz_common.h"

#include "core/text.h"

#include <errno.h>

static int hex_digit(char c)
{
    return (c >= '0' && c <= '9')   ? c - '0'
           : (c >= 'a' && c <= 'f') ? c - 'a' + 10
           : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                    : -1;
}

static void fuzz_hex(const uint8_t *data, size_t size)
{
    /* Bytes -> hex -> bytes. */
    char *hex = malloc(2 * size + 1);
    unsigned char *back = malloc(size + 1);
    redeem_text_hex_encode(data, size, hex);
    FUZZ_CHECK(strlen(hex) == 2 * size, "hex encoding has the wrong length");
    for (size_t i = 0; i < 2 * size; i++)
        FUZZ_CHECK(strchr("0123456789abcdef", hex[i]) != NULL, "hex encoding is not lowercase hex");
    FUZZ_CHECK(redeem_text_hex_decode(hex, back, size) == 0 && memcmp(back, data, size) == 0,
               "hex encode then decode does not round-trip");
    if (size > 0)
        FUZZ_CHECK(redeem_text_hex_decode(hex, back, size - 1) != 0,
                   "hex decode accepts a longer text than asked for");
    free(hex);
    free(back);

    /* Text -> bytes (exactly strlen/2 asked for) -> lowercase hex. */
    char *text = fuzz_cstring(data, size);
    size_t n = strlen(text);
    unsigned char *out = malloc(n / 2 + 1);
    int ok = redeem_text_hex_decode(text, out, n / 2) == 0;
    int expected = n % 2 == 0;
    for (size_t i = 0; i < n; i++)
        expected &= hex_digit(text[i]) >= 0;
    FUZZ_CHECK(ok == expected, "hex decode accepts or refuses against its contract");
    if (ok) {
        char *again = malloc(n + 1);
        redeem_text_hex_encode(out, n / 2, again);
        for (size_t i = 0; i < n; i++)
            FUZZ_CHECK(again[i] ==
                           (char)(text[i] >= 'A' && text[i] <= 'F' ? text[i] + 32 : text[i]),
                       "hex decode then encode is not the lowercase text");
        free(again);
    }
    FUZZ_CHECK(redeem_text_hex_decode(NULL, out, 0) != 0, "hex decode of NULL");
    free(out);
    free(text);
}

static void fuzz_int64(const uint8_t *data, size_t size)
{
    /* Second byte: the bounds the module uses, or bounds from the input. */
    static const int64_t bounds[][2] = {{0, INT64_MAX}, {1, 10000000},  {1, 500},      {1, 65535},
                                        {0, 15},        {64, 67108864}, {1, INT64_MAX}};
    fuzz_reader_t r = {data, size, 1};
    unsigned k = fuzz_u8(&r) % 8;
    int64_t min, max;
    if (k < 7) {
        min = bounds[k][0];
        max = bounds[k][1];
    }
    else {
        min = (int64_t)fuzz_u64(&r);
        max = (int64_t)fuzz_u64(&r);
    }
    char *text = fuzz_cstring(data + r.at, fuzz_left(&r));
    int64_t out = INT64_C(-12345);
    int ok = redeem_text_parse_int64(text, min, max, &out) == 0;

    size_t n = strlen(text);
    int digits = n > 0;
    for (size_t i = 0; i < n; i++)
        digits &= text[i] >= '0' && text[i] <= '9';
    int expected = 0;
    long long value = 0;
    if (digits && n <= 19) {
        errno = 0;
        value = strtoll(text, NULL, 10);
        expected = errno == 0 && value >= min && value <= max;
    }
    FUZZ_CHECK(ok == expected, "parse_int64 disagrees with strtoll and its contract");
    if (ok)
        FUZZ_CHECK(out == value, "parse_int64 value differs from strtoll");
    FUZZ_CHECK(redeem_text_parse_int64(NULL, min, max, &out) != 0, "parse_int64 of NULL");
    free(text);
}

static void fuzz_uuid(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstring(data, size);
    int expected = strlen(text) == 36;
    for (int i = 0; expected && i < 36; i++)
        expected =
            (i == 8 || i == 13 || i == 18 || i == 23) ? text[i] == '-' : hex_digit(text[i]) >= 0;
    FUZZ_CHECK(redeem_text_is_uuid(text) == expected, "is_uuid disagrees with 8-4-4-4-12 hex");
    free(text);
}

static void fuzz_key_bytes(const uint8_t *data, size_t size)
{
    /* Exactly len bytes of room, as keyfile.c gives it (ASan sees more). */
    unsigned char *out = malloc(size ? size : 1);
    size_t n = redeem_text_key_bytes((const char *)data, size, out);
    int hex = size > 0 && size % 2 == 0;
    for (size_t i = 0; hex && i < size; i++)
        hex = hex_digit((char)data[i]) >= 0;
    if (hex) {
        FUZZ_CHECK(n == size / 2, "key bytes of hex is not half its length");
        for (size_t i = 0; i < n; i++)
            FUZZ_CHECK(out[i] ==
                           (hex_digit((char)data[2 * i]) << 4 | hex_digit((char)data[2 * i + 1])),
                       "key bytes decoded wrongly");
    }
    else
        FUZZ_CHECK(n == size && memcmp(out, data, size) == 0, "raw key bytes are not the text");
    free(out);
}

static void fuzz_utf8(const uint8_t *data, size_t size)
{
    size_t n = redeem_text_utf8_length((const char *)data, size);
    size_t lead = 0;
    for (size_t i = 0; i < size; i++)
        lead += (data[i] & 0xC0) != 0x80;
    FUZZ_CHECK(n == lead && n <= size, "utf8_length is not the count of non-continuation bytes");
    if (fuzz_utf8_valid(data, size)) {
        /* Valid UTF-8: exactly the code points. */
        size_t cps = 0;
        for (size_t i = 0; i < size; cps++)
            i += data[i] < 0x80 ? 1 : data[i] < 0xE0 ? 2 : data[i] < 0xF0 ? 3 : 4;
        FUZZ_CHECK(n == cps, "utf8_length of valid UTF-8 is not its code points");
    }
    for (size_t i = 0; i < size; i++) {
        char c = (char)data[i];
        int space = c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
        FUZZ_CHECK(redeem_text_is_space(c) == space, "is_space is not ASCII whitespace");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    switch (data[0] % 5) {
    case 0: fuzz_hex(data + 1, size - 1); break;
    case 1: fuzz_int64(data, size); break;
    case 2: fuzz_uuid(data + 1, size - 1); break;
    case 3: fuzz_key_bytes(data + 1, size - 1); break;
    default: fuzz_utf8(data + 1, size - 1); break;
    }
    return 0;
}
