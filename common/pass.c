#include "pass.h"

#include <unistd.h>

#include "checksum.h"
#include "error.h"
#include "policy.h"
#include "remove.h"
#include "scan.h"

static IcPolicyConfig policy_config_from(const IcConfig *config)
{
    return (IcPolicyConfig){
        .remove_unused = config->remove_unused_base_images,
        .original_minimum_age = config->remove_unused_original_minimum_age_seconds,
        .resized_minimum_age = config->remove_unused_resized_minimum_age_seconds,
    };
}

/* Directories under instances_path that are not instances. */
static GPtrArray *non_instance_dirs(const IcConfig *config)
{
    GPtrArray *skip = g_ptr_array_new_with_free_func(g_free);
    g_ptr_array_add(skip, g_strdup(config->base_dir_name));
    g_autofree char *ledger_parent = g_path_get_dirname(config->ledger_dir);
    if (g_str_equal(ledger_parent, config->instances_path))
        g_ptr_array_add(skip, g_path_get_basename(config->ledger_dir));
    g_ptr_array_add(skip, NULL);
    return skip;
}

static void fill_users(IcImageRow *row, const IcUsers *users)
{
    row->local_users = users->local;
    row->remote_users = users->remote;
    row->witnesses = users->witnesses;
    for (guint i = 0; i < users->users->len; i++)
        g_ptr_array_add(row->users, g_strdup(g_ptr_array_index(users->users, i)));
}

static gboolean verify_checksum(int dirfd, const IcBaseFile *file, const IcConfig *config,
                                const IcPassOptions *options, gint64 now, IcImageRow *row,
                                IcReport *report, GError **error)
{
    if (!config->checksum_base_images)
        return TRUE;
    IcChecksumOptions checksum_options = {
        .rate_limit_bytes_per_sec = options->checksum_rate_limit,
        .interval_seconds = config->checksum_interval_seconds,
        .write_missing = options->mode == IC_PASS_RUN,
        .cancellable = options->cancellable,
    };
    if (!ic_checksum_verify(dirfd, file->name, &checksum_options, now, &row->checksum, error))
        return FALSE;
    if (row->checksum.state == IC_CHECKSUM_MISMATCH)
        ic_report_add_event(report, IC_EVENT_WARNING, file->name,
                            "%s: image verification failed: expected sha1 %s, got %s, keeping "
                            "the file",
                            file->name, row->checksum.expected, row->checksum.actual);
    else if (row->checksum.state == IC_CHECKSUM_ERROR)
        ic_report_add_event(report, IC_EVENT_WARNING, file->name, "%s: checksum not verified: %s",
                            file->name, row->checksum.error);
    return TRUE;
}

/* Carries out the verdict on one present file. */
static void act_on_file(int dirfd, const IcBaseFile *file, IcImageRow *row, IcPassMode mode,
                        gint64 now, IcReport *report)
{
    g_autoptr(GError) error = NULL;
    gboolean in_use = row->local_users + row->remote_users > 0;

    if (in_use) {
        if (mode != IC_PASS_RUN)
            return;
        /* Refreshing the mtime makes age mean "unused for". */
        if (ic_remove_touch(dirfd, file->name, now, &error))
            row->action = IC_ACTION_TOUCHED;
        else
            ic_report_add_event(report, IC_EVENT_WARNING, file->name,
                                "%s: could not refresh mtime of a file in use: %s", file->name,
                                error->message);
        return;
    }
    if (row->decision.verdict != IC_VERDICT_REMOVABLE)
        return;
    if (mode != IC_PASS_RUN) {
        row->action = IC_ACTION_WOULD_REMOVE;
        return;
    }
    IcRemoveExpect expect = {
        .dev = file->dev, .ino = file->ino, .min_age = row->decision.threshold};
    if (ic_remove_base_file(dirfd, file->name, &expect, now, &error)) {
        row->action = IC_ACTION_REMOVED;
        ic_report_add_event(report, IC_EVENT_INFO, file->name, "%s: removed (%s)", file->name,
                            row->decision.reason);
        return;
    }
    row->action = IC_ACTION_REMOVE_FAILED;
    row->error = g_strdup(error->message);
    ic_report_add_event(report, IC_EVENT_WARNING, file->name, "Failed to remove %s: %s", file->name,
                        error->message);
}

static gboolean process_file(int dirfd, const IcBaseFile *file, const IcConfig *config,
                             const IcUsage *usage, const IcPassOptions *options, gint64 now,
                             IcReport *report, GError **error)
{
    IcImageRow *row = ic_report_add_row(report, file->name);
    g_autoptr(IcUsers) users =
        ic_usage_users_of(usage, report->base_dir, file->name, file->fingerprint);

    row->kind = file->kind;
    row->fingerprint = g_strdup(file->fingerprint);
    row->image_id = g_strdup(g_hash_table_lookup(usage->image_ids, file->fingerprint));
    row->present = TRUE;
    row->size = file->size;
    row->mtime = file->mtime;
    fill_users(row, users);

    if (!verify_checksum(dirfd, file, config, options, now, row, report, error))
        return FALSE;

    IcPolicyFacts facts = {
        .kind = file->kind,
        .present = TRUE,
        .mtime = file->mtime,
        .local_users = users->local,
        .remote_users = users->remote,
        .usage_incomplete = usage->incomplete,
        .checksum = row->checksum.state,
    };
    IcPolicyConfig policy = policy_config_from(config);
    row->decision = ic_policy_decide(&facts, &policy, now);
    act_on_file(dirfd, file, row, options->mode, now, report);
    return TRUE;
}

static IcImageRow *add_absent_row(IcReport *report, const IcConfig *config, const char *name,
                                  IcImageKind kind, const char *fingerprint, const IcUsers *users,
                                  gint64 now)
{
    IcImageRow *row = ic_report_add_row(report, name);
    row->kind = kind;
    row->fingerprint = g_strdup(fingerprint);
    fill_users(row, users);
    IcPolicyFacts facts = {
        .kind = kind,
        .present = FALSE,
        .local_users = users->local,
        .remote_users = users->remote,
    };
    IcPolicyConfig policy = policy_config_from(config);
    row->decision = ic_policy_decide(&facts, &policy, now);
    g_autofree char *names = ic_image_row_users_text(row);
    ic_report_add_event(report, IC_EVENT_WARNING, name,
                        "%s: warning -- an absent base file is in use! users: %s", name, names);
    return row;
}

/* Files that witnesses name but the scan did not find. A fingerprint used only
 * on other hosts is no concern of this base dir (the reference suite's rule);
 * a path in this base dir is, whoever uses it. */
static void add_absent_rows(IcReport *report, const IcScan *scan, const IcConfig *config,
                            const IcUsage *usage, gint64 now)
{
    GHashTableIter iter;
    gpointer key, value;

    g_hash_table_iter_init(&iter, usage->by_path);
    while (g_hash_table_iter_next(&iter, &key, &value)) {
        g_autofree char *dir = g_path_get_dirname(key);
        g_autofree char *name = g_path_get_basename(key);
        g_autofree char *fingerprint = NULL;
        if (!g_str_equal(dir, report->base_dir))
            continue;
        IcImageKind kind = ic_scan_classify_name(name, &fingerprint);
        if (kind == IC_KIND_IGNORED || ic_scan_lookup(scan, name) != NULL)
            continue;
        add_absent_row(report, config, name, kind, fingerprint, value, now);
    }

    g_hash_table_iter_init(&iter, usage->by_fingerprint);
    while (g_hash_table_iter_next(&iter, &key, &value)) {
        const IcUsers *users = value;
        if (users->local == 0 || ic_scan_find_variants(scan, key) != NULL)
            continue;
        if (ic_report_lookup(report, key) != NULL)
            continue; /* already reported through its path */
        IcImageRow *row = add_absent_row(report, config, key, IC_KIND_ORIGINAL, key, users, now);
        row->image_id = g_strdup(g_hash_table_lookup(usage->image_ids, key));
    }
}

gboolean ic_pass_run(const IcConfig *config, IcUsage *usage, const IcPassOptions *options,
                     gint64 now, IcReport **ret_report, GError **error)
{
    gint64 started = g_get_monotonic_time();
    g_autofree char *base_dir = ic_config_base_dir(config);
    g_autoptr(IcReport) report = ic_report_new(base_dir, config->host, now);
    g_autoptr(IcScan) scan = NULL;

    report->dry_run = options->mode != IC_PASS_RUN;
    if (!ic_scan_base_dir(base_dir, &scan, error))
        return FALSE;
    report->base_dir_exists = scan->exists;
    if (!scan->exists) {
        ic_report_finish(report);
        *ret_report = g_steal_pointer(&report);
        return TRUE;
    }
    g_ptr_array_unref(report->skipped);
    report->skipped = g_ptr_array_ref(scan->skipped);

    g_autoptr(GPtrArray) skip_dirs = non_instance_dirs(config);
    if (!ic_usage_add_instances_dir(usage, config->instances_path, base_dir,
                                    (const char *const *)skip_dirs->pdata, config->host, error))
        return FALSE;
    for (guint i = 0; i < usage->notes->len; i++)
        g_ptr_array_add(report->notes, g_strdup(g_ptr_array_index(usage->notes, i)));

    int dirfd = -1;
    if (!ic_remove_open_base_dir(base_dir, &dirfd, error))
        return FALSE;
    gboolean ok = TRUE;
    for (guint i = 0; ok && i < scan->files->len; i++)
        ok = process_file(dirfd, g_ptr_array_index(scan->files, i), config, usage, options, now,
                          report, error);
    close(dirfd);
    if (!ok)
        return FALSE;

    add_absent_rows(report, scan, config, usage, now);
    ic_report_finish(report);
    report->duration_seconds = (double)(g_get_monotonic_time() - started) / G_USEC_PER_SEC;
    *ret_report = g_steal_pointer(&report);
    return TRUE;
}
