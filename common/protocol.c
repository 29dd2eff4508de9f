/* protocol.c — the removal side of the removal protocol (protocol.h): the exclusive lock,
 * the re-read of the filesystem witnesses, re-decide, held-open check, unlink. */
#include "protocol.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "error.h"
#include "fileutil.h"
#include "ledger-store.h"
#include "openfiles.h"
#include "remove.h"

gboolean ic_protocol_lock_for_removal(const char *ledger_dir, gint64 timeout_ms, IcCancel *cancel,
                                      int *ret_fd, GError **error)
{
    return ic_protocol_lock_exclusive(
        ledger_dir, timeout_ms, cancel != NULL ? ic_cancel_stop_func : NULL, cancel, ret_fd, error);
}

/* ---- the filesystem witnesses ---- */

/* One host of the ledger at a time into the usage (ic_ledger_read_each). */
typedef struct {
    const IcConfig *config;
    const char *base_dir;
    gint64 now;
    IcUsage *usage;
    IcLedgerCounts *counts;
} LedgerReading;

static void add_ledger_host(IcLedgerHost *host, gpointer data)
{
    LedgerReading *reading = data;
    ic_ledger_host_add_usage(host, reading->config->host, reading->base_dir, reading->now,
                             reading->usage);
    reading->counts->hosts++;
    reading->counts->stale_hosts += host->stale;
    ic_ledger_host_free(host);
}

static void add_ledger(const IcConfig *config, IcLedgerCache *cache, IcUsage *usage, gint64 now,
                       IcLedgerCounts *counts)
{
    g_autoptr(GError) error = NULL;

    /* A ledger dir that may be an unmounted share says nothing about other
     * hosts (ic_protocol_ledger_dir_check): their users are unknown. */
    if (!ic_protocol_ledger_dir_check(config, FALSE, NULL, &error)) {
        g_autofree char *note = g_strdup_printf("%s, so nothing is removed", error->message);
        ic_usage_add_note(usage, IC_NOTE_LEDGER_DIR_MISSING, note);
        return;
    }
    g_autofree char *base_dir = ic_config_base_dir(config);
    LedgerReading reading = {config, base_dir, now, usage, counts};
    guint first_note = usage->notes->len;
    g_autoptr(GPtrArray) errors = NULL;
    if (!ic_ledger_read_each(cache, config->ledger_dir, now, config->ledger_stale_seconds,
                             add_ledger_host, &reading, &errors, &error)) {
        g_autofree char *note =
            g_strdup_printf("usage ledger '%s' could not be read (%s): nothing is removed",
                            config->ledger_dir, error->message);
        ic_usage_add_note(usage, IC_NOTE_LEDGER_UNREADABLE, note);
        return;
    }
    /* Damaged files first, before what the hosts that could be read said. */
    for (guint i = 0; i < errors->len; i++)
        ic_usage_insert_note(usage, first_note + i, IC_NOTE_LEDGER_DAMAGED,
                             g_ptr_array_index(errors, i));
    counts->known = errors->len == 0;
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

struct _IcProtocolReading {
    const IcConfig *config;
    IcUsage *usage; /* @given and the ledger */
    IcLedgerCounts counts;
};

IcProtocolReading *ic_protocol_reading_start(const IcConfig *config, IcLedgerCache *ledger_cache,
                                             const IcUsage *given, gint64 now)
{
    IcProtocolReading *reading = g_new0(IcProtocolReading, 1);
    reading->config = config;
    reading->usage = ic_usage_new();
    reading->counts = (IcLedgerCounts){.known = FALSE};
    ic_usage_merge(reading->usage, given);
    add_ledger(config, ledger_cache, reading->usage, now, &reading->counts);
    return reading;
}

void ic_protocol_reading_free(IcProtocolReading *reading)
{
    if (reading == NULL)
        return;
    ic_usage_free(reading->usage);
    g_free(reading);
}

gboolean ic_protocol_reading_finish(IcProtocolReading *reading, const IcScan *known,
                                    const IcUsage *asked, guint walk_threads, IcUsage **ret_usage,
                                    IcLedgerCounts *ret_counts, GError **error)
{
    const IcConfig *config = reading->config;
    IcLedgerCounts counts = reading->counts;
    g_autoptr(IcUsage) usage = g_steal_pointer(&reading->usage);
    ic_protocol_reading_free(reading);
    ic_usage_merge(usage, asked);
    g_autofree char *base_dir = ic_config_base_dir(config);
    g_autoptr(GPtrArray) skip_dirs = non_instance_dirs(config);
    if (!ic_usage_add_instances_dir(usage, config->instances_path, base_dir, known,
                                    (const char *const *)skip_dirs->pdata, config->host,
                                    walk_threads, error))
        return FALSE;
    ic_usage_index_identities(usage, known);
    if (ret_counts != NULL)
        *ret_counts = counts;
    *ret_usage = g_steal_pointer(&usage);
    return TRUE;
}

gboolean ic_protocol_read_witnesses(const IcConfig *config, IcLedgerCache *ledger_cache,
                                    const IcScan *known, const IcUsage *given, const IcUsage *asked,
                                    guint walk_threads, gint64 now, IcUsage **ret_usage,
                                    IcLedgerCounts *ret_counts, GError **error)
{
    IcProtocolReading *reading = ic_protocol_reading_start(config, ledger_cache, given, now);
    return ic_protocol_reading_finish(reading, known, asked, walk_threads, ret_usage, ret_counts,
                                      error);
}

/* ---- the removal ---- */

static void seam(const IcProtocolRemoval *removal, IcProtocolStage stage, const char *name)
{
    if (removal->seam != NULL)
        removal->seam(stage, name, removal->seam_data);
}

/* Keeps the plans from @from on, saying why, in an event and in the report. */
static void defer_plans(GPtrArray *plans, guint from, IcReport *report, IcReason reason,
                        const char *why)
{
    guint kept = 0;
    for (guint i = from; i < plans->len; i++) {
        IcImageRow *row = ((IcProtocolPlan *)g_ptr_array_index(plans, i))->row;
        row->action = IC_ACTION_NONE;
        if (row->decision.verdict == IC_VERDICT_REMOVABLE) {
            row->decision.verdict = IC_VERDICT_KEPT;
            row->decision.reason = reason;
        }
        kept++;
    }
    if (kept == 0)
        return;
    g_autofree char *text = g_strdup_printf("%u planned removal%s kept until the next pass: %s",
                                            kept, kept == 1 ? "" : "s", why);
    ic_report_add_event(report, IC_EVENT_WARNING, NULL, "%s", text);
    if (report->removal_deferred == NULL)
        report->removal_deferred = g_strdup(text);
    ic_report_add_note(report, IC_NOTE_REMOVAL_DEFERRED, text);
}

typedef struct {
    const IcProtocolRemoval *removal;
    IcReport *report;
    const IcUsage *usage;
    const IcOpenFiles *open_files;
    int quarantine_fd; /* -1: no usable quarantine dir */
} Locked;

static void report_kept(Locked *locked, IcImageRow *row, pid_t holder)
{
    if (holder != 0)
        ic_report_add_event(locked->report, IC_EVENT_WARNING, row->name,
                            "%s: unused by every witness but held open by process %d, "
                            "keeping it",
                            row->name, (int)holder);
    else
        ic_report_add_event(locked->report, IC_EVENT_INFO, row->name,
                            "%s: no longer to be moved when re-checked (%s), keeping it", row->name,
                            ic_reason_to_string(row->decision.reason));
}

static gboolean unlink_planned(Locked *locked, const IcProtocolPlan *plan, IcAction planned,
                               const char *name, GError **error)
{
    const IcImageRow *row = plan->row;
    IcRemoveExpect expect = {.dev = plan->dev, .ino = plan->ino};
    if (planned == IC_ACTION_WOULD_QUARANTINE)
        return ic_remove_quarantine(locked->removal->dirfd, name, &expect, error);
    int dirfd = row->in_quarantine ? locked->quarantine_fd : locked->removal->dirfd;
    if (dirfd < 0) {
        g_set_error(error, IC_ERROR, IC_ERROR_UNSAFE, "'%s' is not a directory, keeping '%s'",
                    IC_QUARANTINE_DIR, name);
        return FALSE;
    }
    /* Quarantine age counts from the move; the mtime re-check is for base files. */
    expect.min_age = row->in_quarantine ? 0 : row->decision.threshold;
    return ic_remove_base_file(dirfd, name, &expect, locked->removal->now, error);
}

/* One planned removal or quarantine, under the lock, with the re-read usage. */
static void act_on_plan(Locked *locked, IcProtocolPlan *plan)
{
    const IcProtocolRemoval *removal = locked->removal;
    IcImageRow *row = plan->row;
    IcAction planned = row->action;
    g_autofree char *name = g_path_get_basename(row->name);
    pid_t holder =
        plan->scanned ? ic_open_files_holder(locked->open_files, plan->dev, plan->ino) : 0;

    removal->decide(row, locked->usage, holder != 0, removal->decide_data);
    if (row->action != planned) {
        report_kept(locked, row, holder);
        if (row->action != IC_ACTION_TOUCHED)
            row->action = IC_ACTION_NONE;
        return;
    }
    if (!plan->scanned) {
        row->action = IC_ACTION_NONE;
        return;
    }

    seam(removal, IC_PROTOCOL_STAGE_BEFORE_UNLINK, row->name);
    g_autoptr(GError) error = NULL;
    if (unlink_planned(locked, plan, planned, name, &error)) {
        row->action =
            planned == IC_ACTION_WOULD_QUARANTINE ? IC_ACTION_QUARANTINED : IC_ACTION_REMOVED;
        ic_report_add_event(locked->report, IC_EVENT_INFO, row->name, "%s: %s (%s)", row->name,
                            row->action == IC_ACTION_QUARANTINED ? "quarantined" : "removed",
                            ic_reason_to_string(row->decision.reason));
        return;
    }
    row->action = IC_ACTION_NONE;
    if (g_error_matches(error, IC_ERROR, IC_ERROR_NOT_FOUND)) {
        /* Another pass (the CLI beside the plugin) got there first: not a failure. */
        row->decision.reason = IC_REASON_ALREADY_GONE;
        ic_report_add_event(locked->report, IC_EVENT_INFO, row->name,
                            "%s: already gone when it was to be removed (another pass?)",
                            row->name);
        return;
    }
    if (g_error_matches(error, IC_ERROR, IC_ERROR_CHANGED)) {
        ic_report_add_event(locked->report, IC_EVENT_INFO, row->name, "%s: %s", row->name,
                            error->message);
        return;
    }
    row->action = IC_ACTION_REMOVE_FAILED;
    row->error = g_strdup(error->message);
    ic_report_add_event(locked->report, IC_EVENT_WARNING, row->name, "Failed to %s %s: %s",
                        planned == IC_ACTION_WOULD_QUARANTINE ? "quarantine" : "remove", row->name,
                        error->message);
}

/* Why the lock cannot be had, in the words a run's deferral uses. */
static char *lock_failure(const GError *error)
{
    return g_error_matches(error, IC_ERROR, IC_ERROR_CANCELLED)
               ? g_strdup("the pass was cancelled while it waited for the usage lock")
               : g_strdup_printf("could not take the usage lock: %s", error->message);
}

void ic_protocol_preview(const IcConfig *config, GPtrArray *plans, IcReport *report)
{
    g_autoptr(GError) error = NULL;
    if (plans->len == 0 || ic_protocol_lock_probe(config, &error))
        return;
    g_autofree char *why = lock_failure(error);
    defer_plans(plans, 0, report, IC_REASON_REMOVAL_DEFERRED, why);
}

/* The notes of the re-read under the lock that block removal and that the
 * report does not hold yet: they are why its plans are kept (a ledger damaged
 * since the first read), and an operator who sees "usage_unknown" must be told
 * which witness failed, not only on the next pass. */
static void add_reread_notes(IcReport *report, const IcUsage *usage)
{
    for (guint i = 0; i < usage->notes->len; i++) {
        IcNoteCode code = g_array_index(usage->note_codes, IcNoteCode, i);
        const char *text = g_ptr_array_index(usage->notes, i);
        if (!ic_note_code_blocks_removal(code))
            continue;
        gboolean known = FALSE;
        for (guint k = 0; k < report->notes->len && !known; k++)
            known = g_str_equal(g_ptr_array_index(report->notes, k), text);
        if (!known)
            ic_report_add_note(report, code, text);
    }
}

void ic_protocol_remove(const IcProtocolRemoval *removal, GPtrArray *plans, IcReport *report)
{
    if (plans->len == 0)
        return;
    seam(removal, IC_PROTOCOL_STAGE_BEFORE_LOCK, NULL);

    g_autoptr(GError) local_error = NULL;
    gint64 wait_ms =
        removal->lock_timeout_ms > 0 ? removal->lock_timeout_ms : IC_PROTOCOL_REMOVAL_WAIT_MS;
    ic_autofd lock_fd = -1;
    if (!ic_protocol_ledger_dir_check(removal->config, TRUE, NULL, &local_error) ||
        !ic_protocol_lock_for_removal(removal->config->ledger_dir, wait_ms, removal->cancel,
                                      &lock_fd, &local_error)) {
        g_autofree char *why = lock_failure(local_error);
        defer_plans(plans, 0, report, IC_REASON_REMOVAL_DEFERRED, why);
        return;
    }
    gint64 hold_ms =
        removal->hold_limit_ms > 0 ? removal->hold_limit_ms : IC_PROTOCOL_HOLD_LIMIT_MS;
    gint64 deadline = g_get_monotonic_time() + hold_ms * 1000;
    seam(removal, IC_PROTOCOL_STAGE_LOCKED, NULL);

    /* Only the filesystem witnesses: libvirt is never asked under this lock
     * (libvirtd runs the prepare hook holding the domain's lock); a domain that
     * started after its answer is in the ledger by its own prepare record.
     * Every host file is read again, never through a change cache: a cache
     * knows a file by its inode, size and times, and on a filesystem with
     * one-second times a host's file rewritten in place within the second
     * would look unchanged, and its new domain would be missed here. */
    g_autoptr(IcUsage) usage = NULL;
    if (!ic_protocol_read_witnesses(removal->config, NULL, removal->known, removal->given,
                                    removal->asked, removal->walk_threads, removal->now, &usage,
                                    NULL, &local_error)) {
        g_autofree char *why =
            g_strdup_printf("the witnesses could not be read again: %s", local_error->message);
        defer_plans(plans, 0, report, IC_REASON_USAGE_UNKNOWN, why);
        return;
    }
    add_reread_notes(report, usage);
    g_autoptr(IcOpenFiles) open_files = NULL;
    const char *proc_root = removal->proc_root ? removal->proc_root : "/proc";
    if (!ic_open_files_scan(proc_root, &open_files, &local_error)) {
        g_autofree char *why =
            g_strdup_printf("cannot tell which files are held open: %s", local_error->message);
        defer_plans(plans, 0, report, IC_REASON_USAGE_UNKNOWN, why);
        return;
    }
    ic_autofd quarantine_fd =
        openat(removal->dirfd, IC_QUARANTINE_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    Locked locked = {
        .removal = removal,
        .report = report,
        .usage = usage,
        .open_files = open_files,
        .quarantine_fd = quarantine_fd,
    };
    for (guint i = 0; i < plans->len; i++) {
        /* Nothing is removed once shutdown has begun. */
        if (ic_cancel_is_cancelled(removal->cancel)) {
            defer_plans(plans, i, report, IC_REASON_REMOVAL_DEFERRED, "the pass was cancelled");
            break;
        }
        if (g_get_monotonic_time() >= deadline) {
            g_autofree char *why = g_strdup_printf(
                "the pass held the usage lock for its limit (%" G_GINT64_FORMAT " ms)", hold_ms);
            defer_plans(plans, i, report, IC_REASON_REMOVAL_DEFERRED, why);
            break;
        }
        act_on_plan(&locked, g_ptr_array_index(plans, i));
    }
}
