/* Database access: only through mod_dbd's pool, only prepared statements
 * with bound parameters.
 *
 * mod_dbd prepares labelled statements once per connection and never again,
 * so after a PostgreSQL restart (the driver's PQreset reconnects the same
 * handle) they are gone. We prepare ours ourselves and remember for which
 * backend process we did: a new backend gets the schema check and a fresh
 * set of statements before its first use. A connection the server closed
 * while it sat in the pool is noticed and reconnected before it is used. */
#include "redeem_private.h"

#include <apr_atomic.h>
#include <libpq-fe.h>
#include <poll.h>

#define REDEEM_SCHEMA_VERSION 2
static const char *const migrations[] = {"001_accounts.sql", "002_codes.sql"};

#define USER_COLUMNS REDEEM_USER_COLUMNS
#define CODE_COLUMNS                                                                               \
    "id, encode(code_hash, 'hex'), encode(code_sealed, 'hex'), used_at IS NOT NULL,"               \
    " api_ts(created_at), api_ts(expires_at), api_ts(used_at), used_by, batch_id"

static const char *const statement_sql[STMT_COUNT_] = {
    [STMT_USER_INSERT] = "INSERT INTO users (email, password_hash) VALUES (%s, %s) "
                         "ON CONFLICT DO NOTHING RETURNING " USER_COLUMNS,
    [STMT_USER_BY_EMAIL] = "SELECT " USER_COLUMNS ", password_hash FROM users "
                           "WHERE lower(email) = lower(%s)",
    [STMT_USER_BY_ID] = "SELECT " USER_COLUMNS " FROM users WHERE id = %lld",
    [STMT_USERS_PAGE] = "SELECT " USER_COLUMNS " FROM users ORDER BY id LIMIT %lld OFFSET %lld",
    [STMT_ROW_COUNT] = "SELECT n FROM row_counts WHERE name = %s",
    [STMT_ADMIN_PROMOTE] = "UPDATE users SET is_admin = true WHERE lower(email) = lower(%s) "
                           "RETURNING id",
    [STMT_ADMIN_INSERT] = "INSERT INTO users (email, password_hash, is_admin) "
                          "VALUES (%s, %s, true) ON CONFLICT DO NOTHING RETURNING id",
    [STMT_PING] = "SELECT 1",
    /* The whole batch in one statement: all or nothing, audited with it. */
    [STMT_CODES_INSERT] =
        "WITH inserted AS ("
        " INSERT INTO redeem_codes (code_hash, code_sealed, batch_id, duration_months, expires_at)"
        " SELECT decode(h, 'hex'), decode(s, 'hex'), %s::uuid, %d, %s::timestamptz"
        " FROM unnest(%s::text[], %s::text[]) AS t(h, s) RETURNING expires_at),"
        " audit AS ("
        " INSERT INTO audit_log (event, actor_id, target, client_addr, outcome, request_id)"
        " SELECT 'codes_generated', %lld, %s, %s, 'success', %s)"
        " SELECT count(*), api_ts(min(expires_at)) FROM inserted",
    [STMT_CODES_PAGE] = "SELECT " CODE_COLUMNS " FROM redeem_codes WHERE id > %lld"
                        " ORDER BY id LIMIT %lld OFFSET %lld",
    [STMT_CODES_PAGE_USED] = "SELECT " CODE_COLUMNS " FROM redeem_codes"
                             " WHERE used_at IS NOT NULL AND id > %lld"
                             " ORDER BY id LIMIT %lld OFFSET %lld",
    [STMT_CODES_PAGE_UNUSED] = "SELECT " CODE_COLUMNS " FROM redeem_codes"
                               " WHERE used_at IS NULL AND id > %lld"
                               " ORDER BY id LIMIT %lld OFFSET %lld",
    /* A batch holds at most RedeemMaxCodesPerRequest rows: filtering inside it is bounded. */
    [STMT_CODES_PAGE_BATCH] = "SELECT " CODE_COLUMNS " FROM redeem_codes"
                              " WHERE batch_id = %s::uuid"
                              " AND (%s::boolean IS NULL OR (used_at IS NOT NULL) = %s::boolean)"
                              " AND id > %lld ORDER BY id LIMIT %lld OFFSET %lld",
    [STMT_CODES_COUNT_ALL] = "SELECT coalesce(sum(total), 0), coalesce(sum(used), 0)"
                             " FROM code_counts",
    [STMT_CODES_COUNT_BATCH] = "SELECT count(*), count(used_at) FROM redeem_codes"
                               " WHERE batch_id = %s::uuid",
    /* One statement: claim the code if still usable, extend the subscription
     * from the later of now and the current expiry, write the audit row, and
     * say what happened. Under READ COMMITTED a concurrent claim of the same
     * code makes our UPDATE find used_at set (no row: 409), and concurrent
     * extensions of one user re-read the updated row (no lost month). */
    [STMT_REDEEM] =
        "WITH target AS ("
        " SELECT id, used_at, expires_at FROM redeem_codes WHERE code_hash = decode(%s, 'hex')),"
        " claimed AS ("
        " UPDATE redeem_codes c SET used_at = now(), used_by = %lld FROM target t"
        " WHERE c.id = t.id AND c.used_at IS NULL"
        " AND (c.expires_at IS NULL OR c.expires_at > now())"
        " RETURNING c.id, c.duration_months),"
        " extended AS ("
        " UPDATE users u SET subscription_expires_at ="
        " greatest(u.subscription_expires_at, now()) + make_interval(months => cl.duration_months)"
        " FROM claimed cl WHERE u.id = %lld RETURNING u.subscription_expires_at),"
        " outcome AS ("
        " SELECT CASE WHEN EXISTS (SELECT FROM extended) THEN 'success'"
        " WHEN NOT EXISTS (SELECT FROM target) THEN 'not_found'"
        " WHEN (SELECT used_at FROM target) IS NULL"
        " AND (SELECT expires_at FROM target) <= now() THEN 'expired'"
        " ELSE 'used' END AS result),"
        " audit AS ("
        " INSERT INTO audit_log (event, actor_id, target, client_addr, outcome, request_id)"
        " SELECT 'redeem', %lld, (SELECT 'code ' || id FROM target), %s, result, %s FROM outcome)"
        " SELECT result, (SELECT api_ts(subscription_expires_at) FROM extended), api_ts(now()),"
        " (SELECT id FROM target) FROM outcome",
    [STMT_AUDIT_INSERT] =
        "INSERT INTO audit_log (event, actor_id, target, client_addr, outcome, request_id)"
        " VALUES (%s, %lld, %s, %s, %s, %s)",
};

/* Statements that change nothing: safe to run again on a fresh connection
 * when the old one died under them (it never answered, so it may never have
 * run them; for these that does not matter). */
static int statement_read_only(redeem_stmt_e stmt)
{
    switch (stmt) {
    case STMT_USER_BY_EMAIL:
    case STMT_USER_BY_ID:
    case STMT_USERS_PAGE:
    case STMT_ROW_COUNT:
    case STMT_PING:
    case STMT_CODES_PAGE:
    case STMT_CODES_PAGE_USED:
    case STMT_CODES_PAGE_UNUSED:
    case STMT_CODES_PAGE_BATCH:
    case STMT_CODES_COUNT_ALL:
    case STMT_CODES_COUNT_BATCH: return 1;
    default: return 0;
    }
}

/* What we know of one pooled connection; lives in the connection's pool. */
typedef struct {
    int backend_pid;
    apr_pool_t *statement_pool; /* cleared when the backend changes */
    apr_dbd_prepared_t *statements[STMT_COUNT_];
} redeem_conn_t;

struct redeem_db {
    request_rec *r;
    ap_dbd_t *dbd;
    redeem_conn_t *conn;
};

static int idle_socket_readable(PGconn *pg)
{
    struct pollfd pfd = {PQsocket(pg), POLLIN, 0};
    return pfd.fd < 0 || poll(&pfd, 1, 0) != 0;
}

static int connection_alive(ap_dbd_t *dbd)
{
    PGconn *pg = apr_dbd_native_handle(dbd->driver, dbd->handle);
    return pg && PQstatus(pg) == CONNECTION_OK;
}

/* 503 when the database went away, 500 for anything else; logged either way. */
static int db_failure(request_rec *r, ap_dbd_t *dbd, const char *what, int rv)
{
    const char *detail = apr_dbd_error(dbd->driver, dbd->handle, rv);
    /* PostgreSQL's DETAIL may quote a failing row, password hash included:
     * the log gets the primary message only. */
    const char *cut = detail ? strstr(detail, "\nDETAIL:") : NULL;
    if (cut)
        detail = apr_pstrmemdup(r->pool, detail, (apr_size_t)(cut - detail));
    int alive = connection_alive(dbd);
    ap_log_rerror(APLOG_MARK, alive ? APLOG_ERR : APLOG_WARNING, 0, r,
                  RDMNO(0101) "database %s failed%s: %s", what, alive ? "" : " (connection lost)",
                  detail ? detail : "no detail");
    return alive ? HTTP_INTERNAL_SERVER_ERROR : HTTP_SERVICE_UNAVAILABLE;
}

static int check_schema(request_rec *r, ap_dbd_t *dbd)
{
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    int rv = apr_dbd_select(dbd->driver, r->pool, dbd->handle, &res,
                            "SELECT coalesce(max(version), 0) FROM schema_migrations", 1);
    if (rv != 0) {
        if (!connection_alive(dbd))
            return db_failure(r, dbd, "schema check", rv);
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      RDMNO(0102) "database has no mod_redeem schema (%s): apply sql/%s",
                      apr_dbd_error(dbd->driver, dbd->handle, rv), migrations[0]);
        return HTTP_SERVICE_UNAVAILABLE;
    }
    const char *text = NULL;
    /* Copied out: reading past the last row frees the result. */
    if (apr_dbd_get_row(dbd->driver, r->pool, res, &row, -1) == 0)
        text = apr_pstrdup(r->pool, apr_dbd_get_entry(dbd->driver, row, 0));
    while (row && apr_dbd_get_row(dbd->driver, r->pool, res, &row, -1) == 0)
        ;
    apr_int64_t version = text ? apr_atoi64(text) : 0;
    if (version == REDEEM_SCHEMA_VERSION)
        return OK;
    if (version < REDEEM_SCHEMA_VERSION)
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      RDMNO(0103) "database schema is at version %" APR_INT64_T_FMT
                                  ", mod_redeem needs %d: apply sql/%s and the migrations after it",
                      version, REDEEM_SCHEMA_VERSION, migrations[version]);
    else
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      RDMNO(0104) "database schema is at version %" APR_INT64_T_FMT
                                  ", newer than this mod_redeem (%d): upgrade the module",
                      version, REDEEM_SCHEMA_VERSION);
    return HTTP_SERVICE_UNAVAILABLE;
}

/* Drops statements of ours an earlier, interrupted attempt left on this
 * backend, so that preparing can always start from nothing. */
static int deallocate_leftovers(request_rec *r, ap_dbd_t *dbd)
{
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    apr_array_header_t *names = apr_array_make(r->pool, 4, sizeof(const char *));
    int rv =
        apr_dbd_select(dbd->driver, r->pool, dbd->handle, &res,
                       "SELECT name FROM pg_prepared_statements WHERE name LIKE 'redeem\\_%'", 1);
    if (rv != 0)
        return db_failure(r, dbd, "listing of prepared statements", rv);
    while (apr_dbd_get_row(dbd->driver, r->pool, res, &row, -1) == 0)
        APR_ARRAY_PUSH(names, const char *) =
            apr_pstrdup(r->pool, apr_dbd_get_entry(dbd->driver, row, 0));
    for (int i = 0; i < names->nelts; i++) {
        int affected = 0;
        const char *name = APR_ARRAY_IDX(names, i, const char *);
        rv = apr_dbd_query(dbd->driver, dbd->handle, &affected,
                           apr_psprintf(r->pool, "DEALLOCATE \"%s\"", name));
        if (rv != 0)
            return db_failure(r, dbd, "DEALLOCATE", rv);
    }
    return OK;
}

static int prepare_statements(request_rec *r, ap_dbd_t *dbd, redeem_conn_t *conn)
{
    int status = deallocate_leftovers(r, dbd);
    if (status != OK)
        return status;
    apr_pool_clear(conn->statement_pool);
    for (int i = 0; i < STMT_COUNT_; i++) {
        /* The driver fills a non-NULL *statement in place: never hand it the
         * old one, which lived in the pool just cleared. */
        conn->statements[i] = NULL;
        /* Lowercase labels: PREPARE folds case, PQexecPrepared does not. */
        const char *label = apr_psprintf(conn->statement_pool, "redeem_%d", i);
        int rv = apr_dbd_prepare(dbd->driver, conn->statement_pool, dbd->handle, statement_sql[i],
                                 label, &conn->statements[i]);
        if (rv != 0)
            return db_failure(r, dbd, apr_psprintf(r->pool, "prepare of statement %d", i), rv);
    }
    return OK;
}

/* Reconnects a connection the server closed and, on a new backend, checks
 * the schema and prepares our statements. */
static int make_ready(request_rec *r, ap_dbd_t *dbd, redeem_conn_t *conn)
{
    PGconn *pg = apr_dbd_native_handle(dbd->driver, dbd->handle);
    for (int attempt = 0;; attempt++) {
        /* A pooled connection whose server went away while it sat idle
         * (restart, failover, pg_terminate_backend) has the server's goodbye
         * and an EOF waiting on its socket; an idle healthy one has nothing
         * to read. Reconnect it now rather than fail a statement. */
        if (pg && (PQstatus(pg) != CONNECTION_OK || idle_socket_readable(pg))) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                          RDMNO(0106) "pooled database connection was closed by the server: "
                                      "reconnecting");
            conn->backend_pid = 0; /* a new backend may even get the old pid */
            PQreset(pg);
            if (PQstatus(pg) != CONNECTION_OK) {
                ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, RDMNO(0107) "reconnect failed: %s",
                              PQerrorMessage(pg));
                return HTTP_SERVICE_UNAVAILABLE;
            }
        }
        int pid = pg ? PQbackendPID(pg) : 0;
        if (conn->backend_pid == pid && pid != 0)
            return OK;
        int status = check_schema(r, dbd);
        if (status == OK)
            status = prepare_statements(r, dbd, conn);
        if (status == OK) {
            conn->backend_pid = pid;
            return OK;
        }
        /* Lost while setting up (nothing was written): once more, on a new one. */
        if (attempt > 0 || connection_alive(dbd))
            return status;
    }
}

int redeem_db_open(request_rec *r, redeem_db_t **db)
{
    redeem_server_conf *conf = redeem_conf(r);
    ap_dbd_t *dbd = conf->dbd_acquire(r);
    if (!dbd) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      RDMNO(0105) "no database connection (see mod_dbd's messages above)");
        return HTTP_SERVICE_UNAVAILABLE;
    }
    redeem_conn_t *conn = NULL;
    apr_pool_userdata_get((void **)&conn, "redeem_conn", dbd->pool);
    if (!conn) {
        conn = apr_pcalloc(dbd->pool, sizeof *conn);
        apr_pool_create(&conn->statement_pool, dbd->pool);
        apr_pool_userdata_setn(conn, "redeem_conn", NULL, dbd->pool);
    }
    int status = make_ready(r, dbd, conn);
    if (status != OK)
        return status;
    redeem_db_t *handle = apr_palloc(r->pool, sizeof *handle);
    handle->r = r;
    handle->dbd = dbd;
    handle->conn = conn;
    *db = handle;
    if (!apr_atomic_read32(&conf->child->admin_ready))
        return redeem_admin_bootstrap(r, handle);
    return OK;
}

/* Our statement is gone from a live backend (someone ran DEALLOCATE or
 * DISCARD ALL): it never ran, so preparing again and rerunning is safe. */
static int statement_missing(ap_dbd_t *dbd, int rv)
{
    const char *message = apr_dbd_error(dbd->driver, dbd->handle, rv);
    return message && strstr(message, "prepared statement \"redeem_") &&
           strstr(message, "does not exist");
}

/* Runs a statement: rows into *res (select) or the count into *affected.
 * Runs it once more on a fresh backend when it certainly did not run (its
 * prepared form was missing) or when it is a read and the connection died. */
static int run_statement(redeem_db_t *db, redeem_stmt_e stmt, int nargs, const char **args,
                         apr_dbd_results_t **res, int *affected)
{
    request_rec *r = db->r;
    ap_dbd_t *dbd = db->dbd;
    int rv = 0;
    for (int attempt = 0;; attempt++) {
        if (res) {
            *res = NULL;
            /* random = 1: with 0 an execution error reads as an empty success. */
            rv = apr_dbd_pselect(dbd->driver, r->pool, dbd->handle, res, db->conn->statements[stmt],
                                 1, nargs, args);
        }
        else
            rv = apr_dbd_pquery(dbd->driver, r->pool, dbd->handle, affected,
                                db->conn->statements[stmt], nargs, args);
        if (rv == 0)
            return OK;
        int alive = connection_alive(dbd);
        int again = attempt == 0 && ((!alive && statement_read_only(stmt)) ||
                                     (alive && statement_missing(dbd, rv)));
        if (!again) {
            if (!alive)
                db->conn->backend_pid = 0; /* prepare afresh on the next use */
            return db_failure(r, dbd, apr_psprintf(r->pool, "statement %d", (int)stmt), rv);
        }
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      RDMNO(0108) "statement %d could not run (%s): preparing afresh and "
                                  "running it again",
                      (int)stmt, alive ? "statement missing" : "connection lost");
        db->conn->backend_pid = 0;
        int status = make_ready(r, dbd, db->conn);
        if (status != OK)
            return status;
    }
}

int redeem_db_exec(redeem_db_t *db, redeem_stmt_e stmt, int nargs, const char **args, int *affected)
{
    int rows = 0;
    int status = run_statement(db, stmt, nargs, args, NULL, &rows);
    if (status == OK && affected)
        *affected = rows;
    return status;
}

int redeem_db_query(redeem_db_t *db, redeem_stmt_e stmt, int nargs, const char **args,
                    redeem_rows_t *rows)
{
    request_rec *r = db->r;
    ap_dbd_t *dbd = db->dbd;
    apr_dbd_results_t *res = NULL;
    int status = run_statement(db, stmt, nargs, args, &res, NULL);
    if (status != OK)
        return status;
    int nrows = apr_dbd_num_tuples(dbd->driver, res);
    int ncols = apr_dbd_num_cols(dbd->driver, res);
    rows->nrows = nrows < 0 ? 0 : nrows;
    rows->ncols = ncols;
    rows->cells = apr_pcalloc(r->pool, sizeof(char *) * (apr_size_t)(rows->nrows * ncols + 1));
    apr_dbd_row_t *row = NULL;
    for (int i = 0; i < rows->nrows; i++) {
        if (apr_dbd_get_row(dbd->driver, r->pool, res, &row, i + 1) != 0)
            break;
        for (int c = 0; c < ncols; c++) {
            char *value = NULL;
            /* datum_get tells NULL (APR_ENOENT) from "", get_entry does not. */
            if (apr_dbd_datum_get(dbd->driver, row, c, APR_DBD_TYPE_STRING, &value) == APR_SUCCESS)
                rows->cells[i * ncols + c] = apr_pstrdup(r->pool, value);
        }
    }
    return OK;
}
