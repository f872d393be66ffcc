/* libFuzzer target: query strings (r->args) as httpd/request.c and
 * handle_codes.c read them: redeem_request_query_param for page, per_page,
 * used, batch_id and after_id, then redeem_request_page and
 * read_list_request's checks.
 *
 * Input: the query string (a C string, as httpd stores r->args).
 *
 * query_param is core/query.c's redeem_query_param, which the module calls.
 *
 * Invariants: the copy agrees with an independent reading of the query
 * (split on '&', key up to the first '=', key and value each '+' as space
 * then %XX decoded; a key that does not decode names nothing; a repeated key
 * or a value's bad escape is malformed); an
 * accepted page and per_page are in range and their offset does not
 * overflow (so a value never holds a NUL or '/' that came from %00 or
 * %2F, nor an undecoded escape). */
#include "fuzz_common.h"

#include "core/query.h"
#include "core/text.h"

#include <apr_general.h>
#include <apr_lib.h>
#include <apr_strings.h>

static apr_pool_t *pool;

/* The module's own reading (httpd/request.c calls it with r->args). */
static const char *query_param(const char *args, const char *name, int *bad)
{
    return redeem_query_param(pool, args, name, bad);
}

static const char HEX[] = "0123456789abcdefABCDEF";

/* n bytes of text, '+' as a space then %XX decoded; NULL for a bad escape
 * or one that decodes to a NUL or '/'. */
static char *oracle_decode(const char *text, size_t n)
{
    char *value = apr_pstrndup(pool, text, n), *out = value;
    for (const char *in = value; *in; in++) {
        if (*in == '+')
            *out++ = ' ';
        else if (*in != '%')
            *out++ = *in;
        else {
            int hi = in[1] && strchr(HEX, in[1]) ? in[1] : -1;
            int lo = hi >= 0 && in[2] && strchr(HEX, in[2]) ? in[2] : -1;
            if (lo < 0)
                return NULL;
            char hex[3] = {(char)hi, (char)lo, 0};
            long v = strtol(hex, NULL, 16);
            if (v == 0 || v == '/')
                return NULL;
            *out++ = (char)v;
            in += 2;
        }
    }
    *out = '\0';
    return value;
}

/* The oracle, written from the contract without apr_strtok: a key is
 * decoded as a value is, and one that does not decode names nothing. */
static const char *oracle_param(const char *args, const char *name, int *bad)
{
    size_t n = strlen(args);
    const char *found = NULL;
    size_t start = 0;
    while (start <= n) {
        size_t end = start;
        while (end < n && args[end] != '&')
            end++;
        size_t key_end = start;
        while (key_end < end && args[key_end] != '=')
            key_end++;
        const char *key = oracle_decode(args + start, key_end - start);
        if (key && strcmp(key, name) == 0) {
            if (found) {
                *bad = 1;
                return NULL;
            }
            size_t vstart = key_end < end ? key_end + 1 : end;
            if (!(found = oracle_decode(args + vstart, end - vstart))) {
                *bad = 1;
                return NULL;
            }
        }
        start = end + 1;
    }
    return found;
}

static void same_param(const char *args, const char *name)
{
    int bad = 0, obad = 0;
    const char *got = query_param(args, name, &bad);
    const char *want = oracle_param(args, name, &obad);
    FUZZ_CHECK(bad == obad, "query parameter malformed/repeated disagrees with the oracle");
    if (!bad) {
        FUZZ_CHECK((got == NULL) == (want == NULL), "query parameter presence disagrees");
        FUZZ_CHECK(!got || strcmp(got, want) == 0, "query parameter value disagrees");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!pool) {
        apr_initialize();
        apr_pool_create(&pool, NULL);
    }
    char *args = fuzz_cstring(data, size);
    static const char *names[] = {"page", "per_page", "used", "batch_id", "after_id"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        same_param(args, names[i]);

    /* redeem_request_page. */
    int bad = 0;
    const char *page_text = query_param(args, "page", &bad);
    const char *per_page_text = query_param(args, "per_page", &bad);
    int64_t page = 1, per_page = 50, value;
    int refused = bad;
    if (!refused && page_text) {
        if (redeem_text_parse_int64(page_text, 1, 10000000, &value) != 0)
            refused = 1;
        else
            page = value;
    }
    if (!refused && per_page_text) {
        if (redeem_text_parse_int64(per_page_text, 1, 500, &value) != 0)
            refused = 1;
        else
            per_page = value;
    }
    if (!refused) {
        FUZZ_CHECK(page >= 1 && page <= 10000000 && per_page >= 1 && per_page <= 500,
                   "page or per_page out of range");
        int64_t offset = (page - 1) * per_page;
        FUZZ_CHECK(offset >= 0 && offset < INT64_C(5000000000), "page offset out of range");

        /* read_list_request (GET /admin/codes). */
        bad = 0;
        (void)query_param(args, "used", &bad);
        const char *batch_id = query_param(args, "batch_id", &bad);
        const char *after_text = query_param(args, "after_id", &bad);
        if (!bad && batch_id && redeem_text_is_uuid(batch_id))
            FUZZ_CHECK(strlen(batch_id) == 36, "a batch_id UUID is not 36 characters");
        if (!bad && after_text && redeem_text_parse_int64(after_text, 0, INT64_MAX, &value) == 0)
            FUZZ_CHECK(value >= 0, "after_id negative");
    }
    free(args);
    apr_pool_clear(pool);
    return 0;
}
