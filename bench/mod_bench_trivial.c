/* mod_bench_trivial: the ceiling of `make bench` for the API's cheap GET
 * endpoints. It answers GET /bench/trivial with a fixed small JSON body, in
 * the same httpd, MPM, connection handling and access log as mod_redeem,
 * and does nothing else: no database, no token, no JSON library.
 *
 * GET /bench/roundtrip?ID answers the same body after one round trip to
 * PostgreSQL: the statement of BenchRoundtripDB (mod_redeem's user read),
 * its one parameter "{ID,ID,...}" (16 times, as a request alone sends it),
 * run with libpq's plainest call on a connection of this child's own small
 * pool, its rows not even looked at. It is the reference for what one round
 * trip costs an endpoint in this httpd, whatever the module around it does.
 *
 * Its hooks run before mod_redeem's (which claims every URI under its base
 * path), and like mod_redeem it skips the filesystem walk. Built by
 * bench/run.sh into build/bench/, never installed. */
#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"

#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>

#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#define TRIVIAL_URI "/bench/trivial"
#define TRIVIAL_MARK "bench-trivial:"
#define ROUNDTRIP_URI "/bench/roundtrip"
#define ROUNDTRIP_MARK "bench-roundtrip:"
#define ROUNDTRIP_IDS 16
#define ROUNDTRIP_MAX_POOL 256

module AP_MODULE_DECLARE_DATA bench_trivial_module;

/* The server's directives, and each child's pool of connections. */
typedef struct {
    const char *conninfo; /* BenchRoundtripDB; NULL: /bench/roundtrip is off */
    const char *sql;      /* BenchRoundtripDB's second argument */
    int pool_size;        /* BenchRoundtripPool */
    apr_thread_mutex_t *lock;
    apr_thread_cond_t *freed;
    PGconn **idle; /* idle[0 .. idle_count - 1]: free connections, NULL: not made yet */
    int idle_count;
} roundtrip_conf_t;

static const char trivial_body[] = "{\"status\":\"ok\",\"message\":\"trivial\"}";

static int trivial_marked(request_rec *r)
{
    return r->filename && strcmp(r->filename, TRIVIAL_MARK) == 0;
}

static int roundtrip_marked(request_rec *r)
{
    return r->filename && strcmp(r->filename, ROUNDTRIP_MARK) == 0;
}

static int trivial_translate_name(request_rec *r)
{
    if (strcmp(r->uri, TRIVIAL_URI) == 0)
        r->filename = apr_pstrdup(r->pool, TRIVIAL_MARK);
    else if (strcmp(r->uri, ROUNDTRIP_URI) == 0)
        r->filename = apr_pstrdup(r->pool, ROUNDTRIP_MARK);
    else
        return DECLINED;
    return OK;
}

static int trivial_map_to_storage(request_rec *r)
{
    return trivial_marked(r) || roundtrip_marked(r) ? OK : DECLINED;
}

static PGconn *roundtrip_connect(server_rec *s, const roundtrip_conf_t *conf)
{
    PGconn *pg = PQconnectdb(conf->conninfo);
    PGresult *prepared = NULL;
    if (PQstatus(pg) == CONNECTION_OK)
        prepared = PQprepare(pg, "roundtrip", conf->sql, 1, NULL);
    if (!prepared || PQresultStatus(prepared) != PGRES_COMMAND_OK) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "bench_trivial: roundtrip: %s",
                     PQerrorMessage(pg));
        PQclear(prepared);
        PQfinish(pg);
        return NULL;
    }
    PQclear(prepared);
    return pg;
}

/* One round trip on a connection of the pool: the status to answer. */
static int roundtrip_run(request_rec *r)
{
    roundtrip_conf_t *conf = ap_get_module_config(r->server->module_config, &bench_trivial_module);
    if (!conf->conninfo || !conf->lock)
        return HTTP_NOT_FOUND;
    apr_int64_t id = r->args ? apr_atoi64(r->args) : 0;
    char *ids = apr_palloc(r->pool, ROUNDTRIP_IDS * 21 + 3), *end = ids;
    *end++ = '{';
    for (int i = 0; i < ROUNDTRIP_IDS; i++)
        end += apr_snprintf(end, 22, "%s%" APR_INT64_T_FMT, i ? "," : "", id);
    *end++ = '}';
    *end = '\0';

    apr_thread_mutex_lock(conf->lock);
    while (conf->idle_count == 0)
        apr_thread_cond_wait(conf->freed, conf->lock);
    PGconn *pg = conf->idle[--conf->idle_count];
    apr_thread_mutex_unlock(conf->lock);

    int status = HTTP_SERVICE_UNAVAILABLE;
    if (!pg)
        pg = roundtrip_connect(r->server, conf);
    if (pg) {
        const char *values[1] = {ids};
        PGresult *result = PQexecPrepared(pg, "roundtrip", 1, values, NULL, NULL, 0);
        if (PQresultStatus(result) == PGRES_TUPLES_OK)
            status = OK;
        else
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "bench_trivial: roundtrip: %s",
                          PQerrorMessage(pg));
        PQclear(result);
        if (PQstatus(pg) != CONNECTION_OK) {
            PQfinish(pg);
            pg = NULL;
        }
    }

    apr_thread_mutex_lock(conf->lock);
    conf->idle[conf->idle_count++] = pg;
    apr_thread_cond_signal(conf->freed);
    apr_thread_mutex_unlock(conf->lock);
    return status;
}

static int trivial_handler(request_rec *r)
{
    if (!trivial_marked(r) && !roundtrip_marked(r))
        return DECLINED;
    if (r->method_number != M_GET)
        return HTTP_METHOD_NOT_ALLOWED;
    if (roundtrip_marked(r)) {
        int status = roundtrip_run(r);
        if (status != OK)
            return status;
    }
    ap_set_content_type(r, "application/json");
    ap_set_content_length(r, sizeof trivial_body - 1);
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (!r->header_only)
        ap_rwrite(trivial_body, sizeof trivial_body - 1, r);
    return OK;
}

static void *roundtrip_create_server_config(apr_pool_t *p, server_rec *s)
{
    (void)s;
    roundtrip_conf_t *conf = apr_pcalloc(p, sizeof *conf);
    conf->pool_size = 12;
    return conf;
}

static const char *set_roundtrip_db(cmd_parms *cmd, void *dconf, const char *conninfo,
                                    const char *sql)
{
    (void)dconf;
    roundtrip_conf_t *conf =
        ap_get_module_config(cmd->server->module_config, &bench_trivial_module);
    conf->conninfo = conninfo;
    conf->sql = sql;
    return NULL;
}

static const char *set_roundtrip_pool(cmd_parms *cmd, void *dconf, const char *size)
{
    (void)dconf;
    roundtrip_conf_t *conf =
        ap_get_module_config(cmd->server->module_config, &bench_trivial_module);
    conf->pool_size = atoi(size);
    if (conf->pool_size < 1 || conf->pool_size > ROUNDTRIP_MAX_POOL)
        return "BenchRoundtripPool: 1 to 256 connections";
    return NULL;
}

static const command_rec trivial_directives[] = {
    AP_INIT_TAKE2("BenchRoundtripDB", set_roundtrip_db, NULL, RSRC_CONF,
                  "libpq connection string and the statement of /bench/roundtrip ($1: a bigint[])"),
    AP_INIT_TAKE1("BenchRoundtripPool", set_roundtrip_pool, NULL, RSRC_CONF,
                  "connections of each child for /bench/roundtrip (12); more than a child's "
                  "requests at once, or they queue for one"),
    {NULL},
};

/* Connections are made when the child starts (a slot whose connection
 * failed makes it at its first use) and closed with the child's pool. */
static apr_status_t roundtrip_close(void *data)
{
    roundtrip_conf_t *conf = data;
    for (int i = 0; i < conf->idle_count; i++)
        if (conf->idle[i])
            PQfinish(conf->idle[i]);
    conf->idle_count = 0;
    return APR_SUCCESS;
}

static void roundtrip_child_init(apr_pool_t *pchild, server_rec *s)
{
    roundtrip_conf_t *conf = ap_get_module_config(s->module_config, &bench_trivial_module);
    if (!conf->conninfo)
        return;
    if (apr_thread_mutex_create(&conf->lock, APR_THREAD_MUTEX_DEFAULT, pchild) ||
        apr_thread_cond_create(&conf->freed, pchild)) {
        conf->lock = NULL;
        return;
    }
    conf->idle = apr_pcalloc(pchild, sizeof *conf->idle * (apr_size_t)conf->pool_size);
    conf->idle_count = conf->pool_size;
    apr_pool_cleanup_register(pchild, conf, roundtrip_close, apr_pool_cleanup_null);
    for (int i = 0; i < conf->pool_size; i++)
        conf->idle[i] = roundtrip_connect(s, conf);
}

static void trivial_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_child_init(roundtrip_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_translate_name(trivial_translate_name, NULL, NULL, APR_HOOK_REALLY_FIRST);
    ap_hook_map_to_storage(trivial_map_to_storage, NULL, NULL, APR_HOOK_REALLY_FIRST);
    ap_hook_handler(trivial_handler, NULL, NULL, APR_HOOK_REALLY_FIRST);
}

module AP_MODULE_DECLARE_DATA bench_trivial_module = {
    STANDARD20_MODULE_STUFF,
    NULL, /* per-directory config */
    NULL, /* merge per-directory config */
    roundtrip_create_server_config,
    NULL, /* merge per-server config: the main server's is the only one */
    trivial_directives,
    trivial_register_hooks,
#if AP_MODULE_MAGIC_AT_LEAST(AP_MODULE_FLAGS_MMN_MAJOR, AP_MODULE_FLAGS_MMN_MINOR)
    0, /* flags */
#endif
};
