/* The audit trail: for every code generation, redemption attempt and admin
 * read of another user's subscription, a row in audit_log and a line in the
 * error log. */
#include "httpd/private.h"

void redeem_audit_log_line(request_rec *r, const char *event, const char *actor, const char *target,
                           const char *outcome)
{
    const char *request_id = redeem_request_id(r);
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  RDMNO(0401) "audit: event=%s actor=%s target=%s client=%s outcome=%s request=%s",
                  event, actor ? actor : "-", target ? target : "-", r->useragent_ip, outcome,
                  request_id ? request_id : "-");
}

const redeem_failure_t *redeem_audit_write_row(request_rec *r, redeem_db_t *db, const char *event,
                                               const redeem_user_t *actor, const char *target,
                                               const char *outcome, int answer_stands)
{
    const char *args[AUDIT_INSERT_NARGS] = {
        [ARG_AUDIT_EVENT] = event,
        [ARG_AUDIT_ACTOR] = actor->id_text,
        [ARG_AUDIT_TARGET] = target,
        [ARG_AUDIT_CLIENT] = r->useragent_ip,
        [ARG_AUDIT_OUTCOME] = outcome,
        [ARG_AUDIT_REQUEST_ID] = redeem_request_id(r),
        [ARG_AUDIT_ACTOR_TOKEN_GENERATION] =
            apr_psprintf(r->pool, "%" APR_INT64_T_FMT, actor->token_generation),
        [ARG_AUDIT_ACTOR_EMAIL] = actor->email,
    };
    redeem_rows_t rows;
    const redeem_failure_t *failure = redeem_db_query(db, STMT_AUDIT_INSERT, args, &rows);
    if (!failure && rows.nrows != 1)
        failure = &redeem_failure_internal;
    if (failure) {
        redeem_audit_log_line(r, event, actor->id_text, target, answer_stands ? outcome : "failed");
        if (!answer_stands)
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          RDMNO(0402) "audit row for event %s could not be written: the request "
                                      "fails with it",
                          event);
        return failure;
    }
    /* The actor's account was deleted, or its tokens revoked, after its
     * token was read: no row. */
    const char *actor_here = redeem_db_cell(&rows, 0, COL_AUDIT_ACTOR_HERE);
    if (!actor_here || strcmp(actor_here, "t") != 0) {
        if (answer_stands)
            redeem_audit_log_line(r, event, actor->id_text, target, outcome);
        return redeem_auth_user_gone(r, actor->id_text);
    }
    redeem_audit_log_line(r, event, actor->id_text, target, outcome);
    return NULL;
}
