/* libFuzzer target: JSON request bodies as the module reads them.
 *
 * Input: the body bytes. As redeem_request_json_object (httpd/request.c)
 * does: json_loadb(JSON_REJECT_DUPLICATES | JSON_DECODE_ANY), "must be a
 * JSON object", then the field check against each handler's field table
 * (register/login, POST /redeem, POST /admin/generate-codes), then what the
 * handler does with the fields (email and password policies, code
 * normalization and check, count and months ranges, expires_at parsing).
 *
 * The parse and the field check are core/body.c's redeem_body_parse, which
 * httpd/request.c calls.
 *
 * Invariants: every failure message the module would send is valid UTF-8,
 * so response.c can json_pack it (else the client gets a 500), and none
 * names jansson's interface (JSON_ALLOW_NUL, "not supported") or quotes an
 * escape of the client's ("invalid Unicode '\uD834'"); a body that
 * passes has only known fields of the right types and every required one,
 * and no raw NUL byte;
 * strings handed to the core are NUL-free valid UTF-8 of the length jansson
 * reports (email.c relies on it); the parsed body dumps and reloads equal.
 *
 * FUZZ_SKIP=error-utf8: steps around the open item of that name (a jansson
 * error text cut inside a UTF-8 sequence, fuzz/README.md), for long runs. */
#include "fuzz_common.h"

#include "core/body.h"
#include "core/code.h"
#include "core/email.h"
#include "core/password.h"
#include "core/timestamp.h"

#include <apr_general.h>
#include <apr_strings.h>
#include <jansson.h>

static const redeem_body_field_t credential_fields[] = {
    {"email", JSON_STRING, 1},
    {"password", JSON_STRING, 1},
    {NULL, JSON_NULL, 0},
};
static const redeem_body_field_t redeem_fields[] = {
    {"card_code", JSON_STRING, 1},
    {"user_id", JSON_INTEGER, 0},
    {NULL, JSON_NULL, 0},
};
static const redeem_body_field_t generate_fields[] = {
    {"count", JSON_INTEGER, 1},
    {"expires_at", JSON_STRING, 0},
    {"duration_months", JSON_INTEGER, 0},
    {NULL, JSON_NULL, 0},
};

static apr_pool_t *pool;
static redeem_code_keys_t keys;
static int skip_error_utf8;

/* response.c sends {"error": message} through json_pack: it must not fail. */
static void check_message(const char *message)
{
    json_t *body = json_pack("{s:s}", "error", message);
    FUZZ_CHECK(body != NULL, "a 400 message is not valid UTF-8: the client would get a 500");
    /* jansson's words for its own interface, or its quote of an escape, are
     * not the API's (core/body.c says them in its own). Only a parse
     * error's: other messages quote the client's field names. */
    if (strncmp(message, "Malformed JSON: ", 16) == 0)
        FUZZ_CHECK(!strstr(message, "JSON_") && !strstr(message, "not supported") &&
                       !strstr(message, "invalid Unicode '") &&
                       !strstr(message, "invalid Unicode escape '"),
                   "a parse error in jansson's words");
    char *text = json_dumps(body, JSON_COMPACT);
    FUZZ_CHECK(text != NULL, "a 400 message does not serialize");
    free(text);
    json_decref(body);
}

/* A string field as the core gets it. */
static const char *core_string(json_t *v, size_t *len)
{
    const char *s = json_string_value(v);
    *len = json_string_length(v);
    FUZZ_CHECK(s && strlen(s) == *len, "a JSON string holds a NUL");
    FUZZ_CHECK(fuzz_utf8_valid((const unsigned char *)s, *len), "a JSON string is not UTF-8");
    return s;
}

/* Oracle: body keys are a subset of the table with matching types, and
 * every required field is present. */
static int fields_ok(json_t *body, const redeem_body_field_t *fields)
{
    size_t known = 0;
    for (const redeem_body_field_t *f = fields; f->name; f++) {
        json_t *v = json_object_get(body, f->name);
        if (v && json_typeof(v) != f->type)
            return 0;
        if (!v && f->required)
            return 0;
        known += v != NULL;
    }
    return known == json_object_size(body);
}

static void handle_credentials(json_t *body)
{
    size_t elen, plen;
    const char *email = core_string(json_object_get(body, "email"), &elen);
    const char *password = core_string(json_object_get(body, "password"), &plen);
    char *normalized;
    const char *why = redeem_email_normalize(pool, email, elen, &normalized);
    if (!why)
        why = redeem_password_check_policy(password, plen);
    if (why)
        check_message(why);
}

static void handle_redeem(json_t *body)
{
    size_t len;
    const char *card = core_string(json_object_get(body, "card_code"), &len);
    json_t *for_user = json_object_get(body, "user_id");
    volatile json_int_t user = for_user ? json_integer_value(for_user) : 0;
    (void)user;
    char symbols[REDEEM_CODE_SYMBOLS];
    int bucket;
    if (redeem_code_normalize(card, len, symbols) == 0 &&
        (bucket = redeem_code_check(&keys, symbols)) >= 0) {
        unsigned char hash[REDEEM_CODE_HASH_LEN];
        redeem_code_lookup_hash(&keys, symbols, bucket, hash);
    }
}

static void handle_generate(json_t *body)
{
    volatile json_int_t count = json_integer_value(json_object_get(body, "count"));
    json_t *duration = json_object_get(body, "duration_months");
    volatile json_int_t months = duration ? json_integer_value(duration) : 1;
    (void)count;
    (void)months;
    json_t *expires = json_object_get(body, "expires_at");
    if (expires) {
        size_t len;
        const char *text = core_string(expires, &len);
        int64_t when;
        (void)redeem_timestamp_parse(text, &when);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!pool) {
        unsigned char mac[32], enc[32];
        memset(mac, 7, sizeof mac);
        memset(enc, 9, sizeof enc);
        apr_initialize();
        apr_pool_create(&pool, NULL);
        redeem_code_keys_init(&keys, mac, sizeof mac, enc, sizeof enc);
        skip_error_utf8 = fuzz_skip("error-utf8");
    }
    /* read_body hands over a NUL-terminated buffer and its length. */
    char *buf = fuzz_cstring(data, size);
    /* JSON as it is: jansson alone drops a raw NUL after a number or a
     * literal and takes the rest, where no JSON text holds one. So a body
     * with a NUL counts as unparsed, and its passing fails the check below. */
    json_t *parsed = memchr(buf, '\0', size)
                         ? NULL
                         : json_loadb(buf, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
    static const struct {
        const redeem_body_field_t *fields;
        void (*handle)(json_t *);
    } handlers[] = {
        {credential_fields, handle_credentials},
        {redeem_fields, handle_redeem},
        {generate_fields, handle_generate},
    };
    for (size_t i = 0; i < sizeof handlers / sizeof handlers[0]; i++) {
        json_t *body = NULL;
        const char *message = redeem_body_parse(pool, buf, size, handlers[i].fields, &body);
        if (message) {
            FUZZ_CHECK(!parsed || !json_is_object(parsed) || !fields_ok(parsed, handlers[i].fields),
                       "a body the field table accepts was refused");
            if (!skip_error_utf8 ||
                fuzz_utf8_valid((const unsigned char *)message, strlen(message)))
                check_message(message);
            continue;
        }
        FUZZ_CHECK(parsed && json_is_object(parsed) && fields_ok(body, handlers[i].fields),
                   "the field check disagrees with the field table");
        handlers[i].handle(body);
        json_decref(body);
    }
    if (parsed) {
        /* What we parsed, we can write and read back (responses echo values). */
        char *text = json_dumps(parsed, JSON_COMPACT | JSON_ENCODE_ANY);
        FUZZ_CHECK(text != NULL, "a parsed body does not serialize");
        json_t *again = json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
        FUZZ_CHECK(again != NULL && json_equal(again, parsed), "a body does not round-trip");
        json_decref(again);
        free(text);
        json_decref(parsed);
    }
    free(buf);
    apr_pool_clear(pool);
    return 0;
}
