/* argon2_bench: the ceiling of POST /api/login in `make bench`.
 *
 *   argon2_bench verify THREADS SECONDS MEMORY_KIB ITERATIONS PARALLELISM
 *     THREADS threads each verify one password against an argon2id hash of
 *     that cost, with libargon2's argon2id_verify, for SECONDS; prints
 *     "verifications=N seconds=S rate=R" (R = verifications per second).
 *     Each thread verifies once before the clock starts: mod_redeem keeps a
 *     block of argon2 memory per hashing slot and reuses it, and here the
 *     first verification of a thread pays for mapping its memory, which
 *     libc's allocator then reuses for the thread's next ones.
 *   argon2_bench hash MEMORY_KIB ITERATIONS PARALLELISM PASSWORD
 *     prints the encoded argon2id hash of PASSWORD (random 16-byte salt),
 *     the form stored in users.password_hash. */
#define _GNU_SOURCE
#include <argon2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define PASSWORD "BenchPassw0rd1"

static char *encode(unsigned m, unsigned t, unsigned p, const char *password)
{
    unsigned char salt[16];
    if (getrandom(salt, sizeof salt, 0) != (ssize_t)sizeof salt)
        return NULL;
    size_t len = argon2_encodedlen(t, m, p, sizeof salt, 32, Argon2_id);
    char *out = malloc(len);
    int rc =
        argon2id_hash_encoded(t, m, p, password, strlen(password), salt, sizeof salt, 32, out, len);
    if (rc != ARGON2_OK) {
        fprintf(stderr, "argon2_bench: %s\n", argon2_error_message(rc));
        return NULL;
    }
    return out;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

typedef struct {
    const char *encoded;
    double deadline;
    long done;
    int failed;
} worker_t;

/* warmed: every thread has verified once; started: the deadlines are set. */
static pthread_barrier_t warmed, started;

static void *work(void *arg)
{
    worker_t *w = arg;
    if (argon2id_verify(w->encoded, PASSWORD, strlen(PASSWORD)) != ARGON2_OK)
        w->failed = 1;
    pthread_barrier_wait(&warmed);
    pthread_barrier_wait(&started);
    while (!w->failed && now_s() < w->deadline) {
        if (argon2id_verify(w->encoded, PASSWORD, strlen(PASSWORD)) != ARGON2_OK) {
            w->failed = 1;
            break;
        }
        w->done++;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "hash") == 0) {
        char *out = encode((unsigned)atoi(argv[2]), (unsigned)atoi(argv[3]),
                           (unsigned)atoi(argv[4]), argv[5]);
        if (!out)
            return 1;
        puts(out);
        return 0;
    }
    if (argc != 7 || strcmp(argv[1], "verify") != 0) {
        fprintf(stderr, "usage: argon2_bench verify THREADS SECONDS MEMORY_KIB ITERATIONS "
                        "PARALLELISM\n       argon2_bench hash MEMORY_KIB ITERATIONS PARALLELISM "
                        "PASSWORD\n");
        return 2;
    }
    int threads = atoi(argv[2]);
    double seconds = atof(argv[3]);
    char *encoded =
        encode((unsigned)atoi(argv[4]), (unsigned)atoi(argv[5]), (unsigned)atoi(argv[6]), PASSWORD);
    if (!encoded || threads < 1 || seconds <= 0)
        return 1;
    worker_t *workers = calloc((size_t)threads, sizeof *workers);
    pthread_t *ids = calloc((size_t)threads, sizeof *ids);
    pthread_barrier_init(&warmed, NULL, (unsigned)threads + 1);
    pthread_barrier_init(&started, NULL, (unsigned)threads + 1);
    for (int i = 0; i < threads; i++) {
        workers[i].encoded = encoded;
        if (pthread_create(&ids[i], NULL, work, &workers[i]) != 0)
            return 1;
    }
    pthread_barrier_wait(&warmed);
    double start = now_s();
    for (int i = 0; i < threads; i++)
        workers[i].deadline = start + seconds;
    pthread_barrier_wait(&started);
    long total = 0;
    int failed = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(ids[i], NULL);
        total += workers[i].done;
        failed |= workers[i].failed;
    }
    double elapsed = now_s() - start;
    if (failed) {
        fprintf(stderr, "argon2_bench: a verification failed\n");
        return 1;
    }
    printf("verifications=%ld seconds=%.3f rate=%.2f\n", total, elapsed, total / elapsed);
    return 0;
}
