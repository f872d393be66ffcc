#include "core/email.h"

#include "core/text.h"

#include <apr_strings.h>
#include <string.h>

/* Characters that have no place in the plain addresses we accept: they need
 * quoting in RFC 5322 and mostly appear in injection attempts. */
static int is_forbidden(unsigned char c)
{
    return c < 0x20 || c == 0x7F || c == ' ' || strchr("()<>[]\\,;:\"", c) != NULL;
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
    size_t at_count = 0, at_pos = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)out[i];
        if (c >= 'A' && c <= 'Z')
            out[i] = (char)(c - 'A' + 'a');
        else if (c == '@') {
            at_count++;
            at_pos = i;
        }
        else if (is_forbidden(c))
            return "Invalid email: contains spaces or forbidden characters";
    }
    if (at_count != 1)
        return "Invalid email: must contain exactly one @";
    if (at_pos == 0)
        return "Invalid email: missing local part";
    if (at_pos > 64)
        return "Invalid email: local part longer than 64 characters";
    const char *why = check_domain(out + at_pos + 1, len - at_pos - 1);
    if (why)
        return why;
    *normalized = out;
    return NULL;
}
