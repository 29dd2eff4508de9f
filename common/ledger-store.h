/* ledger-store.h — the ledger directory: one file per host in ledger_dir, written only by
 * its host, atomically, under a lock; every host's file read; the shared .last-pass stamp. */
#pragma once

#include <glib.h>

#include "ledger.h"
#include "usage.h"

G_BEGIN_DECLS

/* This machine's identity for the ledger header: $IMAGECACHE_MACHINE_ID (tests,
 * containers), else /etc/machine-id; NULL when neither gives one. Two machines
 * configured with one host name would overwrite each other's file: a writer
 * refuses a file another machine wrote (IC_ERROR_CONFIG) and a pass notes it. */
char *ic_ledger_machine_id(void);

/* Records @domain for @host (replacing an entry with the same uuid), under the
 * host file's lock, and refreshes the host's timestamp to @now. */
gboolean ic_ledger_record_domain(const char *ledger_dir, const char *host,
                                 const IcLedgerDomain *domain, gint64 now, GError **error);

/* The same, waiting for the host lock only until @deadline_us (monotonic µs),
 * so a caller with a time budget (the hook at prepare) keeps one deadline. */
gboolean ic_ledger_record_domain_until(const char *ledger_dir, const char *host,
                                       const IcLedgerDomain *domain, gint64 now, gint64 deadline_us,
                                       GError **error);

/* The same in the ledger dir already open as @dirfd (ic_ledger_open_dir; -1:
 * open @ledger_dir), so the hook opens it once for the usage lock and the
 * record; @ledger_dir names it in errors. */
gboolean ic_ledger_record_domain_at(int dirfd, const char *ledger_dir, const char *host,
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

/* How old an older version's random-named temp file of a host's ledger
 * ("<host>.ledger.tmp.XXXXXXXX", left when its writer crashed) must be before
 * the repair below removes it: a writer holds its temp for one write. */
#define IC_LEDGER_OLD_TEMP_SECONDS (10 * 60)

/* Replaces every domain of @host at once (reconcile). Under the host lock it
 * also removes @host's temp files an older version's crashed writers left
 * (IC_LEDGER_OLD_TEMP_SECONDS older than @now); nothing of another host's. */
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

/* A host read from the ledger dir; the function owns it (ic_ledger_host_free). */
typedef void (*IcLedgerHostFunc)(IcLedgerHost *host, gpointer data);

typedef struct _IcLedgerCache IcLedgerCache;

/* Reads the host files in @ledger_dir one at a time, in the order of their
 * hosts' names, handing each host that could be read to @each before the next
 * is read: a pass adds a host to its usage and frees it, so a cell's ledgers
 * are never all held at once (2,000 hosts: 83 MiB, issue 15). What could not
 * be read is in *ret_errors (char*, one per file; the caller must then not
 * remove anything). @cache as for ic_ledger_read_all_cached (may be NULL). A
 * missing ledger dir is an empty ledger; FALSE only when it cannot be listed. */
gboolean ic_ledger_read_each(IcLedgerCache *cache, const char *ledger_dir, gint64 now,
                             gint64 stale_seconds, IcLedgerHostFunc each, gpointer data,
                             GPtrArray **ret_errors, GError **error);

/* What a long-running reader (the collectd plugin) parsed before: a host file
 * whose inode, size, mtime and ctime did not change is not read again, so a
 * pass costs a stat per host instead of reading every host's file. */
IcLedgerCache *ic_ledger_cache_new(void);
void ic_ledger_cache_free(IcLedgerCache *cache);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IcLedgerCache, ic_ledger_cache_free)

/* ic_ledger_read_all through @cache (NULL: read everything). */
gboolean ic_ledger_read_all_cached(IcLedgerCache *cache, const char *ledger_dir, gint64 now,
                                   gint64 stale_seconds, IcLedger **ret_ledger, GError **error);

/* How many host files, and bytes, the last ic_ledger_read_all_cached read. */
void ic_ledger_cache_last_read(const IcLedgerCache *cache, guint *ret_files, guint64 *ret_bytes);

/* Adds @host's domains to @usage: as local users when it is @local_host, else
 * as remote users; notes a stale host (its age at @read_at), another machine
 * writing under this host's name, and domains whose usage is unknown; the
 * last release of each base file. Entries are resolved against @base_dir, this
 * host's (ic_ledger_resolve_entry). */
void ic_ledger_host_add_usage(const IcLedgerHost *host, const char *local_host,
                              const char *base_dir, gint64 read_at, IcUsage *usage);

/* ic_ledger_host_add_usage for every host of @ledger; its unreadable host files
 * mark the usage incomplete. */
void ic_ledger_add_usage(const IcLedger *ledger, const char *local_host, const char *base_dir,
                         IcUsage *usage);

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
