/* Helpers shared by the libFuzzer targets in fuzz/ (one binary per target,
 * so everything here is static).
 *
 * FUZZ_CHECK(cond, what): an invariant; on violation it names itself on
 * stderr and traps, so libFuzzer records the input as a crash.
 *
 * FUZZ_STRICT: checks for known open items that fail today, off unless the
 * environment names them: FUZZ_STRICT=dup-keys,email-unicode
 * (or 1 / all).
 * Each name matches a directory fuzz/known/<target>.<name>/ of reproducers
 * (see fuzz/README.md and t/fuzz_replay.t).
 *
 * FUZZ_SKIP: known bugs the harness steps around, for long exploratory runs
 * that should not stop at a bug already reported (never set in make test):
 * FUZZ_SKIP=exp-overflow,error-utf8. */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, what)                                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz invariant violated at %s:%d: %s\n", __FILE__, __LINE__, what);   \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

/* 1 when the comma-separated list in environment variable var names `name`,
 * or is "1" or "all". Read on every call: targets cache it in setup. */
static inline int fuzz_env_names(const char *var, const char *name)
{
    const char *list = getenv(var);
    if (!list || !*list)
        return 0;
    if (strcmp(list, "1") == 0 || strcmp(list, "all") == 0)
        return 1;
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0)
            return 1;
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

static inline int fuzz_strict(const char *name)
{
    return fuzz_env_names("FUZZ_STRICT", name);
}

static inline int fuzz_skip(const char *name)
{
    return fuzz_env_names("FUZZ_SKIP", name);
}

/* A NUL-terminated copy of data[0..size) (malloc'ed: ASan sees overreads). */
static inline char *fuzz_cstring(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* Consumes the input front to back; past the end it yields zeros. */
typedef struct {
    const uint8_t *data;
    size_t size, at;
} fuzz_reader_t;

static inline uint8_t fuzz_u8(fuzz_reader_t *r)
{
    return r->at < r->size ? r->data[r->at++] : 0;
}

static inline uint64_t fuzz_u64(fuzz_reader_t *r)
{
    uint64_t x = 0;
    for (int i = 0; i < 8; i++)
        x = x << 8 | fuzz_u8(r);
    return x;
}

static inline uint32_t fuzz_u32(fuzz_reader_t *r)
{
    uint32_t x = 0;
    for (int i = 0; i < 4; i++)
        x = x << 8 | fuzz_u8(r);
    return x;
}

static inline size_t fuzz_left(const fuzz_reader_t *r)
{
    return r->size - r->at;
}

/* Valid UTF-8 (no overlongs, no surrogates, at most U+10FFFF), as jansson
 * guarantees for every string it hands out. */
static inline int fuzz_utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        }
        else if (c >= 0xC2 && c <= 0xDF)
            n = 1, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF)
            n = 2, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4)
            n = 3, cp = c & 0x07;
        else
            return 0;
        if (len - i < n + 1)
            return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += n + 1;
    }
    return 1;
}

#endif
