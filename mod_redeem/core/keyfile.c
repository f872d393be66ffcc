#include "core/keyfile.h"
#include "core/text.h"

#include <apr_file_info.h>
#include <apr_file_io.h>
#include <apr_strings.h>
#include <unistd.h>

/* A key readable by group or others, or owned by someone who is neither
 * root nor the reader (who could then swap it), is worth a warning. */
static const char *exposure(apr_pool_t *p, const char *path, const char *what,
                            const apr_finfo_t *finfo)
{
    if (finfo->protection &
        (APR_FPROT_GREAD | APR_FPROT_WREAD | APR_FPROT_GWRITE | APR_FPROT_WWRITE))
        return apr_psprintf(p, "%s file %s is open to group or others (mode %03x): chmod 0600 it",
                            /* APR's permission bits read as the octal mode when printed in hex. */
                            what, path, (unsigned)(finfo->protection & 0x777));
    if (finfo->user != 0 && finfo->user != geteuid())
        return apr_psprintf(p,
                            "%s file %s is owned by uid %ld, neither root nor the reader: "
                            "chown root it",
                            what, path, (long)finfo->user);
    return NULL;
}

const char *redeem_keyfile_read(apr_pool_t *p, const char *path, const char *what,
                                redeem_keyfile_t *key)
{
    apr_file_t *file;
    apr_finfo_t finfo;
    apr_status_t rv = apr_file_open(&file, path, APR_FOPEN_READ, 0, p);
    if (rv != APR_SUCCESS)
        return apr_psprintf(p, "cannot open %s file %s: %pm", what, path, &rv);
    rv = apr_file_info_get(&finfo, APR_FINFO_SIZE | APR_FINFO_PROT | APR_FINFO_OWNER, file);
    if (rv != APR_SUCCESS || finfo.size > REDEEM_KEYFILE_MAX_BYTES) {
        apr_file_close(file);
        return apr_psprintf(p, "%s file %s is unreadable or larger than 4 KiB", what, path);
    }
    apr_size_t n = (apr_size_t)finfo.size;
    char *text = apr_palloc(p, n + 1);
    rv = apr_file_read_full(file, text, n, &n);
    apr_file_close(file);
    if (rv != APR_SUCCESS && rv != APR_EOF)
        return apr_psprintf(p, "cannot read %s file %s: %pm", what, path, &rv);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        n--;
    text[n] = '\0';
    unsigned char *bytes = apr_palloc(p, n + 1);
    key->text = text;
    key->text_len = n;
    key->bytes = bytes;
    key->len = redeem_text_key_bytes(text, n, bytes);
    key->warning = exposure(p, path, what, &finfo);
    return NULL;
}
