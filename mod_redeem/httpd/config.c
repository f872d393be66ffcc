/* Directives: parsing, defaults, merging, and the checks that make httpd
 * refuse to start (`apachectl -t` included) on any unusable value. */
#include "httpd/private.h"

#include "core/futex_hash.h"
#include "core/keyfile.h"

#include <apr_lib.h>
#include <limits.h>
#include <stddef.h>

#define UNSET -1

/* The bounded numbers: directive, field, lowest, highest and default value,
 * each written once, here. */
#define BOUNDED_NUMBERS(X)                                                                         \
    X("RedeemTokenLifetime", token_lifetime, 60, 2592000, 3600,                                    \
      "Access token lifetime in seconds")                                                          \
    X("RedeemJWTLeeway", leeway, 0, 300, 0, "Clock skew tolerated on exp/iat/nbf, seconds")        \
    X("RedeemHashConcurrency", hash_concurrency, 1, 1024, 4,                                       \
      "Password hashes computed at once per child process")                                        \
    X("RedeemHashWait", hash_wait_ms, 0, 60000, 1000,                                              \
      "Milliseconds a request waits for a free hashing slot before 503")                           \
    X("RedeemMaxBodySize", max_body, 256, 67108864, 16384, "Largest request body in bytes")        \
    X("RedeemMaxCodesPerRequest", max_codes, 1, 1000000, 100000,                                   \
      "Most redeem codes one generation request may ask for")                                      \
    X("RedeemDBTimeout", db_timeout_ms, 100, 600000, 5000,                                         \
      "Milliseconds a request may wait for the database in all before 503")

typedef struct {
    size_t offset;
    apr_int64_t min, max, fallback;
} bounded_number_t;

#define AS_BOUNDS(name, field, min, max, fallback, help)                                           \
    {offsetof(redeem_server_conf, field), min, max, fallback},
static const bounded_number_t bounded_numbers[] = {BOUNDED_NUMBERS(AS_BOUNDS)};
#define BOUNDED_COUNT (sizeof bounded_numbers / sizeof *bounded_numbers)

static apr_int64_t *number_field(redeem_server_conf *conf, const bounded_number_t *number)
{
    return (apr_int64_t *)((char *)conf + number->offset);
}

void *redeem_config_create(apr_pool_t *p, server_rec *s)
{
    (void)s;
    redeem_server_conf *conf = apr_pcalloc(p, sizeof *conf);
    for (size_t i = 0; i < BOUNDED_COUNT; i++)
        *number_field(conf, &bounded_numbers[i]) = UNSET;
    for (int i = 0; i < REDEEM_SCOPE_COUNT_; i++)
        conf->limits[i].count = UNSET;
    conf->dbd_max = UNSET;
    return conf;
}

#define MERGE(field, unset) (add->field != (unset) ? add->field : base->field)

void *redeem_config_merge(apr_pool_t *p, void *base_conf, void *add_conf)
{
    redeem_server_conf *base = base_conf, *add = add_conf;
    redeem_server_conf *conf = apr_pcalloc(p, sizeof *conf);
    conf->engine_used = base->engine_used || add->engine_used;
    conf->engine_here = add->engine_here;
    /* The secret is one setting whichever directive gave it. */
    const redeem_server_conf *secret_from = add->jwt_secret || add->jwt_secret_file ? add : base;
    conf->jwt_secret = secret_from->jwt_secret;
    conf->jwt_secret_file = secret_from->jwt_secret_file;
    conf->issuer = MERGE(issuer, NULL);
    conf->argon2 = add->argon2.memory_kib ? add->argon2 : base->argon2;
    /* Email and password are one setting too. */
    const redeem_server_conf *admin_from = add->admin_email ? add : base;
    conf->admin_email = admin_from->admin_email;
    conf->admin_password = admin_from->admin_password;
    conf->admin_password_file = admin_from->admin_password_file;
    conf->code_mac_key_file = MERGE(code_mac_key_file, NULL);
    conf->code_enc_key_file = MERGE(code_enc_key_file, NULL);
    for (int i = 0; i < REDEEM_SCOPE_COUNT_; i++)
        conf->limits[i] = add->limits[i].count != UNSET ? add->limits[i] : base->limits[i];
    conf->store = add->store.kind != REDEEM_STORE_UNSET ? add->store : base->store;
    conf->dbd_max = MERGE(dbd_max, UNSET);
    conf->dbd_driver = MERGE(dbd_driver, NULL);
    for (size_t i = 0; i < BOUNDED_COUNT; i++) {
        apr_int64_t added = *number_field(add, &bounded_numbers[i]);
        *number_field(conf, &bounded_numbers[i]) =
            added != UNSET ? added : *number_field(base, &bounded_numbers[i]);
    }
    return conf;
}

static redeem_server_conf *cmd_conf(cmd_parms *cmd)
{
    return ap_get_module_config(cmd->server->module_config, &redeem_module);
}

static const char *parse_number(cmd_parms *cmd, const char *arg, apr_int64_t min, apr_int64_t max,
                                apr_int64_t *out)
{
    int64_t value;
    if (redeem_text_parse_int64(arg, min, max, &value) != 0)
        return apr_psprintf(cmd->pool,
                            "%s: '%s' is not a whole number from %" APR_INT64_T_FMT
                            " to %" APR_INT64_T_FMT,
                            cmd->cmd->name, arg, min, max);
    *out = value;
    return NULL;
}

/* Every bounded number: cmd->info is its entry in bounded_numbers. */
static const char *set_bounded_number(cmd_parms *cmd, void *dconf, const char *arg)
{
    (void)dconf;
    const bounded_number_t *number = cmd->info;
    return parse_number(cmd, arg, number->min, number->max, number_field(cmd_conf(cmd), number));
}

/* A file name: cmd->info is the offset of its field. */
static const char *set_file(cmd_parms *cmd, void *dconf, const char *arg)
{
    (void)dconf;
    const char **field = (const char **)((char *)cmd_conf(cmd) + (size_t)cmd->info);
    *field = ap_server_root_relative(cmd->pool, arg);
    return NULL;
}

void *redeem_config_create_dir(apr_pool_t *p, char *dir)
{
    (void)dir;
    redeem_dir_conf *conf = apr_pcalloc(p, sizeof *conf);
    conf->engine = UNSET;
    return conf;
}

/* RedeemEngine set in a scope brings its <Location> and base path along; a
 * deeper RedeemBasePath alone moves only the base path. A <VirtualHost>
 * that turns the engine on keeps the main server's base path (a <Location>
 * is its own base path unless it sets one). */
void *redeem_config_merge_dir(apr_pool_t *p, void *base_conf, void *add_conf)
{
    redeem_dir_conf *base = base_conf, *add = add_conf;
    redeem_dir_conf *conf = apr_pcalloc(p, sizeof *conf);
    const redeem_dir_conf *scope = add->engine != UNSET ? add : base;
    conf->engine = scope->engine;
    conf->location = scope->location;
    conf->base_path = add->base_path                            ? add->base_path
                      : (add->engine != UNSET && add->location) ? NULL
                                                                : base->base_path;
    return conf;
}

/* Whether the path of len bytes ends in a segment "." or "..". */
static int ends_in_dot_segment(const char *path, size_t len)
{
    return (len >= 2 && strncmp(path + len - 2, "/.", 2) == 0) ||
           (len >= 3 && strncmp(path + len - 3, "/..", 3) == 0);
}

/* An absolute URL path, stored without a trailing slash ("" for the root);
 * NULL when it is not one. A segment "." or "..", last or not, is refused:
 * httpd takes them out of a request's path before the module sees it, so
 * a path that holds one would never match. */
static const char *url_path(apr_pool_t *p, const char *arg)
{
    size_t len = strlen(arg);
    if (arg[0] != '/' || strstr(arg, "//") || strpbrk(arg, "?%#*[") || strstr(arg, "/../") ||
        strstr(arg, "/./"))
        return NULL;
    while (len > 1 && arg[len - 1] == '/')
        len--;
    if (ends_in_dot_segment(arg, len))
        return NULL;
    return len == 1 ? "" : apr_pstrmemdup(p, arg, len);
}

/* In the server, a <VirtualHost> or a <Location> of a plain path: a
 * <Directory>, <Files> or a regular expression (<LocationMatch>, or
 * <Location ~ ...>, whose cmd->path is the expression) has no URL prefix to
 * serve. */
static const char *check_scope(cmd_parms *cmd)
{
    if (!cmd->path)
        return NULL;
    const ap_directive_t *parent = cmd->directive ? cmd->directive->parent : NULL;
    const char *section = parent ? parent->directive : "";
    const char *section_args = parent && parent->args ? parent->args : "";
    while (apr_isspace(*section_args))
        section_args++;
    if (strcasecmp(section, "<Location") != 0 || *section_args == '~' ||
        !url_path(cmd->pool, cmd->path))
        return apr_pstrcat(cmd->pool, cmd->cmd->name,
                           " belongs in the server, a <VirtualHost> or a <Location> of a "
                           "plain URL path",
                           NULL);
    return NULL;
}

static const char *set_engine(cmd_parms *cmd, void *dconf, int flag)
{
    redeem_dir_conf *conf = dconf;
    const char *why = check_scope(cmd);
    if (why)
        return why;
    conf->engine = flag;
    conf->location = cmd->path ? url_path(cmd->pool, cmd->path) : NULL;
    if (flag)
        cmd_conf(cmd)->engine_used = cmd_conf(cmd)->engine_here = 1;
    return NULL;
}

static const char *set_base_path(cmd_parms *cmd, void *dconf, const char *arg)
{
    redeem_dir_conf *conf = dconf;
    const char *why = check_scope(cmd);
    if (why)
        return why;
    if (!(conf->base_path = url_path(cmd->pool, arg)))
        return "RedeemBasePath must be an absolute URL path such as / or /billing";
    /* In a <Location>, only its own requests reach the module. */
    const char *location = cmd->path ? url_path(cmd->pool, cmd->path) : NULL;
    size_t location_len = location ? strlen(location) : 0;
    if (location && (strncmp(conf->base_path, location, location_len) != 0 ||
                     (conf->base_path[location_len] && conf->base_path[location_len] != '/')))
        return apr_pstrcat(cmd->pool, "RedeemBasePath ", arg, " is outside its <Location ",
                           cmd->path, ">, whose requests alone reach the module there", NULL);
    return NULL;
}

static const char *set_jwt_secret(cmd_parms *cmd, void *dconf, const char *arg)
{
    (void)dconf;
    redeem_server_conf *conf = cmd_conf(cmd);
    if (strlen(arg) < REDEEM_TOKEN_SECRET_MIN_LEN)
        return "RedeemJWTSecret must be at least 32 bytes long";
    conf->jwt_secret = arg;
    conf->jwt_secret_file = NULL;
    return NULL;
}

static const char *set_jwt_secret_file(cmd_parms *cmd, void *dconf, const char *arg)
{
    redeem_server_conf *conf = cmd_conf(cmd);
    conf->jwt_secret = NULL;
    return set_file(cmd, dconf, arg);
}

static const char *set_issuer(cmd_parms *cmd, void *dconf, const char *arg)
{
    (void)dconf;
    if (arg[0] == '\0' || strlen(arg) > 255)
        return "RedeemJWTIssuer must be 1 to 255 characters";
    cmd_conf(cmd)->issuer = arg;
    return NULL;
}

static const char *set_argon2(cmd_parms *cmd, void *dconf, const char *memory,
                              const char *iterations, const char *parallelism)
{
    (void)dconf;
    apr_int64_t m = 0, t = 0, par = 0;
    const char *why;
    if (!iterations || !parallelism)
        return "RedeemArgon2 takes three numbers: memory in KiB, iterations, parallelism";
    if ((why = parse_number(cmd, memory, 8, 4194304, &m)) ||
        (why = parse_number(cmd, iterations, 1, 64, &t)) ||
        (why = parse_number(cmd, parallelism, 1, 64, &par)))
        return why;
    redeem_password_cost_t cost = {(uint32_t)m, (uint32_t)t, (uint32_t)par};
    if ((why = redeem_password_cost_check(&cost)))
        return apr_pstrcat(cmd->pool, "RedeemArgon2: ", why, NULL);
    cmd_conf(cmd)->argon2 = cost;
    return NULL;
}

static const char *admin_email(cmd_parms *cmd, const char *email)
{
    char *normalized;
    const char *why = redeem_email_normalize(cmd->pool, email, strlen(email), &normalized);
    if (why)
        return apr_pstrcat(cmd->pool, cmd->cmd->name, ": ", why, NULL);
    cmd_conf(cmd)->admin_email = normalized;
    return NULL;
}

static const char *set_admin(cmd_parms *cmd, void *dconf, const char *email, const char *password)
{
    (void)dconf;
    redeem_server_conf *conf = cmd_conf(cmd);
    const char *why = redeem_password_check_policy(password, strlen(password));
    if (why)
        return apr_pstrcat(cmd->pool, "RedeemAdmin: ", why, NULL);
    if ((why = admin_email(cmd, email)))
        return why;
    conf->admin_password = password;
    conf->admin_password_file = NULL;
    return NULL;
}

/* The same setting as RedeemAdmin, its password kept out of the
 * configuration (which Debian leaves readable by all): read at start-up. */
static const char *set_admin_password_file(cmd_parms *cmd, void *dconf, const char *email,
                                           const char *path)
{
    (void)dconf;
    redeem_server_conf *conf = cmd_conf(cmd);
    const char *why = admin_email(cmd, email);
    if (why)
        return why;
    conf->admin_password = NULL;
    conf->admin_password_file = ap_server_root_relative(cmd->pool, path);
    return NULL;
}

static const char *set_rate_limit(cmd_parms *cmd, void *dconf, const char *scope_name,
                                  const char *count, const char *period)
{
    (void)dconf;
    int scope = redeem_ratelimit_scope_by_name(scope_name);
    redeem_limit_setting_t setting;
    const char *why;
    if (scope < 0)
        return apr_psprintf(cmd->pool,
                            "RedeemRateLimit: unknown scope '%s' (redeem-user, redeem-ip, "
                            "login-email, login-ip or register-ip)",
                            scope_name);
    if ((why = parse_number(cmd, count, 0, 1000000, &setting.count)) ||
        (why = parse_number(cmd, period, 1, 86400, &setting.period_s)))
        return why;
    cmd_conf(cmd)->limits[scope] = setting;
    return NULL;
}

static const char *set_rate_limit_store(cmd_parms *cmd, void *dconf, const char *kind,
                                        const char *size)
{
    (void)dconf;
    const char *why = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    if (why)
        return why;
    return redeem_ratelimit_parse_store(cmd->pool, kind, size, &cmd_conf(cmd)->store);
}

static const char *set_rate_limit_store_auth(cmd_parms *cmd, void *dconf, const char *path)
{
    (void)dconf;
    const char *why = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    if (why)
        return why;
    cmd_conf(cmd)->store.redis_auth_file = ap_server_root_relative(cmd->pool, path);
    return NULL;
}

static const char *set_rate_limit_store_timeout(cmd_parms *cmd, void *dconf, const char *arg)
{
    (void)dconf;
    const char *why = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    if (why)
        return why;
    return parse_number(cmd, arg, REDEEM_REDIS_TIMEOUT_MIN_MS, REDEEM_REDIS_TIMEOUT_MAX_MS,
                        &cmd_conf(cmd)->store.redis_timeout_ms);
}

/* Process-wide (every thread of a child), hence the main server only. */
static const char *set_futex_hash_slots(cmd_parms *cmd, void *dconf, const char *arg)
{
    (void)dconf;
    apr_int64_t slots = 0;
    const char *why = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    if (why)
        return why;
    if ((why = parse_number(cmd, arg, REDEEM_FUTEX_HASH_MIN_SLOTS, REDEEM_FUTEX_HASH_MAX_SLOTS,
                            &slots)))
        return why;
    if ((why = redeem_futex_hash_check(slots)))
        return apr_psprintf(cmd->pool, "%s %s: %s", cmd->cmd->name, arg, why);
    cmd_conf(cmd)->futex_hash_slots = (unsigned int)slots;
    return NULL;
}

/* DBDMax is mod_dbd's, and mod_dbd still sets it: httpd hands a directive
 * to every module that declares it. Read here too, since the gate on the
 * pooled connections (pool_gate.c) needs the pool's size and mod_dbd tells
 * no one. A value mod_dbd refuses is left to it to report. */
static const char *read_dbd_max(cmd_parms *cmd, void *dconf, const char *arg)
{
    (void)dconf;
    apr_int64_t value = 0;
    const char *digit = arg;
    for (; *digit >= '0' && *digit <= '9' && value <= INT_MAX; digit++)
        value = value * 10 + (*digit - '0');
    if (!*digit && digit != arg && value <= INT_MAX)
        cmd_conf(cmd)->dbd_max = value;
    return DECLINE_CMD;
}

/* DBDriver likewise: the module speaks libpq to the connections mod_dbd
 * hands it, so a server serving the API must have mod_dbd's pgsql driver
 * (mod_redeem.c checks the configuration, db.c each connection). */
static const char *read_dbd_driver(cmd_parms *cmd, void *dconf, const char *arg)
{
    (void)dconf;
    cmd_conf(cmd)->dbd_driver = arg;
    return DECLINE_CMD;
}

#define FIELD(field) ((void *)offsetof(redeem_server_conf, field))
#define AS_COMMAND(name, field, min, max, fallback, help)                                          \
    AP_INIT_TAKE1(name, set_bounded_number, (void *)&bounded_numbers[BOUNDED_##field], RSRC_CONF,  \
                  help " (" #min " to " #max ", default " #fallback ")"),
#define AS_INDEX(name, field, min, max, fallback, help) BOUNDED_##field,
enum { BOUNDED_NUMBERS(AS_INDEX) };

const command_rec redeem_config_directives[] = {
    AP_INIT_FLAG("RedeemEngine", set_engine, NULL, RSRC_CONF | ACCESS_CONF,
                 "Serve the API here: in this server, or under this <Location> (default Off)"),
    AP_INIT_TAKE1("RedeemBasePath", set_base_path, NULL, RSRC_CONF | ACCESS_CONF,
                  "URL path the endpoints are mounted under (default: the <Location>, or /)"),
    AP_INIT_TAKE1("RedeemJWTSecret", set_jwt_secret, NULL, RSRC_CONF,
                  "HS256 secret, at least 32 bytes (or use RedeemJWTSecretFile)"),
    AP_INIT_TAKE1("RedeemJWTSecretFile", set_jwt_secret_file, FIELD(jwt_secret_file), RSRC_CONF,
                  "File holding the HS256 secret, at least 32 bytes"),
    AP_INIT_TAKE1("RedeemJWTIssuer", set_issuer, NULL, RSRC_CONF,
                  "iss claim issued and required (default: none)"),
    AP_INIT_TAKE3("RedeemArgon2", set_argon2, NULL, RSRC_CONF,
                  "argon2id cost: memory KiB, iterations, parallelism (default 19456 2 1)"),
    AP_INIT_TAKE2("RedeemAdmin", set_admin, NULL, RSRC_CONF,
                  "Email and password of an admin account created if missing"),
    AP_INIT_TAKE2("RedeemAdminPasswordFile", set_admin_password_file, NULL, RSRC_CONF,
                  "Email of an admin account created if missing, and the file holding its "
                  "password (instead of RedeemAdmin)"),
    AP_INIT_TAKE1("RedeemCodeMACKeyFile", set_file, FIELD(code_mac_key_file), RSRC_CONF,
                  "File holding the key (at least 32 bytes) that checks and hashes codes"),
    AP_INIT_TAKE1("RedeemCodeEncryptionKeyFile", set_file, FIELD(code_enc_key_file), RSRC_CONF,
                  "File holding the key (at least 32 bytes) that encrypts stored codes"),
    AP_INIT_TAKE3("RedeemRateLimit", set_rate_limit, NULL, RSRC_CONF,
                  "SCOPE COUNT SECONDS: at most COUNT requests per SECONDS for the scope "
                  "(redeem-user, redeem-ip, login-email, login-ip, register-ip); COUNT 0: off"),
    AP_INIT_TAKE12("RedeemRateLimitStore", set_rate_limit_store, NULL, RSRC_CONF,
                   "shm [ENTRIES] (default, 1048576 entries), redis://HOST:PORT[/DB] or "
                   "unix:///PATH/TO/redis.sock[?db=DB]: where rate-limit counts live (main "
                   "server only)"),
    AP_INIT_TAKE1("RedeemRateLimitStoreAuthFile", set_rate_limit_store_auth, NULL, RSRC_CONF,
                  "File holding the Redis password, or a user and its password separated by a "
                  "space (main server only)"),
    AP_INIT_TAKE1("RedeemRateLimitStoreTimeout", set_rate_limit_store_timeout, NULL, RSRC_CONF,
                  "Milliseconds each step of a call to Redis may take (connecting, AUTH, "
                  "SELECT, the check) before this host's table answers instead (5 to 10000, "
                  "default 50; main server only)"),
    AP_INIT_TAKE1("RedeemFutexHashSlots", set_futex_hash_slots, NULL, RSRC_CONF,
                  "Buckets of each child's futex hash, a power of two from 2 to 65536 (Linux "
                  "6.16+; default: the kernel's size; main server only)"),
    AP_INIT_TAKE1("DBDMax", read_dbd_max, NULL, RSRC_CONF,
                  "mod_dbd's pool size, which mod_dbd sets; mod_redeem reads it too, to wait "
                  "for a free pooled connection no longer than RedeemDBTimeout"),
    AP_INIT_TAKE1("DBDriver", read_dbd_driver, NULL, RSRC_CONF,
                  "mod_dbd's driver, which mod_dbd sets; mod_redeem reads it too, and needs "
                  "pgsql"),
    BOUNDED_NUMBERS(AS_COMMAND){NULL}};

/* Reads a key file, logging a warning when others than its reader may
 * read or replace it. */
static const char *read_key_file(apr_pool_t *p, server_rec *s, const char *path, const char *what,
                                 redeem_keyfile_t *key)
{
    const char *why = redeem_keyfile_read(p, path, what, key);
    if (!why && key->warning)
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, RDMNO(0006) "%s", key->warning);
    return why;
}

static const char *finish_secret(apr_pool_t *p, server_rec *s, redeem_server_conf *conf)
{
    const char *secret = conf->jwt_secret;
    apr_size_t len = secret ? strlen(secret) : 0;
    if (!secret && conf->jwt_secret_file) {
        redeem_keyfile_t file;
        const char *why = read_key_file(p, s, conf->jwt_secret_file, "RedeemJWTSecretFile", &file);
        if (why)
            return why;
        secret = file.text;
        len = file.text_len;
    }
    if (!secret)
        return "no JWT secret: set RedeemJWTSecret or RedeemJWTSecretFile";
    if (len < REDEEM_TOKEN_SECRET_MIN_LEN)
        return "the JWT secret is shorter than 32 bytes";
    conf->token.secret = (const unsigned char *)secret;
    conf->token.secret_len = len;
    return redeem_token_prepare(p, &conf->token);
}

static apr_status_t free_code_keys(void *keys)
{
    redeem_code_keys_free(keys);
    return APR_SUCCESS;
}

/* Whether a code key file holds the JWT secret: as its text, or as the
 * bytes its hex spells (the key used is then those bytes). */
static int holds_jwt_secret(const redeem_token_config_t *token, const redeem_keyfile_t *key)
{
    return (token->secret_len == key->text_len &&
            memcmp(token->secret, key->text, key->text_len) == 0) ||
           (token->secret_len == key->len && memcmp(token->secret, key->bytes, key->len) == 0);
}

static const char *finish_code_keys(apr_pool_t *p, server_rec *s, redeem_server_conf *conf)
{
    redeem_keyfile_t mac, enc;
    const char *why;
    if (!conf->code_mac_key_file || !conf->code_enc_key_file)
        return "set RedeemCodeMACKeyFile and RedeemCodeEncryptionKeyFile";
    if ((why = read_key_file(p, s, conf->code_mac_key_file, "RedeemCodeMACKeyFile", &mac)) ||
        (why = read_key_file(p, s, conf->code_enc_key_file, "RedeemCodeEncryptionKeyFile", &enc)))
        return why;
    if (holds_jwt_secret(&conf->token, &mac))
        return "the code MAC key must differ from the JWT secret";
    if (holds_jwt_secret(&conf->token, &enc))
        return "the code encryption key must differ from the JWT secret";
    if ((why = redeem_code_keys_init(&conf->code_keys, mac.bytes, mac.len, enc.bytes, enc.len)))
        return why;
    apr_pool_cleanup_register(p, &conf->code_keys, free_code_keys, apr_pool_cleanup_null);
    return NULL;
}

static void apply_defaults(redeem_server_conf *conf)
{
    if (!conf->argon2.memory_kib) {
        conf->argon2.memory_kib = REDEEM_PASSWORD_DEFAULT_MEMORY_KIB;
        conf->argon2.iterations = REDEEM_PASSWORD_DEFAULT_ITERATIONS;
        conf->argon2.parallelism = REDEEM_PASSWORD_DEFAULT_PARALLELISM;
    }
    for (size_t i = 0; i < BOUNDED_COUNT; i++) {
        apr_int64_t *value = number_field(conf, &bounded_numbers[i]);
        if (*value == UNSET)
            *value = bounded_numbers[i].fallback;
    }
    conf->token.issuer = conf->issuer;
    conf->token.lifetime = conf->token_lifetime;
    conf->token.leeway = conf->leeway;
}

/* RedeemAdminPasswordFile: the password, held to the policy of any other. */
static const char *finish_admin_password(apr_pool_t *p, server_rec *s, redeem_server_conf *conf)
{
    redeem_keyfile_t file;
    const char *why =
        read_key_file(p, s, conf->admin_password_file, "RedeemAdminPasswordFile", &file);
    if (why)
        return why;
    if (strlen(file.text) != file.text_len)
        return "RedeemAdminPasswordFile: the password holds a NUL byte";
    uint32_t code_point;
    for (size_t i = 0; i < file.text_len;)
        if (redeem_text_utf8_next(file.text, file.text_len, &i, &code_point) != 0)
            return "RedeemAdminPasswordFile: the password is not UTF-8 (no login could send it)";
    if ((why = redeem_password_check_policy(file.text, file.text_len)))
        return apr_pstrcat(p, "RedeemAdminPasswordFile: ", why, NULL);
    conf->admin_password = file.text;
    return NULL;
}

/* One server's start-up checks: NULL, or why it cannot serve. */
static const char *finish_server(apr_pool_t *pconf, server_rec *s, redeem_server_conf *conf)
{
    const char *why = redeem_ratelimit_finish(pconf, conf->limits, conf->policies);
    if (!why)
        why = finish_secret(pconf, s, conf);
    if (!why)
        why = finish_code_keys(pconf, s, conf);
    if (!why)
        why = redeem_ratelimit_tag(&conf->code_keys, conf->limit_tag);
    if (!why)
        why = redeem_auth_audience(pconf, &conf->code_keys, &conf->token.audience);
    if (why)
        return why;
    const char *hash_error = redeem_password_hash(pconf, &conf->argon2, NULL, "unguessable dummy",
                                                  17, (char **)&conf->dummy_hash);
    if (hash_error)
        return apr_pstrcat(pconf, "argon2id failed: ", hash_error, NULL);
    if (conf->admin_password_file && (why = finish_admin_password(pconf, s, conf)))
        return why;
    if (conf->admin_password && strcmp(conf->admin_password, REDEEM_DEFAULT_ADMIN_PASSWORD) == 0)
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     RDMNO(0003) "RedeemAdmin uses the well-known default password: "
                                 "change it before this server is reachable by anyone");
    return NULL;
}

/* RedeemRateLimitStoreAuthFile: "PASSWORD", or "USER PASSWORD". */
static const char *finish_redis_auth(apr_pool_t *p, server_rec *s, redeem_store_setting_t *store)
{
    store->redis_user = store->redis_password = NULL;
    if (store->redis_timeout_ms && store->kind != REDEEM_STORE_REDIS)
        return "RedeemRateLimitStoreTimeout needs RedeemRateLimitStore redis://... or unix://...";
    if (!store->redis_auth_file)
        return NULL;
    if (store->kind != REDEEM_STORE_REDIS)
        return "RedeemRateLimitStoreAuthFile needs RedeemRateLimitStore redis://... or unix://...";
    redeem_keyfile_t file;
    const char *why =
        read_key_file(p, s, store->redis_auth_file, "RedeemRateLimitStoreAuthFile", &file);
    if (why)
        return why;
    const char *space = memchr(file.text, ' ', file.text_len);
    if (file.text_len == 0 || space == file.text || (space && space[1] == '\0') ||
        (space && strchr(space + 1, ' ')))
        return "RedeemRateLimitStoreAuthFile: the file holds PASSWORD, or USER PASSWORD "
               "(one space between them)";
    store->redis_user = space ? apr_pstrndup(p, file.text, (apr_size_t)(space - file.text)) : NULL;
    store->redis_password = space ? space + 1 : file.text;
    return NULL;
}

/* Which server a start-up message is about: an operator with several
 * virtual hosts is told which one, and where it is defined. */
const char *redeem_config_server_name(apr_pool_t *p, const server_rec *vs)
{
    if (!vs->is_virtual)
        return "the main server";
    return apr_psprintf(p, "the virtual host %s (%s:%d)",
                        vs->server_hostname ? vs->server_hostname : "(no name)",
                        vs->defn_name ? vs->defn_name : "?", vs->defn_line_number);
}

int redeem_config_finish(apr_pool_t *pconf, server_rec *s)
{
    /* Here, not where the segment is made: apachectl -t runs this hook only. */
    redeem_server_conf *main_conf = ap_get_module_config(s->module_config, &redeem_module);
    const char *auth_why = finish_redis_auth(pconf, s, &main_conf->store);
    if (auth_why) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, RDMNO(0007) "mod_redeem cannot start: %s",
                     auth_why);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    for (server_rec *vs = s; vs; vs = vs->next) {
        redeem_server_conf *conf = ap_get_module_config(vs->module_config, &redeem_module);
        apply_defaults(conf);
        const char *why = conf->engine_used ? finish_server(pconf, vs, conf) : NULL;
        if (why) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, vs,
                         RDMNO(0001) "mod_redeem cannot start: %s (in %s)", why,
                         redeem_config_server_name(pconf, vs));
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    return OK;
}

int redeem_config_attach_shared(apr_pool_t *pconf, server_rec *s)
{
    redeem_server_conf *main_conf = ap_get_module_config(s->module_config, &redeem_module);
    redeem_store_setting_t *store = &main_conf->store;
    redeem_shared_t *shared = NULL;
    int engine = 0;
    if (store->kind == REDEEM_STORE_UNSET) {
        store->kind = REDEEM_STORE_SHM;
        store->shm_entries = REDEEM_SHM_DEFAULT_ENTRIES;
    }
    for (server_rec *vs = s; vs; vs = vs->next)
        engine |= ((redeem_server_conf *)ap_get_module_config(vs->module_config, &redeem_module))
                      ->engine_used;
    if (!engine)
        return OK; /* no server serves the API: no segment, nor a Server token */
    ap_add_version_component(pconf, "mod_redeem/" REDEEM_VERSION);
    const char *why = redeem_shared_attach(s, (uint32_t)store->shm_entries, &shared);
    if (why) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, RDMNO(0007) "mod_redeem cannot start: %s", why);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    for (server_rec *vs = s; vs; vs = vs->next) {
        redeem_server_conf *conf = ap_get_module_config(vs->module_config, &redeem_module);
        conf->shared = shared;
        conf->store_in_use = store;
    }
    return OK;
}

/* RedeemFutexHashSlots, set before the MPM starts this child's threads. */
void redeem_config_child_init(server_rec *s)
{
    redeem_server_conf *main_conf = ap_get_module_config(s->module_config, &redeem_module);
    unsigned int slots = main_conf->futex_hash_slots, now = 0;
    if (!slots)
        return;
    int error = redeem_futex_hash_resize(slots, &now);
    if (error)
        ap_log_error(APLOG_MARK, APLOG_WARNING, error, s,
                     RDMNO(0009) "RedeemFutexHashSlots %u not applied%s; this child keeps the "
                                 "kernel's futex hash",
                     slots,
                     error == EINVAL ? " (a kernel before Linux 6.16 has no such setting)" : "");
    else
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                     RDMNO(0010) "this child's futex hash: %u buckets (RedeemFutexHashSlots)", now);
}
