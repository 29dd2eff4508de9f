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

typedef struct {
    IcPassMode mode;
    guint64 checksum_rate_limit; /* bytes/s, 0 = unlimited */
    GCancellable *cancellable;
} IcPassOptions;

/* Runs a pass with @config at time @now. @usage holds what the callers'
 * witnesses found (ledger, libvirt); the pass adds the instances dir. An absent
 * base dir gives an empty report, not an error. Fails only when the pass could
 * not run at all (unreadable base dir, cancelled). */
gboolean ic_pass_run(const IcConfig *config, IcUsage *usage, const IcPassOptions *options,
                     gint64 now, IcReport **ret_report, GError **error);

G_END_DECLS
