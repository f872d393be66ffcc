/* The line of user reads (mod_redeem/httpd/user_reads.c) without httpd:
 * its static helpers called directly on a child's line made here, one
 * thread, no clock. What an HTTP test cannot reach reliably: drop_late, which
 * answers the requests in line that are too late to be read as a read
 * begins (a request behind another with an earlier deadline only gets there
 * through the scheduler's order of wake-ups); when a further read may begin
 * (may_read: a long line) and who is nudged to run it; take_batch's share of
 * a long line.
 *
 * And the waits for room in a full line and for a read (redeem_user_reads_get),
 * with threads and clocks of the test's own: a monotonic clock (the real one
 * plus a skew the test moves, so that a request can be made too late while
 * it sleeps) and the process's wall clock (wall_clock.h: the real one plus
 * a step the test makes, seen by APR too, which must change no wait).
 *
 * The file is included, not linked, for its static functions; what it calls
 * outside itself is stubbed below (none of it runs in these tests but the
 * locks, condition variables and events, core/sync.c's). */
#include "httpd/user_reads.c"

#include "httpd_stubs.h"
#include "tap.h"
#include "wall_clock.h"

#include <apr_general.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>
#include <time.h>

static apr_interval_time_t skew;
int64_t redeem_clock_monotonic(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000 +
           __atomic_load_n(&skew, __ATOMIC_RELAXED);
}

/* ---- Stubs of what user_reads.c links against (never called here). */

apr_time_t redeem_call_db_start(redeem_call_t *call)
{
    return call->db_since;
}
const redeem_failure_t *redeem_call_db_since(redeem_call_t *call, apr_time_t since)
{
    (void)call, (void)since;
    return &redeem_failure_unavailable;
}
apr_time_t redeem_db_deadline(const redeem_db_t *db)
{
    (void)db;
    return 0;
}
void redeem_db_set_deadline(redeem_db_t *db, apr_time_t deadline)
{
    (void)db, (void)deadline;
}
const redeem_failure_t *redeem_db_query(redeem_db_t *db, redeem_stmt_e stmt,
                                        const char *const *args, redeem_rows_t *rows)
{
    (void)db, (void)stmt, (void)args, (void)rows;
    return &redeem_failure_unavailable;
}
/* 0: the database answers; 2: another request is trying it (db.c). */
/* The one request that finds the database being tried by another (2); any
 * other finds it usable. Per request, not for a while: a request woken by
 * the one that left must not find it so too if it runs before the test has
 * put the database back (a flake of test_exit_passes_room). */
static request_rec *silent_request;
int redeem_db_silent(request_rec *r)
{
    return r == __atomic_load_n(&silent_request, __ATOMIC_ACQUIRE) ? 2 : 0;
}
void redeem_shared_count(redeem_shared_t *shared, redeem_counter_e counter)
{
    (void)shared, (void)counter;
}
void redeem_user_from_row(const redeem_rows_t *rows, int row, redeem_user_t *user)
{
    (void)rows, (void)row, (void)user;
}

/* ---- A child's line of n places, each with its deadline (µs). */
#define MARGIN 500000 /* a tenth of RedeemDBTimeout 5000 ms */
#define NOW 1000000000

static user_read_t reads[LONG_LINE + 1];

static void make_line(redeem_child_t *child, const apr_time_t *deadlines, int n)
{
    memset(reads, 0, sizeof reads);
    child->read_pending_count = n;
    child->read_room_waiters = 0;
    for (int i = 0; i < n; i++) {
        reads[i].id = i + 1;
        reads[i].deadline = deadlines[i];
        redeem_sync_event_init(&reads[i].event);
        child->read_pending[i] = &reads[i];
    }
}

/* Its owner would have been answered: its event finished. */
static int done(user_read_t *read)
{
    return redeem_sync_event_done(redeem_sync_event_seen(&read->event));
}

/* The ids left in the line, as "1 3 4". */
static const char *line_ids(apr_pool_t *p, const redeem_child_t *child)
{
    const char *ids = "";
    for (int i = 0; i < child->read_pending_count; i++)
        ids =
            apr_psprintf(p, "%s%s%" APR_INT64_T_FMT, ids, i ? " " : "", child->read_pending[i]->id);
    return ids;
}

static void test_drop_late(apr_pool_t *p, redeem_child_t *child)
{
    /* The reader first (its own deadline past the margin too: it is never
     * dropped, its read ends by the earliest deadline it reads for), then
     * one too late, one in time, one just in time (exactly the margin
     * left), one too late by a microsecond. */
    const apr_time_t deadlines[] = {NOW + MARGIN - 1, NOW + MARGIN - 1000, NOW + 3 * MARGIN,
                                    NOW + MARGIN, NOW + MARGIN - 1};
    make_line(child, deadlines, 5);
    drop_late(child, &reads[0], NOW, MARGIN);
    ok(strcmp(line_ids(p, child), "1 3 4") == 0,
       apr_psprintf(p,
                    "drop_late: the late ones leave the line, the others keep their order "
                    "(left: %s)",
                    line_ids(p, child)));
    ok(reads[1].dropped && done(&reads[1]) && reads[4].dropped && done(&reads[4]),
       "drop_late: each late one is answered: dropped and done (its owner returns 503, RDM0207)");
    ok(!reads[0].dropped && !done(&reads[0]), "drop_late: the reader itself is never dropped");
    ok(!reads[2].dropped && !done(&reads[2]) && !reads[3].dropped && !done(&reads[3]),
       "drop_late: one with the margin left, or more, stays to be read");

    /* Nobody late: nothing changes. */
    const apr_time_t in_time[] = {NOW + 2 * MARGIN, NOW + 2 * MARGIN, NOW + MARGIN};
    make_line(child, in_time, 3);
    drop_late(child, &reads[0], NOW, MARGIN);
    ok(strcmp(line_ids(p, child), "1 2 3") == 0 && !done(&reads[1]) && !done(&reads[2]),
       "drop_late: with nobody late the line is as it was");

    /* Every other one late: the reader reads alone. */
    const apr_time_t all_late[] = {NOW + 2 * MARGIN, NOW, NOW - 1, NOW + 1};
    make_line(child, all_late, 4);
    drop_late(child, &reads[0], NOW, MARGIN);
    ok(strcmp(line_ids(p, child), "1") == 0 && reads[1].dropped && reads[2].dropped &&
           reads[3].dropped,
       "drop_late: with every other one late the reader is left alone in the line");
}

static void test_leave_line(apr_pool_t *p, redeem_child_t *child)
{
    const apr_time_t deadlines[] = {NOW + MARGIN, NOW + MARGIN, NOW + MARGIN, NOW + MARGIN};
    make_line(child, deadlines, 4);
    child->read_in_flight = READS_AT_ONCE;
    leave_line(child, &reads[2]);
    ok(strcmp(line_ids(p, child), "1 2 4") == 0,
       "leave_line: a request leaving from the middle of the line, the rest in order");
    leave_line(child, &reads[2]);
    ok(strcmp(line_ids(p, child), "1 2 4") == 0,
       "leave_line: one no longer in the line changes nothing");
    apr_uint32_t second = redeem_sync_event_seen(&reads[1].event);
    leave_line(child, &reads[0]);
    ok(strcmp(line_ids(p, child), "2 4") == 0, "leave_line: the first leaving, the next is first");
    ok(redeem_sync_event_seen(&reads[1].event) == second,
       "leave_line: ... and, with a read running, is not woken to read");

    /* No read running: the next one is nudged to read, or the line would
     * wait with nobody reading. */
    make_line(child, deadlines, 3);
    child->read_in_flight = 0;
    second = redeem_sync_event_seen(&reads[1].event);
    leave_line(child, &reads[0]);
    apr_uint32_t now_seen = redeem_sync_event_seen(&reads[1].event);
    ok(strcmp(line_ids(p, child), "2 3") == 0 && now_seen != second &&
           !redeem_sync_event_done(now_seen),
       "leave_line: the first leaving with no read running, the next is nudged (not finished) "
       "to read");
    child->read_in_flight = 0;
}

/* A line of LONG_LINE or more with a read running: a further read may
 * begin, up to READS_AT_MOST at once; a shorter line waits for the read. */
static void test_long_line(apr_pool_t *p, redeem_child_t *child)
{
    (void)p;
    apr_time_t deadlines[LONG_LINE + 1];
    for (int i = 0; i <= LONG_LINE; i++)
        deadlines[i] = NOW + MARGIN;
    make_line(child, deadlines, LONG_LINE - 1);
    child->read_in_flight = READS_AT_ONCE;
    ok(!may_read(child), "long line: one read running, LONG_LINE - 1 in line: no further read");
    make_line(child, deadlines, LONG_LINE);
    ok(may_read(child), "long line: one read running, LONG_LINE in line: a further read");
    child->read_in_flight = READS_AT_MOST - 1;
    ok(may_read(child), "long line: READS_AT_MOST - 1 running: a further read");
    child->read_in_flight = READS_AT_MOST;
    ok(!may_read(child), "long line: READS_AT_MOST running: no further read");
    child->read_pending_count = 0;
    child->read_in_flight = 0;
    ok(may_read(child), "long line: nothing running: a read");

    /* The first leaving a line that stays long, one read running: the
     * next is nudged to read; leaving one that gets short, it is not. */
    make_line(child, deadlines, LONG_LINE + 1);
    child->read_in_flight = READS_AT_ONCE;
    apr_uint32_t second = redeem_sync_event_seen(&reads[1].event);
    leave_line(child, &reads[0]);
    apr_uint32_t now_seen = redeem_sync_event_seen(&reads[1].event);
    ok(child->read_pending_count == LONG_LINE && now_seen != second &&
           !redeem_sync_event_done(now_seen),
       "long line: the first leaving, LONG_LINE left and a read running: the next is nudged");
    make_line(child, deadlines, LONG_LINE);
    second = redeem_sync_event_seen(&reads[1].event);
    leave_line(child, &reads[0]);
    ok(redeem_sync_event_seen(&reads[1].event) == second,
       "long line: the first leaving, LONG_LINE - 1 left: the next is not nudged");
    child->read_pending_count = 0;
    child->read_in_flight = 0;
}

/* ---- Waiting for room in a full line. */
typedef struct {
    redeem_call_t call;
    request_rec r;
    const redeem_failure_t *failure;
    apr_int64_t cpu_us; /* the CPU its wait used */
} waiter_t;

static void *APR_THREAD_FUNC wait_for_room(apr_thread_t *thread, void *data)
{
    waiter_t *w = data;
    int found = 0;
    apr_int64_t cpu = thread_cpu_us();
    w->failure = redeem_user_reads_get(&w->call, w->call.db_since, &found);
    w->cpu_us = thread_cpu_us() - cpu;
    /* Returned, not apr_thread_exit: pthread_exit leaves this frame's stack
     * poisoned, and ASan then reports the thread's own teardown. */
    (void)thread;
    return NULL;
}

/* Polls (every 10 ms, up to `seconds`) for what(child) under the lock. */
static int within(redeem_child_t *child, double seconds, int (*what)(redeem_child_t *))
{
    for (int i = 0; i < seconds * 100; i++) {
        redeem_sync_lock(child->read_lock);
        int yes = what(child);
        redeem_sync_unlock(child->read_lock);
        if (yes)
            return 1;
        apr_sleep(apr_time_from_msec(10));
    }
    return 0;
}
static int one_waits(redeem_child_t *child)
{
    return child->read_room_waiters == 1;
}
static int two_wait(redeem_child_t *child)
{
    return child->read_room_waiters == 2;
}
static int one_in_line(redeem_child_t *child)
{
    return child->read_pending_count == 1;
}
static int line_empty(redeem_child_t *child)
{
    return child->read_pending_count == 0;
}
static int long_line(redeem_child_t *child)
{
    return child->read_pending_count == LONG_LINE;
}
static int two_joined(redeem_child_t *child)
{
    return child->read_room_waiters == 0 &&
           child->read_pending_count == REDEEM_USER_READ_LINE - REDEEM_USER_READ_BATCH + 2;
}
static int line_full(redeem_child_t *child)
{
    return child->read_pending_count == REDEEM_USER_READ_LINE;
}
static int none_waits_line_full(redeem_child_t *child)
{
    return child->read_room_waiters == 0 && line_full(child);
}

/* The line made full of requests that wait nowhere (their deadlines ten
 * minutes away, their ids from base_id), every read busy: a request that
 * comes waits for room, or in line. */
static void fill_line(redeem_child_t *child, user_read_t full[REDEEM_USER_READ_LINE],
                      apr_int64_t base_id)
{
    memset(full, 0, sizeof *full * REDEEM_USER_READ_LINE);
    for (int i = 0; i < REDEEM_USER_READ_LINE; i++) {
        full[i].id = base_id + i;
        full[i].deadline = redeem_clock_monotonic() + apr_time_from_sec(600);
        child->read_pending[i] = &full[i];
    }
    child->read_pending_count = REDEEM_USER_READ_LINE;
    child->read_in_flight = READS_AT_MOST;
    child->read_room_waiters = 0;
}

/* A request of its own pool whose RedeemDBTimeout counts from db_since. */
static void waiter_init(waiter_t *w, redeem_server_conf *conf, apr_time_t db_since)
{
    memset(w, 0, sizeof *w);
    apr_pool_create_unmanaged(&w->r.pool);
    w->call.r = &w->r;
    w->call.conf = conf;
    w->call.db_since = db_since;
}

/* The end of a test: every request made too late and woken wherever it
 * waits; once they are joined, line_reset empties the line. */
static void wake_all_late(redeem_child_t *child)
{
    __atomic_store_n(&skew, apr_time_from_sec(200), __ATOMIC_RELAXED);
    redeem_sync_lock(child->read_lock);
    redeem_sync_broadcast(child->read_room);
    for (int i = 0; i < child->read_pending_count; i++) {
        redeem_sync_event_nudge(&child->read_pending[i]->event);
        redeem_sync_event_wake(&child->read_pending[i]->event);
    }
    redeem_sync_unlock(child->read_lock);
}
static void line_reset(redeem_child_t *child)
{
    child->read_pending_count = 0;
    child->read_in_flight = 0;
    __atomic_store_n(&skew, 0, __ATOMIC_RELAXED);
}

/* A read takes the first REDEEM_USER_READ_BATCH of a longer line, the rest
 * keeping their order; a line left long has its new first nudged to read. */
static void test_take_batch(apr_pool_t *p, redeem_child_t *child)
{
    (void)p;
    static user_read_t full[REDEEM_USER_READ_LINE];
    fill_line(child, full, 700);
    child->read_in_flight = 0;
    for (int i = 0; i < REDEEM_USER_READ_LINE; i++)
        redeem_sync_event_init(&full[i].event);
    apr_uint32_t next_seen = redeem_sync_event_seen(&full[REDEEM_USER_READ_BATCH].event);
    user_read_t *batch[REDEEM_USER_READ_BATCH], *next;
    int n = take_batch(child, batch, &next);
    int in_order = 1, taken = 1;
    for (int i = 0; i < n; i++) {
        in_order = in_order && batch[i]->id == 700 + i;
        taken = taken && batch[i]->taken;
    }
    ok(n == REDEEM_USER_READ_BATCH && in_order && taken,
       "take_batch: a full line gives its first REDEEM_USER_READ_BATCH, in order, taken");
    ok(child->read_pending_count == REDEEM_USER_READ_LINE - REDEEM_USER_READ_BATCH &&
           child->read_pending[0]->id == 700 + REDEEM_USER_READ_BATCH &&
           child->read_pending[child->read_pending_count - 1]->id ==
               700 + REDEEM_USER_READ_LINE - 1 &&
           !child->read_pending[0]->taken,
       "take_batch: the rest stay in the line in order, not taken");
    ok(child->read_in_flight == 1, "take_batch: the read counts as running");
    ok(next == &full[REDEEM_USER_READ_BATCH] && redeem_sync_event_seen(&next->event) != next_seen &&
           !redeem_sync_event_done(redeem_sync_event_seen(&next->event)),
       "take_batch: the line left long, its new first is nudged (a further read at once)");
    n = take_batch(child, batch, &next);
    ok(n == REDEEM_USER_READ_BATCH && batch[0]->id == 700 + REDEEM_USER_READ_BATCH,
       "take_batch: the next read takes the next REDEEM_USER_READ_BATCH");
    child->read_pending_count = LONG_LINE - 1;
    child->read_in_flight = READS_AT_ONCE;
    n = take_batch(child, batch, &next);
    ok(n == LONG_LINE - 1 && child->read_pending_count == 0 && !next,
       "take_batch: a short line is taken whole, nobody nudged");
    child->read_pending_count = REDEEM_USER_READ_BATCH + LONG_LINE - 1;
    child->read_in_flight = READS_AT_ONCE - 1;
    n = take_batch(child, batch, &next);
    ok(n == REDEEM_USER_READ_BATCH && child->read_pending_count == LONG_LINE - 1 && !next,
       "take_batch: the line left short of LONG_LINE, a read running: nobody nudged");
    line_reset(child);
}

/* Two requests wait for room in a full line; a read's start frees
 * REDEEM_USER_READ_BATCH places and wakes them: both are in the line
 * within 3 s, not at their deadlines a minute away. */
static void test_take_batch_room(apr_pool_t *p, redeem_server_conf *conf)
{
    redeem_child_t *child = conf->child;
    static user_read_t full[REDEEM_USER_READ_LINE];
    fill_line(child, full, 900);
    apr_interval_time_t timeout = apr_time_from_msec(conf->db_timeout_ms);
    waiter_t w[2];
    apr_thread_t *threads[2];
    for (int i = 0; i < 2; i++) {
        waiter_init(&w[i], conf, redeem_clock_monotonic() - timeout + apr_time_from_sec(60));
        apr_thread_create(&threads[i], NULL, wait_for_room, &w[i], p);
    }
    ok(within(child, 3, two_wait), "take_batch room: with the line full, two wait for room");
    redeem_sync_lock(child->read_lock);
    child->read_in_flight = READS_AT_MOST - 1;
    user_read_t *batch[REDEEM_USER_READ_BATCH], *next;
    take_batch(child, batch, &next);
    redeem_sync_unlock(child->read_lock);
    ok(within(child, 3, two_joined),
       "take_batch room: a read's start wakes them, both in the line within 3 s");
    wake_all_late(child);
    apr_status_t rv;
    for (int i = 0; i < 2; i++) {
        apr_thread_join(&rv, threads[i]);
        apr_pool_destroy(w[i].r.pool);
    }
    line_reset(child);
}

/* A request joining a line of LONG_LINE - 1 with a read running makes it
 * long: the first in line (no thread here) is nudged to begin a further
 * read at once, not when the running read ends. */
static void test_join_long_line(apr_pool_t *p, redeem_server_conf *conf)
{
    redeem_child_t *child = conf->child;
    apr_time_t deadlines[LONG_LINE + 1];
    for (int i = 0; i <= LONG_LINE; i++)
        deadlines[i] = redeem_clock_monotonic() + apr_time_from_sec(600);
    redeem_sync_lock(child->read_lock);
    make_line(child, deadlines, LONG_LINE - 1);
    child->read_in_flight = READS_AT_ONCE;
    apr_uint32_t first = redeem_sync_event_seen(&reads[0].event);
    redeem_sync_unlock(child->read_lock);

    waiter_t w;
    waiter_init(&w, conf,
                redeem_clock_monotonic() - apr_time_from_msec(conf->db_timeout_ms) +
                    apr_time_from_sec(60));
    apr_thread_t *thread;
    apr_thread_create(&thread, NULL, wait_for_room, &w, p);
    int joined = within(child, 3, long_line);
    redeem_sync_lock(child->read_lock);
    apr_uint32_t now_seen = redeem_sync_event_seen(&reads[0].event);
    redeem_sync_unlock(child->read_lock);
    ok(joined && now_seen != first && !redeem_sync_event_done(now_seen),
       "long line: the request that makes it LONG_LINE nudges the first in line to read");

    wake_all_late(child);
    apr_status_t rv;
    apr_thread_join(&rv, thread);
    ok(w.failure == &redeem_failure_unavailable,
       "long line: the joined request, made too late, answered 503");
    apr_pool_destroy(w.r.pool);
    line_reset(child);
}

/* The line full, W1 then W2 waiting for room; W1 is too late by the time one
 * place comes free. remove_from_line wakes one of them: if it is W1, W1
 * leaves (503), and W2 must have the room all the same, not sleep to its own
 * deadline (its timeout here: about a minute); if it is W2, W2 takes it.
 * Either way the line is full again at once. */
static void test_room_passed_on(apr_pool_t *p, redeem_server_conf *conf)
{
    redeem_child_t *child = conf->child;
    static user_read_t full[REDEEM_USER_READ_LINE];
    fill_line(child, full, 100); /* W2 joins the line, reads nothing */

    apr_interval_time_t timeout = apr_time_from_msec(conf->db_timeout_ms);
    waiter_t w[2];
    apr_thread_t *threads[2];
    /* W1's deadline in 10 s, W2's in 60 s (db_since is also its id). */
    for (int i = 0; i < 2; i++)
        waiter_init(&w[i], conf,
                    redeem_clock_monotonic() - timeout + apr_time_from_sec(i ? 60 : 10));
    apr_thread_create(&threads[0], NULL, wait_for_room, &w[0], p);
    int ready = within(child, 3, one_waits);
    apr_thread_create(&threads[1], NULL, wait_for_room, &w[1], p);
    ready = ready && within(child, 3, two_wait);
    ok(ready, "room: with the line full, two requests wait for room");

    __atomic_store_n(&skew, apr_time_from_sec(20), __ATOMIC_RELAXED); /* W1 too late now */
    redeem_sync_lock(child->read_lock);
    remove_from_line(child, 0);
    redeem_sync_unlock(child->read_lock);
    int got = within(child, 3, line_full);
    ok(got, "room: one place freed, W1 too late: W2 takes the place within 3 s (not at its "
            "own deadline)");

    wake_all_late(child);
    apr_status_t rv;
    for (int i = 0; i < 2; i++)
        apr_thread_join(&rv, threads[i]);
    ok(w[0].failure == &redeem_failure_unavailable && w[1].failure == &redeem_failure_unavailable,
       "room: W1 and, once too late too, W2 answered 503 (RDM0207)");
    for (int i = 0; i < 2; i++)
        apr_pool_destroy(w[i].r.pool);
    line_reset(child);
}

/* Each way out of the line's door that takes no place passes a room
 * wake-up on. W waits for room in a full line; a place is freed without
 * waking it (as if remove_from_line's one signal had gone to the request
 * below); then a request comes that leaves without the place: too late
 * (`late`), or the database being tried by another (db_silent 2). W must
 * have the place within 3 s, not at its own deadline, a minute away. */
static void test_exit_passes_room(apr_pool_t *p, redeem_server_conf *conf, int late)
{
    const char *what =
        late ? "room passed on, a request too late" : "room passed on, the database being tried";
    redeem_child_t *child = conf->child;
    static user_read_t full[REDEEM_USER_READ_LINE];
    fill_line(child, full, 300); /* nobody reads alone */
    apr_interval_time_t timeout = apr_time_from_msec(conf->db_timeout_ms);

    waiter_t w;
    waiter_init(&w, conf, redeem_clock_monotonic() - timeout + apr_time_from_sec(60));
    apr_thread_t *thread;
    apr_thread_create(&thread, NULL, wait_for_room, &w, p);
    ok(within(child, 3, one_waits), apr_psprintf(p, "%s: W waits for room", what));

    redeem_sync_lock(child->read_lock);
    child->read_pending_count--; /* a place, and no signal */
    redeem_sync_unlock(child->read_lock);

    waiter_t leaver;
    waiter_init(&leaver, conf,
                late ? redeem_clock_monotonic() - timeout
                     : redeem_clock_monotonic() + apr_time_from_sec(60));
    if (!late)
        __atomic_store_n(&silent_request, &leaver.r, __ATOMIC_RELEASE);
    int found = 0;
    const redeem_failure_t *left = redeem_user_reads_get(&leaver.call, 1, &found);
    __atomic_store_n(&silent_request, NULL, __ATOMIC_RELEASE);
    ok(left == &redeem_failure_unavailable,
       apr_psprintf(p, "%s: the request leaves with 503", what));
    ok(within(child, 3, none_waits_line_full),
       apr_psprintf(p, "%s: W takes the place within 3 s (not at its own deadline)", what));

    wake_all_late(child); /* W, in line now */
    apr_status_t rv;
    apr_thread_join(&rv, thread);
    apr_pool_destroy(w.r.pool);
    apr_pool_destroy(leaver.r.pool);
    line_reset(child);
}

/* One request waiting, for room in a full line (room) or in the line for
 * a read (else), its deadline 1.5 s away: it leaves (503) a tenth of
 * RedeemDBTimeout before, at about 1 s. The wall clock is stepped by `step`
 * while it waits and the request woken: a step either way must neither make
 * it leave early nor keep it past its time. */
static void test_wall_step(apr_pool_t *p, redeem_server_conf *conf, int room,
                           apr_interval_time_t step)
{
    redeem_child_t *child = conf->child;
    static user_read_t full[REDEEM_USER_READ_LINE];
    fill_line(child, full, 500);
    if (!room)
        child->read_pending_count = 0;
    const char *what = apr_psprintf(p, "wall step %+d s, waiting %s", (int)apr_time_sec(step),
                                    room ? "for room" : "in line");

    waiter_t w;
    waiter_init(&w, conf,
                redeem_clock_monotonic() - apr_time_from_msec(conf->db_timeout_ms) +
                    apr_time_from_msec(1500));
    apr_time_t began = redeem_clock_monotonic();
    apr_thread_t *thread;
    apr_thread_create(&thread, NULL, wait_for_room, &w, p);
    int ready = within(child, 3, room ? one_waits : one_in_line);
    ok(ready, apr_psprintf(p, "%s: the request waits", what));

    apr_sleep(apr_time_from_msec(100));
    __atomic_store_n(&wall_step, step, __ATOMIC_RELAXED);
    redeem_sync_lock(child->read_lock);
    if (room)
        redeem_sync_broadcast(child->read_room);
    else if (child->read_pending_count) {
        redeem_sync_event_nudge(&child->read_pending[0]->event);
        redeem_sync_event_wake(&child->read_pending[0]->event);
    }
    redeem_sync_unlock(child->read_lock);
    apr_sleep(apr_time_from_msec(300));
    if (step > 0) {
        redeem_sync_lock(child->read_lock);
        int waits = room ? one_waits(child) : one_in_line(child);
        redeem_sync_unlock(child->read_lock);
        ok(waits, apr_psprintf(p, "%s: woken 0.4 s in, it still waits", what));
    }
    int left = within(child, 2, room ? none_waits_line_full : line_empty);
    apr_interval_time_t took = redeem_clock_monotonic() - began;
    ok(left && took >= apr_time_from_msec(800) && took < apr_time_from_msec(1800),
       apr_psprintf(p,
                    "%s: it leaves at its time, about 1 s in (left after %" APR_INT64_T_FMT " ms)",
                    what, (apr_int64_t)(took / 1000)));
    apr_status_t rv;
    apr_thread_join(&rv, thread);
    ok(w.failure == &redeem_failure_unavailable, apr_psprintf(p, "%s: answered 503", what));
    ok(w.cpu_us < 50000, apr_psprintf(p, "%s: it slept, not spun (%" APR_INT64_T_FMT " ms of CPU)",
                                      what, (apr_int64_t)(w.cpu_us / 1000)));
    apr_pool_destroy(w.r.pool);
    line_reset(child);
    __atomic_store_n(&wall_step, 0, __ATOMIC_RELAXED);
}

/* The control of the wall steps below: a step of the test's wall clock
 * reaches APR itself, its apr_time_now and the timed waits of its own
 * condition variables, which sleep until a wall-clock instant (the reason
 * the module's are core/sync.c's). Were it not seen there, a wait that
 * counted on the wall clock could pass those tests. The module's own timed
 * wait, beside it, lasts its time. */
static void test_step_reaches_apr(apr_pool_t *p)
{
    __atomic_store_n(&wall_step, apr_time_from_sec(20), __ATOMIC_RELAXED);
    apr_interval_time_t seen = apr_time_now() - wall_clock_real();
    ok(seen > apr_time_from_sec(19) && seen < apr_time_from_sec(21),
       apr_psprintf(p,
                    "the wall clock stepped 20 s ahead reads so in APR (%" APR_INT64_T_FMT " ms)",
                    (apr_int64_t)(seen / 1000)));

    __atomic_store_n(&wall_step, apr_time_from_sec(1), __ATOMIC_RELAXED);
    apr_thread_mutex_t *apr_lock;
    apr_thread_cond_t *apr_cond;
    apr_thread_mutex_create(&apr_lock, APR_THREAD_MUTEX_DEFAULT, p);
    apr_thread_cond_create(&apr_cond, p);
    apr_time_t began = redeem_clock_monotonic();
    apr_thread_mutex_lock(apr_lock);
    apr_thread_cond_timedwait(apr_cond, apr_lock, apr_time_from_msec(100));
    apr_thread_mutex_unlock(apr_lock);
    apr_interval_time_t took = redeem_clock_monotonic() - began;
    ok(took >= apr_time_from_msec(900),
       apr_psprintf(p,
                    "APR's timed wait of 100 ms with the wall clock 1 s ahead lasts the step "
                    "longer (%" APR_INT64_T_FMT " ms)",
                    (apr_int64_t)(took / 1000)));

    redeem_sync_lock_t *lock;
    redeem_sync_cond_t *cond;
    int made = redeem_sync_lock_create(&lock, p) == APR_SUCCESS &&
               redeem_sync_cond_create(&cond, p) == APR_SUCCESS;
    began = redeem_clock_monotonic();
    apr_status_t rv = APR_SUCCESS;
    if (made) {
        redeem_sync_lock(lock);
        rv = redeem_sync_timedwait(cond, lock, apr_time_from_msec(100));
        redeem_sync_unlock(lock);
    }
    took = redeem_clock_monotonic() - began;
    ok(made && rv == APR_TIMEUP && took >= apr_time_from_msec(90) && took < apr_time_from_msec(600),
       apr_psprintf(p,
                    "core/sync.c's timed wait of 100 ms with the wall clock 1 s ahead times out "
                    "at its time (%" APR_INT64_T_FMT " ms)",
                    (apr_int64_t)(took / 1000)));
    __atomic_store_n(&wall_step, 0, __ATOMIC_RELAXED);
}

int main(void)
{
    apr_pool_t *p = stub_pool();
    redeem_child_t *child = apr_pcalloc(p, sizeof *child);
    const char *why = redeem_user_reads_child_init(p, child);
    if (why) {
        printf("Bail out! %s\n", why);
        return 1;
    }
    test_step_reaches_apr(p);
    test_drop_late(p, child);
    test_leave_line(p, child);
    test_long_line(p, child);
    redeem_server_conf conf = {.db_timeout_ms = 5000, .child = child};
    test_join_long_line(p, &conf);
    test_take_batch(p, child);
    test_take_batch_room(p, &conf);
    test_room_passed_on(p, &conf);
    test_exit_passes_room(p, &conf, 1);
    test_exit_passes_room(p, &conf, 0);
    for (int room = 1; room >= 0; room--) {
        test_wall_step(p, &conf, room, apr_time_from_sec(20));
        test_wall_step(p, &conf, room, -apr_time_from_sec(20));
    }
    printf("1..%d\n", test_number);
    apr_pool_destroy(p);
    apr_terminate();
    return failures ? 1 : 0;
}
