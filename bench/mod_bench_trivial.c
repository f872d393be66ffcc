/* mod_bench_trivial: the ceiling of `make bench` for the API's cheap GET
 * endpoints. It answers GET /bench/trivial with a fixed small JSON body, in
 * the same httpd, MPM, connection handling and access log as mod_redeem,
 * and does nothing else: no database, no token, no JSON library.
 *
 * Its hooks run before mod_redeem's (which claims every URI under its base
 * path), and like mod_redeem it skips the filesystem walk. Built by
 * bench/run.sh into build/bench/, never installed. */
#include "httpd.h"
#include "http_config.h"
#include "http_protocol.h"
#include "http_request.h"

#include <apr_strings.h>

#include <string.h>

#define TRIVIAL_URI "/bench/trivial"
#define TRIVIAL_MARK "bench-trivial:"

static const char trivial_body[] = "{\"status\":\"ok\",\"message\":\"trivial\"}";

static int trivial_marked(request_rec *r)
{
    return r->filename && strcmp(r->filename, TRIVIAL_MARK) == 0;
}

static int trivial_translate_name(request_rec *r)
{
    if (strcmp(r->uri, TRIVIAL_URI) != 0)
        return DECLINED;
    r->filename = apr_pstrdup(r->pool, TRIVIAL_MARK);
    return OK;
}

static int trivial_map_to_storage(request_rec *r)
{
    return trivial_marked(r) ? OK : DECLINED;
}

static int trivial_handler(request_rec *r)
{
    if (!trivial_marked(r))
        return DECLINED;
    if (r->method_number != M_GET)
        return HTTP_METHOD_NOT_ALLOWED;
    ap_set_content_type(r, "application/json");
    ap_set_content_length(r, sizeof trivial_body - 1);
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (!r->header_only)
        ap_rwrite(trivial_body, sizeof trivial_body - 1, r);
    return OK;
}

static void trivial_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_translate_name(trivial_translate_name, NULL, NULL, APR_HOOK_REALLY_FIRST);
    ap_hook_map_to_storage(trivial_map_to_storage, NULL, NULL, APR_HOOK_REALLY_FIRST);
    ap_hook_handler(trivial_handler, NULL, NULL, APR_HOOK_REALLY_FIRST);
}

module AP_MODULE_DECLARE_DATA bench_trivial_module = {
    STANDARD20_MODULE_STUFF,
    NULL, /* per-directory config */
    NULL, /* merge per-directory config */
    NULL, /* per-server config */
    NULL, /* merge per-server config */
    NULL, /* directives */
    trivial_register_hooks,
#if AP_MODULE_MAGIC_AT_LEAST(AP_MODULE_FLAGS_MMN_MAJOR, AP_MODULE_FLAGS_MMN_MINOR)
    0, /* flags */
#endif
};
