/* libFuzzer target: RFC 3339 timestamps (redeem_timestamp_parse; the
 * expires_at of POST /admin/generate-codes).
 *
 * Input: the text (a C string, as json_string_value hands it over).
 *
 * Invariants: the parser agrees with an independent oracle (the grammar
 * YYYY-MM-DD[Tt]HH:MM:SS[.digits](Z|z|+HH:MM|-HH:MM) checked by hand,
 * offsets up to 23:59 as RFC 3339 allows, a second of 60 (a leap second)
 * read as the next one, the instant from glibc's timegm (which folds a
 * second of 60 so) and within the years 1 to 9999 UTC), both on whether
 * the text is accepted and on the microseconds; an accepted instant
 * formatted back as YYYY-MM-DDTHH:MM:SS.ffffffZ parses to itself, and
 * redeem_timestamp_format (what is sent to PostgreSQL, in UTC: so its own
 * limit on offsets, 15:59, does not apply) writes it exactly so.
 *
 * (Item offset-range, fixed: offsets of 16:00 to 23:59 were first refused,
 * when the text went to PostgreSQL as it came; they are now accepted, and
 * checked like any other. Item fraction-digits, fixed: a fraction of
 * more than nine digits was refused; RFC 3339 sets no bound.) */
#include "fuzz_common.h"

#include "core/timestamp.h"

#include <time.h>

static int two(const char *s, int *out)
{
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
        return 0;
    *out = (s[0] - '0') * 10 + (s[1] - '0');
    return 1;
}

static int leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* 1 and *usec when s is a timestamp the documented grammar and ranges accept. */
static int oracle(const char *s, int64_t *usec)
{
    size_t len = strlen(s);
    int c1, c2, month, day, hour, minute, second;
    if (len < 20 || !two(s, &c1) || !two(s + 2, &c2) || s[4] != '-' || !two(s + 5, &month) ||
        s[7] != '-' || !two(s + 8, &day) || (s[10] != 'T' && s[10] != 't') || !two(s + 11, &hour) ||
        s[13] != ':' || !two(s + 14, &minute) || s[16] != ':' || !two(s + 17, &second))
        return 0;
    int year = c1 * 100 + c2;
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (year < 1 || month < 1 || month > 12 || day < 1 ||
        day > mdays[month - 1] + (month == 2 && leap(year)) || hour > 23 || minute > 59 ||
        second > 60)
        return 0;
    size_t at = 19;
    int64_t micro = 0;
    if (s[at] == '.') {
        size_t n = 0;
        while (s[at + 1 + n] >= '0' && s[at + 1 + n] <= '9')
            n++;
        if (n < 1)
            return 0;
        for (size_t i = 0; i < 6; i++)
            micro = micro * 10 + (i < n ? s[at + 1 + i] - '0' : 0);
        at += 1 + n;
    }
    int64_t offset;
    if ((s[at] == 'Z' || s[at] == 'z') && s[at + 1] == '\0')
        offset = 0;
    else if ((s[at] == '+' || s[at] == '-') && len - at == 6 && s[at + 3] == ':') {
        int oh, om;
        if (!two(s + at + 1, &oh) || !two(s + at + 4, &om) || om > 59 || oh > 23)
            return 0;
        offset = (s[at] == '+' ? 1 : -1) * (int64_t)(oh * 3600 + om * 60);
    }
    else
        return 0;

    struct tm tm = {0};
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = minute;
    tm.tm_sec = second;
    int64_t t = (int64_t)timegm(&tm) - offset;
    /* The instant itself in the years 1 to 9999 UTC (four-digit years out). */
    struct tm first = {.tm_year = 1 - 1900, .tm_mday = 1},
              past = {.tm_year = 10000 - 1900, .tm_mday = 1};
    if (t < (int64_t)timegm(&first) || t >= (int64_t)timegm(&past))
        return 0;
    *usec = t * 1000000 + micro;
    return 1;
}

/* The instant as YYYY-MM-DDTHH:MM:SS.ffffffZ; 0 when its year is out of 1..9999. */
static int format_utc(int64_t usec, char out[40])
{
    int64_t sec = usec >= 0 ? usec / 1000000 : -((-usec + 999999) / 1000000);
    int64_t micro = usec - sec * 1000000;
    time_t t = (time_t)sec;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 < 1 || tm.tm_year + 1900 > 9999)
        return 0;
    snprintf(out, 40, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)micro);
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstring(data, size);
    int64_t got = 0, want = 0;
    int accepted = redeem_timestamp_parse(text, &got) == 0;
    int valid = oracle(text, &want);
    FUZZ_CHECK(!valid || accepted, "refused a timestamp the grammar accepts");
    FUZZ_CHECK(!accepted || valid, "accepted a timestamp the grammar refuses");
    if (accepted)
        FUZZ_CHECK(got == want, "timestamp instant differs from timegm");
    if (accepted) {
        char utc[40];
        int64_t again;
        char ours[REDEEM_TIMESTAMP_LEN + 1];
        FUZZ_CHECK(format_utc(got, utc), "an accepted instant outside the years 1 to 9999");
        FUZZ_CHECK(redeem_timestamp_parse(utc, &again) == 0 && again == got,
                   "formatted instant does not parse back to itself");
        FUZZ_CHECK(redeem_timestamp_format(got, ours) == 0 && strcmp(ours, utc) == 0,
                   "redeem_timestamp_format differs from gmtime");
    }
    free(text);
    return 0;
}
