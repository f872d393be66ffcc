/* A bound on the wait for one of mod_dbd's pooled connections.
 *
 * mod_dbd's pool (an apr_reslist) has no acquire timeout, and a module
 * cannot give it one. With fewer connections than threads
 * (conf/tuning.conf keeps 48 for 2,000 threads a child), a request that
 * finds them all held would wait until one is given back, however long past
 * its RedeemDBTimeout that is, only to get 503 then. So each child counts
 * the connections its requests hold, pool by pool, and a request takes one
 * only when one is free and no one waits before it: else it waits in line
 * (first come, first served) on a condition of its own, which has a
 * timeout, and leaves with 503 (RDM0118) when less than a tenth of its time
 * is left.
 *
 * Servers whose DBDriver, DBDParams and pool directives agree share one
 * mod_dbd pool of DBDMax connections. A pool is known here by the APR pool
 * its connections are made in (their pools' parent), learned from the first
 * connection each server of the child takes; its size is the server's
 * DBDMax, which config.c reads beside mod_dbd. Connections other modules
 * take from the same pool (mod_authn_dbd, mod_session_dbd) are not counted:
 * a server that shares its pool with them can still wait on mod_dbd. */
#include "httpd/private.h"

#define TICKET_KEY "redeem_pool_ticket"
/* mod_dbd's DBDMax where none is set (APR with threads, as Debian's). */
#define DBD_DEFAULT_MAX 10

/* A request waiting for a connection, in line on its own stack: it leaves
 * the line itself (timed out) or is taken out of it and granted one, both
 * under the lock, so no one touches it after its owner returns. */
typedef struct waiter {
    struct waiter *next;
    int granted; /* a connection given back was passed to it */
    redeem_sync_cond_t *wake;
} waiter_t;

typedef struct redeem_pool_gate {
    apr_pool_t *key;        /* the APR pool mod_dbd makes this pool's connections in */
    int capacity;           /* DBDMax; 0: not counted (a connection of its own each time) */
    int held;               /* connections of it that this child's requests hold */
    waiter_t *first, *last; /* the line, first come first served */
} gate_t;

struct redeem_pool_gates {
    redeem_sync_lock_t *lock; /* guards everything here and every server's gate */
    gate_t unpooled;          /* DBDPersist Off, or no room left: nothing to count */
    int count, room;
    gate_t *gates; /* room of them, one per mod_dbd pool (at most one per server) */
};

/* What a request holds: the gate it passed and the connection, both given
 * back before its response is written (redeem_pool_gate_release), or when
 * it ends: the connection first (close_dbd), then its count (give_back). */
typedef struct {
    redeem_pool_gates_t *gates;
    gate_t *gate;
    ap_dbd_t *dbd;
    server_rec *server;
    void (*dbd_close)(server_rec *s, ap_dbd_t *dbd);
    int dbd_own; /* made for this request alone (DBDPersist Off), in a pool
                  * under the request's: gone with it before its cleanups */
} ticket_t;

const char *redeem_pool_gates_child_init(apr_pool_t *pchild, server_rec *s,
                                         redeem_pool_gates_t **made)
{
    redeem_pool_gates_t *gates = apr_pcalloc(pchild, sizeof *gates);
    for (server_rec *vs = s; vs; vs = vs->next)
        gates->room++;
    gates->gates = apr_pcalloc(pchild, gates->room * sizeof *gates->gates);
    if (redeem_sync_lock_create(&gates->lock, pchild))
        return "cannot create the lock of the connection gates";
    *made = gates;
    return NULL;
}

/* A connection given back passes, still counted, to the first request in
 * line, if any, rather than to whichever takes the lock first: else
 * newcomers could overtake the waiters, and those that waited longest
 * would be the ones turned away. */
static apr_status_t give_back(void *data)
{
    ticket_t *ticket = data;
    gate_t *gate = ticket->gate;
    if (!gate)
        return APR_SUCCESS;
    redeem_sync_lock(ticket->gates->lock);
    waiter_t *first = gate->first;
    if (first) {
        gate->first = first->next;
        if (!gate->first)
            gate->last = NULL;
        first->granted = 1;
        redeem_sync_signal(first->wake);
    }
    else
        gate->held--;
    redeem_sync_unlock(ticket->gates->lock);
    return APR_SUCCESS;
}

/* The connection back to mod_dbd's pool (or closed, DBDPersist Off). */
static void give_dbd_back(ticket_t *ticket)
{
    if (ticket->dbd)
        ticket->dbd_close(ticket->server, ticket->dbd);
    ticket->dbd = NULL;
}

/* The same at the request's end, when APR has destroyed the request's
 * subpools already: a connection of the request's own went with its pool
 * (closing it again would destroy that pool twice). */
static apr_status_t close_dbd(void *data)
{
    ticket_t *ticket = data;
    if (ticket->dbd_own)
        ticket->dbd = NULL;
    give_dbd_back(ticket);
    return APR_SUCCESS;
}

/* Under the lock: the gate of the mod_dbd pool whose connections are made
 * in `key`, made on first sight. */
static gate_t *gate_of(redeem_pool_gates_t *gates, apr_pool_t *key, apr_int64_t capacity)
{
    for (int i = 0; i < gates->count; i++)
        if (gates->gates[i].key == key)
            return &gates->gates[i];
    if (gates->count == gates->room)
        return &gates->unpooled;
    gate_t *gate = &gates->gates[gates->count++];
    gate->key = key;
    gate->capacity = capacity < 0 ? DBD_DEFAULT_MAX : capacity > 0 ? (int)capacity : 1;
    return gate;
}

/* Under the lock: takes one of the gate's connections, waiting in line
 * until `until` (monotonic) when none is free or others wait already. 1 when taken,
 * 0 when the time ran out, -1 when the line could not be joined. */
static int pass(gate_t *gate, redeem_sync_lock_t *lock, apr_time_t until, apr_pool_t *pool)
{
    if (!gate->first && gate->held < gate->capacity) {
        gate->held++;
        return 1;
    }
    waiter_t self = {NULL, 0, NULL};
    if (redeem_sync_cond_create(&self.wake, pool) != APR_SUCCESS)
        return -1;
    if (gate->last)
        gate->last->next = &self;
    else
        gate->first = &self;
    gate->last = &self;
    /* until is monotonic (db.c); each wake-up, a timeout included, is
     * checked against it. */
    for (apr_interval_time_t left; !self.granted;) {
        if ((left = until - redeem_clock_monotonic()) <= 0)
            break;
        redeem_sync_timedwait(self.wake, lock, left);
    }
    if (self.granted)
        return 1;
    waiter_t **at = &gate->first, *before = NULL;
    while (*at != &self) {
        before = *at;
        at = &(*at)->next;
    }
    *at = self.next;
    if (gate->last == &self)
        gate->last = before;
    return 0;
}

static request_rec *initial_request(request_rec *r)
{
    while (r->prev || r->main)
        r = r->prev ? r->prev : r->main;
    return r;
}

const redeem_failure_t *redeem_pool_gate_acquire(request_rec *r, apr_time_t until, ap_dbd_t **dbd)
{
    redeem_server_conf *conf = redeem_conf(r);
    /* One connection for a request and its internal redirects and
     * subrequests, on the first request's pool, as mod_dbd's own
     * ap_dbd_acquire keeps it. */
    request_rec *initial = initial_request(r);
    ticket_t *held = NULL;
    apr_pool_userdata_get((void **)&held, TICKET_KEY, initial->pool);
    if (held) {
        *dbd = held->dbd;
        return NULL;
    }
    redeem_pool_gates_t *gates = conf->child->pool_gates;
    ticket_t *ticket = apr_pcalloc(initial->pool, sizeof *ticket);
    ticket->gates = gates;

    redeem_sync_lock(gates->lock);
    gate_t *gate = conf->child->pool_gate;
    if (gate && gate->capacity) {
        if (gate->held >= gate->capacity || gate->first)
            redeem_shared_count(conf->shared, REDEEM_COUNTER_DB_POOL_WAITS);
        int passed = pass(gate, gates->lock, until, r->pool);
        if (passed < 0) {
            redeem_sync_unlock(gates->lock);
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          RDMNO(0119) "cannot wait for a pooled connection: no condition made");
            return &redeem_failure_internal;
        }
        if (!passed) {
            int capacity = gate->capacity;
            redeem_sync_unlock(gates->lock);
            redeem_shared_count(conf->shared, REDEEM_COUNTER_DB_POOL_TIMEOUTS);
            const char *note;
            int level =
                redeem_log_level_throttled(r, &conf->child->pool_full_told, APLOG_WARNING, &note);
            ap_log_rerror(APLOG_MARK, level, 0, r,
                          RDMNO(0118) "no pooled connection came free before less than a tenth "
                                      "of RedeemDBTimeout (%" APR_INT64_T_FMT
                                      " ms) was left: this child's requests held all %d (DBDMax)%s",
                          (apr_int64_t)conf->db_timeout_ms, capacity, note);
            return &redeem_failure_unavailable;
        }
        ticket->gate = gate;
    }
    redeem_sync_unlock(gates->lock);
    /* Registered before close_dbd, so run after it: a waiter woken finds
     * the connection back in mod_dbd's pool. */
    apr_pool_cleanup_register(initial->pool, ticket, give_back, apr_pool_cleanup_null);
    apr_pool_userdata_setn(ticket, TICKET_KEY, NULL, initial->pool);

    *dbd = conf->dbd_open(initial->pool, initial->server);
    if (!*dbd) {
        apr_pool_cleanup_run(initial->pool, ticket, give_back);
        apr_pool_userdata_setn(NULL, TICKET_KEY, NULL, initial->pool);
        return NULL;
    }
    ticket->dbd = *dbd;
    ticket->server = initial->server;
    ticket->dbd_close = conf->dbd_close;
    ticket->dbd_own = apr_pool_parent_get((*dbd)->pool) == initial->pool;
    apr_pool_cleanup_register(initial->pool, ticket, close_dbd, apr_pool_cleanup_null);
    if (gate)
        return NULL;

    /* This server's first connection in this child: learn its pool, and
     * count this connection in it. Until then (the child's first moments)
     * its requests wait on mod_dbd itself. A connection made for this
     * request alone (DBDPersist Off) lives in the request's pool: nothing to
     * count. */
    apr_pool_t *key = apr_pool_parent_get((*dbd)->pool);
    redeem_sync_lock(gates->lock);
    if (!conf->child->pool_gate)
        conf->child->pool_gate =
            key == initial->pool ? &gates->unpooled : gate_of(gates, key, conf->dbd_max);
    gate = conf->child->pool_gate;
    if (gate->capacity) {
        gate->held++;
        ticket->gate = gate;
    }
    redeem_sync_unlock(gates->lock);
    return NULL;
}

void redeem_pool_gate_release(request_rec *r)
{
    request_rec *initial = initial_request(r);
    ticket_t *ticket = NULL;
    apr_pool_userdata_get((void **)&ticket, TICKET_KEY, initial->pool);
    if (!ticket)
        return;
    apr_pool_userdata_setn(NULL, TICKET_KEY, NULL, initial->pool);
    apr_pool_cleanup_kill(initial->pool, ticket, close_dbd);
    give_dbd_back(ticket);
    apr_pool_cleanup_run(initial->pool, ticket, give_back);
}
