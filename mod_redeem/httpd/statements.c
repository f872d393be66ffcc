/* The statement table: statements.h holds the SQL and names the arguments
 * and columns; this table gives each its label and counts. */
#include "httpd/statements.h"

#define READS REDEEM_STMT_READS
#define WRITES 0
#define REPLAYABLE REDEEM_STMT_REPLAYABLE /* a write that recognizes its own earlier run */
#define STATEMENT_RERUN_AS(id, label, nargs, ncols, reads, rerun)                                  \
    [STMT_##id] = {label, SQL_##id, nargs, ncols, reads, STMT_##rerun}
#define STATEMENT(id, label, nargs, ncols, reads)                                                  \
    STATEMENT_RERUN_AS(id, label, nargs, ncols, reads, id)

const redeem_stmt_t redeem_statements[STMT_COUNT_] = {
    STATEMENT(USER_INSERT, "user_insert", USER_INSERT_NARGS, USER_NCOLS, WRITES),
    STATEMENT(USER_BY_EMAIL, "user_by_email", USER_BY_EMAIL_NARGS, USER_NCOLS + 2, READS),
    STATEMENT(USER_REHASH, "user_rehash", USER_REHASH_NARGS, 0, WRITES),
    STATEMENT(USER_BY_ID, "user_by_id", USER_BY_ID_NARGS, USER_NCOLS, READS),
    STATEMENT(USERS_BY_ID, "users_by_id", USERS_BY_ID_NARGS, USER_NCOLS, READS),
    STATEMENT(USERS_PAGE, "users_page", USERS_PAGE_NARGS, USER_NCOLS, READS),
    STATEMENT(ROW_COUNT, "row_count", ROW_COUNT_NARGS, ROW_COUNT_NCOLS, READS),
    STATEMENT(ADMIN_PROMOTE, "admin_promote", ADMIN_PROMOTE_NARGS, ADMIN_NCOLS, WRITES),
    STATEMENT(ADMIN_INSERT, "admin_insert", ADMIN_INSERT_NARGS, ADMIN_NCOLS, WRITES),
    STATEMENT(PING, "ping", PING_NARGS, PING_NCOLS, READS),
    STATEMENT(CODES_INSERT, "codes_insert", CODES_INSERT_NARGS, 0, WRITES),
    STATEMENT(CODES_BEGIN, "codes_begin", CODES_BEGIN_NARGS, 1, WRITES),
    STATEMENT(CODES_STORED, "codes_stored", CODES_STORED_NARGS, CODES_STORED_NCOLS, REPLAYABLE),
    STATEMENT(CODES_AUDIT, "codes_audit", CODES_AUDIT_NARGS, CODES_AUDIT_NCOLS, WRITES),
    STATEMENT(CODES_PAGE, "codes_page", CODES_PAGE_NARGS, CODE_NCOLS, READS),
    STATEMENT(CODES_PAGE_USED, "codes_page_used", CODES_PAGE_NARGS, CODE_NCOLS, READS),
    STATEMENT(CODES_PAGE_UNUSED, "codes_page_unused", CODES_PAGE_NARGS, CODE_NCOLS, READS),
    STATEMENT(CODES_PAGE_BATCH, "codes_page_batch", CODES_PAGE_BATCH_NARGS, CODE_NCOLS, READS),
    STATEMENT(CODES_COUNT_ALL, "codes_count_all", CODES_COUNT_ALL_NARGS, CODES_COUNT_NCOLS, READS),
    STATEMENT(CODES_COUNT_BATCH, "codes_count_batch", CODES_COUNT_BATCH_NARGS, CODES_COUNT_NCOLS,
              READS),
    STATEMENT_RERUN_AS(REDEEM, "redeem", REDEEM_NARGS, REDEEM_NCOLS, REPLAYABLE, REDEEM_RERUN),
    STATEMENT_RERUN_AS(REDEEM_AGAIN, "redeem_again", REDEEM_NARGS, REDEEM_NCOLS, REPLAYABLE,
                       REDEEM_RERUN),
    STATEMENT(REDEEM_RERUN, "redeem_rerun", REDEEM_NARGS, REDEEM_NCOLS, REPLAYABLE),
    STATEMENT_RERUN_AS(AUDIT_INSERT, "audit_insert", AUDIT_INSERT_NARGS, AUDIT_INSERT_NCOLS,
                       REPLAYABLE, AUDIT_INSERT_RERUN),
    STATEMENT(AUDIT_INSERT_RERUN, "audit_insert_rerun", AUDIT_INSERT_NARGS, AUDIT_INSERT_NCOLS,
              REPLAYABLE),
};
