/* Users as the statements return them (SQL_USER_COLUMNS) and as the API
 * shows them. */
#include "httpd/private.h"

static int is_true(const char *cell)
{
    return cell && cell[0] == 't';
}

void redeem_user_from_row(const redeem_rows_t *rows, int row, redeem_user_t *user)
{
    const char *days = redeem_db_cell(rows, row, COL_USER_DAYS_REMAINING);
    user->id_text = redeem_db_cell(rows, row, COL_USER_ID);
    user->id = apr_atoi64(user->id_text);
    user->email = redeem_db_cell(rows, row, COL_USER_EMAIL);
    user->is_admin = is_true(redeem_db_cell(rows, row, COL_USER_IS_ADMIN));
    user->created_at = redeem_db_cell(rows, row, COL_USER_CREATED_AT);
    user->subscription_expires_at = redeem_db_cell(rows, row, COL_USER_EXPIRES_AT);
    user->is_subscribed = is_true(redeem_db_cell(rows, row, COL_USER_IS_SUBSCRIBED));
    user->days_remaining = days ? apr_atoi64(days) : 0;
    const char *generation = redeem_db_cell(rows, row, COL_USER_TOKEN_GENERATION);
    user->token_generation = generation ? apr_atoi64(generation) : 0;
    user->password_hash = rows->ncols > COL_USER_PASSWORD_HASH
                              ? redeem_db_cell(rows, row, COL_USER_PASSWORD_HASH)
                              : NULL;
}

json_t *redeem_user_json(const redeem_user_t *user)
{
    return json_pack("{s:I, s:s, s:s}", "id", (json_int_t)user->id, "email", user->email,
                     "created_at", user->created_at);
}

const redeem_failure_t *redeem_user_by_email(redeem_db_t *db, const char *email,
                                             redeem_user_t *user, const char **email_key)
{
    const char *args[USER_BY_EMAIL_NARGS] = {[ARG_USER_BY_EMAIL_EMAIL] = email};
    redeem_rows_t rows;
    const redeem_failure_t *failure = redeem_db_query(db, STMT_USER_BY_EMAIL, args, &rows);
    user->id_text = NULL;
    if (email_key)
        *email_key = NULL;
    if (failure || rows.nrows != 1)
        return failure ? failure : &redeem_failure_internal;
    if (redeem_db_cell(&rows, 0, COL_USER_ID))
        redeem_user_from_row(&rows, 0, user);
    if (email_key)
        *email_key = redeem_db_cell(&rows, 0, COL_USER_EMAIL_KEY);
    return NULL;
}
