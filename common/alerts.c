#include "alerts.h"

#include <string.h>

const char *ic_notify_severity_to_string(IcNotifySeverity severity)
{
    switch (severity) {
    case IC_NOTIFY_FAILURE:
        return "FAILURE";
    case IC_NOTIFY_WARNING:
        return "WARNING";
    case IC_NOTIFY_OKAY:
        return "OKAY";
    }
    return "?";
}

void ic_notification_free(IcNotification *notification)
{
    if (notification == NULL)
        return;
    g_free(notification->file);
    g_free(notification->message);
    g_free(notification);
}

typedef enum {
    CONDITION_CORRUPT = 1 << 0,
    CONDITION_ABSENT = 1 << 1,
    CONDITION_REMOVE_FAILED = 1 << 2,
} Condition;

struct _IcAlertState {
    GHashTable *conditions; /* base file name -> GUINT_TO_POINTER(Condition bits), never 0 */
};

IcAlertState *ic_alert_state_new(void)
{
    IcAlertState *state = g_new0(IcAlertState, 1);
    state->conditions = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    return state;
}

void ic_alert_state_free(IcAlertState *state)
{
    if (state == NULL)
        return;
    g_hash_table_unref(state->conditions);
    g_free(state);
}

/* The conditions of @row now; @previous decides what an unverified file keeps. */
static guint row_conditions(const IcImageRow *row, guint previous)
{
    guint now = 0;
    if (row->present) {
        switch (row->checksum.state) {
        case IC_CHECKSUM_MISMATCH:
            now |= CONDITION_CORRUPT;
            break;
        case IC_CHECKSUM_ERROR:
        case IC_CHECKSUM_NOT_CHECKED:
            now |= previous & CONDITION_CORRUPT; /* not verified: nothing learnt */
            break;
        case IC_CHECKSUM_OK:
        case IC_CHECKSUM_RECENT:
        case IC_CHECKSUM_NO_SIDECAR:
            break;
        }
    }
    if (row->decision.verdict == IC_VERDICT_ABSENT)
        now |= CONDITION_ABSENT;
    if (row->action == IC_ACTION_REMOVE_FAILED)
        now |= CONDITION_REMOVE_FAILED;
    return now;
}

static void notify(GPtrArray *out, IcNotifySeverity severity, const char *file,
                   const char *condition, char *message)
{
    IcNotification *notification = g_new0(IcNotification, 1);
    notification->severity = severity;
    notification->file = g_strdup(file);
    notification->condition = condition;
    notification->message = message;
    g_ptr_array_add(out, notification);
}

static void notify_raised(GPtrArray *out, const char *name, const IcImageRow *row, guint raised)
{
    if (raised & CONDITION_CORRUPT)
        notify(out, IC_NOTIFY_FAILURE, name, "corrupt",
               g_strdup_printf("base file '%s' is corrupt: expected sha1 %s, actual %s; keeping "
                               "the file",
                               name, row->checksum.expected, row->checksum.actual));
    if (raised & CONDITION_ABSENT) {
        g_autofree char *users = ic_image_row_users_text(row);
        notify(out, IC_NOTIFY_WARNING, name, "absent",
               g_strdup_printf("base file '%s' is in use but absent; users: %s", name, users));
    }
    if (raised & CONDITION_REMOVE_FAILED)
        notify(out, IC_NOTIFY_WARNING, name, "remove_failed",
               g_strdup_printf("could not remove unused base file '%s': %s; trying again next "
                               "pass",
                               name, row->error ? row->error : "unknown error"));
}

/* @row is NULL when the file is no longer in the report at all. */
static void notify_cleared(GPtrArray *out, const char *name, const IcImageRow *row, guint cleared)
{
    gboolean gone = row == NULL || !row->present || row->action == IC_ACTION_REMOVED;
    if (cleared & CONDITION_CORRUPT)
        notify(
            out, IC_NOTIFY_OKAY, name, "corrupt",
            gone ? g_strdup_printf("base file '%s' is gone; it was corrupt", name)
                 : g_strdup_printf("base file '%s' is no longer corrupt: its sha1 matches", name));
    if (cleared & CONDITION_ABSENT)
        notify(out, IC_NOTIFY_OKAY, name, "absent",
               gone ? g_strdup_printf("base file '%s' is absent but no longer in use", name)
                    : g_strdup_printf("base file '%s' is present again", name));
    if (cleared & CONDITION_REMOVE_FAILED)
        notify(out, IC_NOTIFY_OKAY, name, "remove_failed",
               gone ? g_strdup_printf("base file '%s' is removed now", name)
                    : g_strdup_printf("base file '%s' is no longer due for removal", name));
}

static gint compare_names(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

GPtrArray *ic_alert_state_update(IcAlertState *state, const IcReport *report)
{
    GPtrArray *out = g_ptr_array_new_with_free_func((GDestroyNotify)ic_notification_free);
    g_autoptr(GHashTable) next = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    /* The rows that had a condition (names borrowed from the report): what is
     * left of state->conditions then is gone, found without a search of every
     * row for each condition (a base dir emptied: 100,000 absent files). */
    g_autoptr(GHashTable) mentioned = g_hash_table_new(g_str_hash, g_str_equal);

    /* Rows are sorted by name, so notifications come in file order. */
    for (guint i = 0; i < report->rows->len; i++) {
        const IcImageRow *row = g_ptr_array_index(report->rows, i);
        guint before = GPOINTER_TO_UINT(g_hash_table_lookup(state->conditions, row->name));
        if (before != 0)
            g_hash_table_add(mentioned, row->name);
        guint after = row_conditions(row, before);
        notify_raised(out, row->name, row, after & ~before);
        notify_cleared(out, row->name, row, before & ~after);
        if (after != 0)
            g_hash_table_insert(next, g_strdup(row->name), GUINT_TO_POINTER(after));
    }

    /* Files with a condition that the report no longer mentions are gone; told
     * in file order too. */
    g_autoptr(GPtrArray) vanished = g_ptr_array_new();
    GHashTableIter iter;
    gpointer key, value;
    g_hash_table_iter_init(&iter, state->conditions);
    while (g_hash_table_iter_next(&iter, &key, &value))
        if (!g_hash_table_contains(mentioned, key))
            g_ptr_array_add(vanished, key);
    g_ptr_array_sort(vanished, compare_names);
    for (guint i = 0; i < vanished->len; i++) {
        const char *name = g_ptr_array_index(vanished, i);
        notify_cleared(out, name, NULL,
                       GPOINTER_TO_UINT(g_hash_table_lookup(state->conditions, name)));
    }

    g_hash_table_unref(state->conditions);
    state->conditions = g_steal_pointer(&next);
    return out;
}

IcNotification *ic_notification_pass_failed(guint failed_passes, const char *message)
{
    if (failed_passes != 1)
        return NULL;
    IcNotification *notification = g_new0(IcNotification, 1);
    notification->severity = IC_NOTIFY_FAILURE;
    notification->file = g_strdup("");
    notification->condition = "pass_failed";
    notification->message = g_strdup_printf("the imagecache pass failed: %s", message);
    return notification;
}

IcNotification *ic_notification_liveness(gboolean *overdue, const IcPassStatus *status,
                                         gint64 started, gint64 now, gint64 pass_interval)
{
    gint64 since = status->last_pass != 0 ? status->finished : started;
    gboolean late = now - since > 2 * pass_interval;
    if (late == *overdue)
        return NULL;
    *overdue = late;
    IcNotification *notification = g_new0(IcNotification, 1);
    notification->file = g_strdup("");
    notification->condition = "pass_overdue";
    if (late) {
        notification->severity = IC_NOTIFY_FAILURE;
        notification->message =
            g_strdup_printf("no imagecache pass has finished for %" G_GINT64_FORMAT
                            " s (PassInterval %" G_GINT64_FORMAT " s): the pass hangs or crawls",
                            now - since, pass_interval);
    } else {
        notification->severity = IC_NOTIFY_OKAY;
        notification->message = g_strdup("an imagecache pass finished again");
    }
    return notification;
}

IcNotification *ic_notification_pass_recovered(guint failed_passes)
{
    if (failed_passes == 0)
        return NULL;
    IcNotification *notification = g_new0(IcNotification, 1);
    notification->severity = IC_NOTIFY_OKAY;
    notification->file = g_strdup("");
    notification->condition = "pass_failed";
    notification->message =
        g_strdup_printf("the imagecache pass succeeded again after %u failed pass%s", failed_passes,
                        failed_passes == 1 ? "" : "es");
    return notification;
}
