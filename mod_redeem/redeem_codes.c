/* POST /admin/generate-codes and GET /admin/codes. */
#include "redeem_private.h"

#include <apr_lib.h>
#include <openssl/rand.h>

static const redeem_field_t generate_fields[] = {
    {"count", JSON_INTEGER, 1},
    {"expires_at", JSON_STRING, 0},
    {"duration_months", JSON_INTEGER, 0},
    {NULL, JSON_NULL, 0},
};

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

/* Validated options of a generation request. OK, or 400 with *message. */
static int read_generate_request(request_rec *r, int *count, int *months, const char **expires_at,
                                 const char **message)
{
    redeem_server_conf *conf = redeem_conf(r);
    json_t *body;
    int status = redeem_read_json_object(r, generate_fields, &body, message);
    if (status != OK)
        return status;
    json_int_t n = json_integer_value(json_object_get(body, "count"));
    if (n < 1 || n > conf->max_codes) {
        *message = apr_psprintf(r->pool, "count must be an integer from 1 to %d", conf->max_codes);
        return HTTP_BAD_REQUEST;
    }
    *count = (int)n;
    json_t *duration = json_object_get(body, "duration_months");
    json_int_t m = duration ? json_integer_value(duration) : 1;
    if (m < 1 || m > 36) {
        *message = "duration_months must be an integer from 1 to 36";
        return HTTP_BAD_REQUEST;
    }
    *months = (int)m;
    json_t *expires = json_object_get(body, "expires_at");
    *expires_at = NULL;
    if (expires) {
        int64_t when;
        if (redeem_rfc3339_parse(json_string_value(expires), &when) != 0) {
            *message = "expires_at must be an RFC 3339 timestamp such as 2030-01-31T00:00:00Z";
            return HTTP_BAD_REQUEST;
        }
        if (when <= (int64_t)apr_time_now()) {
            *message = "expires_at must be in the future";
            return HTTP_BAD_REQUEST;
        }
        *expires_at = apr_pstrdup(r->pool, json_string_value(expires));
    }
    return OK;
}

int redeem_handle_generate_codes(request_rec *r)
{
    redeem_server_conf *conf = redeem_conf(r);
    redeem_db_t *db;
    redeem_user_t admin;
    redeem_rows_t rows;
    const char *message, *expires_at;
    int count, months;
    int status;
    if (redeem_authenticate(r, REDEEM_ADMIN, &db, &admin) != OK)
        return OK;
    if ((status = read_generate_request(r, &count, &months, &expires_at, &message)) != OK)
        return redeem_send_error(r, status, message);

    const char *batch_id = new_batch_id(r->pool);
    /* Postgres array literals of hex strings: {h1,h2,...}. */
    size_t hash_hex = 2 * REDEEM_CODE_HASH_LEN, sealed_hex = 2 * REDEEM_CODE_SEALED_LEN;
    char *hashes = apr_palloc(r->pool, (size_t)count * (hash_hex + 1) + 2);
    char *sealed = apr_palloc(r->pool, (size_t)count * (sealed_hex + 1) + 2);
    char *hp = hashes, *sp = sealed;
    json_t *codes = redeem_json_on_pool(r->pool, json_array());
    *hp++ = '{';
    *sp++ = '{';
    int failed = !batch_id;
    for (int i = 0; i < count && !failed; i++) {
        char symbols[REDEEM_CODE_SYMBOLS], display[REDEEM_CODE_DISPLAY_LEN + 1];
        unsigned char hash[REDEEM_CODE_HASH_LEN], box[REDEEM_CODE_SEALED_LEN];
        if (redeem_code_generate(&conf->code_keys, symbols) != 0) {
            failed = 1;
            break;
        }
        redeem_code_lookup_hash(&conf->code_keys, symbols, hash);
        if (redeem_code_seal(&conf->code_keys, symbols, hash, box) != 0) {
            failed = 1;
            break;
        }
        if (i > 0) {
            *hp++ = ',';
            *sp++ = ',';
        }
        redeem_hex_encode(hash, sizeof hash, hp);
        redeem_hex_encode(box, sizeof box, sp);
        hp += hash_hex;
        sp += sealed_hex;
        redeem_code_display(symbols, display);
        json_array_append_new(codes, json_string(display));
    }
    if (failed) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, RDMNO(0501) "the CSPRNG or AES-GCM failed");
        return redeem_send_error(r, HTTP_INTERNAL_SERVER_ERROR, NULL);
    }
    *hp++ = '}';
    *hp = '\0';
    *sp++ = '}';
    *sp = '\0';

    const char *target = apr_psprintf(r->pool, "batch %s (%d codes)", batch_id, count);
    const char *args[] = {
        batch_id, apr_itoa(r->pool, months), expires_at,          hashes, sealed, admin.id_text,
        target,   r->useragent_ip,           redeem_request_id(r)};
    if ((status = redeem_db_query(db, STMT_CODES_INSERT, 9, args, &rows)) != OK) {
        redeem_audit_log(r, "codes_generated", admin.id_text, target, "failed");
        return redeem_send_db_error(r, status);
    }
    redeem_audit_log(r, "codes_generated", admin.id_text, target, "success");

    json_t *body =
        json_pack("{s:s, s:i, s:s, s:i, s:O}", "message",
                  apr_psprintf(r->pool, "Successfully generated %d redeem codes", count), "count",
                  count, "batch_id", batch_id, "duration_months", months, "codes", codes);
    const char *stored_expiry = redeem_cell(&rows, 0, 1);
    json_object_set_new(body, "expires_at",
                        stored_expiry ? json_string(stored_expiry) : json_null());
    return redeem_send_json(r, HTTP_CREATED, body);
}

/* Optional boolean query parameter: "true"/"false". OK or 400. */
static int read_used_filter(request_rec *r, const char **used, const char **message)
{
    int bad = 0;
    const char *text = redeem_query_param(r, "used", &bad);
    *used = NULL;
    if (bad || (text && strcmp(text, "true") != 0 && strcmp(text, "false") != 0)) {
        *message = "used must be true or false";
        return HTTP_BAD_REQUEST;
    }
    *used = text;
    return OK;
}

static int is_uuid(const char *text)
{
    if (strlen(text) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (text[i] != '-')
                return 0;
        }
        else if (!apr_isxdigit(text[i]))
            return 0;
    }
    return 1;
}

static json_t *code_json(request_rec *r, const redeem_rows_t *rows, int i)
{
    redeem_server_conf *conf = redeem_conf(r);
    unsigned char hash[REDEEM_CODE_HASH_LEN], box[REDEEM_CODE_SEALED_LEN];
    char symbols[REDEEM_CODE_SYMBOLS], display[REDEEM_CODE_DISPLAY_LEN + 1];
    json_t *code = json_null();
    if (redeem_hex_decode(redeem_cell(rows, i, 1), hash, sizeof hash) == 0 &&
        redeem_hex_decode(redeem_cell(rows, i, 2), box, sizeof box) == 0 &&
        redeem_code_open(&conf->code_keys, box, sizeof box, hash, symbols) == 0) {
        redeem_code_display(symbols, display);
        code = json_string(display);
    }
    else
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      RDMNO(0502) "code %s does not open with the configured encryption key",
                      redeem_cell(rows, i, 0));
    const char *used_by = redeem_cell(rows, i, 7);
    return json_pack("{s:I, s:o, s:b, s:s, s:s?, s:s?, s:o, s:s}", "id",
                     (json_int_t)apr_atoi64(redeem_cell(rows, i, 0)), "code", code, "is_used",
                     redeem_cell(rows, i, 3)[0] == 't', "created_at", redeem_cell(rows, i, 4),
                     "expires_at", redeem_cell(rows, i, 5), "used_at", redeem_cell(rows, i, 6),
                     "used_by", used_by ? json_integer(apr_atoi64(used_by)) : json_null(),
                     "batch_id", redeem_cell(rows, i, 8));
}

int redeem_handle_list_codes(request_rec *r)
{
    redeem_db_t *db;
    redeem_user_t admin;
    redeem_page_t page;
    redeem_rows_t count, rows;
    const char *message, *used;
    apr_int64_t after_id = 0;
    int bad = 0;
    int status;
    if (redeem_authenticate(r, REDEEM_ADMIN, &db, &admin) != OK)
        return OK;
    if ((status = redeem_read_page(r, &page, &message)) != OK ||
        (status = read_used_filter(r, &used, &message)) != OK)
        return redeem_send_error(r, status, message);
    const char *batch_id = redeem_query_param(r, "batch_id", &bad);
    const char *after_text = redeem_query_param(r, "after_id", &bad);
    if (bad)
        return redeem_send_error(r, HTTP_BAD_REQUEST, "Malformed or repeated query parameter");
    if (batch_id && !is_uuid(batch_id))
        return redeem_send_error(r, HTTP_BAD_REQUEST, "batch_id must be a UUID");
    if (after_text) {
        if (redeem_parse_int64(after_text, 0, APR_INT64_MAX, &after_id) != 0)
            return redeem_send_error(r, HTTP_BAD_REQUEST,
                                     "after_id must be a non-negative integer");
        if (redeem_query_param(r, "page", &bad))
            return redeem_send_error(r, HTTP_BAD_REQUEST, "Use either page or after_id, not both");
        page.offset = 0;
    }

    const char *after = apr_psprintf(r->pool, "%" APR_INT64_T_FMT, after_id);
    const char *limit = apr_psprintf(r->pool, "%" APR_INT64_T_FMT, page.per_page);
    const char *offset = apr_psprintf(r->pool, "%" APR_INT64_T_FMT, page.offset);
    apr_int64_t total;
    if (batch_id) {
        const char *count_args[] = {batch_id};
        const char *page_args[] = {batch_id, used, used, after, limit, offset};
        if ((status = redeem_db_query(db, STMT_CODES_COUNT_BATCH, 1, count_args, &count)) != OK ||
            (status = redeem_db_query(db, STMT_CODES_PAGE_BATCH, 6, page_args, &rows)) != OK)
            return redeem_send_db_error(r, status);
    }
    else {
        redeem_stmt_e stmt = !used            ? STMT_CODES_PAGE
                             : used[0] == 't' ? STMT_CODES_PAGE_USED
                                              : STMT_CODES_PAGE_UNUSED;
        const char *page_args[] = {after, limit, offset};
        if ((status = redeem_db_query(db, STMT_CODES_COUNT_ALL, 0, NULL, &count)) != OK ||
            (status = redeem_db_query(db, stmt, 3, page_args, &rows)) != OK)
            return redeem_send_db_error(r, status);
    }
    /* count: (all, used) of the scope. */
    apr_int64_t all = apr_atoi64(redeem_cell(&count, 0, 0));
    apr_int64_t used_count = apr_atoi64(redeem_cell(&count, 0, 1));
    total = !used ? all : used[0] == 't' ? used_count : all - used_count;

    json_t *codes = json_array();
    for (int i = 0; i < rows.nrows; i++)
        json_array_append_new(codes, code_json(r, &rows, i));
    json_t *body = json_pack("{s:o}", "codes", codes);
    /* The keyset cursor for the next page: the last id here, null at the end. */
    json_object_set_new(body, "next_after_id",
                        rows.nrows == page.per_page
                            ? json_integer(apr_atoi64(redeem_cell(&rows, rows.nrows - 1, 0)))
                            : json_null());
    return redeem_send_json(r, HTTP_OK, redeem_json_page_info(body, &page, total));
}
