#include "metrics.h"

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
