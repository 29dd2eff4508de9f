/* witness.c — gathers the usage witnesses the CLI reads besides the instances dir:
 * the usage ledger of every host and, when built with libvirt, this host's live domains. */
#include "cli.h"
#include "ledger.h"
#ifdef IC_HAVE_LIBVIRT
#include "virt.h"
#endif

static void add_ledger(IcCli *cli, IcUsage *usage, gint64 now)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcLedger) ledger = NULL;
    const IcConfig *config = cli->config;

    if (!ic_ledger_read_all(config->ledger_dir, now, config->ledger_stale_seconds, &ledger,
                            &error)) {
        g_autofree char *note =
            g_strdup_printf("usage ledger '%s' could not be read (%s): nothing is removed",
                            config->ledger_dir, error->message);
        ic_usage_add_note(usage, TRUE, note);
        return;
    }
    ic_ledger_add_usage(ledger, config->host, usage);
}

static void add_live_domains(IcCli *cli, IcUsage *usage)
{
#ifdef IC_HAVE_LIBVIRT
    g_autoptr(GError) error = NULL;
    g_autofree char *base_dir = ic_config_base_dir(cli->config);
    if (!ic_virt_add_usage(cli->config->libvirt_uri, base_dir, cli->config->host, usage, &error)) {
        /* The ledger and the instances dir still speak; say that this one did not. */
        g_autofree char *note = g_strdup_printf("live domains not consulted: %s", error->message);
        ic_usage_add_note(usage, FALSE, note);
    }
#else
    ic_usage_add_note(usage, FALSE, "live domains not consulted: built without libvirt");
#endif
}

void ic_cli_collect_usage(IcCli *cli, IcUsage *usage, gint64 now)
{
    add_ledger(cli, usage, now);
    add_live_domains(cli, usage);
}
