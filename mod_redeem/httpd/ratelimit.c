/* Rate limits: the scopes of API.md, their keys, the store that counts them
 * (this host's shared table, or Redis shared by every host, with the host's
 * table standing in while Redis fails), and the headers of
 * draft-ietf-httpapi-ratelimit-headers (revision 09 and later: RateLimit-Policy
 * with q and w, RateLimit with r and t, one list item per scope). */
#include "httpd/private.h"

#include "core/limit_table.h"

#include <apr_atomic.h>

#include <arpa/inet.h>
#include <sys/un.h>

static const struct {
    const char *name;
    int count, period_s; /* API.md's defaults */
} scopes[REDEEM_SCOPE_COUNT_] = {
    [REDEEM_SCOPE_REDEEM_USER] = {"redeem-user", 10, 60},
    [REDEEM_SCOPE_REDEEM_IP] = {"redeem-ip", 120, 60},
    [REDEEM_SCOPE_LOGIN_EMAIL] = {"login-email", 10, 60},
    [REDEEM_SCOPE_LOGIN_IP] = {"login-ip", 60, 60},
    [REDEEM_SCOPE_REGISTER_IP] = {"register-ip", 60, 60},
};

/* How often a Redis that failed is tried again. */
#define REDIS_RETRY_MS 1000
/* After an outage's return is logged, how long the next one goes unlogged
 * (counted all the same) unless it lasts past it. */
#define REDIS_LOG_QUIET_MS 60000
/* The first byte of a key in the host's table: a scope, or the log's own,
 * or the audit trail's. */
#define LOG_KEY_TAG 0x80
#define AUDIT_KEY_TAG 0x40

const char *redeem_ratelimit_scope_name(redeem_scope_e scope)
{
    return scopes[scope].name;
}

int redeem_ratelimit_scope_by_name(const char *name)
{
    for (int i = 0; i < REDEEM_SCOPE_COUNT_; i++)
        if (strcmp(scopes[i].name, name) == 0)
            return i;
    return -1;
}

const char *redeem_ratelimit_parse_store(apr_pool_t *p, const char *kind, const char *size,
                                         redeem_store_setting_t *store)
{
    /* The host's table: the store itself, or Redis's fallback and shadow. */
    int64_t entries = REDEEM_SHM_DEFAULT_ENTRIES;
    if (size && redeem_text_parse_int64(size, 64, 67108864, &entries) != 0)
        return "RedeemRateLimitStore: ENTRIES must be a whole number from 64 to 67108864";
    if (strcmp(kind, "shm") == 0) {
        store->kind = REDEEM_STORE_SHM;
        store->shm_entries = entries;
        return NULL;
    }
    const char *usage = "RedeemRateLimitStore takes shm [ENTRIES], redis://HOST:PORT[/DB] "
                        "[ENTRIES] or unix:///PATH/TO/redis.sock[?db=DB] [ENTRIES]";
    if (strncmp(kind, "unix:///", 8) == 0) {
        /* A Redis on this host, by its Unix socket: no TCP on either side. */
        const char *path = kind + 7, *query = strchr(path, '?');
        int64_t db = 0;
        if (query &&
            (strncmp(query, "?db=", 4) != 0 || redeem_text_parse_int64(query + 4, 0, 15, &db) != 0))
            return "RedeemRateLimitStore unix:///PATH[?db=DB]: DB 0 to 15";
        size_t path_len = query ? (size_t)(query - path) : strlen(path);
        /* A path that can never be connected to would fall back for ever:
         * a socket file (not the root, nor a directory's trailing slash)
         * whose name fits sockaddr_un. */
        if (path_len < 2 || path[path_len - 1] == '/' ||
            path_len >= sizeof(((struct sockaddr_un *)0)->sun_path))
            return apr_psprintf(p,
                                "RedeemRateLimitStore unix:///PATH: PATH must name a socket file, "
                                "in at most %d bytes",
                                (int)sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
        store->kind = REDEEM_STORE_REDIS;
        store->redis_host = NULL;
        store->redis_socket = apr_pstrndup(p, path, path_len);
        store->redis_port = 0;
        store->redis_db = (int)db;
        store->redis_url = kind;
        store->shm_entries = entries;
        return NULL;
    }
    if (strncmp(kind, "redis://", 8) != 0)
        return usage;
    const char *host = kind + 8, *colon = strrchr(host, ':');
    if (!colon || colon == host)
        return usage;
    if (memchr(host, '@', (size_t)(colon - host)))
        return "RedeemRateLimitStore redis://HOST:PORT[/DB]: no user or password in the URL "
               "(a world-readable file); put them in RedeemRateLimitStoreAuthFile";
    const char *slash = strchr(colon, '/');
    char *port_text =
        apr_pstrndup(p, colon + 1, slash ? (size_t)(slash - colon - 1) : strlen(colon));
    int64_t port, db = 0;
    if (redeem_text_parse_int64(port_text, 1, 65535, &port) != 0 ||
        (slash && redeem_text_parse_int64(slash + 1, 0, 15, &db) != 0))
        return "RedeemRateLimitStore redis://HOST:PORT[/DB]: PORT 1 to 65535, DB 0 to 15";
    store->kind = REDEEM_STORE_REDIS;
    /* An IPv6 address comes in brackets: [::1]:6379. */
    if (host[0] == '[' && colon[-1] == ']' && colon - host > 2)
        store->redis_host = apr_pstrndup(p, host + 1, (size_t)(colon - host - 2));
    else if (host[0] == '[' || colon[-1] == ']')
        return usage;
    else
        store->redis_host = apr_pstrndup(p, host, (size_t)(colon - host));
    store->redis_socket = NULL;
    store->redis_port = (int)port;
    store->redis_db = (int)db;
    store->redis_url = kind;
    store->shm_entries = entries;
    return NULL;
}

const char *redeem_ratelimit_finish(apr_pool_t *p, redeem_limit_setting_t *settings,
                                    redeem_gcra_policy_t *policies)
{
    for (int i = 0; i < REDEEM_SCOPE_COUNT_; i++) {
        redeem_limit_setting_t *setting = &settings[i];
        if (setting->count < 0) {
            setting->count = scopes[i].count;
            setting->period_s = scopes[i].period_s;
        }
        memset(&policies[i], 0, sizeof policies[i]);
        if (setting->count == 0)
            continue; /* the scope is off */
        if (redeem_gcra_policy_init(&policies[i], (uint32_t)setting->count,
                                    (uint32_t)setting->period_s) != 0)
            return apr_psprintf(p,
                                "RedeemRateLimit %s %" APR_INT64_T_FMT " %" APR_INT64_T_FMT
                                ": the period must divide into whole milliseconds per request "
                                "(at most 1%% left over): fewer requests or a longer period",
                                scopes[i].name, setting->count, setting->period_s);
    }
    return NULL;
}

/* The client as the key sees it: its IPv4 address, or the /64 of its IPv6
 * address (one subscriber's whole prefix), as mod_remoteip resolved it. */
static size_t client_bytes(request_rec *r, unsigned char out[16])
{
    const apr_sockaddr_t *addr = r->useragent_addr;
    if (addr && addr->family == AF_INET6) {
        const unsigned char *v6 = addr->ipaddr_ptr;
        static const unsigned char v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(v6, v4_mapped, sizeof v4_mapped) != 0) {
            memcpy(out, v6, 8);
            return 8;
        }
        memcpy(out, v6 + 12, 4);
        return 4;
    }
    if (addr && addr->family == AF_INET) {
        memcpy(out, addr->ipaddr_ptr, 4);
        return 4;
    }
    /* No address (should not happen): the text, at most 16 bytes of it. */
    size_t len = strlen(r->useragent_ip);
    len = len > 16 ? 16 : len;
    memcpy(out, r->useragent_ip, len);
    return len;
}

const char *redeem_ratelimit_tag(const redeem_code_keys_t *keys,
                                 unsigned char tag[REDEEM_LIMIT_TAG_LEN])
{
    static const char what[] = "mod_redeem rate-limit tag v1";
    unsigned char digest[32];
    if (redeem_code_keys_pseudonym(keys, what, sizeof what - 1, digest) != 0)
        return "OpenSSL could not make the rate limits' tag";
    memcpy(tag, digest, REDEEM_LIMIT_TAG_LEN);
    return NULL;
}

static size_t put_u32(unsigned char *out, uint32_t value)
{
    for (int i = 0; i < 4; i++)
        out[i] = (unsigned char)(value >> (24 - 8 * i));
    return 4;
}

/* Scope byte, the server's tag, the scope's policy (count and period), client
 * bytes when the scope is per client, then the subject. The client part has
 * a length byte, so no two keys read alike. The policy is in the key because
 * virtual hosts of one tag may limit a scope differently: sharing one state,
 * the lenient host's refusals pulled the state in to its own limit, and the
 * strict host served again at once. Each policy counts apart. */
static const unsigned char *make_key(request_rec *r, redeem_scope_e scope, const char *subject,
                                     size_t *len)
{
    const redeem_server_conf *conf = redeem_conf(r);
    int per_client = scope != REDEEM_SCOPE_REDEEM_USER;
    size_t subject_len = subject ? strlen(subject) : 0;
    unsigned char *key = apr_palloc(r->pool, 2 + REDEEM_LIMIT_TAG_LEN + 8 + 16 + subject_len);
    size_t n = 0;
    key[n++] = (unsigned char)scope;
    memcpy(key + n, conf->limit_tag, REDEEM_LIMIT_TAG_LEN);
    n += REDEEM_LIMIT_TAG_LEN;
    n += put_u32(key + n, conf->policies[scope].count);
    n += put_u32(key + n, conf->policies[scope].period_s);
    if (per_client) {
        size_t client_len = client_bytes(r, key + n + 1);
        key[n] = (unsigned char)client_len;
        n += 1 + client_len;
    }
    if (subject_len)
        memcpy(key + n, subject, subject_len);
    *len = n + subject_len;
    return key;
}

/* In Redis: the scope's name and a keyed pseudonym of the key (the code
 * MAC key's pseudonym subkey, the same on every host), so Redis holds no
 * address or email, nor anything a guess could be tested against without
 * the key. NULL when OpenSSL fails. */
static const char *redis_key(request_rec *r, redeem_scope_e scope, const unsigned char *key,
                             size_t len)
{
    unsigned char digest[32];
    char hex[33];
    if (redeem_code_keys_pseudonym(&redeem_conf(r)->code_keys, key, len, digest) != 0)
        return NULL;
    redeem_text_hex_encode(digest, 16, hex);
    return apr_pstrcat(r->pool, "redeem:rl:", scopes[scope].name, ":", hex, NULL);
}

static int check_table(redeem_server_conf *conf, const redeem_gcra_policy_t *policy,
                       const unsigned char *key, size_t len, redeem_gcra_verdict_t *verdict)
{
    int evicted = 0;
    int rc = redeem_limit_table_check(redeem_shared_limit_table(conf->shared), policy, key, len,
                                      redeem_shared_now_ms(), verdict, &evicted);
    if (evicted)
        redeem_shared_count(conf->shared, REDEEM_COUNTER_LIMIT_EVICTIONS);
    return rc;
}

/* This host's table, key by key, up to the first refusal: the number of
 * keys checked, or -1 (a table past its 17-year range, or a bucket that
 * other keys kept taking past its bound of rounds). */
static int check_table_all(redeem_server_conf *conf, const redeem_charge_t *charges,
                           const unsigned char *const *keys, const size_t *lens, int n,
                           redeem_gcra_verdict_t *verdicts)
{
    for (int i = 0; i < n; i++)
        if (check_table(conf, &conf->policies[charges[i].scope], keys[i], lens[i], &verdicts[i]) !=
            0)
            return -1;
        else if (!verdicts[i].allowed)
            return i + 1;
    return n;
}

/* Whether this request asks Redis: always while it answers; while it is
 * down, one request of the whole host a retry interval, the one that moves
 * the retry time on (the others would each wait for Redis's timeout, or for
 * a name lookup, at the same moment). */
static int redis_turn(redeem_shared_t *shared, int64_t now)
{
    if (__atomic_load_n(&shared->redis_outage, __ATOMIC_ACQUIRE) == REDEEM_OUTAGE_NONE)
        return 1;
    int64_t retry_at = __atomic_load_n(&shared->redis_retry_at, __ATOMIC_RELAXED);
    return retry_at <= now &&
           __atomic_compare_exchange_n(&shared->redis_retry_at, &retry_at, now + REDIS_RETRY_MS, 0,
                                       __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

/* What Redis charged, charged to the host's table too, its verdicts unused:
 * should Redis fail, the fallback starts from what this host has seen, not
 * from a fresh quota for every key (10 more logins for an email at every
 * blip of Redis). A table check costs well under a microsecond. */
static void shadow_charge(redeem_server_conf *conf, const redeem_charge_t *charges,
                          const unsigned char *const *keys, const size_t *lens, int checked,
                          const redeem_gcra_verdict_t *redis_verdicts)
{
    redeem_gcra_verdict_t unused;
    for (int i = 0; i < checked; i++)
        if (redis_verdicts[i].allowed)
            check_table(conf, &conf->policies[charges[i].scope], keys[i], lens[i], &unused);
}

/* Redis while it answers; after a failure, the host's table until the next
 * retry. The outage and the recovery are logged once each, by whichever
 * process sees them first. */
static int check_redis(request_rec *r, redeem_server_conf *conf, const redeem_charge_t *charges,
                       const unsigned char *const *keys, const size_t *lens, int n,
                       redeem_gcra_verdict_t *verdicts)
{
    redeem_shared_t *shared = conf->shared;
    int64_t now = redeem_shared_now_ms();
    const char *why = NULL;
    if (redis_turn(shared, now)) {
        const char *redis_keys[REDEEM_MAX_CHARGES];
        const redeem_gcra_policy_t *policies[REDEEM_MAX_CHARGES];
        int named = 1;
        for (int i = 0; i < n; i++) {
            redis_keys[i] = redis_key(r, charges[i].scope, keys[i], lens[i]);
            named = named && redis_keys[i];
            policies[i] = &conf->policies[charges[i].scope];
        }
        why = "OpenSSL could not name the keys";
        int checked =
            named ? redeem_redis_gcra(conf->redis, r->pool, redis_keys, policies, n, verdicts, &why)
                  : -1;
        if (checked > 0) {
            shadow_charge(conf, charges, keys, lens, checked, verdicts);
            if (redeem_outage_ended(&shared->redis_outage)) {
                __atomic_store_n(&shared->redis_log_quiet_until, now + REDIS_LOG_QUIET_MS,
                                 __ATOMIC_RELAXED);
                ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                              RDMNO(0603) "Redis %s answers again: rate limits are shared by "
                                          "every host again",
                              conf->store_in_use->redis_url);
            }
            return checked;
        }
        redeem_shared_count(shared, REDEEM_COUNTER_REDIS_FAILURES);
        /* Each failed call with its reason, for whoever asks (debug): the
         * outage's one line below says only the first. */
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      RDMNO(0608) "Redis %s call failed (%s): this request limited by this "
                                  "host's table",
                      conf->store_in_use->redis_url, why);
        /* From the failure's end: a call that timed out took the interval's
         * start with it. */
        __atomic_store_n(&shared->redis_retry_at, redeem_shared_now_ms() + REDIS_RETRY_MS,
                         __ATOMIC_RELAXED);
        /* Logged once per outage, and at most one outage a minute: a Redis
         * whose slowest calls pass the timeout would otherwise log a failure
         * and a return every second or so. An outage that begins within the
         * quiet minute is logged by its first failure after it (one a
         * second while it lasts), so a lasting one is never left unsaid. */
        int may_log = redeem_shared_now_ms() >=
                      __atomic_load_n(&shared->redis_log_quiet_until, __ATOMIC_RELAXED);
        if (redeem_outage_failed(&shared->redis_outage, may_log))
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          RDMNO(0602) "Redis %s failed (%s): rate limits fall back to this "
                                      "host's shared memory until it answers again (logged "
                                      "once per outage, at most one outage a minute)",
                          conf->store_in_use->redis_url, why);
    }
    redeem_shared_count(shared, REDEEM_COUNTER_REDIS_FALLBACKS);
    return check_table_all(conf, charges, keys, lens, n, verdicts);
}

/* The refusal of a request, for redeem_ratelimit_first_audited. */
typedef struct {
    redeem_scope_e scope;
    const unsigned char *key;
    size_t len;
} refusal_t;
static const char refusal_key[] = "redeem-ratelimit-refusal";

/* Once per key and window (a policy of one per window, in the host's table,
 * under the key's scope byte tagged with tag): whether this is the first. */
static int first_in_window(redeem_server_conf *conf, redeem_scope_e scope, const unsigned char *key,
                           size_t len, unsigned char tag, apr_pool_t *pool)
{
    redeem_gcra_policy_t once;
    redeem_gcra_verdict_t verdict;
    unsigned char *tagged = apr_pmemdup(pool, key, len);
    tagged[0] |= tag;
    return redeem_gcra_policy_init(&once, 1, conf->policies[scope].period_s) == 0 &&
           check_table(conf, &once, tagged, len, &verdict) == 0 && verdict.allowed;
}

/* Apart from the log's: a refusal that cannot have a row (its token failed
 * its check: no actor) must not use up the window's row. (One whose token
 * holds but whose account is gone or revoked is found out only as its row
 * is refused: it has used the turn by then.) */
int redeem_ratelimit_first_audited(request_rec *r)
{
    const refusal_t *refusal = NULL;
    apr_pool_userdata_get((void **)&refusal, refusal_key, r->pool);
    return refusal && first_in_window(redeem_conf(r), refusal->scope, refusal->key, refusal->len,
                                      AUDIT_KEY_TAG, r->pool);
}

static void log_refusal(request_rec *r, redeem_server_conf *conf, redeem_scope_e scope,
                        const unsigned char *key, size_t len)
{
    refusal_t *refusal = apr_palloc(r->pool, sizeof *refusal);
    *refusal = (refusal_t){scope, key, len};
    apr_pool_userdata_setn(refusal, refusal_key, NULL, r->pool);
    if (!first_in_window(conf, scope, key, len, LOG_KEY_TAG, r->pool))
        return;
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                  RDMNO(0604) "rate limit %s (%u per %u s) reached by client %s%s%s: answering "
                              "429 (logged once per window)",
                  scopes[scope].name, conf->policies[scope].count, conf->policies[scope].period_s,
                  r->useragent_ip, scope == REDEEM_SCOPE_REDEEM_USER ? ", user " : "",
                  scope == REDEEM_SCOPE_REDEEM_USER ? r->user : "");
}

static void add_headers(request_rec *r, redeem_scope_e scope, const redeem_gcra_policy_t *policy,
                        const redeem_gcra_verdict_t *verdict)
{
    apr_table_mergen(r->err_headers_out, "RateLimit-Policy",
                     apr_psprintf(r->pool, "\"%s\";q=%u;w=%u", scopes[scope].name, policy->count,
                                  policy->period_s));
    apr_table_mergen(r->err_headers_out, "RateLimit",
                     apr_psprintf(r->pool, "\"%s\";r=%u;t=%" APR_INT64_T_FMT, scopes[scope].name,
                                  verdict->remaining,
                                  (apr_int64_t)redeem_gcra_seconds_up(verdict->reset_ms)));
}

/* A request counted per address that came through a proxy (it names an
 * X-Forwarded-For) while its address is still the peer's: mod_remoteip does
 * not trust that proxy, and all its clients share one address's budgets.
 * Once per child: a client may send the header itself. */
static void warn_untrusted_proxy(request_rec *r, redeem_child_t *child)
{
    if (apr_atomic_read32(&child->forwarded_warned) ||
        !apr_table_get(r->headers_in, "X-Forwarded-For") ||
        strcmp(r->useragent_ip, r->connection->client_ip) != 0 ||
        apr_atomic_xchg32(&child->forwarded_warned, 1))
        return;
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                  RDMNO(0607) "a request from %s carries X-Forwarded-For, but its client "
                              "address is that peer's: the rate limits per address count every "
                              "client of that proxy as one (trust it with mod_remoteip's "
                              "RemoteIPHeader and RemoteIPInternalProxy, or "
                              "RemoteIPTrustedProxy); logged once per child",
                  r->connection->client_ip);
}

const redeem_failure_t *redeem_ratelimit_charge_all(request_rec *r, const redeem_charge_t *charges,
                                                    int n)
{
    redeem_server_conf *conf = redeem_conf(r);
    redeem_charge_t active[REDEEM_MAX_CHARGES];
    const unsigned char *keys[REDEEM_MAX_CHARGES];
    size_t lens[REDEEM_MAX_CHARGES];
    redeem_gcra_verdict_t verdicts[REDEEM_MAX_CHARGES];
    int count = 0;
    for (int i = 0; i < n && count < REDEEM_MAX_CHARGES; i++)
        if (conf->policies[charges[i].scope].count != 0) { /* a scope set to 0 is off */
            active[count] = charges[i];
            keys[count] = make_key(r, charges[i].scope, charges[i].subject, &lens[count]);
            count++;
            if (charges[i].scope != REDEEM_SCOPE_REDEEM_USER)
                warn_untrusted_proxy(r, conf->child);
        }
    if (count == 0)
        return NULL;
    int checked = conf->store_in_use->kind == REDEEM_STORE_REDIS
                      ? check_redis(r, conf, active, keys, lens, count, verdicts)
                      : check_table_all(conf, active, keys, lens, count, verdicts);
    if (checked < 0) {
        /* A table past its 17-year range, or a bucket whose slots other keys
         * kept taking for longer than its bound of rounds: serve, and say so. */
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      RDMNO(0605) "rate limit %s could not be checked: request served",
                      scopes[active[0].scope].name);
        return NULL;
    }
    for (int i = 0; i < checked; i++)
        add_headers(r, active[i].scope, &conf->policies[active[i].scope], &verdicts[i]);
    const redeem_gcra_verdict_t *last = &verdicts[checked - 1];
    if (last->allowed)
        return NULL;
    redeem_scope_e scope = active[checked - 1].scope;
    redeem_shared_count(conf->shared, REDEEM_COUNTER_LIMITED_FIRST + scope);
    log_refusal(r, conf, scope, keys[checked - 1], lens[checked - 1]);
    redeem_failure_t *failure = apr_palloc(r->pool, sizeof *failure);
    failure->status = HTTP_TOO_MANY_REQUESTS;
    failure->message = "Too many requests";
    failure->retry_after = (int)redeem_gcra_seconds_up(last->retry_after_ms);
    return failure;
}

const redeem_failure_t *redeem_ratelimit_charge(request_rec *r, redeem_scope_e scope,
                                                const char *subject)
{
    const redeem_charge_t charge = {scope, subject};
    return redeem_ratelimit_charge_all(r, &charge, 1);
}
