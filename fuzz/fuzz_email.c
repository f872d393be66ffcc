/* libFuzzer target: the email address policy (redeem_email_normalize) and
 * the password policy (redeem_password_check_policy), as register and login
 * call them on the strings of the JSON body.
 *
 * Input: the string. jansson hands out valid UTF-8 without NUL (it refuses
 * \u0000 unless JSON_ALLOW_NUL), which email.c relies on: other inputs are
 * given to the password policy only, which must not care.
 *
 * Invariants of an accepted address: trimmed, no ASCII uppercase, exactly
 * one '@' with a local part of 1..64 bytes, no space, control or
 * ()<>[]\,;:" character, a domain with a dot and no empty label at either
 * end or in the middle, at most 254 characters; normalizing it again gives
 * itself; the uppercase form of the input normalizes to the same.
 * Of an accepted password: 8..128 code points, a letter and a digit.
 *
 * FUZZ_STRICT=email-unicode: an accepted address holds no bidi control,
 * zero-width or other invisible format character (U+200B..U+200F,
 * U+202A..U+202E, U+2060..U+2069, U+FEFF, U+00AD) nor a non-ASCII space
 * (U+00A0, U+1680, U+2000..U+200A, U+2028/9, U+202F, U+205F, U+3000): a
 * question for the lead, not a known item (see the report). */
#include "fuzz_common.h"

#include "core/email.h"
#include "core/password.h"
#include "core/text.h"

#include <apr_general.h>
#include <locale.h>
#include <wchar.h>
#include <wctype.h>

static apr_pool_t *pool;
static int strict_unicode;

static int is_upper(char c)
{
    return c >= 'A' && c <= 'Z';
}

/* The next code point of valid UTF-8 at s[*i], advancing *i. */
static uint32_t next_cp(const unsigned char *s, size_t *i)
{
    unsigned char c = s[*i];
    int n = c < 0x80 ? 0 : c < 0xE0 ? 1 : c < 0xF0 ? 2 : 3;
    uint32_t cp = n == 0 ? c : c & (0x3F >> n);
    for (int k = 1; k <= n; k++)
        cp = cp << 6 | (s[*i + k] & 0x3F);
    *i += (size_t)n + 1;
    return cp;
}

static int invisible_or_space(uint32_t cp)
{
    return cp == 0xAD || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200F) ||
           cp == 0x2028 || cp == 0x2029 || (cp >= 0x202A && cp <= 0x202F) || cp == 0x205F ||
           (cp >= 0x2060 && cp <= 0x2069) || cp == 0x3000 || cp == 0xFEFF;
}

static void check_address(const char *in, size_t len, const char *out)
{
    size_t n = strlen(out);
    FUZZ_CHECK(n > 0 && n <= len, "normalized address longer than the input");
    FUZZ_CHECK(!redeem_text_is_space(out[0]) && !redeem_text_is_space(out[n - 1]),
               "normalized address not trimmed");
    FUZZ_CHECK(redeem_text_utf8_length(out, n) <= REDEEM_EMAIL_MAX_CHARS,
               "accepted address over 254 characters");
    size_t at = 0, ats = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)out[i];
        FUZZ_CHECK(!is_upper((char)c), "normalized address holds uppercase ASCII");
        FUZZ_CHECK(c >= 0x20 && c != 0x7F && c != ' ' && !strchr("()<>[]\\,;:\"", c),
                   "accepted address holds a forbidden character");
        if (c == '@')
            ats++, at = i;
    }
    FUZZ_CHECK(ats == 1, "accepted address without exactly one @");
    /* 64 characters (code points), as README says, not bytes. */
    FUZZ_CHECK(at >= 1 && redeem_text_utf8_length(out, at) <= 64,
               "accepted local part of 0 or over 64 characters");
    const char *domain = out + at + 1;
    size_t dlen = n - at - 1;
    FUZZ_CHECK(dlen > 0 && memchr(domain, '.', dlen), "accepted domain without a dot");
    FUZZ_CHECK(domain[0] != '.' && domain[dlen - 1] != '.' && domain[0] != '-' &&
                   !strstr(domain, ".."),
               "accepted a malformed domain");

    /* Idempotent, and blind to ASCII case. */
    char *again = NULL;
    FUZZ_CHECK(redeem_email_normalize(pool, out, n, &again) == NULL && strcmp(again, out) == 0,
               "normalizing an accepted address again changes it");
    char *upper = malloc(len + 1);
    for (size_t i = 0; i < len; i++)
        upper[i] = (char)(in[i] >= 'a' && in[i] <= 'z' ? in[i] - 'a' + 'A' : in[i]);
    upper[len] = '\0';
    FUZZ_CHECK(redeem_email_normalize(pool, upper, len, &again) == NULL && strcmp(again, out) == 0,
               "uppercase input normalizes differently");
    free(upper);

    if (strict_unicode) {
        for (size_t i = 0; i < n;)
            FUZZ_CHECK(!invisible_or_space(next_cp((const unsigned char *)out, &i)),
                       "[email-unicode] accepted an address with an invisible or space character");
    }
}

/* The documented rule: a letter is an ASCII one or a character that
 * glibc's C.UTF-8 tables call alphabetic, decoded here by glibc's own
 * mbrtowc (not the module's decoder); a byte that starts no valid
 * character is none. A digit is 0-9. */
static void check_password(const char *pw, size_t len)
{
    static locale_t unicode;
    if (!unicode)
        unicode = newlocale(LC_CTYPE_MASK | LC_COLLATE_MASK, "C.UTF-8", (locale_t)0);
    locale_t before = uselocale(unicode);
    size_t chars = 0;
    int letter = 0, digit = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)pw[i];
        chars += (c & 0xC0) != 0x80;
        digit |= c >= '0' && c <= '9';
        letter |= (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (c >= 0x80 && (c & 0xC0) != 0x80) {
            mbstate_t state;
            memset(&state, 0, sizeof state);
            wchar_t wc;
            size_t n = mbrtowc(&wc, pw + i, len - i, &state);
            if (n != (size_t)-1 && n != (size_t)-2 && n > 1)
                letter |= iswalpha((wint_t)wc) != 0;
        }
    }
    uselocale(before);
    const char *why = redeem_password_check_policy(pw, len);
    int expected =
        chars >= REDEEM_PASSWORD_MIN_CHARS && chars <= REDEEM_PASSWORD_MAX_CHARS && letter && digit;
    FUZZ_CHECK((why == NULL) == expected, "password policy disagrees with its documentation");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!pool) {
        apr_initialize();
        apr_pool_create(&pool, NULL);
        strict_unicode = fuzz_strict("email-unicode");
    }
    /* Exactly the bytes, no terminator: the functions take a length. */
    char *in = malloc(size ? size : 1);
    memcpy(in, data, size);
    check_password(in, size);
    if (fuzz_utf8_valid(data, size) && !memchr(data, 0, size)) {
        char *normalized = NULL;
        if (redeem_email_normalize(pool, in, size, &normalized) == NULL)
            check_address(in, size, normalized);
    }
    free(in);
    apr_pool_clear(pool);
    return 0;
}
