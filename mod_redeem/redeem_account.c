/* POST /api/register, POST /api/login, GET /api/profile, GET /api/users,
 * and the RedeemAdmin bootstrap. */
#include "redeem_private.h"

#include <apr_atomic.h>

static const redeem_field_t credential_fields[] = {
    {"email", JSON_STRING, 1},
    {"password", JSON_STRING, 1},
    {NULL, JSON_NULL, 0},
};

/* Hashes under the concurrency bound. OK with *hash set, or a status. */
static int hash_password(request_rec *r, const char *password, size_t len, char **hash)
{
    int status = redeem_with_hash_slot(r);
    if (status != OK)
        return status;
    const char *why = redeem_password_hash(r->pool, &redeem_conf(r)->argon2, password, len, hash);
    redeem_release_hash_slot(r);
    if (why) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, RDMNO(0301) "argon2id hashing failed: %s", why);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

/* Verifies under the hashing bound. */
static int verify_password(request_rec *r, const char *stored, const char *password, size_t len,
                           redeem_password_result_e *verdict)
{
    int status = redeem_with_hash_slot(r);
    if (status != OK)
        return status;
    *verdict = redeem_password_verify(stored, password, len);
    redeem_release_hash_slot(r);
    return OK;
}

/* RedeemAdmin: create the account, or promote an existing one, but only
 * when its stored password is the configured one: whoever registered the
 * address first through the API must not become admin by it. */
int redeem_admin_bootstrap(request_rec *r, redeem_db_t *db)
{
    redeem_server_conf *conf = redeem_conf(r);
    const char *email = conf->admin_email, *password = conf->admin_password;
    const char *args[] = {email, NULL};
    redeem_rows_t rows;
    redeem_password_result_e verdict;
    int status = OK;
    for (int attempt = 0; email && attempt < 2 && status == OK; attempt++) {
        if ((status = redeem_db_query(db, STMT_USER_BY_EMAIL, 1, args, &rows)) != OK)
            return status;
        if (rows.nrows == 1) {
            if (redeem_cell(&rows, 0, 2)[0] == 't')
                break; /* already admin; its password is left alone */
            if ((status = verify_password(r, redeem_cell(&rows, 0, REDEEM_USER_NCOLUMNS), password,
                                          strlen(password), &verdict)) != OK)
                return status;
            if (verdict != REDEEM_PASSWORD_MATCH) {
                ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                              RDMNO(0306) "RedeemAdmin %s: an ordinary account with this email "
                                          "exists and its password is not the configured one: "
                                          "not made admin",
                              email);
                break;
            }
            if ((status = redeem_db_query(db, STMT_ADMIN_PROMOTE, 1, args, &rows)) != OK)
                return status;
            ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                          RDMNO(0307) "account %s made admin (RedeemAdmin)", email);
            break;
        }
        char *hash;
        if ((status = hash_password(r, password, strlen(password), &hash)) != OK)
            return status;
        args[1] = hash;
        if ((status = redeem_db_query(db, STMT_ADMIN_INSERT, 2, args, &rows)) != OK)
            return status;
        if (rows.nrows == 1) {
            ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                          RDMNO(0302) "admin account %s created (RedeemAdmin)", email);
            break;
        }
        /* Another child created it meanwhile: look again. */
    }
    apr_atomic_set32(&conf->child->admin_ready, 1);
    return status;
}

static int send_session(request_rec *r, int status, const char *message, const redeem_user_t *user)
{
    const char *token = redeem_token_for(r, user);
    if (!token)
        return redeem_send_error(r, HTTP_INTERNAL_SERVER_ERROR, NULL);
    return redeem_send_json(r, status,
                            json_pack("{s:s, s:o, s:s, s:s, s:I}", "message", message, "user",
                                      redeem_user_json(user), "access_token", token, "token_type",
                                      "Bearer", "expires_in",
                                      (json_int_t)redeem_conf(r)->token_lifetime));
}

/* Reads {"email", "password"}; OK with the normalized email, else a status
 * with the error already sent. */
static int read_credentials(request_rec *r, int check_policy, const char **email,
                            const char **password, size_t *password_len)
{
    json_t *body;
    const char *message;
    int status = redeem_read_json_object(r, credential_fields, &body, &message);
    if (status != OK)
        return redeem_refuse(r, status, message);
    json_t *email_json = json_object_get(body, "email");
    json_t *password_json = json_object_get(body, "password");
    char *normalized;
    if ((message = redeem_email_normalize(r->pool, json_string_value(email_json),
                                          json_string_length(email_json), &normalized)))
        return redeem_refuse(r, HTTP_BAD_REQUEST, message);
    *email = normalized;
    *password = json_string_value(password_json);
    *password_len = json_string_length(password_json);
    if (check_policy && (message = redeem_password_check_policy(*password, *password_len)))
        return redeem_refuse(r, HTTP_BAD_REQUEST, message);
    return OK;
}

int redeem_handle_register(request_rec *r)
{
    const char *email, *password;
    size_t password_len;
    redeem_db_t *db;
    redeem_rows_t rows;
    char *hash;
    int status;

    if (read_credentials(r, 1, &email, &password, &password_len) != OK)
        return OK;
    if ((status = redeem_db_open(r, &db)) != OK)
        return redeem_send_db_error(r, status);

    /* Spare the hashing when the answer is already known; the insert below
     * still settles races through the unique index. */
    const char *lookup_args[] = {email};
    if ((status = redeem_db_query(db, STMT_USER_BY_EMAIL, 1, lookup_args, &rows)) != OK)
        return redeem_send_db_error(r, status);
    if (rows.nrows > 0)
        return redeem_send_error(r, HTTP_CONFLICT, "Email already registered");

    if ((status = hash_password(r, password, password_len, &hash)) != OK)
        return status == HTTP_SERVICE_UNAVAILABLE ? redeem_send_unavailable(r)
                                                  : redeem_send_error(r, status, NULL);
    const char *insert_args[] = {email, hash};
    if ((status = redeem_db_query(db, STMT_USER_INSERT, 2, insert_args, &rows)) != OK)
        return redeem_send_db_error(r, status);
    if (rows.nrows == 0)
        return redeem_send_error(r, HTTP_CONFLICT, "Email already registered");

    redeem_user_t user;
    redeem_user_from_row(&rows, 0, &user);
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, RDMNO(0303) "user %s registered", user.id_text);
    return send_session(r, HTTP_CREATED, "User registered successfully", &user);
}

int redeem_handle_login(request_rec *r)
{
    redeem_server_conf *conf = redeem_conf(r);
    const char *email, *password;
    size_t password_len;
    redeem_db_t *db;
    redeem_rows_t rows;
    int status;

    if (read_credentials(r, 0, &email, &password, &password_len) != OK)
        return OK;
    if (redeem_utf8_length(password, password_len) > REDEEM_PASSWORD_MAX_CHARS)
        return redeem_send_error(r, HTTP_UNAUTHORIZED, "Invalid email or password");
    if ((status = redeem_db_open(r, &db)) != OK)
        return redeem_send_db_error(r, status);
    const char *args[] = {email};
    if ((status = redeem_db_query(db, STMT_USER_BY_EMAIL, 1, args, &rows)) != OK)
        return redeem_send_db_error(r, status);

    /* An unknown email costs the same hashing as a known one. */
    const char *stored =
        rows.nrows == 1 ? redeem_cell(&rows, 0, REDEEM_USER_NCOLUMNS) : conf->dummy_hash;
    redeem_password_result_e verdict;
    if (verify_password(r, stored, password, password_len, &verdict) != OK)
        return redeem_send_unavailable(r);

    if (verdict == REDEEM_PASSWORD_ERROR && rows.nrows == 1)
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      RDMNO(0304) "stored password hash of user %s is unreadable",
                      redeem_cell(&rows, 0, 0));
    if (rows.nrows != 1 || verdict != REDEEM_PASSWORD_MATCH) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, RDMNO(0305) "login refused");
        return redeem_send_error(r, HTTP_UNAUTHORIZED, "Invalid email or password");
    }
    redeem_user_t user;
    redeem_user_from_row(&rows, 0, &user);
    return send_session(r, HTTP_OK, "Login successful", &user);
}

int redeem_handle_profile(request_rec *r)
{
    redeem_db_t *db;
    redeem_user_t user;
    if (redeem_authenticate(r, REDEEM_USER, &db, &user) != OK)
        return OK;
    return redeem_send_json(r, HTTP_OK, json_pack("{s:o}", "user", redeem_user_json(&user)));
}

int redeem_handle_users(request_rec *r)
{
    redeem_db_t *db;
    redeem_user_t admin;
    redeem_page_t page;
    redeem_rows_t count, rows;
    const char *message;
    int status;
    if (redeem_authenticate(r, REDEEM_ADMIN, &db, &admin) != OK)
        return OK;
    if ((status = redeem_read_page(r, &page, &message)) != OK)
        return redeem_send_error(r, status, message);

    const char *count_args[] = {"users"};
    const char *page_args[] = {apr_psprintf(r->pool, "%" APR_INT64_T_FMT, page.per_page),
                               apr_psprintf(r->pool, "%" APR_INT64_T_FMT, page.offset)};
    if ((status = redeem_db_query(db, STMT_ROW_COUNT, 1, count_args, &count)) != OK ||
        (status = redeem_db_query(db, STMT_USERS_PAGE, 2, page_args, &rows)) != OK)
        return redeem_send_db_error(r, status);

    json_t *users = json_array();
    for (int i = 0; i < rows.nrows; i++) {
        redeem_user_t user;
        redeem_user_from_row(&rows, i, &user);
        json_array_append_new(users, redeem_user_json(&user));
    }
    apr_int64_t total = count.nrows ? apr_atoi64(redeem_cell(&count, 0, 0)) : 0;
    json_t *body = json_pack("{s:o}", "users", users);
    return redeem_send_json(r, HTTP_OK, redeem_json_page_info(body, &page, total));
}
