/* sha256.h — SHA-256 of a buffer as lowercase hex (the ledger's [end] digest), with the
 * CPU's SHA extensions where an x86-64 has them (checked once) and GLib's GChecksum elsewhere. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Which implementation computes the digest. AUTO is what the programs use; the
 * others exist so that the tests can compare both on one machine. */
typedef enum {
    IC_SHA256_AUTO,
    IC_SHA256_PORTABLE, /* GLib's GChecksum, on any machine */
    IC_SHA256_SHA_NI,   /* the x86 SHA extensions: only where ic_sha256_have_sha_ni() */
} IcSha256Impl;

/* The SHA-256 of @len bytes at @data as 64 lowercase hex digits, exactly what
 * g_compute_checksum_for_data(G_CHECKSUM_SHA256, ...) returns. Never fails;
 * the caller frees the string. */
char *ic_sha256_hex(const void *data, gsize len);

/* TRUE when this CPU (and build) can use the SHA extensions: x86-64 with SHA,
 * SSE4.1 and SSSE3, as glibc's CPU features (or CPUID) say; decided once. */
gboolean ic_sha256_have_sha_ni(void);

/* ic_sha256_hex() with the implementation chosen by the caller (tests). Asking
 * for IC_SHA256_SHA_NI where ic_sha256_have_sha_ni() is FALSE is a programming
 * error: it returns NULL with a critical. */
char *ic_sha256_hex_with(IcSha256Impl impl, const void *data, gsize len);

G_END_DECLS
