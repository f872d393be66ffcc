/* argon2id under a bound per child process: at most RedeemHashConcurrency
 * hashes run at once, each in a slot that keeps its argon2 memory from hash
 * to hash (so a child holds at most the slots times the argon2 memory, and
 * no hash pays for mapping it anew). A burst waits for a slot up to
 * RedeemHashWait; sustained overload gets 503. */
#include "httpd/private.h"

typedef struct {
    const char *password;
    size_t len;
    const char *stored;               /* verify against it; NULL: hash */
    char *hash;                       /* out, when hashing */
    redeem_password_result_e verdict; /* out, when verifying */
} hashing_job_t;

/* The slots of this child, made in child_init; unmapped with the child. */
static apr_status_t release_slot_memory(void *data)
{
    redeem_child_t *child = data;
    for (int i = 0; i < child->free_count; i++)
        redeem_password_memory_release(&child->slot_memory[child->free_slots[i]]);
    return APR_SUCCESS;
}

const char *redeem_hashing_child_init(apr_pool_t *pchild, redeem_child_t *child, int slots)
{
    child->slot_memory = apr_pcalloc(pchild, sizeof *child->slot_memory * (apr_size_t)slots);
    child->free_slots = apr_palloc(pchild, sizeof *child->free_slots * (apr_size_t)slots);
    for (int i = 0; i < slots; i++)
        child->free_slots[i] = slots - 1 - i; /* slot 0 first: the fewest blocks in use */
    child->free_count = slots;
    if (redeem_sync_lock_create(&child->hash_lock, pchild) ||
        redeem_sync_cond_create(&child->hash_freed, pchild))
        return "cannot create the hashing lock";
    apr_pool_cleanup_register(pchild, child, release_slot_memory, apr_pool_cleanup_null);
    return NULL;
}

/* A slot, waiting up to RedeemHashWait for one, and no later than `until`
 * (monotonic, as every deadline of a request's: 0, no such bound); with idle_only, only a slot free
 * at once, and no other sign when there is none than the failure. */
static const redeem_failure_t *take_slot(request_rec *r, int idle_only, apr_time_t until, int *slot)
{
    redeem_server_conf *conf = redeem_conf(r);
    redeem_child_t *child = conf->child;
    /* The monotonic clock: a step of the wall clock must neither end the
     * wait at once nor stretch it past RedeemHashWait. */
    apr_time_t deadline = redeem_clock_monotonic() + apr_time_from_msec(conf->hash_wait_ms);
    if (until && until < deadline)
        deadline = until;
    int busy = 0, waited = 0;
    redeem_sync_lock(child->hash_lock);
    if (idle_only && child->free_count == 0) {
        redeem_sync_unlock(child->hash_lock);
        return &redeem_failure_unavailable;
    }
    while (child->free_count == 0) {
        waited = 1;
        apr_time_t now = redeem_clock_monotonic();
        if (now >= deadline) {
            busy = 1;
            break;
        }
        redeem_sync_timedwait(child->hash_freed, child->hash_lock, deadline - now);
    }
    if (!busy)
        *slot = child->free_slots[--child->free_count];
    redeem_sync_unlock(child->hash_lock);
    if (waited)
        redeem_shared_count(conf->shared, REDEEM_COUNTER_HASH_WAITS);
    if (!busy)
        return NULL;
    redeem_shared_count(conf->shared, REDEEM_COUNTER_HASH_BUSY);
    const char *note;
    int level = redeem_log_level_throttled(r, &child->hashing_busy_told, APLOG_WARNING, &note);
    ap_log_rerror(APLOG_MARK, level, 0, r,
                  RDMNO(0204) "all %d password hashing slots stayed busy: answering 503%s",
                  (int)conf->hash_concurrency, note);
    redeem_failure_t *failure = apr_pmemdup(r->pool, &redeem_failure_unavailable, sizeof *failure);
    failure->retry_after = 1;
    return failure;
}

static void give_back_slot(request_rec *r, int slot)
{
    redeem_child_t *child = redeem_conf(r)->child;
    redeem_sync_lock(child->hash_lock);
    child->free_slots[child->free_count++] = slot; /* the next taker reuses its warm block */
    redeem_sync_signal(child->hash_freed);
    redeem_sync_unlock(child->hash_lock);
}

/* A slot a request took ahead of its first need of the database
 * (redeem_hashing_reserve), until its hash gives it back, or the request
 * ends. */
#define RESERVED_KEY "redeem_hash_slot"
typedef struct {
    request_rec *r;
    int slot; /* -1: given back */
} reserved_t;

static apr_status_t give_back_reserved(void *data)
{
    reserved_t *reserved = data;
    if (reserved->slot >= 0)
        give_back_slot(reserved->r, reserved->slot);
    reserved->slot = -1;
    return APR_SUCCESS;
}

const redeem_failure_t *redeem_hashing_reserve(request_rec *r)
{
    reserved_t *reserved = apr_palloc(r->pool, sizeof *reserved);
    const redeem_failure_t *failure = take_slot(r, 0, 0, &reserved->slot);
    if (failure)
        return failure;
    reserved->r = r;
    apr_pool_cleanup_register(r->pool, reserved, give_back_reserved, apr_pool_cleanup_null);
    apr_pool_userdata_setn(reserved, RESERVED_KEY, NULL, r->pool);
    return NULL;
}

/* The request's reservation, or NULL when it made none. */
static reserved_t *reservation_of(request_rec *r)
{
    reserved_t *reserved = NULL;
    apr_pool_userdata_get((void **)&reserved, RESERVED_KEY, r->pool);
    return reserved;
}

void redeem_hashing_release(request_rec *r)
{
    reserved_t *reserved = reservation_of(r);
    if (reserved)
        give_back_reserved(reserved);
}

/* The slot this request reserved, -1: none; with `claim`, now the caller's
 * to give back. */
static int reserved_slot(request_rec *r, int claim)
{
    reserved_t *reserved = reservation_of(r);
    if (!reserved || reserved->slot < 0)
        return -1;
    int slot = reserved->slot;
    if (claim)
        reserved->slot = -1;
    return slot;
}

/* Which slot a job runs in:
 * - SLOT_RESERVED: the request's reserved one, used up (its own login's or
 *   registration's hash), else as SLOT_WAIT;
 * - SLOT_WAIT: the request's reserved one, borrowed and kept for the
 *   request's own hash after (RedeemAdmin's set-up, which runs inside the
 *   first use of the database of whichever request comes first: a login
 *   holding the child's one slot would otherwise wait for itself), else one
 *   taken for it, waiting up to RedeemHashWait;
 * - SLOT_IF_IDLE: one free at once, or none. */
typedef enum { SLOT_WAIT, SLOT_IF_IDLE, SLOT_RESERVED } slot_mode_e;

static const redeem_failure_t *run_in_slot(request_rec *r, slot_mode_e mode, apr_time_t until,
                                           hashing_job_t *job)
{
    int slot = mode == SLOT_IF_IDLE ? -1 : reserved_slot(r, mode == SLOT_RESERVED);
    int borrowed = mode == SLOT_WAIT && slot >= 0;
    const redeem_failure_t *failure =
        slot >= 0 ? NULL : take_slot(r, mode == SLOT_IF_IDLE, until, &slot);
    if (failure)
        return failure;
    redeem_password_memory_t *memory = &redeem_conf(r)->child->slot_memory[slot];
    const char *why = NULL;
    if (job->stored) {
        job->verdict = redeem_password_verify(memory, job->stored, job->password, job->len);
        if (job->verdict == REDEEM_PASSWORD_FAILED)
            why = "out of memory, or no thread to run on";
    }
    else
        why = redeem_password_hash(r->pool, &redeem_conf(r)->argon2, memory, job->password,
                                   job->len, &job->hash);
    if (!borrowed)
        give_back_slot(r, slot);
    if (!why)
        return NULL;
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, RDMNO(0205) "argon2id hashing failed: %s", why);
    return &redeem_failure_internal;
}

static const redeem_failure_t *hash_in_slot(request_rec *r, slot_mode_e mode, apr_time_t until,
                                            const char *password, size_t len, char **hash)
{
    hashing_job_t job = {password, len, NULL, NULL, REDEEM_PASSWORD_ERROR};
    const redeem_failure_t *failure = run_in_slot(r, mode, until, &job);
    *hash = job.hash;
    return failure;
}

static const redeem_failure_t *verify_in_slot(request_rec *r, slot_mode_e mode, apr_time_t until,
                                              const char *stored, const char *password, size_t len,
                                              redeem_password_result_e *verdict)
{
    hashing_job_t job = {password, len, stored, NULL, REDEEM_PASSWORD_ERROR};
    const redeem_failure_t *failure = run_in_slot(r, mode, until, &job);
    *verdict = job.verdict;
    return failure;
}

const redeem_failure_t *redeem_hashing_hash(request_rec *r, apr_time_t until, const char *password,
                                            size_t len, char **hash)
{
    return hash_in_slot(r, SLOT_WAIT, until, password, len, hash);
}

const redeem_failure_t *redeem_hashing_hash_reserved(request_rec *r, const char *password,
                                                     size_t len, char **hash)
{
    return hash_in_slot(r, SLOT_RESERVED, 0, password, len, hash);
}

const redeem_failure_t *redeem_hashing_hash_if_idle(request_rec *r, const char *password,
                                                    size_t len, char **hash)
{
    return hash_in_slot(r, SLOT_IF_IDLE, 0, password, len, hash);
}

const redeem_failure_t *redeem_hashing_verify_reserved(request_rec *r, const char *stored,
                                                       const char *password, size_t len,
                                                       redeem_password_result_e *verdict)
{
    return verify_in_slot(r, SLOT_RESERVED, 0, stored, password, len, verdict);
}

const redeem_failure_t *redeem_hashing_verify(request_rec *r, apr_time_t until, const char *stored,
                                              const char *password, size_t len,
                                              redeem_password_result_e *verdict)
{
    return verify_in_slot(r, SLOT_WAIT, until, stored, password, len, verdict);
}
