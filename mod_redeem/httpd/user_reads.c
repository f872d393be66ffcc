/* The token's user, read for many requests in one statement.
 *
 * Most of an authenticated GET is one round trip to PostgreSQL for the
 * token's user, and most of that round trip's cost is per statement, not per
 * row. So the requests of a child that need their users while its reads
 * run (READS_AT_ONCE, more when the line is long) do not each take a
 * connection and send a
 * statement: they wait for one to end, and the first of them reads them
 * (up to REDEEM_USER_READ_BATCH) in the next one
 * (STMT_USERS_BY_ID), as a group commit does with flushes. A request alone
 * reads at once; every read is a statement begun after the request asked,
 * so it sees every change committed before that.
 *
 * No request waits past its own deadline (redeem_call_db_start plus
 * RedeemDBTimeout, on the monotonic clock as every time here: a step of
 * the wall clock must neither make every request in line too late at once
 * nor stretch its wait):
 * one waiting in line leaves it (503) once less than a tenth of that is
 * left, and a read ends by the earliest deadline among its requests, so
 * none that it reads for waits longer than its own (and none with less
 * than that tenth left is read at all: it would fail the others). When
 * every pooled connection of the child is busy (DBDMax), the reader waits
 * for one, and its batch with it, until the batch's deadline less that
 * tenth (pool_gate.c), as any request that needs a connection does. When
 * the database stops answering, the first
 * read to time out makes the child answer 503 at once (db.c), and so do
 * the reads after it.
 *
 * Each waiting request's place (user_read_t) lives on its own stack; the
 * reader fills it in without the lock (the owner does not look until its
 * event is finished; once a reader has `taken` it, its owner no longer
 * leaves), and the owner copies it onto its own pool: no thread touches
 * another's pool. An owner sleeps on its place's own event, not on a
 * condition of the line's lock: woken when its read is done, it returns
 * without taking that lock, which its reader or the other woken owners
 * would still hold (sync.h). */
#include "httpd/private.h"

/* Text of one row's cells: an email is at most 254 characters (up to 1,016
 * bytes of UTF-8), the other cells are short. */
#define ROW_TEXT 1536

/* See read_batch. */
#define PLANNED_IDS 16

/* Reads in flight at once in a child. With one, the requests that come
 * while it runs wait and share the next, so each statement reads more of
 * them: at 16 connections on two cores a profile cost httpd and PostgreSQL
 * 128-145 us of CPU against 136-158 us with two reads at once, and ran 5%
 * faster (bench/cpu.sh, four pairs in turn, 2026-12-05; docs/performance.md).
 * But a line that grows past LONG_LINE is more than one read keeps up with
 * (hundreds of busy connections in one child: each waits for a whole
 * statement's latency on two loaded cores), so a further read starts, up
 * to READS_AT_MOST at once. */
#define READS_AT_ONCE 1
#define LONG_LINE 16
#define READS_AT_MOST 4

/* Under the lock: whether a read may begin now. */
static int may_read(const redeem_child_t *child)
{
    return child->read_in_flight < READS_AT_ONCE ||
           (child->read_in_flight < READS_AT_MOST && child->read_pending_count >= LONG_LINE);
}

/* Under the lock: the first in line if it may begin a read now, else NULL. */
static struct redeem_user_read *first_to_read(const redeem_child_t *child)
{
    return child->read_pending_count && may_read(child) ? child->read_pending[0] : NULL;
}

typedef struct redeem_user_read {
    apr_int64_t id;
    apr_time_t deadline;       /* redeem_call_db_start plus RedeemDBTimeout (monotonic) */
    redeem_sync_event_t event; /* its owner sleeps on it when in line: nudged (under
                                * read_lock) when its turn to read may have come,
                                * finished once the fields below are final */
    int taken;                 /* in a read's batch (under read_lock): the read ends by
                                * this deadline or an earlier one, so its owner waits */
    int dropped;               /* finished unread: too late when a read began (drop_late) */
    int found;                 /* a row came back */
    int failed;                /* the statement failed: status, message, retry_after */
    int status, retry_after;
    char message[128];
    int cell[USER_NCOLS]; /* offsets into text; -1: SQL NULL */
    char text[ROW_TEXT];
} user_read_t;

const char *redeem_user_reads_child_init(apr_pool_t *pchild, redeem_child_t *child)
{
    if (redeem_sync_lock_create(&child->read_lock, pchild) ||
        redeem_sync_cond_create(&child->read_room, pchild))
        return "cannot create the lock of the user reads";
    return NULL;
}

static void fail_read(user_read_t *read, const redeem_failure_t *failure)
{
    read->failed = 1;
    read->status = failure->status;
    read->retry_after = failure->retry_after;
    apr_cpystrn(read->message, failure->message ? failure->message : "", sizeof read->message);
}

/* Copies row `row` into read; 0 when it does not fit (it always should). */
static int copy_row(user_read_t *read, const redeem_rows_t *rows, int row)
{
    apr_size_t used = 0;
    for (int col = 0; col < USER_NCOLS; col++) {
        const char *cell = redeem_db_cell(rows, row, col);
        if (!cell) {
            read->cell[col] = -1;
            continue;
        }
        apr_size_t len = strlen(cell);
        if (used + len + 1 > sizeof read->text)
            return 0;
        memcpy(read->text + used, cell, len + 1);
        read->cell[col] = (int)used;
        used += len + 1;
    }
    read->found = 1;
    return 1;
}

/* Reads the users of batch[0 .. n - 1] with the caller's connection, fills
 * in their places and wakes their owners. Called without the lock, as the
 * reader of this batch (up to READS_AT_MOST run at once in a child). */
static void read_batch(redeem_call_t *call, user_read_t **batch, int n)
{
    request_rec *r = call->r;
    /* At least PLANNED_IDS ids, the last repeated: PostgreSQL plans a
     * statement's first runs for their values, and keeps doing so while
     * that looks cheaper than its plan for any array (which it prices as
     * ten elements). Fewer ids would look cheaper each time, and planning
     * every run costs more than the read itself; repeated ids cost nothing
     * when it runs (the index scan drops duplicate keys). */
    int count = n < PLANNED_IDS ? PLANNED_IDS : n;
    char *ids = apr_palloc(r->pool, (apr_size_t)count * 21 + 3), *end = ids;
    *end++ = '{';
    for (int i = 0; i < count; i++)
        end += apr_snprintf(end, 22, "%s%" APR_INT64_T_FMT, i ? "," : "",
                            batch[i < n ? i : n - 1]->id);
    *end++ = '}';
    *end = '\0';

    const char *args[USERS_BY_ID_NARGS] = {[ARG_USERS_BY_ID_IDS] = ids};
    redeem_rows_t rows;
    /* The read ends by the earliest deadline of the requests it reads for,
     * the connection's setting up included; the reader's own request then
     * goes on with its own deadline. */
    apr_time_t until = batch[0]->deadline;
    for (int i = 1; i < n; i++)
        if (batch[i]->deadline < until)
            until = batch[i]->deadline;
    apr_interval_time_t timeout = apr_time_from_msec(call->conf->db_timeout_ms);
    /* batch[0] is the reader's own place. Opening the connection may run
     * RedeemAdmin's set-up (call.c), whose hash waits for a slot no later
     * than a tenth before `until` (admin.c). */
    apr_time_t own = call->db ? redeem_db_deadline(call->db) : batch[0]->deadline;
    const redeem_failure_t *failure = redeem_call_db_since(call, until - timeout);
    if (!failure) {
        redeem_db_set_deadline(call->db, until);
        redeem_shared_count(call->conf->shared, REDEEM_COUNTER_USER_READ_STATEMENTS);
        failure = redeem_db_query(call->db, STMT_USERS_BY_ID, args, &rows);
        redeem_db_set_deadline(call->db, own);
    }
    for (int i = 0; i < n; i++) {
        user_read_t *read = batch[i];
        if (failure) {
            fail_read(read, failure);
            continue;
        }
        for (int row = 0; row < rows.nrows; row++) {
            const char *id = redeem_db_cell(&rows, row, COL_USER_ID);
            if (id && apr_atoi64(id) == read->id) {
                if (!copy_row(read, &rows, row)) {
                    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                                  RDMNO(0206) "user %" APR_INT64_T_FMT " does not fit a read",
                                  read->id);
                    fail_read(read, &redeem_failure_internal);
                }
                break;
            }
        }
    }

    /* One wake-up for each owner, none of them under the lock; batch[0] is
     * the reader's own place, awake. Once finished, a place may be gone. */
    redeem_sync_event_finish(&batch[0]->event);
    for (int i = 1; i < n; i++) {
        redeem_sync_event_finish(&batch[i]->event);
        redeem_sync_event_wake(&batch[i]->event);
    }
    /* And one for the first in line, if it may read now: nobody wakes to
     * find nothing to do. Woken after the unlock, it may have left meanwhile
     * (sync.h: a wake-up that finds nobody is harmless). */
    redeem_child_t *child = call->conf->child;
    redeem_sync_lock(child->read_lock);
    child->read_in_flight--;
    user_read_t *next = first_to_read(child);
    if (next)
        redeem_sync_event_nudge(&next->event);
    redeem_sync_unlock(child->read_lock);
    if (next)
        redeem_sync_event_wake(&next->event);
}

/* Under the lock: the first in line is told that its turn to read may have
 * come (a wake-up that finds it gone is harmless: sync.h). */
static void wake_first(redeem_child_t *child)
{
    redeem_sync_event_nudge(&child->read_pending[0]->event);
    redeem_sync_event_wake(&child->read_pending[0]->event);
}

/* Under the lock: takes the line's place `at` out of it. */
static void remove_from_line(redeem_child_t *child, int at)
{
    child->read_pending_count--;
    memmove(child->read_pending + at, child->read_pending + at + 1,
            sizeof *child->read_pending * (apr_size_t)(child->read_pending_count - at));
    if (child->read_room_waiters)
        redeem_sync_signal(child->read_room);
}

/* Under the lock, by the first in line as it begins a read: the first
 * REDEEM_USER_READ_BATCH of the line (self first) into batch, out of the
 * line; as many places come free, and as many requests waiting for room
 * are woken (not all: a thousand woken for 64 places would each sleep
 * again). A line left that may be read now (still long) has its new first
 * nudged, returned in *next for the caller to wake after the unlock. */
static int take_batch(redeem_child_t *child, user_read_t **batch, user_read_t **next)
{
    int n = child->read_pending_count;
    if (n > REDEEM_USER_READ_BATCH)
        n = REDEEM_USER_READ_BATCH;
    memcpy(batch, child->read_pending, sizeof *batch * (apr_size_t)n);
    for (int i = 0; i < n; i++)
        batch[i]->taken = 1;
    child->read_pending_count -= n;
    memmove(child->read_pending, child->read_pending + n,
            sizeof *child->read_pending * (apr_size_t)child->read_pending_count);
    child->read_in_flight++;
    for (int i = 0; i < n && i < child->read_room_waiters; i++)
        redeem_sync_signal(child->read_room);
    *next = first_to_read(child);
    if (*next)
        redeem_sync_event_nudge(&(*next)->event);
    return n;
}

/* Under the lock: takes self out of the line (too late to be read). If self
 * was first in line, the next one now is. */
static void leave_line(redeem_child_t *child, user_read_t *self)
{
    int at = 0;
    while (at < child->read_pending_count && child->read_pending[at] != self)
        at++;
    if (at == child->read_pending_count)
        return;
    remove_from_line(child, at);
    if (at == 0 && child->read_pending_count && may_read(child))
        wake_first(child);
}

/* Under the lock, as self (first in line) begins a read: the others too
 * late to be read are answered now (their owners may not have woken yet
 * to leave by themselves). */
static void drop_late(redeem_child_t *child, const user_read_t *self, apr_time_t now,
                      apr_interval_time_t margin)
{
    for (int at = child->read_pending_count - 1; at >= 0; at--) {
        user_read_t *read = child->read_pending[at];
        if (read == self || read->deadline - now >= margin)
            continue;
        remove_from_line(child, at);
        read->dropped = 1;
        redeem_sync_event_finish(&read->event);
        redeem_sync_event_wake(&read->event);
    }
}

/* Under the lock: waits for self's read, running it when self is first in
 * line once a read may begin (may_read), or leaves the line once too late
 * to be read. Returns with the lock released; self's event finished unless
 * it left. */
static void wait_in_line(redeem_call_t *call, redeem_child_t *child, user_read_t *self)
{
    apr_interval_time_t margin = redeem_db_too_late(call->conf);
    for (;;) {
        apr_uint32_t seen = redeem_sync_event_seen(&self->event);
        if (redeem_sync_event_done(seen))
            break;
        if (self->taken) {
            /* The read ends by this request's deadline or an earlier one;
             * nothing else changes the event any more. */
            redeem_sync_unlock(child->read_lock);
            while (!redeem_sync_event_done(seen)) {
                redeem_sync_event_wait(&self->event, seen, -1);
                seen = redeem_sync_event_seen(&self->event);
            }
            return;
        }
        apr_time_t now = redeem_clock_monotonic();
        if (self->deadline - now < margin) {
            leave_line(child, self);
            break;
        }
        if (child->read_pending[0] == self && may_read(child)) {
            drop_late(child, self, now, margin);
            user_read_t *batch[REDEEM_USER_READ_BATCH], *next;
            int n = take_batch(child, batch, &next);
            redeem_sync_unlock(child->read_lock);
            if (next)
                redeem_sync_event_wake(&next->event);
            read_batch(call, batch, n);
            return;
        }
        redeem_sync_unlock(child->read_lock);
        redeem_sync_event_wait(&self->event, seen, self->deadline - margin - now);
        if (redeem_sync_event_done(redeem_sync_event_seen(&self->event)))
            return; /* read (or dropped): the lock is not needed */
        redeem_sync_lock(child->read_lock);
    }
    redeem_sync_unlock(child->read_lock);
}

/* A request not read: too little of its time was left when its turn came
 * (every read of its child busy that long, or the line full). Told once in
 * REDEEM_LOG_EVERY a child, as an overload's other warnings. */
static const redeem_failure_t *out_of_line(redeem_call_t *call, apr_int64_t id)
{
    redeem_shared_count(call->conf->shared, REDEEM_COUNTER_USER_READS_LATE);
    const char *note;
    int level = redeem_log_level_throttled(call->r, &call->conf->child->user_read_late_told,
                                           APLOG_WARNING, &note);
    ap_log_rerror(APLOG_MARK, level, 0, call->r,
                  RDMNO(0207) "user %" APR_INT64_T_FMT
                              " not read: less than a tenth of RedeemDBTimeout (%" APR_INT64_T_FMT
                              " ms) was left when its turn came%s",
                  id, (apr_int64_t)call->conf->db_timeout_ms, note);
    return &redeem_failure_unavailable;
}

/* Under read_lock, by a request that leaves without taking a place in the
 * line: a place that came free may have woken it (remove_from_line wakes
 * one), so the next request waiting for room is woken instead. */
static void pass_room_on(redeem_child_t *child)
{
    if (child->read_room_waiters && child->read_pending_count < REDEEM_USER_READ_LINE)
        redeem_sync_signal(child->read_room);
}

const redeem_failure_t *redeem_user_reads_get(redeem_call_t *call, apr_int64_t id, int *found)
{
    request_rec *r = call->r;
    redeem_child_t *child = call->conf->child;
    user_read_t self;
    self.id = id;
    self.deadline = redeem_call_db_start(call) + apr_time_from_msec(call->conf->db_timeout_ms);
    redeem_sync_event_init(&self.event);
    self.taken = self.dropped = self.found = self.failed = 0;
    redeem_shared_count(call->conf->shared, REDEEM_COUNTER_USER_READS);
    /* While the child answers 503 at once, not after waiting in line behind
     * reads that wait out their time on the silent database. */
    if (redeem_db_silent(r) == 1)
        return &redeem_failure_unavailable;

    apr_interval_time_t margin = redeem_db_too_late(call->conf);
    redeem_sync_lock(child->read_lock);
    for (;;) {
        apr_time_t now = redeem_clock_monotonic();
        /* Even alone: a read all but out of time would be sent, time out
         * and drop a healthy connection. */
        if (self.deadline - now < margin) {
            pass_room_on(child);
            redeem_sync_unlock(child->read_lock);
            return out_of_line(call, id);
        }
        if (child->read_pending_count < REDEEM_USER_READ_LINE)
            break;
        child->read_room_waiters++;
        redeem_sync_timedwait(child->read_room, child->read_lock, self.deadline - margin - now);
        child->read_room_waiters--;
    }
    if (child->read_in_flight < READS_AT_ONCE && child->read_pending_count == 0) {
        child->read_in_flight++;
        pass_room_on(child); /* reading alone, it takes no place in the line */
        redeem_sync_unlock(child->read_lock);
        user_read_t *alone = &self;
        read_batch(call, &alone, 1);
    }
    else {
        /* Nor in line behind tries that wait out their time: a try goes
         * alone, with a read of its own. */
        if (redeem_db_silent(r)) {
            pass_room_on(child);
            redeem_sync_unlock(child->read_lock);
            return &redeem_failure_unavailable;
        }
        child->read_pending[child->read_pending_count++] = &self;
        /* The line just grew long with a read running: the first in line
         * reads it now instead of waiting for that read to end. */
        if (child->read_pending_count == LONG_LINE && may_read(child))
            wake_first(child);
        wait_in_line(call, child, &self);
        if (!redeem_sync_event_done(redeem_sync_event_seen(&self.event)) || self.dropped)
            return out_of_line(call, id);
    }

    *found = self.found;
    if (self.failed) {
        redeem_failure_t *failure = apr_palloc(r->pool, sizeof *failure);
        failure->status = self.status;
        failure->message = apr_pstrdup(r->pool, self.message);
        failure->retry_after = self.retry_after;
        return failure;
    }
    if (!self.found)
        return NULL;
    /* The row, on this request's pool, as redeem_user_from_row reads it. */
    const char **cells = apr_palloc(r->pool, sizeof *cells * USER_NCOLS);
    for (int col = 0; col < USER_NCOLS; col++)
        cells[col] = self.cell[col] < 0 ? NULL : apr_pstrdup(r->pool, self.text + self.cell[col]);
    redeem_rows_t rows = {1, USER_NCOLS, cells};
    redeem_user_from_row(&rows, 0, &call->caller);
    return NULL;
}
