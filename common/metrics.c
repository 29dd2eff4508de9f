#include "metrics.h"

#include <strings.h>

#include "error.h"

/* ---- values ---- */

static void add_metric(IcMetricSet *set, const char *plugin_instance, const char *type,
                       const char *type_instance, double value)
{
    IcMetric metric = {
        .plugin_instance = g_strdup(plugin_instance),
        .type = type,
        .type_instance = type_instance,
        .value = value,
    };
    g_array_append_val(set->metrics, metric);
}

static void clear_metric(gpointer data)
{
    IcMetric *metric = data;
    g_free(metric->plugin_instance);
}

static void add_row_metrics(IcMetricSet *set, const IcImageRow *row)
{
    const char *name = row->name;
    add_metric(set, name, "bytes", "", row->present ? (double)row->size : 0);
    add_metric(set, name, "duration", "age", (double)row->decision.age);
    add_metric(set, name, "count", "local_users", row->local_users);
    add_metric(set, name, "count", "remote_users", row->remote_users);
    add_metric(set, name, "gauge", "corrupt", row->checksum.state == IC_CHECKSUM_MISMATCH);
    add_metric(set, name, "gauge", "in_use", row->local_users + row->remote_users > 0);
}

static void add_removal_reasons(IcMetricSet *set, const IcReport *report)
{
    /* The reasons that carry collectd values (policy.c's table). */
    for (IcReason reason = 0; reason < _IC_REASON_MAX; reason++) {
        const IcReasonInfo *info = ic_reason_info(reason);
        if (info->removed_value == NULL)
            continue;
        guint count;
        guint64 bytes;
        ic_report_removed_by_reason(report, reason, &count, &bytes);
        add_metric(set, "", "count", info->removed_value, count);
        add_metric(set, "", "bytes", info->reclaimed_value, (double)bytes);
    }
}

static void add_totals(IcMetricSet *set, const IcReport *report, const IcLedgerCounts *ledger)
{
    gsize n;
    const IcTotalInfo *totals = ic_totals_info(&n);
    for (gsize i = 0; i < n; i++) {
        if (totals[i].metric != NULL)
            add_metric(set, "", totals[i].unit == IC_TOTAL_BYTES ? "bytes" : "count",
                       totals[i].metric, (double)ic_totals_value(&report->totals, &totals[i]));
    }
    add_removal_reasons(set, report);
    if (ledger != NULL && ledger->known) {
        add_metric(set, "", "count", "ledger_hosts", ledger->hosts);
        add_metric(set, "", "count", "ledger_stale_hosts", ledger->stale_hosts);
    }
    add_metric(set, "", "duration", "pass", report->duration_seconds);
}

static const char *const per_image_names[] = {
    [IC_PER_IMAGE_PROBLEMS] = "problems",
    [IC_PER_IMAGE_ALL] = "all",
    [IC_PER_IMAGE_NONE] = "none",
};
G_STATIC_ASSERT(G_N_ELEMENTS(per_image_names) == _IC_PER_IMAGE_MAX);

const char *ic_per_image_values_to_string(IcPerImageValues mode)
{
    return mode < _IC_PER_IMAGE_MAX ? per_image_names[mode] : "?";
}

gboolean ic_per_image_values_from_string(const char *text, IcPerImageValues *ret_mode)
{
    for (int i = 0; i < _IC_PER_IMAGE_MAX; i++)
        if (g_ascii_strcasecmp(text, per_image_names[i]) == 0) {
            *ret_mode = (IcPerImageValues)i;
            return TRUE;
        }
    return FALSE;
}

/* A file someone has to look at: the ones the default mode keeps sending. */
static gboolean row_is_problem(const IcImageRow *row)
{
    return row->checksum.state == IC_CHECKSUM_MISMATCH ||
           row->decision.verdict == IC_VERDICT_CORRUPT ||
           row->decision.verdict == IC_VERDICT_ABSENT ||
           row->decision.verdict == IC_VERDICT_QUARANTINED || row->in_quarantine ||
           row->action == IC_ACTION_QUARANTINED || row->decision.reason == IC_REASON_HELD_OPEN;
}

gboolean ic_metric_row_wanted(const IcImageRow *row, IcPerImageValues mode)
{
    /* A removed file's values stop, and age out in collectd. */
    if (row->action == IC_ACTION_REMOVED)
        return FALSE;
    switch (mode) {
    case IC_PER_IMAGE_ALL:
        return TRUE;
    case IC_PER_IMAGE_PROBLEMS:
        return row_is_problem(row);
    case IC_PER_IMAGE_NONE:
    case _IC_PER_IMAGE_MAX:
        break;
    }
    return FALSE;
}

static IcMetricSet *metric_set_new(gint64 pass_time, guint reserve)
{
    IcMetricSet *set = g_atomic_rc_box_new0(IcMetricSet);
    set->pass_time = pass_time;
    set->metrics = g_array_sized_new(FALSE, FALSE, sizeof(IcMetric), reserve);
    g_array_set_clear_func(set->metrics, clear_metric);
    return set;
}

IcMetricSet *ic_metric_set_new_from_report(const IcReport *report, const IcLedgerCounts *ledger,
                                           IcPerImageValues mode)
{
    IcMetricSet *set = metric_set_new(report->now, 32);
    for (guint i = 0; i < report->rows->len; i++) {
        const IcImageRow *row = g_ptr_array_index(report->rows, i);
        if (ic_metric_row_wanted(row, mode))
            add_row_metrics(set, row);
    }
    add_totals(set, report, ledger);
    return set;
}

IcMetricSet *ic_metric_set_new_status(const IcPassStatus *status, gint64 now, gint64 pass_interval)
{
    IcMetricSet *set = metric_set_new(status->last_pass, 2);
    add_metric(set, "", "count", "failed_passes", status->failed_passes);
    if (status->last_pass != 0 && now - status->finished <= 2 * pass_interval)
        add_metric(set, "", "timestamp", "last_pass", (double)status->last_pass);
    return set;
}

IcMetricSet *ic_metric_set_ref(IcMetricSet *set)
{
    return g_atomic_rc_box_acquire(set);
}

static void clear_set(gpointer data)
{
    IcMetricSet *set = data;
    g_array_unref(set->metrics);
}

void ic_metric_set_unref(IcMetricSet *set)
{
    if (set != NULL)
        g_atomic_rc_box_release_full(set, clear_set);
}

const IcMetric *ic_metric_set_lookup(const IcMetricSet *set, const char *plugin_instance,
                                     const char *type, const char *type_instance)
{
    for (guint i = 0; i < set->metrics->len; i++) {
        const IcMetric *metric = &g_array_index(set->metrics, IcMetric, i);
        if (g_str_equal(metric->plugin_instance, plugin_instance) &&
            g_str_equal(metric->type, type) && g_str_equal(metric->type_instance, type_instance))
            return metric;
    }
    return NULL;
}

/* ---- notifications ---- */

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

GPtrArray *ic_alert_state_update(IcAlertState *state, const IcReport *report)
{
    GPtrArray *out = g_ptr_array_new_with_free_func((GDestroyNotify)ic_notification_free);
    g_autoptr(GHashTable) next = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

    /* Rows are sorted by name, so notifications come in file order. */
    for (guint i = 0; i < report->rows->len; i++) {
        const IcImageRow *row = g_ptr_array_index(report->rows, i);
        guint before = GPOINTER_TO_UINT(g_hash_table_lookup(state->conditions, row->name));
        guint after = row_conditions(row, before);
        notify_raised(out, row->name, row, after & ~before);
        notify_cleared(out, row->name, row, before & ~after);
        if (after != 0)
            g_hash_table_insert(next, g_strdup(row->name), GUINT_TO_POINTER(after));
    }

    /* Files with a condition that the report no longer mentions are gone. */
    g_autoptr(GList) vanished = NULL;
    GHashTableIter iter;
    gpointer key, value;
    g_hash_table_iter_init(&iter, state->conditions);
    while (g_hash_table_iter_next(&iter, &key, &value))
        if (ic_report_lookup(report, key) == NULL)
            vanished = g_list_insert_sorted(vanished, key, (GCompareFunc)strcmp);
    for (GList *l = vanished; l != NULL; l = l->next)
        notify_cleared(out, l->data, NULL,
                       GPOINTER_TO_UINT(g_hash_table_lookup(state->conditions, l->data)));

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

/* ---- the <Plugin imagecache> options ---- */

/* The plugin's own options; the others override config keys (config.c's
 * table names each key's option). */
static const char *const plugin_options[] = {
    "Config",
    "PassInterval",
    "ChecksumRateLimit",
    "PerImageValues",
};

typedef struct {
    char *option; /* as the operator spelled it */
    const char *key;
    char *value;
} Override;

static void override_free(Override *override)
{
    g_free(override->option);
    g_free(override->value);
    g_free(override);
}

IcPluginOptions *ic_plugin_options_new(void)
{
    IcPluginOptions *options = g_new0(IcPluginOptions, 1);
    options->overrides = g_ptr_array_new_with_free_func((GDestroyNotify)override_free);
    options->pass_interval = IC_PLUGIN_DEFAULT_PASS_INTERVAL;
    options->checksum_rate_limit = IC_PLUGIN_DEFAULT_CHECKSUM_RATE_LIMIT;
    return options;
}

void ic_plugin_options_free(IcPluginOptions *options)
{
    if (options == NULL)
        return;
    g_free(options->config_path);
    g_ptr_array_unref(options->overrides);
    g_free(options);
}

/* The plugin's own spelling of option @name, or NULL. */
static const char *find_plugin_option(const char *name)
{
    for (guint i = 0; i < G_N_ELEMENTS(plugin_options); i++)
        if (g_ascii_strcasecmp(name, plugin_options[i]) == 0)
            return plugin_options[i];
    return NULL;
}

static char *known_options(void)
{
    g_auto(GStrv) overrides = ic_config_collectd_options();
    GString *text = g_string_new(NULL);
    for (guint i = 0; i < G_N_ELEMENTS(plugin_options); i++)
        g_string_append_printf(text, "%s, ", plugin_options[i]);
    for (guint i = 0; overrides[i] != NULL; i++)
        g_string_append_printf(text, "%s, ", overrides[i]);
    g_string_truncate(text, text->len - 2);
    return g_string_free(text, FALSE);
}

static gboolean parse_unsigned(const char *name, const char *value, guint64 min, guint64 max,
                               guint64 *ret, GError **error)
{
    if (g_ascii_string_to_unsigned(value, 10, min, max, ret, NULL))
        return TRUE;
    g_set_error(error, IC_ERROR, IC_ERROR_CONFIG,
                "collectd config: option '%s': '%s' is not a whole number from %" G_GUINT64_FORMAT
                " to %" G_GUINT64_FORMAT,
                name, value, min, max);
    return FALSE;
}

gboolean ic_plugin_options_set(IcPluginOptions *options, const char *name, const char *value,
                               GError **error)
{
    const char *key = ic_config_key_for_option(name);
    if (key != NULL) {
        Override *override = g_new0(Override, 1);
        override->option = g_strdup(name);
        override->key = key;
        override->value = g_strdup(value);
        g_ptr_array_add(options->overrides, override);
        return TRUE;
    }
    const char *option = find_plugin_option(name);
    if (option == NULL) {
        g_autofree char *known = known_options();
        g_set_error(error, IC_ERROR, IC_ERROR_CONFIG,
                    "collectd config: unknown option '%s' (known: %s)", name, known);
        return FALSE;
    }
    if (g_str_equal(option, "Config")) {
        if (!g_path_is_absolute(value)) {
            g_set_error(error, IC_ERROR, IC_ERROR_CONFIG,
                        "collectd config: option '%s': '%s' is not an absolute path", name, value);
            return FALSE;
        }
        g_free(options->config_path);
        options->config_path = g_strdup(value);
        return TRUE;
    }
    guint64 number;
    if (g_str_equal(option, "PassInterval")) {
        /* A bound, so pass_interval * G_USEC_PER_SEC cannot overflow. */
        if (!parse_unsigned(name, value, 1, IC_PLUGIN_MAX_PASS_INTERVAL, &number, error))
            return FALSE;
        options->pass_interval = (gint64)number;
        return TRUE;
    }
    if (g_str_equal(option, "PerImageValues")) {
        if (ic_per_image_values_from_string(value, &options->per_image))
            return TRUE;
        g_set_error(error, IC_ERROR, IC_ERROR_CONFIG,
                    "collectd config: option '%s': '%s' is none of problems, all, none", name,
                    value);
        return FALSE;
    }
    g_assert(g_str_equal(option, "ChecksumRateLimit"));
    if (!parse_unsigned(name, value, 0, G_MAXINT64, &number, error))
        return FALSE;
    options->checksum_rate_limit = number;
    return TRUE;
}

gboolean ic_plugin_options_build_config(const IcPluginOptions *options, IcConfig **ret_config,
                                        GError **error)
{
    if (options->config_path == NULL) {
        g_set_error(error, IC_ERROR, IC_ERROR_CONFIG,
                    "collectd config: option 'Config' is missing: name the imagecache config "
                    "file, e.g. Config \"%s\"",
                    IC_CONFIG_DEFAULT_PATH);
        return FALSE;
    }
    g_autoptr(IcConfig) config = ic_config_new();
    if (!ic_config_load_file(config, options->config_path, error)) {
        g_prefix_error(error, "collectd config: option 'Config': ");
        return FALSE;
    }
    for (guint i = 0; i < options->overrides->len; i++) {
        const Override *override = g_ptr_array_index(options->overrides, i);
        g_autofree char *origin = g_strdup_printf("collectd config: option '%s'", override->option);
        if (!ic_config_set(config, override->key, override->value, origin, error))
            return FALSE;
    }
    if (!ic_config_finish(config, error))
        return FALSE;
    *ret_config = g_steal_pointer(&config);
    return TRUE;
}
