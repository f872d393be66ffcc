/* POST /admin/generate-codes and GET /admin/codes. */
#include "httpd/private.h"

#include <openssl/rand.h>

static const redeem_body_field_t generate_fields[] = {
    {"count", JSON_INTEGER, 1},
    {"expires_at", JSON_STRING, 0},
    {"duration_months", JSON_INTEGER, 0},
    {NULL, JSON_NULL, 0},
};

typedef struct {
    int count;
    int months;
    const char *expires_at; /* NULL: never */
} generate_request_t;

static const char *new_batch_id(apr_pool_t *p)
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1)
        return NULL;
    b[6] = (unsigned char)((b[6] & 0x0F) | 0x40); /* UUID version 4 */
    b[8] = (unsigned char)((b[8] & 0x3F) | 0x80); /* RFC 4122 variant */
    return apr_psprintf(p, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                        b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
                        b[12], b[13], b[14], b[15]);
}

static const redeem_failure_t *read_generate_request(request_rec *r, generate_request_t *req)
{
    redeem_server_conf *conf = redeem_conf(r);
    json_t *body;
    const redeem_failure_t *failure = redeem_request_json_object(r, generate_fields, &body);
    if (failure)
        return failure;
    json_int_t count = json_integer_value(json_object_get(body, "count"));
    if (count < 1 || count > conf->max_codes)
        return redeem_failure(
            r->pool, HTTP_BAD_REQUEST,
            apr_psprintf(r->pool, "count must be an integer from 1 to %d", (int)conf->max_codes));
    req->count = (int)count;
    json_t *duration = json_object_get(body, "duration_months");
    json_int_t months = duration ? json_integer_value(duration) : 1;
    if (months < 1 || months > 36)
        return redeem_failure(r->pool, HTTP_BAD_REQUEST,
                              "duration_months must be an integer from 1 to 36");
    req->months = (int)months;
    json_t *expires = json_object_get(body, "expires_at");
    req->expires_at = NULL;
    if (expires) {
        int64_t when;
        if (redeem_timestamp_parse(json_string_value(expires), &when) != 0)
            return redeem_failure(
                r->pool, HTTP_BAD_REQUEST,
                "expires_at must be an RFC 3339 timestamp such as 2030-01-31T00:00:00Z");
        if (when <= (int64_t)apr_time_now())
            return redeem_failure(r->pool, HTTP_BAD_REQUEST, "expires_at must be in the future");
        /* The instant as checked, in microseconds: PostgreSQL would round
         * digits past the sixth (59.9999999 into the next second, and
         * 9999-12-31T23:59:59.9999999Z into the year 10000). */
        char *normalized = apr_palloc(r->pool, REDEEM_TIMESTAMP_LEN + 1);
        if (redeem_timestamp_format(when, normalized) != 0)
            return &redeem_failure_internal;
        req->expires_at = normalized;
    }
    return NULL;
}

/* Codes go to the database this many to a statement, each sent while the
 * next is gathered; few enough that the counting trigger's table of the
 * statement's rows stays within PostgreSQL's default work_mem (4 MB). */
#define CODES_PER_STATEMENT 5000

/* Times a batch is made when a new code's lookup key was already taken. */
#define BATCH_ATTEMPTS 3

_Static_assert(REDEEM_CODE_HASH_LEN == 32 && REDEEM_CODE_SEALED_LEN == 52,
               "SQL_CODES_INSERT cuts the byte strings into values of 32 and 52 bytes");

/* The response's "codes" array as JSON text, written as the codes are sent:
 * the symbols need no escaping. */
typedef struct {
    char *text, *end;
} listing_t;

static void listing_add(listing_t *listing, const char symbols[REDEEM_CODE_SYMBOLS])
{
    char display[REDEEM_CODE_DISPLAY_LEN + 1];
    redeem_code_display(symbols, display);
    if (listing->end > listing->text + 1)
        *listing->end++ = ',';
    *listing->end++ = '"';
    memcpy(listing->end, display, REDEEM_CODE_DISPLAY_LEN);
    listing->end += REDEEM_CODE_DISPLAY_LEN;
    *listing->end++ = '"';
}

/* The bytes a listing of count codes takes: quotes, commas and brackets. */
static apr_size_t listing_room(int count)
{
    return (apr_size_t)count * (REDEEM_CODE_DISPLAY_LEN + 3) + 2;
}

static const redeem_failure_t *crypto_failed(request_rec *r)
{
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, RDMNO(0501) "the CSPRNG or AES-GCM failed");
    return &redeem_failure_internal;
}

/* A code's place in the batch, and where its lookup key falls in the index. */
typedef struct {
    uint64_t key;
    int index;
} code_place_t;

static int by_lookup_key(const void *a, const void *b)
{
    uint64_t x = ((const code_place_t *)a)->key, y = ((const code_place_t *)b)->key;
    return (x > y) - (x < y);
}

/* The memory of a batch, made once per request (an attempt after a taken
 * key reuses it): each code made, its order, and one statement's worth of
 * hashes and sealed codes as sent. */
typedef struct {
    unsigned char *hashes, *sealed;
    char *symbols;
    code_place_t *places;
    unsigned char *sent_hashes, *sent_sealed;
} batch_room_t;

static void batch_room_make(apr_pool_t *p, int count, batch_room_t *room)
{
    apr_size_t n = (apr_size_t)count;
    room->hashes = apr_palloc(p, n * REDEEM_CODE_HASH_LEN);
    room->sealed = apr_palloc(p, n * REDEEM_CODE_SEALED_LEN);
    room->symbols = apr_palloc(p, n * REDEEM_CODE_SYMBOLS);
    room->places = apr_palloc(p, n * sizeof *room->places);
    room->sent_hashes = apr_palloc(p, CODES_PER_STATEMENT * REDEEM_CODE_HASH_LEN);
    room->sent_sealed = apr_palloc(p, CODES_PER_STATEMENT * REDEEM_CODE_SEALED_LEN);
}

/* Makes count codes into room and sorts their places by lookup key; 0, or
 * -1 when the CSPRNG or AES-GCM fails. The codes are of this hour's bucket,
 * so their keys fall in one sixteenth of the unique index (core/code.h);
 * within it they are random, so in the order made each new key would
 * descend to another leaf; in key order the descents sweep that part once,
 * each leaf's new keys one after another while it is at hand. */
static int make_batch(const redeem_code_keys_t *keys, int count, const batch_room_t *room)
{
    redeem_code_batch_t codes;
    int bucket = redeem_code_bucket_at((int64_t)apr_time_sec(apr_time_now()));
    if (redeem_code_batch_begin(&codes, keys, bucket) != 0)
        return -1;
    int made = 0;
    for (; made < count; made++) {
        apr_size_t at = (apr_size_t)made;
        unsigned char *hash = room->hashes + at * REDEEM_CODE_HASH_LEN;
        if (redeem_code_batch_next(&codes, room->symbols + at * REDEEM_CODE_SYMBOLS, hash,
                                   room->sealed + at * REDEEM_CODE_SEALED_LEN) != 0)
            break;
        room->places[made].key = redeem_code_lookup_order(hash);
        room->places[made].index = made;
    }
    redeem_code_batch_end(&codes);
    if (made < count)
        return -1;
    qsort(room->places, (apr_size_t)count, sizeof *room->places, by_lookup_key);
    return 0;
}

/* Makes the whole batch, then stores it a statement of codes at a time in
 * the order of their lookup keys, then its audit row: one transaction.
 * *stored: the audit statement's row; listing: room for the batch's codes
 * (listing_room), filled in the order stored (of their ids). *synced: set
 * once the transaction's end (the pipeline's Sync) is handed to the
 * connection; a batch that failed before it cannot have committed. */
static const redeem_failure_t *store_batch(redeem_call_t *call, const generate_request_t *req,
                                           const char *batch_id, const char *target,
                                           const batch_room_t *room, listing_t *listing,
                                           redeem_rows_t *stored, int *synced)
{
    request_rec *r = call->r;
    if (make_batch(&call->conf->code_keys, req->count, room) != 0)
        return crypto_failed(r);
    unsigned char *hashes = room->sent_hashes, *sealed = room->sent_sealed;
    const char *args[CODES_INSERT_NARGS] = {
        [ARG_CODES_INSERT_BATCH_ID] = batch_id,
        [ARG_CODES_INSERT_MONTHS] = apr_itoa(r->pool, req->months),
        [ARG_CODES_INSERT_EXPIRES_AT] = req->expires_at,
        [ARG_CODES_INSERT_HASHES] = (const char *)hashes,
        [ARG_CODES_INSERT_SEALED] = (const char *)sealed,
    };
    static const int binary[CODES_INSERT_NARGS] = {
        [ARG_CODES_INSERT_HASHES] = 1, [ARG_CODES_INSERT_SEALED] = 1};
    int lengths[CODES_INSERT_NARGS] = {0};
    listing->end = listing->text; /* an attempt before may have written to it */
    *listing->end++ = '[';
    const redeem_failure_t *failure = redeem_db_pipeline_begin(call->db);
    const char *begin_args[CODES_BEGIN_NARGS] = {[ARG_CODES_BEGIN_BATCH_ID] = batch_id};
    if (!failure)
        failure = redeem_db_pipeline_send(call->db, STMT_CODES_BEGIN, begin_args, NULL, NULL);
    for (int done = 0, n; !failure && done < req->count; done += n) {
        n = req->count - done < CODES_PER_STATEMENT ? req->count - done : CODES_PER_STATEMENT;
        for (int i = 0; i < n; i++) {
            apr_size_t from = (apr_size_t)room->places[done + i].index;
            memcpy(hashes + (apr_size_t)i * REDEEM_CODE_HASH_LEN,
                   room->hashes + from * REDEEM_CODE_HASH_LEN, REDEEM_CODE_HASH_LEN);
            memcpy(sealed + (apr_size_t)i * REDEEM_CODE_SEALED_LEN,
                   room->sealed + from * REDEEM_CODE_SEALED_LEN, REDEEM_CODE_SEALED_LEN);
            listing_add(listing, room->symbols + from * REDEEM_CODE_SYMBOLS);
        }
        lengths[ARG_CODES_INSERT_HASHES] = n * REDEEM_CODE_HASH_LEN;
        lengths[ARG_CODES_INSERT_SEALED] = n * REDEEM_CODE_SEALED_LEN;
        failure = redeem_db_pipeline_send(call->db, STMT_CODES_INSERT, args, lengths, binary);
    }
    *listing->end++ = ']';
    if (failure)
        return failure;
    const char *audit_args[CODES_AUDIT_NARGS] = {
        [ARG_CODES_AUDIT_ACTOR] = call->caller.id_text,
        [ARG_CODES_AUDIT_TARGET] = target,
        [ARG_CODES_AUDIT_CLIENT] = r->useragent_ip,
        [ARG_CODES_AUDIT_REQUEST_ID] = redeem_request_id(r),
        [ARG_CODES_AUDIT_EXPIRES_AT] = req->expires_at,
        [ARG_CODES_AUDIT_TOKEN_GENERATION] =
            apr_psprintf(r->pool, "%" APR_INT64_T_FMT, call->caller.token_generation),
        [ARG_CODES_AUDIT_EMAIL] = call->caller.email,
    };
    if ((failure = redeem_db_pipeline_send(call->db, STMT_CODES_AUDIT, audit_args, NULL, NULL)))
        return failure;
    *synced = 1;
    return redeem_db_pipeline_commit(call->db, stored);
}

/* A batch that failed as the database went away or stopped answering after
 * its end was sent may have committed all the same (its reply lost on the
 * way: a proxy, a NAT or a failover dropped the connection), or still be
 * running in a backend the module no longer hears. Asked on a new connection, with RedeemDBTimeout
 * afresh: codes_batch_stored() waits for the batch's lock, then reads. A
 * batch stored is answered as stored (*expiry: as the audit statement would
 * have said it); else the failure stands, nothing stored. */
static const redeem_failure_t *settle_lost_batch(redeem_call_t *call, const char *batch_id,
                                                 const generate_request_t *req,
                                                 const redeem_failure_t *failure,
                                                 const char **expiry)
{
    request_rec *r = call->r;
    const char *args[CODES_STORED_NARGS] = {
        [ARG_CODES_STORED_BATCH_ID] = batch_id,
        [ARG_CODES_STORED_EXPIRES_AT] = req->expires_at,
    };
    redeem_rows_t rows;
    redeem_db_allow(call->db, apr_time_from_msec(call->conf->db_timeout_ms));
    if (redeem_db_query(call->db, STMT_CODES_STORED, args, &rows) != NULL || rows.nrows != 1) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      RDMNO(0506) "batch %s: lost with the database, and whether it was stored "
                                  "could not be asked: answered as failed; if it was stored, "
                                  "its row in audit_log says so",
                      batch_id);
        return failure;
    }
    if (strcmp(redeem_db_cell(&rows, 0, COL_CODES_STORED), "t") != 0)
        return failure;
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                  RDMNO(0507) "batch %s: its answer was lost with the connection, but it was "
                              "stored: answering 201",
                  batch_id);
    *expiry = redeem_db_cell(&rows, 0, COL_CODES_STORED_EXPIRES_AT);
    return NULL;
}

const redeem_failure_t *redeem_handle_generate_codes(redeem_call_t *call)
{
    request_rec *r = call->r;
    const redeem_user_t *admin = &call->caller;
    generate_request_t req = {0};
    listing_t listing;
    redeem_rows_t stored;
    const redeem_failure_t *failure;
    if ((failure = read_generate_request(r, &req)))
        return failure;

    const char *batch_id = new_batch_id(r->pool);
    if (!batch_id)
        return crypto_failed(r);
    const char *target = apr_psprintf(r->pool, "batch %s (%d codes)", batch_id, req.count);
    if ((failure = redeem_call_db(call)))
        return failure;
    /* A code is found by the first 64 bits of its hash (sql/008), which a
     * new code may share with a stored one (odds about 3 in a million over
     * 10 million codes): the whole batch was rolled back, so it is made
     * anew. */
    listing.text = listing.end = apr_palloc(r->pool, listing_room(req.count));
    batch_room_t room;
    batch_room_make(r->pool, req.count, &room);
    int synced = 0;
    for (int attempt = 1;; attempt++) {
        /* A batch is a long transaction: from now, RedeemDBTimeout and
         * 100 us a code (100,000 codes take 2 to 4 s on a busy 2-core
         * machine). */
        redeem_db_allow(call->db, apr_time_from_msec(call->conf->db_timeout_ms) +
                                      (apr_interval_time_t)req.count * 100);
        synced = 0;
        failure = store_batch(call, &req, batch_id, target, &room, &listing, &stored, &synced);
        if (failure != &redeem_failure_key_taken)
            break;
        if (attempt == BATCH_ATTEMPTS) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          RDMNO(0504) "batch %s: a new code's lookup key was taken in each of %d "
                                      "attempts: nothing stored",
                          batch_id, BATCH_ATTEMPTS);
            break;
        }
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      RDMNO(0503) "batch %s: a new code's lookup key was taken, the batch is "
                                  "made again (attempt %d of %d)",
                      batch_id, attempt + 1, BATCH_ATTEMPTS);
    }
    /* A batch its admin may no longer make was rolled back: no row, and
     * the answer the request would get now. */
    if (failure == &redeem_failure_actor_gone)
        return redeem_auth_user_gone(r, admin->id_text);
    if (failure == &redeem_failure_actor_not_admin) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      RDMNO(0505) "batch %s refused: user %s is no longer an admin", batch_id,
                      admin->id_text);
        return failure;
    }
    const char *stored_expiry = NULL;
    /* Lost before its end was sent, the batch was never to commit (the
     * connection is shut: its backend rolls back whatever reaches it):
     * nothing to ask, and no second wait on a database that went silent. */
    if (failure == &redeem_failure_unavailable && synced)
        failure = settle_lost_batch(call, batch_id, &req, failure, &stored_expiry);
    else if (!failure)
        stored_expiry = redeem_db_cell(&stored, 0, COL_CODES_AUDIT_EXPIRES_AT);
    redeem_audit_log_line(r, "codes_generated", admin->id_text, target,
                          failure ? "failed" : "success");
    if (failure)
        return failure;

    json_t *body =
        json_pack("{s:s, s:i, s:s, s:i, s:o}", "message",
                  apr_psprintf(r->pool, "Successfully generated %d redeem codes", req.count),
                  "count", req.count, "batch_id", batch_id, "duration_months", req.months,
                  "expires_at", stored_expiry ? json_string(stored_expiry) : json_null());
    return redeem_response_json_plus(r, HTTP_CREATED, body, "codes", listing.text,
                                     (size_t)(listing.end - listing.text));
}

/* The query of GET /admin/codes. */
typedef struct {
    redeem_page_t page;
    const char *used; /* "true", "false" or NULL */
    const char *batch_id;
    apr_int64_t after_id;
} list_request_t;

static const redeem_failure_t *read_list_request(request_rec *r, list_request_t *req)
{
    int bad = 0;
    const redeem_failure_t *failure = redeem_request_page(r, &req->page);
    if (failure)
        return failure;
    /* A repeat (or a bad escape) of any parameter is the same 400, used's
     * too; only a single bad value is named. */
    req->used = redeem_request_query_param(r, "used", &bad);
    req->batch_id = redeem_request_query_param(r, "batch_id", &bad);
    const char *after_text = redeem_request_query_param(r, "after_id", &bad);
    if (bad)
        return redeem_failure(r->pool, HTTP_BAD_REQUEST, "Malformed or repeated query parameter");
    if (req->used && strcmp(req->used, "true") != 0 && strcmp(req->used, "false") != 0)
        return redeem_failure(r->pool, HTTP_BAD_REQUEST, "used must be true or false");
    if (req->batch_id && !redeem_text_is_uuid(req->batch_id))
        return redeem_failure(r->pool, HTTP_BAD_REQUEST, "batch_id must be a UUID");
    req->after_id = 0;
    if (after_text) {
        int64_t after_id;
        if (redeem_text_parse_int64(after_text, 0, INT64_MAX, &after_id) != 0)
            return redeem_failure(r->pool, HTTP_BAD_REQUEST,
                                  "after_id must be a non-negative integer");
        if (redeem_request_query_param(r, "page", &bad))
            return redeem_failure(r->pool, HTTP_BAD_REQUEST,
                                  "Use either page or after_id, not both");
        req->after_id = after_id;
        req->page.offset = 0;
    }
    return NULL;
}

static json_t *code_json(request_rec *r, const redeem_rows_t *rows, int i)
{
    redeem_server_conf *conf = redeem_conf(r);
    unsigned char hash[REDEEM_CODE_HASH_LEN], box[REDEEM_CODE_SEALED_LEN];
    char symbols[REDEEM_CODE_SYMBOLS], display[REDEEM_CODE_DISPLAY_LEN + 1];
    json_t *code = json_null();
    if (redeem_text_hex_decode(redeem_db_cell(rows, i, COL_CODE_HASH), hash, sizeof hash) == 0 &&
        redeem_text_hex_decode(redeem_db_cell(rows, i, COL_CODE_SEALED), box, sizeof box) == 0 &&
        redeem_code_open(&conf->code_keys, box, sizeof box, hash, symbols) == 0) {
        redeem_code_display(symbols, display);
        code = json_string(display);
    }
    else
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      RDMNO(0502) "code %s does not open with the configured encryption key",
                      redeem_db_cell(rows, i, COL_CODE_ID));
    const char *used_by = redeem_db_cell(rows, i, COL_CODE_USED_BY);
    return json_pack("{s:I, s:o, s:b, s:s, s:s?, s:s?, s:o, s:s}", "id",
                     (json_int_t)apr_atoi64(redeem_db_cell(rows, i, COL_CODE_ID)), "code", code,
                     "is_used", redeem_db_cell(rows, i, COL_CODE_IS_USED)[0] == 't', "created_at",
                     redeem_db_cell(rows, i, COL_CODE_CREATED_AT), "expires_at",
                     redeem_db_cell(rows, i, COL_CODE_EXPIRES_AT), "used_at",
                     redeem_db_cell(rows, i, COL_CODE_USED_AT), "used_by",
                     used_by ? json_integer(apr_atoi64(used_by)) : json_null(), "batch_id",
                     redeem_db_cell(rows, i, COL_CODE_BATCH_ID));
}

const redeem_failure_t *redeem_handle_list_codes(redeem_call_t *call)
{
    request_rec *r = call->r;
    list_request_t req = {0};
    redeem_rows_t count, rows;
    const redeem_failure_t *failure;
    if ((failure = read_list_request(r, &req)))
        return failure;

    if ((failure = redeem_call_db(call)))
        return failure;
    const char *after = apr_psprintf(r->pool, "%" APR_INT64_T_FMT, req.after_id);
    const char *limit = apr_psprintf(r->pool, "%" APR_INT64_T_FMT, req.page.per_page);
    const char *offset = apr_psprintf(r->pool, "%" APR_INT64_T_FMT, req.page.offset);
    if (req.batch_id) {
        const char *count_args[CODES_COUNT_BATCH_NARGS] = {[ARG_CODES_COUNT_BATCH_ID] =
                                                               req.batch_id};
        const char *page_args[CODES_PAGE_BATCH_NARGS] = {
            [ARG_CODES_PAGE_BATCH_ID] = req.batch_id,
            [ARG_CODES_PAGE_BATCH_USED] = !req.used            ? "{t,f}"
                                          : req.used[0] == 't' ? "{t}"
                                                               : "{f}",
            [ARG_CODES_PAGE_BATCH_AFTER_ID] = after,
            [ARG_CODES_PAGE_BATCH_LIMIT] = limit,
            [ARG_CODES_PAGE_BATCH_OFFSET] = offset,
        };
        if ((failure = redeem_db_query(call->db, STMT_CODES_COUNT_BATCH, count_args, &count)) ||
            (failure = redeem_db_query(call->db, STMT_CODES_PAGE_BATCH, page_args, &rows)))
            return failure;
    }
    else {
        redeem_stmt_e stmt = !req.used            ? STMT_CODES_PAGE
                             : req.used[0] == 't' ? STMT_CODES_PAGE_USED
                                                  : STMT_CODES_PAGE_UNUSED;
        const char *page_args[CODES_PAGE_NARGS] = {[ARG_CODES_PAGE_AFTER_ID] = after,
                                                   [ARG_CODES_PAGE_LIMIT] = limit,
                                                   [ARG_CODES_PAGE_OFFSET] = offset};
        if ((failure = redeem_db_query(call->db, STMT_CODES_COUNT_ALL, NULL, &count)) ||
            (failure = redeem_db_query(call->db, stmt, page_args, &rows)))
            return failure;
    }
    apr_int64_t all = apr_atoi64(redeem_db_cell(&count, 0, COL_CODES_COUNT_ALL));
    apr_int64_t used = apr_atoi64(redeem_db_cell(&count, 0, COL_CODES_COUNT_USED));
    apr_int64_t total = !req.used ? all : req.used[0] == 't' ? used : all - used;

    json_t *codes = json_array();
    for (int i = 0; i < rows.nrows; i++)
        json_array_append_new(codes, code_json(r, &rows, i));
    json_t *body = json_pack("{s:o}", "codes", codes);
    /* The keyset cursor for the next page: the last id here, null at the end. */
    json_object_set_new(
        body, "next_after_id",
        rows.nrows == req.page.per_page
            ? json_integer(apr_atoi64(redeem_db_cell(&rows, rows.nrows - 1, COL_CODE_ID)))
            : json_null());
    return redeem_response_json(r, HTTP_OK, redeem_response_page_info(body, &req.page, total));
}
