/* The request durations of the metrics (mod_redeem/httpd/metrics.c) under a
 * wall clock that is stepped while a request is served: both clocks are
 * this test's own (apr_time_now renamed to fake_wall below, and
 * redeem_clock_monotonic defined here), the shared counters recorded by
 * stubs. No httpd.
 *
 * The file is included, not linked, for its static functions. */
#define apr_time_now fake_wall
#include "httpd/metrics.c"
#undef apr_time_now

#include "fake_clocks.h"
#include "httpd_stubs.h"
#include "tap.h"

/* ---- The shared counters: what one request added. */
static uint64_t counted[REDEEM_COUNTER_COUNT_];
void redeem_shared_count(redeem_shared_t *shared, redeem_counter_e counter)
{
    (void)shared;
    counted[counter]++;
}
void redeem_shared_add(redeem_shared_t *shared, redeem_counter_e counter, uint64_t n)
{
    (void)shared;
    counted[counter] += n;
}
uint64_t redeem_shared_counter(const redeem_shared_t *shared, redeem_counter_e counter)
{
    (void)shared;
    return counted[counter];
}

/* ---- Stubs of what the rest of metrics.c links against (not run here). */
void redeem_router_endpoint(int endpoint, const char **method, const char **path)
{
    (void)endpoint;
    *method = "GET";
    *path = "/";
}
const char *redeem_ratelimit_scope_name(redeem_scope_e scope)
{
    (void)scope;
    return "";
}
AP_DECLARE_NONSTD(int) ap_rprintf(request_rec *r, const char *fmt, ...)
{
    (void)r, (void)fmt;
    return 0;
}
AP_DECLARE(void) ap_set_content_type(request_rec *r, const char *ct)
{
    (void)r, (void)ct;
}
AP_DECLARE(int) ap_rwrite(const void *buf, int nbyte, request_rec *r)
{
    (void)buf, (void)r;
    return nbyte;
}
AP_DECLARE(char *) ap_escape_html2(apr_pool_t *p, const char *s, int toasc)
{
    (void)toasc;
    return apr_pstrdup(p, s);
}

/* One request of endpoint 0, answered 200: read at the wall clock's now,
 * routed `before` later (the wall clock stepped by `step_before` meanwhile),
 * answered `during` after that (stepped by `step`). Its recorded duration
 * (the sum's increase) and the bucket it was counted in. */
static void serve(apr_pool_t *p, redeem_server_conf *conf, apr_interval_time_t before,
                  apr_interval_time_t step_before, apr_interval_time_t during,
                  apr_interval_time_t step, apr_int64_t *duration, int *bucket)
{
    memset(counted, 0, sizeof counted);
    request_rec *r = stub_request(p, conf);
    r->request_config = apr_pcalloc(p, sizeof(void *)); /* the module at index 0 */
    r->request_time = wall_now;
    wall_now += before + step_before;
    mono_now += before;
    redeem_metrics_route(r, 0);
    wall_now += during + step;
    mono_now += during;
    r->status = HTTP_OK;
    redeem_metrics_log_transaction(r);
    *duration =
        (apr_int64_t)counted[endpoint_counter(0, REDEEM_STATUS_CLASSES + REDEEM_LATENCY_BUCKETS)];
    *bucket = -1;
    for (int i = 0; i < REDEEM_LATENCY_BUCKETS; i++)
        if (counted[endpoint_counter(0, REDEEM_STATUS_CLASSES + i)])
            *bucket = i;
}

int main(void)
{
    apr_pool_t *p = stub_pool();
    redeem_server_conf conf = {.shared = (redeem_shared_t *)&conf};
    apr_int64_t duration;
    int bucket;

    serve(p, &conf, 200, 0, apr_time_from_msec(3), 0, &duration, &bucket);
    ok(duration == 3200 && bucket == 2,
       apr_psprintf(p,
                    "a request of 3.2 ms: 3200 µs, the bucket up to 5 ms (%" APR_INT64_T_FMT
                    " µs, bucket %d)",
                    duration, bucket));
    serve(p, &conf, 200, 0, apr_time_from_msec(3), apr_time_from_sec(20), &duration, &bucket);
    ok(duration == 3200 && bucket == 2,
       apr_psprintf(p,
                    "the wall clock stepped 20 s forward while it was served: still 3200 µs "
                    "(%" APR_INT64_T_FMT " µs, bucket %d; 20 s in the +Inf bucket before)",
                    duration, bucket));
    serve(p, &conf, 200, 0, apr_time_from_msec(3), -apr_time_from_sec(20), &duration, &bucket);
    ok(duration == 3200 && bucket == 2,
       apr_psprintf(p,
                    "the wall clock stepped 20 s back while it was served: still 3200 µs "
                    "(%" APR_INT64_T_FMT " µs, bucket %d; 0 in the first bucket before)",
                    duration, bucket));
    serve(p, &conf, 200, -apr_time_from_sec(20), apr_time_from_msec(3), 0, &duration, &bucket);
    ok(duration == 3000 && bucket == 2,
       apr_psprintf(p,
                    "the wall clock stepped back between the request line and its routing: "
                    "that part counts as none, the rest as it was (%" APR_INT64_T_FMT
                    " µs, bucket %d)",
                    duration, bucket));

    printf("1..%d\n", test_number);
    apr_pool_destroy(p);
    apr_terminate();
    return failures ? 1 : 0;
}
