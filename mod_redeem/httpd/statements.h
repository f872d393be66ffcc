/* The database contract: every statement the module runs, with its SQL, its
 * arguments and its result columns by name. The schema itself is in sql/.
 *
 * Parameters are PostgreSQL's own, $1 .. $n, each with its type cast, and
 * sent as text (db.c runs these statements through libpq, mod_dbd being the
 * connection pool). Every argument appears once; a statement that needs a
 * value twice binds it in an `args` CTE. db.c checks at preparation that
 * PostgreSQL counts the same arguments and columns as the table in
 * statements.c. */
#ifndef REDEEM_STATEMENTS_H
#define REDEEM_STATEMENTS_H

typedef enum {
    STMT_USER_INSERT,
    STMT_USER_BY_EMAIL,
    STMT_USER_REHASH,
    STMT_USER_BY_ID,
    STMT_USERS_BY_ID,
    STMT_USERS_PAGE,
    STMT_ROW_COUNT,
    STMT_ADMIN_PROMOTE,
    STMT_ADMIN_INSERT,
    STMT_PING,
    STMT_CODES_INSERT,
    STMT_CODES_BEGIN,
    STMT_CODES_STORED,
    STMT_CODES_AUDIT,
    STMT_CODES_PAGE,
    STMT_CODES_PAGE_USED,
    STMT_CODES_PAGE_UNUSED,
    STMT_CODES_PAGE_BATCH,
    STMT_CODES_COUNT_ALL,
    STMT_CODES_COUNT_BATCH,
    STMT_REDEEM,
    STMT_REDEEM_AGAIN,
    STMT_REDEEM_RERUN,
    STMT_AUDIT_INSERT,
    STMT_AUDIT_INSERT_RERUN,
    STMT_COUNT_
} redeem_stmt_e;

enum { REDEEM_STMT_READS = 1, REDEEM_STMT_REPLAYABLE = 2 };

typedef struct {
    const char *name; /* in the log, and the label redeem_<name> */
    const char *sql;
    int nargs;
    int ncols;           /* result columns; 0 for statements run with redeem_db_exec */
    int retry_safe;      /* a reading (REDEEM_STMT_READS), or a write that knows its own
                          * replay (REDEEM_STMT_REPLAYABLE): may run again on a fresh
                          * connection when the old one died under it; 0: never */
    redeem_stmt_e rerun; /* what runs again then: itself, or a variant (REDEEM_RERUN) */
} redeem_stmt_t;

/* Indexed by redeem_stmt_e. */
extern const redeem_stmt_t redeem_statements[STMT_COUNT_];

/* ---- Users. Every statement that returns a user yields these columns
 * first; the database's clock decides whether a subscription is running. */
enum {
    COL_USER_ID,
    COL_USER_EMAIL,
    COL_USER_IS_ADMIN,
    COL_USER_CREATED_AT,
    COL_USER_EXPIRES_AT,
    COL_USER_IS_SUBSCRIBED,
    COL_USER_DAYS_REMAINING,
    COL_USER_TOKEN_GENERATION, /* sql/011: its tokens carry it; revoking adds one */
    USER_NCOLS,
    COL_USER_PASSWORD_HASH = USER_NCOLS, /* STMT_USER_BY_EMAIL only */
    COL_USER_EMAIL_KEY,                  /* STMT_USER_BY_EMAIL only */
};
#define SQL_USER_COLUMNS                                                                           \
    "id, email, is_admin, api_ts(created_at), api_ts(subscription_expires_at), "                   \
    "coalesce(subscription_expires_at > now(), false), "                                           \
    "greatest(0, floor(extract(epoch FROM subscription_expires_at - now()) / 86400))::bigint, "    \
    "token_generation"

/* Emails are stored and matched by their key (sql/003: NFC, lowercased by
 * ICU), so one address has one account whatever its case or Unicode form. */

/* A new account; no row when the email is taken. Columns: the user's. */
enum { ARG_USER_INSERT_EMAIL, ARG_USER_INSERT_PASSWORD_HASH, USER_INSERT_NARGS };
#define SQL_USER_INSERT                                                                            \
    "INSERT INTO users (email, password_hash) VALUES (email_key($1::text), $2::text) "             \
    "ON CONFLICT DO NOTHING RETURNING " SQL_USER_COLUMNS

/* One row, whether the account exists or not: the user's columns (NULL
 * when there is none), COL_USER_PASSWORD_HASH, then COL_USER_EMAIL_KEY, the
 * address as the database identifies it (the login-email limit's key). */
enum { ARG_USER_BY_EMAIL_EMAIL, USER_BY_EMAIL_NARGS };
#define SQL_USER_BY_EMAIL                                                                          \
    "SELECT " SQL_USER_COLUMNS ", password_hash, k.key"                                            \
    " FROM (SELECT email_key($1::text) AS key) k LEFT JOIN users ON email_key(email) = k.key"

/* A password hash made again at the configured cost after a login verified
 * the old one (handle_account.c); nothing when the hash changed meanwhile
 * (redeem-admin reset). One row affected, or none. */
enum {
    ARG_USER_REHASH_ID,
    ARG_USER_REHASH_PASSWORD_HASH,
    ARG_USER_REHASH_OLD_PASSWORD_HASH,
    USER_REHASH_NARGS
};
#define SQL_USER_REHASH                                                                            \
    "UPDATE users SET password_hash = $2::text WHERE id = $1::bigint AND password_hash = $3::text"

enum { ARG_USER_BY_ID_ID, USER_BY_ID_NARGS };
#define SQL_USER_BY_ID "SELECT " SQL_USER_COLUMNS " FROM users WHERE id = $1::bigint"

/* The users of several tokens at once (user_reads.c): the ids as an array
 * literal, "{1,2,3}"; a row for each that exists, in no particular order. */
enum { ARG_USERS_BY_ID_IDS, USERS_BY_ID_NARGS };
#define SQL_USERS_BY_ID "SELECT " SQL_USER_COLUMNS " FROM users WHERE id = ANY($1::bigint[])"

enum { ARG_USERS_PAGE_LIMIT, ARG_USERS_PAGE_OFFSET, USERS_PAGE_NARGS };
/* The page's first id is found by skipping OFFSET entries of the primary
 * key alone (an index-only scan); the columns, timestamps formatted, are
 * made for the page's rows only, not for every row skipped: the last page
 * of 500 of 2 million users took 1.24 s that way, 0.18 s this way (so about
 * 6 s, past RedeemDBTimeout's default, against 0.9 s at 10 million). The
 * same rows, gaps in the ids and pages past the end included. */
#define SQL_USERS_PAGE                                                                             \
    "SELECT " SQL_USER_COLUMNS " FROM users WHERE id >= (SELECT id FROM users ORDER BY id "        \
    "OFFSET $2::bigint LIMIT 1) ORDER BY id LIMIT $1::bigint"

/* An exact table size kept by triggers (sql/001). */
enum { ARG_ROW_COUNT_TABLE, ROW_COUNT_NARGS };
enum { COL_ROW_COUNT_N, ROW_COUNT_NCOLS };
#define SQL_ROW_COUNT "SELECT n FROM row_counts WHERE name = $1::text"

/* ---- The RedeemAdmin bootstrap (admin.c). Both return the id, or no row. */
enum { ARG_ADMIN_PROMOTE_EMAIL, ADMIN_PROMOTE_NARGS };
enum { ARG_ADMIN_INSERT_EMAIL, ARG_ADMIN_INSERT_PASSWORD_HASH, ADMIN_INSERT_NARGS };
enum { COL_ADMIN_ID, ADMIN_NCOLS };
#define SQL_ADMIN_PROMOTE                                                                          \
    "UPDATE users SET is_admin = true WHERE email_key(email) = email_key($1::text) RETURNING id"
#define SQL_ADMIN_INSERT                                                                           \
    "INSERT INTO users (email, password_hash, is_admin)"                                           \
    " VALUES (email_key($1::text), $2::text, true)"                                                \
    "ON CONFLICT DO NOTHING RETURNING id"

#define PING_NARGS 0
#define PING_NCOLS 1
#define SQL_PING "SELECT 1"

/* ---- Codes. A batch is stored by several statements in one transaction
 * (redeem_db_pipeline_*): a chunk of codes each, the whole batch made and
 * sorted by lookup key first, then the batch's audit row; all or nothing. A chunk's hashes
 * and sealed codes come as two bytea parameters in binary, each the chunk's
 * values of 32 and 52 bytes end to end: no hex to encode or decode, and one
 * value each instead of thousands. A byte string of another length leaves a
 * short last value, which the table's length checks refuse. */
enum {
    ARG_CODES_INSERT_BATCH_ID,
    ARG_CODES_INSERT_MONTHS,
    ARG_CODES_INSERT_EXPIRES_AT, /* NULL: never */
    ARG_CODES_INSERT_HASHES,     /* binary */
    ARG_CODES_INSERT_SEALED,     /* binary */
    CODES_INSERT_NARGS
};
#define SQL_CODES_INSERT                                                                           \
    "INSERT INTO redeem_codes (code_hash, code_sealed, batch_id, duration_months, expires_at)"     \
    " SELECT substring($4::bytea FROM i * 32 + 1 FOR 32), substring($5::bytea FROM i * 52 + 1 "    \
    "FOR 52),"                                                                                     \
    " $1::uuid, $2::integer, $3::timestamptz"                                                      \
    " FROM generate_series(0, (length($4::bytea) - 1) / 32) AS i"

/* A batch's first statement: it takes the batch's lock (an advisory lock of
 * its id) to the commit (SQL_CODES_STORED waits for it), and refuses a batch
 * already given up as not stored (SQLSTATE RD409: it arrived late). */
enum { ARG_CODES_BEGIN_BATCH_ID, CODES_BEGIN_NARGS };
#define SQL_CODES_BEGIN "SELECT codes_batch_begin($1::uuid)"

/* Whether a batch whose connection was lost before its answer was stored:
 * waits for the batch's lock (a batch still running), then reads; a batch
 * not stored is marked abandoned, so that its statements, should they reach
 * the database later, are refused (RD409). Answers the batch's expiry as the
 * audit statement would have. Run again, it answers the same. */
enum { ARG_CODES_STORED_BATCH_ID, ARG_CODES_STORED_EXPIRES_AT, CODES_STORED_NARGS };
enum { COL_CODES_STORED, COL_CODES_STORED_EXPIRES_AT, CODES_STORED_NCOLS };
#define SQL_CODES_STORED "SELECT codes_batch_stored($1::uuid), api_ts($2::timestamptz)"

/* The batch's audit row, last in its transaction; answers the batch's
 * expiry as stored (in the API's format). It checks the admin first
 * (codes_actor_check, sql/015): still there with the token's generation
 * and email, and still an admin, on a snapshot of now, its row held to the
 * commit so that a revocation or a demotion waits for it; refused with
 * SQLSTATE RD401 or RD403, and the batch is rolled back. */
enum {
    ARG_CODES_AUDIT_ACTOR,
    ARG_CODES_AUDIT_TARGET,
    ARG_CODES_AUDIT_CLIENT,
    ARG_CODES_AUDIT_REQUEST_ID,
    ARG_CODES_AUDIT_EXPIRES_AT, /* NULL: never */
    ARG_CODES_AUDIT_TOKEN_GENERATION,
    ARG_CODES_AUDIT_EMAIL,
    CODES_AUDIT_NARGS
};
enum { COL_CODES_AUDIT_EXPIRES_AT, CODES_AUDIT_NCOLS };
#define SQL_CODES_AUDIT                                                                            \
    "INSERT INTO audit_log (event, actor_id, target, client_addr, outcome, request_id)"            \
    " SELECT 'codes_generated', $1::bigint, $2::text, $3::text, 'success', $4::text"               \
    " FROM codes_actor_check($1::bigint, $6::bigint, $7::text)"                                    \
    " RETURNING api_ts($5::timestamptz)"

/* Listing pages, each in id order from a keyset cursor, then an offset. */
enum {
    COL_CODE_ID,
    COL_CODE_HASH,   /* hex */
    COL_CODE_SEALED, /* hex */
    COL_CODE_IS_USED,
    COL_CODE_CREATED_AT,
    COL_CODE_EXPIRES_AT,
    COL_CODE_USED_AT,
    COL_CODE_USED_BY,
    COL_CODE_BATCH_ID,
    CODE_NCOLS
};
#define SQL_CODE_COLUMNS                                                                           \
    "id, encode(code_hash, 'hex'), encode(code_sealed, 'hex'), used_at IS NOT NULL,"               \
    " api_ts(created_at), api_ts(expires_at), api_ts(used_at), used_by, batch_id"
enum { ARG_CODES_PAGE_AFTER_ID, ARG_CODES_PAGE_LIMIT, ARG_CODES_PAGE_OFFSET, CODES_PAGE_NARGS };
/* As SQL_USERS_PAGE: the page's first id found by skipping OFFSET entries
 * of an index alone (the primary key, or the partial index of the filter),
 * the columns made for the page's rows only. Formatting every row skipped,
 * the last page of 500 of a million codes took 0.64 s (so about 6 s, past
 * RedeemDBTimeout, at 10 million); skipping by the index, 0.05 s. */
#define SQL_CODES_PAGE_WHERE(condition)                                                            \
    "SELECT " SQL_CODE_COLUMNS " FROM redeem_codes WHERE " condition "id >= (SELECT id"            \
    " FROM redeem_codes WHERE " condition "id > $1::bigint ORDER BY id OFFSET $3::bigint LIMIT 1)" \
    " ORDER BY id LIMIT $2::bigint"
#define SQL_CODES_PAGE SQL_CODES_PAGE_WHERE("")
#define SQL_CODES_PAGE_USED SQL_CODES_PAGE_WHERE("used_at IS NOT NULL AND ")
#define SQL_CODES_PAGE_UNUSED SQL_CODES_PAGE_WHERE("used_at IS NULL AND ")
/* Within one batch: the range of ids its codes were stored in (sql/009),
 * read through the primary key, the batch's own rows kept. Besides the batch
 * the range holds at most the batches stored at the same time (each at most
 * RedeemMaxCodesPerRequest rows), so filtering is bounded, unless codes were
 * moved between batches by hand (which widens it); a batch_id of no batch has
 * no range and no rows. ARG_..._USED is a boolean array literal of the used
 * states wanted: {t,f}, {t} or {f}. */
enum {
    ARG_CODES_PAGE_BATCH_ID,
    ARG_CODES_PAGE_BATCH_USED,
    ARG_CODES_PAGE_BATCH_AFTER_ID,
    ARG_CODES_PAGE_BATCH_LIMIT,
    ARG_CODES_PAGE_BATCH_OFFSET,
    CODES_PAGE_BATCH_NARGS
};
#define SQL_CODES_IN_BATCH                                                                         \
    " batch_id = $1::uuid"                                                                         \
    " AND id BETWEEN (SELECT first_id FROM code_batches WHERE batch_id = $1::uuid)"                \
    " AND (SELECT last_id FROM code_batches WHERE batch_id = $1::uuid)"
#define SQL_CODES_BATCH_WHERE                                                                      \
    SQL_CODES_IN_BATCH " AND (used_at IS NOT NULL) = ANY ($2::boolean[]) AND id > $3::bigint"
/* The page's first id found first, as above: the rows skipped are read but
 * not formatted. */
#define SQL_CODES_PAGE_BATCH                                                                       \
    "SELECT " SQL_CODE_COLUMNS " FROM redeem_codes WHERE" SQL_CODES_BATCH_WHERE                    \
    " AND id >= (SELECT id FROM redeem_codes WHERE" SQL_CODES_BATCH_WHERE                          \
    " ORDER BY id OFFSET $5::bigint LIMIT 1) ORDER BY id LIMIT $4::bigint"

/* Totals of the listing: all codes and used ones, in the whole table (from
 * the trigger-kept counters) or in one batch. */
enum { COL_CODES_COUNT_ALL, COL_CODES_COUNT_USED, CODES_COUNT_NCOLS };
#define CODES_COUNT_ALL_NARGS 0
#define SQL_CODES_COUNT_ALL                                                                        \
    "SELECT coalesce(sum(total), 0), coalesce(sum(used), 0) FROM code_counts"
enum { ARG_CODES_COUNT_BATCH_ID, CODES_COUNT_BATCH_NARGS };
#define SQL_CODES_COUNT_BATCH                                                                      \
    "SELECT count(*), count(used_at) FROM redeem_codes WHERE" SQL_CODES_IN_BATCH

/* ---- Redemption, in one statement and one round trip: check that the
 * token's user still exists, claim the code if still usable, extend the
 * subscription from the later of now and the current expiry (by calendar
 * months of UTC, whatever the session's TimeZone; at most to the end of the
 * year 9999, the last the API's four-digit years show), write the audit
 * row, and say what happened. The code is found by its hash's 64-bit
 * lookup key (the unique index of sql/008), the whole hash compared. Under
 * READ COMMITTED a concurrent claim of the same code makes our UPDATE find
 * used_at set (no row: 409), and concurrent extensions of one user re-read
 * the updated row (no lost month). The claim records the request's id: run
 * again after a lost connection (REDEEM_RERUN, then REDEEM_AGAIN), the
 * statement recognizes its own earlier claim (replayed: the request's id and
 * its user) and changes nothing; a refusal (not_found, expired, used)
 * claimed nothing, so its audit row is written only if that request has none
 * yet (audit_request_logged, sql/015). The first run (REDEEM) looks for
 * neither: nothing of its request can have run before it, and the id may be
 * one a client chose (an operator's SetEnvIf from X-Request-Id), so a used
 * code sent again under an id used before is still 409 with its own row,
 * not a replay, and a refusal or a read audited under an id used before
 * still gets its row. Only a run again trusts the id, where it is at worst
 * the client's own earlier claim or row.
 *
 * The first run may still be alive in the database when the connection to
 * it is lost (a proxy or NAT dropped it): then the run again (REDEEM_RERUN)
 * may meet the first run's claim only after its own snapshot was taken, and
 * would answer "used" for a code this request redeemed. So it locks the
 * code's row first (waiting for any claim in flight to settle), writes and
 * answers only a success or a missing code (or no_user), and calls anything
 * else "recheck": nothing written, and the caller runs SQL_REDEEM once more,
 * on a snapshot taken after that claim settled.
 *
 * Either run claims nothing once the time the module gives it has run out
 * (too_late): a statement that waited in the socket of a frozen backend, or
 * in a network that held it, would otherwise redeem when the database woke,
 * long after its client was told 503. The limit is the request's deadline
 * less a tenth of RedeemDBTimeout, so that a claim made in time has that
 * tenth to commit and answer; its instant is read by the database's clock
 * as the claim is made (a clock behind this host's by more than that tenth
 * lets a late claim commit after the 503; one ahead by more than nine
 * tenths refuses them all). A claim that then waits on a lock past the
 * deadline is the backend's client_connection_check_interval's to cancel
 * (db.c), once the module has shut the connection. */
enum {
    ARG_REDEEM_CODE_HASH, /* hex */
    ARG_REDEEM_USER_ID,
    ARG_REDEEM_CLIENT,
    ARG_REDEEM_REQUEST_ID,
    ARG_REDEEM_TOKEN_GENERATION, /* the token's: another is no_user (revoked) */
    ARG_REDEEM_EMAIL,            /* the token's: another is no_user (another site's token) */
    ARG_REDEEM_ACT_BEFORE,       /* microseconds since 1970 (UTC): from then on, too_late */
    REDEEM_NARGS
};
enum {
    /* success, replayed (this request's claim, found again), not_found,
     * expired, used, no_user (nothing written), too_late (nothing written),
     * or recheck (REDEEM_RERUN only; nothing written) */
    COL_REDEEM_OUTCOME,
    COL_REDEEM_NEW_EXPIRY,
    COL_REDEEM_REDEEMED_AT,
    COL_REDEEM_CODE_ID, /* NULL when not found */
    REDEEM_NCOLS
};
#define SQL_REDEEM_FIND_                                                                           \
    "WITH args AS ("                                                                               \
    " SELECT decode($1::text, 'hex') AS code_hash, $2::bigint AS user_id,"                         \
    " $3::text AS client_addr, $4::text AS request_id, $5::bigint AS token_generation,"            \
    " $6::text AS email, 'epoch'::timestamptz + $7::bigint * interval '1 microsecond' AS "         \
    "act_before),"                                                                                 \
    " caller AS (SELECT u.id, u.subscription_expires_at FROM users u, args"                        \
    " WHERE u.id = args.user_id AND u.token_generation = args.token_generation"                    \
    " AND u.email = args.email),"                                                                  \
    " target AS ("                                                                                 \
    " SELECT c.id, c.used_at, c.expires_at,"
/* The claim a run again may meet: its own first run's (sql/005). */
#define SQL_REDEEM_REPLAY_                                                                         \
    " c.used_request = args.request_id AND c.used_by = args.user_id AS replay"
#define SQL_REDEEM_NO_REPLAY_ " false AS replay"
#define SQL_REDEEM_TARGET_                                                                         \
    " FROM redeem_codes c, args"                                                                   \
    " WHERE code_lookup_key(c.code_hash) = code_lookup_key(args.code_hash)"                        \
    " AND c.code_hash = args.code_hash"
#define SQL_REDEEM_DECIDE_                                                                         \
    "), claimed AS ("                                                                              \
    " UPDATE redeem_codes c SET used_at = now(), used_by = caller.id,"                             \
    " used_request = args.request_id FROM target t, caller, args"                                  \
    " WHERE c.id = t.id AND c.used_at IS NULL"                                                     \
    " AND (c.expires_at IS NULL OR c.expires_at > now())"                                          \
    " AND clock_timestamp() < args.act_before"                                                     \
    " RETURNING c.id, c.duration_months),"                                                         \
    " extended AS ("                                                                               \
    " UPDATE users u SET subscription_expires_at = least(("                                        \
    " greatest(u.subscription_expires_at, now()) AT TIME ZONE 'UTC'"                               \
    " + make_interval(months => cl.duration_months)) AT TIME ZONE 'UTC',"                          \
    " '9999-12-31 23:59:59.999999+00'::timestamptz)"                                               \
    " FROM claimed cl, caller WHERE u.id = caller.id RETURNING u.subscription_expires_at),"        \
    " decided AS ("                                                                                \
    " SELECT CASE WHEN NOT EXISTS (SELECT FROM caller) THEN 'no_user'"                             \
    " WHEN EXISTS (SELECT FROM extended) THEN 'success'"                                           \
    " WHEN (SELECT replay FROM target) THEN 'replayed'"                                            \
    " WHEN clock_timestamp() >= (SELECT act_before FROM args) THEN 'too_late'"                     \
    " WHEN NOT EXISTS (SELECT FROM target) THEN 'not_found'"                                       \
    " WHEN (SELECT used_at FROM target) IS NULL"                                                   \
    " AND (SELECT expires_at FROM target) <= now() THEN 'expired'"                                 \
    " ELSE 'used' END AS result),"
#define SQL_REDEEM_AUDIT_                                                                          \
    " audit AS ("                                                                                  \
    " INSERT INTO audit_log (event, actor_id, target, client_addr, outcome, request_id)"           \
    " SELECT 'redeem', args.user_id, (SELECT 'code ' || id FROM target), args.client_addr,"        \
    " outcome.result, args.request_id FROM outcome, args"                                          \
    " WHERE CASE WHEN outcome.result IN ('not_found', 'expired', 'used')"                          \
    " THEN"
/* A refusal's row, unless its first run wrote it (sql/015). */
#define SQL_REDEEM_REFUSAL_ONCE_                                                                   \
    " NOT audit_request_logged(args.request_id, 'redeem', args.user_id)"
#define SQL_REDEEM_REFUSAL_ " true"
#define SQL_REDEEM_ANSWER_                                                                         \
    " ELSE outcome.result = 'success' END)"                                                        \
    " SELECT result, CASE result WHEN 'success' THEN"                                              \
    " (SELECT api_ts(subscription_expires_at) FROM extended) WHEN 'replayed' THEN"                 \
    " (SELECT api_ts(subscription_expires_at) FROM caller) END,"                                   \
    " CASE result WHEN 'replayed' THEN (SELECT api_ts(used_at) FROM target) ELSE api_ts(now()) "   \
    "END,"                                                                                         \
    " (SELECT id FROM target) FROM outcome"
#define SQL_REDEEM                                                                                 \
    SQL_REDEEM_FIND_ SQL_REDEEM_NO_REPLAY_ SQL_REDEEM_TARGET_ SQL_REDEEM_DECIDE_                   \
        " outcome AS (SELECT result FROM decided)," SQL_REDEEM_AUDIT_ SQL_REDEEM_REFUSAL_          \
            SQL_REDEEM_ANSWER_
#define SQL_REDEEM_AGAIN                                                                           \
    SQL_REDEEM_FIND_ SQL_REDEEM_REPLAY_ SQL_REDEEM_TARGET_ SQL_REDEEM_DECIDE_                      \
        " outcome AS (SELECT result FROM decided)," SQL_REDEEM_AUDIT_ SQL_REDEEM_REFUSAL_ONCE_     \
            SQL_REDEEM_ANSWER_
#define SQL_REDEEM_RERUN                                                                           \
    SQL_REDEEM_FIND_ SQL_REDEEM_REPLAY_ SQL_REDEEM_TARGET_                                         \
        " FOR UPDATE OF c" SQL_REDEEM_DECIDE_                                                      \
        " outcome AS (SELECT CASE WHEN result IN ('success', 'not_found', 'no_user', 'too_late')"  \
        " THEN result"                                                                             \
        " ELSE 'recheck' END AS result FROM decided)," SQL_REDEEM_AUDIT_ SQL_REDEEM_REFUSAL_ONCE_  \
            SQL_REDEEM_ANSWER_

/* ---- One audit row (audit.c), written only while its actor exists with
 * the token generation and email of its token (the actor may be known from
 * a token alone), and only once a request: run again after a lost reply
 * (AUDIT_INSERT_RERUN), it finds the row its first run committed
 * (audit_request_logged, sql/015) and writes no second. The first run does
 * not look (the request id may be a client's choice: SQL_REDEEM). Answers
 * whether the actor is still there (the row written now or before), not the
 * row: the application role may not read audit_log. */
enum {
    ARG_AUDIT_EVENT,
    ARG_AUDIT_ACTOR,
    ARG_AUDIT_TARGET,
    ARG_AUDIT_CLIENT,
    ARG_AUDIT_OUTCOME,
    ARG_AUDIT_REQUEST_ID,
    ARG_AUDIT_ACTOR_TOKEN_GENERATION,
    ARG_AUDIT_ACTOR_EMAIL,
    AUDIT_INSERT_NARGS
};
enum { COL_AUDIT_ACTOR_HERE, AUDIT_INSERT_NCOLS };
#define SQL_AUDIT_INSERT_                                                                          \
    "WITH actor AS (SELECT EXISTS (SELECT FROM users WHERE id = $2::bigint"                        \
    " AND token_generation = $7::bigint AND email = $8::text) AS here),"                           \
    " written AS ("                                                                                \
    " INSERT INTO audit_log (event, actor_id, target, client_addr, outcome, request_id)"           \
    " SELECT $1::text, $2::bigint, $3::text, $4::text, $5::text, $6::text FROM actor"              \
    " WHERE actor.here"
#define SQL_AUDIT_INSERT_END_ ") SELECT here FROM actor"
#define SQL_AUDIT_INSERT SQL_AUDIT_INSERT_ SQL_AUDIT_INSERT_END_
#define SQL_AUDIT_INSERT_RERUN                                                                     \
    SQL_AUDIT_INSERT_                                                                              \
    " AND NOT audit_request_logged($6::text, $1::text, $2::bigint)" SQL_AUDIT_INSERT_END_

#endif
