#include "core/email.h"

#include "core/text.h"

#include <apr_strings.h>
#include <string.h>

/* ASCII that has no place in the plain addresses we accept: it needs
 * quoting in RFC 5322 and mostly appears in injection attempts. */
static int is_forbidden_ascii(uint32_t c)
{
    return c < 0x20 || c == 0x7F || c == ' ' || strchr("()<>[]\\,;:\"", (int)c) != NULL;
}

/* Code points that are invisible, change the direction or shape of text
 * without showing, are spaces or controls, or are not characters at all: two
 * addresses that look alike must not be two accounts. Ranges, inclusive. */
static const uint32_t invisible[][2] = {
    {0x0080, 0x00A0},   /* C1 controls, no-break space */
    {0x00AD, 0x00AD},   /* soft hyphen */
    {0x034F, 0x034F},   /* combining grapheme joiner */
    {0x061C, 0x061C},   /* Arabic letter mark */
    {0x115F, 0x1160},   /* Hangul fillers */
    {0x1680, 0x1680},   /* Ogham space mark */
    {0x17B4, 0x17B5},   /* Khmer inherent vowels */
    {0x180B, 0x180F},   /* Mongolian selectors and separator */
    {0x2000, 0x200F},   /* spaces, zero-width characters, LRM, RLM */
    {0x2028, 0x202F},   /* line and paragraph separators, bidi embeddings and overrides */
    {0x205F, 0x206F},   /* math space, word joiner, invisible operators, bidi isolates */
    {0x2800, 0x2800},   /* Braille pattern blank (shows as a space) */
    {0x3000, 0x3000},   /* ideographic space */
    {0x3164, 0x3164},   /* Hangul filler */
    {0xE000, 0xF8FF},   /* private use */
    {0xFDD0, 0xFDEF},   /* noncharacters */
    {0xFE00, 0xFE0F},   /* variation selectors */
    {0xFEFF, 0xFEFF},   /* byte order mark, zero-width no-break space */
    {0xFFA0, 0xFFA0},   /* halfwidth Hangul filler */
    {0xFFF0, 0xFFFF},   /* specials, replacement character, noncharacters */
    {0x13430, 0x1343F}, /* Egyptian hieroglyph format controls */
    {0x1BCA0, 0x1BCA3}, /* shorthand format controls */
    {0x1D173, 0x1D17A}, /* musical formatting */
    {0xE0000, 0xE0FFF}, /* tags, variation selectors supplement */
    {0xF0000, 0x10FFFF} /* private use planes */
};

/* The database folds an address (NFC, then lowercase: email_key, sql/003)
 * before it stores it. One code point beyond ASCII folds into forbidden
 * ASCII: U+037E, the Greek question mark, is ';' once normalized (checked
 * over every code point with Python's unicodedata). Refused as ';' is, or
 * an account would be stored under an address that cannot log in. */
static int folds_to_forbidden_ascii(uint32_t c)
{
    return c == 0x037E;
}

static int is_invisible(uint32_t c)
{
    if ((c & 0xFFFE) == 0xFFFE)
        return 1; /* the noncharacters at the end of every plane */
    for (size_t i = 0; i < sizeof invisible / sizeof *invisible; i++)
        if (c >= invisible[i][0] && c <= invisible[i][1])
            return 1;
    return 0;
}

static const char *check_domain(const char *domain, size_t len)
{
    if (len == 0)
        return "Invalid email: missing domain";
    if (domain[0] == '.' || domain[len - 1] == '.' || domain[0] == '-')
        return "Invalid email: malformed domain";
    if (memchr(domain, '.', len) == NULL)
        return "Invalid email: domain must contain a dot";
    for (size_t i = 0; i + 1 < len; i++) {
        if (domain[i] == '.' && domain[i + 1] == '.')
            return "Invalid email: malformed domain";
    }
    return NULL;
}

const char *redeem_email_normalize(apr_pool_t *p, const char *in, size_t len, char **normalized)
{
    while (len > 0 && redeem_text_is_space(in[0])) {
        in++;
        len--;
    }
    while (len > 0 && redeem_text_is_space(in[len - 1]))
        len--;

    if (len == 0)
        return "Invalid email: must not be empty";
    if (redeem_text_utf8_length(in, len) > REDEEM_EMAIL_MAX_CHARS)
        return "Invalid email: longer than 254 characters";

    char *out = apr_pstrmemdup(p, in, len);
    size_t at_count = 0, at_pos = 0, local_chars = 0;
    for (size_t i = 0; i < len;) {
        size_t start = i;
        uint32_t c;
        if (redeem_text_utf8_next(out, len, &i, &c) != 0)
            return "Invalid email: not UTF-8";
        if (c >= 'A' && c <= 'Z')
            out[start] = (char)(c - 'A' + 'a');
        else if (c == '@') {
            at_count++;
            at_pos = start;
        }
        else if (c < 0x80 ? is_forbidden_ascii(c) : is_invisible(c) || folds_to_forbidden_ascii(c))
            return "Invalid email: contains spaces, invisible or forbidden characters";
        if (at_count == 0)
            local_chars++;
    }
    if (at_count != 1)
        return "Invalid email: must contain exactly one @";
    if (at_pos == 0)
        return "Invalid email: missing local part";
    if (local_chars > 64)
        return "Invalid email: local part longer than 64 characters";
    const char *why = check_domain(out + at_pos + 1, len - at_pos - 1);
    if (why)
        return why;
    *normalized = out;
    return NULL;
}
