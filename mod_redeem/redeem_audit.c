/* The audit trail: a row in audit_log and an info line in the error log for
 * every code generation, redemption attempt and admin read of another
 * user's subscription. */
#include "redeem_private.h"

const char *redeem_request_id(request_rec *r)
{
    /* mod_unique_id's UNIQUE_ID when loaded, else the request's log id. */
    const char *id = apr_table_get(r->subprocess_env, "UNIQUE_ID");
    return id ? id : r->log_id;
}

void redeem_audit_log(request_rec *r, const char *event, const char *actor, const char *target,
                      const char *outcome)
{
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  RDMNO(0401) "audit: event=%s actor=%s target=%s client=%s outcome=%s request=%s",
                  event, actor ? actor : "-", target ? target : "-", r->useragent_ip, outcome,
                  redeem_request_id(r) ? redeem_request_id(r) : "-");
}

void redeem_audit_record(request_rec *r, redeem_db_t *db, const char *event, const char *actor,
                         const char *target, const char *outcome)
{
    const char *args[] = {event, actor, target, r->useragent_ip, outcome, redeem_request_id(r)};
    redeem_audit_log(r, event, actor, target, outcome);
    if (redeem_db_exec(db, STMT_AUDIT_INSERT, 6, args, NULL) != OK)
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      RDMNO(0402) "audit row for event %s could not be written", event);
}
