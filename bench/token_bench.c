/* Microseconds of one redeem_token_verify of a valid token, keyed at each
 * check and prepared once (redeem_token_prepare, as the module does). Not
 * part of make bench (its figures are ratios under load); a tool for
 * changes to core/token.c:
 *
 *   gcc -O2 -Imod_redeem $(apr-1-config --cppflags --includes) \
 *     -o build/token_bench bench/token_bench.c mod_redeem/core/token.c \
 *     mod_redeem/core/text.c mod_redeem/core/json_out.c -lapr-1 -ljansson -lcrypto
 *   build/token_bench [ITERATIONS]
 */
#include "core/token.h"

#include <apr_general.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double time_verify(const redeem_token_config_t *cfg, const char *token, int64_t now, int n)
{
    redeem_token_holder_t holder;
    double start = seconds();
    for (int i = 0; i < n; i++)
        if (redeem_token_verify(cfg, token, strlen(token), now, &holder) != NULL) {
            fprintf(stderr, "token_bench: the token did not verify\n");
            exit(1);
        }
    return (seconds() - start) * 1e6 / n;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 200000;
    apr_pool_t *pool;
    apr_initialize();
    apr_pool_create(&pool, NULL);
    const char *secret = "token-bench-secret-0123456789abcdef-0123";
    redeem_token_config_t plain = {
        (const unsigned char *)secret, strlen(secret), NULL, NULL, 3600, 0, NULL, 0};
    redeem_token_config_t prepared = plain;
    if (n < 1 || redeem_token_prepare(pool, &prepared) != NULL)
        return 1;
    redeem_token_subject_t user = {1234567, "bench-user@example.test", 0, 0};
    int64_t now = (int64_t)time(NULL);
    char *token = NULL;
    if (redeem_token_issue(pool, &plain, &user, now, &token) != NULL)
        return 1;
    /* In turn, three times each: the machine is noisy. */
    for (int round = 0; round < 3; round++)
        printf("keyed at each check %.2f us, prepared %.2f us\n",
               time_verify(&plain, token, now, n), time_verify(&prepared, token, now, n));
    apr_pool_destroy(pool);
    apr_terminate();
    return 0;
}
