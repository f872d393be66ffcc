/* Failure values: what went wrong, for the router to answer; and how often
 * an overload's warnings are logged. */
#include "httpd/private.h"

const redeem_failure_t redeem_failure_internal = {HTTP_INTERNAL_SERVER_ERROR,
                                                  "Internal server error", 0};
const redeem_failure_t redeem_failure_unavailable = {HTTP_SERVICE_UNAVAILABLE,
                                                     "Service temporarily unavailable", 5};
const redeem_failure_t redeem_failure_answered = {AP_FILTER_ERROR, NULL, 0};

const redeem_failure_t *redeem_failure_reading(apr_pool_t *p, int status)
{
    if (status == AP_FILTER_ERROR)
        return &redeem_failure_answered;
    if (!ap_is_HTTP_ERROR(status))
        status = HTTP_BAD_REQUEST;
    return redeem_failure(p, status,
                          status == HTTP_REQUEST_ENTITY_TOO_LARGE ? "Request body too large"
                          : status == HTTP_REQUEST_TIME_OUT       ? "Request body timed out"
                                                                  : "Malformed request body");
}

const redeem_failure_t redeem_failure_key_taken = {HTTP_INTERNAL_SERVER_ERROR,
                                                   "Internal server error", 0};
const redeem_failure_t redeem_failure_email_too_long = {
    HTTP_BAD_REQUEST, "Invalid email: longer than 254 characters once normalized", 0};
const redeem_failure_t redeem_failure_actor_gone = {HTTP_UNAUTHORIZED, "Invalid or expired token",
                                                    0};
const redeem_failure_t redeem_failure_actor_not_admin = {HTTP_FORBIDDEN, "Admin access required",
                                                         0};

const redeem_failure_t *redeem_failure(apr_pool_t *p, int status, const char *message)
{
    redeem_failure_t *failure = apr_palloc(p, sizeof *failure);
    failure->status = status;
    failure->message = message;
    failure->retry_after = 0;
    return failure;
}

int redeem_log_level_throttled(request_rec *r, redeem_log_throttle_t *throttle, int level,
                               const char **note)
{
    uint32_t held_back;
    *note = "";
    if (!redeem_log_throttle_due(throttle, redeem_clock_monotonic(), REDEEM_LOG_EVERY, &held_back))
        return APLOG_DEBUG;
    if (held_back)
        *note = apr_psprintf(r->pool,
                             " (and %" APR_UINT64_T_FMT " more in this child since the last "
                             "such line, logged at debug level)",
                             (apr_uint64_t)held_back);
    return level;
}
