/* witnesses.h — the usage witnesses a pass asks besides the instances dir: every host's
 * ledger and this host's live libvirt domains. Shared by imagecachectl and the plugin. */
#pragma once

#include <glib.h>

#include "config.h"
#include "usage.h"

G_BEGIN_DECLS

/* What the ledger witness saw. */
typedef struct {
    gboolean known; /* FALSE when the ledger could not be read in full */
    guint hosts;
    guint stale_hosts;
} IcLedgerCounts;

/* Adds the ledger's and libvirt's users to @usage. A ledger that cannot be
 * read marks the usage incomplete (nothing is removed); an unreachable libvirt
 * is noted and not fatal (the ledger and the instances dir still speak).
 * @ret_counts (may be NULL) receives the ledger figures. Built into each
 * program that links the libvirt client: this file compiles with or without it. */
void ic_witnesses_collect(const IcConfig *config, IcUsage *usage, gint64 now,
                          IcLedgerCounts *ret_counts);

G_END_DECLS
