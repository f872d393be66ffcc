/* The line of user reads (mod_redeem/httpd/user_reads.c) without httpd:
 * its static helpers called directly on a child's line made here, one
 * thread, no clock. What an HTTP test cannot reach reliably: drop_late, which
 * answers the requests in line that are too late to be read as a read
 * begins (a request behind another with an earlier deadline only gets there
 * through the scheduler's order of wake-ups).
 *
 * The file is included, not linked, for its static functions; what it calls
 * outside itself is stubbed below (none of it runs in these tests but the
 * condition variables, which are APR's own). */
#include "httpd/user_reads.c"

#include "tap.h"

#include <apr_general.h>

/* ---- Stubs of what user_reads.c links against (never called here). */
module AP_MODULE_DECLARE_DATA redeem_module;
const redeem_failure_t redeem_failure_internal = {HTTP_INTERNAL_SERVER_ERROR, "internal", 0};
const redeem_failure_t redeem_failure_unavailable = {HTTP_SERVICE_UNAVAILABLE, "unavailable", 5};

AP_DECLARE(void)
ap_log_rerror_(const char *file, int line, int module_index, int level, apr_status_t status,
               const request_rec *r, const char *fmt, ...)
{
    (void)file, (void)line, (void)module_index, (void)level, (void)status, (void)r, (void)fmt;
}
apr_time_t redeem_call_db_start(redeem_call_t *call)
{
    (void)call;
    return 0;
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
int redeem_db_silent(request_rec *r)
{
    (void)r;
    return 0;
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

static user_read_t reads[8];

static void make_line(apr_pool_t *p, redeem_child_t *child, const apr_time_t *deadlines, int n)
{
    memset(reads, 0, sizeof reads);
    child->read_pending_count = n;
    child->read_room_waiters = 0;
    for (int i = 0; i < n; i++) {
        reads[i].id = i + 1;
        reads[i].deadline = deadlines[i];
        if (apr_thread_cond_create(&reads[i].wake, p) != APR_SUCCESS) {
            printf("Bail out! no condition variable\n");
            exit(1);
        }
        child->read_pending[i] = &reads[i];
    }
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
    make_line(p, child, deadlines, 5);
    drop_late(child, &reads[0], NOW, MARGIN);
    ok(strcmp(line_ids(p, child), "1 3 4") == 0,
       apr_psprintf(p,
                    "drop_late: the late ones leave the line, the others keep their order "
                    "(left: %s)",
                    line_ids(p, child)));
    ok(reads[1].dropped && reads[1].done && reads[4].dropped && reads[4].done,
       "drop_late: each late one is answered: dropped and done (its owner returns 503, RDM0207)");
    ok(!reads[0].dropped && !reads[0].done, "drop_late: the reader itself is never dropped");
    ok(!reads[2].dropped && !reads[2].done && !reads[3].dropped && !reads[3].done,
       "drop_late: one with the margin left, or more, stays to be read");

    /* Nobody late: nothing changes. */
    const apr_time_t in_time[] = {NOW + 2 * MARGIN, NOW + 2 * MARGIN, NOW + MARGIN};
    make_line(p, child, in_time, 3);
    drop_late(child, &reads[0], NOW, MARGIN);
    ok(strcmp(line_ids(p, child), "1 2 3") == 0 && !reads[1].done && !reads[2].done,
       "drop_late: with nobody late the line is as it was");

    /* Every other one late: the reader reads alone. */
    const apr_time_t all_late[] = {NOW + 2 * MARGIN, NOW, NOW - 1, NOW + 1};
    make_line(p, child, all_late, 4);
    drop_late(child, &reads[0], NOW, MARGIN);
    ok(strcmp(line_ids(p, child), "1") == 0 && reads[1].dropped && reads[2].dropped &&
           reads[3].dropped,
       "drop_late: with every other one late the reader is left alone in the line");
}

static void test_leave_line(apr_pool_t *p, redeem_child_t *child)
{
    const apr_time_t deadlines[] = {NOW + MARGIN, NOW + MARGIN, NOW + MARGIN, NOW + MARGIN};
    make_line(p, child, deadlines, 4);
    child->read_in_flight = READS_AT_ONCE;
    leave_line(child, &reads[2]);
    ok(strcmp(line_ids(p, child), "1 2 4") == 0,
       "leave_line: a request leaving from the middle of the line, the rest in order");
    leave_line(child, &reads[2]);
    ok(strcmp(line_ids(p, child), "1 2 4") == 0,
       "leave_line: one no longer in the line changes nothing");
    leave_line(child, &reads[0]);
    ok(strcmp(line_ids(p, child), "2 4") == 0, "leave_line: the first leaving, the next is first");
    child->read_in_flight = 0;
}

int main(void)
{
    apr_pool_t *p;
    if (apr_initialize() != APR_SUCCESS || apr_pool_create(&p, NULL) != APR_SUCCESS) {
        printf("Bail out! APR\n");
        return 1;
    }
    redeem_child_t *child = apr_pcalloc(p, sizeof *child);
    const char *why = redeem_user_reads_child_init(p, child);
    if (why) {
        printf("Bail out! %s\n", why);
        return 1;
    }
    test_drop_late(p, child);
    test_leave_line(p, child);
    printf("1..%d\n", test_number);
    apr_pool_destroy(p);
    apr_terminate();
    return failures ? 1 : 0;
}
