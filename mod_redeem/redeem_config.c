/* Directives: parsing, defaults, merging, and the checks that make httpd
 * refuse to start (`apachectl -t` included) on any unusable value. */
#include "redeem_private.h"

#include <apr_file_io.h>
#include <apr_lib.h>

#define UNSET -1
#define DEFAULT_TOKEN_LIFETIME 3600
#define DEFAULT_MAX_BODY 16384
#define DEFAULT_HASH_CONCURRENCY 4
#define DEFAULT_HASH_WAIT_MS 1000
#define DEFAULT_MAX_CODES 100000

void *redeem_create_server_conf(apr_pool_t *p, server_rec *s)
{
    (void)s;
    redeem_server_conf *conf = apr_pcalloc(p, sizeof *conf);
    conf->engine = UNSET;
    conf->token_lifetime = UNSET;
    conf->leeway = UNSET;
    conf->hash_concurrency = UNSET;
    conf->hash_wait = UNSET;
    conf->max_body = UNSET;
    conf->max_codes = UNSET;
    return conf;
}

#define MERGE(field, unset) (add->field != (unset) ? add->field : base->field)

void *redeem_merge_server_conf(apr_pool_t *p, void *base_conf, void *add_conf)
{
    const redeem_server_conf *base = base_conf, *add = add_conf;
    redeem_server_conf *conf = apr_pcalloc(p, sizeof *conf);
    conf->engine = MERGE(engine, UNSET);
    conf->base_path = MERGE(base_path, NULL);
    /* The secret is one setting whichever directive gave it. */
    if (add->jwt_secret || add->jwt_secret_file) {
        conf->jwt_secret = add->jwt_secret;
        conf->jwt_secret_file = add->jwt_secret_file;
    }
    else {
        conf->jwt_secret = base->jwt_secret;
        conf->jwt_secret_file = base->jwt_secret_file;
    }
    conf->token_lifetime = MERGE(token_lifetime, UNSET);
    conf->issuer = MERGE(issuer, NULL);
    conf->leeway = MERGE(leeway, UNSET);
    conf->argon2 = add->argon2.memory_kib ? add->argon2 : base->argon2;
    conf->hash_concurrency = MERGE(hash_concurrency, UNSET);
    conf->hash_wait = MERGE(hash_wait, UNSET);
    conf->max_body = MERGE(max_body, UNSET);
    conf->admin_email = MERGE(admin_email, NULL);
    conf->admin_password = add->admin_email ? add->admin_password : base->admin_password;
    conf->max_codes = MERGE(max_codes, UNSET);
    conf->code_mac_key_file = MERGE(code_mac_key_file, NULL);
    conf->code_enc_key_file = MERGE(code_enc_key_file, NULL);
    return conf;
}

static redeem_server_conf *cmd_conf(cmd_parms *cmd)
{
    return ap_get_module_config(cmd->server->module_config, &redeem_module);
}

static const char *parse_number(cmd_parms *cmd, const char *arg, apr_int64_t min, apr_int64_t max,
                                apr_int64_t *out)
{
    if (redeem_parse_int64(arg, min, max, out) != 0)
        return apr_psprintf(cmd->pool,
                            "%s: '%s' is not a whole number from %" APR_INT64_T_FMT
                            " to %" APR_INT64_T_FMT,
                            cmd->cmd->name, arg, min, max);
    return NULL;
}

static const char *set_engine(cmd_parms *cmd, void *dconf, int flag)
{
    (void)dconf;
    cmd_conf(cmd)->engine = flag;
    return NULL;
}

static const char *set_base_path(cmd_parms *cmd, void *dconf, const char *arg)
{
    (void)dconf;
    size_t len = strlen(arg);
    if (arg[0] != '/' || strstr(arg, "//") || strchr(arg, '?') || strchr(arg, '%'))
        return "RedeemBasePath must be an absolute URL path such as / or /billing";
    while (len > 1 && arg[len - 1] == '/')
        len--;
    /* Stored without a trailing slash: "" for the root. */
    cmd_conf(cmd)->base_path = len == 1 ? "" : apr_pstrmemdup(cmd->pool, arg, len);
    return NULL;
}

static const char *set_jwt_secret(cmd_parms *cmd, void *dconf, const char *arg)
{
    (void)dconf;
    redeem_server_conf *conf = cmd_conf(cmd);
    if (strlen(arg) < REDEEM_SECRET_MIN_LEN)
        return "RedeemJWTSecret must be at least 32 bytes long";
    conf->jwt_secret = arg;
    conf->jwt_secret_file = NULL;
    return NULL;
}

static const char *set_jwt_secret_file(cmd_parms *cmd, void *dconf, const char *arg)
{
    (void)dconf;
    redeem_server_conf *conf = cmd_conf(cmd);
    conf->jwt_secret_file = ap_server_root_relative(cmd->pool, arg);
    conf->jwt_secret = NULL;
    return NULL;
}

static const char *set_token_lifetime(cmd_parms *cmd, void *dconf, const char *arg)
{
    (void)dconf;
    return parse_number(cmd, arg, 60, 86400 * 30, &cmd_conf(cmd)->token_lifetime);
}

static const char *set_issuer(cmd_parms *cmd, void *dconf, const char *arg)
{
    (void)dconf;
    if (arg[0] == '\0' || strlen(arg) > 255)
        return "RedeemJWTIssuer must be 1 to 255 characters";
    cmd_conf(cmd)->issuer = arg;
    return NULL;
}

static const char *set_leeway(cmd_parms *cmd, void *dconf, const char *arg)
{
    (void)dconf;
    return parse_number(cmd, arg, 0, 300, &cmd_conf(cmd)->leeway);
}

static const char *set_argon2(cmd_parms *cmd, void *dconf, const char *memory,
                              const char *iterations, const char *parallelism)
{
    (void)dconf;
    apr_int64_t m, t, par;
    const char *why;
    if (!iterations || !parallelism)
        return "RedeemArgon2 takes three numbers: memory in KiB, iterations, parallelism";
    if ((why = parse_number(cmd, memory, 8, 4194304, &m)) ||
        (why = parse_number(cmd, iterations, 1, 64, &t)) ||
        (why = parse_number(cmd, parallelism, 1, 64, &par)))
        return why;
    redeem_argon2_cost_t cost = {(uint32_t)m, (uint32_t)t, (uint32_t)par};
    if ((why = redeem_argon2_cost_check(&cost)))
        return apr_pstrcat(cmd->pool, "RedeemArgon2: ", why, NULL);
    cmd_conf(cmd)->argon2 = cost;
    return NULL;
}

static const char *set_hash_concurrency(cmd_parms *cmd, void *dconf, const char *arg)
{
    (void)dconf;
    apr_int64_t n;
    const char *why = parse_number(cmd, arg, 1, 1024, &n);
    if (!why)
        cmd_conf(cmd)->hash_concurrency = (int)n;
    return why;
}

static const char *set_hash_wait(cmd_parms *cmd, void *dconf, const char *arg)
{
    (void)dconf;
    apr_int64_t ms;
    const char *why = parse_number(cmd, arg, 0, 60000, &ms);
    if (!why)
        cmd_conf(cmd)->hash_wait = apr_time_from_msec(ms);
    return why;
}

static const char *set_max_body(cmd_parms *cmd, void *dconf, const char *arg)
{
    (void)dconf;
    apr_int64_t n;
    const char *why = parse_number(cmd, arg, 256, 64 * 1024 * 1024, &n);
    if (!why)
        cmd_conf(cmd)->max_body = (apr_off_t)n;
    return why;
}

static const char *set_admin(cmd_parms *cmd, void *dconf, const char *email, const char *password)
{
    (void)dconf;
    redeem_server_conf *conf = cmd_conf(cmd);
    char *normalized;
    const char *why = redeem_email_normalize(cmd->pool, email, strlen(email), &normalized);
    if (why)
        return apr_pstrcat(cmd->pool, "RedeemAdmin: ", why, NULL);
    if ((why = redeem_password_check_policy(password, strlen(password))))
        return apr_pstrcat(cmd->pool, "RedeemAdmin: ", why, NULL);
    conf->admin_email = normalized;
    conf->admin_password = password;
    return NULL;
}

static const char *set_max_codes(cmd_parms *cmd, void *dconf, const char *arg)
{
    (void)dconf;
    apr_int64_t n;
    const char *why = parse_number(cmd, arg, 1, 1000000, &n);
    if (!why)
        cmd_conf(cmd)->max_codes = (int)n;
    return why;
}

static const char *set_code_key_file(cmd_parms *cmd, void *dconf, const char *arg)
{
    (void)dconf;
    redeem_server_conf *conf = cmd_conf(cmd);
    const char *path = ap_server_root_relative(cmd->pool, arg);
    if (cmd->info == (void *)1)
        conf->code_mac_key_file = path;
    else
        conf->code_enc_key_file = path;
    return NULL;
}

const command_rec redeem_directives[] = {
    AP_INIT_FLAG("RedeemEngine", set_engine, NULL, RSRC_CONF,
                 "Serve the API in this server (On|Off, default Off)"),
    AP_INIT_TAKE1("RedeemBasePath", set_base_path, NULL, RSRC_CONF,
                  "URL path the endpoints are mounted under (default /)"),
    AP_INIT_TAKE1("RedeemJWTSecret", set_jwt_secret, NULL, RSRC_CONF,
                  "HS256 secret, at least 32 bytes (or use RedeemJWTSecretFile)"),
    AP_INIT_TAKE1("RedeemJWTSecretFile", set_jwt_secret_file, NULL, RSRC_CONF,
                  "File holding the HS256 secret, at least 32 bytes"),
    AP_INIT_TAKE1("RedeemTokenLifetime", set_token_lifetime, NULL, RSRC_CONF,
                  "Access token lifetime in seconds (default 3600)"),
    AP_INIT_TAKE1("RedeemJWTIssuer", set_issuer, NULL, RSRC_CONF,
                  "iss claim issued and required (default: none)"),
    AP_INIT_TAKE1("RedeemJWTLeeway", set_leeway, NULL, RSRC_CONF,
                  "Clock skew tolerated on exp/iat/nbf, seconds (default 0)"),
    AP_INIT_TAKE3("RedeemArgon2", set_argon2, NULL, RSRC_CONF,
                  "argon2id cost: memory KiB, iterations, parallelism (default 19456 2 1)"),
    AP_INIT_TAKE1("RedeemHashConcurrency", set_hash_concurrency, NULL, RSRC_CONF,
                  "Password hashes computed at once per child process (default 4)"),
    AP_INIT_TAKE1("RedeemHashWait", set_hash_wait, NULL, RSRC_CONF,
                  "Milliseconds a request waits for a free hashing slot before 503 (default 1000)"),
    AP_INIT_TAKE1("RedeemMaxBodySize", set_max_body, NULL, RSRC_CONF,
                  "Largest request body in bytes (default 16384)"),
    AP_INIT_TAKE2("RedeemAdmin", set_admin, NULL, RSRC_CONF,
                  "Email and password of an admin account created if missing"),
    AP_INIT_TAKE1("RedeemMaxCodesPerRequest", set_max_codes, NULL, RSRC_CONF,
                  "Most redeem codes one generation request may ask for (default 100000)"),
    AP_INIT_TAKE1("RedeemCodeMACKeyFile", set_code_key_file, (void *)1, RSRC_CONF,
                  "File holding the key (at least 32 bytes) that checks and hashes codes"),
    AP_INIT_TAKE1("RedeemCodeEncryptionKeyFile", set_code_key_file, (void *)2, RSRC_CONF,
                  "File holding the key (at least 32 bytes) that encrypts stored codes"),
    {NULL}};

/* A key or secret file: its content without a trailing newline. */
static const char *read_secret_file(apr_pool_t *p, const char *path, const char *what,
                                    const char **content, apr_size_t *len)
{
    apr_file_t *file;
    apr_finfo_t finfo;
    char *buf;
    apr_size_t n;
    apr_status_t rv = apr_file_open(&file, path, APR_FOPEN_READ, 0, p);
    if (rv != APR_SUCCESS)
        return apr_psprintf(p, "cannot open %s file %s: %pm", what, path, &rv);
    if ((rv = apr_file_info_get(&finfo, APR_FINFO_SIZE, file)) != APR_SUCCESS ||
        finfo.size > 4096) {
        apr_file_close(file);
        return apr_psprintf(p, "%s file %s is unreadable or larger than 4 KiB", what, path);
    }
    n = (apr_size_t)finfo.size;
    buf = apr_palloc(p, n + 1);
    rv = apr_file_read_full(file, buf, n, &n);
    apr_file_close(file);
    if (rv != APR_SUCCESS && rv != APR_EOF)
        return apr_psprintf(p, "cannot read %s file %s: %pm", what, path, &rv);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    *content = buf;
    *len = n;
    return NULL;
}

/* Key files hold hex (as `make run` writes them) or raw bytes. */
static const unsigned char *key_bytes(apr_pool_t *p, const char *text, apr_size_t len,
                                      apr_size_t *out_len)
{
    int hex = len % 2 == 0 && len > 0;
    for (apr_size_t i = 0; hex && i < len; i++)
        hex = apr_isxdigit(text[i]);
    if (!hex) {
        *out_len = len;
        return (const unsigned char *)text;
    }
    unsigned char *bytes = apr_palloc(p, len / 2);
    for (apr_size_t i = 0; i < len / 2; i++) {
        char pair[3] = {text[2 * i], text[2 * i + 1], '\0'};
        bytes[i] = (unsigned char)strtoul(pair, NULL, 16);
    }
    *out_len = len / 2;
    return bytes;
}

static const char *finish_secret(apr_pool_t *p, redeem_server_conf *conf)
{
    const char *secret = conf->jwt_secret;
    apr_size_t len = secret ? strlen(secret) : 0;
    if (!secret && conf->jwt_secret_file) {
        const char *why =
            read_secret_file(p, conf->jwt_secret_file, "RedeemJWTSecretFile", &secret, &len);
        if (why)
            return why;
    }
    if (!secret)
        return "no JWT secret: set RedeemJWTSecret or RedeemJWTSecretFile";
    if (len < REDEEM_SECRET_MIN_LEN)
        return "the JWT secret is shorter than 32 bytes";
    conf->token.secret = (const unsigned char *)secret;
    conf->token.secret_len = len;
    return NULL;
}

static const char *finish_code_keys(apr_pool_t *p, redeem_server_conf *conf)
{
    const char *mac_text, *enc_text;
    apr_size_t mac_len, enc_len, mac_bytes_len, enc_bytes_len;
    const char *why;
    if (!conf->code_mac_key_file || !conf->code_enc_key_file)
        return "set RedeemCodeMACKeyFile and RedeemCodeEncryptionKeyFile";
    if ((why = read_secret_file(p, conf->code_mac_key_file, "RedeemCodeMACKeyFile", &mac_text,
                                &mac_len)) ||
        (why = read_secret_file(p, conf->code_enc_key_file, "RedeemCodeEncryptionKeyFile",
                                &enc_text, &enc_len)))
        return why;
    const unsigned char *mac = key_bytes(p, mac_text, mac_len, &mac_bytes_len);
    const unsigned char *enc = key_bytes(p, enc_text, enc_len, &enc_bytes_len);
    if (conf->token.secret_len == mac_len && memcmp(conf->token.secret, mac_text, mac_len) == 0)
        return "the code MAC key must differ from the JWT secret";
    return redeem_code_keys_init(&conf->code_keys, mac, mac_bytes_len, enc, enc_bytes_len);
}

static void apply_defaults(redeem_server_conf *conf)
{
    if (conf->engine == UNSET)
        conf->engine = 0;
    if (!conf->base_path)
        conf->base_path = "";
    if (conf->token_lifetime == UNSET)
        conf->token_lifetime = DEFAULT_TOKEN_LIFETIME;
    if (conf->leeway == UNSET)
        conf->leeway = 0;
    if (!conf->argon2.memory_kib) {
        conf->argon2.memory_kib = REDEEM_ARGON2_DEFAULT_MEMORY_KIB;
        conf->argon2.iterations = REDEEM_ARGON2_DEFAULT_ITERATIONS;
        conf->argon2.parallelism = REDEEM_ARGON2_DEFAULT_PARALLELISM;
    }
    if (conf->hash_concurrency == UNSET)
        conf->hash_concurrency = DEFAULT_HASH_CONCURRENCY;
    if (conf->hash_wait == UNSET)
        conf->hash_wait = apr_time_from_msec(DEFAULT_HASH_WAIT_MS);
    if (conf->max_body == UNSET)
        conf->max_body = DEFAULT_MAX_BODY;
    if (conf->max_codes == UNSET)
        conf->max_codes = DEFAULT_MAX_CODES;
    conf->token.issuer = conf->issuer;
    conf->token.lifetime = conf->token_lifetime;
    conf->token.leeway = conf->leeway;
}

/* check_config (so `apachectl -t` runs it too): defaults, secrets and keys for every server that
 * serves the API. */
int redeem_config_finish(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s)
{
    (void)ptemp;
    for (server_rec *vs = s; vs; vs = vs->next) {
        redeem_server_conf *conf = ap_get_module_config(vs->module_config, &redeem_module);
        apply_defaults(conf);
        if (!conf->engine)
            continue;
        const char *why = finish_secret(pconf, conf);
        if (!why)
            why = finish_code_keys(pconf, conf);
        if (why) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, vs, RDMNO(0001) "mod_redeem cannot start: %s",
                         why);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        const char *hash_error = redeem_password_hash(pconf, &conf->argon2, "unguessable dummy", 17,
                                                      (char **)&conf->dummy_hash);
        if (hash_error) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, vs,
                         RDMNO(0002) "mod_redeem cannot start: argon2id failed: %s", hash_error);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        if (conf->admin_password &&
            strcmp(conf->admin_password, REDEEM_DEFAULT_ADMIN_PASSWORD) == 0)
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, vs,
                         RDMNO(0003) "RedeemAdmin uses the well-known default password: "
                                     "change it before this server is reachable by anyone");
    }
    return OK;
}
