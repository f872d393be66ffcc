/* RedeemAdmin: the configured admin account, ensured once per child before
 * the first handler uses the database (call.c). It is created when missing;
 * an existing ordinary account of that email is promoted only when its
 * stored password is the configured one, so whoever registered the address
 * first through the API does not become admin by it. An existing admin is
 * left alone, password included. */
#include "httpd/private.h"

#include <apr_atomic.h>

/* Until when (monotonic, as the connection's deadline) the set-up may wait
 * for a hashing slot: while less than a tenth
 * of the connection's time is left no statement is sent anyway, and the
 * set-up may run inside a read of users for several requests
 * (user_reads.c), whose deadline is the earliest of theirs: a wait of
 * RedeemHashWait there kept them all waiting past it. */
static apr_time_t hash_until(request_rec *r, redeem_db_t *db)
{
    return redeem_db_deadline(db) - redeem_db_too_late(redeem_conf(r));
}

static const redeem_failure_t *promote(request_rec *r, redeem_db_t *db, const char *email,
                                       const char *password, const redeem_user_t *user)
{
    redeem_password_result_e verdict;
    const redeem_failure_t *failure = redeem_hashing_verify(
        r, hash_until(r, db), user->password_hash, password, strlen(password), &verdict);
    if (failure)
        return failure;
    if (verdict != REDEEM_PASSWORD_MATCH) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      RDMNO(0306) "RedeemAdmin %s: an ordinary account with this email exists "
                                  "and its password is not the configured one: not made admin",
                      email);
        return NULL;
    }
    const char *args[ADMIN_PROMOTE_NARGS] = {[ARG_ADMIN_PROMOTE_EMAIL] = email};
    redeem_rows_t rows;
    if ((failure = redeem_db_query(db, STMT_ADMIN_PROMOTE, args, &rows)))
        return failure;
    ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r, RDMNO(0307) "account %s made admin (RedeemAdmin)",
                  email);
    return NULL;
}

/* Creates the account; *created is 0 when another child got there first. */
static const redeem_failure_t *create(request_rec *r, redeem_db_t *db, const char *email,
                                      const char *password, int *created)
{
    char *hash;
    const redeem_failure_t *failure =
        redeem_hashing_hash(r, hash_until(r, db), password, strlen(password), &hash);
    if (failure)
        return failure;
    const char *args[ADMIN_INSERT_NARGS] = {
        [ARG_ADMIN_INSERT_EMAIL] = email, [ARG_ADMIN_INSERT_PASSWORD_HASH] = hash};
    redeem_rows_t rows;
    if ((failure = redeem_db_query(db, STMT_ADMIN_INSERT, args, &rows)))
        return failure;
    *created = rows.nrows == 1;
    if (*created)
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                      RDMNO(0302) "admin account %s created (RedeemAdmin)", email);
    return NULL;
}

const redeem_failure_t *redeem_admin_ensure(request_rec *r, redeem_db_t *db)
{
    redeem_server_conf *conf = redeem_conf(r);
    const char *email = conf->admin_email, *password = conf->admin_password;
    const redeem_failure_t *failure = NULL;
    if (apr_atomic_read32(&conf->child->admin_ready))
        return NULL;
    /* Twice at most: a lost race to create it means it exists now. */
    for (int attempt = 0; email && attempt < 2; attempt++) {
        redeem_user_t user;
        int created = 0;
        if ((failure = redeem_user_by_email(db, email, &user, NULL)))
            return failure;
        if (user.id_text) {
            if (!user.is_admin && (failure = promote(r, db, email, password, &user)))
                return failure;
            break;
        }
        if ((failure = create(r, db, email, password, &created)))
            return failure;
        if (created)
            break;
    }
    apr_atomic_set32(&conf->child->admin_ready, 1);
    return NULL;
}
