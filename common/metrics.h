/* metrics.h — the values the collectd plugin publishes, as plain data without
 * collectd: built from a pass report (totals, per-file values) and from the
 * worker's liveness. Notifications are alerts.h's, the options plugin-options.h's. */
#pragma once

#include <glib.h>

#include "report.h"
#include "witnesses.h"

G_BEGIN_DECLS

/* ---- values ---- */

/* One collectd value: plugin "imagecache", one data source, always a GAUGE
 * (every type used — bytes, count, duration, gauge, timestamp — is one in
 * collectd's stock types.db). */
typedef struct {
    char *plugin_instance;     /* the base file's name; "" for the totals */
    const char *type;          /* static: "bytes", "count", "duration", "gauge", "timestamp" */
    const char *type_instance; /* static: "" or e.g. "age", "local_users", "removed" */
    double value;
} IcMetric;

/* IcLedgerCounts (report.h): what the ledger witness saw, for the
 * count-ledger_* totals; when not known, the two values are left out. */

/* An immutable, reference-counted set of values from one pass: the plugin's
 * worker builds it, the read callback dispatches it as often as collectd asks. */
typedef struct {
    gint64 pass_time; /* the report's @now, epoch seconds */
    GArray *metrics;  /* IcMetric: per image in report order, then the totals */
} IcMetricSet;

/* Which base files get per-file values (the PerImageValues option). Totals
 * are always sent. Series per host: 26 totals + 6 per file that gets values. */
typedef enum {
    IC_PER_IMAGE_PROBLEMS, /* default: corrupt, absent, quarantined or held-open files only */
    IC_PER_IMAGE_ALL,      /* every present or in-use file */
    IC_PER_IMAGE_NONE,     /* totals only */
    _IC_PER_IMAGE_MAX,
} IcPerImageValues;

/* "problems", "all", "none". */
const char *ic_per_image_values_to_string(IcPerImageValues mode);
/* Case-insensitive; FALSE for an unknown name. */
gboolean ic_per_image_values_from_string(const char *text, IcPerImageValues *ret_mode);

/* Whether @row's file gets per-file values under @mode. Files the pass removed
 * never do (their values stop and age out). */
gboolean ic_metric_row_wanted(const IcImageRow *row, IcPerImageValues mode);

/* The values of @report: per base file that @mode wants bytes, duration-age,
 * count-local_users, count-remote_users, gauge-corrupt, gauge-in_use; then the
 * totals with an empty plugin_instance. @ledger may be NULL (not consulted).
 * The pass's liveness values are not in here: see ic_metric_set_new_status. */
IcMetricSet *ic_metric_set_new_from_report(const IcReport *report, const IcLedgerCounts *ledger,
                                           IcPerImageValues mode);

/* What the plugin's worker knows about its passes, for the liveness values. */
typedef struct {
    gint64 last_pass;    /* epoch seconds the last finished pass (good or failed) started; 0 none */
    gint64 finished;     /* epoch seconds it finished */
    guint failed_passes; /* failed passes in a row, 0 after a good one */
} IcPassStatus;

/* The liveness totals at @now: count-failed_passes always; timestamp-last_pass
 * only while the last pass finished at most 2 x @pass_interval ago, so that a
 * hung worker makes it stop and every back end's missing-data check fires. */
IcMetricSet *ic_metric_set_new_status(const IcPassStatus *status, gint64 now, gint64 pass_interval);

IcMetricSet *ic_metric_set_ref(IcMetricSet *set);
void ic_metric_set_unref(IcMetricSet *set);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IcMetricSet, ic_metric_set_unref)

/* The value @plugin_instance/@type-@type_instance, or NULL (tests, lookups). */
const IcMetric *ic_metric_set_lookup(const IcMetricSet *set, const char *plugin_instance,
                                     const char *type, const char *type_instance);

G_END_DECLS
