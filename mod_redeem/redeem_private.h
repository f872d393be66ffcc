/* Types and functions shared by the httpd-facing parts of mod_redeem. */
#ifndef REDEEM_PRIVATE_H
#define REDEEM_PRIVATE_H

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <apr_dbd.h>
#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <jansson.h>
#include <mod_dbd.h>

#include "redeem_code.h"
#include "redeem_email.h"
#include "redeem_password.h"
#include "redeem_time.h"
#include "redeem_token.h"

APLOG_USE_MODULE(redeem);
extern module AP_MODULE_DECLARE_DATA redeem_module;

/* Our own message tags, in the manner of httpd's APLOGNO (AH numbers are httpd's). */
#define RDMNO(n) "RDM" #n ": "

#define REDEEM_DEFAULT_ADMIN_PASSWORD "AdminPassword123"

/* State of one child process, made in child_init: the only mutable state. */
typedef struct {
    apr_uint32_t admin_ready; /* the configured admin exists (atomic flag) */
    /* argon2 computations running now, under hash_lock; a finished one
     * signals hash_freed to a request waiting for a slot. */
    int hashes_in_flight;
    apr_thread_mutex_t *hash_lock;
    apr_thread_cond_t *hash_freed;
} redeem_child_t;

typedef struct {
    int engine; /* -1: unset */
    const char *base_path;
    const char *jwt_secret;      /* from RedeemJWTSecret, or read from the file */
    const char *jwt_secret_file; /* read in post_config, unless an inline secret came later */
    apr_int64_t token_lifetime;
    const char *issuer;
    apr_int64_t leeway;
    redeem_argon2_cost_t argon2;
    int hash_concurrency;
    apr_interval_time_t hash_wait; /* how long a request waits for a hashing slot */
    apr_off_t max_body;
    const char *admin_email;
    const char *admin_password;
    int max_codes;
    const char *code_mac_key_file;
    const char *code_enc_key_file;

    /* Resolved in post_config. */
    redeem_token_config_t token;
    redeem_code_keys_t code_keys;
    const char *dummy_hash; /* verified against for unknown emails */
    ap_dbd_t *(*dbd_acquire)(request_rec *r);
    redeem_child_t *child;
} redeem_server_conf;

static inline redeem_server_conf *redeem_conf(const request_rec *r)
{
    return ap_get_module_config(r->server->module_config, &redeem_module);
}

/* redeem_config.c */
extern const command_rec redeem_directives[];
void *redeem_create_server_conf(apr_pool_t *p, server_rec *s);
void *redeem_merge_server_conf(apr_pool_t *p, void *base, void *add);
int redeem_config_finish(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s);

/* redeem_http.c: JSON in and out, the API's conventions. Functions named
 * redeem_send_* write a whole response and return OK for the handler to return. */
/* Drops the reference when p is cleared, so no path has to decref. */
json_t *redeem_json_on_pool(apr_pool_t *p, json_t *value);
int redeem_send_json(request_rec *r, int status, json_t *body); /* steals body */
int redeem_send_error(request_rec *r, int status, const char *message);
int redeem_send_unavailable(request_rec *r);
/* The response for a failed database step: 503 or 500, no driver text. */
int redeem_send_db_error(request_rec *r, int status);
/* Sends the error and returns its status: for helpers whose callers must
 * stop (any status but OK means the response is out). */
int redeem_refuse(request_rec *r, int status, const char *message);
typedef struct {
    const char *name;
    json_type type; /* JSON_INTEGER, JSON_STRING, ... */
    int required;
} redeem_field_t;
/* Reads and checks the request body against fields (a NULL-named entry ends
 * the list). Returns OK with *body set, else an HTTP status with *message. */
int redeem_read_json_object(request_rec *r, const redeem_field_t *fields, json_t **body,
                            const char **message);
/* Query parameter name of r->args, URL-decoded; NULL when absent. Sets *bad
 * when the query string is malformed or repeats the parameter. */
const char *redeem_query_param(request_rec *r, const char *name, int *bad);
/* Parses a decimal integer in [min, max]; 0 on success. */
int redeem_parse_int64(const char *text, apr_int64_t min, apr_int64_t max, apr_int64_t *out);
typedef struct {
    apr_int64_t page, per_page, offset;
} redeem_page_t;
/* page/per_page from the query. Returns OK or 400 with *message. */
int redeem_read_page(request_rec *r, redeem_page_t *page, const char **message);
json_t *redeem_json_page_info(json_t *body, const redeem_page_t *page, apr_int64_t total);

/* redeem_db.c: the pooled connection with our statements prepared on it. */
typedef enum {
    STMT_USER_INSERT,
    STMT_USER_BY_EMAIL,
    STMT_USER_BY_ID,
    STMT_USERS_PAGE,
    STMT_ROW_COUNT,
    STMT_ADMIN_PROMOTE,
    STMT_ADMIN_INSERT,
    STMT_PING,
    STMT_CODES_INSERT,
    STMT_CODES_PAGE,
    STMT_CODES_PAGE_USED,
    STMT_CODES_PAGE_UNUSED,
    STMT_CODES_PAGE_BATCH,
    STMT_CODES_COUNT_ALL,
    STMT_CODES_COUNT_BATCH,
    STMT_REDEEM,
    STMT_AUDIT_INSERT,
    STMT_COUNT_
} redeem_stmt_e;

typedef struct {
    int nrows, ncols;
    const char **cells; /* nrows * ncols, NULL for SQL NULL */
} redeem_rows_t;

static inline const char *redeem_cell(const redeem_rows_t *rows, int row, int col)
{
    return rows->cells[row * rows->ncols + col];
}

typedef struct redeem_db redeem_db_t;
/* A connection ready for our statements: acquired from mod_dbd, schema
 * version checked and statements prepared once per backend. Returns OK, or
 * 503/500 after logging why (the caller sends the response). */
int redeem_db_open(request_rec *r, redeem_db_t **db);
/* Runs a prepared statement with text arguments; 0 on success, else 503 when
 * the database is unreachable, 500 otherwise (logged, never sent). */
int redeem_db_query(redeem_db_t *db, redeem_stmt_e stmt, int nargs, const char **args,
                    redeem_rows_t *rows);
/* The same for a statement that returns no rows; *affected may be NULL. */
int redeem_db_exec(redeem_db_t *db, redeem_stmt_e stmt, int nargs, const char **args,
                   int *affected);

/* Creates the RedeemAdmin account once per child (idempotent); redeem_account.c. */
int redeem_admin_bootstrap(request_rec *r, redeem_db_t *db);

/* redeem_audit.c: the audit trail. Events written inside a larger statement
 * take their values from redeem_audit_args; the others go through
 * redeem_audit_record. Both also log at info level with the request id. */
const char *redeem_request_id(request_rec *r);
void redeem_audit_log(request_rec *r, const char *event, const char *actor, const char *target,
                      const char *outcome);
void redeem_audit_record(request_rec *r, redeem_db_t *db, const char *event, const char *actor,
                         const char *target, const char *outcome);

/* redeem_auth.c */
typedef struct {
    apr_int64_t id;
    const char *id_text;
    const char *email;
    int is_admin;
    const char *created_at;
    const char *subscription_expires_at; /* NULL when never subscribed */
    int is_subscribed;
    apr_int64_t days_remaining;
} redeem_user_t;
/* Columns, in this order, of every statement that returns a user. The
 * database's clock decides whether a subscription is running. */
#define REDEEM_USER_COLUMNS                                                                        \
    "id, email, is_admin, api_ts(created_at), api_ts(subscription_expires_at), "                   \
    "coalesce(subscription_expires_at > now(), false), "                                           \
    "greatest(0, floor(extract(epoch FROM subscription_expires_at - now()) / 86400))::bigint"
#define REDEEM_USER_NCOLUMNS 7
void redeem_user_from_row(const redeem_rows_t *rows, int row, redeem_user_t *user);
json_t *redeem_user_json(const redeem_user_t *user);
typedef enum { REDEEM_USER, REDEEM_ADMIN } redeem_access_e;
/* The bearer token checked, a database connection opened (*db) and the
 * token's user freshly read from it; with REDEEM_ADMIN also 403 unless the
 * database says admin. Returns OK, or the status of the error response it
 * has already sent (401, 403, 503, ...). */
int redeem_authenticate(request_rec *r, redeem_access_e access, redeem_db_t **db,
                        redeem_user_t *user);
const char *redeem_token_for(request_rec *r, const redeem_user_t *user);
/* Runs argon2 with a bound on how many run at once in this process. */
int redeem_with_hash_slot(request_rec *r);
void redeem_release_hash_slot(request_rec *r);

/* Handlers, one file per group of endpoints. Each returns OK after sending. */
int redeem_handle_register(request_rec *r);
int redeem_handle_login(request_rec *r);
int redeem_handle_profile(request_rec *r);
int redeem_handle_users(request_rec *r);
int redeem_handle_health(request_rec *r);
int redeem_handle_generate_codes(request_rec *r);
int redeem_handle_list_codes(request_rec *r);
int redeem_handle_redeem(request_rec *r);
int redeem_handle_own_subscription(request_rec *r);
int redeem_handle_subscription_of(request_rec *r);

/* redeem_router.c */
int redeem_dispatch(request_rec *r);
int redeem_claims_uri(request_rec *r);

#endif
