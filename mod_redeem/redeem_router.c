/* Which handler serves a request: the endpoint table, 404 and 405. */
#include "redeem_private.h"

typedef struct {
    const char *path; /* a trailing '/' matches one more path segment */
    int method;       /* M_GET also serves HEAD */
    int (*handler)(request_rec *r);
} redeem_route_t;

static const redeem_route_t routes[] = {
    {"/api/register", M_POST, redeem_handle_register},
    {"/api/login", M_POST, redeem_handle_login},
    {"/api/profile", M_GET, redeem_handle_profile},
    {"/api/users", M_GET, redeem_handle_users},
    {"/api/health", M_GET, redeem_handle_health},
    {"/api/subscription", M_GET, redeem_handle_own_subscription},
    {"/admin/generate-codes", M_POST, redeem_handle_generate_codes},
    {"/admin/codes", M_GET, redeem_handle_list_codes},
    {"/redeem", M_POST, redeem_handle_redeem},
    {"/subscription/", M_GET, redeem_handle_subscription_of},
    {NULL, 0, NULL},
};

int redeem_claims_uri(request_rec *r)
{
    redeem_server_conf *conf = redeem_conf(r);
    if (!conf || conf->engine != 1 || !r->uri || r->uri[0] != '/')
        return 0;
    size_t base_len = strlen(conf->base_path);
    return strncmp(r->uri, conf->base_path, base_len) == 0 &&
           (r->uri[base_len] == '/' || r->uri[base_len] == '\0');
}

static int path_matches(const char *pattern, const char *path)
{
    size_t len = strlen(pattern);
    if (pattern[len - 1] != '/')
        return strcmp(pattern, path) == 0;
    /* "/subscription/" matches "/subscription/42", not "/subscription/" or "/subscription/1/x". */
    return strncmp(pattern, path, len) == 0 && path[len] != '\0' && !strchr(path + len, '/');
}

int redeem_dispatch(request_rec *r)
{
    const char *path = r->uri + strlen(redeem_conf(r)->base_path);
    for (const redeem_route_t *route = routes; route->path; route++) {
        if (!path_matches(route->path, path))
            continue;
        if (r->method_number != route->method) {
            ap_discard_request_body(r);
            apr_table_setn(r->err_headers_out, "Allow",
                           route->method == M_GET ? "GET, HEAD"
                                                  : ap_method_name_of(r->pool, route->method));
            return redeem_send_error(r, HTTP_METHOD_NOT_ALLOWED, "Method not allowed");
        }
        if (route->method == M_GET && ap_discard_request_body(r) != OK)
            return redeem_send_error(r, HTTP_BAD_REQUEST, "Malformed request body");
        return route->handler(r);
    }
    ap_discard_request_body(r);
    return redeem_send_error(r, HTTP_NOT_FOUND, "Not found");
}
