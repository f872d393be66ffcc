/* What a unit test of an httpd/ file (included, not linked) links against
 * and never needs: the module record, httpd's request log call, and, unless
 * the test includes httpd/failure.c (REDEEM_STUBS_HAVE_FAILURES), the
 * failure values and the warnings' throttle (every warning told). And a
 * request of a server whose configuration is the test's own. */
#ifndef REDEEM_HTTPD_STUBS_H
#define REDEEM_HTTPD_STUBS_H

#include <apr_general.h>
#include <stdio.h>
#include <stdlib.h>

module AP_MODULE_DECLARE_DATA redeem_module;

#ifndef REDEEM_STUBS_HAVE_FAILURES
const redeem_failure_t redeem_failure_internal = {HTTP_INTERNAL_SERVER_ERROR, "internal", 0};
const redeem_failure_t redeem_failure_unavailable = {HTTP_SERVICE_UNAVAILABLE, "unavailable", 5};
int redeem_log_level_throttled(request_rec *r, redeem_log_throttle_t *throttle, int level,
                               const char **note)
{
    (void)r, (void)throttle;
    *note = "";
    return level;
}
#endif

AP_DECLARE(void)
ap_log_rerror_(const char *file, int line, int module_index, int level, apr_status_t status,
               const request_rec *r, const char *fmt, ...)
{
    (void)file, (void)line, (void)module_index, (void)level, (void)status, (void)r, (void)fmt;
}

/* APR started and a pool made, or the test bailed out. */
static inline apr_pool_t *stub_pool(void)
{
    apr_pool_t *p;
    if (apr_initialize() != APR_SUCCESS || apr_pool_create(&p, NULL) != APR_SUCCESS) {
        printf("Bail out! APR\n");
        exit(1);
    }
    return p;
}

/* A request from pool p of a server whose only module configuration is
 * conf (redeem_conf(r) finds it: the module at index 0). */
static inline request_rec *stub_request(apr_pool_t *p, redeem_server_conf *conf)
{
    void **module_config = apr_pcalloc(p, sizeof(void *));
    module_config[0] = conf;
    redeem_module.module_index = 0;
    server_rec *s = apr_pcalloc(p, sizeof *s);
    s->module_config = (struct ap_conf_vector_t *)module_config;
    request_rec *r = apr_pcalloc(p, sizeof *r);
    r->pool = p;
    r->server = s;
    return r;
}

#endif
