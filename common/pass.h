/* pass.h — one verification-and-removal pass over the base dir: scan, witnesses,
 * checksums, policy, then actions. The CLI and the collectd plugin both run this. */
#pragma once

#include <gio/gio.h>
#include <glib.h>

#include "config.h"
#include "report.h"
#include "usage.h"

G_BEGIN_DECLS

typedef enum {
    IC_PASS_REPORT,  /* analyse only: no hashing side effects, nothing written */
    IC_PASS_DRY_RUN, /* hash and decide as a run would, change nothing */
    IC_PASS_RUN,     /* write sidecars, touch in-use files, remove as configured */
} IcPassMode;

/* Adds what the caller's witnesses say (the ledger, libvirt's live domains) to
 * @usage. The pass calls it at its start and again under the usage lock right
 * before removing anything, so a domain that started meanwhile is seen. */
typedef void (*IcWitnessFunc)(IcUsage *usage, gint64 now, gpointer user_data);

typedef struct {
    IcPassMode mode;
    guint64 checksum_rate_limit; /* bytes/s, 0 = unlimited */
    const char *checksum_only;   /* hash only this base file (explaining one file); NULL: all */
    GCancellable *cancellable;
    IcWitnessFunc witnesses; /* NULL: only the given usage and the instances dir */
    gpointer witnesses_data;
    const char *proc_root; /* NULL: "/proc" (for the held-open check) */

    /* Test-only, never set in production: skip the usage lock and sleep this
     * long before each unlink, so the race test can show what the lock prevents. */
    gboolean test_skip_usage_lock;
    guint test_race_window_us;
} IcPassOptions;

/* Runs a pass with @config at time @now. @usage (may be NULL) holds users the
 * caller knows directly; options->witnesses and the instances dir add the
 * rest. Removal follows the protocol of design.md: under the exclusive usage
 * lock the witnesses are read again, age is re-checked and a file some process
 * holds open is kept. An absent base dir gives an empty report, not an error.
 * Fails only when the pass could not run at all (unreadable base dir, cancelled). */
gboolean ic_pass_run(const IcConfig *config, const IcUsage *usage, const IcPassOptions *options,
                     gint64 now, IcReport **ret_report, GError **error);

G_END_DECLS
