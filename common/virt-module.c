/* virt-module.c — the table imagecache-virt.so exports (see virt-module.h). */
#include <gmodule.h>

#include "virt-module.h"

G_MODULE_EXPORT const IcVirtModuleOps ic_virt_module_ops = {
    .abi = IC_VIRT_MODULE_ABI,
    .list_domains = ic_virt_list_domains,
    .add_usage = ic_virt_add_usage,
    .ledger_domains = ic_virt_ledger_domains,
};
