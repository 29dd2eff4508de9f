/* ledger.h — the usage ledger: per host, which domains use which base files.
 * One file per host in ledger_dir, written only by its host, atomically, under a lock. */
#pragma once

#include <glib.h>

#include "usage.h"

G_BEGIN_DECLS

#define IC_LEDGER_MAX_BYTES   (16 * 1024 * 1024)
#define IC_LEDGER_MAX_DOMAINS 100000

typedef struct {
    char *uuid;
    char *name;
    GPtrArray *base_files; /* char*: base files its chains reach: names in the base dir (as
                            * written); absolute paths from collect or a format-1 file */
    GPtrArray *image_ids;  /* char*: Nova image refs (fingerprint = SHA-1 of the id) */
    gint64 started;        /* epoch seconds the domain was first recorded */
    char *unknown; /* NULL, or why its base files are not all known (a disk that could not be
                    * followed): every pass then treats usage as unknown until the domain is
                    * released or recorded in full */
} IcLedgerDomain;

typedef struct {
    char *host;
    char *machine_id;      /* the writing machine (/etc/machine-id), NULL before format 3 */
    gint64 refreshed;      /* epoch seconds of the last write */
    gboolean stale;        /* set by ic_ledger_read_all: not refreshed within the stale limit */
    GPtrArray *domains;    /* IcLedgerDomain*, sorted by uuid */
    GHashTable *last_used; /* base file entry -> gint64* epoch seconds of its last release */
} IcLedgerHost;

typedef struct {
    char *ledger_dir;
    GPtrArray *hosts;  /* IcLedgerHost*, sorted by host */
    GPtrArray *errors; /* char*: host files that could not be read (they block removal) */
    gint64 read_at;    /* the @now given to ic_ledger_read_all (for staleness notes) */
} IcLedger;

IcLedgerDomain *ic_ledger_domain_new(const char *uuid, const char *name);
void ic_ledger_domain_free(IcLedgerDomain *domain);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IcLedgerDomain, ic_ledger_domain_free)
void ic_ledger_host_free(IcLedgerHost *host);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IcLedgerHost, ic_ledger_host_free)
void ic_ledger_free(IcLedger *ledger);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IcLedger, ic_ledger_free)

/* TRUE for a host name usable as a ledger file name: 1 to 253 of [A-Za-z0-9._-],
 * not starting with '.'. Writers fail with IC_ERROR_CONFIG on any other. */
gboolean ic_ledger_host_name_is_valid(const char *host);

/* This machine's identity for the ledger header: $IMAGECACHE_MACHINE_ID (tests,
 * containers), else /etc/machine-id; NULL when neither gives one. Two machines
 * configured with one host name would overwrite each other's file: a writer
 * refuses a file another machine wrote (IC_ERROR_CONFIG) and a pass notes it. */
char *ic_ledger_machine_id(void);

/* Serialises / parses one host file. Parsing is strict: a damaged or
 * truncated file fails with IC_ERROR_FORMAT, never reads as "no users". */
char *ic_ledger_host_serialize(const IcLedgerHost *host, gsize *ret_len);
gboolean ic_ledger_host_parse(const char *data, gsize len, IcLedgerHost **ret_host, GError **error);

/* Records @domain for @host (replacing an entry with the same uuid), under the
 * host file's lock, and refreshes the host's timestamp to @now. */
gboolean ic_ledger_record_domain(const char *ledger_dir, const char *host,
                                 const IcLedgerDomain *domain, gint64 now, GError **error);

/* The same, waiting for the host lock only until @deadline_us (monotonic µs),
 * so a caller with a time budget (the hook at prepare) keeps one deadline. */
gboolean ic_ledger_record_domain_until(const char *ledger_dir, const char *host,
                                       const IcLedgerDomain *domain, gint64 now, gint64 deadline_us,
                                       GError **error);

/* Drops the domain @uuid of @host (no entry: success), remembering @now as the
 * last use of each of its base files. */
gboolean ic_ledger_drop_domain(const char *ledger_dir, const char *host, const char *uuid,
                               gint64 now, GError **error);

/* The bytes of @host's ledger file now (empty: no file), for
 * ic_ledger_replace_host's @expect. */
gboolean ic_ledger_host_snapshot(const char *ledger_dir, const char *host, GBytes **ret_snapshot,
                                 GError **error);

/* Replaces every domain of @host at once (reconcile). */
gboolean ic_ledger_replace_host(const char *ledger_dir, const char *host, GPtrArray *domains,
                                gint64 now, GError **error);

/* The same, only if the file still holds @expect (NULL: no check), the
 * snapshot the domains were decided from, taken before libvirt was asked. If
 * it differs under the host lock (a hook recorded or dropped a domain
 * meanwhile) nothing is written and IC_ERROR_CHANGED is set: ask again. */
gboolean ic_ledger_replace_host_if_unchanged(const char *ledger_dir, const char *host,
                                             GPtrArray *domains, gint64 now, GBytes *expect,
                                             GError **error);

/* Reads every host file in @ledger_dir. A missing ledger dir is an empty
 * ledger. A damaged host file is listed in ->errors (the caller must then not
 * remove anything); hosts older than @stale_seconds are flagged stale but kept. */
gboolean ic_ledger_read_all(const char *ledger_dir, gint64 now, gint64 stale_seconds,
                            IcLedger **ret_ledger, GError **error);

/* What a long-running reader (the collectd plugin) parsed before: a host file
 * whose inode, size, mtime and ctime did not change is not read again, so a
 * pass costs a stat per host instead of reading every host's file. */
typedef struct _IcLedgerCache IcLedgerCache;
IcLedgerCache *ic_ledger_cache_new(void);
void ic_ledger_cache_free(IcLedgerCache *cache);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IcLedgerCache, ic_ledger_cache_free)

/* ic_ledger_read_all through @cache (NULL: read everything). */
gboolean ic_ledger_read_all_cached(IcLedgerCache *cache, const char *ledger_dir, gint64 now,
                                   gint64 stale_seconds, IcLedger **ret_ledger, GError **error);

/* How many host files, and bytes, the last ic_ledger_read_all_cached read. */
void ic_ledger_cache_last_read(const IcLedgerCache *cache, guint *ret_files, guint64 *ret_bytes);

/* Adds every domain of every host to @usage: @local_host's as local users,
 * the others' as remote users; unreadable host files mark the usage incomplete.
 * Entries are resolved against @base_dir, this host's (ic_ledger_resolve_entry). */
void ic_ledger_add_usage(const IcLedger *ledger, const char *local_host, const char *base_dir,
                         IcUsage *usage);

/* How the ledger file names base file @path: its name in the base dir (every
 * path the chains give lies directly in it); a name is kept as it is. */
char *ic_ledger_entry_name(const char *path);

/* The path, in this host's @base_dir, of ledger entry @entry: a name joined to
 * @base_dir; a format-1 absolute path "<mount>/<dir>/<name>" whose <dir> is
 * named like @base_dir, mapped onto @base_dir (another host's mount spelling);
 * NULL for any other absolute path (its base file is unknown). */
char *ic_ledger_resolve_entry(const char *entry, const char *base_dir);

/* What a domain uses, as the ledger records it: for each file disk of
 * @domain (ic_domain_file_disks), the backing chain probed from the image
 * headers, keeping the members inside @base_dir; the Nova image ids; @now as
 * the start time. A disk whose header cannot be read fails (the caller decides
 * whether that blocks the start). */
struct _IcDomain;
gboolean ic_ledger_domain_from_xml_domain(const struct _IcDomain *domain, const char *base_dir,
                                          gint64 now, IcLedgerDomain **ret_entry, GError **error);

/* The same, but never fails: a disk whose chain cannot be read is skipped and
 * described in *ret_problems (char*, NULL when there were none), so the hook can
 * record what it did find and still log (or refuse) the rest. The chains libvirt
 * wrote into the XML (<backingStore>, at started/reconnect) count too. */
IcLedgerDomain *ic_ledger_domain_collect(const struct _IcDomain *domain, const char *base_dir,
                                         gint64 now, GPtrArray **ret_problems);

/* Opens @ledger_dir as a directory fd, creating only its last component when
 * missing: a missing instances path is a config problem, and creating it could
 * put the "shared" ledger on a local disk under a mount point. */
gboolean ic_ledger_open_dir(const char *ledger_dir, int *ret_dirfd, GError **error);

/* The usage lock the hook takes at prepare and the pass for removal lives in
 * protocol.h (ic_protocol_lock_for_start / ic_protocol_lock_for_removal). */

/* One removing pass per shared cache per @interval seconds (config
 * shared_pass_interval_seconds; 0: every pass removes). TRUE when this host
 * should remove now, stamping <ledger_dir>/.last-pass with @host and @now;
 * FALSE when another host's stamp is younger than @interval: then *ret_note
 * says who and when, and the caller's pass only reports. Any trouble with the
 * stamp answers TRUE (removal stays safe under the usage lock either way). */
gboolean ic_ledger_claim_pass(const char *ledger_dir, const char *host, gint64 now, gint64 interval,
                              char **ret_note);

G_END_DECLS
