#include "witnesses.h"

#ifdef IC_HAVE_LIBVIRT
#include "virt.h"
#endif

void ic_witnesses_collect_live(const IcConfig *config, IcUsage *usage)
{
#ifdef IC_HAVE_LIBVIRT
    g_autoptr(GError) error = NULL;
    g_autofree char *base_dir = ic_config_base_dir(config);
    if (!ic_virt_add_usage(config->libvirt_uri, base_dir, config->host, usage, &error)) {
        g_autofree char *note = g_strdup_printf("live domains not consulted: %s", error->message);
        ic_usage_add_note(usage, IC_NOTE_LIBVIRT_UNREACHABLE, note);
    }
#else
    (void)config;
    ic_usage_add_note(usage, IC_NOTE_LIBVIRT_UNSUPPORTED,
                      "live domains not consulted: built without libvirt");
#endif
}
