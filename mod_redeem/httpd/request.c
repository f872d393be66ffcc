/* What a request brings: its JSON body, checked against the fields a
 * handler takes, and its query parameters. */
#include "httpd/private.h"

#include <apr_lib.h>
#include <http_core.h>
#include <util_filter.h>
#include <openssl/rand.h>
#include <unistd.h>

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

/* mod_unique_id's id, else one of the module's own, made once per request.
 * Never NULL: a redemption run again after its connection was lost finds
 * its own claim by it (sql/005), and NULL matches nothing. httpd's log id
 * is no substitute: it exists only once the request has logged something. */
#define REQUEST_ID_NOTE "redeem-request-id"
const char *redeem_request_id(request_rec *r)
{
    const char *id = apr_table_get(r->subprocess_env, "UNIQUE_ID");
    if (id)
        return id;
    if ((id = apr_table_get(r->notes, REQUEST_ID_NOTE)))
        return id;
    unsigned char random[16];
    char *made = apr_palloc(r->pool, 2 * sizeof random + 1);
    if (RAND_bytes(random, sizeof random) == 1)
        ap_bin2hex(random, sizeof random, made);
    else /* unique on this host: the thread's request at this microsecond */
        made = apr_psprintf(r->pool, "%" APR_PID_T_FMT "-%pp-%" APR_TIME_T_FMT, getpid(), (void *)r,
                            apr_time_now());
    apr_table_setn(r->notes, REQUEST_ID_NOTE, made);
    return made;
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

/* Whether a list of codings (Content-Encoding, Transfer-Encoding) names
 * one other than `allowed`. */
static int has_other_coding(const char *codings, const char *allowed)
{
    size_t allowed_len = strlen(allowed);
    for (const char *p = codings; p && *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *start = p;
        while (*p && *p != ',')
            p++;
        const char *end = p;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if (end > start && !((size_t)(end - start) == allowed_len &&
                             strncasecmp(start, allowed, allowed_len) == 0))
            return 1;
    }
    return 0;
}

/* Whether a Content-Encoding names a coding other than identity: the
 * module decodes none (RFC 9110 8.4). */
static int is_encoded(const char *encoding)
{
    return has_other_coding(encoding, "identity");
}

static const redeem_failure_t *too_large(request_rec *r)
{
    r->connection->keepalive = AP_CONN_CLOSE;
    return redeem_failure(r->pool, HTTP_REQUEST_ENTITY_TOO_LARGE, "Request body too large");
}

/* A body's first buffer at most: a declared length is only a promise, and
 * a client that declares the cap and stalls must not make its thread hold
 * the cap. */
#define FIRST_BODY_BUFFER 16384

/* Reads the whole body, at most limit bytes: 413 beyond, 400/408 for a
 * broken transfer. Memory follows what arrives: a buffer of the declared
 * length up to FIRST_BODY_BUFFER (else 1 KiB) that doubles as the body
 * grows, never the whole cap up front. */
static const redeem_failure_t *read_body(request_rec *r, apr_off_t limit, char **data,
                                         apr_size_t *len)
{
    const char *length_header = apr_table_get(r->headers_in, "Content-Length");
    int64_t declared = -1;
    if (length_header && redeem_text_parse_int64(length_header, 0, INT64_MAX, &declared) == 0 &&
        declared > limit)
        return too_large(r);

    apr_bucket_brigade *bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    apr_size_t size = declared < 0                   ? 1024
                      : declared > FIRST_BODY_BUFFER ? FIRST_BODY_BUFFER
                                                     : (apr_size_t)declared,
               used = 0;
    char *buf = apr_palloc(r->pool, size + 1);
    int seen_eos = 0;
    while (!seen_eos) {
        apr_status_t rv = ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES, APR_BLOCK_READ,
                                         HUGE_STRING_LEN);
        if (rv != APR_SUCCESS) {
            r->connection->keepalive = AP_CONN_CLOSE;
            return redeem_failure_reading(r->pool, ap_map_http_request_error(rv, HTTP_BAD_REQUEST));
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
                /* A body outgrowing its buffer (a chunked one, or one
                 * declared larger than the first buffer): double, up to the
                 * cap. */
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

void redeem_request_forgo_body(request_rec *r)
{
    /* A client that waits for 100 Continue before its body gets none: httpd
     * sends it only for a success, and reads no body for anything else. */
    if (r->main || r->expecting_100 || r->connection->keepalive == AP_CONN_CLOSE)
        return;
    apr_bucket_brigade *bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    apr_off_t dropped = 0, cap = redeem_conf(r)->max_body;
    int seen_eos = 0;
    while (!seen_eos) {
        apr_status_t rv = ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES, APR_NONBLOCK_READ,
                                         HUGE_STRING_LEN);
        if (rv != APR_SUCCESS || APR_BRIGADE_EMPTY(bb))
            break; /* not all here (APR_EAGAIN), or broken */
        for (apr_bucket *b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb);
             b = APR_BUCKET_NEXT(b)) {
            if (APR_BUCKET_IS_EOS(b))
                seen_eos = 1;
            else if (b->length != (apr_size_t)-1)
                dropped += (apr_off_t)b->length;
        }
        apr_brigade_cleanup(bb);
        if (dropped > cap)
            break;
    }
    apr_brigade_destroy(bb);
    if (!seen_eos)
        r->connection->keepalive = AP_CONN_CLOSE;
}

/* A body read ahead (redeem_request_read_ahead), on the request's pool. */
#define READ_AHEAD_KEY "redeem-body-read-ahead"
typedef struct {
    char *data;
    apr_size_t len;
} read_ahead_t;

/* A body in a transfer coding under chunked (gzip, chunked): httpd takes
 * off the chunks only and leaves the rest, which the module does not
 * decode (RFC 9112 6.1: 501). Refused before the body is read, so that no
 * 100 Continue asks for it. */
static int in_transfer_coding(request_rec *r)
{
    return has_other_coding(apr_table_get(r->headers_in, "Transfer-Encoding"), "chunked");
}

const redeem_failure_t *redeem_request_read_ahead(request_rec *r)
{
    if (r->method_number != M_POST || in_transfer_coding(r))
        return NULL;
    void *done = NULL;
    apr_pool_userdata_get(&done, READ_AHEAD_KEY, r->pool);
    if (done)
        return NULL;
    read_ahead_t *ahead = apr_palloc(r->pool, sizeof *ahead);
    const redeem_failure_t *failure =
        read_body(r, redeem_conf(r)->max_body, &ahead->data, &ahead->len);
    if (!failure)
        apr_pool_userdata_setn(ahead, READ_AHEAD_KEY, NULL, r->pool);
    return failure;
}

const redeem_failure_t *redeem_request_drop_body(request_rec *r)
{
    /* Most GETs have no body: nothing to read, no brigade made. A
     * subrequest's input is its main request's body. */
    if (r->main || !ap_request_has_body(r))
        return NULL;
    char *data;
    apr_size_t len;
    return read_body(r, redeem_conf(r)->max_body, &data, &len);
}

const redeem_failure_t *redeem_request_json_object(request_rec *r,
                                                   const redeem_body_field_t *fields, json_t **body)
{
    if (!is_json_media_type(apr_table_get(r->headers_in, "Content-Type")))
        return redeem_failure(r->pool, HTTP_UNSUPPORTED_MEDIA_TYPE,
                              "Content-Type must be application/json");
    if (in_transfer_coding(r)) {
        r->connection->keepalive = AP_CONN_CLOSE; /* its body stays unread */
        return redeem_failure(r->pool, HTTP_NOT_IMPLEMENTED,
                              "Transfer-Encoding other than chunked is not supported");
    }
    char *data = NULL;
    apr_size_t len = 0;
    void *ahead = NULL;
    apr_pool_userdata_get(&ahead, READ_AHEAD_KEY, r->pool);
    if (ahead) {
        data = ((read_ahead_t *)ahead)->data;
        len = ((read_ahead_t *)ahead)->len;
    }
    else {
        const redeem_failure_t *failure = read_body(r, redeem_conf(r)->max_body, &data, &len);
        if (failure)
            return failure;
    }
    /* A body in a content coding (gzip, say) is not JSON as sent: 415, and
     * Accept-Encoding names the one taken (RFC 9110 15.5.16). Looked at
     * after the read: an input filter that decodes it (mod_deflate's, where
     * an operator sets one) removes the header as it does. */
    if (is_encoded(apr_table_get(r->headers_in, "Content-Encoding"))) {
        apr_table_setn(r->err_headers_out, "Accept-Encoding", "identity");
        return redeem_failure(r->pool, HTTP_UNSUPPORTED_MEDIA_TYPE,
                              "Content-Encoding must be identity");
    }

    json_t *parsed = NULL;
    const char *why = redeem_body_parse(r->pool, data, len, fields, &parsed);
    if (why)
        return redeem_failure(r->pool, HTTP_BAD_REQUEST, why);
    /* The caller's references die with the request. */
    *body = redeem_request_hold_json(r, parsed);
    return NULL;
}

const char *redeem_request_query_param(request_rec *r, const char *name, int *bad)
{
    return redeem_query_param(r->pool, r->args, name, bad);
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
