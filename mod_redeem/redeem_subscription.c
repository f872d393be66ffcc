/* GET /api/subscription and GET /subscription/{user_id}. */
#include "redeem_private.h"

int redeem_handle_own_subscription(request_rec *r)
{
    redeem_db_t *db;
    redeem_user_t user;
    if (redeem_authenticate(r, REDEEM_USER, &db, &user) != OK)
        return OK;
    return redeem_send_json(r, HTTP_OK,
                            json_pack("{s:I, s:s, s:b, s:s?}", "user_id", (json_int_t)user.id,
                                      "email", user.email, "is_subscribed", user.is_subscribed,
                                      "subscription_expires_at", user.subscription_expires_at));
}

static json_t *status_json(const redeem_user_t *user)
{
    const char *state = user->is_subscribed             ? "active"
                        : user->subscription_expires_at ? "expired"
                                                        : "inactive";
    return json_pack("{s:I, s:s, s:b, s:s, s:s?, s:I, s:s}", "user_id", (json_int_t)user->id,
                     "email", user->email, "is_subscribed", user->is_subscribed,
                     "subscription_status", state, "subscription_expires_at",
                     user->subscription_expires_at, "days_remaining",
                     (json_int_t)(user->is_subscribed ? user->days_remaining : 0), "created_at",
                     user->created_at);
}

int redeem_handle_subscription_of(request_rec *r)
{
    redeem_db_t *db;
    redeem_user_t caller, subject;
    redeem_rows_t rows;
    apr_int64_t wanted;
    const char *id_text = strrchr(r->uri, '/') + 1;
    int status;
    if (redeem_authenticate(r, REDEEM_USER, &db, &caller) != OK)
        return OK;
    if (redeem_parse_int64(id_text, 1, APR_INT64_MAX, &wanted) != 0)
        return redeem_send_error(r, HTTP_BAD_REQUEST, "Invalid user id");
    if (wanted == caller.id)
        return redeem_send_json(r, HTTP_OK, status_json(&caller));
    if (!caller.is_admin)
        return redeem_send_error(r, HTTP_FORBIDDEN,
                                 "Access denied. You can only check your own subscription status");

    const char *args[] = {apr_psprintf(r->pool, "%" APR_INT64_T_FMT, wanted)};
    if ((status = redeem_db_query(db, STMT_USER_BY_ID, 1, args, &rows)) != OK)
        return redeem_send_db_error(r, status);
    const char *target = apr_pstrcat(r->pool, "user ", args[0], NULL);
    redeem_audit_record(r, db, "subscription_read", caller.id_text, target,
                        rows.nrows ? "success" : "not_found");
    if (rows.nrows == 0)
        return redeem_send_error(r, HTTP_NOT_FOUND, "User not found");
    redeem_user_from_row(&rows, 0, &subject);
    return redeem_send_json(r, HTTP_OK, status_json(&subject));
}
