#include "witnesses.h"

#include "ledger.h"
#ifdef IC_HAVE_LIBVIRT
#include "virt.h"
#endif

static void add_ledger(const IcConfig *config, IcUsage *usage, gint64 now, IcLedgerCounts *counts)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcLedger) ledger = NULL;

    /* A missing ledger dir inside instances_path is a host where no domain
     * was recorded yet. Elsewhere it may be a shared mount that is not
     * mounted: then other hosts' users are unknown. */
    g_autofree char *prefix = g_strconcat(config->instances_path, G_DIR_SEPARATOR_S, NULL);
    if (!g_file_test(config->ledger_dir, G_FILE_TEST_IS_DIR) &&
        !g_str_has_prefix(config->ledger_dir, prefix)) {
        g_autofree char *note = g_strdup_printf(
            "usage ledger dir '%s' does not exist and is outside instances_path (an unmounted "
            "share?): other hosts' users are unknown, so nothing is removed; create it to "
            "confirm it is empty",
            config->ledger_dir);
        ic_usage_add_note(usage, IC_NOTE_LEDGER_DIR_MISSING, note);
        return;
    }
    if (!ic_ledger_read_all(config->ledger_dir, now, config->ledger_stale_seconds, &ledger,
                            &error)) {
        g_autofree char *note =
            g_strdup_printf("usage ledger '%s' could not be read (%s): nothing is removed",
                            config->ledger_dir, error->message);
        ic_usage_add_note(usage, IC_NOTE_LEDGER_UNREADABLE, note);
        return;
    }
    ic_ledger_add_usage(ledger, config->host, usage);
    counts->known = ledger->errors->len == 0;
    counts->hosts = ledger->hosts->len;
    for (guint i = 0; i < ledger->hosts->len; i++)
        counts->stale_hosts += ((const IcLedgerHost *)g_ptr_array_index(ledger->hosts, i))->stale;
}

static void add_live_domains(const IcConfig *config, IcUsage *usage)
{
#ifdef IC_HAVE_LIBVIRT
    g_autoptr(GError) error = NULL;
    g_autofree char *base_dir = ic_config_base_dir(config);
    if (!ic_virt_add_usage(config->libvirt_uri, base_dir, config->host, usage, &error)) {
        g_autofree char *note = g_strdup_printf("live domains not consulted: %s", error->message);
        ic_usage_add_note(usage, IC_NOTE_LIBVIRT_UNREACHABLE, note);
    }
#else
    ic_usage_add_note(usage, IC_NOTE_LIBVIRT_UNSUPPORTED,
                      "live domains not consulted: built without libvirt");
#endif
}

void ic_witnesses_collect(const IcConfig *config, IcUsage *usage, gint64 now,
                          IcLedgerCounts *ret_counts)
{
    IcLedgerCounts counts = {.known = FALSE};
    add_ledger(config, usage, now, &counts);
    add_live_domains(config, usage);
    if (ret_counts != NULL)
        *ret_counts = counts;
}
