#include "core/password.h"
#include "core/text.h"

#include <argon2.h>
#include <apr_strings.h>
#include <locale.h>
#include <openssl/rand.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <wctype.h>

#define SALT_BYTES 16
#define HASH_BYTES 32

const char *redeem_password_check_policy(const char *pw, size_t len)
{
    size_t chars = redeem_text_utf8_length(pw, len);
    if (chars < REDEEM_PASSWORD_MIN_CHARS)
        return "Password must be at least 8 characters";
    if (chars > REDEEM_PASSWORD_MAX_CHARS)
        return "Password must be at most 128 characters";

    /* A letter is a character Unicode calls one, by glibc's tables for
     * C.UTF-8 (its own, whatever the process's locale): not a symbol (€), a
     * space or a combining mark, which counted before. glibc files other
     * scripts' decimal digits (U+0660...) under letters too; a digit is an
     * ASCII one. Without those tables, any other character counts. */
    locale_t unicode = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    int has_letter = 0, has_digit = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)pw[i];
        uint32_t code_point;
        if (c < 0x80) {
            i++;
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
                has_letter = 1;
            else if (c >= '0' && c <= '9')
                has_digit = 1;
        }
        else if (redeem_text_utf8_next(pw, len, &i, &code_point) < 0)
            i++; /* not UTF-8 (a caller's bytes): no letter */
        else if (!unicode || iswalpha_l((wint_t)code_point, unicode))
            has_letter = 1;
    }
    if (unicode)
        freelocale(unicode);
    if (!has_letter || !has_digit)
        return "Password must contain at least one letter and one digit";
    return NULL;
}

const char *redeem_password_cost_check(const redeem_password_cost_t *cost)
{
    if (cost->parallelism < ARGON2_MIN_LANES || cost->parallelism > 64)
        return "parallelism must be between 1 and 64";
    if (cost->iterations < ARGON2_MIN_TIME || cost->iterations > 64)
        return "iterations must be between 1 and 64";
    if (cost->memory_kib < 8 * cost->parallelism || cost->memory_kib > 4 * 1024 * 1024)
        return "memory must be between 8 KiB per lane and 4 GiB";
    return NULL;
}

/* The argon2 memory straight from the kernel: malloc would keep 19 MiB
 * blocks in its arenas after a burst of logins (hundreds of MiB per child,
 * never returned). A caller's redeem_password_memory_t keeps one block from
 * hash to hash (mapping and faulting in 19 MiB anew costs a third of a
 * hash); without one, the block lives only while its hash runs.
 *
 * libargon2's allocation callbacks take no context pointer: the kept memory
 * of the hash running on this thread is handed to them here, set for the
 * length of one call and cleared after it. */
static __thread redeem_password_memory_t *memory_of_this_hash;

/* A block between two inaccessible pages: a mapping of its own that the
 * kernel never merges with a neighbour (so its size tells it apart in
 * /proc/PID/smaps), and an overrun faults instead of corrupting. */
static size_t page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

static size_t whole_pages(size_t bytes)
{
    return (bytes + page_size() - 1) / page_size() * page_size();
}

static void *map_block(size_t bytes)
{
    size_t page = page_size(), span = whole_pages(bytes) + 2 * page;
    char *base = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    if (mprotect(base + page, whole_pages(bytes), PROT_READ | PROT_WRITE) != 0) {
        munmap(base, span);
        return NULL;
    }
    return base + page;
}

static void unmap_block(void *block, size_t bytes)
{
    munmap((char *)block - page_size(), whole_pages(bytes) + 2 * page_size());
}

void redeem_password_memory_release(redeem_password_memory_t *memory)
{
    if (memory->block)
        unmap_block(memory->block, memory->bytes);
    memory->block = NULL;
    memory->bytes = 0;
}

static int take_memory(uint8_t **out, size_t bytes)
{
    redeem_password_memory_t *kept = memory_of_this_hash;
    if (!kept) {
        *out = map_block(bytes);
        return *out ? ARGON2_OK : ARGON2_MEMORY_ALLOCATION_ERROR;
    }
    if (kept->bytes < bytes) { /* the first hash, or one of a higher cost */
        redeem_password_memory_release(kept);
        if (!(kept->block = map_block(bytes)))
            return ARGON2_MEMORY_ALLOCATION_ERROR;
        kept->bytes = bytes;
    }
    *out = kept->block;
    return ARGON2_OK;
}

/* libargon2 has wiped the block already (its clear_internal_memory). */
static void leave_memory(uint8_t *memory, size_t bytes)
{
    if (!memory_of_this_hash)
        unmap_block(memory, bytes);
}

static int run_argon2(argon2_context *ctx, redeem_password_memory_t *memory, const char *expected)
{
    memory_of_this_hash = memory;
    int rc = expected ? argon2_verify_ctx(ctx, expected, Argon2_id) : argon2_ctx(ctx, Argon2_id);
    memory_of_this_hash = NULL;
    return rc;
}

static void fill_context(argon2_context *ctx, const redeem_password_cost_t *cost, const char *pw,
                         size_t len, unsigned char *salt, size_t salt_len, unsigned char *out,
                         size_t out_len)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->out = out;
    ctx->outlen = (uint32_t)out_len;
    ctx->pwd = (uint8_t *)pw;
    ctx->pwdlen = (uint32_t)len;
    ctx->salt = salt;
    ctx->saltlen = (uint32_t)salt_len;
    ctx->t_cost = cost->iterations;
    ctx->m_cost = cost->memory_kib;
    ctx->lanes = cost->parallelism;
    ctx->threads = cost->parallelism;
    ctx->version = ARGON2_VERSION_13;
    ctx->allocate_cbk = take_memory;
    ctx->free_cbk = leave_memory;
}

const char *redeem_password_hash(apr_pool_t *p, const redeem_password_cost_t *cost,
                                 redeem_password_memory_t *memory, const char *pw, size_t len,
                                 char **encoded)
{
    unsigned char salt[SALT_BYTES], hash[HASH_BYTES];
    char salt_b64[32], hash_b64[64];
    argon2_context ctx;
    if (len > UINT32_MAX)
        return "password too long";
    if (RAND_bytes(salt, sizeof salt) != 1)
        return "the random number generator failed";
    fill_context(&ctx, cost, pw, len, salt, sizeof salt, hash, sizeof hash);
    int rc = run_argon2(&ctx, memory, NULL);
    if (rc != ARGON2_OK)
        return argon2_error_message(rc);
    /* The PHC string, as argon2id_hash_encoded writes it. */
    redeem_text_base64_encode(REDEEM_TEXT_BASE64, salt, sizeof salt, salt_b64);
    redeem_text_base64_encode(REDEEM_TEXT_BASE64, hash, sizeof hash, hash_b64);
    *encoded =
        apr_psprintf(p, "$argon2id$v=%d$m=%u,t=%u,p=%u$%s$%s", ARGON2_VERSION_13, cost->memory_kib,
                     cost->iterations, cost->parallelism, salt_b64, hash_b64);
    return NULL;
}

/* A decimal number of at most 10 digits, then the expected separator. */
static const char *read_number(const char *s, char after, uint32_t *value)
{
    uint64_t n = 0;
    int digits = 0;
    while (*s >= '0' && *s <= '9' && digits < 10) {
        n = n * 10 + (uint64_t)(*s++ - '0');
        digits++;
    }
    if (!digits || *s != after || n > UINT32_MAX)
        return NULL;
    *value = (uint32_t)n;
    return s + 1;
}

/* The cost of a PHC string of argon2id version 19, and where its salt
 * begins; NULL when it is not one. */
static const char *read_cost(const char *encoded, redeem_password_cost_t *cost)
{
    static const char prefix[] = "$argon2id$v=19$m=";
    const char *s = encoded;
    if (!s || strncmp(s, prefix, sizeof prefix - 1) != 0)
        return NULL;
    s += sizeof prefix - 1;
    if (!(s = read_number(s, ',', &cost->memory_kib)) || strncmp(s, "t=", 2) != 0 ||
        !(s = read_number(s + 2, ',', &cost->iterations)) || strncmp(s, "p=", 2) != 0 ||
        !(s = read_number(s + 2, '$', &cost->parallelism)))
        return NULL;
    return s;
}

int redeem_password_needs_rehash(const char *encoded, const redeem_password_cost_t *cost)
{
    redeem_password_cost_t stored;
    if (!read_cost(encoded, &stored))
        return 1;
    return stored.memory_kib != cost->memory_kib || stored.iterations != cost->iterations ||
           stored.parallelism != cost->parallelism;
}

redeem_password_result_e redeem_password_verify(redeem_password_memory_t *memory,
                                                const char *encoded, const char *pw, size_t len)
{
    redeem_password_cost_t cost;
    unsigned char salt[64], expected[64], computed[64];
    size_t salt_len = 0, hash_len = 0;
    argon2_context ctx;
    const char *s = read_cost(encoded, &cost);
    if (!s || len > UINT32_MAX)
        return REDEEM_PASSWORD_ERROR;
    const char *dollar = strchr(s, '$');
    if (!dollar || redeem_password_cost_check(&cost) ||
        (size_t)(dollar - s) > (sizeof salt * 4 + 2) / 3 ||
        strlen(dollar + 1) > (sizeof expected * 4 + 2) / 3 ||
        redeem_text_base64_decode(REDEEM_TEXT_BASE64, s, (size_t)(dollar - s), salt, &salt_len) ||
        redeem_text_base64_decode(REDEEM_TEXT_BASE64, dollar + 1, strlen(dollar + 1), expected,
                                  &hash_len) ||
        salt_len < ARGON2_MIN_SALT_LENGTH || hash_len < ARGON2_MIN_OUTLEN)
        return REDEEM_PASSWORD_ERROR;
    fill_context(&ctx, &cost, pw, len, salt, salt_len, computed, hash_len);
    int rc = run_argon2(&ctx, memory, (const char *)expected);
    if (rc == ARGON2_OK)
        return REDEEM_PASSWORD_MATCH;
    if (rc == ARGON2_VERIFY_MISMATCH)
        return REDEEM_PASSWORD_MISMATCH;
    if (rc == ARGON2_MEMORY_ALLOCATION_ERROR || rc == ARGON2_THREAD_FAIL)
        return REDEEM_PASSWORD_FAILED;
    return REDEEM_PASSWORD_ERROR;
}
