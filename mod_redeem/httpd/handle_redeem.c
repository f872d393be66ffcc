/* POST /redeem: a logged-in user redeems a code, once, atomically. */
#include "httpd/private.h"

static const redeem_body_field_t redeem_fields[] = {
    {"card_code", JSON_STRING, 1},
    {"user_id", JSON_INTEGER, 0},
    {NULL, JSON_NULL, 0},
};

/* Every attempt is counted and logged. */
static void record(redeem_call_t *call, const char *target, const char *outcome)
{
    redeem_audit_log_line(call->r, "redeem", call->caller.id_text, target, outcome);
    redeem_metrics_redemption(call->r, outcome);
}

/* A refusal decided before the code is looked up: its audit row written
 * here (the redemption statement writes its own), and the refusal answered
 * only once it is. */
static const redeem_failure_t *refuse_attempt(redeem_call_t *call, const char *outcome, int status,
                                              const char *message)
{
    const redeem_failure_t *failure = redeem_call_db(call);
    if (failure) {
        record(call, NULL, "failed");
        return failure;
    }
    if ((failure = redeem_audit_write_row(call->r, call->db, "redeem", &call->caller, NULL, outcome,
                                          0))) {
        if (failure->status != HTTP_UNAUTHORIZED) /* else the actor is gone: no attempt */
            redeem_metrics_redemption(call->r, "failed");
        return failure;
    }
    redeem_metrics_redemption(call->r, outcome);
    return redeem_failure(call->r->pool, status, message);
}

/* A malformed request writes nothing to the database; the attempt still
 * gets its line in the error log. Its token's user is read first (only
 * here: a request that reaches the redemption statement or an audit row's
 * insert has it checked there, in the same round trip): a token is good
 * only while its account exists at its generation, so a deleted or revoked
 * account's malformed request is 401 as its well-formed one is, with no
 * line and no metric (there is no actor). An answer httpd gave itself (a
 * body over LimitRequestBody) stands. */
static const redeem_failure_t *reject_request(redeem_call_t *call, const char *outcome,
                                              const redeem_failure_t *failure)
{
    const redeem_failure_t *refused =
        failure == &redeem_failure_answered ? NULL : redeem_auth_confirm_token_user(call);
    if (refused) {
        if (refused->status != HTTP_UNAUTHORIZED)
            record(call, NULL, "failed");
        return refused;
    }
    record(call, NULL, outcome);
    return failure;
}

static const redeem_failure_t *answer(request_rec *r, const redeem_rows_t *rows)
{
    const char *outcome = redeem_db_cell(rows, 0, COL_REDEEM_OUTCOME);
    if (strcmp(outcome, "success") == 0 || strcmp(outcome, "replayed") == 0) {
        redeem_json_out_t out;
        redeem_json_out_begin(&out, r->pool);
        redeem_json_out_string(&out, "message", "Code redeemed successfully");
        redeem_json_out_bool(&out, "subscription_extended", 1);
        redeem_json_out_string(&out, "new_subscription_expiry",
                               redeem_db_cell(rows, 0, COL_REDEEM_NEW_EXPIRY));
        redeem_json_out_string(&out, "redeemed_at",
                               redeem_db_cell(rows, 0, COL_REDEEM_REDEEMED_AT));
        return redeem_response_written(r, HTTP_OK, &out);
    }
    if (strcmp(outcome, "expired") == 0)
        return redeem_failure(r->pool, HTTP_GONE, "Code has expired");
    if (strcmp(outcome, "used") == 0)
        return redeem_failure(r->pool, HTTP_CONFLICT, "Code has already been used");
    return redeem_failure(r->pool, HTTP_NOT_FOUND, "Invalid redeem code");
}

/* A redemption refused by a rate limit (429) is an attempt like any other:
 * its line in the error log with its request id, and its metric. The first
 * refusal of each key and window that reaches here (its token good: one
 * whose token failed has no actor, and is answered before) also gets its
 * audit row, so the trail shows that a limit was reached, and when; a row for
 * every refusal would make each refused request a write to the database,
 * which the limit is there to spare. A row that cannot be written does not
 * change the answer: the refusal stands. */
const redeem_failure_t *redeem_redeem_limited(redeem_call_t *call, const redeem_failure_t *limited)
{
    if (!redeem_ratelimit_first_audited(call->r)) {
        record(call, NULL, "rate_limited");
        return limited;
    }
    redeem_metrics_redemption(call->r, "rate_limited");
    const redeem_failure_t *failure = redeem_call_db(call);
    if (failure) /* else the row's writing logs the attempt's line */
        redeem_audit_log_line(call->r, "redeem", call->caller.id_text, NULL, "rate_limited");
    else
        failure = redeem_audit_write_row(call->r, call->db, "redeem", &call->caller, NULL,
                                         "rate_limited", 1);
    if (failure)
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, call->r,
                      RDMNO(0704) "the audit row of a redemption refused by a rate limit could "
                                  "not be written (%d %s): answering 429 all the same",
                      failure->status, failure->message ? failure->message : "");
    return limited;
}

/* The statement reached the database after the time it was given (statements.h):
 * it wrote nothing. Answered as a statement that timed out is. act_before is
 * a wall-clock instant (as sent), so compared with this host's wall clock. */
static const redeem_failure_t *too_late(request_rec *r, apr_time_t act_before)
{
    apr_time_t now = apr_time_now();
    if (now < act_before)
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      RDMNO(0702) "redemption refused by the database as too late, %" APR_TIME_T_FMT
                                  " ms before its time was up by this host's clock: the "
                                  "database's clock is ahead of this host's; nothing written",
                      apr_time_as_msec(act_before - now));
    else
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      RDMNO(0703) "redemption reached the database after its time was up "
                                  "(RedeemDBTimeout less a tenth): nothing written");
    return &redeem_failure_unavailable;
}

/* The redemption statement, and again as long as it answers "recheck" (run
 * again after a lost connection, it met a claim that may be this request's
 * own first run, settled after its snapshot: statements.h), then in the form
 * that knows its own replay (REDEEM_AGAIN). Only that answer
 * is not final, and a lost connection is rare: a third "recheck" (three
 * connections lost in a row) is the database failing, answered 503 with
 * Retry-After like any outage (the recheck itself wrote nothing). */
static const redeem_failure_t *run_redemption(redeem_call_t *call, const char *const *args,
                                              redeem_rows_t *rows)
{
    for (int run = 0; run < 3; run++) {
        const redeem_failure_t *failure =
            redeem_db_query(call->db, run == 0 ? STMT_REDEEM : STMT_REDEEM_AGAIN, args, rows);
        if (failure)
            return failure;
        if (rows->nrows != 1)
            return &redeem_failure_internal;
        if (strcmp(redeem_db_cell(rows, 0, COL_REDEEM_OUTCOME), "recheck") != 0)
            return NULL;
        ap_log_rerror(
            APLOG_MARK, APLOG_INFO, 0, call->r,
            RDMNO(0701) "redemption run again after a lost connection met a claim "
                        "or expiry it cannot judge on its snapshot: running it once more");
    }
    return &redeem_failure_unavailable;
}

const redeem_failure_t *redeem_handle_redeem(redeem_call_t *call)
{
    request_rec *r = call->r;
    const redeem_user_t *user = &call->caller;
    json_t *body;
    redeem_rows_t rows;
    const redeem_failure_t *failure;
    if ((failure = redeem_request_json_object(r, redeem_fields, &body)))
        return reject_request(call, "bad_request", failure);

    json_t *for_user = json_object_get(body, "user_id");
    if (for_user && json_integer_value(for_user) != user->id)
        return refuse_attempt(call, "forbidden", HTTP_FORBIDDEN,
                              "You can only redeem codes for your own account");

    json_t *card = json_object_get(body, "card_code");
    char symbols[REDEEM_CODE_SYMBOLS];
    if (redeem_code_normalize(json_string_value(card), json_string_length(card), symbols) != 0)
        return reject_request(call, "invalid_format",
                              redeem_failure(r->pool, HTTP_BAD_REQUEST, "Invalid code format"));
    /* A mistyped or forged code stops here, without a lookup. */
    int bucket = redeem_code_check(&call->conf->code_keys, symbols);
    if (bucket < 0)
        return refuse_attempt(call, "invalid_code", HTTP_NOT_FOUND, "Invalid redeem code");

    unsigned char hash[REDEEM_CODE_HASH_LEN];
    char hash_hex[2 * REDEEM_CODE_HASH_LEN + 1];
    redeem_code_lookup_hash(&call->conf->code_keys, symbols, bucket, hash);
    redeem_text_hex_encode(hash, sizeof hash, hash_hex);
    const char *args[REDEEM_NARGS] = {
        [ARG_REDEEM_CODE_HASH] = hash_hex,
        [ARG_REDEEM_USER_ID] = user->id_text,
        [ARG_REDEEM_CLIENT] = r->useragent_ip,
        [ARG_REDEEM_REQUEST_ID] = redeem_request_id(r),
        [ARG_REDEEM_TOKEN_GENERATION] =
            apr_psprintf(r->pool, "%" APR_INT64_T_FMT, user->token_generation),
        [ARG_REDEEM_EMAIL] = user->email,
    };
    apr_time_t act_before = 0;
    if (!(failure = redeem_call_db(call))) {
        /* The request's deadline is monotonic (db.c); the database compares
         * act_before with its own clock, so it leaves as a wall-clock
         * instant: now, plus what is left, less the tenth. */
        act_before = apr_time_now() + (redeem_db_deadline(call->db) - redeem_clock_monotonic()) -
                     redeem_db_too_late(call->conf);
        args[ARG_REDEEM_ACT_BEFORE] = apr_psprintf(r->pool, "%" APR_TIME_T_FMT, act_before);
        failure = run_redemption(call, args, &rows);
    }
    if (!failure && strcmp(redeem_db_cell(&rows, 0, COL_REDEEM_OUTCOME), "too_late") == 0)
        failure = too_late(r, act_before);
    if (failure) {
        record(call, NULL, "failed");
        return failure;
    }
    if (strcmp(redeem_db_cell(&rows, 0, COL_REDEEM_OUTCOME), "no_user") == 0)
        return redeem_auth_user_gone(r, user->id_text);
    const char *code_id = redeem_db_cell(&rows, 0, COL_REDEEM_CODE_ID);
    record(call, code_id ? apr_pstrcat(r->pool, "code ", code_id, NULL) : NULL,
           redeem_db_cell(&rows, 0, COL_REDEEM_OUTCOME));
    return answer(r, &rows);
}
