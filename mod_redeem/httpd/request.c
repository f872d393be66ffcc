/* What a request brings: its JSON body, checked against the fields a
 * handler takes, and its query parameters. */
#include "httpd/private.h"

#include <apr_lib.h>
#include <http_core.h>
#include <util_filter.h>

static apr_status_t release_json(void *value)
{
    json_decref(value);
    return APR_SUCCESS;
}

json_t *redeem_request_hold_json(request_rec *r, json_t *value)
{
    if (value)
        apr_pool_cleanup_register(r->pool, value, release_json, apr_pool_cleanup_null);
    return value;
}

const char *redeem_request_id(request_rec *r)
{
    const char *id = apr_table_get(r->subprocess_env, "UNIQUE_ID");
    return id ? id : r->log_id;
}

static int is_json_media_type(const char *content_type)
{
    if (!content_type)
        return 0;
    const char *end = ap_strchr_c(content_type, ';');
    size_t len = end ? (size_t)(end - content_type) : strlen(content_type);
    while (len > 0 && apr_isspace(content_type[len - 1]))
        len--;
    return len == 16 && strncasecmp(content_type, "application/json", 16) == 0;
}

static const redeem_failure_t *too_large(request_rec *r)
{
    r->connection->keepalive = AP_CONN_CLOSE;
    return redeem_failure(r->pool, HTTP_REQUEST_ENTITY_TOO_LARGE, "Request body too large");
}

/* Reads the whole body, at most limit bytes: 413 beyond, 400/408 for a
 * broken transfer. Memory follows what arrives: the declared length when
 * there is one, else a buffer that doubles as the body grows, never the
 * whole cap up front. */
static const redeem_failure_t *read_body(request_rec *r, apr_off_t limit, char **data,
                                         apr_size_t *len)
{
    const char *length_header = apr_table_get(r->headers_in, "Content-Length");
    int64_t declared = -1;
    if (length_header && redeem_text_parse_int64(length_header, 0, INT64_MAX, &declared) == 0 &&
        declared > limit)
        return too_large(r);

    apr_bucket_brigade *bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    apr_size_t size = declared >= 0 ? (apr_size_t)declared : 1024, used = 0;
    char *buf = apr_palloc(r->pool, size + 1);
    int seen_eos = 0;
    while (!seen_eos) {
        apr_status_t rv = ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES, APR_BLOCK_READ,
                                         HUGE_STRING_LEN);
        if (rv != APR_SUCCESS) {
            int status = ap_map_http_request_error(rv, HTTP_BAD_REQUEST);
            r->connection->keepalive = AP_CONN_CLOSE;
            return redeem_failure(r->pool, status,
                                  status == HTTP_REQUEST_ENTITY_TOO_LARGE ? "Request body too large"
                                  : status == HTTP_REQUEST_TIME_OUT       ? "Request body timed out"
                                                                    : "Malformed request body");
        }
        for (apr_bucket *b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb);
             b = APR_BUCKET_NEXT(b)) {
            if (APR_BUCKET_IS_EOS(b)) {
                seen_eos = 1;
                break;
            }
            const char *chunk;
            apr_size_t chunk_len;
            if (apr_bucket_read(b, &chunk, &chunk_len, APR_BLOCK_READ) != APR_SUCCESS)
                return redeem_failure(r->pool, HTTP_BAD_REQUEST, "Malformed request body");
            if (chunk_len > (apr_size_t)limit - used)
                return too_large(r);
            if (chunk_len > size - used) {
                /* More than declared (the filter would have refused it) or a
                 * chunked body outgrowing its buffer: double, up to the cap. */
                apr_size_t grown = size > 512 ? size : 512;
                while (grown - used < chunk_len)
                    grown = grown * 2 > (apr_size_t)limit ? (apr_size_t)limit : grown * 2;
                char *bigger = apr_palloc(r->pool, grown + 1);
                memcpy(bigger, buf, used);
                buf = bigger;
                size = grown;
            }
            memcpy(buf + used, chunk, chunk_len);
            used += chunk_len;
        }
        apr_brigade_cleanup(bb);
    }
    buf[used] = '\0';
    *data = buf;
    *len = used;
    return NULL;
}

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

static const char *check_fields(apr_pool_t *p, json_t *body, const redeem_field_t *fields)
{
    const char *key;
    json_t *value;
    json_object_foreach(body, key, value)
    {
        const redeem_field_t *field = fields;
        while (field->name && strcmp(field->name, key) != 0)
            field++;
        if (!field->name)
            return apr_psprintf(p, "Unknown field: %s", key);
        if (json_typeof(value) != field->type)
            return apr_psprintf(p, "Field '%s' must be %s", key, json_type_name(field->type));
    }
    for (const redeem_field_t *field = fields; field->name; field++) {
        if (field->required && !json_object_get(body, field->name))
            return apr_psprintf(p, "Missing field: %s", field->name);
    }
    return NULL;
}

const redeem_failure_t *redeem_request_json_object(request_rec *r, const redeem_field_t *fields,
                                                   json_t **body)
{
    if (!is_json_media_type(apr_table_get(r->headers_in, "Content-Type")))
        return redeem_failure(r->pool, HTTP_UNSUPPORTED_MEDIA_TYPE,
                              "Content-Type must be application/json");
    char *data = NULL;
    apr_size_t len = 0;
    const redeem_failure_t *failure = read_body(r, redeem_conf(r)->max_body, &data, &len);
    if (failure)
        return failure;

    json_error_t error;
    /* DECODE_ANY: a bare string or null is "not an object", not a syntax error. */
    json_t *parsed = redeem_request_hold_json(
        r, json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &error));
    const char *message = NULL;
    if (!parsed)
        message = apr_psprintf(r->pool, "Malformed JSON: %s", error.text);
    else if (!json_is_object(parsed))
        message = "Request body must be a JSON object";
    else
        message = check_fields(r->pool, parsed, fields);
    if (message)
        return redeem_failure(r->pool, HTTP_BAD_REQUEST, message);
    *body = parsed;
    return NULL;
}

const char *redeem_request_query_param(request_rec *r, const char *name, int *bad)
{
    const char *found = NULL;
    size_t name_len = strlen(name);
    if (!r->args)
        return NULL;
    char *args = apr_pstrdup(r->pool, r->args), *state;
    for (char *pair = apr_strtok(args, "&", &state); pair; pair = apr_strtok(NULL, "&", &state)) {
        char *eq = strchr(pair, '=');
        size_t key_len = eq ? (size_t)(eq - pair) : strlen(pair);
        if (key_len != name_len || strncmp(pair, name, name_len) != 0)
            continue;
        char *value = eq ? eq + 1 : pair + key_len;
        for (char *plus = value; *plus; plus++)
            if (*plus == '+')
                *plus = ' ';
        if (found || ap_unescape_url(value) != OK) {
            *bad = 1;
            return NULL;
        }
        found = value;
    }
    return found;
}

const redeem_failure_t *redeem_request_page(request_rec *r, redeem_page_t *page)
{
    int bad = 0;
    const char *page_text = redeem_request_query_param(r, "page", &bad);
    const char *per_page_text = redeem_request_query_param(r, "per_page", &bad);
    int64_t value;
    page->page = 1;
    page->per_page = 50;
    if (bad)
        return redeem_failure(r->pool, HTTP_BAD_REQUEST, "Malformed or repeated query parameter");
    if (page_text) {
        if (redeem_text_parse_int64(page_text, 1, 10000000, &value) != 0)
            return redeem_failure(r->pool, HTTP_BAD_REQUEST,
                                  "page must be an integer from 1 to 10000000");
        page->page = value;
    }
    if (per_page_text) {
        if (redeem_text_parse_int64(per_page_text, 1, 500, &value) != 0)
            return redeem_failure(r->pool, HTTP_BAD_REQUEST,
                                  "per_page must be an integer from 1 to 500");
        page->per_page = value;
    }
    page->offset = (page->page - 1) * page->per_page;
    return NULL;
}
