/* cmd-ledger.c — `imagecachectl ledger [--json]`: every host's usage ledger as it is on disk.
 * Damaged host files are listed (and make the exit status 1): they block every removal. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>

#include "cli.h"
#include "error.h"
#include "fileutil.h"
#include "jsonout.h"
#include "ledger-store.h"
#include "protocol.h"
#include "report.h"

static void add_domain_json(IcJsonWriter *b, const IcLedgerDomain *domain)
{
    ic_json_begin_object(b);
    ic_json_member_string(b, "uuid", domain->uuid);
    ic_json_member_string(b, "name", domain->name);
    ic_json_member_int(b, "started", domain->started);
    ic_json_member_strings(b, "base_files", domain->base_files);
    ic_json_member_strings(b, "image_ids", domain->image_ids);
    /* null, or why its base files are not all known (every pass keeps every file) */
    ic_json_member_string(b, "unknown", domain->unknown);
    ic_json_end_object(b);
}

static void add_host_json(IcJsonWriter *b, const IcLedgerHost *host, const char *local_host,
                          gint64 now)
{
    ic_json_begin_object(b);
    ic_json_member_string(b, "host", host->host);
    ic_json_member_bool(b, "local", g_strcmp0(host->host, local_host) == 0);
    ic_json_member_string(b, "machine_id", host->machine_id);
    ic_json_member_int(b, "refreshed", host->refreshed);
    ic_json_member_int(b, "age_seconds", now - host->refreshed);
    ic_json_member_bool(b, "stale", host->stale);
    ic_json_member_name(b, "domains");
    ic_json_begin_array(b);
    for (guint i = 0; i < host->domains->len; i++)
        add_domain_json(b, g_ptr_array_index(host->domains, i));
    ic_json_end_array(b);
    ic_json_end_object(b);
}

/* Streamed to stdout. */
static gboolean print_ledger_json(const IcLedger *ledger, const IcConfig *config, gint64 now,
                                  GError **error)
{
    IcJsonWriter *b = ic_json_writer_new(stdout);
    ic_json_begin_object(b);
    ic_json_member_string(b, "ledger_dir", ledger->ledger_dir);
    ic_json_member_string(b, "local_host", config->host);
    ic_json_member_int(b, "stale_seconds", config->ledger_stale_seconds);
    ic_json_member_int(b, "now", now);
    ic_json_member_name(b, "hosts");
    ic_json_begin_array(b);
    for (guint i = 0; i < ledger->hosts->len; i++)
        add_host_json(b, g_ptr_array_index(ledger->hosts, i), config->host, now);
    ic_json_end_array(b);
    ic_json_member_strings(b, "errors", ledger->errors);
    ic_json_end_object(b);
    return ic_json_writer_finish(b, error);
}

static void print_hosts(GString *out, const IcLedger *ledger, const char *local_host, gint64 now)
{
    g_string_append_printf(out, "%-24s %-21s %10s  %-6s %7s\n", "HOST", "REFRESHED", "AGE", "STATE",
                           "DOMAINS");
    for (guint i = 0; i < ledger->hosts->len; i++) {
        const IcLedgerHost *host = g_ptr_array_index(ledger->hosts, i);
        g_autofree char *refreshed = ic_format_time(host->refreshed);
        g_autofree char *name = g_strcmp0(host->host, local_host) == 0
                                    ? g_strconcat(host->host, " (local)", NULL)
                                    : g_strdup(host->host);
        g_string_append_printf(out, "%-24s %-21s %9" G_GINT64_FORMAT "s  %-6s %7u\n", name,
                               refreshed, now - host->refreshed, host->stale ? "STALE" : "fresh",
                               host->domains->len);
    }
}

static void print_domains(GString *out, const IcLedger *ledger)
{
    g_string_append_printf(out, "%-16s %-36s %-20s %-21s %s\n", "HOST", "UUID", "NAME", "STARTED",
                           "BASE FILES / IMAGES");
    for (guint i = 0; i < ledger->hosts->len; i++) {
        const IcLedgerHost *host = g_ptr_array_index(ledger->hosts, i);
        for (guint j = 0; j < host->domains->len; j++) {
            const IcLedgerDomain *d = g_ptr_array_index(host->domains, j);
            g_autofree char *started = ic_format_time(d->started);
            g_string_append_printf(out, "%-16s %-36s %-20s %-21s", host->host, d->uuid, d->name,
                                   started);
            /* One base file or image per line, the first beside the domain. */
            guint lines = 0;
            for (guint k = 0; k < d->base_files->len; k++, lines++)
                g_string_append_printf(out, "%*s%s\n", lines > 0 ? 97 : 1, "",
                                       (char *)g_ptr_array_index(d->base_files, k));
            for (guint k = 0; k < d->image_ids->len; k++, lines++)
                g_string_append_printf(out, "%*simage %s\n", lines > 0 ? 97 : 1, "",
                                       (char *)g_ptr_array_index(d->image_ids, k));
            if (d->unknown != NULL) {
                g_string_append_printf(out, "%*sUNKNOWN: %s\n", lines > 0 ? 97 : 1, "", d->unknown);
                lines++;
            }
            if (lines == 0)
                g_string_append(out, " -\n");
        }
    }
}

static char *ledger_to_table(const IcLedger *ledger, const IcConfig *config, gint64 now)
{
    GString *out = g_string_new(NULL);
    g_string_append_printf(out, "Usage ledger '%s', this host '%s'\n\n", ledger->ledger_dir,
                           config->host);
    if (ledger->hosts->len == 0) {
        g_string_append(out, "No host has recorded a domain yet.\n");
    } else {
        print_hosts(out, ledger, config->host, now);
        g_string_append_c(out, '\n');
        print_domains(out, ledger);
    }
    for (guint i = 0; i < ledger->hosts->len; i++) {
        const IcLedgerHost *host = g_ptr_array_index(ledger->hosts, i);
        if (host->stale)
            g_string_append_printf(out,
                                   "\nHost '%s' has not refreshed its ledger for %" G_GINT64_FORMAT
                                   " s: its domains still count as users.\n",
                                   host->host, now - host->refreshed);
    }
    return g_string_free(out, FALSE);
}

/* The operator's word that ledger_dir is the shared ledger (protocol.h): run
 * with the share mounted. The dir is never created outside instances_path. */
static int init_marker(const IcConfig *config)
{
    g_autoptr(GError) error = NULL;
    if (ic_protocol_ledger_dir_is_local(config) &&
        !ic_protocol_ledger_dir_check(config, TRUE, NULL, &error)) {
        ic_cli_print_error(error);
        return IC_EXIT_FAILED;
    }
    ic_autofd dirfd = open(config->ledger_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        ic_error_set_errno(&error, errno, "opening the ledger directory", config->ledger_dir);
        g_prefix_error(&error, "mount the share first: ");
        ic_cli_print_error(error);
        return IC_EXIT_FAILED;
    }
    static const char text[] = "This directory is the imagecache usage ledger shared by the "
                               "hosts of one base-image cache (imagecachectl ledger --init).\n";
    if (!ic_file_write_atomic_at(dirfd, IC_PROTOCOL_LEDGER_MARKER, text, sizeof text - 1, 0644,
                                 &error)) {
        ic_cli_print_error(error);
        return IC_EXIT_FAILED;
    }
    printf("'%s/%s' written: '%s' counts as the shared usage ledger\n", config->ledger_dir,
           IC_PROTOCOL_LEDGER_MARKER, config->ledger_dir);
    return IC_EXIT_OK;
}

int ic_cmd_ledger(IcCli *cli, int argc, char **argv)
{
    gboolean json = FALSE;
    gboolean init = FALSE;
    const GOptionEntry entries[] = {
        {"json", 0, 0, G_OPTION_ARG_NONE, &json, "Print one JSON object", NULL},
        {"init", 0, 0, G_OPTION_ARG_NONE, &init,
         "Mark ledger_dir (outside instances_path: a mounted share) as the shared ledger", NULL},
        G_OPTION_ENTRY_NULL,
    };
    int status = ic_cli_parse(cli, &argc, &argv, entries, FALSE, "- show the usage ledger",
                              "Shows every host's ledger: when it was refreshed, and which "
                              "domains use which base files and images. Exit status 1 when a "
                              "host file is damaged (nothing is removed until it is repaired).");
    if (status != IC_EXIT_OK)
        return status;

    const IcConfig *config = cli->config;
    if (init)
        return init_marker(config);
    gint64 now = ic_cli_now();
    g_autoptr(GError) error = NULL;
    /* Shown as it is on disk, but the pass would not trust it: say so. */
    if (!ic_protocol_ledger_dir_check(config, FALSE, NULL, &error)) {
        fprintf(stderr, "imagecachectl: %s; the pass removes nothing\n", error->message);
        g_clear_error(&error);
    }
    g_autoptr(IcLedger) ledger = NULL;
    if (!ic_ledger_read_all(config->ledger_dir, now, config->ledger_stale_seconds, &ledger,
                            &error)) {
        ic_cli_print_error(error);
        return IC_EXIT_FAILED;
    }

    if (json) {
        if (!print_ledger_json(ledger, config, now, &error)) {
            ic_cli_print_error(error);
            return IC_EXIT_FAILED;
        }
        fputc('\n', stdout);
    } else {
        g_autofree char *text = ledger_to_table(ledger, config, now);
        fputs(text, stdout);
    }
    for (guint i = 0; i < ledger->errors->len; i++)
        fprintf(stderr,
                "imagecachectl: %s: nothing is removed until it is repaired "
                "('imagecachectl reconcile' on that host)\n",
                (char *)g_ptr_array_index(ledger->errors, i));
    return ledger->errors->len > 0 ? IC_EXIT_FAILED : IC_EXIT_OK;
}
