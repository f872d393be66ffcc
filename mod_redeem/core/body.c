#include "core/body.h"
#include "core/text.h"

#include <apr_strings.h>
#include <string.h>

static const char *json_type_name(json_type type)
{
    switch (type) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* An unknown field's name as the message shows it: the client's own key,
 * which can be as long as the body. Past UNKNOWN_FIELD_SHOWN characters
 * (code points: jansson has checked it is UTF-8) it is cut, and the
 * message says how long it was. */
#define UNKNOWN_FIELD_SHOWN 64

static const char *unknown_field(apr_pool_t *p, const char *key)
{
    size_t len = strlen(key), at = 0, shown = 0;
    uint32_t code_point;
    while (at < len && shown < UNKNOWN_FIELD_SHOWN) {
        if (redeem_text_utf8_next(key, len, &at, &code_point) != 0)
            break;
        shown++;
    }
    if (at >= len)
        return apr_psprintf(p, "Unknown field: %s", key);
    return apr_psprintf(p, "Unknown field: %s... (%" APR_SIZE_T_FMT " characters)",
                        apr_pstrmemdup(p, key, at), redeem_text_utf8_length(key, len));
}

static const char *check_fields(apr_pool_t *p, json_t *body, const redeem_body_field_t *fields)
{
    const char *key;
    json_t *value;
    json_object_foreach(body, key, value)
    {
        const redeem_body_field_t *field = fields;
        while (field->name && strcmp(field->name, key) != 0)
            field++;
        if (!field->name)
            return unknown_field(p, key);
        if (json_typeof(value) != field->type)
            return apr_psprintf(p, "Field '%s' must be %s", key, json_type_name(field->type));
    }
    for (const redeem_body_field_t *field = fields; field->name; field++) {
        if (field->required && !json_object_get(body, field->name))
            return apr_psprintf(p, "Missing field: %s", field->name);
    }
    return NULL;
}

/* A message of jansson's is ASCII once parse_error has cut the input it
 * quotes; should one still hold input, which may end in the middle of a
 * character (or be no UTF-8 at all), keep what is valid UTF-8 before it. */
static const char *utf8_prefix(apr_pool_t *p, const char *text)
{
    size_t len = strlen(text), i = 0;
    uint32_t code_point;
    while (i < len) {
        size_t at = i;
        if (redeem_text_utf8_next(text, len, &i, &code_point) != 0 || code_point < 0x20)
            return apr_pstrcat(p, apr_pstrmemdup(p, text, at), "...", NULL);
    }
    return text;
}

/* The API's words for jansson's texts (load.c, 2.14) that name its own
 * interface (a flag, "not supported") or quote the client's escape (its
 * bytes, as " near '...'" would): matched on the text's start. The others
 * name the problem plainly ("invalid escape", "control character 0x1",
 * "unable to decode byte 0xff", "too big integer", ...) and are kept. */
static const struct {
    const char *jansson, *ours;
} own_words[] = {
    {"\\u0000 is not allowed without JSON_ALLOW_NUL", "\\u0000 is not allowed"},
    {"NUL byte in object key not supported", "\\u0000 is not allowed"},
    {"invalid Unicode escape '", "invalid Unicode escape"},
    {"invalid Unicode '", "invalid Unicode escape: a surrogate without its pair"},
};

static const char *words_for(const char *text)
{
    for (size_t i = 0; i < sizeof own_words / sizeof *own_words; i++)
        if (strncmp(text, own_words[i].jansson, strlen(own_words[i].jansson)) == 0)
            return own_words[i].ours;
    return NULL;
}

/* jansson's error text ends with the bytes the error was found at, quoted
 * (" near 'abc'", at most 20 of them): what the client sent, which can be
 * the start of a password cut short. The message says where instead. */
static const char *parse_error(apr_pool_t *p, const json_error_t *error)
{
    const char *near = strstr(error->text, " near '"), *ours = words_for(error->text);
    if (near)
        return apr_psprintf(p, "%s (at byte %d)",
                            ours ? ours
                                 : apr_pstrmemdup(p, error->text, (apr_size_t)(near - error->text)),
                            error->position);
    if (ours)
        return strstr(error->text, " near end of file")
                   ? apr_pstrcat(p, ours, " near end of file", NULL)
                   : ours;
    return utf8_prefix(p, error->text);
}

const char *redeem_body_parse(apr_pool_t *p, const char *data, size_t len,
                              const redeem_body_field_t *fields, json_t **body)
{
    /* No JSON text holds a raw NUL, but jansson loses one that follows a
     * number or a literal (it reads a byte on and puts it back, and a NUL
     * put back is dropped): {"count":5<NUL>} would be {"count":5}. */
    const char *nul = memchr(data, '\0', len);
    if (nul)
        return apr_psprintf(p, "Malformed JSON: a NUL byte (at byte %" APR_SIZE_T_FMT ")",
                            (apr_size_t)(nul - data) + 1);
    json_error_t error;
    /* DECODE_ANY: a bare string or null is "not an object", not a syntax error. */
    json_t *parsed = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &error);
    const char *why = NULL;
    if (!parsed)
        return apr_psprintf(p, "Malformed JSON: %s", parse_error(p, &error));
    if (!json_is_object(parsed))
        why = "Request body must be a JSON object";
    else
        why = check_fields(p, parsed, fields);
    if (why) {
        json_decref(parsed);
        return why;
    }
    *body = parsed;
    return NULL;
}
