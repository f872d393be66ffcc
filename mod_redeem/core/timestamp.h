/* RFC 3339 timestamps. No httpd headers: unit tests call it. */
#ifndef REDEEM_TIMESTAMP_H
#define REDEEM_TIMESTAMP_H

#include <stdint.h>

/* Parses YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM) strictly (a 't' or
 * 'z' is accepted for 'T'/'Z' as RFC 3339 allows), offsets within +-15:59, the instant in
 * the years 1 to 9999 UTC. Returns 0 and the instant in microseconds since the Unix epoch,
 * or -1. */
int redeem_timestamp_parse(const char *text, int64_t *usec);

#endif
