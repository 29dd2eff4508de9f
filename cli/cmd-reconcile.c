/* cmd-reconcile.c — `imagecachectl reconcile [--dry-run]`: this host's ledger rebuilt from
 * libvirt's live domains, the repair for hook events missed while it was not installed. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "error.h"
#include "fileutil.h"
#include "ledger-store.h"
#include "protocol.h"
#ifdef IC_HAVE_LIBVIRT
#include "virt.h"
#endif

#ifdef IC_HAVE_LIBVIRT
static const IcLedgerDomain *find_domain(GPtrArray *domains, const char *uuid)
{
    for (guint i = 0; domains != NULL && i < domains->len; i++) {
        const IcLedgerDomain *domain = g_ptr_array_index(domains, i);
        if (g_str_equal(domain->uuid, uuid))
            return domain;
    }
    return NULL;
}

/* The ledger names base files in the base dir; libvirt's answer gives paths. */
static gboolean same_entry(gconstpointer a, gconstpointer b)
{
    g_autofree char *name_a = ic_ledger_entry_name(a);
    g_autofree char *name_b = ic_ledger_entry_name(b);
    return g_str_equal(name_a, name_b);
}

static gboolean same_strings(GPtrArray *a, GPtrArray *b)
{
    if (a->len != b->len)
        return FALSE;
    for (guint i = 0; i < a->len; i++) {
        if (!g_ptr_array_find_with_equal_func(b, g_ptr_array_index(a, i), same_entry, NULL))
            return FALSE;
    }
    return TRUE;
}

static char *join_strings(GPtrArray *values)
{
    if (values->len == 0)
        return g_strdup("-");
    GString *out = g_string_new(NULL);
    for (guint i = 0; i < values->len; i++)
        g_string_append_printf(out, "%s%s", i > 0 ? " " : "",
                               (const char *)g_ptr_array_index(values, i));
    return g_string_free(out, FALSE);
}

static void print_domain_change(const char *what, const IcLedgerDomain *domain)
{
    g_autofree char *files = join_strings(domain->base_files);
    printf("%-8s %s (%s): %s\n", what, domain->name, domain->uuid, files);
}

/* This host's domains as the ledger holds them now, NULL when it has none.
 * Read outside the host file's lock: the lines printed describe the change
 * as it looked a moment before the write. */
static GPtrArray *previous_domains(const IcConfig *config, gint64 now, IcLedger **ret_ledger)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcLedger) ledger = NULL;
    if (!ic_ledger_read_all(config->ledger_dir, now, config->ledger_stale_seconds, &ledger,
                            &error)) {
        fprintf(stderr, "imagecachectl: warning: previous ledger not read (%s): rebuilding it\n",
                error->message);
        return NULL;
    }
    for (guint i = 0; i < ledger->errors->len; i++)
        fprintf(stderr, "imagecachectl: warning: %s (only host '%s' is rewritten)\n",
                (const char *)g_ptr_array_index(ledger->errors, i), config->host);
    GPtrArray *domains = NULL;
    for (guint i = 0; i < ledger->hosts->len; i++) {
        IcLedgerHost *host = g_ptr_array_index(ledger->hosts, i);
        if (g_str_equal(host->host, config->host))
            domains = host->domains;
    }
    *ret_ledger = g_steal_pointer(&ledger);
    return domains;
}

static gint compare_names(gconstpointer a, gconstpointer b)
{
    const IcLedgerDomain *da = *(IcLedgerDomain *const *)a;
    const IcLedgerDomain *db = *(IcLedgerDomain *const *)b;
    return g_strcmp0(da->name, db->name);
}

/* Prints what the rebuild adds, drops and changes; returns how many lines. */
static guint print_changes(GPtrArray *before, GPtrArray *after)
{
    guint changes = 0;
    for (guint i = 0; i < after->len; i++) {
        const IcLedgerDomain *now_entry = g_ptr_array_index(after, i);
        const IcLedgerDomain *old = find_domain(before, now_entry->uuid);
        if (old == NULL) {
            print_domain_change("added", now_entry);
            changes++;
        } else if (!same_strings(old->base_files, now_entry->base_files) ||
                   !same_strings(old->image_ids, now_entry->image_ids) ||
                   g_strcmp0(old->unknown, now_entry->unknown) != 0) {
            print_domain_change("changed", now_entry);
            changes++;
        }
    }
    for (guint i = 0; before != NULL && i < before->len; i++) {
        const IcLedgerDomain *old = g_ptr_array_index(before, i);
        if (find_domain(after, old->uuid) == NULL) {
            print_domain_change("dropped", old);
            changes++;
        }
    }
    return changes;
}

/* How often reconcile asks libvirt again when a hook changed the ledger
 * between libvirt's answer and the write. */
#define RECONCILE_ATTEMPTS 3

/* One consistent rebuild: snapshot this host's ledger, ask libvirt (holding no
 * lock: libvirtd runs the hook under the domain's lock, and the hook takes ours),
 * then, under the locks the hook takes at prepare (the usage lock shared, then
 * the host file's lock), write only if the file is still the snapshot. A domain
 * a hook recorded after libvirt's answer is never dropped: the write is refused
 * and libvirt asked again. */
static gboolean rebuild(const IcConfig *config, GPtrArray *entries, gint64 now, GBytes *snapshot,
                        GError **error)
{
    ic_autofd usage_lock = -1;
    if (!ic_protocol_ledger_dir_check(config, TRUE, NULL, error) ||
        !ic_protocol_lock_for_start(config->ledger_dir, IC_PROTOCOL_START_WAIT_MS, &usage_lock,
                                    error))
        return FALSE;
    return ic_ledger_replace_host_if_unchanged(config->ledger_dir, config->host, entries, now,
                                               snapshot, error);
}

static int reconcile(IcCli *cli, gboolean dry_run)
{
    const IcConfig *config = cli->config;
    g_autoptr(GError) error = NULL;
    g_autofree char *base_dir = ic_config_base_dir(config);
    gint64 now = ic_cli_now();

    for (guint attempt = 1;; attempt++) {
        g_autoptr(GBytes) snapshot = NULL;
        if (!ic_ledger_host_snapshot(config->ledger_dir, config->host, &snapshot, &error)) {
            g_prefix_error(&error, "reconcile: ledger of host '%s' left as it was: ", config->host);
            ic_cli_print_error(error);
            return IC_EXIT_FAILED;
        }
        g_autoptr(GPtrArray) entries = NULL;
        g_autoptr(GPtrArray) problems = NULL;
        if (!ic_virt_ledger_domains(config->libvirt_uri, base_dir, now, &entries, &problems,
                                    &error)) {
            g_prefix_error(&error, "reconcile: ledger of host '%s' left as it was: ", config->host);
            ic_cli_print_error(error);
            return IC_EXIT_FAILED;
        }

        g_autoptr(IcLedger) previous = NULL;
        GPtrArray *before = previous_domains(config, now, &previous);
        g_ptr_array_sort(entries, compare_names);
        if (!dry_run && !rebuild(config, entries, now, snapshot, &error)) {
            if (g_error_matches(error, IC_ERROR, IC_ERROR_CHANGED) &&
                attempt < RECONCILE_ATTEMPTS) {
                g_clear_error(&error);
                continue;
            }
            g_prefix_error(&error, "reconcile: ledger of host '%s' left as it was: ", config->host);
            ic_cli_print_error(error);
            return IC_EXIT_FAILED;
        }
        for (guint i = 0; problems != NULL && i < problems->len; i++)
            fprintf(stderr,
                    "imagecachectl: warning: %s (recording the domain's usage as unknown)\n",
                    (const char *)g_ptr_array_index(problems, i));
        guint changes = print_changes(before, entries);
        printf("%s host '%s' from %u live domains at '%s': %u %s%s\n",
               dry_run ? "Would rebuild the ledger of" : "Rebuilt the ledger of", config->host,
               entries->len, config->libvirt_uri, changes, changes == 1 ? "change" : "changes",
               dry_run ? " (dry run: nothing written)" : "");
        return problems != NULL ? IC_EXIT_FAILED : IC_EXIT_OK;
    }
}
#endif

int ic_cmd_reconcile(IcCli *cli, int argc, char **argv)
{
    gboolean dry_run = FALSE;
    const GOptionEntry entries[] = {
        {"dry-run", 'n', 0, G_OPTION_ARG_NONE, &dry_run,
         "Show what would change, but write nothing", NULL},
        G_OPTION_ENTRY_NULL,
    };
    int status = ic_cli_parse(cli, &argc, &argv, entries, FALSE, "- rebuild this host's ledger",
                              "Replaces this host's usage ledger with libvirt's live domains "
                              "(read-only connection to libvirt_uri), their base files resolved "
                              "from the image headers. Repairs what the hook missed.");
    if (status != IC_EXIT_OK)
        return status;
#ifdef IC_HAVE_LIBVIRT
    return reconcile(cli, dry_run);
#else
    (void)dry_run;
    fprintf(stderr, "imagecachectl: reconcile: built without libvirt\n");
    return IC_EXIT_FAILED;
#endif
}
