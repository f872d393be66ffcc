#include "core/timestamp.h"

#include <string.h>

static int digits(const char *s, int n, int *out)
{
    int value = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        value = value * 10 + (s[i] - '0');
    }
    *out = value;
    return 0;
}

/* Days from 1970-01-01 to a proleptic Gregorian date. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

int redeem_timestamp_parse(const char *s, int64_t *usec)
{
    int year, month, day, hour, minute, second;
    size_t len = strlen(s);
    if (len < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
        s[16] != ':' || digits(s, 4, &year) || digits(s + 5, 2, &month) || digits(s + 8, 2, &day) ||
        digits(s + 11, 2, &hour) || digits(s + 14, 2, &minute) || digits(s + 17, 2, &second))
        return -1;
    if (year < 1 || month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) ||
        hour > 23 || minute > 59 || second > 59)
        return -1;

    const char *p = s + 19;
    int64_t fraction = 0;
    if (*p == '.') {
        int n = 0;
        p++;
        while (p[n] >= '0' && p[n] <= '9')
            n++;
        if (n == 0 || n > 9)
            return -1;
        for (int i = 0; i < 6; i++)
            fraction = fraction * 10 + (i < n ? p[i] - '0' : 0);
        p += n;
    }
    int64_t offset = 0;
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
        offset = 0;
    else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int oh, om;
        /* PostgreSQL takes offsets up to 15:59 (every zone in use is within
         * 14:00); beyond that it would refuse the value we accepted. */
        if (digits(p + 1, 2, &oh) || digits(p + 4, 2, &om) || oh > 15 || om > 59)
            return -1;
        offset = (*p == '+' ? 1 : -1) * (int64_t)(oh * 3600 + om * 60);
    }
    else
        return -1;

    int64_t seconds =
        days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset;
    /* The instant itself within the years 1 to 9999 UTC: the API writes
     * four-digit years (9999-12-31T23:59:59-15:59 is in the year 10000). */
    if (seconds < days_from_civil(1, 1, 1) * 86400 ||
        seconds >= days_from_civil(10000, 1, 1) * 86400)
        return -1;
    *usec = seconds * 1000000 + fraction;
    return 0;
}
