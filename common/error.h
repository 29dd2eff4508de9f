/* error.h — the one GError domain of imagecache and its codes.
 * Every fallible library call reports through IC_ERROR with one of these codes. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define IC_ERROR (ic_error_quark())
GQuark ic_error_quark(void);

typedef enum {
    IC_ERROR_FAILED,    /* anything not covered below */
    IC_ERROR_CONFIG,    /* a bad key, value or config file */
    IC_ERROR_IO,        /* a system call failed; message carries strerror */
    IC_ERROR_NOT_FOUND, /* the file or directory does not exist */
    IC_ERROR_FORMAT,    /* malformed input: image header, sidecar, ledger, XML */
    IC_ERROR_LIMIT,     /* input over a safety limit (size, depth, count) */
    IC_ERROR_UNSAFE,    /* refused because acting could harm: symlink, not regular, changed */
    IC_ERROR_CRYPTO,    /* libcrypto failed */
    IC_ERROR_CANCELLED, /* the caller asked to stop */
    IC_ERROR_BUSY,      /* a bounded wait (a lock) ran out of time */
    IC_ERROR_CHANGED,   /* refused: the file was replaced or used since it was decided on */
    IC_ERROR_STALE,     /* ESTALE, or a read that found its opened file gone (a network
                         * filesystem's handle outlived the file): opening the path again may
                         * succeed (ic_file_retry_stale); never "absent" */
} IcErrorCode;

/* Sets @error from errno @errsv: code IC_ERROR_NOT_FOUND for ENOENT,
 * IC_ERROR_STALE for ESTALE, else IC_ERROR_IO; the message is "@what '@path':
 * strerror". Returns FALSE so a caller can `return ic_error_set_errno(...)`. */
gboolean ic_error_set_errno(GError **error, int errsv, const char *what, const char *path);

G_END_DECLS
