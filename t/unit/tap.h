/* TAP output for the C unit tests (prove reads it through t/unit*.t). */
#ifndef REDEEM_TAP_H
#define REDEEM_TAP_H

#include <stdio.h>

static int test_number = 0, failures = 0;

static void ok(int condition, const char *name)
{
    test_number++;
    if (!condition)
        failures++;
    printf("%sok %d - %s\n", condition ? "" : "not ", test_number, name);
}

#endif
