/* Unit tests of the httpd-free core, printing TAP for prove (t/unit.t). */
#include "core/body.h"
#include "core/clock.h"
#include "core/code.h"
#include "core/email.h"
#include "core/futex_hash.h"
#include "core/json_out.h"
#include "core/keyfile.h"
#include "core/log_throttle.h"
#include "core/password.h"
#include "core/query.h"
#include "core/sync.h"
#include "core/text.h"
#include "core/timestamp.h"
#include "core/tcp_connect.h"
#include "core/token.h"

#include <apr_general.h>
#include <argon2.h>
#include <apr_file_io.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <jwt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"

static void is_string(const char *got, const char *expected, const char *name)
{
    int same = got && expected ? strcmp(got, expected) == 0 : got == expected;
    ok(same, name);
    if (!same)
        printf("#   got: '%s'\n#   expected: '%s'\n", got ? got : "(null)",
               expected ? expected : "(null)");
}

static void test_email(apr_pool_t *p)
{
    char *out = NULL;
    ok(redeem_email_normalize(p, "  Alice@Example.COM \t", 21, &out) == NULL, "email: accepted");
    is_string(out, "alice@example.com", "email: trimmed and lowercased");
    const char *bad[] = {"",        "   ",    "alice",  "a@b",    "a@@b.c",   "a@b@c.d", "@b.c",
                         "a b@c.d", "a@.b.c", "a@b.c.", "a@b..c", "a<b>@c.d", "a@b,c.d"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ok(redeem_email_normalize(p, bad[i], strlen(bad[i]), &out) != NULL,
           apr_psprintf(p, "email: refused '%s'", bad[i]));
    /* "a@" and a 252-character domain: 254 in all, the most allowed. */
    char longest[256];
    memset(longest, 'b', sizeof longest);
    memcpy(longest, "a@", 2);
    memcpy(longest + 250, ".com", 4);
    ok(redeem_email_normalize(p, longest, 254, &out) == NULL, "email: 254 chars accepted");
    memcpy(longest + 251, ".com", 4);
    ok(redeem_email_normalize(p, longest, 255, &out) != NULL, "email: 255 chars refused");
    ok(redeem_email_normalize(p, "a\xc3\xa4@b.c", 7, &out) == NULL, "email: UTF-8 local part");
    ok(redeem_email_normalize(p, "\xc3\x84Rger@B.c", 10, &out) == NULL &&
           strcmp(out, "\xc3\x84rger@b.c") == 0,
       "email: ASCII lowercased here, the rest left to the database");
    const char *hidden[][2] = {
        {"a\xe2\x80\xae"
         "b@c.d",
         "right-to-left override"},
        {"a\xe2\x80\x8b"
         "b@c.d",
         "zero-width space"},
        {"\xef\xbb\xbf"
         "ab@c.d",
         "byte order mark"},
        {"a\xc2\xa0"
         "b@c.d",
         "no-break space"},
        {"a\xc2\xad"
         "b@c.d",
         "soft hyphen"},
        {"a\xe2\x81\xa6"
         "b@c.d",
         "left-to-right isolate"},
        {"ab@c\xe2\x80\x8c"
         ".d",
         "zero-width non-joiner in the domain"},
        {"a\xee\x80\x80"
         "b@c.d",
         "private use"},
        {"a\xef\xbf\xbe"
         "b@c.d",
         "a noncharacter"},
        {"a\xf3\xa0\x80\x81"
         "b@c.d",
         "a tag character"},
        {"ab@c.d\xe2\xa0\x80", "a Braille pattern blank (U+2800)"},
        {"a\xf0\x93\x90\xb0"
         "b@c.d",
         "an Egyptian hieroglyph joiner (U+13430)"},
        {"a\xf0\x93\x90\xbf"
         "b@c.d",
         "an Egyptian hieroglyph format control (U+1343F)"},
        {"a\xcd\xbe"
         "b@c.d",
         "the Greek question mark (U+037E, ';' once NFC)"},
        {"a\xc0\xaf"
         "b@c.d",
         "an overlong sequence (not UTF-8)"},
        {"a\xed\xa0\x80"
         "b@c.d",
         "a surrogate (not UTF-8)"},
        {"a\xc3"
         "@c.d",
         "a truncated sequence"},
    };
    for (size_t i = 0; i < sizeof hidden / sizeof *hidden; i++)
        ok(redeem_email_normalize(p, hidden[i][0], strlen(hidden[i][0]), &out) != NULL,
           apr_pstrcat(p, "email: refused with ", hidden[i][1], NULL));
    /* The local part's limit counts characters: 64 two-byte letters pass. */
    char *local = apr_palloc(p, 200);
    for (int i = 0; i < 64; i++)
        memcpy(local + 2 * i, "\xc3\xa9", 2);
    strcpy(local + 128, "@b.cd");
    ok(redeem_email_normalize(p, local, strlen(local), &out) == NULL,
       "email: a local part of 64 two-byte characters accepted");
    memcpy(local + 128, "\xc3\xa9@b.cd", 8);
    ok(redeem_email_normalize(p, local, strlen(local), &out) != NULL,
       "email: 65 characters refused");
}

/* A 400 for malformed JSON says what and where, never the bytes it was
 * found at: those are the client's, a password cut short among them. */
static void test_body(apr_pool_t *p)
{
    const redeem_body_field_t fields[] = {
        {"email", JSON_STRING, 1}, {"password", JSON_STRING, 1}, {NULL, 0, 0}};
    const char *bodies[] = {
        "{\"email\":\"a@b.example\",\"password\":\"Secret12", /* cut short */
        "{\"email\":\"a@b.example\",\"password\":Secret12}",  /* no quotes */
        "{\"email\":\"a@b.example\",\"Secret12\":1,\"Secret12\":2}",
        "{\"email\":\"a@b.example\"} Secret12",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
        json_t *body = NULL;
        const char *why = redeem_body_parse(p, bodies[i], strlen(bodies[i]), fields, &body);
        ok(why && strncmp(why, "Malformed JSON: ", 16) == 0 && strstr(why, "(at byte ") &&
               !strstr(why, "Secret") && !strstr(why, "near '"),
           apr_psprintf(p, "body: body %" APR_SIZE_T_FMT " refused without its bytes: %s", i,
                        why ? why : "(accepted)"));
        if (body)
            json_decref(body);
    }
    json_t *body = NULL;
    const char *why = redeem_body_parse(p, "{\"email\":\"a@b.example\"", 22, fields, &body);
    is_string(why, "Malformed JSON: '}' expected near end of file",
              "body: the end of the input named as jansson names it");

    /* jansson's words that name its own interface (a flag, "not supported")
     * or quote the client's escape are the API's own. */
    const char *own[][2] = {
        {"{\"email\":\"a\\u0000b\"}", "Malformed JSON: \\u0000 is not allowed"},
        {"{\"a\\u0000b\":1}", "Malformed JSON: \\u0000 is not allowed"},
        {"{\"email\":\"\\uD834\"}",
         "Malformed JSON: invalid Unicode escape: a surrogate without its pair"},
        {"{\"email\":\"\\uDC00x\"}",
         "Malformed JSON: invalid Unicode escape: a surrogate without its pair"},
        {"{\"email\":\"\\uD834\\u0041\"}",
         "Malformed JSON: invalid Unicode escape: a surrogate without its pair"},
    };
    for (size_t i = 0; i < sizeof own / sizeof *own; i++) {
        why = redeem_body_parse(p, own[i][0], strlen(own[i][0]), fields, &body);
        ok(why && strncmp(why, own[i][1], strlen(own[i][1])) == 0 &&
               (why[strlen(own[i][1])] == '\0' ||
                strncmp(why + strlen(own[i][1]), " (at byte ", 10) == 0) &&
               !strstr(why, "JSON_") && !strstr(why, "supported") && !strstr(why, "D834") &&
               !strstr(why, "DC00"),
           apr_psprintf(p, "body: %s said in the API's words: %s", own[i][0],
                        why ? why : "(accepted)"));
    }

    /* A raw NUL anywhere, where jansson would drop one after a number or a
     * literal and take the rest: its place said, jansson's position (the
     * bytes read, it included). */
    const redeem_body_field_t counted[] = {{"count", JSON_INTEGER, 1}, {NULL, 0, 0}};
    const struct {
        const char *text;
        size_t len;
        const char *why;
    } nuls[] = {
        {"{\"count\":5\0}", 12, "Malformed JSON: a NUL byte (at byte 11)"},
        {"{\"count\":-5\0,\"count2\":1}", 24, "Malformed JSON: a NUL byte (at byte 12)"},
        {"{\"count\":true\0}", 15, "Malformed JSON: a NUL byte (at byte 14)"},
        {"{\"count\":5}\0", 12, "Malformed JSON: a NUL byte (at byte 12)"},
        {"{\"count\":\"a\0b\"}", 16, "Malformed JSON: a NUL byte (at byte 12)"},
    };
    for (size_t i = 0; i < sizeof nuls / sizeof *nuls; i++) {
        body = NULL;
        why = redeem_body_parse(p, nuls[i].text, nuls[i].len, counted, &body);
        is_string(why, nuls[i].why,
                  apr_psprintf(p, "body: a raw NUL refused (case %" APR_SIZE_T_FMT ")", i));
        if (body)
            json_decref(body);
    }
    body = NULL;
    why = redeem_body_parse(p, "{\"count\":5}", 11, counted, &body);
    ok(!why && body && json_integer_value(json_object_get(body, "count")) == 5,
       "body: the same without its NUL taken");
    if (body)
        json_decref(body);

    /* An unknown field's name: shown whole up to 64 characters, then cut
     * on a character's boundary (here two-byte ones) with its length. */
    const char *short_key = "{\"is_admin\":true}";
    why = redeem_body_parse(p, short_key, strlen(short_key), fields, &body);
    is_string(why, "Unknown field: is_admin", "body: an unknown field named");
    char *key64 = apr_pstrcat(p, "{\"", apr_psprintf(p, "%064d", 7), "\":1}", NULL);
    why = redeem_body_parse(p, key64, strlen(key64), fields, &body);
    is_string(why, apr_psprintf(p, "Unknown field: %064d", 7),
              "body: an unknown field of 64 characters named whole");
    char *umlauts = apr_pcalloc(p, 2 * 300 + 1);
    for (int i = 0; i < 300; i++)
        memcpy(umlauts + 2 * i, "\xc3\xa4", 2);
    char *long_key = apr_pstrcat(p, "{\"", umlauts, "\":1}", NULL);
    why = redeem_body_parse(p, long_key, strlen(long_key), fields, &body);
    is_string(why,
              apr_pstrcat(p, "Unknown field: ", apr_pstrmemdup(p, umlauts, 2 * 64),
                          "... (300 characters)", NULL),
              "body: a long unknown field cut at 64 characters, its length said");
}

/* redeem_password_verify's verdict in a child process, with its address
 * space limited to about what it uses already when `starved`. */
static int verdict_in_child(const char *stored, int starved)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (starved) {
            long pages = 0;
            FILE *statm = fopen("/proc/self/statm", "r");
            if (!statm || fscanf(statm, "%ld", &pages) != 1)
                _exit(99);
            fclose(statm);
            rlim_t room = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + 16 * 1024 * 1024;
            struct rlimit limit = {room, room};
            if (setrlimit(RLIMIT_AS, &limit) != 0)
                _exit(98);
        }
        _exit(10 + redeem_password_verify(NULL, stored, "Passw0rd123", 11));
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return 100;
    return WEXITSTATUS(status) - 10;
}

static void test_password(apr_pool_t *p)
{
    ok(redeem_password_check_policy("Passw0rd", 8) == NULL, "password: 8 chars accepted");
    ok(redeem_password_check_policy("Passw0r", 7) != NULL, "password: 7 chars refused");
    ok(redeem_password_check_policy("password", 8) != NULL, "password: no digit refused");
    ok(redeem_password_check_policy("12345678", 8) != NULL, "password: no letter refused");
    char long_pw[130];
    memset(long_pw, 'a', sizeof long_pw);
    long_pw[0] = '1';
    ok(redeem_password_check_policy(long_pw, 128) == NULL, "password: 128 chars accepted");
    ok(redeem_password_check_policy(long_pw, 129) != NULL, "password: 129 chars refused");
    /* Seven two-byte characters and a digit: 8 characters, 15 bytes. */
    const char *umlauts = "\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4"
                          "1";
    ok(redeem_password_check_policy(umlauts, strlen(umlauts)) == NULL,
       "password: length counts characters, not bytes");
    /* A letter is what Unicode calls one; symbols, spaces, marks are not. */
    const char *euros = "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
                        "1234";
    ok(redeem_password_check_policy(euros, strlen(euros)) != NULL,
       "password: a symbol (U+20AC) is no letter");
    const char *marks = "1234567\xe2\x80\x83\xcc\x81";
    ok(redeem_password_check_policy(marks, strlen(marks)) != NULL,
       "password: a space (U+2003) and a combining mark (U+0301) are no letters");
    const char *cjk = "\xe5\xaf\x86\xe7\xa0\x81\xe5\xaf\x86\xe7\xa0\x81\xe5\xaf\x86\xe7\xa0\x81"
                      "12";
    ok(redeem_password_check_policy(cjk, strlen(cjk)) == NULL,
       "password: a CJK ideograph is a letter");
    const char *greek = "\xce\xb1\xce\xb2\xce\xb3\xce\xb4\xce\xb5\xce\xb6\xce\xb7"
                        "7";
    ok(redeem_password_check_policy(greek, strlen(greek)) == NULL,
       "password: a Greek letter is a letter");
    const char *not_utf8 = "\xff\xfe\xff\xfe\xff\xfe\xff"
                           "1";
    ok(redeem_password_check_policy(not_utf8, strlen(not_utf8)) != NULL,
       "password: bytes that are not UTF-8 are no letters");

    redeem_password_cost_t cost = {1024, 1, 1};
    char *hash = NULL;
    ok(redeem_password_hash(p, &cost, NULL, "Passw0rd123", 11, &hash) == NULL, "argon2: hashes");
    ok(hash && strncmp(hash, "$argon2id$v=19$m=1024,t=1,p=1$", 30) == 0, "argon2: PHC string");
    /* The same PHC strings as libargon2's own encoder and verifier. */
    ok(argon2id_verify(hash, "Passw0rd123", 11) == ARGON2_OK,
       "argon2: libargon2 verifies our encoding");
    char theirs[128];
    const unsigned char salt16[16] = "0123456789abcdef";
    ok(argon2id_hash_encoded(1, 1024, 1, "Passw0rd123", 11, salt16, 16, 32, theirs,
                             sizeof theirs) == ARGON2_OK &&
           redeem_password_verify(NULL, theirs, "Passw0rd123", 11) == REDEEM_PASSWORD_MATCH,
       "argon2: we verify libargon2's encoding");
    ok(redeem_password_verify(NULL, theirs, "Passw0rd124", 11) == REDEEM_PASSWORD_MISMATCH,
       "argon2: ... and refuse the wrong password with it");
    const char *malformed[] = {"", "$argon2i$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaA",
                               "$argon2id$v=19$m=1024,t=1$c2FsdHNhbHQ$aGFzaA",
                               "$argon2id$v=19$m=99999999999,t=1,p=1$c2FsdHNhbHQ$aGFzaA",
                               "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNo"};
    for (size_t i = 0; i < sizeof malformed / sizeof *malformed; i++)
        ok(redeem_password_verify(NULL, malformed[i], "x", 1) == REDEEM_PASSWORD_ERROR,
           apr_psprintf(p, "argon2: malformed stored hash %" APR_SIZE_T_FMT " is an error", i));
    ok(redeem_password_verify(NULL, hash, "Passw0rd123", 11) == REDEEM_PASSWORD_MATCH,
       "argon2: verifies");
    ok(redeem_password_verify(NULL, hash, "Passw0rd124", 11) == REDEEM_PASSWORD_MISMATCH,
       "argon2: wrong password refused");
    /* Never truncated: a longer password with the same prefix differs. */
    ok(redeem_password_verify(NULL, hash, "Passw0rd123x", 12) == REDEEM_PASSWORD_MISMATCH,
       "argon2: longer password refused");
    ok(redeem_password_verify(NULL, "$argon2id$garbage", "x", 1) == REDEEM_PASSWORD_ERROR,
       "argon2: malformed hash is an error");
    /* argon2 that cannot get its memory is a server fault, not a wrong
     * password nor an unreadable hash (login answers 500 for it, not 401):
     * checked in a child process whose address space cannot take 64 MiB. */
    const char *costly = "$argon2id$v=19$m=65536,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA";
    ok(verdict_in_child(costly, 0) == REDEEM_PASSWORD_MISMATCH,
       "argon2: a 64 MiB hash checks in a child of no memory limit (the control)");
    ok(verdict_in_child(costly, 1) == REDEEM_PASSWORD_FAILED,
       "argon2: ... and is a failure to run, not a mismatch or an error, where its memory "
       "cannot be had");
    redeem_password_cost_t other_memory = {2048, 1, 1}, other_passes = {1024, 2, 1},
                           other_lanes = {1024, 1, 2};
    ok(!redeem_password_needs_rehash(hash, &cost) && !redeem_password_needs_rehash(theirs, &cost),
       "argon2: a hash of the configured cost needs no rehash");
    ok(redeem_password_needs_rehash(hash, &other_memory) &&
           redeem_password_needs_rehash(hash, &other_passes) &&
           redeem_password_needs_rehash(hash, &other_lanes),
       "argon2: a hash of another memory, passes or lanes needs one");
    ok(redeem_password_needs_rehash("$argon2i$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaA", &cost) &&
           redeem_password_needs_rehash("$argon2id$garbage", &cost),
       "argon2: so does a hash not of argon2id version 19");
    /* A kept block (a hashing slot's): mapped at the first hash, the same
     * block for every later hash of the same cost, mapped anew (larger) for
     * a costlier one, and results as without it. */
    redeem_password_memory_t kept = {NULL, 0};
    char *kept_hash = NULL;
    ok(redeem_password_hash(p, &cost, &kept, "Passw0rd123", 11, &kept_hash) == NULL &&
           kept.block != NULL && kept.bytes == 1024 * 1024,
       "argon2: a kept block is mapped by the first hash, at the cost's size");
    void *first_block = kept.block;
    ok(redeem_password_verify(&kept, hash, "Passw0rd123", 11) == REDEEM_PASSWORD_MATCH &&
           redeem_password_verify(&kept, kept_hash, "Passw0rd123", 11) == REDEEM_PASSWORD_MATCH &&
           redeem_password_verify(&kept, kept_hash, "Passw0rd124", 11) ==
               REDEEM_PASSWORD_MISMATCH &&
           kept.block == first_block,
       "argon2: the kept block is reused, with the same verdicts");
    ok(redeem_password_verify(&kept, theirs, "Passw0rd123", 11) == REDEEM_PASSWORD_MATCH &&
           kept.bytes == 1024 * 1024,
       "argon2: a hash of the same cost keeps the block's size");
    redeem_password_cost_t costlier = {2048, 1, 1};
    char *costlier_hash = NULL;
    ok(redeem_password_hash(p, &costlier, &kept, "Passw0rd123", 11, &costlier_hash) == NULL &&
           kept.bytes == 2048 * 1024 &&
           redeem_password_verify(&kept, costlier_hash, "Passw0rd123", 11) ==
               REDEEM_PASSWORD_MATCH &&
           redeem_password_verify(&kept, hash, "Passw0rd123", 11) == REDEEM_PASSWORD_MATCH &&
           kept.bytes == 2048 * 1024,
       "argon2: a costlier hash grows the block, which then serves both costs");
    const unsigned char *bytes = kept.block;
    int wiped = 1;
    for (size_t i = 0; i < kept.bytes; i++)
        wiped &= bytes[i] == 0;
    ok(wiped, "argon2: the kept block holds nothing of the last hash (libargon2 wipes it)");
    redeem_password_memory_release(&kept);
    ok(kept.block == NULL && kept.bytes == 0, "argon2: a released block is gone");

    redeem_password_cost_t bad = {4, 1, 1};
    ok(redeem_password_cost_check(&bad) != NULL, "argon2: too little memory refused");
}

static char *b64url(apr_pool_t *p, const unsigned char *data, size_t len)
{
    char *out = apr_palloc(p, 4 * ((len + 2) / 3) + 1);
    int n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    while (n > 0 && out[n - 1] == '=')
        n--;
    out[n] = '\0';
    for (char *c = out; *c; c++)
        *c = *c == '+' ? '-' : *c == '/' ? '_' : *c;
    return out;
}

/* A token with any header and claims, HMAC-signed with md and key. */
static char *forge(apr_pool_t *p, const char *header, const char *claims, const EVP_MD *md,
                   const char *key)
{
    char *signing = apr_pstrcat(p, b64url(p, (const unsigned char *)header, strlen(header)), ".",
                                b64url(p, (const unsigned char *)claims, strlen(claims)), NULL);
    unsigned char mac[64];
    unsigned int mac_len = 0;
    HMAC(md, key, (int)strlen(key), (const unsigned char *)signing, strlen(signing), mac, &mac_len);
    return apr_pstrcat(p, signing, ".", b64url(p, mac, mac_len), NULL);
}

/* The token libjwt 1.10 makes of the claims of an issued token (its jti read
 * back from it), signed with the same secret: the module's issuance writes
 * the same text (it issued through libjwt before), so libjwt is the
 * reference it is checked against. NULL when the claims cannot be read. */
static char *libjwt_twin(apr_pool_t *p, const redeem_token_config_t *cfg, const char *token,
                         const redeem_token_subject_t *sub, int64_t now)
{
    const char *first_dot = strchr(token, '.');
    const char *second_dot = first_dot ? strchr(first_dot + 1, '.') : NULL;
    if (!second_dot)
        return NULL;
    size_t segment_len = (size_t)(second_dot - first_dot - 1), n = 0;
    unsigned char *bytes = apr_palloc(p, segment_len);
    if (redeem_text_base64_decode(REDEEM_TEXT_BASE64URL, first_dot + 1, segment_len, bytes, &n))
        return NULL;
    json_t *claims = json_loadb((const char *)bytes, n, 0, NULL);
    const char *jti = json_string_value(json_object_get(claims, "jti"));
    char sub_text[24];
    snprintf(sub_text, sizeof sub_text, "%" PRId64, sub->user_id);
    jwt_t *jwt = NULL;
    char *twin = NULL;
    if (jti && jwt_new(&jwt) == 0 && !jwt_add_grant(jwt, "sub", sub_text) &&
        !jwt_add_grant_int(jwt, "user_id", (long)sub->user_id) &&
        !jwt_add_grant(jwt, "email", sub->email) && !jwt_add_grant_bool(jwt, "admin", sub->admin) &&
        !jwt_add_grant_int(jwt, "gen", (long)sub->generation) &&
        !jwt_add_grant_int(jwt, "iat", (long)now) &&
        !jwt_add_grant_int(jwt, "exp", (long)(now + cfg->lifetime)) &&
        !jwt_add_grant(jwt, "jti", jti) &&
        !(cfg->issuer && jwt_add_grant(jwt, "iss", cfg->issuer)) &&
        !(cfg->audience && jwt_add_grant(jwt, "aud", cfg->audience)) &&
        !jwt_set_alg(jwt, JWT_ALG_HS256, cfg->secret, (int)cfg->secret_len)) {
        char *encoded = jwt_encode_str(jwt);
        twin = encoded ? apr_pstrdup(p, encoded) : NULL;
        free(encoded);
    }
    jwt_free(jwt);
    json_decref(claims);
    return twin;
}

/* Every check three times: with the MAC keyed at each check, prepared once
 * (redeem_token_prepare, as the module does), and with the claims read by
 * jansson alone (generic), the reference of the in-place reader. */
static void test_token(apr_pool_t *p, int prepared, int generic)
{
    const char *secret = "0123456789abcdef0123456789abcdef-test";
    redeem_token_config_t cfg = {
        (const unsigned char *)secret, strlen(secret), NULL, NULL, 3600, 0, NULL, generic};
    if (prepared)
        ok(redeem_token_prepare(p, &cfg) == NULL && cfg.mac, "token: MAC key prepared");
    redeem_token_subject_t alice = {42, "alice@example.test", 0, 3};
    int64_t now = 1800000000;
    redeem_token_holder_t holder = {.user_id = 0};
    char *token = NULL;
    ok(redeem_token_issue(p, &cfg, &alice, now, &token) == NULL, "token: issued");
    const char *twin = libjwt_twin(p, &cfg, token, &alice, now);
    ok(twin && strcmp(token, twin) == 0, "token: the text libjwt makes of the same claims");
    redeem_token_subject_t odd = {INT64_MAX, "\"q\\u\"/\u00e9\u2028@example.test", 1, 0};
    char *odd_token = NULL;
    ok(redeem_token_issue(p, &cfg, &odd, now, &odd_token) == NULL &&
           (twin = libjwt_twin(p, &cfg, odd_token, &odd, now)) && strcmp(odd_token, twin) == 0,
       "token: libjwt's text for an admin, the largest id and an email with quotes, a "
       "backslash, a slash and non-ASCII letters");
    redeem_token_subject_t not_utf8 = {7, "a\xff@example.test", 0, 0};
    char *refused = NULL;
    ok(redeem_token_issue(p, &cfg, &not_utf8, now, &refused) != NULL && refused == NULL,
       "token: none for an email that is not UTF-8");
    redeem_token_config_t short_key = cfg;
    short_key.secret_len = REDEEM_TOKEN_SECRET_MIN_LEN - 1;
    short_key.mac = NULL;
    ok(redeem_token_issue(p, &short_key, &alice, now, &refused) != NULL && refused == NULL,
       "token: none under a secret shorter than 32 bytes");
    ok(redeem_token_verify(&cfg, token, strlen(token), now + 10, &holder) == NULL &&
           holder.user_id == 42 && holder.generation == 3 &&
           strcmp(holder.email, "alice@example.test") == 0,
       "token: verifies and names the user, its token generation and email");
    ok(redeem_token_verify(&cfg, token, strlen(token), now + 3600, &holder) != NULL,
       "token: refused at exp");
    cfg.leeway = 30;
    ok(redeem_token_verify(&cfg, token, strlen(token), now + 3620, &holder) == NULL,
       "token: leeway tolerates a late clock");
    cfg.leeway = 0;
    char *flipped = apr_pstrdup(p, token);
    flipped[strlen(flipped) - 2] = flipped[strlen(flipped) - 2] == 'A' ? 'B' : 'A';
    ok(redeem_token_verify(&cfg, flipped, strlen(flipped), now, &holder) != NULL,
       "token: flipped signature refused");

    const char *claims = "{\"sub\":\"42\",\"user_id\":42,\"email\":\"a@example.test\","
                         "\"exp\":1800003600,\"iat\":1800000000}";
    const char *hs256 = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char *good = forge(p, hs256, claims, EVP_sha256(), secret);
    holder.generation = -1;
    ok(redeem_token_verify(&cfg, good, strlen(good), now, &holder) == NULL &&
           holder.generation == 0,
       "token: a well-formed forged-by-us token verifies (the forger works), generation 0 "
       "without gen");
    char *gen7 = forge(
        p, hs256,
        "{\"sub\":\"42\",\"user_id\":42,\"email\":\"a@example.test\",\"exp\":1800003600,\"gen\":7}",
        EVP_sha256(), secret);
    ok(redeem_token_verify(&cfg, gen7, strlen(gen7), now, &holder) == NULL &&
           holder.generation == 7,
       "token: gen is the holder's generation");
    struct {
        const char *header, *claims, *key, *name;
        const EVP_MD *md;
    } attacks[] = {
        {"{\"alg\":\"HS384\",\"typ\":\"JWT\"}", claims, secret, "HS384 refused", EVP_sha384()},
        {"{\"alg\":\"HS512\",\"typ\":\"JWT\"}", claims, secret, "HS512 refused", EVP_sha512()},
        {"{\"alg\":\"hs256\",\"typ\":\"JWT\"}", claims, secret, "lowercase alg refused",
         EVP_sha256()},
        {"{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"../x\"}", claims, secret, "kid refused",
         EVP_sha256()},
        {hs256, claims, "secret", "wrong key refused", EVP_sha256()},
        {hs256, "{\"sub\":\"42\",\"user_id\":42,\"exp\":\"1800003600\"}", secret,
         "string exp refused", EVP_sha256()},
        {hs256, "{\"sub\":\"42\",\"user_id\":42,\"exp\":1800003600.5}", secret, "real exp refused",
         EVP_sha256()},
        {hs256, "{\"sub\":\"42\",\"user_id\":42}", secret, "missing exp refused", EVP_sha256()},
        {hs256, "{\"sub\":\"42\",\"user_id\":42,\"exp\":1800003600,\"nbf\":1800000100}", secret,
         "future nbf refused", EVP_sha256()},
        {hs256, "{\"sub\":\"42\",\"user_id\":42,\"exp\":1800003600,\"iat\":1800000100}", secret,
         "future iat refused", EVP_sha256()},
        {hs256, "{\"sub\":\"43\",\"user_id\":42,\"exp\":1800003600}", secret,
         "sub/user_id mismatch refused", EVP_sha256()},
        {hs256,
         "{\"sub\":\"42\",\"user_id\":42,\"email\":\"a@example.test\",\"exp\":1800003600,\"gen\":"
         "\"7\"}",
         secret, "string gen refused", EVP_sha256()},
        {hs256,
         "{\"sub\":\"42\",\"user_id\":42,\"email\":\"a@example.test\",\"exp\":1800003600,\"gen\":7."
         "0}",
         secret, "real gen refused", EVP_sha256()},
        {hs256,
         "{\"sub\":\"42\",\"user_id\":42,\"email\":\"a@example.test\",\"exp\":1800003600,\"gen\":-"
         "1}",
         secret, "negative gen refused", EVP_sha256()},
        {hs256,
         "{\"sub\":\"42\",\"user_id\":42,\"email\":\"a@example.test\",\"exp\":1800003600,\"gen\":"
         "null}",
         secret, "null gen refused", EVP_sha256()},
        {hs256, "{\"sub\":\"42\",\"user_id\":42,\"exp\":1800003600}", secret,
         "a token without email refused", EVP_sha256()},
        {hs256, "{\"sub\":\"42\",\"user_id\":42,\"email\":42,\"exp\":1800003600}", secret,
         "an email that is no string refused", EVP_sha256()},
        {hs256, "{\"sub\":\"42\",\"user_id\":42,\"email\":\"\",\"exp\":1800003600}", secret,
         "an empty email refused", EVP_sha256()},
        {hs256,
         "{\"sub\":\"42\",\"user_id\":42,\"email\":\"a\\u0000@example.test\",\"exp\":1800003600}",
         secret, "an email with a NUL refused", EVP_sha256()},
        {"{\"alg\":\"HS256\",\"alg\":\"HS256\",\"typ\":\"JWT\"}", claims, secret,
         "a header key twice refused", EVP_sha256()},
        {hs256, "{\"sub\":\"42\",\"user_id\":42,\"user_id\":7,\"exp\":1800003600}", secret,
         "a claim twice refused", EVP_sha256()},
        {hs256, "{\"sub\":\"42\",\"user_id\":42,\"exp\":1,\"exp\":1800003600}", secret,
         "exp twice (the last one valid) refused", EVP_sha256()},
        {hs256, "[1]", secret, "claims that are not an object refused", EVP_sha256()},
    };
    for (size_t i = 0; i < sizeof attacks / sizeof *attacks; i++) {
        char *forged =
            forge(p, attacks[i].header, attacks[i].claims, attacks[i].md, attacks[i].key);
        ok(redeem_token_verify(&cfg, forged, strlen(forged), now, &holder) != NULL,
           apr_pstrcat(p, "token: ", attacks[i].name, NULL));
    }
    /* exp at the top of int64 with a leeway: valid, and no overflow (UBSan
     * would report exp + leeway). */
    cfg.leeway = 300;
    char *far = forge(
        p, hs256,
        "{\"sub\":\"42\",\"user_id\":42,\"email\":\"a@example.test\",\"exp\":9223372036854775807}",
        EVP_sha256(), secret);
    ok(redeem_token_verify(&cfg, far, strlen(far), now, &holder) == NULL,
       "token: exp of 2^63-1 with a leeway is in the future, without overflow");
    cfg.leeway = 0;
    const char *none_header = "{\"alg\":\"none\",\"typ\":\"JWT\"}";
    char *none =
        apr_pstrcat(p, b64url(p, (const unsigned char *)none_header, strlen(none_header)), ".",
                    b64url(p, (const unsigned char *)claims, strlen(claims)), ".", NULL);
    ok(redeem_token_verify(&cfg, none, strlen(none), now, &holder) != NULL,
       "token: alg none refused");
    char *padded = apr_pstrcat(p, good, "=", NULL);
    ok(redeem_token_verify(&cfg, padded, strlen(padded), now, &holder) != NULL,
       "token: padding refused");
    char *extra = apr_pstrcat(p, good, ".abc", NULL);
    ok(redeem_token_verify(&cfg, extra, strlen(extra), now, &holder) != NULL,
       "token: extra segment refused");
    char *huge = apr_palloc(p, 8193);
    memset(huge, 'a', 8192);
    huge[8192] = '\0';
    huge[100] = huge[200] = '.';
    ok(redeem_token_verify(&cfg, huge, 8192, now, &holder) != NULL, "token: 8 KiB refused");

    cfg.issuer = "mod_redeem-test";
    ok(redeem_token_verify(&cfg, good, strlen(good), now, &holder) != NULL,
       "token: missing iss refused when configured");
    char *with_iss = NULL;
    ok(redeem_token_issue(p, &cfg, &alice, now, &with_iss) == NULL &&
           redeem_token_verify(&cfg, with_iss, strlen(with_iss), now, &holder) == NULL,
       "token: iss issued and accepted");
    twin = libjwt_twin(p, &cfg, with_iss, &alice, now);
    ok(twin && strcmp(with_iss, twin) == 0, "token: with iss, the text libjwt makes");
    cfg.issuer = NULL;

    /* The site's name (aud): a token of another site that shares the
     * secret, or one issued before tokens named their site, is refused. */
    cfg.audience = "0123456789abcdef";
    char *with_aud = NULL;
    ok(redeem_token_issue(p, &cfg, &alice, now, &with_aud) == NULL &&
           redeem_token_verify(&cfg, with_aud, strlen(with_aud), now, &holder) == NULL,
       "token: aud issued and accepted by its site");
    cfg.issuer = "mod_redeem-test";
    char *with_both = NULL;
    ok(redeem_token_issue(p, &cfg, &alice, now, &with_both) == NULL &&
           (twin = libjwt_twin(p, &cfg, with_both, &alice, now)) && strcmp(with_both, twin) == 0,
       "token: with iss and aud, the text libjwt makes");
    cfg.issuer = NULL;
    ok(redeem_token_verify(&cfg, good, strlen(good), now, &holder) != NULL,
       "token: a token without aud refused where the site names itself");
    cfg.audience = "fedcba9876543210";
    ok(redeem_token_verify(&cfg, with_aud, strlen(with_aud), now, &holder) != NULL,
       "token: another site's aud refused");
    cfg.audience = NULL;

    /* The header we issue is accepted without parsing: that must be the
     * header libjwt writes, and one the parsed check accepts too (the same
     * JSON in another order or without typ goes the parsed way). */
    const char *issued_header = b64url(p, (const unsigned char *)hs256, strlen(hs256));
    ok(strncmp(token, issued_header, strlen(issued_header)) == 0 &&
           token[strlen(issued_header)] == '.',
       "token: issued with the header {\"alg\":\"HS256\",\"typ\":\"JWT\"}");
    const char *other_headers[] = {"{\"typ\":\"JWT\",\"alg\":\"HS256\"}", "{\"alg\":\"HS256\"}",
                                   "{\"alg\": \"HS256\", \"typ\": \"JWT\"}"};
    for (size_t i = 0; i < sizeof other_headers / sizeof *other_headers; i++) {
        char *other = forge(p, other_headers[i], claims, EVP_sha256(), secret);
        ok(redeem_token_verify(&cfg, other, strlen(other), now, &holder) == NULL,
           apr_pstrcat(p, "token: parsed header accepted: ", other_headers[i], NULL));
    }
    /* The issued header with a bad signature: still refused (the fast path
     * skips the header's parse, never the signature). */
    char *unsigned_token =
        apr_pstrcat(p, issued_header, ".", b64url(p, (const unsigned char *)claims, strlen(claims)),
                    ".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL);
    ok(redeem_token_verify(&cfg, unsigned_token, strlen(unsigned_token), now, &holder) != NULL,
       "token: issued header, wrong signature refused");

    /* Signed claims with a NUL between two JSON tokens: jansson would read
     * on past it (the fuzzer found it); refused. */
    static const char nul_claims[] = "{\"sub\":\"42\",\"user_id\":42\0,\"exp\":1800003600}";
    char *nul_signing =
        apr_pstrcat(p, issued_header, ".",
                    b64url(p, (const unsigned char *)nul_claims, sizeof nul_claims - 1), NULL);
    unsigned char nul_mac[32];
    unsigned int nul_mac_len = 0;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)nul_signing,
         strlen(nul_signing), nul_mac, &nul_mac_len);
    char *nul_token = apr_pstrcat(p, nul_signing, ".", b64url(p, nul_mac, nul_mac_len), NULL);
    ok(redeem_token_verify(&cfg, nul_token, strlen(nul_token), now, &holder) != NULL,
       "token: claims holding a NUL byte refused");

    /* A secret longer than SHA-256's block (HMAC hashes it first). */
    const char *long_secret = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
                              "0123456789abcdef0123456789abcdef-long";
    redeem_token_config_t long_cfg = {(const unsigned char *)long_secret,
                                      strlen(long_secret),
                                      NULL,
                                      NULL,
                                      3600,
                                      0,
                                      NULL,
                                      generic};
    if (prepared)
        redeem_token_prepare(p, &long_cfg);
    char *long_good = forge(p, hs256, claims, EVP_sha256(), long_secret);
    ok(redeem_token_verify(&long_cfg, long_good, strlen(long_good), now, &holder) == NULL &&
           redeem_token_verify(&cfg, long_good, strlen(long_good), now, &holder) != NULL,
       "token: a 100-byte secret verifies its own tokens only");
}

static void test_code(void)
{
    unsigned char mac_key[32], enc_key[32], other_key[32];
    memset(mac_key, 1, sizeof mac_key);
    memset(enc_key, 2, sizeof enc_key);
    memset(other_key, 3, sizeof other_key);
    redeem_code_keys_t keys, other;
    ok(redeem_code_keys_init(&keys, mac_key, 32, enc_key, 32) == NULL, "code: keys accepted");
    ok(redeem_code_keys_init(&other, other_key, 32, enc_key, 32) == NULL, "code: other keys");
    ok(redeem_code_keys_init(&other, mac_key, 31, enc_key, 32) != NULL, "code: short key refused");
    ok(redeem_code_keys_init(&other, mac_key, 32, mac_key, 32) != NULL,
       "code: equal MAC and encryption keys refused");
    redeem_code_keys_init(&other, other_key, 32, enc_key, 32);

    char symbols[REDEEM_CODE_SYMBOLS], again[REDEEM_CODE_SYMBOLS];
    char display[REDEEM_CODE_DISPLAY_LEN + 1];
    ok(redeem_code_generate(&keys, 5, symbols) == 0, "code: generated (bucket 5)");
    ok(redeem_code_generate(&keys, REDEEM_CODE_BUCKETS + 1, again) == -1 &&
           redeem_code_generate(&keys, -1, again) == -1,
       "code: a bucket out of range refused");
    redeem_code_display(symbols, display);
    ok(strlen(display) == 26 && display[12] == '-' && display[17] == '-', "code: 12-4-8 format");
    ok(strspn(display, "0123456789ABCDEFGHJKMNPQRSTVWXYZ-") == 26, "code: Crockford alphabet");
    ok(redeem_code_check(&keys, symbols) == 5, "code: check passes and reads the bucket");
    ok(redeem_code_check(&other, symbols) == -1, "code: check fails under another key");

    /* Sloppy typing normalizes back to the same code. */
    char sloppy[40];
    snprintf(sloppy, sizeof sloppy, "  %.24s ", symbols);
    for (char *c = sloppy; *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
    ok(redeem_code_normalize(sloppy, strlen(sloppy), again) == 0 && memcmp(again, symbols, 24) == 0,
       "code: lowercase, no hyphens, spaces normalize");
    snprintf(sloppy, sizeof sloppy, "%.24s\r\n", symbols);
    ok(redeem_code_normalize(sloppy, strlen(sloppy), again) == 0 && memcmp(again, symbols, 24) == 0,
       "code: a trailing newline is trimmed too");
    ok(redeem_code_normalize("OIL0000000000000000000000", 25, again) == -1,
       "code: 25 symbols refused");
    ok(redeem_code_normalize("OIL000000000-0000-00000000", 26, again) == 0 &&
           memcmp(again, "011000000000", 12) == 0,
       "code: O reads as 0, I and L as 1");
    ok(redeem_code_normalize("U00000000000-0000-00000000", 26, again) == -1, "code: U refused");

    int caught = 0, check_typos_failed = 0;
    for (int i = 0; i < REDEEM_CODE_SYMBOLS; i++) {
        memcpy(again, symbols, 24);
        again[i] = again[i] == '0' ? '1' : '0';
        caught += redeem_code_check(&keys, again) != 5;
        check_typos_failed +=
            i >= REDEEM_CODE_RANDOM_SYMBOLS && redeem_code_check(&keys, again) < 0;
    }
    ok(caught == REDEEM_CODE_SYMBOLS,
       "code: every single-symbol typo fails the check or reads another bucket");
    ok(check_typos_failed == 4, "code: a typo in a check symbol always fails the check");
    /* Every other value of each check symbol, in every bucket's code. */
    int check_values_failed = 0, check_values = 0, each_bucket_read = 0;
    for (int bucket = 0; bucket <= REDEEM_CODE_BUCKETS; bucket++) {
        char code[REDEEM_CODE_SYMBOLS];
        each_bucket_read += redeem_code_generate(&keys, bucket, code) == 0 &&
                            redeem_code_check(&keys, code) == bucket;
        for (int i = REDEEM_CODE_RANDOM_SYMBOLS; i < REDEEM_CODE_SYMBOLS; i++)
            for (const char *c = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"; *c; c++) {
                if (*c == code[i])
                    continue;
                memcpy(again, code, sizeof again);
                again[i] = *c;
                check_values++;
                check_values_failed += redeem_code_check(&keys, again) < 0;
            }
    }
    ok(each_bucket_read == REDEEM_CODE_BUCKETS + 1,
       "code: a code of each bucket 0-15 checks as it");
    ok(check_values == 16 * 4 * 31 && check_values_failed == check_values,
       "code: in each bucket, each of the 31 other values of each check symbol fails the check");

    unsigned char hash[REDEEM_CODE_HASH_LEN], other_hash[REDEEM_CODE_HASH_LEN];
    unsigned char sealed[REDEEM_CODE_SEALED_LEN];
    redeem_code_lookup_hash(&keys, symbols, 5, hash);
    redeem_code_lookup_hash(&other, symbols, 5, other_hash);
    ok(memcmp(hash, other_hash, sizeof hash) != 0, "code: lookup hash is keyed");

    /* The bucket is the hash's first 4 bits; the rest is HMAC-SHA256 of the
     * symbols under the lookup subkey, which is the whole hash of a code of
     * bucket 0 (made before buckets). */
    unsigned char plain[32], bucket0[REDEEM_CODE_HASH_LEN];
    unsigned int plain_len = sizeof plain;
    HMAC(EVP_sha256(), keys.lookup_key, sizeof keys.lookup_key, (const unsigned char *)symbols,
         REDEEM_CODE_SYMBOLS, plain, &plain_len);
    redeem_code_lookup_hash(&keys, symbols, 0, bucket0);
    ok(memcmp(bucket0, plain, sizeof plain) == 0, "code: bucket 0's lookup hash is the HMAC");
    unsigned char zeros[REDEEM_CODE_HASH_LEN] = {0}, outside[REDEEM_CODE_HASH_LEN];
    redeem_code_lookup_hash(&keys, symbols, REDEEM_CODE_BUCKETS + 1, outside);
    ok(memcmp(outside, zeros, sizeof zeros) == 0,
       "code: a bucket out of range gives the hash of no code (all zeros)");
    ok(hash[0] >> 4 == 5 && (hash[0] & 0x0f) == (plain[0] & 0x0f) &&
           memcmp(hash + 1, plain + 1, sizeof plain - 1) == 0,
       "code: bucket 5's lookup hash is the HMAC with 5 in its first 4 bits");
    char legacy[REDEEM_CODE_SYMBOLS];
    ok(redeem_code_generate(&keys, 0, legacy) == 0 && redeem_code_check(&keys, legacy) == 0,
       "code: a code of bucket 0 checks as bucket 0");
    /* Its check symbols are the HMAC's 20 bits as they are (the check of
     * before buckets): computed here apart from code.c. */
    unsigned char check_mac[32];
    unsigned int check_len = sizeof check_mac;
    HMAC(EVP_sha256(), keys.check_key, sizeof keys.check_key, (const unsigned char *)legacy,
         REDEEM_CODE_RANDOM_SYMBOLS, check_mac, &check_len);
    unsigned int check20 =
        (unsigned int)check_mac[0] << 12 | (unsigned int)check_mac[1] << 4 | check_mac[2] >> 4;
    static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    int legacy_check = 1;
    for (int i = 0; i < 4; i++)
        legacy_check &=
            legacy[REDEEM_CODE_RANDOM_SYMBOLS + i] == crockford[(check20 >> (15 - 5 * i)) & 31];
    ok(legacy_check, "code: bucket 0's check symbols are the HMAC's first 20 bits");
    ok(redeem_code_bucket_at(0) == 1 && redeem_code_bucket_at(3599) == 1 &&
           redeem_code_bucket_at(3600) == 2 && redeem_code_bucket_at(14 * 3600) == 15 &&
           redeem_code_bucket_at(15 * 3600) == 1 && redeem_code_bucket_at(-5) == 1,
       "code: buckets 1 to 15 take turns by the hour");
    ok(redeem_code_seal(&keys, symbols, hash, sealed) == 0, "code: sealed");
    ok(memmem(sealed, sizeof sealed, symbols, 24) == NULL, "code: sealed holds no clear text");
    ok(redeem_code_open(&keys, sealed, sizeof sealed, hash, again) == 0 &&
           memcmp(again, symbols, 24) == 0,
       "code: opens to the same code");
    ok(redeem_code_open(&keys, sealed, sizeof sealed, other_hash, again) == -1,
       "code: refuses to open for another row");
    sealed[20] ^= 1;
    ok(redeem_code_open(&keys, sealed, sizeof sealed, hash, again) == -1,
       "code: tampering detected");

    /* A batch makes codes as the one-at-a-time calls would: each passes the
     * check, its hash is the lookup hash, its seal opens to it; and no two
     * of 1,000 (over several bulk draws of random bytes) are alike. */
    redeem_code_batch_t batch;
    ok(redeem_code_batch_begin(&batch, &keys, REDEEM_CODE_BUCKETS + 1) == -1,
       "code batch: a bucket out of range refused");
    ok(redeem_code_batch_begin(&batch, &keys, 7) == 0, "code batch: begins (bucket 7)");
    int good = 0, distinct = 1;
    static char made[1000][REDEEM_CODE_SYMBOLS];
    unsigned char nonces[1000][REDEEM_CODE_NONCE_LEN];
    for (int i = 0; i < 1000; i++) {
        char code[REDEEM_CODE_SYMBOLS], opened[REDEEM_CODE_SYMBOLS];
        unsigned char code_hash[REDEEM_CODE_HASH_LEN], expected[REDEEM_CODE_HASH_LEN];
        unsigned char box[REDEEM_CODE_SEALED_LEN];
        if (redeem_code_batch_next(&batch, code, code_hash, box) != 0)
            break;
        redeem_code_lookup_hash(&keys, code, 7, expected);
        good += redeem_code_check(&keys, code) == 7 && code_hash[0] >> 4 == 7 &&
                memcmp(code_hash, expected, sizeof expected) == 0 &&
                redeem_code_open(&keys, box, sizeof box, code_hash, opened) == 0 &&
                memcmp(opened, code, sizeof code) == 0;
        memcpy(made[i], code, sizeof code);
        memcpy(nonces[i], box, REDEEM_CODE_NONCE_LEN);
        for (int j = 0; j < i; j++)
            if (memcmp(made[j], code, sizeof code) == 0 ||
                memcmp(nonces[j], nonces[i], REDEEM_CODE_NONCE_LEN) == 0)
                distinct = 0;
    }
    redeem_code_batch_end(&batch);
    ok(good == 1000, "code batch: 1000 codes check as bucket 7, hash and open");
    ok(distinct, "code batch: no code and no nonce repeats");
    ok(!batch.check_mac && !batch.lookup_mac && !batch.seal, "code batch: ended");

    /* The lookup key's order is the signed bigint's: 0x80.. (the most
     * negative) first, 0x7f.. last; later bytes break ties, the 9th never. */
    static const unsigned char order_cases[][REDEEM_CODE_HASH_LEN] = {
        {0x80, 0, 0, 0, 0, 0, 0, 0},
        {0x80, 0, 0, 0, 0, 0, 0, 1},
        {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
        {0, 0, 0, 0, 0, 0, 0, 0, 0xff},
        {0, 0, 0, 0, 0, 0, 0, 1},
        {0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
    };
    int ordered = 1;
    for (size_t i = 1; i < sizeof order_cases / sizeof *order_cases; i++)
        ordered &=
            redeem_code_lookup_order(order_cases[i - 1]) < redeem_code_lookup_order(order_cases[i]);
    unsigned char same_key[REDEEM_CODE_HASH_LEN] = {0};
    same_key[8] = 0x42;
    ok(ordered, "code: lookup order follows the signed bigint of the first 8 bytes");
    ok(redeem_code_lookup_order(same_key) == redeem_code_lookup_order(order_cases[3]),
       "code: lookup order reads only the first 8 bytes");

    char hex[2 * REDEEM_CODE_HASH_LEN + 1];
    unsigned char back[REDEEM_CODE_HASH_LEN];
    redeem_text_hex_encode(hash, sizeof hash, hex);
    ok(redeem_text_hex_decode(hex, back, sizeof back) == 0 && memcmp(back, hash, sizeof hash) == 0,
       "hex: round trip");
    ok(redeem_text_hex_decode("zz", back, 1) == -1, "hex: non-hex refused");
    redeem_code_keys_free(&keys);
    ok(!keys.ready && !keys.check_mac && !keys.cipher, "code: keys freed");
}

static void test_time(void)
{
    int64_t usec = 0;
    ok(redeem_timestamp_parse("1970-01-01T00:00:00Z", &usec) == 0 && usec == 0, "time: epoch");
    ok(redeem_timestamp_parse("2023-12-01T10:30:00.000001Z", &usec) == 0 &&
           usec == 1701426600000001LL,
       "time: microseconds");
    ok(redeem_timestamp_parse("2023-12-01T12:30:00+02:00", &usec) == 0 &&
           usec == 1701426600000000LL,
       "time: offset");
    ok(redeem_timestamp_parse("2024-02-29T00:00:00Z", &usec) == 0, "time: leap day");
    ok(redeem_timestamp_parse("2023-12-01T10:30:00-15:59", &usec) == 0, "time: offset -15:59");
    ok(redeem_timestamp_parse("2023-12-01T10:30:00+16:00", &usec) == 0 &&
           usec == 1701369000000000LL,
       "time: offset +16:00 (RFC 3339 allows hours to 23)");
    ok(redeem_timestamp_parse("2023-12-01T10:30:00-23:59", &usec) == 0 &&
           usec == 1701512940000000LL,
       "time: offset -23:59");
    ok(redeem_timestamp_parse("2016-12-31T23:59:60Z", &usec) == 0 && usec == 1483228800000000LL,
       "time: a leap second is read as the next second");
    ok(redeem_timestamp_parse("2016-12-31T23:59:60.5Z", &usec) == 0 && usec == 1483228800500000LL,
       "time: a leap second's fraction is kept");
    ok(redeem_timestamp_parse("2017-01-01T00:59:60+01:00", &usec) == 0 &&
           usec == 1483228800000000LL,
       "time: a leap second in another offset");
    ok(redeem_timestamp_parse("9999-12-31T23:59:59.999999Z", &usec) == 0 &&
           usec == 253402300799999999LL,
       "time: the last instant of 9999 UTC");
    ok(redeem_timestamp_parse("0001-01-01T00:00:00Z", &usec) == 0, "time: the first of year 1 UTC");
    const char *bad[] = {"2023-02-29T00:00:00Z",
                         "2023-12-01 10:30:00Z",
                         "2023-12-01T10:30:00",
                         "2023-12-01T24:00:00Z",
                         "tomorrow",
                         "2023-12-01T10:30:00.Z",
                         "2023-12-01T10:30:00+0200",
                         "2023-13-01T00:00:00Z",
                         "2023-12-01T10:30:00+24:00",
                         "2023-12-01T10:30:00-23:60",
                         "2023-12-01T10:30:61Z",
                         "2023-12-01T10:60:00Z",
                         "9999-12-31T23:59:59-15:59", /* 10000-01-01T15:58:59Z */
                         "9999-12-31T23:59:60Z",      /* 10000-01-01T00:00:00Z */
                         "0001-01-01T00:00:00+00:01" /* in the year 0 UTC */};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char name[80];
        snprintf(name, sizeof name, "time: refused '%s'", bad[i]);
        ok(redeem_timestamp_parse(bad[i], &usec) == -1, name);
    }

    /* Written back in the API's form, the instant as parsed: digits past the
     * sixth cut, never carried into the next second (or year). */
    const char *forms[][2] = {
        {"1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000000Z"},
        {"2023-12-01T12:30:00.5+02:00", "2023-12-01T10:30:00.500000Z"},
        {"2024-02-29T23:59:59.000001Z", "2024-02-29T23:59:59.000001Z"},
        {"1969-12-31T23:59:59.999999Z", "1969-12-31T23:59:59.999999Z"},
        {"1900-03-01T00:00:00Z", "1900-03-01T00:00:00.000000Z"},
        {"0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000000Z"},
        {"9999-12-31T23:59:59.9999999Z", "9999-12-31T23:59:59.999999Z"},
        {"2030-06-30T23:59:59.999999999-00:30", "2030-07-01T00:29:59.999999Z"},
        /* More than nine digits: RFC 3339 sets no bound (they were refused). */
        {"2030-01-01T00:00:00.1234567891Z", "2030-01-01T00:00:00.123456Z"},
        {"9999-12-31T23:59:59.99999999999999999999Z", "9999-12-31T23:59:59.999999Z"},
        {"2099-01-01T00:00:00+16:00", "2098-12-31T08:00:00.000000Z"},
        {"2099-01-01T00:00:00-23:59", "2099-01-01T23:59:00.000000Z"},
        {"2016-12-31T23:59:60.25Z", "2017-01-01T00:00:00.250000Z"},
    };
    for (size_t i = 0; i < sizeof forms / sizeof *forms; i++) {
        char name[96], out[REDEEM_TIMESTAMP_LEN + 1];
        snprintf(name, sizeof name, "time: '%s' written %s", forms[i][0], forms[i][1]);
        ok(redeem_timestamp_parse(forms[i][0], &usec) == 0 &&
               redeem_timestamp_format(usec, out) == 0 && strcmp(out, forms[i][1]) == 0,
           name);
    }
    char out[REDEEM_TIMESTAMP_LEN + 1];
    ok(redeem_timestamp_format(253402300800000000LL, out) == -1,
       "time: the year 10000 not written");
    ok(redeem_timestamp_format(-62135596800000001LL, out) == -1, "time: the year 0 not written");
    /* Every day of four centuries and a half, back from 2100 */
    int all_days = 1;
    for (int64_t day = -25567; day < 47482 && all_days; day++) {
        int64_t back = 0;
        all_days = redeem_timestamp_format(day * 86400000000LL + 4321, out) == 0 &&
                   redeem_timestamp_parse(out, &back) == 0 && back == day * 86400000000LL + 4321;
    }
    ok(all_days, "time: 1900-2100 written and read back alike");
}

static void test_query(apr_pool_t *p)
{
    int bad = 0;
    const char *v = redeem_query_param(p, "per_page=5&page=2", "page", &bad);
    ok(v && strcmp(v, "2") == 0 && !bad, "query: a parameter");
    v = redeem_query_param(p, "p%61ge=2", "page", &bad);
    ok(v && strcmp(v, "2") == 0 && !bad, "query: a name decoded");
    v = redeem_query_param(p, "per%5Fpage=7", "per_page", &bad);
    ok(v && strcmp(v, "7") == 0 && !bad, "query: a name with an encoded underscore");
    v = redeem_query_param(p, "p%61ge=2&page=3", "page", &bad);
    ok(!v && bad, "query: one name spelled two ways repeats");
    bad = 0;
    v = redeem_query_param(p, "pa%zzge=2&page=4", "page", &bad);
    ok(v && strcmp(v, "4") == 0 && !bad, "query: a name that does not decode is not ours");
    v = redeem_query_param(p, "pages=1", "page", &bad);
    ok(!v && !bad, "query: a longer name is another");
}

static void test_text(apr_pool_t *p)
{
    int64_t n = -1;
    ok(redeem_text_parse_int64("0", 0, 10, &n) == 0 && n == 0, "int: zero");
    ok(redeem_text_parse_int64("9223372036854775807", 0, INT64_MAX, &n) == 0 && n == INT64_MAX,
       "int: the largest int64");
    const char *bad_ints[] = {"",     "-1",
                              "+1",   " 1",
                              "1 ",   "1.0",
                              "0x10", "9223372036854775808",
                              "11",   "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad_ints / sizeof *bad_ints; i++)
        ok(redeem_text_parse_int64(bad_ints[i], 0, 10, &n) == -1,
           apr_psprintf(p, "int: refused '%s' for 0..10", bad_ints[i]));
    ok(redeem_text_is_uuid("0f8fad5b-d9cb-469f-a165-70867728950e"), "uuid: accepted");
    ok(redeem_text_is_uuid("0F8FAD5B-D9CB-469F-A165-70867728950E"), "uuid: upper case accepted");
    ok(!redeem_text_is_uuid("0f8fad5bd9cb469fa16570867728950e"), "uuid: without hyphens refused");
    ok(!redeem_text_is_uuid("0f8fad5b-d9cb-469f-a165-70867728950g"), "uuid: non-hex refused");
    ok(!redeem_text_is_uuid("0f8fad5b-d9cb-469f-a165-70867728950e0"), "uuid: too long refused");
    ok(redeem_text_utf8_length("a\xc3\xa4\xe2\x82\xac\xf0\x9f\x98\x80", 10) == 4,
       "utf8: one to four bytes a character");
    ok(redeem_text_is_space('\v') && !redeem_text_is_space('x') && !redeem_text_is_space('\0'),
       "space: ASCII whitespace only");

    unsigned char bytes[8];
    size_t decoded = 0;
    ok(redeem_text_base64_decode(REDEEM_TEXT_BASE64URL, "AQID_-8", 7, bytes, &decoded) == 0 &&
           decoded == 5 && bytes[0] == 1 && bytes[3] == 0xff && bytes[4] == 0xef,
       "base64url: decoded");
    ok(redeem_text_base64_decode(REDEEM_TEXT_BASE64URL, "", 0, bytes, &decoded) == 0 &&
           decoded == 0,
       "base64url: empty");
    const char *bad64[] = {"AQ==", "AQ+/", "A", "AR", "AQI=", "AQ I"};
    for (size_t i = 0; i < sizeof bad64 / sizeof *bad64; i++)
        ok(redeem_text_base64_decode(REDEEM_TEXT_BASE64URL, bad64[i], strlen(bad64[i]), bytes,
                                     &decoded) == -1,
           apr_psprintf(p, "base64url: refused '%s'", bad64[i]));
    char encoded[16];
    const unsigned char raw[] = {0xfb, 0xff, 0x01, 0x02};
    redeem_text_base64_encode(REDEEM_TEXT_BASE64, raw, 4, encoded);
    ok(strcmp(encoded, "+/8BAg") == 0, "base64: standard alphabet, no padding");
    redeem_text_base64_encode(REDEEM_TEXT_BASE64URL, raw, 4, encoded);
    ok(strcmp(encoded, "-_8BAg") == 0, "base64url: URL alphabet");
    ok(redeem_text_base64_decode(REDEEM_TEXT_BASE64, "+/8BAg", 6, bytes, &decoded) == 0 &&
           decoded == 4 && memcmp(bytes, raw, 4) == 0,
       "base64: round trip");

    unsigned char key[8];
    ok(redeem_text_key_bytes("00ff10", 6, key) == 3 && key[0] == 0 && key[1] == 0xff &&
           key[2] == 0x10,
       "key: even hex decoded");
    ok(redeem_text_key_bytes("abc", 3, key) == 3 && memcmp(key, "abc", 3) == 0,
       "key: odd length taken raw");
    ok(redeem_text_key_bytes("zz", 2, key) == 2 && memcmp(key, "zz", 2) == 0,
       "key: non-hex taken raw");
}

static void write_file(apr_pool_t *p, const char *path, const char *content, apr_fileperms_t perms)
{
    apr_file_t *file;
    apr_file_remove(path, p);
    apr_file_open(&file, path, APR_FOPEN_WRITE | APR_FOPEN_CREATE | APR_FOPEN_TRUNCATE, perms, p);
    apr_file_puts(content, file);
    apr_file_close(file);
    apr_file_perms_set(path, perms);
}

static void test_keyfile(apr_pool_t *p)
{
    const char *dir;
    redeem_keyfile_t key;
    apr_temp_dir_get(&dir, p);
    const char *path = apr_psprintf(p, "%s/redeem_unit_key_%d", dir, (int)getpid());
    write_file(p, path, "00112233\n", APR_FPROT_UREAD | APR_FPROT_UWRITE);
    ok(redeem_keyfile_read(p, path, "TestKey", &key) == NULL, "keyfile: read");
    ok(key.text_len == 8 && strcmp(key.text, "00112233") == 0, "keyfile: newline trimmed");
    ok(key.len == 4 && key.bytes[1] == 0x11, "keyfile: hex decoded");
    ok(key.warning == NULL, "keyfile: mode 0600 draws no warning");
    write_file(p, path, "00112233",
               APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_GREAD | APR_FPROT_WREAD);
    ok(redeem_keyfile_read(p, path, "TestKey", &key) == NULL && key.warning &&
           strstr(key.warning, "mode 644"),
       "keyfile: mode 0644 warned about");
    apr_file_remove(path, p);
    ok(redeem_keyfile_read(p, path, "TestKey", &key) != NULL, "keyfile: a missing file refused");
}

static void test_futex_hash(void)
{
    ok(redeem_futex_hash_check(2) == NULL && redeem_futex_hash_check(4096) == NULL &&
           redeem_futex_hash_check(65536) == NULL,
       "futex hash: powers of two from 2 to 65536 accepted");
    ok(redeem_futex_hash_check(0) && redeem_futex_hash_check(1) && redeem_futex_hash_check(3) &&
           redeem_futex_hash_check(1000) && redeem_futex_hash_check(131072) &&
           redeem_futex_hash_check(-2),
       "futex hash: 0, 1, 3, 1000, 131072 and -2 refused");
    unsigned int now = 0;
    if (redeem_futex_hash_slots() < 0) {
        /* A kernel before 6.16: the setting fails with EINVAL, as the module's
         * warning says. */
        ok(errno == EINVAL && redeem_futex_hash_resize(256, &now) == EINVAL,
           "futex hash: a kernel without the setting says EINVAL");
        return;
    }
    ok(redeem_futex_hash_resize(256, &now) == 0 && now == 256 && redeem_futex_hash_slots() == 256,
       "futex hash: resized to 256 buckets, and the kernel says so");
    ok(redeem_futex_hash_resize(3, &now) == EINVAL && redeem_futex_hash_slots() == 256,
       "futex hash: 3 buckets refused by the kernel, the size unchanged");
}

static void test_log_throttle(void)
{
    const int64_t every = 10 * 1000000;
    redeem_log_throttle_t throttle = {0, 0};
    uint32_t held_back = 99;
    int64_t start = 1700000000LL * 1000000;
    ok(redeem_log_throttle_due(&throttle, start, every, &held_back) == 1 && held_back == 0,
       "log throttle: the first occurrence is told, nothing held back");
    int told = 0;
    for (int i = 1; i <= 5; i++)
        told += redeem_log_throttle_due(&throttle, start + i * 1000000, every, &held_back);
    ok(told == 0 && held_back == 0 && throttle.held_back == 5,
       "log throttle: five more within the interval are held back and counted");
    ok(redeem_log_throttle_due(&throttle, start + every - 1, every, &held_back) == 0,
       "log throttle: one just before the interval ends is held back");
    ok(redeem_log_throttle_due(&throttle, start + every, every, &held_back) == 1 && held_back == 6,
       "log throttle: the first once the interval is over is told, with the six held back");
    ok(redeem_log_throttle_due(&throttle, start + every + 1, every, &held_back) == 0 &&
           held_back == 0,
       "log throttle: the count starts again after it was told");
    ok(redeem_log_throttle_due(&throttle, start + every - 5, every, &held_back) == 0 &&
           throttle.told_at == start + every,
       "log throttle: a thread that read the clock before the one that told does not tell "
       "again, nor move its time back");
    redeem_log_throttle_reset(&throttle);
    ok(redeem_log_throttle_due(&throttle, start + 1, every, &held_back) == 1,
       "log throttle: after a reset the next occurrence is told at once");
}

/* ---- core/log_throttle.c: an outage told once at its start and its end. */

/* What processes sharing one outage word told, in a shared mapping. */
typedef struct {
    uint32_t state;
    uint64_t starts_told, ends_told;
} outage_shared_t;

static void outage_worker(outage_shared_t *shared, unsigned seed, int rounds)
{
    for (int i = 0; i < rounds; i++) {
        seed = seed * 1103515245u + 12345u;
        unsigned pick = (seed >> 16) % 8;
        if (pick < 4) {
            if (redeem_outage_failed(&shared->state, pick != 0))
                __atomic_add_fetch(&shared->starts_told, 1, __ATOMIC_RELAXED);
        }
        else if (redeem_outage_ended(&shared->state))
            __atomic_add_fetch(&shared->ends_told, 1, __ATOMIC_RELAXED);
    }
}

static void test_outage(void)
{
    uint32_t state = REDEEM_OUTAGE_NONE;
    ok(redeem_outage_failed(&state, 1) == 1, "outage: the first failure is told");
    ok(redeem_outage_failed(&state, 1) == 0, "outage: the next failures are not");
    ok(redeem_outage_ended(&state) == 1, "outage: the first answer after it tells its end");
    ok(redeem_outage_ended(&state) == 0 && state == REDEEM_OUTAGE_NONE,
       "outage: the answers after that do not");
    ok(redeem_outage_failed(&state, 0) == 0 && state == REDEEM_OUTAGE_UNTOLD,
       "outage: a failure within the quiet time begins an outage, untold");
    ok(redeem_outage_ended(&state) == 0 && state == REDEEM_OUTAGE_NONE,
       "outage: the end of an untold outage is not told");
    redeem_outage_failed(&state, 0);
    ok(redeem_outage_failed(&state, 1) == 1 && state == REDEEM_OUTAGE_TOLD,
       "outage: one begun in the quiet time is told by its first failure after it");
    ok(redeem_outage_ended(&state) == 1, "outage: ... and so is its end");
    /* A failure's two steps with an answer of another process between them
     * (or the failing process killed after its first): with two words
     * ("down", "told") that interleaving left "told" set while Redis
     * answered, and the next outage was never told, nor its end. */
    redeem_outage_begin(&state);
    ok(redeem_outage_ended(&state) == 0, "outage: an answer between a failure's steps ends it, "
                                         "untold");
    ok(redeem_outage_claim(&state, 1) == 0 && state == REDEEM_OUTAGE_NONE,
       "outage: ... and the failure's second step then tells nothing and leaves it over");
    ok(redeem_outage_failed(&state, 1) == 1, "outage: ... so the next outage is told");
    ok(redeem_outage_ended(&state) == 1, "outage: ... and its end");
    redeem_outage_begin(&state); /* the failing process killed here */
    ok(redeem_outage_ended(&state) == 0 && redeem_outage_failed(&state, 1) == 1,
       "outage: a failure whose process died after its first step: the next answer ends it, "
       "and the next outage is told");
    redeem_outage_ended(&state);
    /* Processes failing and answering at once, as httpd's children do: every
     * start told gets its end told (the last answer ends what is left), and
     * the next outage is told. */
    outage_shared_t *shared =
        mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) {
        ok(0, "outage: a shared mapping for the processes");
        return;
    }
    memset(shared, 0, sizeof *shared);
    pid_t workers[4];
    int started = 0;
    for (int w = 0; w < 4; w++) {
        pid_t pid = fork();
        if (pid == 0) {
            outage_worker(shared, 7919u * (unsigned)(w + 1), 500000);
            _exit(0);
        }
        if (pid > 0)
            workers[started++] = pid;
    }
    int all_exited = started == 4;
    for (int w = 0; w < started; w++) {
        int status = 0;
        all_exited = waitpid(workers[w], &status, 0) == workers[w] && WIFEXITED(status) &&
                     WEXITSTATUS(status) == 0 && all_exited;
    }
    if (redeem_outage_ended(&shared->state))
        shared->ends_told++;
    uint64_t starts = shared->starts_told, ends = shared->ends_told;
    ok(all_exited && starts > 0 && starts == ends,
       "outage: four processes, two million failures and answers at random: every start "
       "told has its end told");
    if (starts != ends)
        printf("# %llu starts told, %llu ends\n", (unsigned long long)starts,
               (unsigned long long)ends);
    ok(redeem_outage_failed(&shared->state, 1) == 1, "outage: ... and the next outage is told");
    munmap(shared, sizeof *shared);
}

/* ---- core/sync.c: the instant a timed wait sleeps until, and the waits. */

static int same_instant(const struct timespec *t, time_t sec, long nsec)
{
    return t->tv_sec == sec && t->tv_nsec == nsec;
}

static apr_int64_t monotonic_us(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (apr_int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
}

typedef struct {
    redeem_sync_lock_t *lock;
    redeem_sync_cond_t *cond;
    int signalled;
} sync_pair_t;

static void *APR_THREAD_FUNC signal_soon(apr_thread_t *thread, void *data)
{
    sync_pair_t *pair = data;
    apr_sleep(apr_time_from_msec(50));
    redeem_sync_lock(pair->lock);
    pair->signalled = 1;
    redeem_sync_signal(pair->cond);
    redeem_sync_unlock(pair->lock);
    (void)thread;
    return NULL;
}

typedef struct {
    redeem_sync_event_t event;
    int result; /* written before the event is finished */
} sync_event_pair_t;

static void *APR_THREAD_FUNC finish_soon(apr_thread_t *thread, void *data)
{
    sync_event_pair_t *pair = data;
    apr_sleep(apr_time_from_msec(50));
    pair->result = 42;
    redeem_sync_event_finish(&pair->event);
    redeem_sync_event_wake(&pair->event);
    (void)thread;
    return NULL;
}

static void test_sync_event(apr_pool_t *pool)
{
    redeem_sync_event_t event;
    redeem_sync_event_init(&event);
    apr_uint32_t first = redeem_sync_event_seen(&event);
    ok(!redeem_sync_event_done(first), "sync event: a new event is not finished");
    redeem_sync_event_nudge(&event);
    apr_uint32_t nudged = redeem_sync_event_seen(&event);
    ok(nudged != first && !redeem_sync_event_done(nudged),
       "sync event: a nudge changes the word and does not finish it");
    redeem_sync_event_finish(&event);
    ok(redeem_sync_event_done(redeem_sync_event_seen(&event)), "sync event: finished");
    redeem_sync_event_nudge(&event);
    ok(redeem_sync_event_done(redeem_sync_event_seen(&event)),
       "sync event: a nudge after the finish leaves it finished");
    event.word = 0x7fffffffu;
    redeem_sync_event_nudge(&event);
    ok(!redeem_sync_event_done(redeem_sync_event_seen(&event)) && event.word == 0,
       "sync event: the count of nudges wraps without finishing");
    event.word = 0xffffffffu;
    redeem_sync_event_nudge(&event);
    ok(event.word == 0x80000000u, "sync event: ... and keeps a finish when it wraps");

    redeem_sync_event_init(&event);
    apr_uint32_t seen = redeem_sync_event_seen(&event);
    redeem_sync_event_nudge(&event);
    apr_int64_t began = monotonic_us();
    apr_status_t changed = redeem_sync_event_wait(&event, seen, apr_time_from_sec(600));
    apr_status_t unlimited = redeem_sync_event_wait(&event, seen, -1);
    ok(changed == APR_SUCCESS && unlimited == APR_SUCCESS && monotonic_us() - began < 500000,
       "sync event: a wait on a word that changed since it was read returns at once "
       "(no wake-up lost between the read and the sleep)");

    seen = redeem_sync_event_seen(&event);
    began = monotonic_us();
    apr_status_t none = redeem_sync_event_wait(&event, seen, 0);
    ok(none == APR_TIMEUP && monotonic_us() - began < 50000,
       "sync event: a wait of no time times out at once");
    began = monotonic_us();
    apr_status_t short_wait = redeem_sync_event_wait(&event, seen, 30000);
    apr_int64_t took = monotonic_us() - began;
    ok(short_wait == APR_TIMEUP && took >= 30000 && took < 500000,
       apr_psprintf(
           pool, "sync event: a wait of 30 ms times out after it (%" APR_INT64_T_FMT " µs)", took));

    sync_event_pair_t pair = {.result = 0};
    redeem_sync_event_init(&pair.event);
    apr_thread_t *thread;
    began = monotonic_us();
    seen = redeem_sync_event_seen(&pair.event);
    apr_thread_create(&thread, NULL, finish_soon, &pair, pool);
    /* Each wait bounded, so that a lost wake-up fails the test instead of
     * hanging it; the event is finished 50 ms in. */
    while (!redeem_sync_event_done(seen) && monotonic_us() - began < 5000000) {
        redeem_sync_event_wait(&pair.event, seen, apr_time_from_sec(2));
        seen = redeem_sync_event_seen(&pair.event);
    }
    took = monotonic_us() - began;
    int result = pair.result;
    apr_status_t rv;
    apr_thread_join(&rv, thread);
    ok(redeem_sync_event_done(seen) && result == 42 && took < 1000000,
       apr_psprintf(pool,
                    "sync event: a wait of 2 s ends when the event is finished and woken, "
                    "50 ms in, with what was written before (%" APR_INT64_T_FMT " µs)",
                    took));
}

static void test_sync(apr_pool_t *pool)
{
    struct timespec now = {5, 999999999}, until;
    redeem_sync_deadline(&now, 1, &until);
    ok(same_instant(&until, 6, 999), "sync: 1 µs after x.999999999 s carries into the next second");
    redeem_sync_deadline(&now, 100000, &until);
    ok(same_instant(&until, 6, 99999999), "sync: 100 ms after x.999999999 s");
    now = (struct timespec){5, 0};
    redeem_sync_deadline(&now, apr_time_from_sec(600), &until);
    ok(same_instant(&until, 605, 0), "sync: 600 s (the longest RedeemDBTimeout)");
    redeem_sync_deadline(&now, apr_time_from_sec(1) + 1, &until);
    ok(same_instant(&until, 6, 1000), "sync: 1 s and 1 µs");
    now = (struct timespec){5, 500000000};
    redeem_sync_deadline(&now, 0, &until);
    ok(same_instant(&until, 5, 500000000), "sync: no time: now");
    redeem_sync_deadline(&now, -apr_time_from_sec(3), &until);
    ok(same_instant(&until, 5, 500000000), "sync: a negative timeout counts as none: now");

    sync_pair_t pair = {NULL, NULL, 0};
    int made = redeem_sync_lock_create(&pair.lock, pool) == APR_SUCCESS &&
               redeem_sync_cond_create(&pair.cond, pool) == APR_SUCCESS;
    ok(made, "sync: a lock and a condition made");
    if (!made)
        return;
    apr_int64_t began = monotonic_us();
    redeem_sync_lock(pair.lock);
    apr_status_t none = redeem_sync_timedwait(pair.cond, pair.lock, 0);
    apr_status_t negative = redeem_sync_timedwait(pair.cond, pair.lock, -1000000);
    redeem_sync_unlock(pair.lock);
    ok(none == APR_TIMEUP && negative == APR_TIMEUP && monotonic_us() - began < 50000,
       "sync: a wait of no time, or of a negative one, times out at once");

    began = monotonic_us();
    redeem_sync_lock(pair.lock);
    apr_status_t short_wait = redeem_sync_timedwait(pair.cond, pair.lock, 30000);
    redeem_sync_unlock(pair.lock);
    apr_int64_t took = monotonic_us() - began;
    ok(short_wait == APR_TIMEUP && took >= 30000 && took < 500000,
       apr_psprintf(pool, "sync: a wait of 30 ms times out after it (%" APR_INT64_T_FMT " µs)",
                    took));

    apr_thread_t *thread;
    began = monotonic_us();
    redeem_sync_lock(pair.lock);
    apr_thread_create(&thread, NULL, signal_soon, &pair, pool);
    apr_status_t woken = APR_SUCCESS;
    while (!pair.signalled && monotonic_us() - began < 5000000)
        woken = redeem_sync_timedwait(pair.cond, pair.lock, apr_time_from_sec(600));
    redeem_sync_unlock(pair.lock);
    took = monotonic_us() - began;
    apr_status_t rv;
    apr_thread_join(&rv, thread);
    ok(pair.signalled && woken == APR_SUCCESS && took < 1000000,
       apr_psprintf(pool,
                    "sync: a wait of 600 s ends when signalled, 50 ms in (%" APR_INT64_T_FMT " µs)",
                    took));
}

/* The claims' two readers, the in-place one (claims of the shape we issue)
 * and jansson (anything else), judge every token alike: each case is
 * verified both ways and must get the same answer, and the one expected. */
static void test_token_readers(apr_pool_t *p)
{
    const char *secret = "0123456789abcdef0123456789abcdef-test";
    redeem_token_config_t flat = {
        (const unsigned char *)secret, strlen(secret), NULL, NULL, 3600, 0, NULL, 0};
    ok(redeem_token_prepare(p, &flat) == NULL, "token readers: MAC key prepared");
    redeem_token_config_t generic = flat;
    generic.generic_claims = 1;
    const int64_t now = 1800000000;
#define CLAIMS_HEAD "\"sub\":\"42\",\"user_id\":42,\"exp\":1800003600"
    char many_keys[1024] = "{" CLAIMS_HEAD ",\"email\":\"a@example.test\"";
    for (int k = 0; k < 30; k++)
        snprintf(many_keys + strlen(many_keys), sizeof many_keys - strlen(many_keys), ",\"k%d\":%d",
                 k, k);
    strcat(many_keys, "}");
    struct {
        const char *claims, *name;
        int valid;
        const char *email; /* the holder's, when valid */
    } cases[] = {
        {"{" CLAIMS_HEAD ",\"email\":\"a@example.test\"}", "the shape we issue", 1,
         "a@example.test"},
        {" {\n\t\"sub\" : \"42\" , \"user_id\" : 42 ,\r\"exp\" : 1800003600 , \"email\" : "
         "\"a@example.test\" } \n",
         "whitespace everywhere JSON allows it", 1, "a@example.test"},
        {"{" CLAIMS_HEAD ",\"email\":\"a\\u0040example.test\"}", "an escaped email", 1,
         "a@example.test"},
        {"{" CLAIMS_HEAD ",\"email\":\"\\\"a\\\\\\\"@example.test\"}", "an email with quotes", 1,
         "\"a\\\"@example.test"},
        {"{" CLAIMS_HEAD ",\"email\":\"\xc3\xa9@example.test\"}", "a UTF-8 email", 1,
         "\xc3\xa9@example.test"},
        {"{" CLAIMS_HEAD ",\"email\":\"\xc3@example.test\"}", "an email of invalid UTF-8", 0, NULL},
        {"{" CLAIMS_HEAD ",\"email\":\"a\x01@example.test\"}", "a raw control character", 0, NULL},
        {"{" CLAIMS_HEAD ",\"email\":\"a\x7f@example.test\"}", "DEL in an email", 1,
         "a\x7f@example.test"},
        {"{" CLAIMS_HEAD ",\"email\":\"a@example.test\",\"admin\":true,\"x\":false,\"y\":null}",
         "literals", 1, "a@example.test"},
        {"{" CLAIMS_HEAD ",\"email\":\"a@example.test\",\"x\":truex}", "a literal run on", 0, NULL},
        {"{" CLAIMS_HEAD ",\"email\":\"a@example.test\",\"x\":{\"y\":[1,2.5]}}",
         "a nested value of another claim", 1, "a@example.test"},
        {"{" CLAIMS_HEAD ",\"email\":\"a@example.test\",\"x\":1.5}", "a real of another claim", 1,
         "a@example.test"},
        {"{" CLAIMS_HEAD ",\"email\":\"a@example.test\",\"x\":-0}", "-0", 1, "a@example.test"},
        {"{\"sub\":\"42\",\"user_id\":42,\"exp\":1800003600e0,\"email\":\"a@example.test\"}",
         "an exp with an exponent", 0, NULL},
        {"{\"sub\":\"42\",\"user_id\":42,\"exp\":01800003600,\"email\":\"a@example.test\"}",
         "a leading zero", 0, NULL},
        {"{\"sub\":\"42\",\"user_id\":42,\"exp\":9223372036854775808,\"email\":\"a@example.test\"}",
         "exp one over int64", 0, NULL},
        {"{\"sub\":\"42\",\"user_id\":42,\"exp\":9223372036854775807,\"email\":\"a@example.test\"}",
         "exp at the top of int64", 1, "a@example.test"},
        {"{\"sub\":\"42\",\"user_id\":42,\"exp\":1800003600,\"email\":\"a@example.test\",\"gen\":"
         "-9223372036854775808}",
         "gen at the bottom of int64", 0, NULL},
        {"{\"sub\":\"42\",\"user_id\":42,\"exp\":1800003600,\"email\":\"a@example.test\",\"gen\":"
         "-9223372036854775809}",
         "gen under int64", 0, NULL},
        {"{\"sub\":\"42\",\"user_id\":true,\"exp\":1800003600,\"email\":\"a@example.test\"}",
         "a user_id of true", 0, NULL},
        {"{\"sub\":42,\"user_id\":42,\"exp\":1800003600,\"email\":\"a@example.test\"}",
         "a sub that is a number", 0, NULL},
        {"{" CLAIMS_HEAD ",\"email\":\"a@example.test\",\"x\":1,\"x\":2}", "another claim twice", 0,
         NULL},
        {"{" CLAIMS_HEAD ",\"email\":\"a@example.test\",\"e\\u006dail\":\"b@example.test\"}",
         "email twice, once escaped", 0, NULL},
        {"{" CLAIMS_HEAD ",\"email\":\"a@example.test\"}x", "text after the object", 0, NULL},
        {"{" CLAIMS_HEAD ",\"email\":\"a@example.test\",}", "a trailing comma", 0, NULL},
        {"{" CLAIMS_HEAD ",\"email\":\"a@example.test\"", "no closing brace", 0, NULL},
        {"{}", "an empty object", 0, NULL},
        {"", "nothing", 0, NULL},
        {many_keys, "more keys than the in-place reader takes", 1, "a@example.test"},
    };
#undef CLAIMS_HEAD
    const char *hs256 = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *token = forge(p, hs256, cases[i].claims, EVP_sha256(), secret);
        redeem_token_holder_t by_flat = {.user_id = -1}, by_generic = {.user_id = -1};
        const char *why_flat = redeem_token_verify(&flat, token, strlen(token), now, &by_flat);
        const char *why_generic =
            redeem_token_verify(&generic, token, strlen(token), now, &by_generic);
        int same = (why_flat == NULL) == (why_generic == NULL) &&
                   (!why_flat || strcmp(why_flat, why_generic) == 0) &&
                   (why_flat || (by_flat.user_id == by_generic.user_id &&
                                 by_flat.generation == by_generic.generation &&
                                 strcmp(by_flat.email, by_generic.email) == 0));
        int expected = cases[i].valid ? why_flat == NULL && by_flat.user_id == 42 &&
                                            strcmp(by_flat.email, cases[i].email) == 0
                                      : why_flat != NULL;
        ok(same && expected, apr_pstrcat(p, "token readers agree: ", cases[i].name,
                                         cases[i].valid ? " (accepted)" : " (refused)", NULL));
    }
}

/* One object both ways, the writer's and jansson's (json_pack, then
 * json_dumps with JSON_COMPACT as responses are sent): the same text, or
 * both refuse. */
static int json_out_matches(apr_pool_t *p, const char *text, const char *inner, int64_t number,
                            int flag)
{
    redeem_json_out_t out;
    redeem_json_out_begin(&out, p);
    redeem_json_out_string(&out, "s", text);
    redeem_json_out_int(&out, "n", number);
    redeem_json_out_open(&out, "o");
    redeem_json_out_string(&out, "inner", inner);
    redeem_json_out_bool(&out, "flag", flag);
    redeem_json_out_close(&out);
    redeem_json_out_string_or_null(&out, "none", NULL);
    redeem_json_out_bool(&out, "last", !flag);
    size_t len = 0;
    const char *written = redeem_json_out_end(&out, &len);
    json_t *packed =
        json_pack("{s:s, s:I, s:{s:s, s:b}, s:n, s:b}", "s", text, "n", (json_int_t)number, "o",
                  "inner", inner, "flag", flag, "none", "last", !flag);
    char *dumped = packed ? json_dumps(packed, JSON_COMPACT) : NULL;
    int same =
        written ? dumped && strlen(dumped) == len && strcmp(dumped, written) == 0 : dumped == NULL;
    if (!same)
        fprintf(stderr, "# writer: %s | jansson: %s\n", written ? written : "(refused)",
                dumped ? dumped : "(refused)");
    json_decref(packed);
    free(dumped);
    return same;
}

static void test_json_out(apr_pool_t *p)
{
    const char *strings[] = {
        "",
        "alice@example.test",
        "quote \" backslash \\ slash / done",
        "\b\f\n\r\t\x01\x1f\x7f",
        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
        "\xef\xbb\xbf\xe2\x80\xa8\xe2\x80\xa9",
        "\xc3",             /* truncated */
        "\xc0\xaf",         /* overlong */
        "\xed\xa0\x80",     /* a surrogate */
        "\xf4\x90\x80\x80", /* past U+10FFFF */
        "\x80",
        "2026-12-05T13:00:00.000000Z",
    };
    int all = 1;
    for (size_t i = 0; i < sizeof strings / sizeof *strings; i++)
        all &= json_out_matches(p, strings[i], "x", (int64_t)i - 3, (int)(i & 1));
    ok(all, "json_out: fixed strings written as jansson writes them, invalid UTF-8 refused");
    ok(json_out_matches(p, "a", "b", INT64_MAX, 1) && json_out_matches(p, "a", "b", INT64_MIN, 0),
       "json_out: the ends of int64");
    ok(json_out_matches(p, NULL, "b", 1, 1) && json_out_matches(p, "a", NULL, 1, 1),
       "json_out: a string that must be there and is NULL fails the object, as json_pack's s");
    /* Random strings, mostly of the bytes that matter (controls, quotes,
     * backslashes, UTF-8 lead and continuation bytes), and longer than the
     * first buffer so that it grows. */
    static const unsigned char alphabet[] = {0x00, 0x01, 0x08, 0x09, 0x0a, 0x1f, 0x20, '"',
                                             '\\', '/',  'a',  'Z',  0x7f, 0x80, 0xbf, 0xc2,
                                             0xc3, 0xe2, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff};
    uint64_t state = 0x9e3779b97f4a7c15u;
    int random_same = 1, valid_seen = 0;
    for (int round = 0; round < 20000; round++) {
        char text[600];
        state = state * 6364136223846793005u + 1442695040888963407u;
        size_t len = (size_t)(state >> 33) % (round % 100 == 0 ? 599 : 12);
        for (size_t k = 0; k < len; k++) {
            state = state * 6364136223846793005u + 1442695040888963407u;
            unsigned char c = alphabet[(state >> 33) % sizeof alphabet];
            text[k] = c ? (char)c : 'n';
        }
        text[len] = '\0';
        json_t *as_json = json_string(text);
        valid_seen += as_json != NULL;
        json_decref(as_json);
        apr_pool_t *scratch;
        apr_pool_create(&scratch, p);
        random_same &= json_out_matches(scratch, text, text, (int64_t)(state >> 1), round & 1);
        apr_pool_destroy(scratch);
        if (!random_same)
            break;
    }
    ok(random_same && valid_seen > 1000,
       apr_psprintf(p, "json_out: 20,000 random strings (%d valid UTF-8) as jansson writes them",
                    valid_seen));
}

/* A listening socket on 127.0.0.1: its port, or -1. */
static int listen_loopback(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t size = sizeof address;
    if (fd < 0 || bind(fd, (struct sockaddr *)&address, sizeof address) != 0 ||
        listen(fd, 8) != 0 || getsockname(fd, (struct sockaddr *)&address, &size) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(address.sin_port);
    return fd;
}

/* fd is a connection to listener, blocking, close-on-exec, without Nagle. */
static int connected_as_promised(int fd, int listener)
{
    int nodelay = 0;
    socklen_t size = sizeof nodelay;
    int peer = accept(listener, NULL, NULL);
    int good = peer >= 0 && !(fcntl(fd, F_GETFL) & O_NONBLOCK) &&
               (fcntl(fd, F_GETFD) & FD_CLOEXEC) &&
               getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &size) == 0 && nodelay &&
               write(fd, "x", 1) == 1;
    char byte = 0;
    good = good && read(peer, &byte, 1) == 1 && byte == 'x';
    if (peer >= 0)
        close(peer);
    return good;
}

static void test_tcp_connect(void)
{
    int port = 0, fd = -2;
    int listener = listen_loopback(&port);
    ok(listener >= 0, "tcp_connect: a listener on 127.0.0.1");
    int64_t deadline = redeem_clock_monotonic() + 2000000;
    ok(redeem_tcp_connect("127.0.0.1", port, deadline, &fd) == REDEEM_TCP_CONNECTED &&
           connected_as_promised(fd, listener),
       "tcp_connect: an address connects, the socket blocking, close-on-exec, TCP_NODELAY");
    if (fd >= 0)
        close(fd);
    /* localhost is a name (looked up in glibc's thread, from /etc/hosts):
     * ::1 first as glibc sorts them, but IPv4 is tried first. */
    ok(redeem_tcp_connect("localhost", port, deadline, &fd) == REDEEM_TCP_CONNECTED &&
           connected_as_promised(fd, listener),
       "tcp_connect: a name connects to its address");
    if (fd >= 0)
        close(fd);
    /* The same port on ::1 too: the connection still goes to IPv4, where
     * localhost has both addresses (Debian's /etc/hosts as installed). */
    struct addrinfo only6 = {.ai_family = AF_INET6, .ai_socktype = SOCK_STREAM}, *found6 = NULL;
    int has_ipv6 = getaddrinfo("localhost", NULL, &only6, &found6) == 0;
    if (found6)
        freeaddrinfo(found6);
    int listener6 = has_ipv6 ? socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0) : -1;
    struct sockaddr_in6 loopback6 = {.sin6_family = AF_INET6,
                                     .sin6_port = htons((uint16_t)port),
                                     .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    if (listener6 >= 0 && bind(listener6, (struct sockaddr *)&loopback6, sizeof loopback6) == 0 &&
        listen(listener6, 8) == 0) {
        int connected =
            redeem_tcp_connect("localhost", port, deadline, &fd) == REDEEM_TCP_CONNECTED;
        int on_ipv6 = accept(listener6, NULL, NULL);
        ok(connected && on_ipv6 < 0 && errno == EAGAIN && connected_as_promised(fd, listener),
           "tcp_connect: a name's IPv4 address is tried first, as hiredis does");
        if (on_ipv6 >= 0)
            close(on_ipv6);
        if (fd >= 0)
            close(fd);
    }
    else
        printf("ok %d # skip localhost has no IPv6 address here, or ::1 cannot listen\n",
               ++test_number);
    if (listener6 >= 0)
        close(listener6);
    ok(redeem_tcp_connect("127.0.0.1", port, redeem_clock_monotonic() - 1, &fd) ==
               REDEEM_TCP_REFUSED &&
           fd == -1,
       "tcp_connect: a deadline already past connects to nothing");
    close(listener);
    ok(redeem_tcp_connect("127.0.0.1", port, deadline, &fd) == REDEEM_TCP_REFUSED && fd == -1,
       "tcp_connect: a port nobody listens on is refused, no socket left");
    ok(redeem_tcp_connect("[::1", port, deadline, &fd) == REDEEM_TCP_NO_ADDRESS && fd == -1,
       "tcp_connect: a name that cannot be one has no address");
    ok(strcmp(redeem_tcp_result_text(REDEEM_TCP_LOOKUP_SLOW),
              "no answer from the resolver for its host name in time") == 0,
       "tcp_connect: a slow lookup is named as such");
}

/* Lookups left behind: each caller gives up at once, and glibc's thread
 * finishes the lookup later and frees it (the ASan pass of make test sees
 * a lookup freed twice, or used after it was freed, or never freed). */
static void test_tcp_connect_abandoned(void)
{
    int port = 0, fd = -1, slow = 0, wrong = 0;
    int listener = listen_loopback(&port);
    for (int i = 0; i < 20; i++) {
        redeem_tcp_result_t result =
            redeem_tcp_connect("localhost", port, redeem_clock_monotonic() + 1, &fd);
        slow += result == REDEEM_TCP_LOOKUP_SLOW;
        wrong += (result == REDEEM_TCP_CONNECTED) != (fd >= 0) || result == REDEEM_TCP_NO_ADDRESS;
        if (fd >= 0)
            close(fd);
    }
    ok(listener >= 0 && slow > 0 && wrong == 0,
       "tcp_connect: a name's lookup outlasting its deadline is left behind, no socket made");
    struct timespec settle = {0, 200 * 1000 * 1000};
    nanosleep(&settle, NULL);
    if (listener >= 0)
        close(listener);
}

int main(void)
{
    apr_pool_t *pool;
    apr_initialize();
    apr_pool_create(&pool, NULL);
    test_email(pool);
    test_body(pool);
    test_password(pool);
    test_token(pool, 0, 0);
    test_token(pool, 1, 0);
    test_token(pool, 1, 1);
    test_token_readers(pool);
    test_json_out(pool);
    test_code();
    test_time();
    test_query(pool);
    test_text(pool);
    test_keyfile(pool);
    test_futex_hash();
    test_log_throttle();
    test_outage();
    test_sync(pool);
    test_sync_event(pool);
    test_tcp_connect();
    test_tcp_connect_abandoned();
    printf("1..%d\n", test_number);
    apr_pool_destroy(pool);
    apr_terminate();
    return failures ? 1 : 0;
}
