/* Rate limits across hosts: one GCRA step per check, done atomically inside
 * Redis by a Lua script on Redis's own clock (TIME), so every httpd that
 * points at the same Redis shares one state per key, and keys expire by
 * themselves (PX: the time until the quota is whole again). hiredis contexts
 * are not thread-safe: each child keeps a small pool (apr_reslist), one
 * context per thread at most, reused; a context that failed is dropped. */
#include "httpd/private.h"

#include <apr_atomic.h>
#include <apr_reslist.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <hiredis/hiredis.h>
#include <openssl/sha.h>

/* Connect and command timeouts: a Redis that does not answer this fast is
 * treated as down (the caller falls back to this host's table). */
#define REDIS_TIMEOUT_USEC 50000

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
    CONNECT_SILENT,         /* connected, but AUTH or SELECT had no answer in time */
    CONNECT_CLOSED,         /* connected, but Redis closed the connection at AUTH or SELECT */
    CONNECT_FULL,           /* Redis at its maxclients */
    CONNECT_LOADING,        /* Redis still loading its data */
    CONNECT_AUTH_REFUSED,   /* AUTH answered with a refusal of the credentials */
    CONNECT_SELECT_REFUSED, /* SELECT refused (no such database, or AUTH needed) */
    CONNECT_OTHER           /* AUTH or SELECT answered with another error */
};

struct redeem_redis {
    apr_reslist_t *contexts;
    const char *host, *socket_path; /* one of them */
    int port, db;
    const char *user, *password; /* AUTH when password is set; user NULL: the default user */
    apr_uint32_t connect_error;  /* CONNECT_..., of the last connection that failed */
    char script_sha[2 * SHA_DIGEST_LENGTH + 1];
    /* Bumped when a pooled connection is found closed by Redis (a restart,
     * its idle timeout): every connection of an older generation is closed
     * too, unused, since it most likely went the same way. */
    apr_uint32_t generation;
};

/* A pooled connection, with the generation it was made in and whether it
 * has carried a command yet. */
typedef struct {
    redisContext *c;
    apr_uint32_t generation;
    int used;
} pooled_t;

/* Sets what is left until deadline as the socket's timeout: 0 (c->err set)
 * once it is past. */
static int time_left(redisContext *c, apr_time_t deadline)
{
    apr_interval_time_t left = deadline - redeem_clock_monotonic();
    if (left <= 0) {
        c->err = REDIS_ERR_IO;
        snprintf(c->errstr, sizeof c->errstr, "no answer within %d ms", REDIS_TIMEOUT_USEC / 1000);
        return 0;
    }
    struct timeval tv = {(time_t)(left / APR_USEC_PER_SEC), (suseconds_t)(left % APR_USEC_PER_SEC)};
    return redisSetTimeout(c, tv) == REDIS_OK;
}

/* A read or write the socket's timeout ended says so, not "Resource
 * temporarily unavailable" (EAGAIN, as hiredis reports it). */
static void name_timeout(redisContext *c)
{
    if (c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK))
        snprintf(c->errstr, sizeof c->errstr, "no answer within %d ms", REDIS_TIMEOUT_USEC / 1000);
}

/* One command and its whole reply within REDIS_TIMEOUT_USEC. The socket's
 * timeouts bound each read and write alone, so a Redis (or a path to it)
 * that answers a few bytes at a time would hold the request for as long as
 * it trickles: past the first read, each read gets only what is left. NULL
 * with c->err set when it fails; the context is then of no further use. */
static redisReply *command(redisContext *c, int argc, const char **argv)
{
    /* Monotonic: a step of the wall clock must not end the command at once
     * nor let it trickle on past REDIS_TIMEOUT_USEC. */
    apr_time_t deadline = redeem_clock_monotonic() + REDIS_TIMEOUT_USEC;
    int done = 0, shortened = 0;
    void *reply = NULL;
    if (redisAppendCommandArgv(c, argc, argv, NULL) != REDIS_OK)
        return NULL;
    for (int pass = 0; !done; pass++) {
        if (pass > 0 && !(shortened = time_left(c, deadline)))
            return NULL;
        if (redisBufferWrite(c, &done) != REDIS_OK) {
            name_timeout(c);
            return NULL;
        }
    }
    for (int pass = 0;; pass++) {
        if (redisGetReplyFromReader(c, &reply) != REDIS_OK)
            return NULL;
        if (reply)
            break;
        /* The first read has the socket's whole timeout (set at connect):
         * no system call more for the common reply of one read. */
        if (pass > 0 && !(shortened = time_left(c, deadline)))
            return NULL;
        if (redisBufferRead(c) != REDIS_OK) {
            name_timeout(c);
            return NULL;
        }
    }
    if (shortened) {
        struct timeval whole = {0, REDIS_TIMEOUT_USEC};
        if (redisSetTimeout(c, whole) != REDIS_OK) {
            freeReplyObject(reply);
            return NULL;
        }
    }
    return reply;
}

/* Runs AUTH or SELECT on a new connection: 0 when Redis answered it OK,
 * else why not (CONNECT_...). */
static int setup_command(redisContext *c, int argc, const char **argv, int refused)
{
    redisReply *reply = command(c, argc, argv);
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
    struct timeval timeout = {0, REDIS_TIMEOUT_USEC};
    redisContext *c = redis->host ? redisConnectWithTimeout(redis->host, redis->port, timeout)
                                  : redisConnectUnixWithTimeout(redis->socket_path, timeout);
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
        error = setup_command(c, redis->user ? 3 : 2, auth, CONNECT_AUTH_REFUSED);
    if (!error && redis->db)
        error = setup_command(c, 2, select_db, CONNECT_SELECT_REFUSED);
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
                                    int max_connections)
{
    redeem_redis_t *redis = apr_pcalloc(pchild, sizeof *redis);
    unsigned char digest[SHA_DIGEST_LENGTH];
    redis->host = store->redis_host;
    redis->socket_path = store->redis_socket;
    redis->port = store->redis_port;
    redis->db = store->redis_db;
    redis->user = store->redis_user;
    redis->password = store->redis_password;
    SHA1((const unsigned char *)gcra_script, sizeof gcra_script - 1, digest);
    redeem_text_hex_encode(digest, sizeof digest, redis->script_sha);
    /* Made as threads need them, one per thread at most: twice the MPM's
     * threads, for the threads of mod_http2's streams besides. A thread that
     * still finds none free within the call's own timeout fails as a call
     * that timed out would (apr_reslist_acquire waits without end else). */
    if (apr_reslist_create(&redis->contexts, 0, 0, 2 * max_connections, 0, connect_context,
                           free_context, redis, pchild) != APR_SUCCESS)
        return NULL;
    apr_reslist_timeout_set(redis->contexts, REDIS_TIMEOUT_USEC);
    return redis;
}

/* EVALSHA (or EVAL when Redis forgot the script) with every key and its
 * policy as separate arguments: nothing is formatted into a command line. */
static redisReply *run_script(redeem_redis_t *redis, redisContext *c, apr_pool_t *p,
                              const char *const *keys, const redeem_gcra_policy_t *const *policies,
                              int n)
{
    int argc = 3 + 3 * n;
    const char **argv = apr_palloc(p, sizeof *argv * (apr_size_t)argc);
    argv[0] = "EVALSHA";
    argv[1] = redis->script_sha;
    argv[2] = apr_itoa(p, n);
    for (int i = 0; i < n; i++) {
        argv[3 + i] = keys[i];
        argv[3 + n + 2 * i] =
            apr_psprintf(p, "%" APR_INT64_T_FMT, (apr_int64_t)policies[i]->interval_ms);
        argv[4 + n + 2 * i] =
            apr_psprintf(p, "%" APR_INT64_T_FMT, (apr_int64_t)policies[i]->limit_ms);
    }
    redisReply *reply = command(c, argc, argv);
    if (reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        /* A restarted or flushed Redis forgot the script: send it whole. */
        freeReplyObject(reply);
        argv[0] = "EVAL";
        argv[1] = gcra_script;
        reply = command(c, argc, argv);
    }
    return reply;
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

int redeem_redis_gcra(redeem_redis_t *redis, apr_pool_t *p, const char *const *keys,
                      const redeem_gcra_policy_t *const *policies, int n,
                      redeem_gcra_verdict_t *verdicts, const char **why)
{
    for (int attempt = 0;; attempt++) {
        apr_status_t status = APR_SUCCESS;
        pooled_t *pooled = redis ? acquire_current(redis, &status) : NULL;
        if (!pooled) {
            uint32_t error = redis ? apr_atomic_read32(&redis->connect_error) : 0;
            *why = APR_STATUS_IS_TIMEUP(status)    ? "every connection of this child busy for 50 ms"
                   : error == CONNECT_SILENT       ? "connected, but no answer to AUTH or SELECT "
                                                     "within 50 ms"
                   : error == CONNECT_CLOSED       ? "it closed the connection at AUTH or SELECT"
                   : error == CONNECT_FULL         ? "it refuses connections: maxclients reached"
                   : error == CONNECT_LOADING      ? "it is still loading its data"
                   : error == CONNECT_AUTH_REFUSED ? "AUTH refused (RedeemRateLimitStoreAuthFile)"
                   : error == CONNECT_SELECT_REFUSED
                       ? "SELECT of the database refused (does it need AUTH?)"
                   : error == CONNECT_OTHER ? "AUTH or SELECT answered with an error"
                                            : "cannot connect";
            return -1;
        }
        redisContext *c = pooled->c;
        errno = 0;
        redisReply *reply = run_script(redis, c, p, keys, policies, n);
        int saved_errno = errno;
        int checked = read_verdicts(reply, n, verdicts);
        if (checked < 0)
            *why = c->err                                      ? apr_pstrdup(p, c->errstr)
                   : reply && reply->type == REDIS_REPLY_ERROR ? apr_pstrdup(p, reply->str)
                                                               : "unexpected reply";
        if (reply)
            freeReplyObject(reply);
        int was_used = pooled->used;
        pooled->used = 1;
        /* A context that failed may be half-way through a reply: never reuse it. */
        if (checked > 0 && !c->err) {
            apr_reslist_release(redis->contexts, pooled);
            return checked;
        }
        int stale = was_used && closed_by_server(c, saved_errno);
        if (stale)
            apr_atomic_cas32(&redis->generation, pooled->generation + 1, pooled->generation);
        apr_reslist_invalidate(redis->contexts, pooled);
        /* A connection that served before and was then closed by Redis says
         * nothing about Redis now: once more on a new connection. (Had the
         * script run before the close, the retry charges its keys twice,
         * which errs on the strict side.) */
        if (!stale || attempt > 0)
            return checked;
    }
}
