/* Rate limits across hosts: one GCRA step per check, done atomically inside
 * Redis by a Lua script on Redis's own clock (TIME), so every httpd that
 * points at the same Redis shares one state per key, and keys expire by
 * themselves (PX: the time until the quota is whole again). hiredis contexts
 * are not thread-safe: each child keeps a small pool (apr_reslist), one
 * context per thread at most, reused; a context that failed is dropped. */
#include "httpd/private.h"
#include "core/tcp_connect.h"

#include <apr_atomic.h>
#include <apr_reslist.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <hiredis/hiredis.h>
#include <openssl/sha.h>

/* What a write may take before the first read is given only what is left of
 * the call's timeout (commands). */
#define WRITE_SLACK_USEC 1000

/* KEYS: the keys of one request, in order; ARGV: each key's policy as its
 * interval and limit in ms. Mirrors redeem_gcra_step (core/gcra.c) per key:
 * level = how far the TAT runs ahead of now, at most the limit; allowed when
 * level + interval fits the limit. Charges the keys in order and stops at
 * the first refusal, as checking them one by one would. A refused key whose
 * TAT runs more than the limit ahead (Redis's clock went back) is pulled in
 * to now + limit, as redeem_gcra_step does, so that it is refused for one
 * period at most and not until the clock catches up. A key of ours that
 * holds something else (another type: someone wrote it) counts as new and is
 * overwritten, rather than failing every call that uses it. Returns
 * {allowed, remaining, retry_after_ms, reset_ms} for each key it checked. */
static const char gcra_script[] =
    "local t = redis.call('TIME')\n"
    "local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
    "local out, n = {}, 0\n"
    "for i = 1, #KEYS do\n"
    "  local interval, limit = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])\n"
    "  local got = redis.pcall('GET', KEYS[i])\n"
    "  local tat = type(got) == 'string' and tonumber(got) or 0\n"
    "  local level = 0\n"
    "  if tat > now then level = math.min(tat - now, limit) end\n"
    "  local nxt = level + interval\n"
    "  if nxt > limit then\n"
    "    if tat - now > limit then redis.call('PSETEX', KEYS[i], limit, now + limit) end\n"
    "    out[n + 1], out[n + 2], out[n + 3], out[n + 4] = 0, 0, nxt - limit, level\n"
    "    return out\n"
    "  end\n"
    "  redis.call('PSETEX', KEYS[i], nxt, now + nxt)\n"
    "  out[n + 1], out[n + 2] = 1, math.floor((limit - nxt) / interval)\n"
    "  out[n + 3], out[n + 4] = 0, nxt\n"
    "  n = n + 4\n"
    "end\n"
    "return out\n";

/* Why the last connection could not be made, for the log. */
enum {
    CONNECT_REFUSED = 1,    /* no connection: refused, no such socket, or none in time */
    CONNECT_LOOKUP_SLOW,    /* its host name had no answer from the resolver in time */
    CONNECT_NO_ADDRESS,     /* its host name has no address */
    CONNECT_LOOKUP_FAILED,  /* the resolver failed, or could not be reached */
    CONNECT_SILENT,         /* connected, but AUTH or SELECT had no answer in time */
    CONNECT_CLOSED,         /* connected, but Redis closed the connection at AUTH or SELECT */
    CONNECT_FULL,           /* Redis at its maxclients */
    CONNECT_LOADING,        /* Redis still loading its data */
    CONNECT_AUTH_REFUSED,   /* AUTH answered with a refusal of the credentials */
    CONNECT_SELECT_REFUSED, /* SELECT refused (no such database, or AUTH needed) */
    CONNECT_OTHER           /* AUTH or SELECT answered with another error */
};

/* Calls of one child waiting for its batch in flight to end. */
#define CALLS_IN_LINE 64
/* The longest a batch in flight can take, in timeouts, each step within
 * one: a connection (a wait for one of the child's, or a new one with AUTH
 * and SELECT), the scripts, the scripts again whole (NOSCRIPT); and all of
 * it once more when Redis had closed the pooled connection (send_batch). A
 * call in line waits that long for its turn before it gives up: one that
 * gave up sooner would count a failure of a Redis that answers. */
#define FLIGHT_MAX_TIMEOUTS (2 * 5)

struct redeem_redis {
    apr_reslist_t *contexts;
    /* Each step's bound (RedeemRateLimitStoreTimeout): connect, a wait for
     * a pooled connection, AUTH, SELECT, the scripts. A Redis that does not
     * answer this fast is treated as down (the caller falls back to this
     * host's table). */
    apr_interval_time_t timeout;
    const char *host, *socket_path; /* one of them */
    int port, db;
    const char *user, *password; /* AUTH when password is set; user NULL: the default user */
    apr_uint32_t connect_error;  /* CONNECT_..., of the last connection that failed */
    char script_sha[2 * SHA_DIGEST_LENGTH + 1];
    /* Bumped when a pooled connection is found closed by Redis (a restart,
     * its idle timeout): every connection of an older generation is closed
     * too, unused, since it most likely went the same way. */
    apr_uint32_t generation;
    /* One batch of calls in flight a child: the calls that come meanwhile
     * wait in line and go together in the next, one round trip and one
     * wake-up of Redis for them all (under /redeem's load on two cores, a
     * call waited 1.7 ms for Redis at the median, and 2.8 more calls of its
     * child came meanwhile: perf probes, 2026-12-06). */
    redeem_sync_lock_t *line_lock;
    redeem_shared_t *shared; /* the calls and round trips counted */
    int in_flight;
    int waiting;
    struct redis_call *line[CALLS_IN_LINE];
};

/* A request's call: its keys and their policies, and what came back. It
 * lives on its owner's stack; whoever sends it fills in its results
 * without the lock (the owner does not look until its event is finished)
 * into the owner's verdicts. */
typedef struct redis_call {
    const char *const *keys;
    const redeem_gcra_policy_t *const *policies;
    int n;
    redeem_gcra_verdict_t *verdicts;
    int checked; /* keys checked (redeem_redis_gcra), or -1 with why */
    char why[160];
    redeem_sync_event_t event; /* finished once answered */
    int taken;                 /* in a batch, or failed with one (under line_lock): no
                                * longer in line, its owner waits for the answer */
} redis_call_t;

/* A pooled connection, with the generation it was made in and whether it
 * has carried a command yet. */
typedef struct {
    redisContext *c;
    apr_uint32_t generation;
    int used;
} pooled_t;

static struct timeval as_timeval(apr_interval_time_t usec)
{
    return (struct timeval){(time_t)(usec / APR_USEC_PER_SEC),
                            (suseconds_t)(usec % APR_USEC_PER_SEC)};
}

/* The timeout, for the log. */
static int timeout_ms(const redeem_redis_t *redis)
{
    return (int)apr_time_as_msec(redis->timeout);
}

static void say_no_answer(redisContext *c, const redeem_redis_t *redis)
{
    snprintf(c->errstr, sizeof c->errstr, "no answer within %d ms", timeout_ms(redis));
}

/* Sets what is left until deadline as the socket's timeout: 0 (c->err set)
 * once it is past. */
static int time_left(const redeem_redis_t *redis, redisContext *c, apr_time_t deadline)
{
    apr_interval_time_t left = deadline - redeem_clock_monotonic();
    if (left <= 0) {
        c->err = REDIS_ERR_IO;
        say_no_answer(c, redis);
        return 0;
    }
    return redisSetTimeout(c, as_timeval(left)) == REDIS_OK;
}

/* A read or write the socket's timeout ended says so, not "Resource
 * temporarily unavailable" (EAGAIN, as hiredis reports it). */
static void name_timeout(const redeem_redis_t *redis, redisContext *c)
{
    if (c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK))
        say_no_answer(c, redis);
}

/* Commands sent in one write and their whole replies, all within the
 * timeout. The socket's timeouts bound each read and write alone,
 * so a Redis (or a path to it) that answers a few bytes at a time would hold
 * the request for as long as it trickles: past the first read, each read
 * gets only what is left. Returns how many replies came, in order, in
 * replies; fewer than count with c->err set when it failed, and the context
 * is then of no further use (the replies that came are still answers). */
static int commands(const redeem_redis_t *redis, redisContext *c, int count, const int *argcs,
                    const char *const *const *argvs, redisReply **replies)
{
    /* Monotonic: a step of the wall clock must not end the commands at
     * once nor let them trickle on past the timeout. */
    apr_time_t deadline = redeem_clock_monotonic() + redis->timeout;
    int done = 0, shortened = 0, got = 0;
    for (int i = 0; i < count; i++)
        if (redisAppendCommandArgv(c, argcs[i], (const char **)argvs[i], NULL) != REDIS_OK)
            return 0;
    for (int pass = 0; !done; pass++) {
        if (pass > 0 && !(shortened = time_left(redis, c, deadline)))
            return 0;
        if (redisBufferWrite(c, &done) != REDIS_OK) {
            name_timeout(redis, c);
            return 0;
        }
    }
    for (int reads = 0; got < count;) {
        void *reply = NULL;
        if (redisGetReplyFromReader(c, &reply) != REDIS_OK)
            return got;
        if (reply) {
            replies[got++] = reply;
            continue;
        }
        /* The first read has the socket's whole timeout (set at connect):
         * no system call more for the common reply of one read, unless the
         * write took more than WRITE_SLACK_USEC: the read then gets only what
         * is left. */
        if ((reads++ > 0 ||
             deadline - redeem_clock_monotonic() < redis->timeout - WRITE_SLACK_USEC) &&
            !(shortened = time_left(redis, c, deadline)))
            return got;
        if (redisBufferRead(c) != REDIS_OK) {
            name_timeout(redis, c);
            return got;
        }
    }
    if (shortened)
        redisSetTimeout(c, as_timeval(redis->timeout)); /* c->err set when it failed */
    return got;
}

/* One command and its whole reply within the timeout: NULL with c->err
 * set when it failed. */
static redisReply *command(const redeem_redis_t *redis, redisContext *c, int argc,
                           const char **argv)
{
    redisReply *reply = NULL;
    const char *const *argvs[1] = {argv};
    if (commands(redis, c, 1, &argc, argvs, &reply) != 1)
        return NULL;
    if (c->err) {
        freeReplyObject(reply);
        return NULL;
    }
    return reply;
}

/* Runs AUTH or SELECT on a new connection: 0 when Redis answered it OK,
 * else why not (CONNECT_...). */
static int setup_command(const redeem_redis_t *redis, redisContext *c, int argc, const char **argv,
                         int refused)
{
    redisReply *reply = command(redis, c, argc, argv);
    int error = !reply && c->err == REDIS_ERR_EOF                           ? CONNECT_CLOSED
                : !reply                                                    ? CONNECT_SILENT
                : reply->type == REDIS_REPLY_STATUS                         ? 0
                : reply->type != REDIS_REPLY_ERROR                          ? CONNECT_OTHER
                : strncmp(reply->str, "ERR max number of clients", 25) == 0 ? CONNECT_FULL
                : strncmp(reply->str, "LOADING", 7) == 0                    ? CONNECT_LOADING
                : strncmp(reply->str, "WRONGPASS", 9) == 0 ||
                        strncmp(reply->str, "NOAUTH", 6) == 0 ||
                        strncmp(reply->str, "NOPERM", 6) == 0 ||
                        strncmp(reply->str, "ERR invalid password", 20) == 0 ||
                        strncmp(reply->str, "ERR AUTH", 8) == 0 ||
                        strncmp(reply->str, "ERR DB index", 12) == 0
                    ? refused
                    : CONNECT_OTHER;
    if (reply)
        freeReplyObject(reply);
    return error;
}

static apr_status_t connect_context(void **resource, void *params, apr_pool_t *pool)
{
    (void)pool;
    redeem_redis_t *redis = params;
    struct timeval timeout = as_timeval(redis->timeout);
    redisContext *c;
    if (redis->host) {
        /* Not hiredis's own connect: its lookup of a host name would wait
         * on the resolver as long as resolv.conf says. */
        int fd;
        redeem_tcp_result_t result = redeem_tcp_connect(
            redis->host, redis->port, redeem_clock_monotonic() + redis->timeout, &fd);
        if (result != REDEEM_TCP_CONNECTED) {
            apr_atomic_set32(&redis->connect_error,
                             result == REDEEM_TCP_LOOKUP_SLOW     ? CONNECT_LOOKUP_SLOW
                             : result == REDEEM_TCP_NO_ADDRESS    ? CONNECT_NO_ADDRESS
                             : result == REDEEM_TCP_LOOKUP_FAILED ? CONNECT_LOOKUP_FAILED
                                                                  : CONNECT_REFUSED);
            return APR_ECONNREFUSED;
        }
        if (!(c = redisConnectFd(fd)))
            close(fd);
    }
    else
        c = redisConnectUnixWithTimeout(redis->socket_path, timeout);
    if (!c || c->err || redisSetTimeout(c, timeout) != REDIS_OK) {
        if (c)
            redisFree(c);
        apr_atomic_set32(&redis->connect_error, CONNECT_REFUSED);
        return APR_ECONNREFUSED;
    }
    char db_text[16];
    snprintf(db_text, sizeof db_text, "%d", redis->db);
    /* As separate arguments: nothing of the secret is formatted. */
    const char *auth[] = {"AUTH", redis->user ? redis->user : redis->password, redis->password};
    const char *select_db[] = {"SELECT", db_text};
    int error = 0;
    if (redis->password)
        error = setup_command(redis, c, redis->user ? 3 : 2, auth, CONNECT_AUTH_REFUSED);
    if (!error && redis->db)
        error = setup_command(redis, c, 2, select_db, CONNECT_SELECT_REFUSED);
    if (error) {
        redisFree(c);
        apr_atomic_set32(&redis->connect_error, (apr_uint32_t)error);
        return APR_EGENERAL;
    }
    /* Freed with the connection (the reslist's pool lives as long as the
     * child, and connections are made again after every failure). */
    pooled_t *pooled = malloc(sizeof *pooled);
    if (!pooled) {
        redisFree(c);
        return APR_ENOMEM;
    }
    pooled->c = c;
    pooled->generation = apr_atomic_read32(&redis->generation);
    pooled->used = 0;
    *resource = pooled;
    return APR_SUCCESS;
}

static apr_status_t free_context(void *resource, void *params, apr_pool_t *pool)
{
    (void)params;
    (void)pool;
    pooled_t *pooled = resource;
    redisFree(pooled->c);
    free(pooled);
    return APR_SUCCESS;
}

redeem_redis_t *redeem_redis_create(apr_pool_t *pchild, const redeem_store_setting_t *store,
                                    int max_connections, redeem_shared_t *shared)
{
    redeem_redis_t *redis = apr_pcalloc(pchild, sizeof *redis);
    redis->shared = shared;
    unsigned char digest[SHA_DIGEST_LENGTH];
    redis->host = store->redis_host;
    redis->socket_path = store->redis_socket;
    redis->port = store->redis_port;
    redis->db = store->redis_db;
    redis->user = store->redis_user;
    redis->password = store->redis_password;
    redis->timeout = apr_time_from_msec(store->redis_timeout_ms ? store->redis_timeout_ms
                                                                : REDEEM_REDIS_TIMEOUT_DEFAULT_MS);
    if (redeem_sync_lock_create(&redis->line_lock, pchild) != APR_SUCCESS)
        return NULL;
    SHA1((const unsigned char *)gcra_script, sizeof gcra_script - 1, digest);
    redeem_text_hex_encode(digest, sizeof digest, redis->script_sha);
    /* Made as threads need them, one per thread at most: twice the MPM's
     * threads, for the threads of mod_http2's streams besides. A thread that
     * still finds none free within the call's own timeout fails as a call
     * that timed out would (apr_reslist_acquire waits without end else). */
    if (apr_reslist_create(&redis->contexts, 0, 0, 2 * max_connections, 0, connect_context,
                           free_context, redis, pchild) != APR_SUCCESS)
        return NULL;
    apr_reslist_timeout_set(redis->contexts, redis->timeout);
    return redis;
}

/* EVALSHA (or EVAL, the script whole, when Redis forgot it) of one call,
 * every key and its policy as separate arguments: nothing is formatted into
 * a command line. */
static const char **script_argv(const redeem_redis_t *redis, apr_pool_t *p,
                                const redis_call_t *call, int eval, int *argc)
{
    int n = call->n;
    const char **argv = apr_palloc(p, sizeof *argv * (apr_size_t)(3 + 3 * n));
    argv[0] = eval ? "EVAL" : "EVALSHA";
    argv[1] = eval ? gcra_script : redis->script_sha;
    argv[2] = apr_itoa(p, n);
    for (int i = 0; i < n; i++) {
        argv[3 + i] = call->keys[i];
        argv[3 + n + 2 * i] =
            apr_psprintf(p, "%" APR_INT64_T_FMT, (apr_int64_t)call->policies[i]->interval_ms);
        argv[4 + n + 2 * i] =
            apr_psprintf(p, "%" APR_INT64_T_FMT, (apr_int64_t)call->policies[i]->limit_ms);
    }
    *argc = 3 + 3 * n;
    return argv;
}

/* The verdicts of the keys the script checked: 1 to n, the last one a
 * refusal when fewer than n; -1 for a reply of another shape. */
static int read_verdicts(const redisReply *reply, int n, redeem_gcra_verdict_t *verdicts)
{
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements % 4 != 0 ||
        reply->elements == 0 || reply->elements > 4 * (size_t)n)
        return -1;
    for (size_t i = 0; i < reply->elements; i++)
        if (reply->element[i]->type != REDIS_REPLY_INTEGER)
            return -1;
    int checked = (int)(reply->elements / 4);
    for (int k = 0; k < checked; k++) {
        redisReply *const *e = reply->element + 4 * k;
        verdicts[k].allowed = e[0]->integer != 0;
        verdicts[k].remaining = (uint32_t)e[1]->integer;
        verdicts[k].retry_after_ms = e[2]->integer;
        verdicts[k].reset_ms = e[3]->integer;
    }
    if (checked < n && verdicts[checked - 1].allowed)
        return -1;
    return checked;
}

/* A pooled connection of the current generation: older ones are closed
 * as they come out of the pool. NULL when none can be made. */
static pooled_t *acquire_current(redeem_redis_t *redis, apr_status_t *status)
{
    void *resource;
    /* Bounded: each pass closes one old connection, and the pool holds at
     * most one per thread; the last pass's old one is tried as it is (not
     * closed: it is what the caller gets). */
    for (int tries = 1;; tries++) {
        if ((*status = apr_reslist_acquire(redis->contexts, &resource)) != APR_SUCCESS)
            return NULL;
        pooled_t *pooled = resource;
        if (pooled->generation == apr_atomic_read32(&redis->generation) || tries == 1024)
            return pooled;
        apr_reslist_invalidate(redis->contexts, pooled);
    }
}

/* Redis closed this connection before answering (EOF, or a reset or broken
 * pipe): it restarted, or dropped the connection as idle. Not a timeout: a
 * Redis that is slow is not asked twice. */
static int closed_by_server(const redisContext *c, int saved_errno)
{
    return c->err == REDIS_ERR_EOF ||
           (c->err == REDIS_ERR_IO && (saved_errno == ECONNRESET || saved_errno == EPIPE));
}

static void fail_call(redis_call_t *call, const char *why)
{
    call->checked = -1;
    apr_cpystrn(call->why, why, sizeof call->why);
}

/* Why no connection could be had. */
static const char *unavailable(redeem_redis_t *redis, apr_pool_t *p, apr_status_t status)
{
    uint32_t error = apr_atomic_read32(&redis->connect_error);
    return APR_STATUS_IS_TIMEUP(status)
               ? apr_psprintf(p, "every connection of this child busy for %d ms", timeout_ms(redis))
           : error == CONNECT_LOOKUP_SLOW
               ? apr_psprintf(p, "no answer from the resolver for its host name within %d ms",
                              timeout_ms(redis))
           : error == CONNECT_NO_ADDRESS ? "its host name has no address"
           : error == CONNECT_LOOKUP_FAILED
               ? "the lookup of its host name failed (the resolver failed or is unreachable)"
           : error == CONNECT_SILENT
               ? apr_psprintf(p, "connected, but no answer to AUTH or SELECT within %d ms",
                              timeout_ms(redis))
           : error == CONNECT_CLOSED         ? "it closed the connection at AUTH or SELECT"
           : error == CONNECT_FULL           ? "it refuses connections: maxclients reached"
           : error == CONNECT_LOADING        ? "it is still loading its data"
           : error == CONNECT_AUTH_REFUSED   ? "AUTH refused (RedeemRateLimitStoreAuthFile)"
           : error == CONNECT_SELECT_REFUSED ? "SELECT of the database refused (does it need AUTH?)"
           : error == CONNECT_OTHER          ? "AUTH or SELECT answered with an error"
                                             : "cannot connect";
}

/* One round trip of todo[0 .. left - 1] (EVALSHA, or EVAL when eval) on c:
 * fills in the calls answered, and keeps in todo, in order, the ones to
 * send again: those whose script Redis forgot (NOSCRIPT, to EVAL), then
 * those that got no reply (c->err set). Returns how many are kept; *forgot
 * how many of them are the former. A reply of another shape fails its call
 * and sets *malformed (the connection is not trusted again). */
static int round_trip(redeem_redis_t *redis, redisContext *c, apr_pool_t *p, redis_call_t **todo,
                      int left, int eval, int *forgot, int *malformed)
{
    int *argcs = apr_palloc(p, sizeof *argcs * (apr_size_t)left);
    const char *const **argvs = apr_palloc(p, sizeof *argvs * (apr_size_t)left);
    redisReply **replies = apr_palloc(p, sizeof *replies * (apr_size_t)left);
    for (int i = 0; i < left; i++)
        argvs[i] = script_argv(redis, p, todo[i], eval, &argcs[i]);
    redeem_shared_count(redis->shared, REDEEM_COUNTER_REDIS_ROUND_TRIPS);
    int got = commands(redis, c, left, argcs, argvs, replies), kept = 0;
    for (int i = 0; i < got; i++) {
        redisReply *reply = replies[i];
        redis_call_t *call = todo[i];
        if (!eval && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0)
            todo[kept++] = call; /* a restarted or flushed Redis forgot the script */
        else if ((call->checked = read_verdicts(reply, call->n, call->verdicts)) < 0) {
            fail_call(call, reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
            *malformed = 1;
        }
        freeReplyObject(reply);
    }
    *forgot = kept;
    if (got < left)
        memmove(todo + kept, todo + got, sizeof *todo * (apr_size_t)(left - got));
    return kept + left - got;
}

/* Sends the calls of batch[0 .. count - 1] on one connection, pipelined (one
 * write, one wake-up of Redis, the replies in one read as a rule), and fills
 * in their results. Returns 1 when Redis itself failed some of them (no
 * connection, or no reply in time): not one that only had a reply of
 * another shape. */
static int send_batch(redeem_redis_t *redis, apr_pool_t *p, redis_call_t **batch, int count)
{
    redis_call_t **todo = apr_pmemdup(p, batch, sizeof *batch * (apr_size_t)count);
    int left = count;
    for (int attempt = 0;; attempt++) {
        apr_status_t status = APR_SUCCESS;
        pooled_t *pooled = acquire_current(redis, &status);
        if (!pooled) {
            const char *why = unavailable(redis, p, status);
            for (int i = 0; i < left; i++)
                fail_call(todo[i], why);
            return 1;
        }
        redisContext *c = pooled->c;
        int malformed = 0, forgot = 0, saved_errno = 0;
        errno = 0;
        left = round_trip(redis, c, p, todo, left, 0, &forgot, &malformed);
        saved_errno = errno;
        if (forgot && !c->err) {
            /* Every call had its reply: the forgotten ones, whole. */
            errno = 0;
            left = round_trip(redis, c, p, todo, left, 1, &forgot, &malformed);
            saved_errno = errno;
        }
        int was_used = pooled->used;
        pooled->used = 1;
        /* A context that failed may be half-way through a reply: never reuse it. */
        if (!c->err && !malformed) {
            apr_reslist_release(redis->contexts, pooled);
            return 0;
        }
        int stale = was_used && closed_by_server(c, saved_errno);
        if (stale)
            apr_atomic_cas32(&redis->generation, pooled->generation + 1, pooled->generation);
        const char *why = apr_pstrdup(p, c->err ? c->errstr : "unexpected reply");
        apr_reslist_invalidate(redis->contexts, pooled);
        if (left == 0)
            return 0;
        /* A connection that served before and was then closed by Redis says
         * nothing about Redis now: once more on a new connection. (Had the
         * scripts run before the close, the retry charges their keys twice,
         * which errs on the strict side.) */
        if (!stale || attempt > 0) {
            for (int i = 0; i < left; i++)
                fail_call(todo[i], why);
            return 1;
        }
    }
}

/* Sends batch[0 .. count - 1], whose first call is the caller's own, as the
 * child's one batch in flight; then answers their owners, and hands the
 * line on to the first call in it. When Redis failed, the calls in line
 * fail with the batch, at once: they would each wait out their own timeout
 * on the same Redis. */
static void run_batch(redeem_redis_t *redis, apr_pool_t *p, redis_call_t **batch, int count)
{
    char why[sizeof batch[0]->why] = "";
    if (send_batch(redis, p, batch, count))
        for (int i = 0; i < count && !why[0]; i++)
            if (batch[i]->checked < 0)
                apr_cpystrn(why, batch[i]->why, sizeof why);
    /* One wake-up for each owner; batch[0] is the caller, awake. Once
     * finished, a call may be gone. */
    redeem_sync_event_finish(&batch[0]->event);
    for (int i = 1; i < count; i++) {
        redeem_sync_event_finish(&batch[i]->event);
        redeem_sync_event_wake(&batch[i]->event);
    }
    redis_call_t *failed[CALLS_IN_LINE];
    int nfailed = 0;
    redeem_sync_lock(redis->line_lock);
    redis->in_flight = 0;
    if (why[0]) {
        nfailed = redis->waiting;
        memcpy(failed, redis->line, sizeof *failed * (apr_size_t)nfailed);
        for (int i = 0; i < nfailed; i++) {
            failed[i]->taken = 1;
            fail_call(failed[i], why);
        }
        redis->waiting = 0;
    }
    redis_call_t *next = redis->waiting ? redis->line[0] : NULL;
    if (next)
        redeem_sync_event_nudge(&next->event);
    redeem_sync_unlock(redis->line_lock);
    for (int i = 0; i < nfailed; i++) {
        redeem_sync_event_finish(&failed[i]->event);
        redeem_sync_event_wake(&failed[i]->event);
    }
    if (next)
        redeem_sync_event_wake(&next->event);
}

/* Under line_lock: takes self out of the line. If self was first in it and
 * no batch is in flight, the next one is woken to send. */
static void leave_line(redeem_redis_t *redis, redis_call_t *self)
{
    int at = 0;
    while (at < redis->waiting && redis->line[at] != self)
        at++;
    if (at == redis->waiting)
        return;
    int after = redis->waiting - at - 1;
    if (after > 0)
        memmove(redis->line + at, redis->line + at + 1, sizeof *redis->line * (apr_size_t)after);
    redis->waiting--;
    if (at == 0 && redis->waiting && !redis->in_flight) {
        redeem_sync_event_nudge(&redis->line[0]->event);
        redeem_sync_event_wake(&redis->line[0]->event);
    }
}

/* Under line_lock, self in line: waits until self is answered, sending the
 * line as a batch when self is first in it and no batch is in flight.
 * Returns with the lock released and self answered. */
static void wait_in_line(redeem_redis_t *redis, apr_pool_t *p, redis_call_t *self)
{
    apr_time_t until = redeem_clock_monotonic() + FLIGHT_MAX_TIMEOUTS * redis->timeout;
    for (;;) {
        apr_uint32_t seen = redeem_sync_event_seen(&self->event);
        if (redeem_sync_event_done(seen))
            break;
        if (self->taken) {
            redeem_sync_unlock(redis->line_lock);
            while (!redeem_sync_event_done(seen)) {
                redeem_sync_event_wait(&self->event, seen, -1);
                seen = redeem_sync_event_seen(&self->event);
            }
            return;
        }
        if (!redis->in_flight && redis->line[0] == self) {
            redis_call_t *batch[CALLS_IN_LINE];
            int count = redis->waiting;
            memcpy(batch, redis->line, sizeof *batch * (apr_size_t)count);
            for (int i = 0; i < count; i++)
                batch[i]->taken = 1;
            redis->waiting = 0;
            redis->in_flight = 1;
            redeem_sync_unlock(redis->line_lock);
            run_batch(redis, p, batch, count);
            return;
        }
        apr_time_t now = redeem_clock_monotonic();
        if (now >= until) {
            leave_line(redis, self);
            fail_call(self, apr_psprintf(p, "no turn for this child's call within %d ms",
                                         FLIGHT_MAX_TIMEOUTS * timeout_ms(redis)));
            break;
        }
        redeem_sync_unlock(redis->line_lock);
        redeem_sync_event_wait(&self->event, seen, until - now);
        redeem_sync_lock(redis->line_lock);
    }
    redeem_sync_unlock(redis->line_lock);
}

int redeem_redis_gcra(redeem_redis_t *redis, apr_pool_t *p, const char *const *keys,
                      const redeem_gcra_policy_t *const *policies, int n,
                      redeem_gcra_verdict_t *verdicts, const char **why)
{
    if (!redis) {
        *why = "cannot connect";
        return -1;
    }
    redis_call_t self = {keys, policies, n, verdicts, -1, "", {0}, 0};
    redeem_shared_count(redis->shared, REDEEM_COUNTER_REDIS_CALLS);
    redis_call_t *alone = &self;
    redeem_sync_event_init(&self.event);
    redeem_sync_lock(redis->line_lock);
    if (!redis->in_flight && !redis->waiting) {
        redis->in_flight = 1;
        redeem_sync_unlock(redis->line_lock);
        run_batch(redis, p, &alone, 1);
    }
    else if (redis->waiting == CALLS_IN_LINE) {
        /* A full line: this call goes on a connection of its own. */
        redeem_sync_unlock(redis->line_lock);
        send_batch(redis, p, &alone, 1);
    }
    else {
        redis->line[redis->waiting++] = &self;
        wait_in_line(redis, p, &self);
    }
    if (self.checked < 0)
        *why = apr_pstrdup(p, self.why);
    return self.checked;
}
