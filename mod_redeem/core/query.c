#include "core/query.h"
#include "core/text.h"

#include <apr_strings.h>
#include <string.h>

/* Decodes value in place; -1 for a bad escape or a decoded NUL or '/'. */
static int unescape(char *value)
{
    char *out = value;
    for (const char *in = value; *in; in++) {
        if (*in == '+') {
            *out++ = ' ';
            continue;
        }
        if (*in != '%') {
            *out++ = *in;
            continue;
        }
        int hi = redeem_text_hex_digit(in[1]), lo = hi >= 0 ? redeem_text_hex_digit(in[2]) : -1;
        if (lo < 0)
            return -1;
        char c = (char)(hi << 4 | lo);
        if (c == '\0' || c == '/')
            return -1;
        *out++ = c;
        in += 2;
    }
    *out = '\0';
    return 0;
}

const char *redeem_query_param(apr_pool_t *p, const char *args, const char *name, int *bad)
{
    const char *found = NULL;
    if (!args)
        return NULL;
    char *copy = apr_pstrdup(p, args), *state;
    for (char *pair = apr_strtok(copy, "&", &state); pair; pair = apr_strtok(NULL, "&", &state)) {
        char *eq = strchr(pair, '=');
        size_t key_len = eq ? (size_t)(eq - pair) : strlen(pair);
        /* A name is decoded as its value is (p%61ge is page): the name that
         * one client spelled encoded is still that parameter, repeat included. */
        char *key = apr_pstrmemdup(p, pair, key_len);
        if (unescape(key) != 0 || strcmp(key, name) != 0)
            continue;
        char *value = eq ? eq + 1 : pair + key_len;
        if (found || unescape(value) != 0) {
            *bad = 1;
            return NULL;
        }
        found = value;
    }
    return found;
}
