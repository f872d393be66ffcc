/* GET /api/subscription and GET /subscription/{user_id}. */
#include "httpd/private.h"

const redeem_failure_t *redeem_handle_own_subscription(redeem_call_t *call)
{
    const redeem_user_t *user = &call->caller;
    redeem_json_out_t out;
    redeem_json_out_begin(&out, call->r->pool);
    redeem_json_out_int(&out, "user_id", user->id);
    redeem_json_out_string(&out, "email", user->email);
    redeem_json_out_bool(&out, "is_subscribed", user->is_subscribed);
    redeem_json_out_string_or_null(&out, "subscription_expires_at", user->subscription_expires_at);
    return redeem_response_written(call->r, HTTP_OK, &out);
}

static const redeem_failure_t *send_status(request_rec *r, const redeem_user_t *user)
{
    const char *state = user->is_subscribed             ? "active"
                        : user->subscription_expires_at ? "expired"
                                                        : "inactive";
    redeem_json_out_t out;
    redeem_json_out_begin(&out, r->pool);
    redeem_json_out_int(&out, "user_id", user->id);
    redeem_json_out_string(&out, "email", user->email);
    redeem_json_out_bool(&out, "is_subscribed", user->is_subscribed);
    redeem_json_out_string(&out, "subscription_status", state);
    redeem_json_out_string_or_null(&out, "subscription_expires_at", user->subscription_expires_at);
    redeem_json_out_int(&out, "days_remaining", user->is_subscribed ? user->days_remaining : 0);
    redeem_json_out_string(&out, "created_at", user->created_at);
    return redeem_response_written(r, HTTP_OK, &out);
}

const redeem_failure_t *redeem_handle_subscription_of(redeem_call_t *call)
{
    request_rec *r = call->r;
    const redeem_user_t *caller = &call->caller;
    redeem_user_t subject;
    redeem_rows_t rows;
    int64_t wanted;
    const redeem_failure_t *failure;
    if (redeem_text_parse_int64(strrchr(r->uri, '/') + 1, 1, INT64_MAX, &wanted) != 0)
        return redeem_failure(r->pool, HTTP_BAD_REQUEST, "Invalid user id");
    if (wanted == caller->id)
        return send_status(r, caller);
    if (!caller->is_admin)
        return redeem_failure(r->pool, HTTP_FORBIDDEN,
                              "Access denied. You can only check your own subscription status");

    const char *args[USER_BY_ID_NARGS] = {
        [ARG_USER_BY_ID_ID] = apr_psprintf(r->pool, "%" APR_INT64_T_FMT, (apr_int64_t)wanted)};
    if ((failure = redeem_call_db(call)) ||
        (failure = redeem_db_query(call->db, STMT_USER_BY_ID, args, &rows)))
        return failure;
    const char *target = apr_pstrcat(r->pool, "user ", args[ARG_USER_BY_ID_ID], NULL);
    /* Another user's data goes out only with its audit row written. */
    if ((failure = redeem_audit_write_row(r, call->db, "subscription_read", caller, target,
                                          rows.nrows ? "success" : "not_found", 0)))
        return failure;
    if (rows.nrows == 0)
        return redeem_failure(r->pool, HTTP_NOT_FOUND, "User not found");
    redeem_user_from_row(&rows, 0, &subject);
    return send_status(r, &subject);
}
