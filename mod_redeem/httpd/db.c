/* Database access: connections from mod_dbd's pool, our prepared statements
 * with bound parameters, and every wait bounded by the request's deadline.
 *
 * mod_dbd gives us pooled connections; we speak to them through libpq's
 * asynchronous calls, so no wait outlasts RedeemDBTimeout: a database that
 * accepts and then says nothing (a frozen host, a partition that drops
 * packets) costs a request that long, then the connection is dropped and
 * the answer is 503 with Retry-After. Nothing then waits on it: the next
 * user of the connection reconnects it, within its own deadline.
 *
 * Deadlines, and the times compared with them, are of the monotonic clock
 * (redeem_clock_monotonic): a step of the wall clock (NTP, by hand) would
 * otherwise time out every wait in flight, or stretch it by the step. The
 * wall clock is read only for what is compared with the database's clock
 * (check_clock; a redemption's act_before, handle_redeem.c).
 *
 * mod_dbd prepares labelled statements once per connection and never again,
 * so after a PostgreSQL restart they would be gone. We prepare ours
 * ourselves and remember for which backend process we did: a new backend
 * gets the schema check and a fresh set of statements before its first use.
 * A connection the server closed while it sat in the pool is noticed and
 * reconnected before it is used. */
#include "httpd/private.h"

#include <errno.h>
#include <stdlib.h>
#include <libpq-fe.h>
#include <poll.h>
#include <sys/socket.h>

#define REDEEM_SCHEMA_VERSION 17
static const char *const migrations[] = {"001_accounts.sql",
                                         "002_codes.sql",
                                         "003_email_identity.sql",
                                         "004_audit_partitions.sql",
                                         "005_redeem_replay.sql",
                                         "006_api_ts_stable.sql",
                                         "007_code_counts_bulk_delete.sql",
                                         "008_code_lookup_key.sql",
                                         "009_code_batches.sql",
                                         "010_audit_count_before_lock.sql",
                                         "011_token_generation.sql",
                                         "012_code_counts_apart.sql",
                                         "013_audit_insert_columns.sql",
                                         "014_definer_search_path.sql",
                                         "015_audit_once.sql",
                                         "016_counters_in_order.sql",
                                         "017_column_updates.sql"};
_Static_assert(sizeof migrations / sizeof *migrations == REDEEM_SCHEMA_VERSION,
               "a migration file named for each schema version");

/* After the database failed to answer, how long requests of this child get
 * 503 at once (no waiting on mod_dbd's pool, whose new connections are made
 * one at a time) before one of them tries again. */
#define RETRY_INTERVAL apr_time_from_sec(1)

/* SQLSTATE of a prepared statement that does not exist (someone ran
 * DEALLOCATE or DISCARD ALL): it never ran, so preparing again is safe. */
#define SQLSTATE_NO_SUCH_STATEMENT "26000"
/* SQLSTATE of a unique index's key already taken, and the index whose taken
 * key a caller may make anew (a code's lookup key, sql/008). */
#define SQLSTATE_UNIQUE_VIOLATION "23505"
#define CODE_LOOKUP_KEY_INDEX "redeem_codes_lookup_key"
/* SQLSTATE of a CHECK constraint refused, and the one on an account's email
 * (sql/001): the stored email is the address's key (NFC, then lowercased),
 * which can be longer than the address the client sent and the module
 * counted (a composed letter that NFC takes apart, a capital whose lower
 * case is two code points). */
#define SQLSTATE_CHECK_VIOLATION "23514"
/* SQLSTATEs of codes_actor_check (sql/015): the batch's admin gone or
 * revoked, or no longer an admin. */
#define SQLSTATE_ACTOR_GONE "RD401"
#define SQLSTATE_ACTOR_NOT_ADMIN "RD403"
#define USER_EMAIL_CHECK "users_email_check"

/* What we know of one pooled connection; lives in the connection's pool. */
typedef struct {
    int backend_pid; /* the backend our statements are prepared on; 0: none */
} redeem_conn_t;

struct redeem_db {
    request_rec *r;
    PGconn *pg;
    redeem_conn_t *conn;
    apr_time_t deadline; /* every wait of this request ends by then (monotonic) */
    int pipelined;       /* statements sent in the open pipeline */
    int shortened;       /* deadline cut short (a health check's question): missing it
                          * says the database is slow, not that it is gone */
    apr_time_t began;    /* when the wait under way began (a statement sent, a
                          * connection readied; monotonic): see began_late */
};

/* How a libpq exchange ended. */
typedef enum { EXCHANGE_DONE, EXCHANGE_FAILED, EXCHANGE_LOST, EXCHANGE_TIMED_OUT } outcome_e;

static const char *outcome_name(outcome_e outcome)
{
    return outcome == EXCHANGE_LOST        ? " (connection lost)"
           : outcome == EXCHANGE_TIMED_OUT ? " (timed out)"
                                           : "";
}

/* Waits until the socket is ready for events or the deadline passes:
 * 1 ready, 0 timed out, -1 failed. */
static int wait_socket(PGconn *pg, short events, apr_time_t deadline)
{
    for (;;) {
        /* poll's own timeout is relative, on the monotonic clock too. */
        apr_time_t left = deadline - redeem_clock_monotonic();
        if (left <= 0)
            return 0;
        struct pollfd pfd = {PQsocket(pg), events, 0};
        if (pfd.fd < 0)
            return -1;
        int n = poll(&pfd, 1, (int)((left + 999) / 1000));
        if (n > 0)
            return 1;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

/* Sends what libpq holds (a large batch of codes is megabytes), reading
 * what arrives meanwhile. */
static outcome_e flush_all(PGconn *pg, apr_time_t deadline)
{
    for (int rc; (rc = PQflush(pg)) != 0;) {
        int ready = rc < 0 ? -1 : wait_socket(pg, POLLIN | POLLOUT, deadline);
        if (ready <= 0)
            return ready == 0 ? EXCHANGE_TIMED_OUT : EXCHANGE_LOST;
        if (!PQconsumeInput(pg))
            return EXCHANGE_LOST;
    }
    return EXCHANGE_DONE;
}

/* Reads until libpq has a whole result to give. */
static outcome_e await_result(PGconn *pg, apr_time_t deadline)
{
    while (PQisBusy(pg)) {
        int ready = wait_socket(pg, POLLIN, deadline);
        if (ready <= 0)
            return ready == 0 ? EXCHANGE_TIMED_OUT : EXCHANGE_LOST;
        if (!PQconsumeInput(pg))
            return EXCHANGE_LOST;
    }
    return EXCHANGE_DONE;
}

/* Sends one command and reads its whole result; the last result is kept,
 * an error one first. */
static outcome_e exchange(PGconn *pg, apr_time_t deadline, PGresult **result)
{
    outcome_e outcome = flush_all(pg, deadline);
    *result = NULL;
    for (PGresult *next; outcome == EXCHANGE_DONE;) {
        if ((outcome = await_result(pg, deadline)) != EXCHANGE_DONE)
            break;
        if (!(next = PQgetResult(pg))) {
            if (!*result)
                return PQstatus(pg) == CONNECTION_OK ? EXCHANGE_FAILED : EXCHANGE_LOST;
            ExecStatusType status = PQresultStatus(*result);
            if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK)
                return EXCHANGE_DONE;
            return PQstatus(pg) == CONNECTION_OK ? EXCHANGE_FAILED : EXCHANGE_LOST;
        }
        if (*result && PQresultStatus(*result) == PGRES_FATAL_ERROR)
            PQclear(next); /* the error is the answer */
        else {
            PQclear(*result);
            *result = next;
        }
    }
    PQclear(*result);
    *result = NULL;
    return outcome;
}

/* A connection that timed out may still get its answer later; nothing may
 * ever read it as another command's. Shut the socket: the next user finds
 * it closed and reconnects. */
static void drop_connection(PGconn *pg)
{
    if (PQsocket(pg) >= 0)
        shutdown(PQsocket(pg), SHUT_RDWR);
}

/* The database did not answer in time (a frozen host, a partition): fail
 * fast for a while, so that requests do not pile up waiting on it. A
 * database that refuses at once (stopped, restarting) costs no wait and is
 * simply tried by every request. Logged when an outage starts. */
static void note_unreachable(request_rec *r)
{
    redeem_child_t *child = redeem_conf(r)->child;
    apr_int64_t was = __atomic_exchange_n(
        &child->db_retry_at, redeem_clock_monotonic() + RETRY_INTERVAL, __ATOMIC_ACQ_REL);
    if (!was)
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      RDMNO(0112) "the database does not answer: this child answers 503 at once, "
                                  "trying it again every second");
}

static void begin_wait(redeem_db_t *db)
{
    db->began = redeem_clock_monotonic();
}

/* The wait under way began with less than half of RedeemDBTimeout left
 * (the request had waited for a connection, another's read or a hashing
 * slot): running out of it says the database is gone only when nothing
 * else of this child's got an answer for RedeemDBTimeout. */
static int began_late(const redeem_db_t *db)
{
    return db->deadline - db->began < apr_time_from_msec(redeem_conf(db->r)->db_timeout_ms) / 2;
}

/* A wait of this request's that ran out: the database is silent, unless
 * the wait was cut short (a health check's half second), which says only
 * that it is slow and must not turn the whole child away, or began late
 * while the database still answered others. */
static void note_silent(const redeem_db_t *db)
{
    if (db->shortened)
        return;
    if (began_late(db)) {
        redeem_child_t *child = redeem_conf(db->r)->child;
        apr_int64_t ok_at = __atomic_load_n(&child->db_ok_at, __ATOMIC_RELAXED);
        /* A child that has not yet had an answer counts from its start. */
        if (ok_at < child->started_at)
            ok_at = child->started_at;
        if (redeem_clock_monotonic() - ok_at <
            apr_time_from_msec(redeem_conf(db->r)->db_timeout_ms))
            return;
    }
    note_unreachable(db->r);
}

/* The database did not answer at all (lost, refused, silent). */
static void note_failed(request_rec *r)
{
    __atomic_store_n(&redeem_conf(r)->child->db_failed_at, redeem_clock_monotonic(),
                     __ATOMIC_RELAXED);
}

/* A statement of this request's got its answer. Only that ends a time of
 * answering 503 at once: a pooled connection that needs no setting up is
 * had without a word to the database, which may still be silent. */
static void note_answered(request_rec *r)
{
    redeem_child_t *child = redeem_conf(r)->child;
    __atomic_store_n(&child->db_ok_at, redeem_clock_monotonic(), __ATOMIC_RELAXED);
    if (__atomic_load_n(&child->db_retry_at, __ATOMIC_RELAXED) &&
        __atomic_exchange_n(&child->db_retry_at, 0, __ATOMIC_ACQ_REL))
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                      RDMNO(0113) "the database answers again: this child uses it again");
}

int redeem_db_silent(request_rec *r)
{
    apr_int64_t retry_at = __atomic_load_n(&redeem_conf(r)->child->db_retry_at, __ATOMIC_ACQUIRE);
    return !retry_at ? 0 : redeem_clock_monotonic() < retry_at ? 1 : 2;
}

/* While the database is known not to answer: 1 when this request must fail
 * at once, 0 when it may try (it answers, or this is the probe). */
static int fail_fast(request_rec *r)
{
    redeem_child_t *child = redeem_conf(r)->child;
    apr_int64_t retry_at = __atomic_load_n(&child->db_retry_at, __ATOMIC_ACQUIRE);
    if (!retry_at)
        return 0;
    apr_int64_t now = redeem_clock_monotonic();
    /* Past the interval, the first to move it on is the probe. */
    return now < retry_at ||
           !__atomic_compare_exchange_n(&child->db_retry_at, &retry_at, now + RETRY_INTERVAL, 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

/* Whether result is an error of SQLSTATE sqlstate. */
static int failed_with(const PGresult *result, const char *sqlstate)
{
    const char *got = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : NULL;
    return got && strcmp(got, sqlstate) == 0;
}

/* Whether result refused a new code whose lookup key is stored already. */
static int lookup_key_taken(const PGresult *result)
{
    const char *index = result ? PQresultErrorField(result, PG_DIAG_CONSTRAINT_NAME) : NULL;
    return failed_with(result, SQLSTATE_UNIQUE_VIOLATION) && index &&
           strcmp(index, CODE_LOOKUP_KEY_INDEX) == 0;
}

/* Whether result refused an email whose key is too long to be stored. */
static int email_key_too_long(const PGresult *result)
{
    const char *check = result ? PQresultErrorField(result, PG_DIAG_CONSTRAINT_NAME) : NULL;
    return failed_with(result, SQLSTATE_CHECK_VIOLATION) && check &&
           strcmp(check, USER_EMAIL_CHECK) == 0;
}

/* Whether result is an error that another try, a moment later, may not
 * meet: a statement cancelled (statement_timeout) or a lock not had in
 * time, a deadlock or serialization failure, the server short of resources
 * or going down, or a server that takes no writes (a standby after a
 * failover). Sets *unable when the database itself cannot serve now. */
static int failed_for_now(const PGresult *result, int *unable)
{
    const char *state = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : NULL;
    if (!state)
        return 0;
    *unable = strncmp(state, "53", 2) == 0 || strncmp(state, "08", 2) == 0 ||
              strncmp(state, "57P", 3) == 0 || strcmp(state, "25006") == 0;
    return *unable || strncmp(state, "40", 2) == 0 || strcmp(state, "55P03") == 0 ||
           strcmp(state, "57014") == 0;
}

/* What the database said of a failure, for the log: its primary message,
 * else libpq's for the connection (when no result came back at all), cut
 * before a DETAIL line (it may quote a failing row, password hash
 * included); "no detail" when neither says anything. */
static const char *failure_detail(request_rec *r, PGconn *pg, const PGresult *result)
{
    const char *primary = result ? PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (primary && *primary)
        return primary;
    char *said = apr_pstrdup(r->pool, PQerrorMessage(pg));
    char *cut = strstr(said, "\nDETAIL:");
    if (cut)
        *cut = '\0';
    apr_size_t n = strlen(said);
    while (n > 0 && (said[n - 1] == '\n' || said[n - 1] == ' '))
        said[--n] = '\0';
    return *said ? said : "no detail";
}

/* 400 for an email whose key is too long; 503 when the database went away,
 * did not answer in time, or refused for now (failed_for_now); 500 for
 * anything else. Logged either way, without PostgreSQL's DETAIL (it may
 * quote a failing row, password hash included). */
static const redeem_failure_t *db_failure(redeem_db_t *db, const char *what, outcome_e outcome,
                                          const PGresult *result)
{
    request_rec *r = db->r;
    PGconn *pg = db->pg;
    const char *detail = failure_detail(r, pg, result);
    if (outcome != EXCHANGE_FAILED)
        note_failed(r);
    /* Lost while libpq may still hold the connection for good (a failed
     * send or poll, still in pipeline mode or awaiting a result): the next
     * user would meet "another command is already in progress". Shut, it is
     * reconnected instead. */
    if (outcome == EXCHANGE_LOST)
        drop_connection(pg);
    if (outcome == EXCHANGE_FAILED && lookup_key_taken(result)) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      RDMNO(0115) "database %s refused: a code's lookup key is already taken: %s",
                      what, detail);
        return &redeem_failure_key_taken;
    }
    if (outcome == EXCHANGE_FAILED && email_key_too_long(result))
        return &redeem_failure_email_too_long;
    if (outcome == EXCHANGE_FAILED && failed_with(result, SQLSTATE_ACTOR_GONE))
        return &redeem_failure_actor_gone;
    if (outcome == EXCHANGE_FAILED && failed_with(result, SQLSTATE_ACTOR_NOT_ADMIN))
        return &redeem_failure_actor_not_admin;
    int unable = 0;
    if (outcome == EXCHANGE_FAILED && failed_for_now(result, &unable)) {
        /* A server that cannot serve now (a standby, shutting down, out of
         * resources, its connection broken): its next user connects anew
         * (to the primary, when DBDParams lists the hosts with
         * target_session_attrs=read-write). */
        if (unable) {
            note_failed(r);
            drop_connection(pg);
        }
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      RDMNO(0116) "database %s refused for now (SQLSTATE %s): %s", what,
                      PQresultErrorField(result, PG_DIAG_SQLSTATE), detail);
        return &redeem_failure_unavailable;
    }
    if (outcome == EXCHANGE_TIMED_OUT) {
        note_silent(db);
        drop_connection(pg);
        apr_int64_t timeout_ms = redeem_conf(r)->db_timeout_ms;
        const char *within =
            db->shortened ? "its shortened deadline (a health check's)"
            : began_late(db)
                ? apr_psprintf(r->pool,
                               "what was left of its RedeemDBTimeout (%" APR_INT64_T_FMT
                               " ms) when it began, after the request's other waits",
                               timeout_ms)
                : apr_psprintf(r->pool, "RedeemDBTimeout (%" APR_INT64_T_FMT " ms)", timeout_ms);
        ap_log_rerror(APLOG_MARK, db->shortened || began_late(db) ? APLOG_WARNING : APLOG_ERR, 0, r,
                      RDMNO(0111) "database %s: no answer within %s: connection dropped", what,
                      within);
        return &redeem_failure_unavailable;
    }
    ap_log_rerror(APLOG_MARK, outcome == EXCHANGE_LOST ? APLOG_WARNING : APLOG_ERR, 0, r,
                  RDMNO(0101) "database %s failed%s: %s", what, outcome_name(outcome), detail);
    return outcome == EXCHANGE_LOST ? &redeem_failure_unavailable : &redeem_failure_internal;
}

/* Runs plain SQL (no parameters) and returns its result. */
static outcome_e run_sql(PGconn *pg, const char *sql, apr_time_t deadline, PGresult **result)
{
    *result = NULL;
    if (!PQsendQuery(pg, sql))
        return PQstatus(pg) == CONNECTION_OK ? EXCHANGE_FAILED : EXCHANGE_LOST;
    return exchange(pg, deadline, result);
}

/* The session is told to look for its client every CLIENT_CHECK_MS while a
 * statement runs: a statement the module gave up on (RedeemDBTimeout, the
 * socket shut) is then cancelled by the server within that time, instead of
 * committing when whatever held it up lets go (a redemption told 503 would
 * still use its code). Only this session's setting: nothing server-wide. A
 * server that cannot watch its sockets so refuses it: logged, and the
 * session goes on without. */
#define CLIENT_CHECK_MS "100"
static const redeem_failure_t *watch_client(redeem_db_t *db)
{
    PGresult *result;
    outcome_e outcome = run_sql(db->pg,
                                "SELECT set_config(name, '" CLIENT_CHECK_MS "', false)"
                                " FROM pg_settings" /* PostgreSQL 14 and later */
                                " WHERE name = 'client_connection_check_interval'",
                                db->deadline, &result);
    const redeem_failure_t *failure = NULL;
    if (outcome == EXCHANGE_FAILED)
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, db->r,
                      RDMNO(0117) "client_connection_check_interval not set (%s): a statement "
                                  "given up on may still commit",
                      failure_detail(db->r, db->pg, result));
    else if (outcome != EXCHANGE_DONE)
        failure = db_failure(db, "session setup", outcome, result);
    PQclear(result);
    return failure;
}

/* A redemption's time limit is read by the database's clock (statements.h,
 * too_late): a clock that differs from this host's by more than the tenth
 * of RedeemDBTimeout the limit keeps is worth a warning, once a backend.
 * db_us is the database's clock, read between asked and answered. */
static void check_clock(redeem_db_t *db, apr_int64_t db_us, apr_time_t asked, apr_time_t answered)
{
    apr_interval_time_t margin = redeem_db_too_late(redeem_conf(db->r));
    apr_int64_t ahead = db_us > answered ? db_us - answered : 0;
    apr_int64_t behind = db_us < asked ? asked - db_us : 0;
    if (ahead <= margin && behind <= margin)
        return;
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, db->r,
                  RDMNO(0120) "the database's clock is at least %" APR_INT64_T_FMT
                              " ms %s this host's, more than a tenth of RedeemDBTimeout: a "
                              "redemption's time limit is read by the database's clock (%s)",
                  (ahead ? ahead : behind) / 1000, ahead ? "ahead of" : "behind",
                  ahead ? "redemptions may be refused as too late"
                        : "a redemption may commit after its client was told 503");
}

/* The first question to a new backend: the schema's version, the
 * statements of ours an earlier, interrupted attempt left on it (to drop,
 * so that preparing can always start from nothing; only ours: other modules
 * may share mod_dbd's pool), and its clock. It also sets the session's
 * isolation level to READ COMMITTED, which the statements are written for
 * (statements.h: a redemption waits for a racer's lock on its user, then
 * reads the racer's commit): under a higher default of the operator's (a
 * database's, a role's or DBDParams' default_transaction_isolation), racing
 * redemptions of one user failed to serialize and were answered 503
 * (t/redeem/concurrent.t TEST 9). Only this session's setting. */
static const redeem_failure_t *check_schema(redeem_db_t *db, apr_array_header_t *leftovers)
{
    request_rec *r = db->r;
    PGresult *result;
    const redeem_failure_t *failure = watch_client(db);
    if (failure)
        return failure;
    /* The wall clock: compared with the database's (check_clock). */
    apr_time_t asked = apr_time_now();
    outcome_e outcome = run_sql(
        db->pg,
        "SELECT (SELECT coalesce(max(version), 0) FROM schema_migrations),"
        " array_to_string(array(SELECT format('DEALLOCATE %I', name) FROM pg_prepared_statements"
        " WHERE name LIKE 'redeem\\_%'), ';'),"
        " (extract(epoch FROM clock_timestamp()) * 1000000)::bigint,"
        " set_config('default_transaction_isolation', 'read committed', false)",
        db->deadline, &result);
    apr_time_t answered = apr_time_now();
    int unable = 0;
    /* Without a result the question was not sent: not the schema's fault. */
    if (outcome == EXCHANGE_FAILED && result && !failed_for_now(result, &unable)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      RDMNO(0102) "database has no mod_redeem schema (%s): apply sql/%s",
                      failure_detail(r, db->pg, result), migrations[0]);
        PQclear(result);
        return &redeem_failure_unavailable;
    }
    if (outcome != EXCHANGE_DONE) {
        failure = db_failure(db, "schema check", outcome, result);
        PQclear(result);
        return failure;
    }
    apr_int64_t version = apr_atoi64(PQgetvalue(result, 0, 0));
    char *commands = apr_pstrdup(r->pool, PQgetvalue(result, 0, 1)), *state;
    check_clock(db, apr_atoi64(PQgetvalue(result, 0, 2)), asked, answered);
    PQclear(result);
    for (char *c = apr_strtok(commands, ";", &state); c; c = apr_strtok(NULL, ";", &state))
        APR_ARRAY_PUSH(leftovers, const char *) = c;
    /* Every request checks again (the site heals once migrated), but until
     * then the child says so once in REDEEM_LOG_EVERY; a version it has not
     * told of yet, or any after the versions agreed, at once. */
    redeem_child_t *child = redeem_conf(r)->child;
    if (version == REDEEM_SCHEMA_VERSION) {
        if (__atomic_load_n(&child->schema_told_version, __ATOMIC_RELAXED))
            __atomic_store_n(&child->schema_told_version, 0, __ATOMIC_RELAXED);
        return NULL;
    }
    if (__atomic_exchange_n(&child->schema_told_version, version, __ATOMIC_RELAXED) != version)
        redeem_log_throttle_reset(&child->schema_told);
    const char *note;
    int level = redeem_log_level_throttled(r, &child->schema_told, APLOG_ERR, &note);
    if (version < REDEEM_SCHEMA_VERSION)
        ap_log_rerror(APLOG_MARK, level, 0, r,
                      RDMNO(0103) "database schema is at version %" APR_INT64_T_FMT
                                  ", mod_redeem needs %d: apply sql/%s and the migrations after it "
                                  "(redeem-migrate applies them in order)%s",
                      version, REDEEM_SCHEMA_VERSION, migrations[version], note);
    else
        ap_log_rerror(APLOG_MARK, level, 0, r,
                      RDMNO(0104) "database schema is at version %" APR_INT64_T_FMT
                                  ", newer than this mod_redeem (%d): upgrade the module%s",
                      version, REDEEM_SCHEMA_VERSION, note);
    return &redeem_failure_unavailable;
}

/* The contract check: PostgreSQL's own count of a prepared statement's
 * parameters and result columns must be the table's. A mismatch is a bug
 * in statements.h, reported before the statement ever runs. */
static const redeem_failure_t *check_contract(request_rec *r, const redeem_stmt_t *stmt,
                                              const PGresult *described)
{
    int nparams = PQnparams(described), nfields = PQnfields(described);
    if (nparams == stmt->nargs && nfields == stmt->ncols)
        return NULL;
    ap_log_rerror(APLOG_MARK, APLOG_CRIT, 0, r,
                  RDMNO(0110) "statement %s takes %d arguments and returns %d columns, but "
                              "statements.h says %d and %d",
                  stmt->name, nparams, nfields, stmt->nargs, stmt->ncols);
    return &redeem_failure_internal;
}

/* Reads the next result of a pipeline (and the NULL after it), waiting no
 * later than the deadline. */
static outcome_e next_result(PGconn *pg, apr_time_t deadline, PGresult **result)
{
    outcome_e outcome = flush_all(pg, deadline);
    *result = NULL;
    if (outcome != EXCHANGE_DONE || (outcome = await_result(pg, deadline)) != EXCHANGE_DONE)
        return outcome;
    if (!(*result = PQgetResult(pg)))
        return PQstatus(pg) == CONNECTION_OK ? EXCHANGE_FAILED : EXCHANGE_LOST;
    ExecStatusType status = PQresultStatus(*result);
    if (status == PGRES_PIPELINE_SYNC)
        return EXCHANGE_DONE;
    /* Each command's results end with a NULL. */
    if ((outcome = await_result(pg, deadline)) != EXCHANGE_DONE)
        return outcome;
    PQclear(PQgetResult(pg));
    return status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK ? EXCHANGE_DONE
                                                                   : EXCHANGE_FAILED;
}

/* Drops the leftovers and prepares every statement, checking its contract,
 * in one pipeline: one round trip for the whole set. */
static const redeem_failure_t *prepare_statements(redeem_db_t *db,
                                                  const apr_array_header_t *leftovers)
{
    request_rec *r = db->r;
    PGconn *pg = db->pg;
    const redeem_failure_t *failure = NULL;
    if (!PQenterPipelineMode(pg))
        return db_failure(db, "pipeline", EXCHANGE_LOST, NULL);
    int queued = 1;
    for (int i = 0; queued && i < leftovers->nelts; i++)
        queued = PQsendQueryParams(pg, APR_ARRAY_IDX(leftovers, i, const char *), 0, NULL, NULL,
                                   NULL, NULL, 0);
    for (int i = 0; queued && i < STMT_COUNT_; i++) {
        const char *label = apr_pstrcat(r->pool, "redeem_", redeem_statements[i].name, NULL);
        queued = PQsendPrepare(pg, label, redeem_statements[i].sql, 0, NULL) &&
                 PQsendDescribePrepared(pg, label);
    }
    if (!queued || !PQpipelineSync(pg)) {
        failure = db_failure(db, "prepare", EXCHANGE_LOST, NULL);
        PQexitPipelineMode(pg);
        return failure;
    }
    /* The results, in the order sent: the DEALLOCATEs, then a PREPARE and a
     * DESCRIBE per statement, then the sync. */
    int expected = leftovers->nelts + 2 * STMT_COUNT_;
    for (int k = 0; k <= expected; k++) {
        PGresult *result;
        outcome_e outcome = next_result(pg, db->deadline, &result);
        int statement = k - leftovers->nelts;
        const char *what =
            statement < 0 ? "DEALLOCATE"
            : k == expected
                ? "prepare"
                : apr_pstrcat(r->pool, "prepare of ", redeem_statements[statement / 2].name, NULL);
        if (outcome == EXCHANGE_DONE && k == expected &&
            PQresultStatus(result) != PGRES_PIPELINE_SYNC)
            outcome = EXCHANGE_FAILED;
        if (outcome != EXCHANGE_DONE) {
            if (!failure)
                failure = db_failure(db, what, outcome, result);
            PQclear(result);
            if (outcome != EXCHANGE_FAILED)
                return failure; /* the connection is gone or dropped */
            continue;           /* read on to the sync */
        }
        if (!failure && statement >= 0 && k < expected && statement % 2 == 1)
            failure = check_contract(r, &redeem_statements[statement / 2], result);
        PQclear(result);
    }
    PQexitPipelineMode(pg);
    return failure;
}

/* The request's time ran out before anything was sent (every pooled
 * connection stayed busy that long): sent now, a statement would run, a
 * redemption included, but its answer would never be read, and a healthy
 * connection would be dropped as if the database were silent. Nothing is
 * sent, and the database does not count as silent. */
static const redeem_failure_t *out_of_time(redeem_db_t *db, const char *what, const char *which,
                                           apr_interval_time_t margin)
{
    if (redeem_clock_monotonic() + margin < db->deadline)
        return NULL;
    request_rec *r = db->r;
    redeem_shared_count(redeem_conf(r)->shared, REDEEM_COUNTER_DB_ACQUIRE_FAILURES);
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                  RDMNO(0114) "%s%s: not sent, RedeemDBTimeout (%" APR_INT64_T_FMT
                              " ms) ran out before it%s (the request waited that long: for a "
                              "free pooled connection, another's read, a reconnection, or its "
                              "own hashing and statements before)",
                  what, which, (apr_int64_t)redeem_conf(r)->db_timeout_ms,
                  margin ? ", or all but a tenth of it" : "");
    return &redeem_failure_unavailable;
}

/* Reconnects, without waiting past the deadline, a connection the server
 * closed (or that we dropped). */
static const redeem_failure_t *reconnect(redeem_db_t *db)
{
    request_rec *r = db->r;
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  RDMNO(0106) "pooled database connection was closed: reconnecting");
    redeem_shared_count(redeem_conf(r)->shared, REDEEM_COUNTER_DB_RECONNECTS);
    db->conn->backend_pid = 0; /* a new backend may even get the old pid */
    if (!PQresetStart(db->pg)) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, RDMNO(0107) "reconnect failed: %s",
                      PQerrorMessage(db->pg));
        note_failed(r);
        return &redeem_failure_unavailable;
    }
    for (PostgresPollingStatusType poll_status = PGRES_POLLING_WRITING;;) {
        /* A reset leaves libpq's blocking mode on: a large send would then
         * wait in libpq, past the deadline. */
        if (poll_status == PGRES_POLLING_OK && PQsetnonblocking(db->pg, 1) == 0)
            return NULL;
        if (poll_status == PGRES_POLLING_OK)
            poll_status = PGRES_POLLING_FAILED;
        if (poll_status == PGRES_POLLING_FAILED) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, RDMNO(0107) "reconnect failed: %s",
                          PQerrorMessage(db->pg));
            note_failed(r);
            return &redeem_failure_unavailable;
        }
        int ready = wait_socket(db->pg, poll_status == PGRES_POLLING_READING ? POLLIN : POLLOUT,
                                db->deadline);
        if (ready <= 0) {
            drop_connection(db->pg);
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                          RDMNO(0107) "reconnect failed: no answer within RedeemDBTimeout");
            note_failed(r);
            note_silent(db);
            return &redeem_failure_unavailable;
        }
        poll_status = PQresetPoll(db->pg);
    }
}

/* An idle pooled connection has nothing to read; one whose server went
 * away while it sat in the pool (restart, failover, pg_terminate_backend)
 * has the server's goodbye or an EOF waiting, as has one we dropped. */
static int looks_closed(PGconn *pg)
{
    struct pollfd pfd = {PQsocket(pg), POLLIN, 0};
    return PQstatus(pg) != CONNECTION_OK || pfd.fd < 0 || poll(&pfd, 1, 0) != 0;
}

/* Reconnects a closed connection and, on a new backend, checks the schema
 * and prepares our statements. */
static const redeem_failure_t *make_ready(redeem_db_t *db)
{
    for (int attempt = 0;; attempt++) {
        const redeem_failure_t *failure = NULL;
        int closed = looks_closed(db->pg), pid = PQbackendPID(db->pg);
        if (!closed && db->conn->backend_pid == pid && pid != 0)
            return NULL;
        begin_wait(db);
        if ((failure = out_of_time(db, closed ? "reconnect" : "schema check",
                                   " of a pooled connection", 0)))
            return failure;
        if (closed && (failure = reconnect(db)))
            return failure;
        pid = PQbackendPID(db->pg);
        apr_array_header_t *leftovers = apr_array_make(db->r->pool, 4, sizeof(const char *));
        failure = check_schema(db, leftovers);
        if (!failure)
            failure = prepare_statements(db, leftovers);
        if (!failure) {
            db->conn->backend_pid = pid;
            redeem_shared_count(redeem_conf(db->r)->shared, REDEEM_COUNTER_DB_BACKENDS_READIED);
            return NULL;
        }
        /* Lost while setting up (nothing was written): once more, on a new one. */
        if (attempt > 0 || PQstatus(db->pg) == CONNECTION_OK ||
            redeem_clock_monotonic() >= db->deadline)
            return failure;
    }
}

const redeem_failure_t *redeem_db_open(request_rec *r, apr_time_t since, redeem_db_t **db)
{
    redeem_server_conf *conf = redeem_conf(r);
    if (fail_fast(r))
        return &redeem_failure_unavailable;
    /* since: redeem_call_db_start's, monotonic. */
    apr_time_t asked = redeem_clock_monotonic(),
               deadline = since + apr_time_from_msec(conf->db_timeout_ms);
    ap_dbd_t *dbd = NULL;
    const redeem_failure_t *failure =
        redeem_pool_gate_acquire(r, deadline - redeem_db_too_late(conf), &dbd);
    if (failure)
        return failure;
    redeem_shared_count(conf->shared, REDEEM_COUNTER_DB_ACQUIRES);
    redeem_shared_add(conf->shared, REDEEM_COUNTER_DB_ACQUIRE_US,
                      (uint64_t)(redeem_clock_monotonic() - asked));
    PGconn *pg = dbd ? apr_dbd_native_handle(dbd->driver, dbd->handle) : NULL;
    if (!pg) {
        redeem_shared_count(conf->shared, REDEEM_COUNTER_DB_ACQUIRE_FAILURES);
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      RDMNO(0105) "no database connection (see mod_dbd's messages above)");
        note_failed(r);
        /* mod_dbd waited out a connect_timeout: the database is silent. */
        if (redeem_clock_monotonic() - asked >= apr_time_from_sec(1))
            note_unreachable(r);
        return &redeem_failure_unavailable;
    }
    redeem_conn_t *conn = NULL;
    apr_pool_userdata_get((void **)&conn, "redeem_conn", dbd->pool);
    if (!conn) {
        /* A connection first seen: another module's driver where the API is
         * served (a virtual host that inherits RedeemEngine On and has a
         * DBDriver of its own) hands no libpq connection. mod_redeem.c
         * refuses what it can see at start-up. */
        if (strcmp(apr_dbd_name(dbd->driver), "pgsql") != 0) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          RDMNO(0121) "mod_dbd's driver here is %s: mod_redeem needs pgsql "
                                      "(DBDriver pgsql in this server): answering 500",
                          apr_dbd_name(dbd->driver));
            return &redeem_failure_internal;
        }
        conn = apr_pcalloc(dbd->pool, sizeof *conn);
        apr_pool_userdata_setn(conn, "redeem_conn", NULL, dbd->pool);
    }
    redeem_db_t *handle = apr_palloc(r->pool, sizeof *handle);
    handle->r = r;
    handle->pg = pg;
    handle->conn = conn;
    handle->shortened = 0;
    handle->deadline = deadline;
    handle->began = redeem_clock_monotonic();
    /* Non-blocking sends: a large batch must not block past the deadline. */
    PQsetnonblocking(pg, 1);
    failure = make_ready(handle);
    if (failure)
        return failure;
    *db = handle;
    return NULL;
}

void redeem_db_limit(redeem_db_t *db, apr_interval_time_t from_now)
{
    apr_time_t until = redeem_clock_monotonic() + from_now;
    if (until < db->deadline) {
        db->deadline = until;
        db->shortened = 1;
    }
}

apr_time_t redeem_db_deadline(const redeem_db_t *db)
{
    return db->deadline;
}

void redeem_db_set_deadline(redeem_db_t *db, apr_time_t deadline)
{
    db->deadline = deadline;
}

void redeem_db_allow(redeem_db_t *db, apr_interval_time_t from_now)
{
    apr_time_t until = redeem_clock_monotonic() + from_now;
    if (until > db->deadline)
        db->deadline = until;
}

/* Runs a statement and returns its result. Runs it once more on a fresh
 * backend when it certainly did not run (its prepared form was missing) or
 * when the connection died under a statement that may run again (a reading,
 * or a write that knows its own replay: that one's rerun variant). */
static const redeem_failure_t *run_statement(redeem_db_t *db, redeem_stmt_e id,
                                             const char *const *args, PGresult **result)
{
    request_rec *r = db->r;
    const redeem_stmt_t *stmt = &redeem_statements[id];
    *result = NULL; /* every failure leaves it so: the callers PQclear it */
    /* A write is sent only with a tenth of the time left, first or again:
     * sent with a moment left (after a long hash, say), it could commit
     * while its client is told 503, and the client's retry would then be
     * refused (a registration's as "Email already registered"). A read may
     * use all of its time. */
    int writes = stmt->retry_safe != REDEEM_STMT_READS;
    const redeem_failure_t *late =
        out_of_time(db, "statement ", stmt->name, writes ? redeem_db_too_late(redeem_conf(r)) : 0);
    if (late)
        return late;
    begin_wait(db);
    for (int attempt = 0;; attempt++) {
        const char *label = apr_pstrcat(r->pool, "redeem_", stmt->name, NULL);
        outcome_e outcome =
            PQsendQueryPrepared(db->pg, label, stmt->nargs, args, NULL, NULL, 0)
                ? exchange(db->pg, db->deadline, result)
                : (*result = NULL,
                   PQstatus(db->pg) == CONNECTION_OK ? EXCHANGE_FAILED : EXCHANGE_LOST);
        if (outcome == EXCHANGE_DONE) {
            note_answered(r);
            return NULL;
        }
        int again =
            attempt == 0 &&
            ((outcome == EXCHANGE_LOST && stmt->retry_safe) ||
             (outcome == EXCHANGE_FAILED && failed_with(*result, SQLSTATE_NO_SUCH_STATEMENT)));
        if (!again) {
            if (outcome != EXCHANGE_FAILED)
                db->conn->backend_pid = 0; /* prepare afresh on the next use */
            const redeem_failure_t *failure = db_failure(
                db, apr_pstrcat(r->pool, "statement ", stmt->name, NULL), outcome, *result);
            PQclear(*result);
            *result = NULL;
            return failure;
        }
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      RDMNO(0108) "statement %s could not run (%s): preparing afresh and "
                                  "running it again",
                      stmt->name,
                      outcome == EXCHANGE_LOST ? "connection lost" : "statement missing");
        if (outcome == EXCHANGE_LOST) {
            stmt = &redeem_statements[stmt->rerun];
            /* Shut, as db_failure does, so that make_ready reconnects: libpq
             * may still take it for open, and busy. */
            drop_connection(db->pg);
        }
        PQclear(*result);
        *result = NULL;
        db->conn->backend_pid = 0;
        redeem_shared_count(redeem_conf(r)->shared, REDEEM_COUNTER_DB_RETRIES);
        /* Again only with a tenth of the time left for a write, as above
         * and as a request waiting for a connection: a reconnection that
         * used up the rest would leave it to commit while its client is
         * told 503. A read may use all of its time (a health check has half
         * a second). */
        const redeem_failure_t *failure = make_ready(db);
        if (!failure)
            failure = out_of_time(db, "statement ", stmt->name,
                                  writes ? redeem_db_too_late(redeem_conf(r)) : 0);
        if (failure)
            return failure;
    }
}

const redeem_failure_t *redeem_db_exec(redeem_db_t *db, redeem_stmt_e stmt, const char *const *args,
                                       int *affected)
{
    PGresult *result;
    const redeem_failure_t *failure = run_statement(db, stmt, args, &result);
    if (!failure && affected)
        *affected = atoi(PQcmdTuples(result));
    PQclear(result);
    return failure;
}

/* The rows of a result, copied onto the request's pool. */
static void copy_rows(request_rec *r, const PGresult *result, redeem_rows_t *rows)
{
    rows->nrows = PQntuples(result);
    rows->ncols = PQnfields(result);
    rows->cells =
        apr_pcalloc(r->pool, sizeof(char *) * (apr_size_t)(rows->nrows * rows->ncols + 1));
    for (int i = 0; i < rows->nrows; i++)
        for (int c = 0; c < rows->ncols; c++)
            if (!PQgetisnull(result, i, c))
                rows->cells[i * rows->ncols + c] = apr_pstrmemdup(
                    r->pool, PQgetvalue(result, i, c), (apr_size_t)PQgetlength(result, i, c));
}

const redeem_failure_t *redeem_db_query(redeem_db_t *db, redeem_stmt_e stmt,
                                        const char *const *args, redeem_rows_t *rows)
{
    PGresult *result;
    const redeem_failure_t *failure = run_statement(db, stmt, args, &result);
    if (failure)
        return failure;
    copy_rows(db->r, result, rows);
    PQclear(result);
    return NULL;
}

/* ---- Several statements in one transaction (libpq's pipeline mode): the
 * server runs each as it arrives, and commits them all at the sync, or
 * none. Nothing is run twice: a pipeline that fails fails its request (a
 * batch of codes then asks whether it committed all the same: handle_codes.c). */

/* A pipeline that cannot go on: the connection is shut, so that the server
 * rolls back what it ran, and its next user reconnects (which leaves
 * pipeline mode). */
static const redeem_failure_t *pipeline_abandon(redeem_db_t *db, const char *what,
                                                outcome_e outcome, const PGresult *result)
{
    const redeem_failure_t *failure = db_failure(db, what, outcome, result);
    redeem_db_pipeline_cancel(db);
    return failure;
}

void redeem_db_pipeline_cancel(redeem_db_t *db)
{
    drop_connection(db->pg);
    db->conn->backend_pid = 0;
}

const redeem_failure_t *redeem_db_pipeline_begin(redeem_db_t *db)
{
    db->pipelined = 0;
    begin_wait(db);
    if (PQenterPipelineMode(db->pg))
        return NULL;
    return pipeline_abandon(db, "pipeline", EXCHANGE_LOST, NULL);
}

const redeem_failure_t *redeem_db_pipeline_send(redeem_db_t *db, redeem_stmt_e id,
                                                const char *const *args, const int *lengths,
                                                const int *binary)
{
    const redeem_stmt_t *stmt = &redeem_statements[id];
    const char *label = apr_pstrcat(db->r->pool, "redeem_", stmt->name, NULL);
    /* Sent whole before the caller goes on (the parameters copied into
     * libpq's buffer): while the server runs this one, the caller gathers
     * the next. */
    outcome_e outcome = PQsendQueryPrepared(db->pg, label, stmt->nargs, args, lengths, binary, 0)
                            ? flush_all(db->pg, db->deadline)
                            : (PQstatus(db->pg) == CONNECTION_OK ? EXCHANGE_FAILED : EXCHANGE_LOST);
    if (outcome == EXCHANGE_DONE) {
        db->pipelined++;
        return NULL;
    }
    return pipeline_abandon(db, apr_pstrcat(db->r->pool, "statement ", stmt->name, NULL), outcome,
                            NULL);
}

const redeem_failure_t *redeem_db_pipeline_commit(redeem_db_t *db, redeem_rows_t *rows)
{
    request_rec *r = db->r;
    PGconn *pg = db->pg;
    if (!PQpipelineSync(pg))
        return pipeline_abandon(db, "pipeline sync", EXCHANGE_LOST, NULL);
    /* The results in the order sent, then the sync's. After a failure the
     * server skips the rest (each answered PGRES_PIPELINE_ABORTED) and rolls
     * back at the sync; the first failure is the one logged. */
    const redeem_failure_t *failure = NULL;
    for (int k = 0; k <= db->pipelined; k++) {
        PGresult *result;
        outcome_e outcome = next_result(pg, db->deadline, &result);
        int sync_expected = k == db->pipelined;
        int is_sync = result && PQresultStatus(result) == PGRES_PIPELINE_SYNC;
        const char *what = sync_expected ? "pipeline sync"
                                         : apr_psprintf(r->pool, "pipeline, statement %d of %d",
                                                        k + 1, db->pipelined);
        if (outcome == EXCHANGE_FAILED && !sync_expected && !is_sync) {
            /* Refused, or skipped after a refusal: read on to the sync. */
            if (!failure)
                failure = db_failure(db, what, outcome, result);
        }
        else if (outcome != EXCHANGE_DONE || is_sync != sync_expected) {
            /* Lost, timed out or out of step: whether it committed is not
             * known here, and the connection is of no further use (so a
             * taken key refused before is no reason to try again on it). */
            if (!failure || failure == &redeem_failure_key_taken)
                failure = db_failure(db, what, outcome == EXCHANGE_DONE ? EXCHANGE_LOST : outcome,
                                     result);
            PQclear(result);
            redeem_db_pipeline_cancel(db);
            return failure;
        }
        else if (k == db->pipelined - 1 && rows)
            copy_rows(r, result, rows);
        PQclear(result);
    }
    if (!PQexitPipelineMode(pg)) {
        /* Still in pipeline mode: of no use to the next request either. */
        const redeem_failure_t *lost = pipeline_abandon(db, "pipeline end", EXCHANGE_LOST, NULL);
        return failure && failure != &redeem_failure_key_taken ? failure : lost;
    }
    if (!failure)
        note_answered(r);
    return failure;
}
