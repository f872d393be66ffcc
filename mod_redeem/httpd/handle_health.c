/* GET /api/health: up, and able to reach the database. Answered from this
 * child's recent state while a statement succeeded within the last half
 * second and none failed since; else by asking the database, the question
 * with a deadline of half a second. So a database that stops answering is
 * reported within a second, and a busy server adds no query per health check. */
#include "httpd/private.h"

#define FRESH apr_time_from_msec(500)
#define HEALTH_DB_TIMEOUT_MS 500

static const char healthy_body[] =
    "{\"status\":\"healthy\",\"message\":\"User Registration API is running\"}";
static const char unhealthy_body[] =
    "{\"status\":\"unhealthy\",\"message\":\"Database unavailable\"}";

static const redeem_failure_t *answer(request_rec *r, int healthy)
{
    if (healthy)
        redeem_response_text(r, HTTP_OK, healthy_body, sizeof healthy_body - 1);
    else {
        apr_table_setn(r->err_headers_out, "Retry-After", "5");
        redeem_response_text(r, HTTP_SERVICE_UNAVAILABLE, unhealthy_body,
                             sizeof unhealthy_body - 1);
    }
    return NULL;
}

const redeem_failure_t *redeem_handle_health(redeem_call_t *call)
{
    request_rec *r = call->r;
    redeem_child_t *child = call->conf->child;
    apr_int64_t ok_at = __atomic_load_n(&child->db_ok_at, __ATOMIC_RELAXED);
    apr_int64_t failed_at = __atomic_load_n(&child->db_failed_at, __ATOMIC_RELAXED);
    if (!__atomic_load_n(&child->db_retry_at, __ATOMIC_RELAXED) && ok_at > failed_at &&
        redeem_clock_monotonic() - ok_at < FRESH)
        return answer(r, 1);
    redeem_rows_t rows;
    /* Setting up a connection (after an outage) has the usual deadline; the
     * question itself, half a second. */
    const redeem_failure_t *failure = redeem_call_db(call);
    if (!failure) {
        redeem_db_limit(call->db, apr_time_from_msec(HEALTH_DB_TIMEOUT_MS));
        failure = redeem_db_query(call->db, STMT_PING, NULL, &rows);
    }
    return answer(r, failure == NULL);
}
