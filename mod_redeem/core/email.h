/* Email address policy of the API. No httpd headers: unit tests call it. */
#ifndef REDEEM_EMAIL_H
#define REDEEM_EMAIL_H

#include <apr_pools.h>
#include <stddef.h>

#define REDEEM_EMAIL_MAX_CHARS 254

/* Trims and lowercases `in` (ASCII case only) into *normalized, allocated from
 * p. Returns NULL when the address is acceptable, else the reason, fit for a
 * 400 response. `in` must be valid UTF-8 without NUL (the JSON parser sees to
 * both). */
const char *redeem_email_normalize(apr_pool_t *p, const char *in, size_t len, char **normalized);

#endif
