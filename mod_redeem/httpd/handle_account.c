/* POST /api/register, POST /api/login, GET /api/profile, GET /api/users. */
#include "httpd/private.h"

static const redeem_body_field_t credential_fields[] = {
    {"email", JSON_STRING, 1},
    {"password", JSON_STRING, 1},
    {NULL, JSON_NULL, 0},
};

typedef struct {
    const char *email; /* normalized */
    const char *password;
    size_t password_len;
} credentials_t;

/* Reads {"email", "password"}; with check_policy the password must also
 * satisfy the registration policy. */
static const redeem_failure_t *read_credentials(request_rec *r, int check_policy,
                                                credentials_t *credentials)
{
    json_t *body;
    const redeem_failure_t *failure = redeem_request_json_object(r, credential_fields, &body);
    if (failure)
        return failure;
    json_t *email = json_object_get(body, "email");
    json_t *password = json_object_get(body, "password");
    char *normalized;
    const char *why = redeem_email_normalize(r->pool, json_string_value(email),
                                             json_string_length(email), &normalized);
    credentials->email = normalized;
    credentials->password = json_string_value(password);
    credentials->password_len = json_string_length(password);
    if (!why && check_policy)
        why = redeem_password_check_policy(credentials->password, credentials->password_len);
    return why ? redeem_failure(r->pool, HTTP_BAD_REQUEST, why) : NULL;
}

/* {"id", "email", "created_at"} as the member "user" of the object open in out. */
static void put_user(redeem_json_out_t *out, const redeem_user_t *user)
{
    redeem_json_out_open(out, "user");
    redeem_json_out_int(out, "id", user->id);
    redeem_json_out_string(out, "email", user->email);
    redeem_json_out_string(out, "created_at", user->created_at);
    redeem_json_out_close(out);
}

/* Written into the request's pool, as the profile is: jansson's objects and
 * json_dumps' string were malloc'd and freed at every login, and each of a
 * child's threads kept freed chunks of their sizes in its own cache of
 * glibc's (docs/performance.md, "A login's response and token written into
 * pool memory"). */
static const redeem_failure_t *send_session(request_rec *r, int status, const char *message,
                                            const redeem_user_t *user)
{
    const char *token = redeem_auth_token_for(r, user);
    if (!token)
        return &redeem_failure_internal;
    redeem_json_out_t out;
    redeem_json_out_begin(&out, r->pool);
    redeem_json_out_string(&out, "message", message);
    put_user(&out, user);
    redeem_json_out_string(&out, "access_token", token);
    redeem_json_out_string(&out, "token_type", "Bearer");
    redeem_json_out_int(&out, "expires_in", redeem_conf(r)->token_lifetime);
    return redeem_response_written(r, status, &out);
}

const redeem_failure_t *redeem_handle_register(redeem_call_t *call)
{
    request_rec *r = call->r;
    credentials_t credentials = {0};
    redeem_user_t user;
    redeem_rows_t rows;
    char *hash;
    const redeem_failure_t *failure;
    const redeem_failure_t *taken =
        redeem_failure(r->pool, HTTP_CONFLICT, "Email already registered");

    if ((failure = read_credentials(r, 1, &credentials)))
        return failure;
    /* The hashing slot before the database (redeem_hashing_reserve): a
     * registration never waits for hashing while it holds a connection. Spare
     * the hashing when the answer is already known; the insert below still
     * settles races through the unique index. */
    if ((failure = redeem_hashing_reserve(r)))
        return failure;
    if ((failure = redeem_call_db(call)) ||
        (failure = redeem_user_by_email(call->db, credentials.email, &user, NULL)) ||
        (user.id_text && (failure = taken))) {
        redeem_hashing_release(r); /* no hash: the slot is another's at once */
        return failure;
    }
    if ((failure = redeem_hashing_hash_reserved(r, credentials.password, credentials.password_len,
                                                &hash)))
        return failure;
    const char *args[USER_INSERT_NARGS] = {
        [ARG_USER_INSERT_EMAIL] = credentials.email, [ARG_USER_INSERT_PASSWORD_HASH] = hash};
    if ((failure = redeem_db_query(call->db, STMT_USER_INSERT, args, &rows)))
        return failure;
    if (rows.nrows == 0)
        return taken;
    redeem_user_from_row(&rows, 0, &user);
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, RDMNO(0303) "user %s registered", user.id_text);
    return send_session(r, HTTP_CREATED, "User registered successfully", &user);
}

/* A hash made at another cost than RedeemArgon2's (by redeem-admin, or
 * before the cost was changed) is made again at that cost once its password
 * is known: until then its check costs other than an unknown email's, and
 * the time a login takes tells that the account exists. Best effort: the
 * login succeeds whether or not the new hash is stored (not when every
 * hashing slot is busy, nor when the database fails; logged). */
static void rehash(redeem_call_t *call, const redeem_user_t *user, const credentials_t *credentials)
{
    request_rec *r = call->r;
    char *hash;
    int written = 0;
    /* Never at the cost of a login waiting for a slot: a later login will do. */
    const redeem_failure_t *failure =
        redeem_hashing_hash_if_idle(r, credentials->password, credentials->password_len, &hash);
    if (!failure) {
        const char *args[USER_REHASH_NARGS] = {[ARG_USER_REHASH_ID] = user->id_text,
                                               [ARG_USER_REHASH_PASSWORD_HASH] = hash,
                                               [ARG_USER_REHASH_OLD_PASSWORD_HASH] =
                                                   user->password_hash};
        failure = redeem_db_exec(call->db, STMT_USER_REHASH, args, &written);
    }
    if (failure)
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      RDMNO(0308) "the password hash of user %s, made at another cost than "
                                  "RedeemArgon2's, could not be made again (%d): kept as it is",
                      user->id_text, failure->status);
    else if (written)
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      RDMNO(0309) "the password hash of user %s made again at RedeemArgon2's cost",
                      user->id_text);
}

/* The database's key of an address of ASCII alone: the address as
 * redeem_email_normalize left it (its capitals lowered), since NFC and the
 * ICU lowercasing of email_key() (sql/003) change nothing else in ASCII.
 * NULL for any other address, whose key only the database makes. */
static const char *ascii_email_key(const char *email)
{
    for (const char *c = email; *c; c++)
        if ((unsigned char)*c >= 0x80)
            return NULL;
    return email;
}

const redeem_failure_t *redeem_handle_login(redeem_call_t *call)
{
    request_rec *r = call->r;
    credentials_t credentials = {0};
    redeem_user_t user;
    redeem_password_result_e verdict;
    const redeem_failure_t *failure;
    const redeem_failure_t *refused =
        redeem_failure(r->pool, HTTP_UNAUTHORIZED, "Invalid email or password");

    const char *email_key, *early_key = NULL;
    /* login-email counts the address as the database identifies it, found
     * or not: every spelling of one account (case, Unicode form, the Kelvin
     * sign for a k) spends one budget, and the answer is the same whether
     * the account exists. An address of ASCII alone is charged before the
     * hashing slot and the database, so a flood of one address's logins
     * waits for neither (its 429 came only after a slot came free). */
    if ((failure = read_credentials(r, 0, &credentials)) ||
        ((early_key = ascii_email_key(credentials.email)) &&
         (failure = redeem_ratelimit_charge(r, REDEEM_SCOPE_LOGIN_EMAIL, early_key))))
        return failure;
    /* A password longer than any can be is nobody's: it is never hashed, so
     * it waits for no slot either (the account is still looked up and
     * charged, as for any attempt). */
    int over_long = redeem_text_utf8_length(credentials.password, credentials.password_len) >
                    REDEEM_PASSWORD_MAX_CHARS;
    if (!over_long && (failure = redeem_hashing_reserve(r))) /* before the database: see register */
        return failure;
    if ((failure = redeem_call_db(call)) ||
        (failure = redeem_user_by_email(call->db, credentials.email, &user, &email_key)) ||
        ((!early_key || strcmp(early_key, email_key) != 0) &&
         (failure = redeem_ratelimit_charge(r, REDEEM_SCOPE_LOGIN_EMAIL, email_key))) ||
        (over_long && (failure = refused))) {
        redeem_hashing_release(r); /* no hash (a 429, say): the slot is another's at once */
        return failure;
    }
    /* An unknown email costs the same hashing as a known one. */
    const char *stored = user.id_text ? user.password_hash : call->conf->dummy_hash;
    if ((failure = redeem_hashing_verify_reserved(r, stored, credentials.password,
                                                  credentials.password_len, &verdict)))
        return failure;
    if (verdict == REDEEM_PASSWORD_ERROR && user.id_text)
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      RDMNO(0304) "stored password hash of user %s is unreadable", user.id_text);
    if (!user.id_text || verdict != REDEEM_PASSWORD_MATCH) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, RDMNO(0305) "login refused");
        return refused;
    }
    if (redeem_password_needs_rehash(user.password_hash, &call->conf->argon2))
        rehash(call, &user, &credentials);
    return send_session(r, HTTP_OK, "Login successful", &user);
}

const redeem_failure_t *redeem_handle_profile(redeem_call_t *call)
{
    const redeem_user_t *user = &call->caller;
    redeem_json_out_t out;
    redeem_json_out_begin(&out, call->r->pool);
    put_user(&out, user);
    return redeem_response_written(call->r, HTTP_OK, &out);
}

const redeem_failure_t *redeem_handle_users(redeem_call_t *call)
{
    request_rec *r = call->r;
    redeem_page_t page;
    redeem_rows_t count, rows;
    const redeem_failure_t *failure;
    if ((failure = redeem_request_page(r, &page)))
        return failure;

    const char *count_args[ROW_COUNT_NARGS] = {[ARG_ROW_COUNT_TABLE] = "users"};
    const char *page_args[USERS_PAGE_NARGS] = {
        [ARG_USERS_PAGE_LIMIT] = apr_psprintf(r->pool, "%" APR_INT64_T_FMT, page.per_page),
        [ARG_USERS_PAGE_OFFSET] = apr_psprintf(r->pool, "%" APR_INT64_T_FMT, page.offset)};
    if ((failure = redeem_call_db(call)) ||
        (failure = redeem_db_query(call->db, STMT_ROW_COUNT, count_args, &count)) ||
        (failure = redeem_db_query(call->db, STMT_USERS_PAGE, page_args, &rows)))
        return failure;

    json_t *users = json_array();
    for (int i = 0; i < rows.nrows; i++) {
        redeem_user_t user;
        redeem_user_from_row(&rows, i, &user);
        json_array_append_new(users, redeem_user_json(&user));
    }
    apr_int64_t total = count.nrows ? apr_atoi64(redeem_db_cell(&count, 0, COL_ROW_COUNT_N)) : 0;
    json_t *body = json_pack("{s:o}", "users", users);
    return redeem_response_json(r, HTTP_OK, redeem_response_page_info(body, &page, total));
}
