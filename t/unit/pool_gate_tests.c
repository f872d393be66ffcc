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

void redeem_shared_count(redeem_shared_t *shared, redeem_counter_e counter)
{
    (void)shared, (void)counter;
}

/* mod_dbd's ap_dbd_open: a connection of the server's mod_dbd pool, made
 * in a pool of its own under that pool's (the parent is what the gate knows
 * a mod_dbd pool by). Servers whose directives agree share one. */
typedef struct {
    redeem_server_conf conf;
    redeem_child_t child;
    apr_pool_t *dbd_parent;
    int persist_off; /* DBDPersist Off: a connection in a pool under the caller's */
} server_t;
static server_t *servers[3];
static int dbd_open_count, dbd_close_count;
static ap_dbd_t *stub_dbd_open(apr_pool_t *pool, server_rec *s)
{
    redeem_server_conf *conf = ((void **)s->module_config)[0];
    for (int i = 0; i < 3; i++)
        if (servers[i] && &servers[i]->conf == conf) {
            ap_dbd_t *dbd = apr_pcalloc(pool, sizeof *dbd);
            apr_pool_create(&dbd->pool, servers[i]->persist_off ? pool : servers[i]->dbd_parent);
            __atomic_add_fetch(&dbd_open_count, 1, __ATOMIC_RELAXED);
            return dbd;
        }
    return NULL;
}
/* mod_dbd's ap_dbd_close: back to the pool, or (DBDPersist Off) its pool
 * destroyed, as mod_dbd does. */
static void stub_dbd_close(server_rec *s, ap_dbd_t *dbd)
{
    redeem_server_conf *conf = ((void **)s->module_config)[0];
    for (int i = 0; i < 3; i++)
        if (servers[i] && &servers[i]->conf == conf && servers[i]->persist_off)
            apr_pool_destroy(dbd->pool);
    __atomic_add_fetch(&dbd_close_count, 1, __ATOMIC_RELAXED);
}

/* A server of the child, with its own mod_dbd pool of DBDMax dbd_max, or
 * the one of `shares`. */
static server_t *new_server(apr_pool_t *p, int at, redeem_pool_gates_t *gates, apr_int64_t dbd_max,
                            server_t *shares)
{
    server_t *server = apr_pcalloc(p, sizeof *server);
    server->conf.child = &server->child;
    server->conf.dbd_max = dbd_max;
    server->conf.db_timeout_ms = 5000;
    server->conf.dbd_open = stub_dbd_open;
    server->conf.dbd_close = stub_dbd_close;
    server->child.pool_gates = gates;
    if (shares)
        server->dbd_parent = shares->dbd_parent;
    else
        apr_pool_create(&server->dbd_parent, p);
    servers[at] = server;
    return server;
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
    apr_int64_t cpu_us; /* the CPU its wait used */
} waiter_run_t;

static void *APR_THREAD_FUNC wait_for_connection(apr_thread_t *thread, void *data)
{
    waiter_run_t *w = data;
    apr_time_t began = redeem_clock_monotonic();
    apr_int64_t cpu = thread_cpu_us();
    w->failure = redeem_pool_gate_acquire(w->r, began + w->allowed, &w->dbd);
    w->took = redeem_clock_monotonic() - began;
    w->cpu_us = thread_cpu_us() - cpu;
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
    waiter_run_t w = {new_request(p, conf), apr_time_from_msec(500), NULL, NULL, 0, 0};
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
    ok(w.cpu_us < 50000, apr_psprintf(p, "%s: it slept, not spun (%" APR_INT64_T_FMT " ms of CPU)",
                                      what, (apr_int64_t)(w.cpu_us / 1000)));
    apr_pool_destroy(w.r->pool);
    __atomic_store_n(&wall_step, 0, __ATOMIC_RELAXED);
}

/* Three servers (virtual hosts) of one child: A with a mod_dbd pool of
 * DBDMax 1, B with one of its own of DBDMax 2, C with A's (the same
 * directives). Each pool is counted with its own DBDMax, however many
 * servers use it. */
static void test_servers(apr_pool_t *p, redeem_pool_gates_t *gates)
{
    server_t *a = new_server(p, 0, gates, 1, NULL);
    server_t *b = new_server(p, 1, gates, 2, NULL);
    server_t *c = new_server(p, 2, gates, 1, a);
    request_rec *a1 = new_request(p, &a->conf), *b1 = new_request(p, &b->conf),
                *b2 = new_request(p, &b->conf);
    ap_dbd_t *dbd;
    apr_time_t soon = redeem_clock_monotonic() + apr_time_from_sec(5);
    int taken = !redeem_pool_gate_acquire(a1, soon, &dbd) &&
                !redeem_pool_gate_acquire(b1, soon, &dbd) &&
                !redeem_pool_gate_acquire(b2, soon, &dbd);
    ok(taken && a->child.pool_gate && b->child.pool_gate &&
           a->child.pool_gate != b->child.pool_gate && a->child.pool_gate->capacity == 1 &&
           b->child.pool_gate->capacity == 2 && b->child.pool_gate->held == 2,
       "servers: A's pool (DBDMax 1) and B's (DBDMax 2) are counted apart, B's two connections "
       "taken while A holds its one");

    waiter_run_t w = {new_request(p, &b->conf), apr_time_from_msec(300), NULL, NULL, 0, 0};
    wait_for_connection(NULL, &w);
    ok(w.failure == &redeem_failure_unavailable && w.took >= apr_time_from_msec(250),
       "servers: B's third request waits for B's pool, and leaves with 503 at its time");
    apr_pool_destroy(w.r->pool);

    /* C learns from its first connection that its pool is A's. */
    request_rec *c1 = new_request(p, &c->conf);
    ok(!redeem_pool_gate_acquire(c1, soon, &dbd) && c->child.pool_gate == a->child.pool_gate &&
           a->child.pool_gate->held == 2,
       "servers: C's first connection is counted in A's pool, which C shares");
    apr_pool_destroy(c1->pool);
    apr_pool_destroy(b1->pool);
    w = (waiter_run_t){new_request(p, &c->conf), apr_time_from_msec(300), NULL, NULL, 0, 0};
    wait_for_connection(NULL, &w);
    ok(w.failure == &redeem_failure_unavailable,
       "servers: with A's one connection held by A, C's next request waits (and leaves with 503), "
       "though B's pool has one free");
    apr_pool_destroy(w.r->pool);
    apr_pool_destroy(a1->pool);
    apr_pool_destroy(b2->pool);
    ok(a->child.pool_gate->held == 0 && b->child.pool_gate->held == 0,
       "servers: every connection given back");
}

int main(void)
{
    apr_pool_t *p = stub_pool();
    server_rec *vhosts = apr_pcalloc(p, 4 * sizeof *vhosts);
    for (int i = 0; i < 3; i++)
        vhosts[i].next = &vhosts[i + 1];
    redeem_pool_gates_t *gates;
    const char *why = redeem_pool_gates_child_init(p, vhosts, &gates);
    if (why) {
        printf("Bail out! %s\n", why);
        return 1;
    }
    test_servers(p, gates);

    /* One server of DBDMax 1 (its own pool) for the waits. */
    server_t *server = new_server(p, 0, gates, 1, NULL);
    redeem_server_conf *conf = &server->conf;
    redeem_child_t *child = &server->child;

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
    waiter_run_t w = {new_request(p, conf), apr_time_from_sec(3), NULL, NULL, 0, 0};
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

    /* Given back before its request ends (response.c, before a response a
     * client may not read): the request in line has it at once, and neither
     * a second release nor the request's end gives anything back twice. */
    int opened = dbd_open_count, closed = dbd_close_count;
    request_rec *early = new_request(p, conf);
    failure =
        redeem_pool_gate_acquire(early, redeem_clock_monotonic() + apr_time_from_sec(5), &dbd);
    ok(!failure && dbd && child->pool_gate->held == 1 && dbd_open_count == opened + 1,
       "released early: a request takes the connection");
    waiter_run_t w2 = {new_request(p, conf), apr_time_from_sec(3), NULL, NULL, 0, 0};
    apr_thread_create(&thread, NULL, wait_for_connection, &w2, p);
    ok(one_in_line(child), "released early: another request waits in line");
    apr_sleep(apr_time_from_msec(100));
    redeem_pool_gate_release(early);
    apr_thread_join(&rv, thread);
    ok(!w2.failure && w2.dbd && w2.took < apr_time_from_sec(1) && dbd_close_count == closed + 1,
       apr_psprintf(p,
                    "released early: the connection goes back to mod_dbd and the request in line "
                    "has it at once, the first request still running (waited %" APR_INT64_T_FMT
                    " ms)",
                    (apr_int64_t)(w2.took / 1000)));
    redeem_pool_gate_release(early);
    apr_pool_destroy(early->pool);
    ok(child->pool_gate->held == 1 && dbd_close_count == closed + 1,
       "released early: released again and ended, it gives nothing back twice");
    apr_pool_destroy(w2.r->pool);
    ok(child->pool_gate->held == 0 && dbd_open_count == opened + 2 && dbd_close_count == closed + 2,
       "released early: every connection opened was given back once");

    /* DBDPersist Off: a connection made for the request alone, in a pool
     * under the request's, which APR destroys before the request pool's
     * cleanups run. Released early it is closed once; at the request's end
     * it is gone with its pool, not closed again (a double destroy). */
    server_t *unpooled = new_server(p, 1, gates, 1, NULL);
    unpooled->persist_off = 1;
    closed = dbd_close_count;
    request_rec *alone = new_request(p, &unpooled->conf);
    failure =
        redeem_pool_gate_acquire(alone, redeem_clock_monotonic() + apr_time_from_sec(5), &dbd);
    ok(!failure && dbd && unpooled->child.pool_gate == &gates->unpooled,
       "DBDPersist Off: a connection of the request's own, not counted");
    apr_pool_destroy(alone->pool);
    ok(dbd_close_count == closed, "DBDPersist Off: gone with the request, not closed again");
    alone = new_request(p, &unpooled->conf);
    failure =
        redeem_pool_gate_acquire(alone, redeem_clock_monotonic() + apr_time_from_sec(5), &dbd);
    redeem_pool_gate_release(alone);
    apr_pool_destroy(alone->pool);
    ok(!failure && dbd && dbd_close_count == closed + 1,
       "DBDPersist Off: released early, closed once");

    printf("1..%d\n", test_number);
    apr_pool_destroy(p);
    apr_terminate();
    return failures ? 1 : 0;
}
