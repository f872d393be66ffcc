/* argon2id under a bound per child process: each hash holds the argon2
 * memory while it runs, so at most RedeemHashConcurrency run at once. A
 * burst waits for a slot up to RedeemHashWait; sustained overload gets 503. */
#include "httpd/private.h"

typedef struct {
    const char *password;
    size_t len;
    const char *stored;               /* verify against it; NULL: hash */
    char *hash;                       /* out, when hashing */
    redeem_password_result_e verdict; /* out, when verifying */
} hashing_job_t;

static const redeem_failure_t *take_slot(request_rec *r)
{
    redeem_server_conf *conf = redeem_conf(r);
    redeem_child_t *child = conf->child;
    apr_time_t deadline = apr_time_now() + apr_time_from_msec(conf->hash_wait_ms);
    int busy = 0, waited = 0;
    apr_thread_mutex_lock(child->hash_lock);
    while (child->hashes_in_flight >= conf->hash_concurrency) {
        waited = 1;
        apr_time_t now = apr_time_now();
        if (now >= deadline) {
            busy = 1;
            break;
        }
        apr_thread_cond_timedwait(child->hash_freed, child->hash_lock, deadline - now);
    }
    if (!busy)
        child->hashes_in_flight++;
    apr_thread_mutex_unlock(child->hash_lock);
    if (waited)
        redeem_shared_count(conf->shared, REDEEM_COUNTER_HASH_WAITS);
    if (!busy)
        return NULL;
    redeem_shared_count(conf->shared, REDEEM_COUNTER_HASH_BUSY);
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                  RDMNO(0204) "all %d password hashing slots stayed busy: answering 503",
                  (int)conf->hash_concurrency);
    redeem_failure_t *failure = apr_pmemdup(r->pool, &redeem_failure_unavailable, sizeof *failure);
    failure->retry_after = 1;
    return failure;
}

static void give_back_slot(request_rec *r)
{
    redeem_child_t *child = redeem_conf(r)->child;
    apr_thread_mutex_lock(child->hash_lock);
    child->hashes_in_flight--;
    apr_thread_cond_signal(child->hash_freed);
    apr_thread_mutex_unlock(child->hash_lock);
}

static const redeem_failure_t *run_in_slot(request_rec *r, hashing_job_t *job)
{
    const redeem_failure_t *failure = take_slot(r);
    if (failure)
        return failure;
    const char *why = NULL;
    if (job->stored)
        job->verdict = redeem_password_verify(job->stored, job->password, job->len);
    else
        why = redeem_password_hash(r->pool, &redeem_conf(r)->argon2, job->password, job->len,
                                   &job->hash);
    give_back_slot(r);
    if (!why)
        return NULL;
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, RDMNO(0205) "argon2id hashing failed: %s", why);
    return &redeem_failure_internal;
}

const redeem_failure_t *redeem_hashing_hash(request_rec *r, const char *password, size_t len,
                                            char **hash)
{
    hashing_job_t job = {password, len, NULL, NULL, REDEEM_PASSWORD_ERROR};
    const redeem_failure_t *failure = run_in_slot(r, &job);
    *hash = job.hash;
    return failure;
}

const redeem_failure_t *redeem_hashing_verify(request_rec *r, const char *stored,
                                              const char *password, size_t len,
                                              redeem_password_result_e *verdict)
{
    hashing_job_t job = {password, len, stored, NULL, REDEEM_PASSWORD_ERROR};
    const redeem_failure_t *failure = run_in_slot(r, &job);
    *verdict = job.verdict;
    return failure;
}
