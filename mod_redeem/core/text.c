#include "core/text.h"

#include <string.h>

size_t redeem_text_utf8_length(const char *s, size_t len)
{
    size_t count = 0;
    for (size_t i = 0; i < len; i++) {
        /* Continuation bytes (10xxxxxx) do not start a character. */
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            count++;
    }
    return count;
}

int redeem_text_utf8_next(const char *s, size_t len, size_t *i, uint32_t *code_point)
{
    const unsigned char *u = (const unsigned char *)s + *i;
    size_t left = len - *i, n;
    uint32_t cp, min;
    if (left == 0)
        return -1;
    if (u[0] < 0x80) {
        *code_point = u[0];
        *i += 1;
        return 0;
    }
    if ((u[0] & 0xE0) == 0xC0)
        n = 2, cp = u[0] & 0x1F, min = 0x80;
    else if ((u[0] & 0xF0) == 0xE0)
        n = 3, cp = u[0] & 0x0F, min = 0x800;
    else if ((u[0] & 0xF8) == 0xF0)
        n = 4, cp = u[0] & 0x07, min = 0x10000;
    else
        return -1;
    if (left < n)
        return -1;
    for (size_t k = 1; k < n; k++) {
        if ((u[k] & 0xC0) != 0x80)
            return -1;
        cp = cp << 6 | (u[k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return -1;
    *code_point = cp;
    *i += n;
    return 0;
}

int redeem_text_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

void redeem_text_hex_encode(const unsigned char *bytes, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * len] = '\0';
}

int redeem_text_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int redeem_text_hex_decode(const char *text, unsigned char *out, size_t len)
{
    if (!text || strlen(text) != 2 * len)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int hi = redeem_text_hex_digit(text[2 * i]), lo = redeem_text_hex_digit(text[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

static const char base64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char base64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* A symbol's value in its alphabet, or -1: by ranges, not by a search of
 * the alphabet (every request decodes its token). */
static int base64_value(redeem_text_base64_e which, unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (which == REDEEM_TEXT_BASE64URL ? '-' : '+'))
        return 62;
    if (c == (which == REDEEM_TEXT_BASE64URL ? '_' : '/'))
        return 63;
    return -1;
}

int redeem_text_base64_decode(redeem_text_base64_e which, const char *in, size_t len,
                              unsigned char *out, size_t *out_len)
{
    uint32_t bits = 0;
    int held = 0;
    size_t n = 0;
    if (len % 4 == 1)
        return -1; /* one symbol cannot end a byte */
    for (size_t i = 0; i < len; i++) {
        int v = base64_value(which, (unsigned char)in[i]);
        if (v < 0)
            return -1;
        bits = bits << 6 | (uint32_t)v;
        held += 6;
        if (held >= 8) {
            held -= 8;
            out[n++] = (unsigned char)(bits >> held);
            bits &= (1u << held) - 1;
        }
    }
    if (bits != 0)
        return -1; /* a second spelling of the same bytes */
    *out_len = n;
    return 0;
}

void redeem_text_base64_encode(redeem_text_base64_e which, const unsigned char *in, size_t len,
                               char *out)
{
    const char *alphabet = which == REDEEM_TEXT_BASE64URL ? base64_url : base64_std;
    uint32_t bits = 0;
    int held = 0;
    for (size_t i = 0; i < len; i++) {
        bits = bits << 8 | in[i];
        held += 8;
        while (held >= 6) {
            held -= 6;
            *out++ = alphabet[(bits >> held) & 63];
        }
    }
    if (held > 0)
        *out++ = alphabet[(bits << (6 - held)) & 63];
    *out = '\0';
}

int redeem_text_parse_int64(const char *text, int64_t min, int64_t max, int64_t *out)
{
    if (!text || !*text || strlen(text) > 19)
        return -1;
    int64_t value = 0;
    for (const char *c = text; *c; c++) {
        if (*c < '0' || *c > '9')
            return -1;
        int digit = *c - '0';
        if (value > (INT64_MAX - digit) / 10)
            return -1; /* would overflow */
        value = value * 10 + digit;
    }
    if (value < min || value > max)
        return -1;
    *out = value;
    return 0;
}

int redeem_text_is_uuid(const char *text)
{
    if (strlen(text) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (text[i] != '-')
                return 0;
        }
        else if (redeem_text_hex_digit(text[i]) < 0)
            return 0;
    }
    return 1;
}

size_t redeem_text_key_bytes(const char *text, size_t len, unsigned char *out)
{
    int hex = len % 2 == 0 && len > 0;
    for (size_t i = 0; hex && i < len; i++)
        hex = redeem_text_hex_digit(text[i]) >= 0;
    if (!hex) {
        memcpy(out, text, len);
        return len;
    }
    for (size_t i = 0; i < len / 2; i++)
        out[i] = (unsigned char)(redeem_text_hex_digit(text[2 * i]) << 4 |
                                 redeem_text_hex_digit(text[2 * i + 1]));
    return len / 2;
}
