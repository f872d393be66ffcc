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

/* The date of a day counted from 1970-01-01 (days_from_civil's inverse). */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
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
    /* A second of 60 is a leap second (RFC 3339 5.7), which the instants
     * here cannot hold: it is read as the next second, as PostgreSQL and
     * timegm do. Which minutes had one is not checked. */
    if (year < 1 || month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) ||
        hour > 23 || minute > 59 || second > 60)
        return -1;

    const char *p = s + 19;
    int64_t fraction = 0;
    if (*p == '.') {
        int n = 0;
        p++;
        while (p[n] >= '0' && p[n] <= '9')
            n++;
        /* As many digits as sent (RFC 3339: 1*DIGIT; the body's cap bounds
         * them): the first six kept, the rest cut. */
        if (n == 0)
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
        /* Any offset RFC 3339 allows (time-numoffset: hours 00-23): the
         * instant goes to PostgreSQL in UTC (redeem_timestamp_format), so
         * its own limit of 15:59 does not apply. */
        if (digits(p + 1, 2, &oh) || digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return -1;
        offset = (*p == '+' ? 1 : -1) * (int64_t)(oh * 3600 + om * 60);
    }
    else
        return -1;

    int64_t seconds =
        days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset;
    /* The instant itself within the years 1 to 9999 UTC: the API writes
     * four-digit years (9999-12-31T23:59:59-23:59 is in the year 10000). */
    if (seconds < days_from_civil(1, 1, 1) * 86400 ||
        seconds >= days_from_civil(10000, 1, 1) * 86400)
        return -1;
    *usec = seconds * 1000000 + fraction;
    return 0;
}

int redeem_timestamp_format(int64_t usec, char *out)
{
    if (usec < days_from_civil(1, 1, 1) * 86400 * INT64_C(1000000) ||
        usec >= days_from_civil(10000, 1, 1) * 86400 * INT64_C(1000000))
        return -1;
    /* Floor division: instants before 1970 are negative. */
    int64_t seconds = usec >= 0 ? usec / 1000000 : -((-usec + 999999) / 1000000);
    int64_t fraction = usec - seconds * 1000000;
    int64_t days = seconds >= 0 ? seconds / 86400 : -((-seconds + 86399) / 86400);
    int64_t of_day = seconds - days * 86400, year;
    int month, day;
    civil_from_days(days, &year, &month, &day);
    int64_t fields[] = {year, month, day, of_day / 3600, of_day / 60 % 60, of_day % 60, fraction};
    static const int widths[] = {4, 2, 2, 2, 2, 2, 6};
    static const char after[] = "--T::.Z";
    char *p = out;
    for (int i = 0; i < 7; i++) {
        for (int w = widths[i] - 1; w >= 0; w--, fields[i] /= 10)
            p[w] = (char)('0' + fields[i] % 10);
        p += widths[i];
        *p++ = after[i];
    }
    *p = '\0';
    return 0;
}
