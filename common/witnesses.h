/* witnesses.h — the usage witness a pass asks besides the filesystem ones: this host's live
 * libvirt domains, asked once before the usage lock. Shared by imagecachectl and the plugin. */
#pragma once

#include <glib.h>

#include "config.h"
#include "usage.h"

G_BEGIN_DECLS

/* Adds libvirt's live domains to @usage. An unreachable libvirt is noted and
 * not fatal (the ledger and the instances dir still speak). Never call it
 * under the usage lock: libvirtd runs the prepare hook holding the domain's
 * lock (see protocol.h). Built into each program that links the libvirt
 * client: this file compiles with or without it. The ledger is read by the
 * pass itself (ic_protocol_read_witnesses). */
void ic_witnesses_collect_live(const IcConfig *config, IcUsage *usage);

G_END_DECLS
