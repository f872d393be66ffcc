/* JSON in and out: the API's conventions for bodies, errors, headers and
 * query parameters. */
#include "redeem_private.h"

#include <apr_lib.h>
#include <http_core.h>
#include <util_filter.h>

static apr_status_t release_json(void *value)
{
    json_decref(value);
    return APR_SUCCESS;
}

json_t *redeem_json_on_pool(apr_pool_t *p, json_t *value)
{
    if (value)
        apr_pool_cleanup_register(p, value, release_json, apr_pool_cleanup_null);
    return value;
}

static void set_common_headers(request_rec *r)
{
    /* err_headers_out: kept on every response, errors included. */
    apr_table_setn(r->err_headers_out, "X-Content-Type-Options", "nosniff");
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
}

int redeem_send_json(request_rec *r, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    set_common_headers(r);
    if (!text) {
        status = HTTP_INTERNAL_SERVER_ERROR;
        text = strdup("{\"error\":\"Internal server error\"}");
        if (!text)
            return HTTP_INTERNAL_SERVER_ERROR;
    }
    size_t len = strlen(text);
    r->status = status;
    ap_set_content_type(r, "application/json");
    ap_set_content_length(r, (apr_off_t)len);
    if (!r->header_only)
        ap_rwrite(text, (int)len, r);
    free(text);
    return OK;
}

int redeem_send_error(request_rec *r, int status, const char *message)
{
    if (status == HTTP_UNAUTHORIZED)
        apr_table_setn(r->err_headers_out, "WWW-Authenticate", "Bearer");
    if (status == HTTP_SERVICE_UNAVAILABLE && !apr_table_get(r->err_headers_out, "Retry-After"))
        apr_table_setn(r->err_headers_out, "Retry-After", "5");
    if (status == HTTP_INTERNAL_SERVER_ERROR)
        message = "Internal server error";
    return redeem_send_json(r, status, json_pack("{s:s}", "error", message));
}

int redeem_refuse(request_rec *r, int status, const char *message)
{
    redeem_send_error(r, status, message);
    return status;
}

int redeem_send_db_error(request_rec *r, int status)
{
    if (status == HTTP_SERVICE_UNAVAILABLE)
        return redeem_send_unavailable(r);
    return redeem_send_error(r, HTTP_INTERNAL_SERVER_ERROR, NULL);
}

int redeem_send_unavailable(request_rec *r)
{
    return redeem_send_error(r, HTTP_SERVICE_UNAVAILABLE, "Service temporarily unavailable");
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

/* Reads the whole body, at most conf->max_body bytes. Returns OK or an HTTP
 * status (413 too large, 400/408 broken transfer). */
static int read_body(request_rec *r, apr_off_t limit, char **data, apr_size_t *len,
                     const char **message)
{
    const char *length_header = apr_table_get(r->headers_in, "Content-Length");
    if (length_header) {
        apr_int64_t declared;
        if (redeem_parse_int64(length_header, 0, APR_INT64_MAX, &declared) == 0 &&
            declared > limit) {
            *message = "Request body too large";
            r->connection->keepalive = AP_CONN_CLOSE;
            return HTTP_REQUEST_ENTITY_TOO_LARGE;
        }
    }

    apr_bucket_brigade *bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    char *buf = apr_palloc(r->pool, (apr_size_t)limit + 1);
    apr_size_t used = 0;
    int seen_eos = 0;
    while (!seen_eos) {
        apr_status_t rv = ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES, APR_BLOCK_READ,
                                         HUGE_STRING_LEN);
        if (rv != APR_SUCCESS) {
            int status = ap_map_http_request_error(rv, HTTP_BAD_REQUEST);
            *message = status == HTTP_REQUEST_ENTITY_TOO_LARGE ? "Request body too large"
                       : status == HTTP_REQUEST_TIME_OUT       ? "Request body timed out"
                                                               : "Malformed request body";
            r->connection->keepalive = AP_CONN_CLOSE;
            return status;
        }
        for (apr_bucket *b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb);
             b = APR_BUCKET_NEXT(b)) {
            if (APR_BUCKET_IS_EOS(b)) {
                seen_eos = 1;
                break;
            }
            const char *chunk;
            apr_size_t chunk_len;
            if (apr_bucket_read(b, &chunk, &chunk_len, APR_BLOCK_READ) != APR_SUCCESS) {
                *message = "Malformed request body";
                return HTTP_BAD_REQUEST;
            }
            if (chunk_len > (apr_size_t)limit - used) {
                *message = "Request body too large";
                r->connection->keepalive = AP_CONN_CLOSE;
                return HTTP_REQUEST_ENTITY_TOO_LARGE;
            }
            memcpy(buf + used, chunk, chunk_len);
            used += chunk_len;
        }
        apr_brigade_cleanup(bb);
    }
    buf[used] = '\0';
    *data = buf;
    *len = used;
    return OK;
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

int redeem_read_json_object(request_rec *r, const redeem_field_t *fields, json_t **body,
                            const char **message)
{
    redeem_server_conf *conf = redeem_conf(r);
    if (!is_json_media_type(apr_table_get(r->headers_in, "Content-Type"))) {
        *message = "Content-Type must be application/json";
        return HTTP_UNSUPPORTED_MEDIA_TYPE;
    }
    char *data = NULL;
    apr_size_t len = 0;
    int status = read_body(r, conf->max_body, &data, &len, message);
    if (status != OK)
        return status;

    json_error_t error;
    /* DECODE_ANY: a bare string or null is "not an object", not a syntax error. */
    json_t *parsed = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &error);
    if (!parsed) {
        *message = apr_psprintf(r->pool, "Malformed JSON: %s", error.text);
        return HTTP_BAD_REQUEST;
    }
    if (!json_is_object(parsed)) {
        json_decref(parsed);
        *message = "Request body must be a JSON object";
        return HTTP_BAD_REQUEST;
    }
    if ((*message = check_fields(r->pool, parsed, fields))) {
        json_decref(parsed);
        return HTTP_BAD_REQUEST;
    }
    /* The caller's references die with the request. */
    *body = redeem_json_on_pool(r->pool, parsed);
    return OK;
}

int redeem_parse_int64(const char *text, apr_int64_t min, apr_int64_t max, apr_int64_t *out)
{
    if (!text || !*text || strlen(text) > 19)
        return -1;
    apr_int64_t value = 0;
    for (const char *c = text; *c; c++) {
        if (*c < '0' || *c > '9')
            return -1;
        int digit = *c - '0';
        if (value > (APR_INT64_MAX - digit) / 10)
            return -1; /* would overflow */
        value = value * 10 + digit;
    }
    if (value < min || value > max)
        return -1;
    *out = value;
    return 0;
}

const char *redeem_query_param(request_rec *r, const char *name, int *bad)
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

int redeem_read_page(request_rec *r, redeem_page_t *page, const char **message)
{
    int bad = 0;
    const char *page_text = redeem_query_param(r, "page", &bad);
    const char *per_page_text = redeem_query_param(r, "per_page", &bad);
    page->page = 1;
    page->per_page = 50;
    if (bad) {
        *message = "Malformed or repeated query parameter";
        return HTTP_BAD_REQUEST;
    }
    if (page_text && redeem_parse_int64(page_text, 1, 10000000, &page->page) != 0) {
        *message = "page must be an integer from 1 to 10000000";
        return HTTP_BAD_REQUEST;
    }
    if (per_page_text && redeem_parse_int64(per_page_text, 1, 500, &page->per_page) != 0) {
        *message = "per_page must be an integer from 1 to 500";
        return HTTP_BAD_REQUEST;
    }
    page->offset = (page->page - 1) * page->per_page;
    return OK;
}

json_t *redeem_json_page_info(json_t *body, const redeem_page_t *page, apr_int64_t total)
{
    apr_int64_t pages = (total + page->per_page - 1) / page->per_page;
    json_object_set_new(body, "total", json_integer(total));
    json_object_set_new(body, "pages", json_integer(pages));
    json_object_set_new(body, "current_page", json_integer(page->page));
    json_object_set_new(body, "per_page", json_integer(page->per_page));
    return body;
}
