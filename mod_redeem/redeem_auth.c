/* Who is asking: bearer tokens checked, users read from the database, and
 * the bound on concurrent password hashing. */
#include "redeem_private.h"

void redeem_user_from_row(const redeem_rows_t *rows, int row, redeem_user_t *user)
{
    user->id_text = redeem_cell(rows, row, 0);
    user->id = apr_atoi64(user->id_text);
    user->email = redeem_cell(rows, row, 1);
    user->is_admin = redeem_cell(rows, row, 2) && redeem_cell(rows, row, 2)[0] == 't';
    user->created_at = redeem_cell(rows, row, 3);
    user->subscription_expires_at = redeem_cell(rows, row, 4);
    user->is_subscribed = redeem_cell(rows, row, 5) && redeem_cell(rows, row, 5)[0] == 't';
    user->days_remaining = redeem_cell(rows, row, 6) ? apr_atoi64(redeem_cell(rows, row, 6)) : 0;
}

json_t *redeem_user_json(const redeem_user_t *user)
{
    return json_pack("{s:I, s:s, s:s}", "id", (json_int_t)user->id, "email", user->email,
                     "created_at", user->created_at);
}

const char *redeem_token_for(request_rec *r, const redeem_user_t *user)
{
    redeem_server_conf *conf = redeem_conf(r);
    redeem_token_subject_t subject = {user->id, user->email, user->is_admin};
    char *token = NULL;
    const char *why = redeem_token_issue(r->pool, &conf->token, &subject,
                                         (int64_t)apr_time_sec(r->request_time), &token);
    if (why) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, RDMNO(0201) "cannot issue a token: %s", why);
        return NULL;
    }
    return token;
}

/* The token of "Authorization: Bearer <token>", or NULL. A repeated header
 * arrives merged ("Bearer a, Bearer b") and fails the token's shape check. */
static const char *bearer_token(request_rec *r, apr_size_t *len)
{
    const char *header = apr_table_get(r->headers_in, "Authorization");
    if (!header || strncasecmp(header, "Bearer ", 7) != 0)
        return NULL;
    const char *token = header + 7;
    while (*token == ' ')
        token++;
    *len = strlen(token);
    return *len ? token : NULL;
}

int redeem_authenticate(request_rec *r, redeem_access_e access, redeem_db_t **db,
                        redeem_user_t *user)
{
    redeem_server_conf *conf = redeem_conf(r);
    apr_size_t len = 0;
    const char *token = bearer_token(r, &len);
    if (!token)
        return redeem_refuse(r, HTTP_UNAUTHORIZED, "Authentication required");

    /* The token first: a bad one is 401 whether or not the database is up. */
    int64_t user_id = 0;
    const char *why = redeem_token_verify(&conf->token, token, len,
                                          (int64_t)apr_time_sec(r->request_time), &user_id);
    if (why) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, RDMNO(0202) "token refused: %s", why);
        return redeem_refuse(r, HTTP_UNAUTHORIZED, "Invalid or expired token");
    }

    redeem_rows_t rows;
    const char *args[] = {apr_psprintf(r->pool, "%" APR_INT64_T_FMT, (apr_int64_t)user_id)};
    int status = redeem_db_open(r, db);
    if (status == OK)
        status = redeem_db_query(*db, STMT_USER_BY_ID, 1, args, &rows);
    if (status != OK) {
        redeem_send_db_error(r, status);
        return status;
    }
    if (rows.nrows != 1) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      RDMNO(0203) "token refused: user %s no longer exists", args[0]);
        return redeem_refuse(r, HTTP_UNAUTHORIZED, "Invalid or expired token");
    }
    redeem_user_from_row(&rows, 0, user);
    r->user = apr_pstrdup(r->pool, user->id_text); /* for the access log */

    /* Admin rights as the database says now, whatever the token claims. */
    if (access == REDEEM_ADMIN && !user->is_admin)
        return redeem_refuse(r, HTTP_FORBIDDEN, "Admin access required");
    return OK;
}

int redeem_with_hash_slot(request_rec *r)
{
    redeem_server_conf *conf = redeem_conf(r);
    redeem_child_t *child = conf->child;
    apr_time_t deadline = apr_time_now() + conf->hash_wait;
    int busy = 0;
    /* A burst waits its turn for a moment; sustained overload gets 503. */
    apr_thread_mutex_lock(child->hash_lock);
    while (child->hashes_in_flight >= conf->hash_concurrency) {
        apr_time_t now = apr_time_now();
        if (now >= deadline) {
            busy = 1;
            break;
        }
        apr_thread_cond_timedwait(child->hash_freed, child->hash_lock, deadline - now);
    }
    if (!busy)
        child->hashes_in_flight++;
    apr_thread_mutex_unlock(child->hash_lock);
    if (busy) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      RDMNO(0204) "all %d password hashing slots stayed busy: answering 503",
                      conf->hash_concurrency);
        apr_table_setn(r->err_headers_out, "Retry-After", "1");
        return HTTP_SERVICE_UNAVAILABLE;
    }
    return OK;
}

void redeem_release_hash_slot(request_rec *r)
{
    redeem_child_t *child = redeem_conf(r)->child;
    apr_thread_mutex_lock(child->hash_lock);
    child->hashes_in_flight--;
    apr_thread_cond_signal(child->hash_freed);
    apr_thread_mutex_unlock(child->hash_lock);
}
