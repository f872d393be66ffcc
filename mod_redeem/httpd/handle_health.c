/* GET /api/health: up, and able to reach the database. */
#include "httpd/private.h"

const redeem_failure_t *redeem_handle_health(redeem_call_t *call)
{
    request_rec *r = call->r;
    redeem_rows_t rows;
    const redeem_failure_t *failure = redeem_call_db(call);
    if (!failure)
        failure = redeem_db_query(call->db, STMT_PING, NULL, &rows);
    if (failure) {
        apr_table_setn(r->err_headers_out, "Retry-After", "5");
        return redeem_response_json(
            r, HTTP_SERVICE_UNAVAILABLE,
            json_pack("{s:s, s:s}", "status", "unhealthy", "message", "Database unavailable"));
    }
    return redeem_response_json(r, HTTP_OK,
                                json_pack("{s:s, s:s}", "status", "healthy", "message",
                                          "User Registration API is running"));
}
