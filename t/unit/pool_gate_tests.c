/* The wait for one of mod_dbd's pooled connections (mod_redeem/httpd/
 * pool_gate.c) without httpd or a database: a child's gate of one
 * connection, requests of the test's own, mod_dbd's acquire stubbed.
 *
 * What it checks: a request that finds the connection held waits in line
 * and is handed it when it is given back; one that waits past its time
 * leaves with 503 at that time, whatever the wall clock does meanwhile. The
 * monotonic clock is the real one, the process's wall clock (wall_clock.h,
 * seen by APR too) the real one plus a step the test makes.
 *
 * The file is included, not linked, for its static functions. */
#include "httpd/pool_gate.c"

#include "httpd_stubs.h"
#include "tap.h"
#include "wall_clock.h"

#include <apr_thread_proc.h>
#include <time.h>

int64_t redeem_clock_monotonic(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
}

void redeem_shared_count(redeem_shared_t *shared, redeem_counter_e counter)
{
    (void)shared, (void)counter;
}

/* mod_dbd's acquire: a connection of the pool `dbd_pool` (its parent is
 * what the gate knows the pool by). */
static apr_pool_t *dbd_parent;
static ap_dbd_t *stub_dbd_acquire(request_rec *r)
{
    ap_dbd_t *dbd = apr_pcalloc(r->pool, sizeof *dbd);
    apr_pool_create(&dbd->pool, dbd_parent);
    return dbd;
}

/* A request on a pool of its own (the gate hangs its ticket there). */
static request_rec *new_request(apr_pool_t *p, redeem_server_conf *conf)
{
    apr_pool_t *rp;
    apr_pool_create(&rp, p);
    return stub_request(rp, conf);
}

typedef struct {
    request_rec *r;
    apr_interval_time_t allowed; /* from its start to its deadline */
    const redeem_failure_t *failure;
    ap_dbd_t *dbd;
    apr_interval_time_t took;
} waiter_run_t;

static void *APR_THREAD_FUNC wait_for_connection(apr_thread_t *thread, void *data)
{
    waiter_run_t *w = data;
    apr_time_t began = redeem_clock_monotonic();
    w->failure = redeem_pool_gate_acquire(w->r, began + w->allowed, &w->dbd);
    w->took = redeem_clock_monotonic() - began;
    (void)thread;
    return NULL;
}

/* Whether one request waits in line, within 3 s. */
static int one_in_line(redeem_child_t *child)
{
    for (int i = 0; i < 300; i++) {
        redeem_sync_lock(child->pool_gates->lock);
        int waits = child->pool_gate->first != NULL;
        redeem_sync_unlock(child->pool_gates->lock);
        if (waits)
            return 1;
        apr_sleep(apr_time_from_msec(10));
    }
    return 0;
}

/* The one connection held by `holder`; W waits for it (deadline 500 ms
 * away). 100 ms in, the wall clock is stepped by `step` and W woken (as by
 * a spurious wake-up): W leaves with 503 at about 500 ms, not at once and
 * not the step later. */
static void test_wall_step(apr_pool_t *p, redeem_server_conf *conf, apr_interval_time_t step)
{
    redeem_child_t *child = conf->child;
    const char *what = apr_psprintf(p, "wall step %+d s", (int)apr_time_sec(step));
    waiter_run_t w = {new_request(p, conf), apr_time_from_msec(500), NULL, NULL, 0};
    apr_thread_t *thread;
    apr_thread_create(&thread, NULL, wait_for_connection, &w, p);
    ok(one_in_line(child), apr_psprintf(p, "%s: the request waits in line", what));
    apr_sleep(apr_time_from_msec(100));
    __atomic_store_n(&wall_step, step, __ATOMIC_RELAXED);
    redeem_sync_lock(child->pool_gates->lock);
    if (child->pool_gate->first)
        redeem_sync_signal(child->pool_gate->first->wake);
    redeem_sync_unlock(child->pool_gates->lock);
    apr_status_t rv;
    apr_thread_join(&rv, thread);
    ok(w.failure == &redeem_failure_unavailable && w.took >= apr_time_from_msec(450) &&
           w.took < apr_time_from_msec(1000),
       apr_psprintf(p,
                    "%s while it waits for a pooled connection: 503 at its time (500 ms), neither "
                    "at once nor the step later (waited %" APR_INT64_T_FMT " ms)",
                    what, (apr_int64_t)(w.took / 1000)));
    redeem_sync_lock(child->pool_gates->lock);
    int clear = child->pool_gate->first == NULL && child->pool_gate->held == 1;
    redeem_sync_unlock(child->pool_gates->lock);
    ok(clear, apr_psprintf(p, "%s: it left the line, the connection still held once", what));
    apr_pool_destroy(w.r->pool);
    __atomic_store_n(&wall_step, 0, __ATOMIC_RELAXED);
}

int main(void)
{
    apr_pool_t *p = stub_pool();
    apr_pool_create(&dbd_parent, p);
    redeem_child_t *child = apr_pcalloc(p, sizeof *child);
    redeem_server_conf *conf = apr_pcalloc(p, sizeof *conf);
    conf->child = child;
    conf->dbd_max = 1;
    conf->db_timeout_ms = 5000;
    conf->dbd_acquire = stub_dbd_acquire;
    server_rec *s = apr_pcalloc(p, sizeof *s);
    const char *why = redeem_pool_gates_child_init(p, s, &child->pool_gates);
    if (why) {
        printf("Bail out! %s\n", why);
        return 1;
    }

    /* The first connection teaches the gate its pool, and is counted. */
    request_rec *holder = new_request(p, conf);
    ap_dbd_t *dbd = NULL;
    const redeem_failure_t *failure =
        redeem_pool_gate_acquire(holder, redeem_clock_monotonic() + apr_time_from_sec(5), &dbd);
    ok(!failure && dbd && child->pool_gate && child->pool_gate->capacity == 1 &&
           child->pool_gate->held == 1,
       "the first request takes the one connection (DBDMax 1), counted");

    test_wall_step(p, conf, apr_time_from_sec(20));
    test_wall_step(p, conf, -apr_time_from_sec(20));

    /* Handed over: the holder's end gives the connection to the one in line. */
    waiter_run_t w = {new_request(p, conf), apr_time_from_sec(3), NULL, NULL, 0};
    apr_thread_t *thread;
    apr_thread_create(&thread, NULL, wait_for_connection, &w, p);
    ok(one_in_line(child), "handed over: the request waits in line");
    apr_sleep(apr_time_from_msec(100));
    apr_pool_destroy(holder->pool);
    apr_status_t rv;
    apr_thread_join(&rv, thread);
    ok(!w.failure && w.dbd && w.took < apr_time_from_sec(1),
       apr_psprintf(p,
                    "handed over: the connection given back goes to the request in line at once "
                    "(waited %" APR_INT64_T_FMT " ms)",
                    (apr_int64_t)(w.took / 1000)));
    ok(child->pool_gate->held == 1 && child->pool_gate->first == NULL,
       "handed over: still one held, nobody in line");
    apr_pool_destroy(w.r->pool);
    ok(child->pool_gate->held == 0, "given back at its request's end: none held");

    printf("1..%d\n", test_number);
    apr_pool_destroy(p);
    apr_terminate();
    return failures ? 1 : 0;
}
