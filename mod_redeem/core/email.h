/* Email address policy of the API. No httpd headers: unit tests call it. */
#ifndef REDEEM_EMAIL_H
#define REDEEM_EMAIL_H

#include <apr_pools.h>
#include <stddef.h>

#define REDEEM_EMAIL_MAX_CHARS 254

/* Trims `in` and lowercases its ASCII letters into *normalized, allocated
 * from p. Returns NULL when the address is acceptable, else the reason, fit
 * for a 400 response: valid UTF-8, one '@', a local part of 1 to 64
 * characters (code points), a dotted domain, at most 254 characters, no
 * space, control, invisible, bidirectional-control, private-use or
 * non-character code point, nothing RFC 5322 would need quoted. Case beyond
 * ASCII and the Unicode form are folded by the database (email_key, sql/003). */
const char *redeem_email_normalize(apr_pool_t *p, const char *in, size_t len, char **normalized);

#endif
