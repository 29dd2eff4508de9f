/* virt-module.h — the libvirt client as a loadable module (imagecache-virt.so):
 * imagecachectl loads it (virt-loader.c) only when a command asks libvirt, so
 * the commands that do not (--version, check-config, verify, ledger) do not pay
 * libvirt's start-up. The module exports one table of the virt.h functions. */
#pragma once

#include "virt.h"

G_BEGIN_DECLS

#define IC_VIRT_MODULE_ABI    1
#define IC_VIRT_MODULE_SYMBOL "ic_virt_module_ops"

typedef struct {
    guint abi; /* IC_VIRT_MODULE_ABI: a module from another build is refused */
    gboolean (*list_domains)(const char *uri, GPtrArray **ret_domains, GError **error);
    gboolean (*add_usage)(const char *uri, const char *base_dir, const char *host, IcUsage *usage,
                          GError **error);
    gboolean (*ledger_domains)(const char *uri, const char *base_dir, gint64 now,
                               GPtrArray **ret_entries, GPtrArray **ret_problems, GError **error);
} IcVirtModuleOps;

G_END_DECLS
