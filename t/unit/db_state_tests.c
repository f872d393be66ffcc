/* A child's view of whether its database answers (mod_redeem/httpd/db.c:
 * note_unreachable, fail_fast, redeem_db_silent, note_answered, note_failed;
 * httpd/handle_health.c answering from it; httpd/failure.c's throttled
 * warnings) under a wall clock that is stepped (NTP, or by hand) while the
 * monotonic clock runs on. Both clocks are this test's own: apr_time_now is
 * renamed to fake_wall below, and redeem_clock_monotonic (core/clock.c, not
 * linked) is t/unit/fake_clocks.h's. No httpd, no database: what db.c calls outside
 * itself is stubbed, and none of its libpq calls run.
 *
 * The files are included, not linked, for their static functions. */
#define apr_time_now fake_wall
#include "httpd/db.c"
#include "httpd/failure.c"
#include "httpd/handle_health.c"
#undef apr_time_now

#define REDEEM_STUBS_HAVE_FAILURES /* failure.c is included */
#include "httpd_stubs.h"
#include "fake_clocks.h"
#include "tap.h"

#include <apr_general.h>

/* ---- Stubs of what the included files link against. */
AP_DECLARE(void)
ap_log_error_(const char *file, int line, int module_index, int level, apr_status_t status,
              const server_rec *s, const char *fmt, ...)
{
    (void)file, (void)line, (void)module_index, (void)level, (void)status, (void)s, (void)fmt;
}
const redeem_stmt_t redeem_statements[STMT_COUNT_];
const redeem_failure_t *redeem_pool_gate_acquire(request_rec *r, apr_time_t until, ap_dbd_t **dbd)
{
    (void)r, (void)until, (void)dbd;
    return &redeem_failure_unavailable;
}
void redeem_shared_count(redeem_shared_t *shared, redeem_counter_e counter)
{
    (void)shared, (void)counter;
}
void redeem_shared_add(redeem_shared_t *shared, redeem_counter_e counter, uint64_t n)
{
    (void)shared, (void)counter, (void)n;
}
/* The health check's own question: the database does not answer it. */
static int asked;
const redeem_failure_t *redeem_call_db(redeem_call_t *call)
{
    (void)call;
    asked++;
    return &redeem_failure_unavailable;
}
static int answered_status;
void redeem_response_text(request_rec *r, int status, const char *text, size_t len)
{
    (void)r, (void)text, (void)len;
    answered_status = status;
}

/* /api/health's status, and whether it asked the database for it. */
static int health(redeem_call_t *call, int *did_ask)
{
    asked = 0;
    answered_status = 0;
    redeem_handle_health(call);
    *did_ask = asked;
    return answered_status;
}

static void reset(redeem_child_t *child)
{
    child->db_retry_at = child->db_ok_at = child->db_failed_at = 0;
    child->started_at = mono_now;
}

/* A timeout, then the wall clock stepped back: the child tries the database
 * again a second later all the same, not a second plus the step. */
static void test_step_back(request_rec *r, redeem_child_t *child)
{
    reset(child);
    note_unreachable(r);
    ok(fail_fast(r) == 1 && redeem_db_silent(r) == 1,
       "right after a timeout: 503 at once, the database silent");
    step_wall(-apr_time_from_sec(20));
    pass(apr_time_from_msec(500));
    ok(fail_fast(r) == 1, "wall clock stepped back 20 s, half a second later: still 503 at once");
    pass(apr_time_from_msec(600));
    ok(redeem_db_silent(r) == 2,
       "a second after the timeout, whatever the wall clock did: the database may be tried");
    ok(fail_fast(r) == 0, "... and the next request is the probe (it does not fail at once)");
    ok(fail_fast(r) == 1, "... the one after it fails at once while the probe runs");
    note_answered(r);
    ok(fail_fast(r) == 0 && redeem_db_silent(r) == 0 && child->db_retry_at == 0,
       "the probe answered: the child uses the database again");
}

/* A timeout, then the wall clock stepped forward: the child still answers
 * 503 at once for its second, not one probe per request at once. */
static void test_step_forward(request_rec *r, redeem_child_t *child)
{
    reset(child);
    note_unreachable(r);
    step_wall(apr_time_from_sec(20));
    pass(apr_time_from_msec(100));
    ok(fail_fast(r) == 1 && redeem_db_silent(r) == 1,
       "wall clock stepped forward 20 s right after a timeout: still 503 at once");
    pass(apr_time_from_sec(1));
    ok(fail_fast(r) == 0, "a second later: the probe");
}

/* /api/health answers from the child's state only while a statement
 * succeeded within half a second (of the monotonic clock) and none failed
 * since. */
static void test_health(redeem_call_t *call, redeem_child_t *child)
{
    request_rec *r = call->r;
    int did_ask;
    reset(child);
    note_answered(r);
    pass(apr_time_from_msec(100));
    ok(health(call, &did_ask) == HTTP_OK && !did_ask,
       "health: a statement answered 0.1 s ago: 200 without asking");
    step_wall(-apr_time_from_sec(20));
    pass(apr_time_from_msec(100));
    note_failed(r);
    ok(health(call, &did_ask) == HTTP_SERVICE_UNAVAILABLE && did_ask,
       "health: the wall clock stepped back, then the database failed: asked, 503 (not the "
       "stale 200)");

    reset(child);
    note_answered(r);
    step_wall(-apr_time_from_sec(20));
    pass(apr_time_from_msec(600));
    ok(health(call, &did_ask) == HTTP_SERVICE_UNAVAILABLE && did_ask,
       "health: the last answer 0.6 s old, the wall clock stepped back: not fresh, asked");

    reset(child);
    note_answered(r);
    step_wall(apr_time_from_sec(20));
    pass(apr_time_from_msec(100));
    ok(health(call, &did_ask) == HTTP_OK && !did_ask,
       "health: the wall clock stepped forward: a 0.1 s old answer is still fresh");
}

/* note_silent: a wait that began late says the database is silent only
 * when nothing of the child's got an answer for RedeemDBTimeout. */
static void test_began_late(request_rec *r, redeem_child_t *child)
{
    reset(child);
    pass(apr_time_from_sec(10));
    note_answered(r);
    step_wall(-apr_time_from_sec(20));
    pass(apr_time_from_msec(100));
    redeem_db_t db = {.r = r, .deadline = mono_now + 1000, .began = mono_now};
    note_silent(&db);
    ok(child->db_retry_at == 0,
       "a late wait timed out 0.1 s after another's answer (wall clock stepped back): not silent");
    pass(apr_time_from_sec(6));
    note_silent(&db);
    ok(child->db_retry_at != 0, "... nor any answer for RedeemDBTimeout: silent");
}

/* A request's deadline (redeem_db_allow, redeem_db_limit) and the check
 * before a statement is sent (out_of_time) under a stepped wall clock: a
 * step forward does not make a request with time left out of time, a step
 * back does not give one out of time more. */
static void test_deadline(request_rec *r, redeem_child_t *child)
{
    reset(child);
    redeem_db_t db = {.r = r, .deadline = 0};
    redeem_db_allow(&db, apr_time_from_sec(5));
    begin_wait(&db);
    step_wall(apr_time_from_sec(20));
    pass(apr_time_from_msec(100));
    ok(out_of_time(&db, "statement ", "x", 0) == NULL,
       "deadline: 4.9 s of 5 left, the wall clock stepped forward 20 s: the statement is sent");
    ok(!began_late(&db), "... and its wait did not begin late");

    db.deadline = 0;
    redeem_db_allow(&db, apr_time_from_sec(1));
    step_wall(-apr_time_from_sec(20));
    pass(apr_time_from_msec(1100));
    ok(out_of_time(&db, "statement ", "x", 0) == &redeem_failure_unavailable,
       "deadline: 1 s given, 1.1 s later, the wall clock stepped back 20 s: out of time");

    db.deadline = 0;
    redeem_db_allow(&db, apr_time_from_sec(5));
    redeem_db_limit(&db, apr_time_from_msec(500));
    step_wall(apr_time_from_sec(20));
    pass(apr_time_from_msec(400));
    ok(db.shortened && out_of_time(&db, "statement ", "x", 0) == NULL,
       "deadline: limited to 0.5 s, 0.4 s later (wall clock stepped forward): still in time");
    step_wall(-apr_time_from_sec(40));
    pass(apr_time_from_msec(200));
    ok(out_of_time(&db, "statement ", "x", 0) == &redeem_failure_unavailable,
       "deadline: 0.6 s after a limit of 0.5 s (wall clock stepped back): out of time");
}

/* The warnings told once in REDEEM_LOG_EVERY (failure.c): a step of the
 * wall clock tells neither sooner nor later. */
static void test_throttle(request_rec *r, redeem_child_t *child)
{
    const char *note;
    ok(redeem_log_level_throttled(r, &child->pool_full_told, APLOG_WARNING, &note) == APLOG_WARNING,
       "throttle: the first warning is told");
    step_wall(-apr_time_from_sec(1));
    pass(apr_time_from_sec(1));
    ok(redeem_log_level_throttled(r, &child->pool_full_told, APLOG_WARNING, &note) == APLOG_DEBUG,
       "throttle: a second later, the wall clock stepped back: held back");
    step_wall(apr_time_from_sec(60));
    ok(redeem_log_level_throttled(r, &child->pool_full_told, APLOG_WARNING, &note) == APLOG_DEBUG,
       "throttle: the wall clock stepped forward a minute: still held back");
    pass(REDEEM_LOG_EVERY);
    ok(redeem_log_level_throttled(r, &child->pool_full_told, APLOG_WARNING, &note) == APLOG_WARNING,
       "throttle: REDEEM_LOG_EVERY later: told again");
}

int main(void)
{
    apr_pool_t *p = stub_pool();
    /* A request of a server whose configuration is ours, at index 0. */
    redeem_server_conf *conf = apr_pcalloc(p, sizeof *conf);
    conf->db_timeout_ms = 5000;
    conf->child = apr_pcalloc(p, sizeof *conf->child);
    request_rec *r = stub_request(p, conf);
    r->err_headers_out = apr_table_make(p, 2);
    redeem_call_t call = {.r = r, .conf = conf};

    test_step_back(r, conf->child);
    test_step_forward(r, conf->child);
    test_health(&call, conf->child);
    test_began_late(r, conf->child);
    test_deadline(r, conf->child);
    test_throttle(r, conf->child);
    printf("1..%d\n", test_number);
    apr_pool_destroy(p);
    apr_terminate();
    return failures ? 1 : 0;
}
