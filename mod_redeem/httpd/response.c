/* Responses: JSON bodies with the API's headers, and the one place a
 * failure becomes an error response. */
#include "httpd/private.h"

static void set_common_headers(request_rec *r)
{
    /* err_headers_out: kept on every response, errors included. */
    apr_table_setn(r->err_headers_out, "X-Content-Type-Options", "nosniff");
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
}

/* The response is the request's last use of the database: its connection
 * goes back to the pool before the response is written, since writing
 * waits on the client (a client that reads nothing held a connection until
 * httpd's Timeout; t/api/slow_reader.t). */
static void send_text(request_rec *r, int status, const char *text, size_t len)
{
    redeem_pool_gate_release(r);
    set_common_headers(r);
    r->status = status;
    ap_set_content_type(r, "application/json");
    ap_set_content_length(r, (apr_off_t)len);
    if (!r->header_only)
        ap_rwrite(text, (int)len, r);
}

const redeem_failure_t *redeem_response_json(request_rec *r, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text)
        return &redeem_failure_internal;
    send_text(r, status, text, strlen(text));
    free(text);
    return NULL;
}

const redeem_failure_t *redeem_response_written(request_rec *r, int status, redeem_json_out_t *out)
{
    size_t len = 0;
    const char *text = redeem_json_out_end(out, &len);
    if (!text)
        return &redeem_failure_internal;
    send_text(r, status, text, len);
    return NULL;
}

void redeem_response_text(request_rec *r, int status, const char *text, size_t len)
{
    send_text(r, status, text, len);
}

const redeem_failure_t *redeem_response_json_plus(request_rec *r, int status, json_t *body,
                                                  const char *name, const char *value,
                                                  size_t value_len)
{
    char *head = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    size_t head_len = head ? strlen(head) : 0;
    if (head_len < 2 || head[head_len - 1] != '}') {
        free(head);
        return &redeem_failure_internal;
    }
    /* head without its closing brace, then ,"name":value} */
    char *text = apr_psprintf(r->pool, "%.*s%s\"%s\":%.*s}", (int)(head_len - 1), head,
                              head_len > 2 ? "," : "", name, (int)value_len, value);
    free(head);
    send_text(r, status, text, strlen(text));
    return NULL;
}

/* The contract's words for the statuses httpd answers itself. */
static const char *status_message(int status)
{
    switch (status) {
    case HTTP_BAD_REQUEST: return "Malformed request";
    case HTTP_UNAUTHORIZED: return "Authentication required";
    case HTTP_FORBIDDEN: return "Forbidden";
    case HTTP_NOT_FOUND: return "Not found";
    case HTTP_METHOD_NOT_ALLOWED: return "Method not allowed";
    case HTTP_REQUEST_TIME_OUT: return "Request timed out";
    case HTTP_LENGTH_REQUIRED: return "Length required";
    case HTTP_REQUEST_ENTITY_TOO_LARGE: return "Request body too large";
    case HTTP_REQUEST_URI_TOO_LARGE: return "URI too long";
    case HTTP_UNSUPPORTED_MEDIA_TYPE: return "Unsupported media type";
    case HTTP_EXPECTATION_FAILED: return "Expectation failed";
    case HTTP_NOT_IMPLEMENTED: return "Not implemented";
    case HTTP_SERVICE_UNAVAILABLE: return "Service temporarily unavailable";
    default: return "Internal server error";
    }
}

void redeem_response_failure(request_rec *r, const redeem_failure_t *failure)
{
    if (failure == &redeem_failure_answered)
        return;
    const char *message = failure->message;
    if (failure->status == HTTP_UNAUTHORIZED)
        apr_table_setn(r->err_headers_out, "WWW-Authenticate", "Bearer");
    /* The contract wants Retry-After on every 503. */
    int retry_after = failure->retry_after;
    if (retry_after <= 0 && failure->status == HTTP_SERVICE_UNAVAILABLE)
        retry_after = redeem_failure_unavailable.retry_after;
    if (retry_after > 0)
        apr_table_setn(r->err_headers_out, "Retry-After", apr_itoa(r->pool, retry_after));
    /* No message of its own: httpd's words for the status (500's included). */
    if (failure->status == HTTP_INTERNAL_SERVER_ERROR || !message)
        message = status_message(failure->status);
    /* A message that cannot be JSON (it should always be UTF-8) still keeps
     * its status, with httpd's words for it. */
    if (redeem_response_json(r, failure->status, json_pack("{s:s}", "error", message)) &&
        redeem_response_json(r, failure->status,
                             json_pack("{s:s}", "error", status_message(failure->status)))) {
        static const char fallback[] = "{\"error\":\"Internal server error\"}";
        send_text(r, HTTP_INTERNAL_SERVER_ERROR, fallback, sizeof fallback - 1);
    }
}

json_t *redeem_response_page_info(json_t *body, const redeem_page_t *page, apr_int64_t total)
{
    apr_int64_t pages = (total + page->per_page - 1) / page->per_page;
    json_object_set_new(body, "total", json_integer(total));
    json_object_set_new(body, "pages", json_integer(pages));
    json_object_set_new(body, "current_page", json_integer(page->page));
    json_object_set_new(body, "per_page", json_integer(page->per_page));
    return body;
}

int redeem_response_error_document(request_rec *r)
{
    if (!r->handler || strcmp(r->handler, "redeem-error") != 0)
        return DECLINED;
    /* Only as the ErrorDocument of another request; asked for directly it
     * is nothing. The status stays the original one, as the access log has it. */
    int status = r->prev ? r->prev->status : HTTP_NOT_FOUND;
    const char *message = status_message(status);
    /* The contract wants Retry-After on every 503, httpd's own too (a
     * Redirect 503 for maintenance, a module refusing for want of room):
     * the one the refusal set (err_headers_out, which the redirect to this
     * handler keeps), else the module's own. */
    if (status == HTTP_SERVICE_UNAVAILABLE && !apr_table_get(r->err_headers_out, "Retry-After"))
        apr_table_setn(r->err_headers_out, "Retry-After",
                       apr_itoa(r->pool, redeem_failure_unavailable.retry_after));
    if (redeem_response_json(r, status, json_pack("{s:s}", "error", message)))
        return HTTP_INTERNAL_SERVER_ERROR;
    return OK;
}
