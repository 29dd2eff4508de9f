/* checksum.h — SHA-1 of base files (streaming, libcrypto EVP) and their checksum sidecars.
 * Owns both sidecar formats: "<file>.sha1" (hex digest) and "<file>.info" (JSON). */
#pragma once

#include <glib.h>

#include "cancel.h"
#include "scan.h" /* ic_sidecar_suffixes */

G_BEGIN_DECLS

#define IC_SHA1_HEX_LEN 40

typedef enum {
    IC_CHECKSUM_NOT_CHECKED = 0, /* checksumming off, or the file is absent */
    IC_CHECKSUM_OK,              /* digest matches the sidecar */
    IC_CHECKSUM_RECENT, /* the sidecar's timestamp is younger than the interval: not re-hashed */
    IC_CHECKSUM_NO_SIDECAR, /* there was none; one was written (unless dry run) */
    IC_CHECKSUM_MISMATCH,   /* the file is corrupt */
    IC_CHECKSUM_ERROR,      /* could not read the file or the sidecar */
} IcChecksumState;

const char *ic_checksum_state_to_string(IcChecksumState state);

typedef enum {
    IC_SIDECAR_NONE = 0,
    IC_SIDECAR_SHA1, /* <file>.sha1: the hex digest, optionally followed by a newline */
    IC_SIDECAR_INFO, /* <file>.info: {"sha1": "<hex>", "sha1-timestamp": <epoch>} */
} IcSidecarFormat;

typedef struct {
    IcSidecarFormat format;
    char *sha1;       /* lowercase hex as stored (may be invalid hex: then it cannot match) */
    gint64 timestamp; /* epoch seconds of the last hash, -1 when the sidecar has none */
} IcStoredChecksum;

void ic_stored_checksum_free(IcStoredChecksum *stored);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IcStoredChecksum, ic_stored_checksum_free)

/* Parse sidecar contents. Pure; damaged content fails with IC_ERROR_FORMAT. The
 * .info one is strict JSON (jsonin.h): a "sha1" or "sha1-timestamp" given twice
 * is damage (two readers could see two checksums), other members are skipped. */
gboolean ic_checksum_parse_sha1_sidecar(const char *data, gsize len, IcStoredChecksum **ret_stored,
                                        GError **error);
gboolean ic_checksum_parse_info_sidecar(const char *data, gsize len, IcStoredChecksum **ret_stored,
                                        GError **error);

/* Reads the stored checksum of @name in the directory @dirfd: the .info sidecar
 * when present, else the .sha1 one. No sidecar: TRUE with *ret_stored = NULL. */
gboolean ic_checksum_read_stored(int dirfd, const char *name, IcStoredChecksum **ret_stored,
                                 GError **error);

/* Writes <name>.info atomically (temp + fsync + rename + dir fsync). */
gboolean ic_checksum_write_sidecar(int dirfd, const char *name, const char *sha1_hex,
                                   gint64 timestamp, GError **error);

/* Streams the file through SHA-1 in constant memory. @rate_limit_bytes_per_sec
 * (0 = unlimited) throttles the reading; @cancel stops it mid-file with
 * IC_ERROR_CANCELLED. Hashing leaves the page cache as it found it: the pages it
 * brings in are dropped behind the reader (POSIX_FADV_DONTNEED), the pages that
 * were cached before (a guest reading the file) stay; so a pass neither evicts
 * the guests' cache nor keeps what it read. */
gboolean ic_checksum_file(int dirfd, const char *name, guint64 rate_limit_bytes_per_sec,
                          IcCancel *cancel, char **ret_sha1_hex, GError **error);

/* A rate limit shared by the threads that hash at once: together they read at
 * most its rate (the operator's ChecksumRateLimit is the total, not per file). */
typedef struct IcRateLimit IcRateLimit;

typedef struct {
    guint64 rate_limit_bytes_per_sec;
    gint64 interval_seconds;   /* skip re-hashing while the sidecar's timestamp is younger */
    gboolean write_missing;    /* write a sidecar when there is none */
    IcCancel *cancel;          /* may be NULL */
    IcRateLimit *shared_limit; /* private: set by ic_checksum_verify_many */
} IcChecksumOptions;

typedef struct {
    IcChecksumState state;
    char *expected; /* from the sidecar, NULL when none */
    char *actual;   /* computed, NULL when not hashed */
    char *error;    /* for IC_CHECKSUM_ERROR */
} IcChecksumResult;

void ic_checksum_result_clear(IcChecksumResult *result);

/* Verifies @name against its sidecar, as the pass does. Never fails: problems
 * are reported in @ret_result (state ERROR), except cancellation, which returns
 * FALSE with IC_ERROR_CANCELLED. */
gboolean ic_checksum_verify(int dirfd, const char *name, const IcChecksumOptions *options,
                            gint64 now, IcChecksumResult *ret_result, GError **error);

/* One file of ic_checksum_verify_many: @dirfd and @name in, @result out. */
typedef struct {
    int dirfd;
    const char *name;
    IcChecksumResult result;
} IcChecksumJob;

/* ic_checksum_verify on each of @jobs, up to @max_threads files at once (0: one
 * per core), each file by one thread; @options->rate_limit_bytes_per_sec bounds
 * the total rate of all of them. FALSE (IC_ERROR_CANCELLED) when cancelled: the
 * results of the jobs not done are then NOT_CHECKED. */
gboolean ic_checksum_verify_many(IcChecksumJob *jobs, guint n_jobs,
                                 const IcChecksumOptions *options, gint64 now, guint max_threads,
                                 GError **error);

G_END_DECLS
