/* Small text helpers the core and the glue share: UTF-8 length, hex,
 * integers, UUIDs, whitespace, key material. No httpd headers. */
#ifndef REDEEM_TEXT_H
#define REDEEM_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* Number of UTF-8 code points in s[0..len) (continuation bytes not counted). */
size_t redeem_text_utf8_length(const char *s, size_t len);

/* The code point of the UTF-8 sequence at s[*i] (of s[0..len)), and *i
 * moved past it. -1 for an invalid sequence: truncated, overlong, a
 * surrogate, or beyond U+10FFFF. */
int redeem_text_utf8_next(const char *s, size_t len, size_t *i, uint32_t *code_point);

/* ASCII whitespace: space, \t, \r, \n, \f, \v. */
int redeem_text_is_space(char c);

/* The value of a hex digit (either case), or -1. */
int redeem_text_hex_digit(char c);

/* Lowercase hex of bytes[0..len) into out (2*len chars and a NUL). */
void redeem_text_hex_encode(const unsigned char *bytes, size_t len, char *out);
/* Decodes exactly 2*len hex digits; 0 on success, -1 otherwise. */
int redeem_text_hex_decode(const char *text, unsigned char *out, size_t len);

/* Base64 without padding: the URL alphabet of RFC 4648 section 5 ([A-Za-z0-9_-],
 * tokens) or the standard one ([A-Za-z0-9+/], PHC password hashes). */
typedef enum { REDEEM_TEXT_BASE64, REDEEM_TEXT_BASE64URL } redeem_text_base64_e;
/* Decodes in its one canonical form: no '=', unused trailing bits zero. out
 * holds at least len * 3 / 4 bytes. 0 with *out_len set, or -1. */
int redeem_text_base64_decode(redeem_text_base64_e alphabet, const char *in, size_t len,
                              unsigned char *out, size_t *out_len);
/* Encodes into out (at least (len * 4 + 2) / 3 + 1 chars), NUL-terminated. */
void redeem_text_base64_encode(redeem_text_base64_e alphabet, const unsigned char *in, size_t len,
                               char *out);

/* A decimal integer of digits only (no sign, no spaces) in [min, max];
 * 0 with *out set, -1 otherwise. */
int redeem_text_parse_int64(const char *text, int64_t min, int64_t max, int64_t *out);

/* 1 when text is a UUID in its 8-4-4-4-12 hex form, else 0. */
int redeem_text_is_uuid(const char *text);

/* Key material as key files hold it: an even number of hex digits is
 * decoded, anything else is taken as raw bytes. Writes at most len bytes to
 * out and returns how many. */
size_t redeem_text_key_bytes(const char *text, size_t len, unsigned char *out);

#endif
