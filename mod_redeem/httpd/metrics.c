/* What the module has done, for operators: counters in the shared segment
 * (exact across every child, kept across graceful restarts), shown on
 * mod_status's page and, in the Prometheus text format, by the handler
 * "redeem-metrics" wherever the operator puts it (SetHandler in a
 * <Location>, like server-status; nowhere by default). */
#include "httpd/private.h"

#include <mod_status.h>

/* Upper bounds of the latency buckets, in microseconds; the last is +Inf. */
static const apr_int64_t bucket_bounds_us[REDEEM_LATENCY_BUCKETS - 1] = {
    1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000};
static const char *const bucket_labels[REDEEM_LATENCY_BUCKETS] = {
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"};

static const char *const outcomes[REDEEM_OUTCOMES] = {
    "success",        "not_found",   "used",   "expired",  "invalid_code", "forbidden",
    "invalid_format", "bad_request", "failed", "replayed", "rate_limited"};

static const char *const status_classes[REDEEM_STATUS_CLASSES] = {"2xx", "3xx", "4xx", "5xx"};

/* Per request: which endpoint served it (index + 1; 0: not the API's), and
 * when it was routed, by the wall clock (httpd's r->request_time is on it)
 * and by the monotonic one. */
typedef struct {
    int endpoint;
    apr_time_t routed_wall;
    apr_int64_t routed_mono;
} request_note_t;

static redeem_counter_e endpoint_counter(int endpoint, int offset)
{
    return REDEEM_COUNTER_ENDPOINT_FIRST + endpoint * REDEEM_ENDPOINT_COUNTERS + offset;
}

void redeem_metrics_route(request_rec *r, int route)
{
    request_note_t *note = apr_palloc(r->pool, sizeof *note);
    note->endpoint = (route < 0 ? REDEEM_ENDPOINTS - 1 : route) + 1;
    note->routed_wall = apr_time_now();
    note->routed_mono = redeem_clock_monotonic();
    ap_set_module_config(r->request_config, &redeem_module, note);
}

/* A request's duration: from its request line (httpd's wall clock) to its
 * routing, then on the monotonic clock: a step of the wall clock while the
 * module works on it (the whole of a slow request) moves no duration into
 * another bucket, and one back never makes it negative. */
static apr_int64_t elapsed_us(const request_rec *r, const request_note_t *note)
{
    apr_int64_t before = (apr_int64_t)(note->routed_wall - r->request_time);
    return (before > 0 ? before : 0) + (redeem_clock_monotonic() - note->routed_mono);
}

void redeem_metrics_redemption(request_rec *r, const char *outcome)
{
    for (int i = 0; i < REDEEM_OUTCOMES; i++)
        if (strcmp(outcomes[i], outcome) == 0)
            redeem_shared_count(redeem_conf(r)->shared, REDEEM_COUNTER_OUTCOME_FIRST + i);
}

int redeem_metrics_log_transaction(request_rec *r)
{
    request_note_t *note = ap_get_module_config(r->request_config, &redeem_module);
    redeem_shared_t *shared = redeem_conf(r)->shared;
    if (!note || !shared)
        return DECLINED;
    int endpoint = note->endpoint - 1;
    int class = r->status / 100 - 2;
    if (class >= 0 && class < REDEEM_STATUS_CLASSES)
        redeem_shared_count(shared, endpoint_counter(endpoint, class));
    apr_int64_t elapsed = elapsed_us(r, note);
    int bucket = 0;
    while (bucket < REDEEM_LATENCY_BUCKETS - 1 && elapsed > bucket_bounds_us[bucket])
        bucket++;
    redeem_shared_count(shared, endpoint_counter(endpoint, REDEEM_STATUS_CLASSES + bucket));
    redeem_shared_add(shared,
                      endpoint_counter(endpoint, REDEEM_STATUS_CLASSES + REDEEM_LATENCY_BUCKETS),
                      (uint64_t)elapsed);
    return DECLINED;
}

static void endpoint_labels(int endpoint, const char **method, const char **path)
{
    if (endpoint < REDEEM_ENDPOINTS - 1)
        redeem_router_endpoint(endpoint, method, path);
    else {
        *method = "";
        *path = "(no route)";
    }
}

static uint64_t value(const redeem_shared_t *shared, redeem_counter_e counter)
{
    return redeem_shared_counter(shared, counter);
}

/* The counters that are one number each: name, help, counter. */
static const struct {
    const char *name, *help;
    redeem_counter_e counter;
    int microseconds; /* shown in seconds */
} singles[] = {
    {"redeem_ratelimit_redis_fallbacks_total",
     "Rate-limit checks Redis could not answer, made in this host's table instead",
     REDEEM_COUNTER_REDIS_FALLBACKS, 0},
    {"redeem_ratelimit_redis_failures_total",
     "Calls to Redis that failed (each sends the host's checks to its own table for a second)",
     REDEEM_COUNTER_REDIS_FAILURES, 0},
    {"redeem_ratelimit_redis_calls_total",
     "Rate-limit checks asked of Redis (those that failed before reaching it "
     "included)",
     REDEEM_COUNTER_REDIS_CALLS, 0},
    {"redeem_ratelimit_redis_round_trips_total",
     "Round trips to Redis that carried them (one for all the checks of a child that waited "
     "while another ran)",
     REDEEM_COUNTER_REDIS_ROUND_TRIPS, 0},
    {"redeem_ratelimit_evictions_total",
     "Live rate-limit states dropped from a full bucket of the shared table",
     REDEEM_COUNTER_LIMIT_EVICTIONS, 0},
    {"redeem_db_acquires_total", "Connections taken from mod_dbd's pool",
     REDEEM_COUNTER_DB_ACQUIRES, 0},
    {"redeem_user_reads_total", "Requests that read their token's user", REDEEM_COUNTER_USER_READS,
     0},
    {"redeem_user_read_statements_total",
     "Statements that read them (one for all the requests that waited while another ran)",
     REDEEM_COUNTER_USER_READ_STATEMENTS, 0},
    {"redeem_user_reads_late_total",
     "... and those not read: less than a tenth of RedeemDBTimeout left when their turn came (503)",
     REDEEM_COUNTER_USER_READS_LATE, 0},
    {"redeem_db_acquire_wait_seconds_total", "Time spent waiting for pooled connections",
     REDEEM_COUNTER_DB_ACQUIRE_US, 1},
    {"redeem_db_acquire_failures_total", "Requests that found no database connection",
     REDEEM_COUNTER_DB_ACQUIRE_FAILURES, 0},
    {"redeem_db_pool_waits_total",
     "Requests that found all of their pool's connections (DBDMax) held by this child's requests "
     "and waited for one",
     REDEEM_COUNTER_DB_POOL_WAITS, 0},
    {"redeem_db_pool_timeouts_total",
     "... and got none before less than a tenth of RedeemDBTimeout was left (503)",
     REDEEM_COUNTER_DB_POOL_TIMEOUTS, 0},
    {"redeem_db_reconnects_total", "Pooled connections found closed by the server and reconnected",
     REDEEM_COUNTER_DB_RECONNECTS, 0},
    {"redeem_db_statement_retries_total", "Statements prepared afresh and run again",
     REDEEM_COUNTER_DB_RETRIES, 0},
    {"redeem_db_backends_readied_total",
     "Database backends readied at their first use (schema checked, statements prepared); "
     "the request that readies one also pays that backend's first statements",
     REDEEM_COUNTER_DB_BACKENDS_READIED, 0},
    {"redeem_hashing_waits_total", "Password hashes that waited for a free slot",
     REDEEM_COUNTER_HASH_WAITS, 0},
    {"redeem_hashing_busy_total", "Password hashes refused with 503: no slot in time",
     REDEEM_COUNTER_HASH_BUSY, 0},
};

/* A counter of singles as its name says: seconds (to the microsecond) for
 * the times kept in microseconds, else the count. */
static const char *single_text(apr_pool_t *p, const redeem_shared_t *shared, size_t i)
{
    uint64_t v = value(shared, singles[i].counter);
    if (singles[i].microseconds)
        return apr_psprintf(p, "%" APR_UINT64_T_FMT ".%06" APR_UINT64_T_FMT, v / 1000000,
                            v % 1000000);
    return apr_psprintf(p, "%" APR_UINT64_T_FMT, v);
}

static void print_family(request_rec *r, const char *name, const char *type, const char *help)
{
    ap_rprintf(r, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void prometheus(request_rec *r, const redeem_shared_t *shared)
{
    const char *method, *path;
    print_family(r, "redeem_requests_total", "counter",
                 "Responses of the API by endpoint and status class");
    for (int e = 0; e < REDEEM_ENDPOINTS; e++) {
        endpoint_labels(e, &method, &path);
        for (int c = 0; c < REDEEM_STATUS_CLASSES; c++)
            ap_rprintf(
                r,
                "redeem_requests_total{method=\"%s\",path=\"%s\",class=\"%s\"} %" APR_UINT64_T_FMT
                "\n",
                method, path, status_classes[c], value(shared, endpoint_counter(e, c)));
    }
    print_family(r, "redeem_request_duration_seconds", "histogram",
                 "Time from the request's arrival to the end of its response, by endpoint");
    for (int e = 0; e < REDEEM_ENDPOINTS; e++) {
        uint64_t cumulative = 0;
        endpoint_labels(e, &method, &path);
        for (int b = 0; b < REDEEM_LATENCY_BUCKETS; b++) {
            cumulative += value(shared, endpoint_counter(e, REDEEM_STATUS_CLASSES + b));
            ap_rprintf(r,
                       "redeem_request_duration_seconds_bucket{method=\"%s\",path=\"%s\","
                       "le=\"%s\"} %" APR_UINT64_T_FMT "\n",
                       method, path, bucket_labels[b], cumulative);
        }
        uint64_t sum_us =
            value(shared, endpoint_counter(e, REDEEM_STATUS_CLASSES + REDEEM_LATENCY_BUCKETS));
        ap_rprintf(
            r,
            "redeem_request_duration_seconds_sum{method=\"%s\",path=\"%s\"} %" APR_UINT64_T_FMT
            ".%06" APR_UINT64_T_FMT "\n"
            "redeem_request_duration_seconds_count{method=\"%s\",path=\"%s\"} %" APR_UINT64_T_FMT
            "\n",
            method, path, (sum_us / 1000000), (sum_us % 1000000), method, path, cumulative);
    }
    print_family(r, "redeem_redemptions_total", "counter", "Redemption attempts by outcome");
    for (int i = 0; i < REDEEM_OUTCOMES; i++)
        ap_rprintf(r, "redeem_redemptions_total{outcome=\"%s\"} %" APR_UINT64_T_FMT "\n",
                   outcomes[i], value(shared, REDEEM_COUNTER_OUTCOME_FIRST + i));
    print_family(r, "redeem_rate_limited_total", "counter",
                 "Requests refused with 429, by rate-limit scope");
    for (int i = 0; i < REDEEM_SCOPE_COUNT_; i++)
        ap_rprintf(r, "redeem_rate_limited_total{scope=\"%s\"} %" APR_UINT64_T_FMT "\n",
                   redeem_ratelimit_scope_name(i), value(shared, REDEEM_COUNTER_LIMITED_FIRST + i));
    for (size_t i = 0; i < sizeof singles / sizeof *singles; i++) {
        print_family(r, singles[i].name, "counter", singles[i].help);
        ap_rprintf(r, "%s %s\n", singles[i].name, single_text(r->pool, shared, i));
    }
}

int redeem_metrics_handler(request_rec *r)
{
    if (!r->handler || strcmp(r->handler, "redeem-metrics") != 0)
        return DECLINED;
    apr_table_setn(r->err_headers_out, "X-Content-Type-Options", "nosniff");
    if (r->method_number != M_GET) {
        apr_table_setn(r->err_headers_out, "Allow", "GET, HEAD");
        return HTTP_METHOD_NOT_ALLOWED;
    }
    const redeem_shared_t *shared = redeem_conf(r)->shared;
    if (!shared) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      RDMNO(0606) "redeem-metrics: RedeemEngine is On nowhere, nothing to show");
        return HTTP_NOT_FOUND;
    }
    ap_set_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (!r->header_only)
        prometheus(r, shared);
    return OK;
}

int redeem_metrics_status(request_rec *r, int flags)
{
    const redeem_shared_t *shared = redeem_conf(r)->shared;
    const char *method, *path;
    if (!shared)
        return OK;
    if (flags & AP_STATUS_SHORT) {
        for (int e = 0; e < REDEEM_ENDPOINTS; e++) {
            uint64_t all = 0, errors = 0;
            for (int c = 0; c < REDEEM_STATUS_CLASSES; c++)
                all += value(shared, endpoint_counter(e, c));
            errors = value(shared, endpoint_counter(e, 2)) + value(shared, endpoint_counter(e, 3));
            endpoint_labels(e, &method, &path);
            ap_rprintf(r,
                       "RedeemRequests %s %s: %" APR_UINT64_T_FMT
                       "\nRedeemErrors %s %s: %" APR_UINT64_T_FMT "\n",
                       method, path, all, method, path, errors);
        }
        for (int i = 0; i < REDEEM_OUTCOMES; i++)
            ap_rprintf(r, "RedeemRedemptions %s: %" APR_UINT64_T_FMT "\n", outcomes[i],
                       value(shared, REDEEM_COUNTER_OUTCOME_FIRST + i));
        for (int i = 0; i < REDEEM_SCOPE_COUNT_; i++)
            ap_rprintf(r, "RedeemRateLimited %s: %" APR_UINT64_T_FMT "\n",
                       redeem_ratelimit_scope_name(i),
                       value(shared, REDEEM_COUNTER_LIMITED_FIRST + i));
        for (size_t i = 0; i < sizeof singles / sizeof *singles; i++)
            ap_rprintf(r, "%s: %s\n", singles[i].name, single_text(r->pool, shared, i));
        return OK;
    }
    ap_rputs("<hr />\n<h2>mod_redeem</h2>\n<table border=\"1\">"
             "<tr><th>endpoint</th><th>2xx</th><th>3xx</th><th>4xx</th><th>5xx</th></tr>\n",
             r);
    for (int e = 0; e < REDEEM_ENDPOINTS; e++) {
        endpoint_labels(e, &method, &path);
        ap_rprintf(r, "<tr><td>%s %s</td>", method, ap_escape_html(r->pool, path));
        for (int c = 0; c < REDEEM_STATUS_CLASSES; c++)
            ap_rprintf(r, "<td>%" APR_UINT64_T_FMT "</td>", value(shared, endpoint_counter(e, c)));
        ap_rputs("</tr>\n", r);
    }
    ap_rputs("</table>\n<table border=\"1\"><tr><th>counter</th><th>value</th></tr>\n", r);
    for (int i = 0; i < REDEEM_OUTCOMES; i++)
        ap_rprintf(r, "<tr><td>redemptions %s</td><td>%" APR_UINT64_T_FMT "</td></tr>\n",
                   outcomes[i], value(shared, REDEEM_COUNTER_OUTCOME_FIRST + i));
    for (int i = 0; i < REDEEM_SCOPE_COUNT_; i++)
        ap_rprintf(r, "<tr><td>rate-limited %s</td><td>%" APR_UINT64_T_FMT "</td></tr>\n",
                   redeem_ratelimit_scope_name(i), value(shared, REDEEM_COUNTER_LIMITED_FIRST + i));
    for (size_t i = 0; i < sizeof singles / sizeof *singles; i++)
        ap_rprintf(r, "<tr><td>%s</td><td>%s</td></tr>\n", singles[i].name,
                   single_text(r->pool, shared, i));
    ap_rputs("</table>\n", r);
    return OK;
}
