/* Which handler serves a request: the endpoint table, 404 and 405, the
 * authentication each route asks for, and the one place failures are
 * answered. */
#include "httpd/private.h"

#include <http_core.h>

#define NO_LIMIT (-1)

typedef struct {
    const char *path; /* a trailing '/' matches one more path segment */
    int method;       /* M_GET also serves HEAD */
    redeem_access_e access;
    redeem_handler_fn *handler;
    /* A scope charged per client before anything else (with a caller_limit:
     * right after the token check, in one step with it), or NO_LIMIT. */
    int client_limit;
    /* A scope charged per authenticated caller, or NO_LIMIT; only on routes
     * whose authentication needs no database (REDEEM_ACCESS_TOKEN). */
    int caller_limit;
    /* What a request refused by caller_limit or client_limit after its
     * token check answers; NULL: the limit's 429. */
    redeem_limited_fn *limited;
} redeem_route_t;

/* (POST /api/login also charges login-email, once its body names the email.) */
static const redeem_route_t routes[] = {
    {"/api/register", M_POST, REDEEM_ACCESS_PUBLIC, redeem_handle_register,
     REDEEM_SCOPE_REGISTER_IP, NO_LIMIT, NULL},
    {"/api/login", M_POST, REDEEM_ACCESS_PUBLIC, redeem_handle_login, REDEEM_SCOPE_LOGIN_IP,
     NO_LIMIT, NULL},
    {"/api/profile", M_GET, REDEEM_ACCESS_USER, redeem_handle_profile, NO_LIMIT, NO_LIMIT, NULL},
    {"/api/users", M_GET, REDEEM_ACCESS_ADMIN, redeem_handle_users, NO_LIMIT, NO_LIMIT, NULL},
    {"/api/health", M_GET, REDEEM_ACCESS_PUBLIC, redeem_handle_health, NO_LIMIT, NO_LIMIT, NULL},
    {"/api/subscription", M_GET, REDEEM_ACCESS_USER, redeem_handle_own_subscription, NO_LIMIT,
     NO_LIMIT, NULL},
    {"/admin/generate-codes", M_POST, REDEEM_ACCESS_ADMIN, redeem_handle_generate_codes, NO_LIMIT,
     NO_LIMIT, NULL},
    {"/admin/codes", M_GET, REDEEM_ACCESS_ADMIN, redeem_handle_list_codes, NO_LIMIT, NO_LIMIT,
     NULL},
    /* The redemption statement checks the user itself: one round trip. */
    {"/redeem", M_POST, REDEEM_ACCESS_TOKEN, redeem_handle_redeem, REDEEM_SCOPE_REDEEM_IP,
     REDEEM_SCOPE_REDEEM_USER, redeem_redeem_limited},
    {"/subscription/", M_GET, REDEEM_ACCESS_USER, redeem_handle_subscription_of, NO_LIMIT, NO_LIMIT,
     NULL},
    {NULL, 0, REDEEM_ACCESS_PUBLIC, NULL, NO_LIMIT, NO_LIMIT, NULL},
};

_Static_assert(sizeof routes / sizeof *routes == REDEEM_ENDPOINTS,
               "one metrics endpoint per route, and one for unmatched paths");

void redeem_router_endpoint(int i, const char **method, const char **path)
{
    *method = routes[i].method == M_GET ? "GET" : "POST";
    *path = routes[i].path;
}

const char *redeem_router_path(request_rec *r)
{
    const redeem_dir_conf *conf = redeem_dir_conf_of(r);
    if (!conf || conf->engine != 1 || !r->uri || r->uri[0] != '/')
        return NULL;
    const char *base = conf->base_path ? conf->base_path : conf->location ? conf->location : "";
    size_t base_len = strlen(base);
    if (strncmp(r->uri, base, base_len) != 0 || (r->uri[base_len] != '/' && r->uri[base_len]))
        return NULL;
    return r->uri + base_len;
}

static int path_matches(const char *pattern, const char *path)
{
    size_t len = strlen(pattern);
    if (pattern[len - 1] != '/')
        return strcmp(pattern, path) == 0;
    /* "/subscription/" matches "/subscription/42", not "/subscription/" or "/subscription/1/x". */
    return strncmp(pattern, path, len) == 0 && path[len] != '\0' && !strchr(path + len, '/');
}

static const redeem_failure_t *route(request_rec *r, const char *path)
{
    const redeem_failure_t *failure = NULL;
    const redeem_route_t *found = routes;
    while (found->path && !path_matches(found->path, path))
        found++;
    redeem_metrics_route(r, found->path ? (int)(found - routes) : -1);
    /* A 404 or 405 needs no body: redeem_router_dispatch drops it if all
     * of it is here, else closes the connection after the answer (a stalled
     * body is not waited for). */
    if (!found->path)
        return redeem_failure(r->pool, HTTP_NOT_FOUND, "Not found");
    if (r->method_number != found->method) {
        apr_table_setn(r->err_headers_out, "Allow",
                       found->method == M_GET ? "GET, HEAD"
                                              : ap_method_name_of(r->pool, found->method));
        return redeem_failure(r->pool, HTTP_METHOD_NOT_ALLOWED, "Method not allowed");
    }
    /* A GET's body is read and dropped before anything else is done, under
     * the cap of any body (it was bounded by LimitRequestBody alone, 1 GiB
     * by default where the operator sets none). A failure of it (413: the
     * connection is then closed) is answered after the caller's checks,
     * which come first (401, 403); one httpd answered itself at once. */
    const redeem_failure_t *body_failure =
        found->method == M_GET ? redeem_request_drop_body(r) : NULL;
    if (body_failure == &redeem_failure_answered)
        return body_failure;
    const char *init_failure = redeem_conf(r)->child->init_failure;
    if (init_failure) {
        ap_discard_request_body(r);
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      RDMNO(0011) "this child could not start its state (%s): answering 500",
                      init_failure);
        return &redeem_failure_internal;
    }

    /* Limits before any work: a refused request costs no database access. A
     * route limited per caller too authenticates first (a token, no database)
     * so that both its limits take one step of the store (one Redis round
     * trip); a request that fails authentication is still charged to its
     * client. */
    int per_caller = found->caller_limit != NO_LIMIT;
    if (found->client_limit != NO_LIMIT && !per_caller &&
        (failure = redeem_ratelimit_charge(r, found->client_limit, NULL)))
        return failure;
    redeem_call_t *call = apr_pcalloc(r->pool, sizeof *call);
    call->r = r;
    call->conf = redeem_conf(r);
    if (found->access != REDEEM_ACCESS_PUBLIC &&
        (failure = redeem_auth_caller(call, found->access))) {
        const redeem_failure_t *limited = NULL;
        if (per_caller && found->client_limit != NO_LIMIT)
            limited = redeem_ratelimit_charge(r, found->client_limit, NULL);
        return limited ? limited : failure;
    }
    if (body_failure)
        return body_failure;
    if (per_caller) {
        redeem_charge_t charges[REDEEM_MAX_CHARGES];
        int n = 0;
        if (found->client_limit != NO_LIMIT)
            charges[n++] = (redeem_charge_t){found->client_limit, NULL};
        /* Per account and token generation: a revoked token, whose account
         * is checked only later (REDEEM_ACCESS_TOKEN), must not spend the
         * budget of the account's new tokens. */
        charges[n++] = (redeem_charge_t){
            found->caller_limit, apr_psprintf(r->pool, "%s/%" APR_INT64_T_FMT, call->caller.id_text,
                                              call->caller.token_generation)};
        if ((failure = redeem_ratelimit_charge_all(r, charges, n)))
            return found->limited ? found->limited(call, failure) : failure;
    }
    return found->handler(call);
}

int redeem_router_dispatch(request_rec *r)
{
    const char *path = redeem_router_path(r);
    /* A SetHandler of the operator's for a path inside the API's scope (say
     * server-status, or redeem-metrics) takes precedence, and so does a
     * ProxyPass (or a RewriteRule's [P]) there. */
    const core_dir_config *core = ap_get_core_module_config(r->per_dir_config);
    if (!path || r->proxyreq || (core->expr_handler && strcmp(r->handler, "redeem") != 0))
        return DECLINED;
    /* Every answer is one whole JSON document: a Range request would get a
     * 206 of a piece of it (or httpd's own 416), which no client can parse. */
    ap_remove_output_filter_byhandle(r->output_filters, "BYTERANGE");
    const redeem_failure_t *failure = route(r, path);
    if (failure) {
        redeem_request_forgo_body(r);
        redeem_response_failure(r, failure);
    }
    return OK;
}
