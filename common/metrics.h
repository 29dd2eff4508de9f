/* metrics.h — what the collectd plugin publishes, as plain data without collectd:
 * the values built from a pass report, the notifications a new report warrants,
 * and the mapping of the plugin's collectd-style options onto the library config. */
#pragma once

#include <glib.h>

#include "config.h"
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

/* ---- notifications ---- */

typedef enum {
    IC_NOTIFY_FAILURE, /* collectd NOTIF_FAILURE */
    IC_NOTIFY_WARNING, /* collectd NOTIF_WARNING */
    IC_NOTIFY_OKAY,    /* collectd NOTIF_OKAY */
} IcNotifySeverity;

const char *ic_notify_severity_to_string(IcNotifySeverity severity);

typedef struct {
    IcNotifySeverity severity;
    char *file;            /* the base file: the notification's plugin_instance */
    const char *condition; /* static: "corrupt", "absent", "remove_failed", "pass_failed",
                            * "pass_overdue", "not_started" (type_instance) */
    char *message;
} IcNotification;

void ic_notification_free(IcNotification *notification);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IcNotification, ic_notification_free)

/* The alert conditions of each base file as of the last report: a file turns
 * corrupt (FAILURE), an in-use file is absent (WARNING), a removal failed
 * (WARNING); each raises one notification when it starts and one OKAY when it
 * clears (the file verified good again, back, no longer failing, or gone). */
typedef struct _IcAlertState IcAlertState;

IcAlertState *ic_alert_state_new(void);
void ic_alert_state_free(IcAlertState *state);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IcAlertState, ic_alert_state_free)

/* Compares @report with @state, updates @state and returns the notifications
 * (IcNotification*, caller frees the array) for the conditions that changed,
 * in file order. A corrupt file whose checksum was not verified this time
 * (an error reading it) stays corrupt: OKAY needs a good digest or the file gone. */
GPtrArray *ic_alert_state_update(IcAlertState *state, const IcReport *report);

/* A pass failed with @message (@failed_passes in a row): one FAILURE
 * "pass_failed" (empty file) for the first failure, NULL for the next ones. */
IcNotification *ic_notification_pass_failed(guint failed_passes, const char *message);
/* The pass is overdue: none has finished for more than 2 x @pass_interval
 * (before the first, since @started):
 * the worker hangs. Updates *@overdue and returns one FAILURE "pass_overdue"
 * when it turns overdue, one OKAY when a pass finishes again, else NULL. */
IcNotification *ic_notification_liveness(gboolean *overdue, const IcPassStatus *status,
                                         gint64 started, gint64 now, gint64 pass_interval);
/* A pass succeeded after @failed_passes failures: one OKAY "pass_failed", NULL
 * when none had failed. */
IcNotification *ic_notification_pass_recovered(guint failed_passes);

/* ---- the <Plugin imagecache> options ---- */

#define IC_PLUGIN_DEFAULT_PASS_INTERVAL 2400        /* seconds: Nova's image cache period */
#define IC_PLUGIN_MAX_PASS_INTERVAL     (7 * 86400) /* seconds: a week */
/* 50 MiB/s: about a third of a hard disk's or a 1 GbE NFS link's sequential
 * throughput, so guests keep the rest; still 117 GiB per 2400 s pass. */
#define IC_PLUGIN_DEFAULT_CHECKSUM_RATE_LIMIT (50 * 1024 * 1024)

typedef struct {
    char *config_path;           /* Config: required, nothing runs on a config nobody wrote */
    GPtrArray *overrides;        /* private: the library keys to set, in order */
    gint64 pass_interval;        /* PassInterval, seconds, 1..IC_PLUGIN_MAX_PASS_INTERVAL */
    guint64 checksum_rate_limit; /* ChecksumRateLimit, bytes/s, 0 = unlimited */
    IcPerImageValues per_image;  /* PerImageValues */
} IcPluginOptions;

IcPluginOptions *ic_plugin_options_new(void);
void ic_plugin_options_free(IcPluginOptions *options);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IcPluginOptions, ic_plugin_options_free)

/* Records option @name with its textual @value. An unknown option or a bad
 * PassInterval/ChecksumRateLimit/PerImageValues fails with IC_ERROR_CONFIG naming the option;
 * library keys are checked when the config is built. */
gboolean ic_plugin_options_set(IcPluginOptions *options, const char *name, const char *value,
                               GError **error);

/* Loads the Config file, applies the overrides in order and finishes the
 * config. No Config option, an unreadable file or a bad value fails with
 * IC_ERROR_CONFIG (IC_ERROR_NOT_FOUND for a missing file) naming the option. */
gboolean ic_plugin_options_build_config(const IcPluginOptions *options, IcConfig **ret_config,
                                        GError **error);

G_END_DECLS
