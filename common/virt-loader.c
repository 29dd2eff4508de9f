/* virt-loader.c — virt.h for imagecachectl: the libvirt client is in
 * imagecache-virt.so, loaded with GModule on the first call. Loading libvirt
 * (and gnutls, libxml2…) costs a process about 12 MiB and its relocations; only
 * report, run and reconcile ask libvirt. */
#include <gmodule.h>
#include <stdlib.h>

#include "error.h"
#include "virt-module.h"

/* The installed module, or the one built beside this binary: the build tree's
 * module is used only by the build tree's imagecachectl (tests), never by an
 * installed binary, which must not load code from a build directory. */
static char *module_path(void)
{
    g_autofree char *self = g_file_read_link("/proc/self/exe", NULL);
    g_autofree char *build = realpath(IC_CTL_BUILD_PATH, NULL);
    if (self != NULL && build != NULL && g_str_equal(self, build))
        return g_strdup(IC_VIRT_MODULE_BUILD_PATH);
    return g_strdup(IC_VIRT_MODULE_PATH);
}

static const IcVirtModuleOps *load(GError **error)
{
    static gsize loaded = 0;
    static const IcVirtModuleOps *ops = NULL;
    static char *failure = NULL;
    if (g_once_init_enter(&loaded)) {
        g_autofree char *path = module_path();
        /* Kept for the life of the process: libvirt cannot be unloaded safely. */
        GModule *module = g_module_open(path, G_MODULE_BIND_LOCAL);
        gpointer symbol = NULL;
        if (module == NULL)
            failure = g_strdup_printf("the libvirt client module could not be loaded: %s",
                                      g_module_error());
        else if (!g_module_symbol(module, IC_VIRT_MODULE_SYMBOL, &symbol) ||
                 ((const IcVirtModuleOps *)symbol)->abi != IC_VIRT_MODULE_ABI)
            failure = g_strdup_printf("'%s' is not this build's libvirt client module", path);
        else
            ops = symbol;
        if (module != NULL)
            g_module_make_resident(module);
        g_once_init_leave(&loaded, 1);
    }
    if (ops == NULL)
        g_set_error_literal(error, IC_ERROR, IC_ERROR_FAILED, failure);
    return ops;
}

gboolean ic_virt_list_domains(const char *uri, GPtrArray **ret_domains, GError **error)
{
    const IcVirtModuleOps *ops = load(error);
    return ops != NULL && ops->list_domains(uri, ret_domains, error);
}

gboolean ic_virt_add_usage(const char *uri, const char *base_dir, const char *host, IcUsage *usage,
                           GError **error)
{
    const IcVirtModuleOps *ops = load(error);
    return ops != NULL && ops->add_usage(uri, base_dir, host, usage, error);
}

gboolean ic_virt_ledger_domains(const char *uri, const char *base_dir, gint64 now,
                                GPtrArray **ret_entries, GPtrArray **ret_problems, GError **error)
{
    const IcVirtModuleOps *ops = load(error);
    return ops != NULL && ops->ledger_domains(uri, base_dir, now, ret_entries, ret_problems, error);
}
