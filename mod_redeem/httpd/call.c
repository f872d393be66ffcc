/* One request's way to the database: the connection is opened on first use
 * and, before any handler sees it, the configured admin account ensured. */
#include "httpd/private.h"

/* Not the request's start: the body is read before the database is first
 * needed, and a client slow to send it (within mod_reqtimeout's limits)
 * must not use up the time the database is given. On the monotonic clock,
 * as every deadline made from it: a step of the wall clock must neither end
 * the request's waits at once nor stretch them past RedeemDBTimeout. */
apr_time_t redeem_call_db_start(redeem_call_t *call)
{
    if (!call->db_since)
        call->db_since = redeem_clock_monotonic();
    return call->db_since;
}

const redeem_failure_t *redeem_call_db(redeem_call_t *call)
{
    return redeem_call_db_since(call, redeem_call_db_start(call));
}

const redeem_failure_t *redeem_call_db_since(redeem_call_t *call, apr_time_t since)
{
    if (call->db)
        return NULL;
    redeem_db_t *db;
    const redeem_failure_t *failure = redeem_db_open(call->r, since, &db);
    if (!failure)
        failure = redeem_admin_ensure(call->r, db);
    if (!failure)
        call->db = db;
    return failure;
}
