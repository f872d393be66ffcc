#include "core/json_out.h"
#include "core/text.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Room for len more bytes and a NUL. */
static int reserve(redeem_json_out_t *out, size_t len)
{
    if (out->failed)
        return 0;
    if (out->len + len + 1 <= out->cap)
        return 1;
    size_t cap = out->cap * 2 > out->len + len + 1 ? out->cap * 2 : out->len + len + 1;
    char *text = apr_palloc(out->pool, cap);
    memcpy(text, out->text, out->len);
    out->text = text;
    out->cap = cap;
    return 1;
}

static void put(redeem_json_out_t *out, const char *bytes, size_t len)
{
    if (!reserve(out, len))
        return;
    memcpy(out->text + out->len, bytes, len);
    out->len += len;
}

/* A JSON string as jansson writes it: '"' and '\\' escaped, the control
 * characters as \b \f \n \r \t or \u00XX, everything else as it is (UTF-8,
 * DEL and '/' included). */
static void put_string(redeem_json_out_t *out, const char *s)
{
    size_t len = strlen(s), i = 0;
    put(out, "\"", 1);
    while (i < len && !out->failed) {
        size_t start = i;
        while (i < len && (unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x80 &&
               s[i] != '"' && s[i] != '\\')
            i++;
        put(out, s + start, i - start);
        if (i == len)
            break;
        start = i;
        uint32_t code_point;
        if (redeem_text_utf8_next(s, len, &i, &code_point) != 0) {
            out->failed = 1;
            return;
        }
        char escape[8];
        const char *text = NULL;
        switch (code_point) {
        case '"': text = "\\\""; break;
        case '\\': text = "\\\\"; break;
        case '\b': text = "\\b"; break;
        case '\f': text = "\\f"; break;
        case '\n': text = "\\n"; break;
        case '\r': text = "\\r"; break;
        case '\t': text = "\\t"; break;
        default:
            if (code_point < 0x20) {
                snprintf(escape, sizeof escape, "\\u%04X", (unsigned)code_point);
                text = escape;
            }
        }
        if (text)
            put(out, text, strlen(text));
        else
            put(out, s + start, i - start);
    }
    put(out, "\"", 1);
}

static void put_key(redeem_json_out_t *out, const char *key)
{
    if (out->need_comma)
        put(out, ",", 1);
    put_string(out, key);
    put(out, ":", 1);
    out->need_comma = 1;
}

void redeem_json_out_begin(redeem_json_out_t *out, apr_pool_t *pool)
{
    out->pool = pool;
    out->cap = 256;
    out->text = apr_palloc(pool, out->cap);
    out->len = 0;
    out->failed = 0;
    out->need_comma = 0;
    put(out, "{", 1);
}

void redeem_json_out_string(redeem_json_out_t *out, const char *key, const char *value)
{
    put_key(out, key);
    if (value)
        put_string(out, value);
    else
        out->failed = 1;
}

void redeem_json_out_string_or_null(redeem_json_out_t *out, const char *key, const char *value)
{
    put_key(out, key);
    if (value)
        put_string(out, value);
    else
        put(out, "null", 4);
}

void redeem_json_out_int(redeem_json_out_t *out, const char *key, int64_t value)
{
    char digits[24];
    put_key(out, key);
    put(out, digits, (size_t)snprintf(digits, sizeof digits, "%" PRId64, value));
}

void redeem_json_out_bool(redeem_json_out_t *out, const char *key, int value)
{
    put_key(out, key);
    if (value)
        put(out, "true", 4);
    else
        put(out, "false", 5);
}

void redeem_json_out_open(redeem_json_out_t *out, const char *key)
{
    put_key(out, key);
    put(out, "{", 1);
    out->need_comma = 0;
}

void redeem_json_out_close(redeem_json_out_t *out)
{
    put(out, "}", 1);
    out->need_comma = 1;
}

const char *redeem_json_out_end(redeem_json_out_t *out, size_t *len)
{
    put(out, "}", 1);
    if (out->failed)
        return NULL;
    out->text[out->len] = '\0';
    *len = out->len;
    return out->text;
}
