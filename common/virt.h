/* virt.h — the libvirt client: this host's live domains, over a read-only connection.
 * Only the CLI and the collectd plugin link it (libvirt costs ~24 ms per process start). */
#pragma once

#include <glib.h>

#include "usage.h"

G_BEGIN_DECLS

/* Lists the active domains at @uri (NULL: libvirt's default URI) with a
 * read-only connection; *ret_domains receives each one's live XML parsed by
 * ic_domxml_parse (IcDomain*). An unreachable libvirt fails with
 * "cannot connect to libvirt at '@uri': <libvirt's message>"; a domain whose
 * XML cannot be read (IC_ERROR_FAILED) or parsed (IC_ERROR_FORMAT) fails the listing; a domain
 * that stops while it is listed is left out. libvirt's own error printing is
 * silenced for the process. */
gboolean ic_virt_list_domains(const char *uri, GPtrArray **ret_domains, GError **error);

/* The live-domain witness: each active domain's disk chains, resolved from
 * the image headers and from libvirt's <backingStore>, are recorded in @usage
 * as local users (IC_WITNESS_LIBVIRT) of the members inside @base_dir, with
 * the domain's Nova image refs. A disk or domain that cannot be read is a
 * note that blocks removal, not a failure. Fails only when libvirt cannot be
 * asked (unreachable, listing refused); @usage is then unchanged. */
gboolean ic_virt_add_usage(const char *uri, const char *base_dir, const char *host, IcUsage *usage,
                           GError **error);

/* What reconcile writes: one IcLedgerDomain* per active domain (started =
 * @now; ic_ledger_replace_host keeps an older start time). A disk whose chain
 * cannot be read leaves the entry with what was found and adds a line to
 * *ret_problems (char*, NULL when there were none). Fails when libvirt cannot
 * be asked or a domain's XML cannot be parsed: an entry that cannot be
 * written must not be dropped from the ledger. */
gboolean ic_virt_ledger_domains(const char *uri, const char *base_dir, gint64 now,
                                GPtrArray **ret_entries, GPtrArray **ret_problems, GError **error);

G_END_DECLS
