/* POST /redeem: a logged-in user redeems a code, once, atomically. */
#include "redeem_private.h"

static const redeem_field_t redeem_fields[] = {
    {"card_code", JSON_STRING, 1},
    {"user_id", JSON_INTEGER, 0},
    {NULL, JSON_NULL, 0},
};

/* A refusal decided before the code is looked up: audited, then answered. */
static int refuse_attempt(request_rec *r, redeem_db_t *db, const redeem_user_t *user,
                          const char *outcome, int status, const char *message)
{
    redeem_audit_record(r, db, "redeem", user->id_text, NULL, outcome);
    return redeem_send_error(r, status, message);
}

/* A malformed request: nothing is written to the database for it, but the
 * attempt still goes to the error log. */
static int reject_request(request_rec *r, const redeem_user_t *user, const char *outcome,
                          int status, const char *message)
{
    redeem_audit_log(r, "redeem", user->id_text, NULL, outcome);
    return redeem_send_error(r, status, message);
}

int redeem_handle_redeem(request_rec *r)
{
    redeem_server_conf *conf = redeem_conf(r);
    redeem_db_t *db;
    redeem_user_t user;
    redeem_rows_t rows;
    json_t *body;
    const char *message;
    int status;
    if (redeem_authenticate(r, REDEEM_USER, &db, &user) != OK)
        return OK;
    if ((status = redeem_read_json_object(r, redeem_fields, &body, &message)) != OK)
        return reject_request(r, &user, "bad_request", status, message);

    json_t *for_user = json_object_get(body, "user_id");
    if (for_user && json_integer_value(for_user) != user.id)
        return refuse_attempt(r, db, &user, "forbidden", HTTP_FORBIDDEN,
                              "You can only redeem codes for your own account");

    json_t *card = json_object_get(body, "card_code");
    char symbols[REDEEM_CODE_SYMBOLS];
    if (redeem_code_normalize(json_string_value(card), json_string_length(card), symbols) != 0)
        return reject_request(r, &user, "invalid_format", HTTP_BAD_REQUEST, "Invalid code format");
    /* A mistyped or forged code stops here, without a lookup. */
    if (!redeem_code_check(&conf->code_keys, symbols))
        return refuse_attempt(r, db, &user, "invalid_code", HTTP_NOT_FOUND, "Invalid redeem code");

    unsigned char hash[REDEEM_CODE_HASH_LEN];
    char hash_hex[2 * REDEEM_CODE_HASH_LEN + 1];
    redeem_code_lookup_hash(&conf->code_keys, symbols, hash);
    redeem_hex_encode(hash, sizeof hash, hash_hex);
    const char *args[] = {hash_hex,     user.id_text,    user.id_text,
                          user.id_text, r->useragent_ip, redeem_request_id(r)};
    if ((status = redeem_db_query(db, STMT_REDEEM, 6, args, &rows)) != OK || rows.nrows != 1) {
        redeem_audit_log(r, "redeem", user.id_text, NULL, "failed");
        return redeem_send_db_error(r, status == OK ? HTTP_INTERNAL_SERVER_ERROR : status);
    }
    const char *outcome = redeem_cell(&rows, 0, 0);
    const char *code_id = redeem_cell(&rows, 0, 3);
    redeem_audit_log(r, "redeem", user.id_text,
                     code_id ? apr_pstrcat(r->pool, "code ", code_id, NULL) : NULL, outcome);
    if (strcmp(outcome, "success") == 0)
        return redeem_send_json(r, HTTP_OK,
                                json_pack("{s:s, s:b, s:s, s:s}", "message",
                                          "Code redeemed successfully", "subscription_extended", 1,
                                          "new_subscription_expiry", redeem_cell(&rows, 0, 1),
                                          "redeemed_at", redeem_cell(&rows, 0, 2)));
    if (strcmp(outcome, "expired") == 0)
        return redeem_send_error(r, HTTP_GONE, "Code has expired");
    if (strcmp(outcome, "used") == 0)
        return redeem_send_error(r, HTTP_CONFLICT, "Code has already been used");
    return redeem_send_error(r, HTTP_NOT_FOUND, "Invalid redeem code");
}
