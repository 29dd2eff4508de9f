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

/* The values of @report: per present or in-use base file (files the pass
 * removed are left out, so their values stop and age out) bytes, duration-age,
 * count-local_users, count-remote_users, gauge-corrupt, gauge-in_use; then the
 * totals with an empty plugin_instance. @ledger may be NULL (not consulted). */
IcMetricSet *ic_metric_set_new_from_report(const IcReport *report, const IcLedgerCounts *ledger);
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
    const char *condition; /* static: "corrupt", "absent", "remove_failed" (type_instance) */
    char *message;
} IcNotification;

void ic_notification_free(IcNotification *notification);

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

/* ---- the <Plugin imagecache> options ---- */

#define IC_PLUGIN_DEFAULT_PASS_INTERVAL 2400 /* seconds: Nova's image cache period */
#define IC_PLUGIN_MAX_PASS_INTERVAL     (7 * 86400) /* seconds: a week */
/* 50 MiB/s: about a third of a hard disk's or a 1 GbE NFS link's sequential
 * throughput, so guests keep the rest; still 117 GiB per 2400 s pass. */
#define IC_PLUGIN_DEFAULT_CHECKSUM_RATE_LIMIT (50 * 1024 * 1024)

typedef struct {
    char *config_path;           /* Config: required, nothing runs on a config nobody wrote */
    GPtrArray *overrides;        /* private: the library keys to set, in order */
    gint64 pass_interval;        /* PassInterval, seconds, 1..IC_PLUGIN_MAX_PASS_INTERVAL */
    guint64 checksum_rate_limit; /* ChecksumRateLimit, bytes/s, 0 = unlimited */
} IcPluginOptions;

IcPluginOptions *ic_plugin_options_new(void);
void ic_plugin_options_free(IcPluginOptions *options);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IcPluginOptions, ic_plugin_options_free)

/* The library key an option (case-insensitive, e.g. "RemoveUnused") sets, or
 * NULL for one that is not a library key (Config, PassInterval, …, or unknown). */
const char *ic_plugin_option_to_key(const char *name);

/* Records option @name with its textual @value. An unknown option or a bad
 * PassInterval/ChecksumRateLimit fails with IC_ERROR_CONFIG naming the option;
 * library keys are checked when the config is built. */
gboolean ic_plugin_options_set(IcPluginOptions *options, const char *name, const char *value,
                               GError **error);

/* Loads the Config file, applies the overrides in order and finishes the
 * config. No Config option, an unreadable file or a bad value fails with
 * IC_ERROR_CONFIG (IC_ERROR_NOT_FOUND for a missing file) naming the option. */
gboolean ic_plugin_options_build_config(const IcPluginOptions *options, IcConfig **ret_config,
                                        GError **error);

G_END_DECLS
