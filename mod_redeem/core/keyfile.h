/* Secret and key files: read, trimmed of a trailing newline, decoded, and
 * judged for who else may read them. APR only, no httpd headers. */
#ifndef REDEEM_KEYFILE_H
#define REDEEM_KEYFILE_H

#include <apr_pools.h>
#include <stddef.h>

#define REDEEM_KEYFILE_MAX_BYTES 4096

typedef struct {
    const char *text; /* the content without a trailing newline, NUL-terminated */
    size_t text_len;
    const unsigned char *bytes; /* the key: text hex-decoded when it is hex, else text */
    size_t len;
    const char *warning; /* set when the file is open to others than its reader */
} redeem_keyfile_t;

/* Reads path; `what` names it in messages (the directive). NULL on success,
 * else the reason. */
const char *redeem_keyfile_read(apr_pool_t *p, const char *path, const char *what,
                                redeem_keyfile_t *key);

#endif
