/* RedeemAdmin's set-up (mod_redeem/httpd/admin.c) with the child's hashing
 * slots (httpd/hashing.c), without httpd or a database: the account's read
 * and writes, the connection's deadline and argon2 itself are stubbed.
 *
 * What it checks: the set-up waits for a hashing slot no later than a tenth
 * before its connection's deadline, not RedeemHashWait. It may run inside a
 * read of users for several requests (user_reads.c read_batch), whose
 * connection's deadline is the earliest of theirs and whose other requests
 * wait for it with no timeout of their own. And that a step of the wall
 * clock while a request waits for a slot neither ends its wait early nor
 * stretches it: the monotonic clock is the real one, the process's wall
 * clock (wall_clock.h, seen by APR too) the real one plus a step the test
 * makes.
 *
 * The files are included, not linked, for their static functions. */
#include "httpd/admin.c"
#include "httpd/hashing.c"

#include "httpd_stubs.h"
#include "tap.h"
#include "wall_clock.h"

#include <apr_general.h>
#include <apr_thread_proc.h>

/* ---- Stubs of what the included files link against. */
void redeem_shared_count(redeem_shared_t *shared, redeem_counter_e counter)
{
    (void)shared, (void)counter;
}
void redeem_password_memory_release(redeem_password_memory_t *memory)
{
    (void)memory;
}
const char *redeem_password_hash(apr_pool_t *p, const redeem_password_cost_t *cost,
                                 redeem_password_memory_t *memory, const char *pw, size_t len,
                                 char **encoded)
{
    (void)cost, (void)memory, (void)pw, (void)len;
    *encoded = apr_pstrdup(p, "$argon2id$stub");
    return NULL;
}
redeem_password_result_e redeem_password_verify(redeem_password_memory_t *memory,
                                                const char *encoded, const char *pw, size_t len)
{
    (void)memory, (void)encoded, (void)pw, (void)len;
    return REDEEM_PASSWORD_MATCH;
}

/* The admin's account: none, or an ordinary one of that email. */
static int account_exists;
const redeem_failure_t *redeem_user_by_email(redeem_db_t *db, const char *email,
                                             redeem_user_t *user, const char **email_key)
{
    (void)db, (void)email_key;
    memset(user, 0, sizeof *user);
    if (account_exists) {
        user->id_text = "1";
        user->email = email;
        user->password_hash = "$argon2id$stub";
    }
    return NULL;
}
const redeem_failure_t *redeem_db_query(redeem_db_t *db, redeem_stmt_e stmt,
                                        const char *const *args, redeem_rows_t *rows)
{
    (void)db, (void)stmt, (void)args;
    rows->nrows = 1;
    rows->ncols = 0;
    rows->cells = NULL;
    return NULL;
}
/* The connection: only its deadline is asked for. */
static char a_connection;
#define DB ((redeem_db_t *)&a_connection)
static apr_time_t db_deadline;
apr_time_t redeem_db_deadline(const redeem_db_t *db)
{
    (void)db;
    return db_deadline;
}

/* The set-up with every hashing slot busy, its connection's deadline 600 ms
 * away (RedeemDBTimeout 1000 ms: a tenth is 100 ms), RedeemHashWait 3 s:
 * 503 after about 500 ms. */
static void test_bounded(request_rec *r, redeem_server_conf *conf, const char *path)
{
    int slot;
    conf->child->admin_ready = 0;
    ok(take_slot(r, 0, 0, &slot) == NULL, apr_psprintf(r->pool, "%s: the one slot taken", path));
    db_deadline = redeem_clock_monotonic() + apr_time_from_msec(600);
    apr_time_t began = redeem_clock_monotonic();
    const redeem_failure_t *failure = redeem_admin_ensure(r, DB);
    apr_interval_time_t took = redeem_clock_monotonic() - began;
    ok(failure && failure->status == HTTP_SERVICE_UNAVAILABLE && !conf->child->admin_ready,
       apr_psprintf(r->pool, "%s: no slot came free: 503, the admin not ready", path));
    ok(took >= apr_time_from_msec(400) && took < apr_time_from_msec(1000),
       apr_psprintf(r->pool,
                    "%s: it waited until a tenth before the connection's deadline, not "
                    "RedeemHashWait (waited %" APR_INT64_T_FMT " ms)",
                    path, (apr_int64_t)(took / 1000)));
    give_back_slot(r, slot);
}

/* 100 ms into a request's wait for a slot, the wall clock is stepped and
 * the waiter woken (as by a slot given back that another took first). */
typedef struct {
    redeem_child_t *child;
    apr_interval_time_t step;
} stepper_t;
static void *APR_THREAD_FUNC step_and_wake(apr_thread_t *thread, void *data)
{
    stepper_t *stepper = data;
    apr_sleep(apr_time_from_msec(100));
    __atomic_store_n(&wall_step, stepper->step, __ATOMIC_RELAXED);
    redeem_sync_lock(stepper->child->hash_lock);
    redeem_sync_broadcast(stepper->child->hash_freed);
    redeem_sync_unlock(stepper->child->hash_lock);
    (void)thread;
    return NULL;
}

/* Every slot busy, RedeemHashWait 500 ms: the wait ends at about 500 ms
 * whatever the wall clock does meanwhile. */
static void test_wall_step(apr_pool_t *p, request_rec *r, redeem_server_conf *conf,
                           apr_interval_time_t step)
{
    int slot, none;
    ok(take_slot(r, 0, 0, &slot) == NULL, "wall step: the one slot taken");
    conf->hash_wait_ms = 500;
    stepper_t stepper = {conf->child, step};
    apr_thread_t *thread;
    apr_thread_create(&thread, NULL, step_and_wake, &stepper, p);
    apr_time_t began = redeem_clock_monotonic();
    apr_int64_t cpu = thread_cpu_us();
    const redeem_failure_t *failure = take_slot(r, 0, 0, &none);
    apr_interval_time_t took = redeem_clock_monotonic() - began;
    cpu = thread_cpu_us() - cpu;
    apr_status_t rv;
    apr_thread_join(&rv, thread);
    ok(failure && failure->status == HTTP_SERVICE_UNAVAILABLE && took >= apr_time_from_msec(450) &&
           took < apr_time_from_msec(1000),
       apr_psprintf(p,
                    "wall clock stepped %+d s during a wait for a slot: 503 at RedeemHashWait "
                    "(500 ms), neither at once nor the step later (waited %" APR_INT64_T_FMT " ms)",
                    (int)apr_time_sec(step), (apr_int64_t)(took / 1000)));
    ok(cpu < 50000,
       apr_psprintf(p,
                    "wall clock stepped %+d s during a wait for a slot: it slept, not spun "
                    "(%" APR_INT64_T_FMT " ms of CPU)",
                    (int)apr_time_sec(step), (apr_int64_t)(cpu / 1000)));
    give_back_slot(r, slot);
    conf->hash_wait_ms = 3000;
    __atomic_store_n(&wall_step, 0, __ATOMIC_RELAXED);
}

int main(void)
{
    apr_pool_t *p = stub_pool();
    redeem_server_conf *conf = apr_pcalloc(p, sizeof *conf);
    conf->db_timeout_ms = 1000;
    conf->hash_wait_ms = 3000;
    conf->hash_concurrency = 1;
    conf->admin_email = "admin@example.com";
    conf->admin_password = "AdminPassword123";
    conf->child = apr_pcalloc(p, sizeof *conf->child);
    const char *why = redeem_hashing_child_init(p, conf->child, 1);
    if (why) {
        printf("Bail out! %s\n", why);
        return 1;
    }
    request_rec *r = stub_request(p, conf);

    /* A slot free: the account made, the admin ready. */
    db_deadline = redeem_clock_monotonic() + apr_time_from_sec(1);
    ok(redeem_admin_ensure(r, DB) == NULL && conf->child->admin_ready,
       "a slot free: the admin account made, ready");
    ok(conf->child->free_count == 1, "... and its slot given back");

    account_exists = 0;
    test_bounded(r, conf, "making the account (hash)");
    account_exists = 1;
    test_bounded(r, conf, "promoting an account (verify)");
    test_wall_step(p, r, conf, apr_time_from_sec(20));
    test_wall_step(p, r, conf, -apr_time_from_sec(20));

    printf("1..%d\n", test_number);
    apr_pool_destroy(p);
    apr_terminate();
    return failures ? 1 : 0;
}
