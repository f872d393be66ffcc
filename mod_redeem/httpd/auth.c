/* Who is asking: bearer tokens checked and turned into users read afresh
 * from the database. */
#include "httpd/private.h"

const char *redeem_auth_audience(apr_pool_t *p, const redeem_code_keys_t *keys,
                                 const char **audience)
{
    static const char what[] = "mod_redeem token audience v1";
    unsigned char digest[32];
    if (redeem_code_keys_pseudonym(keys, what, sizeof what - 1, digest) != 0)
        return "OpenSSL could not make the tokens' audience";
    char *hex = apr_palloc(p, 2 * REDEEM_AUDIENCE_BYTES + 1);
    for (int i = 0; i < REDEEM_AUDIENCE_BYTES; i++)
        apr_snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    *audience = hex;
    return NULL;
}

const char *redeem_auth_token_for(request_rec *r, const redeem_user_t *user)
{
    redeem_server_conf *conf = redeem_conf(r);
    redeem_token_subject_t subject = {user->id, user->email, user->is_admin,
                                      user->token_generation};
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

const redeem_failure_t *redeem_auth_user_gone(request_rec *r, const char *user_id)
{
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  RDMNO(0203) "token refused: user %s no longer exists, or the token is no "
                              "longer its own (revoked, or another site's)",
                  user_id);
    return redeem_failure(r->pool, HTTP_UNAUTHORIZED, "Invalid or expired token");
}

/* The token's user read afresh into call->caller: 401 when it is gone, or
 * no longer at the token's generation with the token's email. */
static const redeem_failure_t *confirm_user(redeem_call_t *call, apr_int64_t id,
                                            const char *id_text, apr_int64_t generation,
                                            const char *email)
{
    request_rec *r = call->r;
    int found = 0;
    const redeem_failure_t *failure = redeem_user_reads_get(call, id, &found);
    if (failure)
        return failure;
    if (!found)
        return redeem_auth_user_gone(r, id_text);
    if (call->caller.token_generation != generation) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      RDMNO(0208) "token refused: user %s's tokens of generation %" APR_INT64_T_FMT
                                  " were revoked (now %" APR_INT64_T_FMT ")",
                      id_text, generation, call->caller.token_generation);
        return redeem_failure(r->pool, HTTP_UNAUTHORIZED, "Invalid or expired token");
    }
    if (strcmp(call->caller.email, email) != 0) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      RDMNO(0209) "token refused: its email is not user %s's (a token of a site "
                                  "of another database, or the account's email was changed)",
                      id_text);
        return redeem_failure(r->pool, HTTP_UNAUTHORIZED, "Invalid or expired token");
    }
    return NULL;
}

const redeem_failure_t *redeem_auth_caller(redeem_call_t *call, redeem_access_e access)
{
    request_rec *r = call->r;
    apr_size_t len = 0;
    const char *token = bearer_token(r, &len);
    if (!token)
        return redeem_failure(r->pool, HTTP_UNAUTHORIZED, "Authentication required");

    /* The token first: a bad one is 401 whether or not the database is up. */
    redeem_token_holder_t holder = {.user_id = 0};
    const char *why = redeem_token_verify(&call->conf->token, token, len,
                                          (int64_t)apr_time_sec(r->request_time), &holder);
    if (why) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, RDMNO(0202) "token refused: %s", why);
        return redeem_failure(r->pool, HTTP_UNAUTHORIZED, "Invalid or expired token");
    }

    const char *id_text = apr_psprintf(r->pool, "%" APR_INT64_T_FMT, (apr_int64_t)holder.user_id);
    if (access == REDEEM_ACCESS_TOKEN) {
        /* The statements that follow check the account, its generation and
         * its email themselves (SQL_REDEEM, SQL_AUDIT_INSERT). */
        call->caller.id = holder.user_id;
        call->caller.id_text = id_text;
        call->caller.email = apr_pstrdup(r->pool, holder.email);
        call->caller.token_generation = holder.generation;
        r->user = (char *)id_text; /* for the access log */
        return NULL;
    }
    /* Reading the user takes a pooled connection, which the request keeps
     * until it ends: its body first, however slowly it comes. A body that
     * failed (over the cap, cut short, stalled) is answered only once the
     * caller is found allowed: 401 and 403 come first. Its read has had the
     * connection closed after the answer where the body was not all read
     * (request.c). One that httpd answered itself (over LimitRequestBody)
     * leaves nothing to say. */
    const redeem_failure_t *body_failure = redeem_request_read_ahead(r);
    if (body_failure == &redeem_failure_answered)
        return body_failure;
    const redeem_failure_t *failure =
        confirm_user(call, holder.user_id, id_text, holder.generation, holder.email);
    if (failure)
        return failure;
    r->user = apr_pstrdup(r->pool, call->caller.id_text); /* for the access log */

    /* Admin rights as the database says now, whatever the token claims. */
    if (access == REDEEM_ACCESS_ADMIN && !call->caller.is_admin)
        return redeem_failure(r->pool, HTTP_FORBIDDEN, "Admin access required");
    return body_failure;
}

const redeem_failure_t *redeem_auth_confirm_token_user(redeem_call_t *call)
{
    const redeem_user_t token = call->caller;
    return confirm_user(call, token.id, token.id_text, token.token_generation, token.email);
}
