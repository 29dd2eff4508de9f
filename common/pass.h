/* pass.h — one verification-and-removal pass over the base dir: scan, witnesses,
 * checksums, policy, then actions. The CLI and the collectd plugin both run this. */
#pragma once

#include <glib.h>

#include "cancel.h"
#include "config.h"
#include "ledger-store.h"
#include "protocol.h"
#include "report.h"
#include "usage.h"

G_BEGIN_DECLS

typedef enum {
    IC_PASS_REPORT,  /* analyse only: no hashing side effects, nothing written */
    IC_PASS_DRY_RUN, /* hash and decide as a run would, change nothing */
    IC_PASS_RUN,     /* write sidecars, touch in-use files, remove as configured */
} IcPassMode;

/* Adds what the caller's external witnesses say (libvirt's live domains) to
 * @usage. The pass asks them ONCE, at its start, never under the usage lock:
 * libvirtd runs the prepare hook while it holds the domain's lock, so asking it
 * under our lock could deadlock every VM start. A domain starting after that
 * answer is caught by its own prepare record in the ledger, which the pass
 * reads itself (from config->ledger_dir) at its start and again under the lock. */
typedef void (*IcWitnessFunc)(IcUsage *usage, gint64 now, gpointer user_data);

/* What a pass would have freed before returning, handed to its caller
 * (IcPassOptions.keep). */
typedef struct IcPassKept IcPassKept;
void ic_pass_kept_free(IcPassKept *kept);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IcPassKept, ic_pass_kept_free)

typedef struct {
    IcPassMode mode;
    guint64 checksum_rate_limit; /* bytes/s, 0 = unlimited */
    const char *checksum_only;   /* hash only this base file (explaining one file); NULL: all */
    IcCancel *cancel;            /* stops hashing, the lock wait and removal */
    IcWitnessFunc witnesses;     /* NULL: only the ledger, the given usage and the instances dir */
    /* A long-running caller's: the first read parses only the host files that
     * changed; the removal's re-read under the lock reads them all. NULL: none. */
    IcLedgerCache *ledger_cache;
    gpointer witnesses_data;
    const char *proc_root;  /* NULL: "/proc" (for the held-open check) */
    gint64 lock_timeout_ms; /* 0: IC_PROTOCOL_REMOVAL_WAIT_MS */
    gint64 hold_limit_ms;   /* 0: IC_PROTOCOL_HOLD_LIMIT_MS */
    guint walk_threads;     /* threads reading the witnesses: 0 one per core (up to 4); 1 none but
                             * the caller's (the ledger is then not read while the scan runs) */

    /* A caller that exits right after printing (imagecachectl) may take what a
     * preview (report, dry run) would free before returning, the first read's
     * usage and the base dir's scan: freeing them took 90-100 ms at 10x, the
     * main thread waiting for most of it (issue 15). Set to NULL after a run
     * (its removal frees the first usage before re-reading) or a failure.
     * NULL: the pass frees them. */
    IcPassKept **keep;

    IcProtocolSeamFunc seam; /* tests only: called at each stage; NULL in production */
    gpointer seam_data;
} IcPassOptions;

/* Runs a pass with @config at time @now. @usage (may be NULL) holds users the
 * caller knows directly; the ledger, options->witnesses and the instances dir
 * add the rest. Removal follows the protocol of design.md (protocol.h): under
 * the exclusive usage lock the filesystem witnesses are read again, identity
 * and age are re-checked and a file some process holds open is kept. An absent
 * base dir gives an empty report, not an error. Fails only when the pass could
 * not run at all (unreadable base dir, cancelled while hashing). */
gboolean ic_pass_run(const IcConfig *config, const IcUsage *usage, const IcPassOptions *options,
                     gint64 now, IcReport **ret_report, GError **error);

G_END_DECLS
