/* What the httpd side of mod_redeem shares: the configuration, the state of
 * one request (redeem_call_t), failures, and every file's public functions,
 * grouped by the file that defines them. See mod_redeem.c for the map. */
#ifndef REDEEM_PRIVATE_H
#define REDEEM_PRIVATE_H

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <apr_dbd.h>
#include <apr_strings.h>
#include <jansson.h>
#include <mod_dbd.h>

#include "core/body.h"
#include "core/clock.h"
#include "core/code.h"
#include "core/gcra.h"
#include "core/json_out.h"
#include "core/log_throttle.h"
#include "core/email.h"
#include "core/password.h"
#include "core/query.h"
#include "core/sync.h"
#include "core/text.h"
#include "core/timestamp.h"
#include "core/token.h"
#include "httpd/statements.h"

APLOG_USE_MODULE(redeem);
extern module AP_MODULE_DECLARE_DATA redeem_module;

/* Our own message tags, in the manner of httpd's APLOGNO (AH numbers are
 * httpd's). The hundreds name the area: 00xx start-up and configuration,
 * 01xx database, 02xx authentication and hashing, 03xx accounts, 04xx audit,
 * 05xx codes, 06xx rate limits, shared memory and metrics, 07xx redemption. */
#define RDMNO(n) "RDM" #n ": "

#define REDEEM_DEFAULT_ADMIN_PASSWORD "AdminPassword123"

/* ------------------------------------------------------------ failure.c */

/* Why a request fails. Helpers never send a response: they return NULL when
 * all went well, or a failure, which the router alone answers
 * (redeem_response_failure). */
typedef struct {
    int status;          /* an HTTP status, 4xx or 5xx */
    const char *message; /* the client's "error" text; 500 always says "Internal server error" */
    int retry_after;     /* seconds for Retry-After; 0: no header */
} redeem_failure_t;

extern const redeem_failure_t redeem_failure_internal;    /* 500 */
extern const redeem_failure_t redeem_failure_unavailable; /* 503, Retry-After: 5 */
/* httpd has answered already: its input filter refused the body (over
 * LimitRequestBody, badly chunked) and sent its error (our ErrorDocument)
 * before it told us (AP_FILTER_ERROR). Nothing more is written. */
extern const redeem_failure_t redeem_failure_answered;
/* The failure for a status of ap_discard_request_body or of
 * ap_map_http_request_error (AP_FILTER_ERROR: redeem_failure_answered). */
const redeem_failure_t *redeem_failure_reading(apr_pool_t *p, int status);
/* A statement refused because a key of a unique index was taken (SQLSTATE
 * 23505): a 500 to the client, but a caller that makes its keys at random
 * (a batch of codes) makes new ones and tries again. */
extern const redeem_failure_t redeem_failure_key_taken;
/* An account's email refused by the database as too long once made its key
 * (NFC, lowercased: it can outgrow the 254 characters the module counted):
 * 400, as any invalid email. */
extern const redeem_failure_t redeem_failure_email_too_long;
/* A batch refused by its audit statement's check (codes_actor_check, sql/015): its
 * admin was deleted or its tokens revoked (401), or it is no longer an admin
 * (403), since the request's token was read. */
extern const redeem_failure_t redeem_failure_actor_gone;
extern const redeem_failure_t redeem_failure_actor_not_admin;
/* A failure allocated from p; message is not copied. */
const redeem_failure_t *redeem_failure(apr_pool_t *p, int status, const char *message);
/* How often a child tells a warning that can come once a request under
 * overload (RDM0118, RDM0204, RDM0207) or until an operator acts
 * (RDM0103/0104). */
#define REDEEM_LOG_EVERY apr_time_from_sec(10)
/* The level to log such a warning at: `level` once in REDEEM_LOG_EVERY,
 * debug in between (its metric counts each). *note is "" or says how many
 * were logged at debug level since the last one at `level`. */
int redeem_log_level_throttled(request_rec *r, redeem_log_throttle_t *throttle, int level,
                               const char **note);

/* ------------------------------------------------------------- shared.c */

/* Counters every process adds to, in shared memory (exact across children,
 * kept across graceful restarts); metrics.c shows them. */
#define REDEEM_SCOPES 5           /* redeem_scope_e (ratelimit.c) */
#define REDEEM_OUTCOMES 11        /* redemption outcomes (metrics.c) */
#define REDEEM_ENDPOINTS 11       /* the routes of router.c, and one for unmatched paths */
#define REDEEM_STATUS_CLASSES 4   /* 2xx, 3xx, 4xx, 5xx */
#define REDEEM_LATENCY_BUCKETS 12 /* 1 ms .. 2.5 s and +Inf (metrics.c) */
/* Per endpoint: responses by status class, latency buckets, latency sum (us). */
#define REDEEM_ENDPOINT_COUNTERS (REDEEM_STATUS_CLASSES + REDEEM_LATENCY_BUCKETS + 1)
typedef enum {
    REDEEM_COUNTER_LIMITED_FIRST, /* + redeem_scope_e: requests refused with 429 */
    REDEEM_COUNTER_LIMITED_LAST = REDEEM_COUNTER_LIMITED_FIRST + REDEEM_SCOPES - 1,
    REDEEM_COUNTER_REDIS_FALLBACKS, /* checks Redis could not answer (shm instead) */
    REDEEM_COUNTER_LIMIT_EVICTIONS, /* live limiter states dropped for room */
    REDEEM_COUNTER_DB_ACQUIRES,     /* connections taken from mod_dbd's pool */
    REDEEM_COUNTER_DB_ACQUIRE_US,   /* microseconds spent waiting for them */
    REDEEM_COUNTER_DB_ACQUIRE_FAILURES,
    REDEEM_COUNTER_DB_RECONNECTS, /* pooled connections found closed and reconnected */
    REDEEM_COUNTER_DB_RETRIES,    /* statements prepared afresh and run again */
    REDEEM_COUNTER_HASH_WAITS,    /* hashes that waited for a free slot */
    REDEEM_COUNTER_HASH_BUSY,     /* ... and gave up (503) */
    REDEEM_COUNTER_OUTCOME_FIRST, /* + redemption outcome */
    REDEEM_COUNTER_ENDPOINT_FIRST = REDEEM_COUNTER_OUTCOME_FIRST + REDEEM_OUTCOMES,
    /* Appended, so that the counters above keep their places across an upgrade. */
    REDEEM_COUNTER_USER_READS = /* requests that read their token's user */
    REDEEM_COUNTER_ENDPOINT_FIRST + REDEEM_ENDPOINTS * REDEEM_ENDPOINT_COUNTERS,
    REDEEM_COUNTER_USER_READ_STATEMENTS, /* ... and the statements that read them */
    REDEEM_COUNTER_DB_BACKENDS_READIED,  /* backends given the schema check and our statements */
    REDEEM_COUNTER_REDIS_FAILURES,       /* calls to Redis that failed */
    REDEEM_COUNTER_DB_POOL_WAITS,        /* requests that found all of DBDMax held and waited */
    REDEEM_COUNTER_DB_POOL_TIMEOUTS,     /* ... and gave up (503) */
    REDEEM_COUNTER_USER_READS_LATE,      /* user reads not made: too little time left (503) */
    REDEEM_COUNTER_REDIS_CALLS,          /* requests' calls to Redis */
    REDEEM_COUNTER_REDIS_ROUND_TRIPS,    /* ... and the round trips that carried them */
    REDEEM_COUNTER_COUNT_
} redeem_counter_e;
#define REDEEM_COUNTER_SLOTS 256 /* room reserved, so that new counters keep the layout */

/* The server's one shared segment: made by the parent at start-up, kept
 * across graceful restarts (ap_retained_data), inherited by every child. */
typedef struct {
    uint64_t magic;
    uint32_t layout;        /* sizes of this struct and the table: re-made when they change */
    uint32_t limit_entries; /* slots of the rate-limit table */
    int64_t redis_retry_at; /* ms (redeem_shared_now_ms): while Redis fails, when to try again */
    uint32_t redis_outage;  /* REDEEM_OUTAGE_... (core/log_throttle.h) */
    uint32_t reserved;      /* was a second word of the outage: the layout kept */
    int64_t redis_log_quiet_until; /* ms: no outage logged before (one a minute at most) */
    uint64_t counters[REDEEM_COUNTER_SLOTS];
    /* the rate-limit table follows, 64-byte aligned */
} redeem_shared_t;

/* post_config: the segment of this server, made or kept. NULL, or why not. */
const char *redeem_shared_attach(server_rec *s, uint32_t limit_entries, redeem_shared_t **shared);
void *redeem_shared_limit_table(redeem_shared_t *shared);
void redeem_shared_count(redeem_shared_t *shared, redeem_counter_e counter);
void redeem_shared_add(redeem_shared_t *shared, redeem_counter_e counter, uint64_t n);
uint64_t redeem_shared_counter(const redeem_shared_t *shared, redeem_counter_e counter);
/* The clock of every shared state: CLOCK_MONOTONIC in ms (one clock for all
 * processes of the host; it never jumps with the wall clock). */
int64_t redeem_shared_now_ms(void);

/* ---------------------------------------------------------------- redis.c */

/* RedeemRateLimitStore as set (parsed by ratelimit.c). */
typedef enum { REDEEM_STORE_UNSET, REDEEM_STORE_SHM, REDEEM_STORE_REDIS } redeem_store_e;
typedef struct {
    redeem_store_e kind;
    apr_int64_t shm_entries;
    const char *redis_host;   /* by TCP: the host and port */
    const char *redis_socket; /* or by its Unix socket (host NULL) */
    int redis_port, redis_db;
    const char *redis_url; /* as given, for the log */
    /* RedeemRateLimitStoreAuthFile: the file, and what it holds once read at
     * start-up (the user NULL for Redis's default user). */
    const char *redis_auth_file;
    const char *redis_user, *redis_password;
    /* RedeemRateLimitStoreTimeout: 0 when not set (the default then). */
    apr_int64_t redis_timeout_ms;
} redeem_store_setting_t;
#define REDEEM_REDIS_TIMEOUT_MIN_MS 5
#define REDEEM_REDIS_TIMEOUT_MAX_MS 10000
#define REDEEM_REDIS_TIMEOUT_DEFAULT_MS 50

typedef struct redeem_redis redeem_redis_t;
/* A child's Redis connections (at most two per MPM thread, reused), made lazily. */
redeem_redis_t *redeem_redis_create(apr_pool_t *pchild, const redeem_store_setting_t *store,
                                    int max_connections, redeem_shared_t *shared);
/* One atomic step on the Redis server, on Redis's clock, in one round trip:
 * a GCRA step of each key under its policy, in order, up to the first
 * refusal. The number of keys checked (1 to n; when fewer than n, the last
 * was refused) with their verdicts, or -1 with *why when Redis could not
 * answer in time. */
int redeem_redis_gcra(redeem_redis_t *redis, apr_pool_t *p, const char *const *keys,
                      const redeem_gcra_policy_t *const *policies, int n,
                      redeem_gcra_verdict_t *verdicts, const char **why);

/* ------------------------------------------------------------ ratelimit.c */

typedef enum {
    REDEEM_SCOPE_REDEEM_USER,
    REDEEM_SCOPE_REDEEM_IP,
    REDEEM_SCOPE_LOGIN_EMAIL,
    REDEEM_SCOPE_LOGIN_IP,
    REDEEM_SCOPE_REGISTER_IP,
    REDEEM_SCOPE_COUNT_
} redeem_scope_e;

/* A scope's name as RedeemRateLimit takes it, and back (-1: none). */
const char *redeem_ratelimit_scope_name(redeem_scope_e scope);
int redeem_ratelimit_scope_by_name(const char *name);

/* RedeemRateLimit as set, or unset (count -1). */
typedef struct {
    apr_int64_t count, period_s;
} redeem_limit_setting_t;

/* The host's table when RedeemRateLimitStore gives no size (8 MiB); also
 * Redis's fallback. */
#define REDEEM_SHM_DEFAULT_ENTRIES 1048576
/* Parses a RedeemRateLimitStore argument; NULL or the reason. */
const char *redeem_ratelimit_parse_store(apr_pool_t *p, const char *kind, const char *size,
                                         redeem_store_setting_t *store);
/* The tag of a server's rate-limit keys (redeem_server_conf.limit_tag),
 * made from its code keys; NULL or why. */
#define REDEEM_LIMIT_TAG_LEN 8
const char *redeem_ratelimit_tag(const redeem_code_keys_t *keys,
                                 unsigned char tag[REDEEM_LIMIT_TAG_LEN]);
/* check_config: defaults applied and each scope's policy built; NULL or why. */
const char *redeem_ratelimit_finish(apr_pool_t *p, redeem_limit_setting_t *settings,
                                    redeem_gcra_policy_t *policies);
/* One scope to charge: the key is the client's address for the -ip
 * scopes, the address and subject (the email's key) for login-email, and
 * subject (the user id and token generation) for redeem-user; each with
 * its server's limit_tag. */
typedef struct {
    redeem_scope_e scope;
    const char *subject;
} redeem_charge_t;
#define REDEEM_MAX_CHARGES 2
/* Charges one request to each scope (at most REDEEM_MAX_CHARGES) in order,
 * up to the first that refuses it, in one step of the store (one Redis
 * round trip). Adds each scope checked to the RateLimit-Policy and
 * RateLimit headers; NULL, or a 429 failure. */
const redeem_failure_t *redeem_ratelimit_charge_all(request_rec *r, const redeem_charge_t *charges,
                                                    int n);
/* The same for one scope. */
const redeem_failure_t *redeem_ratelimit_charge(request_rec *r, redeem_scope_e scope,
                                                const char *subject);
/* Whether the request's 429 is the first of its key and window to be
 * audited (counted apart from RDM0604's, which a refusal with no actor to
 * audit may use up; the host's own count, also in Redis mode). Asked once
 * a refusal: the asking counts. */
int redeem_ratelimit_first_audited(request_rec *r);

/* ------------------------------------------------------------- config.c */

/* At most this many requests' users are read in one statement ... */
#define REDEEM_USER_READ_BATCH 64
/* ... and wait in a child's line for a read: more than the busy
 * connections the bench gives one child (1,000; conf/tuning.conf). A
 * request that finds the line full waits for room, and each read's start
 * wakes as many of those as places came free (user_reads.c). */
#define REDEEM_USER_READ_LINE 1024

typedef struct redeem_pool_gates redeem_pool_gates_t; /* pool_gate.c */

/* State of one child process, made in child_init: the only mutable state. */
typedef struct {
    /* Why child_init could not make this state (its locks, its hashing
     * memory), or NULL: such a child answers every API request 500 instead
     * of using what is missing. */
    const char *init_failure;
    apr_uint32_t admin_ready; /* the configured admin exists (atomic flag) */
    /* RDM0607 (a proxy's X-Forwarded-For not trusted) was logged (atomic). */
    apr_uint32_t forwarded_warned;
    /* The hashing slots (RedeemHashConcurrency), each with the argon2 memory
     * it keeps from hash to hash; under hash_lock, the free ones are
     * free_slots[0 .. free_count - 1]. A finished hash signals hash_freed to
     * a request waiting for a slot. */
    redeem_password_memory_t *slot_memory;
    int *free_slots;
    int free_count;
    redeem_sync_lock_t *hash_lock;
    redeem_sync_cond_t *hash_freed;
    /* While the database fails to answer: until when requests get 503 at
     * once instead of waiting on it, one probing it each second; 0 while it
     * answers. Atomic. This and the times below are of the monotonic clock
     * (redeem_clock_monotonic): a step of the wall clock must not stretch
     * or skip a child's time of answering 503 at once. */
    apr_int64_t db_retry_at;
    /* When a statement last succeeded (atomic): /api/health answers from it
     * while it is recent. */
    apr_int64_t db_ok_at;
    apr_int64_t db_failed_at; /* ... and when the database last failed to answer */
    /* Warnings told once in REDEEM_LOG_EVERY, not once a request: a schema
     * of another version (RDM0103/0104; which one last told, atomic: a new
     * one is told at once), no pooled connection (RDM0118), no hashing slot
     * (RDM0204), a user read too late (RDM0207). */
    redeem_log_throttle_t schema_told;
    apr_int64_t schema_told_version;
    redeem_log_throttle_t pool_full_told;
    redeem_log_throttle_t hashing_busy_told;
    redeem_log_throttle_t user_read_late_told; /* RDM0207 */
    apr_int64_t started_at; /* when this child began (monotonic; db.c's note_silent) */
    /* The token's user, read for the requests that wait for it in one
     * statement (user_reads.c); all under read_lock. read_in_flight: the
     * statements running (up to four); the requests that came meanwhile wait in
     * read_pending for the next one, which the first of them runs (for
     * the first REDEEM_USER_READ_BATCH of them). When read_pending is full,
     * read_room_waiters requests wait on read_room. */
    redeem_sync_lock_t *read_lock;
    redeem_sync_cond_t *read_room;
    int read_room_waiters;
    int read_in_flight;
    int read_pending_count;
    struct redeem_user_read *read_pending[REDEEM_USER_READ_LINE];
    /* The child's count of pooled connections held, one for all its servers
     * (pool_gate.c), and the one of this server's mod_dbd pool, learned from
     * its first connection (NULL until then; under the gates' lock). */
    redeem_pool_gates_t *pool_gates;
    struct redeem_pool_gate *pool_gate;
} redeem_child_t;

/* Where the API is served: per directory (<Location>), since an operator
 * mounts it on a path of a site; the server's own defaults are the
 * per-directory defaults of its server or <VirtualHost>. */
typedef struct {
    int engine;            /* RedeemEngine; -1: unset */
    const char *location;  /* the <Location> RedeemEngine was set in, or NULL */
    const char *base_path; /* RedeemBasePath, or NULL: the <Location>'s path, else / */
} redeem_dir_conf;

static inline redeem_dir_conf *redeem_dir_conf_of(const request_rec *r)
{
    return ap_get_module_config(r->per_dir_config, &redeem_module);
}

typedef struct {
    int engine_used;             /* RedeemEngine On appears in this server, in any scope */
    int engine_here;             /* ... in this server's own configuration (not inherited) */
    const char *jwt_secret;      /* from RedeemJWTSecret, or read from the file */
    const char *jwt_secret_file; /* read at check_config, unless an inline secret came later */
    const char *issuer;
    redeem_password_cost_t argon2;
    const char *admin_email;
    const char *admin_password;      /* inline, or read from the file at check_config */
    const char *admin_password_file; /* RedeemAdminPasswordFile */
    const char *code_mac_key_file;
    const char *code_enc_key_file;
    /* The bounded numbers, set through the table in config.c. */
    apr_int64_t token_lifetime; /* seconds */
    apr_int64_t leeway;         /* seconds */
    apr_int64_t hash_concurrency;
    apr_int64_t hash_wait_ms;
    apr_int64_t max_body; /* bytes */
    apr_int64_t max_codes;
    apr_int64_t db_timeout_ms; /* RedeemDBTimeout */
    apr_int64_t dbd_max;       /* mod_dbd's DBDMax, read beside it (-1: unset, its default) */
    const char *dbd_driver;    /* mod_dbd's DBDriver, read beside it (NULL: unset) */
    redeem_limit_setting_t limits[REDEEM_SCOPE_COUNT_];
    redeem_store_setting_t store;  /* main server only (RedeemRateLimitStore) */
    unsigned int futex_hash_slots; /* main server only (RedeemFutexHashSlots); 0: unset */

    /* Resolved at check_config. */
    redeem_token_config_t token;
    redeem_code_keys_t code_keys;
    /* In every rate-limit key of this server: the code MAC key's pseudonym
     * of a constant, so that sites of other keys (other databases) sharing
     * this host's table count apart, and those of the same keys together. */
    unsigned char limit_tag[REDEEM_LIMIT_TAG_LEN];
    const char *dummy_hash; /* verified against for unknown emails */
    /* mod_dbd's (optional functions): a connection of the server's pool, and
     * its return to the pool (pool_gate.c holds it for the request). */
    ap_dbd_t *(*dbd_open)(apr_pool_t *pool, server_rec *s);
    void (*dbd_close)(server_rec *s, ap_dbd_t *dbd);
    redeem_gcra_policy_t policies[REDEEM_SCOPE_COUNT_]; /* count 0: scope off */
    const redeem_store_setting_t *store_in_use;         /* the main server's */
    redeem_shared_t *shared;                            /* made in post_config */
    redeem_child_t *child;
    redeem_redis_t *redis; /* per child, when the store is Redis */
} redeem_server_conf;

static inline redeem_server_conf *redeem_conf(const request_rec *r)
{
    return ap_get_module_config(r->server->module_config, &redeem_module);
}

extern const command_rec redeem_config_directives[];
void *redeem_config_create(apr_pool_t *p, server_rec *s);
void *redeem_config_merge(apr_pool_t *p, void *base, void *add);
void *redeem_config_create_dir(apr_pool_t *p, char *dir);
void *redeem_config_merge_dir(apr_pool_t *p, void *base, void *add);
/* check_config: defaults, secrets and keys of every server; OK or an error status. */
int redeem_config_finish(apr_pool_t *pconf, server_rec *s);
const char *redeem_config_server_name(apr_pool_t *p, const server_rec *vs);
/* post_config: the shared segment, for every server, and mod_redeem's token in
 * the Server header; neither when no server serves the API. OK or an error
 * status. */
int redeem_config_attach_shared(apr_pool_t *pconf, server_rec *s);
/* child_init: the main server's process-wide settings (RedeemFutexHashSlots). */
void redeem_config_child_init(server_rec *s);

/* ------------------------------------------------------------------ db.c */

typedef struct {
    int nrows, ncols;
    const char **cells; /* nrows * ncols, NULL for SQL NULL */
} redeem_rows_t;

/* A cell by the column names of statements.h. */
static inline const char *redeem_db_cell(const redeem_rows_t *rows, int row, int col)
{
    return rows->cells[row * rows->ncols + col];
}

typedef struct redeem_db redeem_db_t;
/* A pooled connection ready for our statements: acquired from mod_dbd, the
 * schema version checked and the statements prepared once per backend.
 * Every wait ends within RedeemDBTimeout of `since` (the request's start,
 * or for a read of several requests' users, the earliest of theirs; µs of
 * the monotonic clock, redeem_clock_monotonic, as every deadline here). */
const redeem_failure_t *redeem_db_open(request_rec *r, apr_time_t since, redeem_db_t **db);
/* 0 while this child's database answers; else it did not answer in time and
 * the child answers 503 at once: 1 until its next try is due, 2 when it is
 * (redeem_db_open makes the try, once a second). */
int redeem_db_silent(request_rec *r);
/* Runs a prepared statement; args holds exactly the statement's arguments
 * (statements.h names them). Failures: 503 when the database is
 * unreachable, 500 otherwise, logged without driver detail for the client. */
const redeem_failure_t *redeem_db_query(redeem_db_t *db, redeem_stmt_e stmt,
                                        const char *const *args, redeem_rows_t *rows);
/* Every database wait of a request ends by its deadline: the request's
 * start plus RedeemDBTimeout; a handler with a long statement to run moves
 * it to at least from_now from now. Deadlines are times of the monotonic
 * clock (redeem_clock_monotonic), so that a step of the wall clock neither
 * times out every wait in flight nor stretches them. Waits on a condition
 * variable (pool_gate.c, user_reads.c, hashing.c) are core/sync.c's, timed
 * on the monotonic clock too (APR's apr_thread_cond_timedwait sleeps until
 * a wall-clock instant, which a step back moves away), and check the
 * deadline after every wake-up; the database's and Redis's waits (poll,
 * socket timeouts) are relative and not moved. */
void redeem_db_allow(redeem_db_t *db, apr_interval_time_t from_now);
/* ... or a short question moves it to at most from_now from now. */
void redeem_db_limit(redeem_db_t *db, apr_interval_time_t from_now);
/* ... or a read for several requests (user_reads.c) sets it to the earliest
 * of theirs, and gives the reader's own back after. */
apr_time_t redeem_db_deadline(const redeem_db_t *db);
void redeem_db_set_deadline(redeem_db_t *db, apr_time_t deadline);
/* The same for a statement that returns no rows; *affected (may be NULL):
 * how many rows it wrote. */
const redeem_failure_t *redeem_db_exec(redeem_db_t *db, redeem_stmt_e stmt, const char *const *args,
                                       int *affected);
/* Statements that make one transaction, each sent as it is given so that
 * the caller prepares the next while the database runs the last; committed
 * at redeem_db_pipeline_commit, all or nothing. lengths and binary are
 * PQsendQueryPrepared's paramLengths and paramFormats (NULL: all text).
 * After a failure the pipeline is over: return it. */
const redeem_failure_t *redeem_db_pipeline_begin(redeem_db_t *db);
const redeem_failure_t *redeem_db_pipeline_send(redeem_db_t *db, redeem_stmt_e stmt,
                                                const char *const *args, const int *lengths,
                                                const int *binary);
/* Commits; *rows (rows may be NULL): the last statement's. */
const redeem_failure_t *redeem_db_pipeline_commit(redeem_db_t *db, redeem_rows_t *rows);
/* Gives the pipeline up: nothing of it is committed. */
void redeem_db_pipeline_cancel(redeem_db_t *db);

/* A request with less of its RedeemDBTimeout left than this is not given a
 * pooled connection nor read (pool_gate.c, user_reads.c): a statement sent
 * that late would time out and drop a healthy connection, and in a read for
 * several requests it would fail the others with it. */
static inline apr_interval_time_t redeem_db_too_late(const redeem_server_conf *conf)
{
    return apr_time_from_msec(conf->db_timeout_ms) / 10;
}

/* ---------------------------------------------------------- pool_gate.c */

/* child_init: the child's count of connections held, for all servers from
 * s on; NULL or why not. */
const char *redeem_pool_gates_child_init(apr_pool_t *pchild, server_rec *s,
                                         redeem_pool_gates_t **gates);
/* A connection from mod_dbd's pool for r's request (*dbd NULL when mod_dbd
 * had none), waiting for one of this child's to be given back no later than
 * `until` (monotonic): past it, 503. The request holds it until
 * redeem_pool_gate_release, or until it ends. */
const redeem_failure_t *redeem_pool_gate_acquire(request_rec *r, apr_time_t until, ap_dbd_t **dbd);
/* Gives r's request's connection back to mod_dbd's pool now (response.c,
 * before the response is written: a client that does not read it must not
 * hold a connection); a later need of the database acquires one again. */
void redeem_pool_gate_release(request_rec *r);

/* ---------------------------------------------------------------- user.c */

typedef struct {
    apr_int64_t id;
    const char *id_text;
    const char *email;
    int is_admin;
    const char *created_at;
    const char *subscription_expires_at; /* NULL when never subscribed */
    int is_subscribed;
    apr_int64_t days_remaining;
    apr_int64_t token_generation; /* the database's; or the token's, when only it was read */
    const char *password_hash;    /* only from STMT_USER_BY_EMAIL */
} redeem_user_t;

/* A row of a statement returning SQL_USER_COLUMNS (statements.h). */
void redeem_user_from_row(const redeem_rows_t *rows, int row, redeem_user_t *user);
/* {"id", "email", "created_at"} */
json_t *redeem_user_json(const redeem_user_t *user);
/* The account of an email (case and Unicode form folded, sql/003),
 * password hash included; user->id_text is NULL when there is none. With
 * email_key, also the address as the database identifies it, account or
 * not. */
const redeem_failure_t *redeem_user_by_email(redeem_db_t *db, const char *email,
                                             redeem_user_t *user, const char **email_key);

/* ---------------------------------------------------------------- call.c */

/* One request on its way through the module. */
typedef struct {
    request_rec *r;
    redeem_server_conf *conf;
    redeem_db_t *db;           /* set by redeem_call_db */
    apr_int64_t db_timeout_ms; /* 0: RedeemDBTimeout */
    apr_time_t db_since;       /* its first need of the database (redeem_call_db_start;
                                * monotonic) */
    redeem_user_t caller;      /* the token's user, on routes that authenticate */
} redeem_call_t;

/* When the request first needed the database: RedeemDBTimeout counts from
 * here. */
apr_time_t redeem_call_db_start(redeem_call_t *call);

/* The request's database connection, opened on first use; the configured
 * admin account is ensured (admin.c) before it is handed out. Every handler
 * that uses call->db calls it first: authentication does not leave a
 * connection behind (a request whose user another request's statement read
 * never opened one). */
const redeem_failure_t *redeem_call_db(redeem_call_t *call);
/* The same, with RedeemDBTimeout counted from `since` (monotonic) rather
 * than from redeem_call_db_start. */
const redeem_failure_t *redeem_call_db_since(redeem_call_t *call, apr_time_t since);

/* ---------------------------------------------------------- user_reads.c */

/* child_init: the lock and condition of the shared user reads; NULL or why not. */
const char *redeem_user_reads_child_init(apr_pool_t *pchild, redeem_child_t *child);
/* The user of id, read afresh (a statement that began after this call did),
 * into call->caller on the request's pool; *found is 0 when there is no such
 * user. Requests of this child that need their users while one such read
 * runs wait for it to end and are read together in the next: one statement
 * and one connection for them all. */
const redeem_failure_t *redeem_user_reads_get(redeem_call_t *call, apr_int64_t id, int *found);

/* --------------------------------------------------------------- admin.c */

/* RedeemAdmin: creates the account or promotes a matching one, once per
 * child; a no-op after success or without RedeemAdmin. */
const redeem_failure_t *redeem_admin_ensure(request_rec *r, redeem_db_t *db);

/* ---------------------------------------------------------------- auth.c */

typedef enum {
    REDEEM_ACCESS_PUBLIC,
    REDEEM_ACCESS_TOKEN, /* a valid token; its user's existence is the handler's to check */
    REDEEM_ACCESS_USER,
    REDEEM_ACCESS_ADMIN
} redeem_access_e;
/* The bearer token checked (401 before any database work); with
 * REDEEM_ACCESS_TOKEN only call->caller.id, id_text, email and
 * token_generation are set, from it (the handler's statements check them);
 * otherwise its user is read from the database into call->caller (401 when
 * gone), and with REDEEM_ACCESS_ADMIN 403 unless the database says admin.
 * A POST's body is read before the user (redeem_request_read_ahead); its
 * failure (413, 408, 400) is returned only when those checks pass. */
const redeem_failure_t *redeem_auth_caller(redeem_call_t *call, redeem_access_e access);
/* For REDEEM_ACCESS_TOKEN, on a path that answers before the handler's
 * statements check the account: the token's user read (redeem_user_reads_get)
 * into call->caller, 401 when gone or no longer at the token's generation
 * with its email (logged), the database's failure (503, ...) when it cannot
 * be read. */
const redeem_failure_t *redeem_auth_confirm_token_user(redeem_call_t *call);
/* 401 for a token whose user no longer exists, or no longer at its
 * generation with its email (logged). */
const redeem_failure_t *redeem_auth_user_gone(request_rec *r, const char *user_id);
/* A fresh access token for user, or NULL (logged). */
const char *redeem_auth_token_for(request_rec *r, const redeem_user_t *user);
/* The site's name in its tokens (claim "aud"; redeem_token_config_t): the
 * code MAC key's pseudonym of a fixed text, REDEEM_AUDIENCE_BYTES of it in
 * hex. Sites of other code keys (other databases) refuse each other's
 * tokens even when they share a JWT secret and a user of the same id and
 * email; the hosts of one site share it. NULL, or why not. */
#define REDEEM_AUDIENCE_BYTES 8
const char *redeem_auth_audience(apr_pool_t *p, const redeem_code_keys_t *keys,
                                 const char **audience);

/* ------------------------------------------------------------- hashing.c */

/* child_init: the child's hashing slots and their lock; NULL or why not. */
const char *redeem_hashing_child_init(apr_pool_t *pchild, redeem_child_t *child, int slots);
/* Takes a slot for the request's own hash before it needs the database: a
 * login or registration then waits for hashing without holding one of the
 * child's few pooled connections (DBDMax), which a burst of them would
 * otherwise all hold, leaving every other request of the child to 503. The
 * request's redeem_hashing_hash_reserved or _verify_reserved uses it;
 * redeem_hashing_release, or else the request's end, gives it back unused.
 * Fails as they do (503 after RedeemHashWait). */
const redeem_failure_t *redeem_hashing_reserve(request_rec *r);
void redeem_hashing_release(request_rec *r);
/* argon2id under this child's bound (RedeemHashConcurrency): each call takes
 * a slot, waiting up to RedeemHashWait and no later than `until`
 * (monotonic; 0: no such bound; then 503, Retry-After: 1), does its work and gives the slot
 * back; in a request that holds a reserved slot it borrows that one and
 * leaves it reserved (RedeemAdmin's set-up, inside a login's first use of
 * the database). The _reserved forms use the request's reserved slot up
 * (the login's or registration's own hash). */
const redeem_failure_t *redeem_hashing_hash(request_rec *r, apr_time_t until, const char *password,
                                            size_t len, char **hash);
const redeem_failure_t *redeem_hashing_hash_reserved(request_rec *r, const char *password,
                                                     size_t len, char **hash);
/* The same, for work that can wait for a later request: only when a slot is
 * free at once; else a 503 failure at once, neither logged nor counted. */
const redeem_failure_t *redeem_hashing_hash_if_idle(request_rec *r, const char *password,
                                                    size_t len, char **hash);
const redeem_failure_t *redeem_hashing_verify(request_rec *r, apr_time_t until, const char *stored,
                                              const char *password, size_t len,
                                              redeem_password_result_e *verdict);
const redeem_failure_t *redeem_hashing_verify_reserved(request_rec *r, const char *stored,
                                                       const char *password, size_t len,
                                                       redeem_password_result_e *verdict);

/* --------------------------------------------------------------- audit.c */

/* An audit event as a line in the error log (info level, with the request id). */
void redeem_audit_log_line(request_rec *r, const char *event, const char *actor, const char *target,
                           const char *outcome);
/* An audit event as a row in audit_log, and its log line. Events that a
 * larger statement records itself (redemption, code generation) take only
 * the log line. NULL once the row is written (or found written by this
 * request's earlier run); else the request's failure, for nothing is
 * answered without its row: the database's (503, ...) when it could not be
 * written, 401 when the actor no longer exists or its tokens were revoked
 * (actor->token_generation is no longer its own). The line gives the
 * outcome the answer will tell: "failed" for a row that could not be
 * written, none for a 401 (RDM0203 says why); answer_stands: the caller
 * answers outcome whatever befell the row (a rate limit's 429), and its
 * line says so. */
const redeem_failure_t *redeem_audit_write_row(request_rec *r, redeem_db_t *db, const char *event,
                                               const redeem_user_t *actor, const char *target,
                                               const char *outcome, int answer_stands);

/* ------------------------------------------------------------- request.c */

/* The body as a JSON object of these fields (core/body.h): 415, 413, 400
 * with a message naming the problem. Parses the body read ahead, if it
 * was (redeem_request_read_ahead). */
const redeem_failure_t *
redeem_request_json_object(request_rec *r, const redeem_body_field_t *fields, json_t **body);
/* Reads a POST's whole body now (413, 408, 400 for a broken transfer), for
 * redeem_request_json_object to parse later: before a step that takes a
 * pooled connection, which the request then keeps until its end, so that
 * a client sending its body slowly holds a thread and not a connection. */
const redeem_failure_t *redeem_request_read_ahead(request_rec *r);
/* Reads and drops a body the endpoint does not take (a GET's), under the
 * same cap as any other (RedeemMaxBodySize: 413 beyond, the connection then
 * closed; 408, 400 for a broken transfer). */
const redeem_failure_t *redeem_request_drop_body(request_rec *r);
/* Before a failure is answered: drops what is left of the body if all of it
 * has arrived (so that the connection can serve the next request), and
 * otherwise has the connection closed after the answer. Without this httpd
 * would read the rest when the request ends, with the answer still
 * buffered: a body that stalls would hold the thread until mod_reqtimeout
 * cut it, and the client would get httpd's own 408 page in its place. */
void redeem_request_forgo_body(request_rec *r);
/* Query parameter name of r->args, URL-decoded; NULL when absent. Sets *bad
 * when the query string is malformed or repeats the parameter. */
const char *redeem_request_query_param(request_rec *r, const char *name, int *bad);
typedef struct {
    apr_int64_t page, per_page, offset;
} redeem_page_t;
/* page and per_page from the query, or 400. */
const redeem_failure_t *redeem_request_page(request_rec *r, redeem_page_t *page);
/* mod_unique_id's UNIQUE_ID when loaded, else the request's log id. */
const char *redeem_request_id(request_rec *r);
/* Keeps value until the request ends (drops the reference then). */
json_t *redeem_request_hold_json(request_rec *r, json_t *value);

/* ------------------------------------------------------------ response.c */

/* Sends body (a reference it steals) with status; NULL, or a failure when
 * the body cannot be serialized (nothing sent then). */
const redeem_failure_t *redeem_response_json(request_rec *r, int status, json_t *body);
/* The same, with one more member last: name (no character to escape) and
 * its value as JSON text the caller wrote (a large array built as it was
 * made, never held as 100,000 jansson values). */
const redeem_failure_t *redeem_response_json_plus(request_rec *r, int status, json_t *body,
                                                  const char *name, const char *value,
                                                  size_t value_len);
/* Sends the object out wrote (redeem_json_out_begin ... its members); NULL,
 * or a failure when a string in it was not valid UTF-8, or a required one
 * was missing (nothing sent then). */
const redeem_failure_t *redeem_response_written(request_rec *r, int status, redeem_json_out_t *out);
/* Sends JSON text as it is (a constant body). */
void redeem_response_text(request_rec *r, int status, const char *text, size_t len);
/* The one place a failure becomes a response: {"error": message}. */
void redeem_response_failure(request_rec *r, const redeem_failure_t *failure);
/* The handler "redeem-error": httpd's own error answers (a malformed
 * request, a body over LimitRequestBody, an encoded slash...) as the API's
 * JSON, when an ErrorDocument points at it. */
int redeem_response_error_document(request_rec *r);
/* Adds total, pages, current_page and per_page to body; returns body. */
json_t *redeem_response_page_info(json_t *body, const redeem_page_t *page, apr_int64_t total);

/* -------------------------------------------------------------- router.c */

/* The API's path of r: r->uri past the base path, when RedeemEngine is On
 * for r and r->uri is under the base path; else NULL. */
const char *redeem_router_path(request_rec *r);
/* Route i (0 .. REDEEM_ENDPOINTS - 2): its method and path, for the metrics. */
void redeem_router_endpoint(int i, const char **method, const char **path);
/* Finds the route (404, 405), authenticates as the route asks, runs its
 * handler and answers any failure. Always returns OK. */
int redeem_router_dispatch(request_rec *r);

/* ------------------------------------------------------------- metrics.c */

/* The request is the API's, served by route (router.c's index; -1: no route). */
void redeem_metrics_route(request_rec *r, int route);
/* A redemption attempt's outcome (success, not_found, used, expired,
 * invalid_code, forbidden, invalid_format, bad_request, failed, replayed:
 * run again after a lost connection and found already done). */
void redeem_metrics_redemption(request_rec *r, const char *outcome);
/* Hooks: counts each API response (log_transaction); the Prometheus text of
 * every counter (handler "redeem-metrics"); mod_status's page. */
int redeem_metrics_log_transaction(request_rec *r);
int redeem_metrics_handler(request_rec *r);
int redeem_metrics_status(request_rec *r, int flags);

/* ------------------------------------------------------------ handle_*.c */

/* Handlers: each sends its success response and returns NULL, or returns a
 * failure for the router to answer. The router has authenticated the
 * caller when the route asks for it. */
typedef const redeem_failure_t *redeem_handler_fn(redeem_call_t *call);
redeem_handler_fn redeem_handle_register, redeem_handle_login, redeem_handle_profile,
    redeem_handle_users;                                                  /* handle_account.c */
redeem_handler_fn redeem_handle_health;                                   /* handle_health.c */
redeem_handler_fn redeem_handle_generate_codes, redeem_handle_list_codes; /* handle_codes.c */
redeem_handler_fn redeem_handle_redeem;                                   /* handle_redeem.c */
/* A route's request refused by one of its rate limits: what it answers (the
 * limit's 429, or a failure of its own). */
typedef const redeem_failure_t *redeem_limited_fn(redeem_call_t *call,
                                                  const redeem_failure_t *limited);
redeem_limited_fn redeem_redeem_limited; /* handle_redeem.c */
redeem_handler_fn redeem_handle_own_subscription,
    redeem_handle_subscription_of; /* handle_subscription.c */

#endif
