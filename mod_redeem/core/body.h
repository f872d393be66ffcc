/* Request bodies: JSON objects of known fields. No httpd headers: the
 * fuzzers call it. */
#ifndef REDEEM_BODY_H
#define REDEEM_BODY_H

#include <apr_pools.h>
#include <jansson.h>
#include <stddef.h>

typedef struct {
    const char *name;
    json_type type; /* JSON_INTEGER, JSON_STRING, ... */
    int required;
} redeem_body_field_t;

/* Parses data[0..len) as a JSON object holding only these fields (a
 * NULL-named entry ends the list), of their types, the required ones
 * present: duplicate keys, \u0000, invalid UTF-8 refused. NULL with *body
 * (a new reference), or the reason for a 400 (valid UTF-8, from p). */
const char *redeem_body_parse(apr_pool_t *p, const char *data, size_t len,
                              const redeem_body_field_t *fields, json_t **body);

#endif
