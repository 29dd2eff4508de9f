#include "pass.h"

#include <unistd.h>

#include "checksum.h"
#include "error.h"
#include "fileutil.h"
#include "ledger.h"
#include "openfiles.h"
#include "policy.h"
#include "remove.h"
#include "scan.h"

/* What one pass works with; lives for the duration of ic_pass_run. */
typedef struct {
    const IcConfig *config;
    const IcUsage *given_usage;
    const IcPassOptions *options;
    gint64 now;
    char *base_dir;
    IcScan *scan;
    IcReport *report;
    int dirfd;
} Pass;

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

/* Asks every witness afresh: the caller's usage, its witness function, the
 * instances dir. */
static gboolean gather_usage(Pass *pass, IcUsage **ret_usage, GError **error)
{
    const IcConfig *config = pass->config;
    g_autoptr(IcUsage) usage = ic_usage_new();
    ic_usage_merge(usage, pass->given_usage);
    if (pass->options->witnesses != NULL)
        pass->options->witnesses(usage, pass->now, pass->options->witnesses_data);
    g_autoptr(GPtrArray) skip_dirs = non_instance_dirs(config);
    if (!ic_usage_add_instances_dir(usage, config->instances_path, pass->base_dir,
                                    (const char *const *)skip_dirs->pdata, config->host, error))
        return FALSE;
    *ret_usage = g_steal_pointer(&usage);
    return TRUE;
}

static void set_users(IcImageRow *row, const IcUsers *users)
{
    row->local_users = users->local;
    row->remote_users = users->remote;
    row->witnesses = users->witnesses;
    g_ptr_array_set_size(row->users, 0);
    for (guint i = 0; i < users->users->len; i++)
        g_ptr_array_add(row->users, g_strdup(g_ptr_array_index(users->users, i)));
}

/* Decides @row from what @usage says now; the single place facts are assembled. */
static void decide(Pass *pass, IcImageRow *row, const IcUsage *usage)
{
    g_autoptr(IcUsers) users =
        ic_usage_users_of(usage, pass->base_dir, row->name, row->fingerprint);
    set_users(row, users);
    IcPolicyFacts facts = {
        .kind = row->kind,
        .present = row->present,
        .mtime = row->mtime,
        .local_users = users->local,
        .remote_users = users->remote,
        .usage_incomplete = usage->incomplete,
        .checksum = row->checksum.state,
    };
    IcPolicyConfig policy = policy_config_from(pass->config);
    row->decision = ic_policy_decide(&facts, &policy, pass->now);
}

static gboolean verify_checksum(Pass *pass, const IcBaseFile *file, IcImageRow *row, GError **error)
{
    if (!pass->config->checksum_base_images)
        return TRUE;
    IcChecksumOptions checksum_options = {
        .rate_limit_bytes_per_sec = pass->options->checksum_rate_limit,
        .interval_seconds = pass->config->checksum_interval_seconds,
        .write_missing = pass->options->mode == IC_PASS_RUN,
        .cancellable = pass->options->cancellable,
    };
    if (!ic_checksum_verify(pass->dirfd, file->name, &checksum_options, pass->now, &row->checksum,
                            error))
        return FALSE;
    if (row->checksum.state == IC_CHECKSUM_MISMATCH)
        ic_report_add_event(pass->report, IC_EVENT_WARNING, file->name,
                            "%s: image verification failed: expected sha1 %s, got %s, keeping "
                            "the file",
                            file->name, row->checksum.expected, row->checksum.actual);
    else if (row->checksum.state == IC_CHECKSUM_ERROR)
        ic_report_add_event(pass->report, IC_EVENT_WARNING, file->name,
                            "%s: checksum not verified: %s", file->name, row->checksum.error);
    return TRUE;
}

/* Refreshing the mtime of a file in use makes age mean "unused for". */
static void touch_if_in_use(Pass *pass, IcImageRow *row)
{
    g_autoptr(GError) error = NULL;
    if (row->local_users + row->remote_users == 0)
        return;
    if (pass->options->mode != IC_PASS_RUN)
        return;
    if (ic_remove_touch(pass->dirfd, row->name, pass->now, &error))
        row->action = IC_ACTION_TOUCHED;
    else
        ic_report_add_event(pass->report, IC_EVENT_WARNING, row->name,
                            "%s: could not refresh mtime of a file in use: %s", row->name,
                            error->message);
}

static gboolean process_file(Pass *pass, const IcBaseFile *file, const IcUsage *usage,
                             GError **error)
{
    IcImageRow *row = ic_report_add_row(pass->report, file->name);
    row->kind = file->kind;
    row->fingerprint = g_strdup(file->fingerprint);
    row->image_id = g_strdup(g_hash_table_lookup(usage->image_ids, file->fingerprint));
    row->present = TRUE;
    row->size = file->size;
    row->mtime = file->mtime;

    if (!verify_checksum(pass, file, row, error))
        return FALSE;
    decide(pass, row, usage);
    touch_if_in_use(pass, row);
    if (row->decision.verdict == IC_VERDICT_REMOVABLE)
        row->action = IC_ACTION_WOULD_REMOVE;
    return TRUE;
}

static IcImageRow *add_absent_row(Pass *pass, const char *name, IcImageKind kind,
                                  const char *fingerprint, const IcUsage *usage)
{
    IcImageRow *row = ic_report_add_row(pass->report, name);
    row->kind = kind;
    row->fingerprint = g_strdup(fingerprint);
    row->image_id = g_strdup(g_hash_table_lookup(usage->image_ids, fingerprint));
    row->present = FALSE;
    decide(pass, row, usage);
    g_autofree char *names = ic_image_row_users_text(row);
    ic_report_add_event(pass->report, IC_EVENT_WARNING, name,
                        "%s: warning -- an absent base file is in use! users: %s", name, names);
    return row;
}

/* Files that witnesses name but the scan did not find. A fingerprint used only
 * on other hosts is no concern of this base dir (the reference suite's rule);
 * a path in this base dir is, whoever uses it. */
static void add_absent_rows(Pass *pass, const IcUsage *usage)
{
    GHashTableIter iter;
    gpointer key, value;

    g_hash_table_iter_init(&iter, usage->by_path);
    while (g_hash_table_iter_next(&iter, &key, &value)) {
        g_autofree char *dir = g_path_get_dirname(key);
        g_autofree char *name = g_path_get_basename(key);
        g_autofree char *fingerprint = NULL;
        if (!g_str_equal(dir, pass->base_dir))
            continue;
        IcImageKind kind = ic_scan_classify_name(name, &fingerprint);
        if (kind == IC_KIND_IGNORED || ic_scan_lookup(pass->scan, name) != NULL)
            continue;
        add_absent_row(pass, name, kind, fingerprint, usage);
    }

    g_hash_table_iter_init(&iter, usage->by_fingerprint);
    while (g_hash_table_iter_next(&iter, &key, &value)) {
        const IcUsers *users = value;
        if (users->local == 0 || ic_scan_find_variants(pass->scan, key) != NULL)
            continue;
        if (ic_report_lookup(pass->report, key) != NULL)
            continue; /* already reported through its path */
        add_absent_row(pass, key, IC_KIND_ORIGINAL, key, usage);
    }
}

/* Removes one row's file; the usage lock is held and @usage was read under it. */
static void remove_row(Pass *pass, IcImageRow *row, const IcUsage *usage,
                       const IcOpenFiles *open_files)
{
    g_autoptr(GError) error = NULL;
    const IcBaseFile *file = ic_scan_lookup(pass->scan, row->name);

    decide(pass, row, usage);
    if (row->decision.verdict != IC_VERDICT_REMOVABLE) {
        row->action = IC_ACTION_NONE;
        ic_report_add_event(pass->report, IC_EVENT_INFO, row->name,
                            "%s: no longer removable when re-checked (%s), keeping it", row->name,
                            row->decision.reason);
        touch_if_in_use(pass, row);
        return;
    }
    pid_t holder = ic_open_files_holder(open_files, file->dev, file->ino);
    if (holder != 0) {
        row->decision.verdict = IC_VERDICT_KEPT;
        row->decision.reason = "held_open";
        row->action = IC_ACTION_NONE;
        ic_report_add_event(pass->report, IC_EVENT_WARNING, row->name,
                            "%s: unused by every witness but held open by process %d, keeping it",
                            row->name, (int)holder);
        return;
    }
    if (pass->options->test_race_window_us > 0)
        g_usleep(pass->options->test_race_window_us);

    IcRemoveExpect expect = {
        .dev = file->dev, .ino = file->ino, .min_age = row->decision.threshold};
    if (ic_remove_base_file(pass->dirfd, row->name, &expect, pass->now, &error)) {
        row->action = IC_ACTION_REMOVED;
        ic_report_add_event(pass->report, IC_EVENT_INFO, row->name, "%s: removed (%s)", row->name,
                            row->decision.reason);
        return;
    }
    row->action = IC_ACTION_REMOVE_FAILED;
    row->error = g_strdup(error->message);
    ic_report_add_event(pass->report, IC_EVENT_WARNING, row->name, "Failed to remove %s: %s",
                        row->name, error->message);
}

/* Keeps every planned removal, saying why. */
static void cancel_removals(Pass *pass, GPtrArray *rows, const char *why)
{
    for (guint i = 0; i < rows->len; i++) {
        IcImageRow *row = g_ptr_array_index(rows, i);
        row->action = IC_ACTION_NONE;
        row->decision.verdict = IC_VERDICT_KEPT;
        row->decision.reason = "usage_unknown";
    }
    ic_report_add_event(pass->report, IC_EVENT_WARNING, NULL, "nothing removed: %s", why);
}

/* The removal protocol: under the exclusive usage lock (which the hook holds
 * shared while it records a starting domain) read every witness again, then
 * re-decide, check for open handles and unlink. A start that races this either
 * recorded its use before we took the lock, or runs after and finds the file gone. */
static gboolean remove_phase(Pass *pass, GError **error)
{
    g_autoptr(GPtrArray) rows = g_ptr_array_new();
    for (guint i = 0; i < pass->report->rows->len; i++) {
        IcImageRow *row = g_ptr_array_index(pass->report->rows, i);
        if (row->action == IC_ACTION_WOULD_REMOVE)
            g_ptr_array_add(rows, row);
    }
    if (rows->len == 0 || pass->options->mode != IC_PASS_RUN)
        return TRUE;

    g_autoptr(GError) local_error = NULL;
    ic_autofd lock_fd = -1;
    if (!pass->options->test_skip_usage_lock &&
        !ic_ledger_lock_usage(pass->config->ledger_dir, TRUE, &lock_fd, &local_error)) {
        g_autofree char *why =
            g_strdup_printf("could not take the usage lock: %s", local_error->message);
        cancel_removals(pass, rows, why);
        return TRUE;
    }

    g_autoptr(IcUsage) usage = NULL;
    if (!gather_usage(pass, &usage, error))
        return FALSE;
    g_autoptr(IcOpenFiles) open_files = NULL;
    const char *proc_root = pass->options->proc_root ? pass->options->proc_root : "/proc";
    if (!ic_open_files_scan(proc_root, &open_files, &local_error)) {
        g_autofree char *why =
            g_strdup_printf("cannot tell which files are held open: %s", local_error->message);
        cancel_removals(pass, rows, why);
        return TRUE;
    }
    for (guint i = 0; i < rows->len; i++)
        remove_row(pass, g_ptr_array_index(rows, i), usage, open_files);
    return TRUE;
}

static gboolean pass_body(Pass *pass, GError **error)
{
    g_autoptr(IcUsage) usage = NULL;

    if (!gather_usage(pass, &usage, error))
        return FALSE;
    for (guint i = 0; i < usage->notes->len; i++)
        g_ptr_array_add(pass->report->notes, g_strdup(g_ptr_array_index(usage->notes, i)));
    if (!ic_remove_open_base_dir(pass->base_dir, &pass->dirfd, error))
        return FALSE;
    for (guint i = 0; i < pass->scan->files->len; i++) {
        if (!process_file(pass, g_ptr_array_index(pass->scan->files, i), usage, error))
            return FALSE;
    }
    add_absent_rows(pass, usage);
    return remove_phase(pass, error);
}

gboolean ic_pass_run(const IcConfig *config, const IcUsage *usage, const IcPassOptions *options,
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
    if (scan->exists) {
        g_ptr_array_unref(report->skipped);
        report->skipped = g_ptr_array_ref(scan->skipped);
        Pass pass = {
            .config = config,
            .given_usage = usage,
            .options = options,
            .now = now,
            .base_dir = base_dir,
            .scan = scan,
            .report = report,
            .dirfd = -1,
        };
        gboolean ok = pass_body(&pass, error);
        if (pass.dirfd >= 0)
            close(pass.dirfd);
        if (!ok)
            return FALSE;
    }
    ic_report_finish(report);
    report->duration_seconds = (double)(g_get_monotonic_time() - started) / G_USEC_PER_SEC;
    *ret_report = g_steal_pointer(&report);
    return TRUE;
}
