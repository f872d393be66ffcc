/* mod_redeem: accounts, redeem codes and subscriptions as a JSON API.
 * This file holds the module record and the hooks, nothing else.
 *
 * The map
 * -------
 * core/   httpd-free code (APR, OpenSSL, jansson, libargon2 only),
 *         called by unit tests and fuzzers too: text (hex, UTF-8, integers,
 *         UUIDs), email, password (policy, argon2id), token (JWT), code
 *         (format, check, lookup hash, sealing), timestamp (RFC 3339),
 *         keyfile (secret files), futex_hash (the child's futex hash size,
 *         RedeemFutexHashSlots), clock (monotonic), sync (locks and condition
 *         variables timed on it), log_throttle (a warning once in a while).
 *         Public names: redeem_<file>_*.
 * httpd/  the glue: this file; config.c (directives); router.c (routes);
 *         call.c (a request's database); pool_gate.c (a bounded wait for
 *         mod_dbd's pooled connections); auth.c (tokens to users);
 *         user_reads.c (the token's user, read for many requests at once);
 *         hashing.c (argon2 under a bound); admin.c (RedeemAdmin);
 *         db.c + statements.h/.c (the database contract); request.c and
 *         response.c (JSON in and out); failure.c; audit.c; user.c;
 *         handle_*.c (one file per group of endpoints). private.h declares
 *         them, grouped by file.
 *
 * The path of one request
 *   httpd translates and walks <Location>s as usual (mod_rewrite, mod_alias,
 *   access control and mod_remoteip act as they would on any path);
 *   map_to_storage: a URI under the base path where RedeemEngine is On (a
 *     server, a <VirtualHost>, a <Location>) maps to no file, so no
 *     filesystem walk happens for it;
 *   handler: such a request goes to redeem_router_dispatch, which finds
 *     the route (JSON 404/405) and, for routes that need a caller,
 *     authenticates: the token first (401 before any database work), then
 *     the database (redeem_call_db: a pooled mod_dbd connection, prepared
 *     statements checked, the admin account ensured once per child), then
 *     the token's user read afresh (401 gone, 403 not admin): alone, or
 *     with the requests of the child that waited while another read ran,
 *     in one statement (user_reads.c);
 *   the handler reads its input (400/413/415), runs one statement (the
 *     redemption is one statement: claim, extend, audit) and sends JSON;
 *   any failure a helper or handler returns is answered by the router, in
 *     one place (redeem_response_failure).
 *
 * State
 *   per process: the configuration (read-only after start-up) and
 *     redeem_child_t (the admin-ready flag, the hashing slots, the line of
 *     requests waiting for their users), made in
 *     child_init; per pooled connection: its prepared statements
 *     (db.c, in the connection's pool); per request: everything else, on
 *     r->pool (redeem_call_t, rows, JSON held until the request ends).
 *
 * Metrics: every API response is counted (log_transaction) in the shared
 *   segment; mod_status's page and the "redeem-metrics" handler show them.
 *
 * Log tags: RDMnnnn, the hundreds naming the area (see RDMNO in private.h). */
#include "httpd/private.h"

#include <ap_mpm.h>
#include <argon2.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <http_core.h>
#include <mod_status.h>
#include <apr_optional.h>

/* mod_dbd's driver where the API is served: the module speaks libpq to the
 * connections it is handed (db.c checks each one too). Refused: a server
 * whose own configuration turns the API on with another driver, and the API
 * served where no server has the pgsql driver at all (it started, and
 * answered every request 503). A server that turns it on with no driver of
 * its own, where others have one, is only warned of: its name-based virtual
 * hosts may take every request. */
static int check_dbd_driver(apr_pool_t *pconf, server_rec *s)
{
    int pgsql_somewhere = 0;
    for (server_rec *vs = s; vs; vs = vs->next) {
        const redeem_server_conf *conf = ap_get_module_config(vs->module_config, &redeem_module);
        pgsql_somewhere |= conf->dbd_driver && strcmp(conf->dbd_driver, "pgsql") == 0;
    }
    for (server_rec *vs = s; vs; vs = vs->next) {
        const redeem_server_conf *conf = ap_get_module_config(vs->module_config, &redeem_module);
        int other = conf->dbd_driver && strcmp(conf->dbd_driver, "pgsql") != 0;
        if ((conf->engine_here && other) || (conf->engine_used && !pgsql_somewhere)) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, vs,
                         RDMNO(0012) "mod_redeem needs mod_dbd's pgsql driver: %s serves the "
                                     "API with %s%s; set DBDriver pgsql there",
                         redeem_config_server_name(pconf, vs),
                         conf->dbd_driver ? "DBDriver " : "no DBDriver",
                         conf->dbd_driver ? conf->dbd_driver : "");
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        if (conf->engine_here && !conf->dbd_driver)
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, vs,
                         RDMNO(0012) "%s serves the API with no DBDriver: its own requests "
                                     "will be answered 503 (set DBDriver pgsql there)",
                         redeem_config_server_name(pconf, vs));
    }
    return OK;
}

static int redeem_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                               server_rec *s)
{
    (void)plog;
    (void)ptemp;
    APR_OPTIONAL_FN_TYPE(ap_dbd_open) *dbd_open = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_open);
    APR_OPTIONAL_FN_TYPE(ap_dbd_close) *dbd_close = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_close);
    int dbd = dbd_open && dbd_close;
    for (server_rec *vs = s; vs; vs = vs->next) {
        redeem_server_conf *conf = ap_get_module_config(vs->module_config, &redeem_module);
        if (conf->engine_used && !dbd) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, vs,
                         RDMNO(0004) "mod_redeem needs mod_dbd: LoadModule dbd_module first");
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        /* config.c reads DBDMax and DBDriver beside mod_dbd: without mod_dbd
         * they would pass unnoticed where httpd used to refuse them. */
        if ((conf->dbd_max >= 0 || conf->dbd_driver) && !dbd) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, vs,
                         RDMNO(0004) "%s is mod_dbd's directive: LoadModule dbd_module first",
                         conf->dbd_max >= 0 ? "DBDMax" : "DBDriver");
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        conf->dbd_open = dbd_open;
        conf->dbd_close = dbd_close;
    }
    int status = check_dbd_driver(pconf, s);
    return status != OK ? status : redeem_config_finish(pconf, s);
}

/* The shared segment, made (or kept across a graceful restart) by the
 * parent before it forks; the first of the two start-up passes only checks. */
static int redeem_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    (void)plog;
    (void)ptemp;
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG)
        return OK;
    int pq = PQlibVersion();
    ap_log_error(
        APLOG_MARK, APLOG_NOTICE, 0, s,
        RDMNO(0008) "mod_redeem/%s (jansson %s, OpenSSL %s, libpq %d.%d, hiredis %d.%d.%d, "
                    "argon2 v%x) loaded",
        REDEEM_VERSION, jansson_version_str(), OpenSSL_version(OPENSSL_VERSION_STRING), pq / 10000,
        pq % 10000, HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH, ARGON2_VERSION_NUMBER);
    return redeem_config_attach_shared(pconf, s);
}

static void redeem_child_init(apr_pool_t *pchild, server_rec *s)
{
    redeem_server_conf *main_conf = ap_get_module_config(s->module_config, &redeem_module);
    redeem_config_child_init(s);
    redeem_redis_t *redis = NULL;
    int threads = 0;
    if (main_conf->store_in_use && main_conf->store_in_use->kind == REDEEM_STORE_REDIS) {
        const redeem_store_setting_t *store = main_conf->store_in_use;
        ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads);
        redis = redeem_redis_create(pchild, store, threads > 0 ? threads : 1, main_conf->shared);
    }
    redeem_pool_gates_t *pool_gates = NULL;
    const char *gates_failure = redeem_pool_gates_child_init(pchild, s, &pool_gates);
    for (server_rec *vs = s; vs; vs = vs->next) {
        redeem_server_conf *conf = ap_get_module_config(vs->module_config, &redeem_module);
        conf->child = apr_pcalloc(pchild, sizeof *conf->child);
        conf->child->started_at = redeem_clock_monotonic();
        conf->child->pool_gates = pool_gates;
        conf->redis = redis;
        const char *why = gates_failure;
        if (!why)
            why = redeem_hashing_child_init(pchild, conf->child, (int)conf->hash_concurrency);
        if (!why)
            why = redeem_user_reads_child_init(pchild, conf->child);
        if (why) {
            conf->child->init_failure = why;
            ap_log_error(APLOG_MARK, APLOG_CRIT, 0, vs,
                         RDMNO(0005) "%s: this child answers every API request 500", why);
        }
    }
}

/* Nor do they need core's translation to a file under DocumentRoot, which
 * fails for a path longer than a file name may be (httpd's own 403, logged
 * as an error, where the API answers 404). Last of the translators: an
 * Alias or a RewriteRule of the operator's comes first (a [PT] one is
 * judged here by the path it leads to; one that maps to a file still leaves
 * the path the API's: map_to_storage takes it, and files inside the API's
 * scope are served under a <Location> with RedeemEngine Off). The <Location>s
 * httpd walked before translating were those of the URI as it came, and a
 * RewriteRule's [PT] may have changed it since: they are walked again for
 * the URI as it is now (as map_to_storage does), and put back. */
static int redeem_translate_name(request_rec *r)
{
    if (r->proxyreq)
        return DECLINED;
    ap_conf_vector_t *walked = r->per_dir_config;
    r->per_dir_config = r->server->lookup_defaults;
    int api = ap_location_walk(r) == OK && redeem_router_path(r);
    r->per_dir_config = walked;
    if (!api)
        return DECLINED;
    r->filename = apr_pstrcat(r->pool, "redeem:", r->uri, NULL);
    return OK;
}

/* API paths map to no file: no directory walk, no .htaccess. The check is
 * made on the URI as translated (a RewriteRule may have moved it out).
 * httpd runs this hook on the server's defaults and walks the <Location>s
 * only after it: walked here, a <Location> that turns the API on or off
 * counts (a file under a <Location> with RedeemEngine Off is served; an API
 * mounted in a <Location> is no directory's). Declining, the defaults are
 * put back for the other modules' hooks (core's directory walk). A request
 * for mod_proxy is its own (its <Proxy> sections are walked in this hook). */
static int redeem_map_to_storage(request_rec *r)
{
    if (r->proxyreq || (r->filename && strncmp(r->filename, "proxy:", 6) == 0))
        return DECLINED;
    if (ap_location_walk(r) == OK && redeem_router_path(r))
        return OK;
    r->per_dir_config = r->server->lookup_defaults;
    return DECLINED;
}

static int redeem_handler(request_rec *r)
{
    return redeem_router_dispatch(r);
}

static void redeem_register_hooks(apr_pool_t *p)
{
    (void)p;
    static const char *const after_dbd[] = {"mod_dbd.c", NULL};
    ap_hook_check_config(redeem_check_config, NULL, after_dbd, APR_HOOK_MIDDLE);
    ap_hook_post_config(redeem_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(redeem_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_translate_name(redeem_translate_name, NULL, NULL, APR_HOOK_LAST);
    ap_hook_map_to_storage(redeem_map_to_storage, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_handler(redeem_handler, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_handler(redeem_metrics_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(redeem_response_error_document, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_log_transaction(redeem_metrics_log_transaction, NULL, NULL, APR_HOOK_MIDDLE);
    APR_OPTIONAL_HOOK(ap, status_hook, redeem_metrics_status, NULL, NULL, APR_HOOK_MIDDLE);
}

/* Every server gets a configuration of its own, merged, even one that sets
 * none of the module's directives: httpd would otherwise hand such a
 * virtual host the main server's configuration itself, and with it the
 * main server's child state (child_init above), though mod_dbd may give
 * that host a database of its own (DBDParams alone): its user reads would
 * have run on the other database, its admin account never been made, and
 * the other database's failure made it answer 503 (t/config/vhost_database.t). */
module AP_MODULE_DECLARE_DATA redeem_module = {
    STANDARD20_MODULE_STUFF,  redeem_config_create_dir, /* RedeemEngine and RedeemBasePath */
    redeem_config_merge_dir,  redeem_config_create,     redeem_config_merge,
    redeem_config_directives, redeem_register_hooks,    AP_MODULE_FLAG_ALWAYS_MERGE};
