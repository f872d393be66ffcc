/* Rate limits across hosts: one GCRA step per check, done atomically inside
 * Redis by a Lua script on Redis's own clock (TIME), so every httpd that
 * points at the same Redis shares one state per key, and keys expire by
 * themselves (PX: the time until the quota is whole again). hiredis contexts
 * are not thread-safe: each child keeps a small pool (apr_reslist), one
 * context per thread at most, reused; a context that failed is dropped. */
#include "httpd/private.h"

#include <apr_reslist.h>
#include <hiredis/hiredis.h>
#include <openssl/sha.h>

/* Connect and command timeouts: a Redis that does not answer this fast is
 * treated as down (the caller falls back to this host's table). */
#define REDIS_TIMEOUT_USEC 50000

/* KEYS[1]: the key; ARGV: the policy's interval and limit in ms. Mirrors
 * redeem_gcra_step (core/gcra.c): level = how far the TAT runs ahead of now,
 * at most the limit; allowed when level + interval fits the limit. Returns
 * {allowed, remaining, retry_after_ms, reset_ms}. */
static const char gcra_script[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local interval, limit = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local tat = tonumber(redis.call('GET', KEYS[1]) or 0)\n"
    "local level = 0\n"
    "if tat > now then level = math.min(tat - now, limit) end\n"
    "local nxt = level + interval\n"
    "if nxt > limit then return {0, 0, nxt - limit, level} end\n"
    "redis.call('SET', KEYS[1], string.format('%.0f', now + nxt), 'PX', nxt)\n"
    "return {1, math.floor((limit - nxt) / interval), 0, nxt}\n";

struct redeem_redis {
    apr_reslist_t *contexts;
    const char *host;
    int port, db;
    char script_sha[2 * SHA_DIGEST_LENGTH + 1];
};

static apr_status_t connect_context(void **resource, void *params, apr_pool_t *pool)
{
    (void)pool;
    redeem_redis_t *redis = params;
    struct timeval timeout = {0, REDIS_TIMEOUT_USEC};
    redisContext *c = redisConnectWithTimeout(redis->host, redis->port, timeout);
    if (!c || c->err || redisSetTimeout(c, timeout) != REDIS_OK) {
        if (c)
            redisFree(c);
        return APR_ECONNREFUSED;
    }
    if (redis->db) {
        redisReply *reply = redisCommand(c, "SELECT %d", redis->db);
        int ok = reply && reply->type == REDIS_REPLY_STATUS;
        if (reply)
            freeReplyObject(reply);
        if (!ok) {
            redisFree(c);
            return APR_EGENERAL;
        }
    }
    *resource = c;
    return APR_SUCCESS;
}

static apr_status_t free_context(void *resource, void *params, apr_pool_t *pool)
{
    (void)params;
    (void)pool;
    redisFree(resource);
    return APR_SUCCESS;
}

redeem_redis_t *redeem_redis_create(apr_pool_t *pchild, const char *host, int port, int db,
                                    int max_connections)
{
    redeem_redis_t *redis = apr_pcalloc(pchild, sizeof *redis);
    unsigned char digest[SHA_DIGEST_LENGTH];
    redis->host = host;
    redis->port = port;
    redis->db = db;
    SHA1((const unsigned char *)gcra_script, sizeof gcra_script - 1, digest);
    redeem_text_hex_encode(digest, sizeof digest, redis->script_sha);
    if (apr_reslist_create(&redis->contexts, 0, 0, max_connections, 0, connect_context,
                           free_context, redis, pchild) != APR_SUCCESS)
        return NULL;
    return redis;
}

static redisReply *run_script(redeem_redis_t *redis, redisContext *c, const char *key,
                              const redeem_gcra_policy_t *policy)
{
    char interval[24], limit[24];
    snprintf(interval, sizeof interval, "%" APR_INT64_T_FMT, (apr_int64_t)policy->interval_ms);
    snprintf(limit, sizeof limit, "%" APR_INT64_T_FMT, (apr_int64_t)policy->limit_ms);
    redisReply *reply =
        redisCommand(c, "EVALSHA %s 1 %s %s %s", redis->script_sha, key, interval, limit);
    if (reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        /* A restarted or flushed Redis forgot the script: send it whole. */
        freeReplyObject(reply);
        reply = redisCommand(c, "EVAL %s 1 %s %s %s", gcra_script, key, interval, limit);
    }
    return reply;
}

static int read_verdict(const redisReply *reply, redeem_gcra_verdict_t *verdict)
{
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 4)
        return -1;
    for (size_t i = 0; i < 4; i++)
        if (reply->element[i]->type != REDIS_REPLY_INTEGER)
            return -1;
    verdict->allowed = reply->element[0]->integer != 0;
    verdict->remaining = (uint32_t)reply->element[1]->integer;
    verdict->retry_after_ms = reply->element[2]->integer;
    verdict->reset_ms = reply->element[3]->integer;
    return 0;
}

int redeem_redis_gcra(redeem_redis_t *redis, apr_pool_t *p, const char *key,
                      const redeem_gcra_policy_t *policy, redeem_gcra_verdict_t *verdict,
                      const char **why)
{
    void *resource;
    if (!redis || apr_reslist_acquire(redis->contexts, &resource) != APR_SUCCESS) {
        *why = "cannot connect";
        return -1;
    }
    redisContext *c = resource;
    redisReply *reply = run_script(redis, c, key, policy);
    int rc = read_verdict(reply, verdict);
    if (rc != 0)
        *why = c->err                                      ? apr_pstrdup(p, c->errstr)
               : reply && reply->type == REDIS_REPLY_ERROR ? apr_pstrdup(p, reply->str)
                                                           : "unexpected reply";
    if (reply)
        freeReplyObject(reply);
    /* A context that failed may be half-way through a reply: never reuse it. */
    if (rc == 0 && !c->err)
        apr_reslist_release(redis->contexts, c);
    else
        apr_reslist_invalidate(redis->contexts, c);
    return rc;
}
