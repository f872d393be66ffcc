/* Query strings. No httpd headers: the fuzzers call it. */
#ifndef REDEEM_QUERY_H
#define REDEEM_QUERY_H

#include <apr_pools.h>

/* The value of parameter name in args (r->args: the raw query string), '+'
 * read as a space and %XX decoded; NULL when absent. Sets *bad when the
 * parameter repeats or its value has a bad escape or decodes to a NUL or a
 * '/' (as ap_unescape_url refuses them). Names are decoded the same way before
 * they are compared; a name that does not decode is no parameter of ours. */
const char *redeem_query_param(apr_pool_t *p, const char *args, const char *name, int *bad);

#endif
