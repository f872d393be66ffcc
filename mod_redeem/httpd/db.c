/* Database access: only through mod_dbd's pool, only prepared statements
 * with bound parameters.
 *
 * mod_dbd prepares labelled statements once per connection and never again,
 * so after a PostgreSQL restart (the driver's PQreset reconnects the same
 * handle) they are gone. We prepare ours ourselves and remember for which
 * backend process we did: a new backend gets the schema check and a fresh
 * set of statements before its first use. A connection the server closed
 * while it sat in the pool is noticed and reconnected before it is used. */
#include "httpd/private.h"

#include <libpq-fe.h>
#include <poll.h>

#define REDEEM_SCHEMA_VERSION 3
static const char *const migrations[] = {"001_accounts.sql", "002_codes.sql",
                                         "003_audit_partitions.sql"};

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
static const redeem_failure_t *db_failure(request_rec *r, ap_dbd_t *dbd, const char *what, int rv)
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
    return alive ? &redeem_failure_internal : &redeem_failure_unavailable;
}

/* The first column of the first row of a plain query, copied out (reading
 * past the last row frees the result); NULL when there is none. */
static int select_one(request_rec *r, ap_dbd_t *dbd, const char *sql, const char **value)
{
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    int rv = apr_dbd_select(dbd->driver, r->pool, dbd->handle, &res, sql, 1);
    *value = NULL;
    if (rv != 0)
        return rv;
    if (apr_dbd_get_row(dbd->driver, r->pool, res, &row, -1) == 0)
        *value = apr_pstrdup(r->pool, apr_dbd_get_entry(dbd->driver, row, 0));
    while (row && apr_dbd_get_row(dbd->driver, r->pool, res, &row, -1) == 0)
        ;
    return 0;
}

static const redeem_failure_t *check_schema(request_rec *r, ap_dbd_t *dbd)
{
    const char *text;
    int rv = select_one(r, dbd, "SELECT coalesce(max(version), 0) FROM schema_migrations", &text);
    if (rv != 0) {
        if (!connection_alive(dbd))
            return db_failure(r, dbd, "schema check", rv);
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      RDMNO(0102) "database has no mod_redeem schema (%s): apply sql/%s",
                      apr_dbd_error(dbd->driver, dbd->handle, rv), migrations[0]);
        return &redeem_failure_unavailable;
    }
    apr_int64_t version = text ? apr_atoi64(text) : 0;
    if (version == REDEEM_SCHEMA_VERSION)
        return NULL;
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
    return &redeem_failure_unavailable;
}

/* Drops statements of ours an earlier, interrupted attempt left on this
 * backend, so that preparing can always start from nothing. */
static const redeem_failure_t *deallocate_leftovers(request_rec *r, ap_dbd_t *dbd)
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
    return NULL;
}

/* The contract check: PostgreSQL's own count of a prepared statement's
 * parameters and result columns must be the table's. A mismatch is a bug
 * in statements.h, reported before the statement ever runs. */
static const redeem_failure_t *check_contract(request_rec *r, ap_dbd_t *dbd, const char *label,
                                              const redeem_stmt_t *stmt)
{
    PGconn *pg = apr_dbd_native_handle(dbd->driver, dbd->handle);
    PGresult *described = PQdescribePrepared(pg, label);
    if (!described || PQresultStatus(described) != PGRES_COMMAND_OK) {
        PQclear(described);
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      RDMNO(0109) "cannot describe statement %s: %s", stmt->name,
                      PQerrorMessage(pg));
        return connection_alive(dbd) ? &redeem_failure_internal : &redeem_failure_unavailable;
    }
    int nparams = PQnparams(described), nfields = PQnfields(described);
    PQclear(described);
    if (nparams == stmt->nargs && nfields == stmt->ncols)
        return NULL;
    ap_log_rerror(APLOG_MARK, APLOG_CRIT, 0, r,
                  RDMNO(0110) "statement %s takes %d arguments and returns %d columns, but "
                              "statements.h says %d and %d",
                  stmt->name, nparams, nfields, stmt->nargs, stmt->ncols);
    return &redeem_failure_internal;
}

static const redeem_failure_t *prepare_statements(request_rec *r, ap_dbd_t *dbd,
                                                  redeem_conn_t *conn)
{
    const redeem_failure_t *failure = deallocate_leftovers(r, dbd);
    if (failure)
        return failure;
    apr_pool_clear(conn->statement_pool);
    for (int i = 0; i < STMT_COUNT_; i++) {
        const redeem_stmt_t *stmt = &redeem_statements[i];
        /* The driver fills a non-NULL *statement in place: never hand it the
         * old one, which lived in the pool just cleared. */
        conn->statements[i] = NULL;
        /* Lowercase labels: PREPARE folds case, PQexecPrepared does not. */
        const char *label = apr_pstrcat(conn->statement_pool, "redeem_", stmt->name, NULL);
        int rv = apr_dbd_prepare(dbd->driver, conn->statement_pool, dbd->handle, stmt->sql, label,
                                 &conn->statements[i]);
        if (rv != 0)
            return db_failure(r, dbd, apr_pstrcat(r->pool, "prepare of ", stmt->name, NULL), rv);
        if ((failure = check_contract(r, dbd, label, stmt)))
            return failure;
    }
    return NULL;
}

/* Reconnects a connection the server closed and, on a new backend, checks
 * the schema and prepares our statements. */
static const redeem_failure_t *make_ready(request_rec *r, ap_dbd_t *dbd, redeem_conn_t *conn)
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
                return &redeem_failure_unavailable;
            }
        }
        int pid = pg ? PQbackendPID(pg) : 0;
        if (conn->backend_pid == pid && pid != 0)
            return NULL;
        const redeem_failure_t *failure = check_schema(r, dbd);
        if (!failure)
            failure = prepare_statements(r, dbd, conn);
        if (!failure) {
            conn->backend_pid = pid;
            return NULL;
        }
        /* Lost while setting up (nothing was written): once more, on a new one. */
        if (attempt > 0 || connection_alive(dbd))
            return failure;
    }
}

const redeem_failure_t *redeem_db_open(request_rec *r, redeem_db_t **db)
{
    ap_dbd_t *dbd = redeem_conf(r)->dbd_acquire(r);
    if (!dbd) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      RDMNO(0105) "no database connection (see mod_dbd's messages above)");
        return &redeem_failure_unavailable;
    }
    redeem_conn_t *conn = NULL;
    apr_pool_userdata_get((void **)&conn, "redeem_conn", dbd->pool);
    if (!conn) {
        conn = apr_pcalloc(dbd->pool, sizeof *conn);
        apr_pool_create(&conn->statement_pool, dbd->pool);
        apr_pool_userdata_setn(conn, "redeem_conn", NULL, dbd->pool);
    }
    const redeem_failure_t *failure = make_ready(r, dbd, conn);
    if (failure)
        return failure;
    redeem_db_t *handle = apr_palloc(r->pool, sizeof *handle);
    handle->r = r;
    handle->dbd = dbd;
    handle->conn = conn;
    *db = handle;
    return NULL;
}

/* Our statement is gone from a live backend (someone ran DEALLOCATE or
 * DISCARD ALL): it never ran, so preparing again and rerunning is safe. */
static int statement_missing(ap_dbd_t *dbd, int rv)
{
    const char *message = apr_dbd_error(dbd->driver, dbd->handle, rv);
    return message && strstr(message, "prepared statement \"redeem_") &&
           strstr(message, "does not exist");
}

/* Runs a statement: rows into *res (select) or none (res NULL). Runs it once
 * more on a fresh backend when it certainly did not run (its prepared form
 * was missing) or when it only reads and the connection died. */
static const redeem_failure_t *run_statement(redeem_db_t *db, redeem_stmt_e id,
                                             const char *const *args, apr_dbd_results_t **res)
{
    request_rec *r = db->r;
    ap_dbd_t *dbd = db->dbd;
    const redeem_stmt_t *stmt = &redeem_statements[id];
    for (int attempt = 0;; attempt++) {
        int rv, affected;
        apr_dbd_prepared_t *prepared = db->conn->statements[id];
        if (res) {
            *res = NULL;
            /* random = 1: with 0 an execution error reads as an empty success. */
            rv = apr_dbd_pselect(dbd->driver, r->pool, dbd->handle, res, prepared, 1, stmt->nargs,
                                 (const char **)args);
        }
        else
            rv = apr_dbd_pquery(dbd->driver, r->pool, dbd->handle, &affected, prepared, stmt->nargs,
                                (const char **)args);
        if (rv == 0)
            return NULL;
        int alive = connection_alive(dbd);
        int again =
            attempt == 0 && ((!alive && stmt->read_only) || (alive && statement_missing(dbd, rv)));
        if (!again) {
            if (!alive)
                db->conn->backend_pid = 0; /* prepare afresh on the next use */
            return db_failure(r, dbd, apr_pstrcat(r->pool, "statement ", stmt->name, NULL), rv);
        }
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      RDMNO(0108) "statement %s could not run (%s): preparing afresh and "
                                  "running it again",
                      stmt->name, alive ? "statement missing" : "connection lost");
        db->conn->backend_pid = 0;
        const redeem_failure_t *failure = make_ready(r, dbd, db->conn);
        if (failure)
            return failure;
    }
}

const redeem_failure_t *redeem_db_exec(redeem_db_t *db, redeem_stmt_e stmt, const char *const *args)
{
    return run_statement(db, stmt, args, NULL);
}

const redeem_failure_t *redeem_db_query(redeem_db_t *db, redeem_stmt_e stmt,
                                        const char *const *args, redeem_rows_t *rows)
{
    request_rec *r = db->r;
    ap_dbd_t *dbd = db->dbd;
    apr_dbd_results_t *res = NULL;
    const redeem_failure_t *failure = run_statement(db, stmt, args, &res);
    if (failure)
        return failure;
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
    return NULL;
}
