/* ledger-domain.h — what a domain uses, as the ledger records it: the base files its
 * disks' backing chains reach inside the base dir, and its Nova image ids. */
#pragma once

#include <glib.h>

#include "domxml.h"
#include "ledger.h"

G_BEGIN_DECLS

/* The ledger entry of @domain: for each file disk (ic_domain_disk_is_file_disk),
 * the backing chain probed from the image headers at the disk's declared format,
 * keeping the members the kernel resolves inside @base_dir; the chains libvirt
 * wrote into the XML (<backingStore>, at started/reconnect) count too; the Nova
 * image ids; @now as the start time. Never fails: a disk whose chain cannot be
 * read (or that cannot be followed at all) is skipped and described in
 * *ret_problems (char*, NULL when there were none), and marks the entry's usage
 * unknown, so the hook can record what it did find and still log (or refuse)
 * the rest. */
IcLedgerDomain *ic_ledger_domain_collect(const IcDomain *domain, const char *base_dir, gint64 now,
                                         GPtrArray **ret_problems);

G_END_DECLS
