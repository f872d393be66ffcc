/* RFC 3339 timestamps. No httpd headers: unit tests call it. */
#ifndef REDEEM_TIMESTAMP_H
#define REDEEM_TIMESTAMP_H

#include <stdint.h>

/* Parses YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM) strictly (a 't' or
 * 'z' is accepted for 'T'/'Z' as RFC 3339 allows), offsets within +-23:59, a
 * leap second (SS 60) read as the next second, the instant in the years 1 to
 * 9999 UTC. Returns 0 and the instant in microseconds since the Unix epoch,
 * or -1. */
int redeem_timestamp_parse(const char *text, int64_t *usec);

/* The API's form of an instant: YYYY-MM-DDTHH:MM:SS.ffffffZ. */
#define REDEEM_TIMESTAMP_LEN 27

/* Writes `usec` (an instant redeem_timestamp_parse accepts) in the API's
 * form into out (REDEEM_TIMESTAMP_LEN + 1 bytes). Returns 0, or -1 for an
 * instant outside the years 1 to 9999 UTC. */
int redeem_timestamp_format(int64_t usec, char *out);

#endif
