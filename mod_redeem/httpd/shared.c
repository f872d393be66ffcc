/* The server's shared memory: one anonymous segment, made by the parent
 * before it forks and inherited by every child, with the rate-limit table
 * and the counters. It lives in the process pool and its address is kept
 * with ap_retained_data, so a restart, graceful or not (or graceful-stop),
 * re-attaches it instead of starting afresh; only stopping httpd and
 * starting it again, or a new table size, makes a new one. */
#include "httpd/private.h"

#include "core/limit_table.h"

#include <apr_shm.h>
#include <openssl/rand.h>
#include <time.h>

#define SHARED_MAGIC UINT64_C(0x314d48536d656472) /* "rdemSHM1" */
#define SHARED_RETAINED_KEY "mod_redeem shared segment"
/* The table starts at the first 64-byte boundary after the header; APR's
 * segment itself is only 8-byte aligned (it keeps its size in front). */
#define HEADER_BYTES (sizeof(redeem_shared_t) + REDEEM_LIMIT_TABLE_ALIGN)
/* Anything that changes the layout changes this: the header's size, the
 * table's alignment, and the place of every counter (the endpoints' block
 * moves with a new redemption outcome, and what follows it with a new
 * route, status class or latency bucket; a counter appended at the end of
 * the room moves none, and changes nothing here). FNV-1a of the tuple. */
static uint32_t layout(void)
{
    const uint32_t parts[] = {(uint32_t)sizeof(redeem_shared_t), REDEEM_LIMIT_TABLE_ALIGN,
                              REDEEM_COUNTER_ENDPOINT_FIRST,     REDEEM_ENDPOINTS,
                              REDEEM_ENDPOINT_COUNTERS,          REDEEM_COUNTER_USER_READS};
    uint32_t hash = 2166136261u;
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++)
        for (int byte = 0; byte < 4; byte++) {
            hash ^= (parts[i] >> (8 * byte)) & 0xff;
            hash *= 16777619u;
        }
    return hash;
}

_Static_assert(REDEEM_SCOPES == REDEEM_SCOPE_COUNT_, "one limited-requests counter per scope");
_Static_assert(REDEEM_COUNTER_COUNT_ <= REDEEM_COUNTER_SLOTS, "the counters fit their room");

/* What the parent keeps across restarts. */
typedef struct {
    apr_shm_t *shm;
    uint32_t limit_entries;
} retained_t;

int64_t redeem_shared_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void *redeem_shared_limit_table(redeem_shared_t *shared)
{
    uintptr_t after = (uintptr_t)(shared + 1);
    return (void *)((after + REDEEM_LIMIT_TABLE_ALIGN - 1) &
                    ~(uintptr_t)(REDEEM_LIMIT_TABLE_ALIGN - 1));
}

/* Bytes of the segment from the table on. */
static size_t table_room(apr_shm_t *shm)
{
    redeem_shared_t *shared = apr_shm_baseaddr_get(shm);
    return apr_shm_size_get(shm) -
           (size_t)((char *)redeem_shared_limit_table(shared) - (char *)shared);
}

void redeem_shared_add(redeem_shared_t *shared, redeem_counter_e counter, uint64_t n)
{
    if (shared)
        __atomic_add_fetch(&shared->counters[counter], n, __ATOMIC_RELAXED);
}

void redeem_shared_count(redeem_shared_t *shared, redeem_counter_e counter)
{
    redeem_shared_add(shared, counter, 1);
}

uint64_t redeem_shared_counter(const redeem_shared_t *shared, redeem_counter_e counter)
{
    return __atomic_load_n(&shared->counters[counter], __ATOMIC_RELAXED);
}

static int usable(const retained_t *kept, uint32_t limit_entries)
{
    if (!kept->shm || kept->limit_entries != limit_entries)
        return 0;
    redeem_shared_t *shared = apr_shm_baseaddr_get(kept->shm);
    return shared->magic == SHARED_MAGIC && shared->layout == layout() &&
           redeem_limit_table_valid(redeem_shared_limit_table(shared), table_room(kept->shm));
}

static const char *make(server_rec *s, retained_t *kept, uint32_t limit_entries)
{
    size_t table_bytes = redeem_limit_table_bytes(limit_entries);
    unsigned char hash_key[REDEEM_LIMIT_TABLE_HASH_KEY_LEN];
    apr_status_t rv;
    if (table_bytes == 0)
        return "the rate-limit table is too large";
    if (RAND_bytes(hash_key, sizeof hash_key) != 1)
        return "the random number generator failed";
    if ((rv = apr_shm_create(&kept->shm, HEADER_BYTES + table_bytes, NULL, s->process->pool)))
        return apr_psprintf(s->process->pool, "cannot create %lu bytes of shared memory: %pm",
                            (unsigned long)(HEADER_BYTES + table_bytes), &rv);
    redeem_shared_t *shared = apr_shm_baseaddr_get(kept->shm);
    memset(shared, 0, sizeof *shared);
    shared->layout = layout();
    shared->limit_entries = limit_entries;
    if (redeem_limit_table_init(redeem_shared_limit_table(shared), table_room(kept->shm),
                                limit_entries, hash_key, redeem_shared_now_ms()) != 0)
        return "cannot format the rate-limit table";
    shared->magic = SHARED_MAGIC;
    kept->limit_entries = limit_entries;
    return NULL;
}

const char *redeem_shared_attach(server_rec *s, uint32_t limit_entries, redeem_shared_t **shared)
{
    retained_t *kept = ap_retained_data_get(SHARED_RETAINED_KEY);
    if (!kept)
        kept = ap_retained_data_create(SHARED_RETAINED_KEY, sizeof *kept);
    if (!usable(kept, limit_entries)) {
        if (kept->shm) {
            if (kept->limit_entries != limit_entries)
                ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                             RDMNO(0601) "the rate-limit table changes size (%u to %u entries): "
                                         "its counts start afresh",
                             kept->limit_entries, limit_entries);
            else /* the same size, another layout: a new version of the module */
                ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                             RDMNO(0601) "the rate-limit table's layout changed (a new version "
                                         "of mod_redeem): its counts start afresh");
            apr_shm_destroy(kept->shm);
            kept->shm = NULL;
        }
        const char *why = make(s, kept, limit_entries);
        if (why)
            return why;
    }
    *shared = apr_shm_baseaddr_get(kept->shm);
    return NULL;
}
