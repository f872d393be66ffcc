/* GET /api/health: up, and able to reach the database. */
#include "redeem_private.h"

int redeem_handle_health(request_rec *r)
{
    redeem_db_t *db;
    redeem_rows_t rows;
    int status = redeem_db_open(r, &db);
    if (status == OK)
        status = redeem_db_query(db, STMT_PING, 0, NULL, &rows);
    if (status != OK) {
        apr_table_setn(r->err_headers_out, "Retry-After", "5");
        return redeem_send_json(
            r, HTTP_SERVICE_UNAVAILABLE,
            json_pack("{s:s, s:s}", "status", "unhealthy", "message", "Database unavailable"));
    }
    return redeem_send_json(r, HTTP_OK,
                            json_pack("{s:s, s:s}", "status", "healthy", "message",
                                      "User Registration API is running"));
}
