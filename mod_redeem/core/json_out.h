/* JSON objects written straight into pool memory, for the responses a
 * request makes most (profile, subscription, a redemption): jansson's
 * json_pack and json_dumps allocate a value, a hash table and a string for
 * each field, a tenth of such a request's time in httpd. The text is what
 * json_dumps(JSON_COMPACT) writes of the same fields in the same order
 * (unit tests compare the two), and a string that is not valid UTF-8 fails
 * the object, as json_pack refuses it. No httpd headers. */
#ifndef REDEEM_JSON_OUT_H
#define REDEEM_JSON_OUT_H

#include <apr_pools.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    apr_pool_t *pool;
    char *text;
    size_t len, cap;
    int failed;     /* out of room or an invalid string: no text at the end */
    int need_comma; /* a member came before in the innermost object */
} redeem_json_out_t;

/* Starts the outermost object. */
void redeem_json_out_begin(redeem_json_out_t *out, apr_pool_t *pool);
/* Members of the object open now. A string that must be there (json_pack's
 * "s") fails the object when NULL; one that may be null ("s?") writes null. */
void redeem_json_out_string(redeem_json_out_t *out, const char *key, const char *value);
void redeem_json_out_string_or_null(redeem_json_out_t *out, const char *key, const char *value);
void redeem_json_out_int(redeem_json_out_t *out, const char *key, int64_t value);
void redeem_json_out_bool(redeem_json_out_t *out, const char *key, int value);
/* A member whose value is an object: its members follow, up to _close. */
void redeem_json_out_open(redeem_json_out_t *out, const char *key);
void redeem_json_out_close(redeem_json_out_t *out);
/* Closes the outermost object: its text (NUL-terminated, in the pool) and
 * length, or NULL when a string was not valid UTF-8, or missing. */
const char *redeem_json_out_end(redeem_json_out_t *out, size_t *len);

#endif
