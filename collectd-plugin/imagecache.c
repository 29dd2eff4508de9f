/* imagecache.c — the collectd read plugin: a worker thread runs the pass every
 * PassInterval; the read callback dispatches the latest values; notifications
 * on corrupt, absent-in-use and unremovable base files. Glue only: the rules
 * live in common/ (pass, metrics). */
#include <glib.h>
#include <malloc.h>
#include <string.h>

#include "alerts.h"
#include "error.h"
#include "metrics.h"
#include "pass.h"
#include "plugin-options.h"
#ifdef IC_HAVE_LIBVIRT
#endif

/* collectd's headers, from -isystem dirs: they are not -pedantic clean. */
#include "collectd/core/daemon/plugin.h"

#define PLUGIN_NAME "imagecache"
#define LOG_PREFIX  "imagecache plugin: "

/* Options gathered by the config callback (collectd calls it before init):
 * "name", "value" pairs, checked in init, where a failure unloads the plugin. */
static GPtrArray *config_items;
static char *config_problem; /* first option whose value could not be read */

/* Set up by init, read-only afterwards (the worker uses them). */
static IcConfig *config;
static IcPluginOptions *options;
static guint log_handler_id;

/* The worker and what it shares with the read callback, under @lock. */
static GMutex lock;
static GCond wakeup;
static gboolean stopping;
static gboolean worker_running;
static pthread_t worker_thread;
static IcCancel *cancel;
static IcMetricSet *snapshot;      /* the latest good pass's values, NULL until the first */
static gboolean snapshot_reported; /* its first cycle was logged */
static IcPassStatus pass_status;   /* for the liveness values */
static gint64 started_at;          /* epoch seconds init started the worker */

/* ---- logging ---- */

static void forward_log(const char *domain, GLogLevelFlags level, const char *message,
                        gpointer data)
{
    int severity = LOG_INFO;
    if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
        severity = LOG_ERR;
    else if (level & G_LOG_LEVEL_WARNING)
        severity = LOG_WARNING;
    else if (level & G_LOG_LEVEL_DEBUG)
        return; /* the library's detail; collectd's DEBUG is compiled out anyway */
    plugin_log(severity, LOG_PREFIX "%s", message);
}

/* ---- config ---- */

/* The value of a one-value option as text, the way ic_config_set reads it. */
static char *option_value_text(const oconfig_item_t *item)
{
    if (item->values_num != 1 || item->children_num != 0)
        return NULL;
    const oconfig_value_t *value = &item->values[0];
    switch (value->type) {
    case OCONFIG_TYPE_STRING:
        return g_strdup(value->value.string);
    case OCONFIG_TYPE_BOOLEAN:
        return g_strdup(value->value.boolean ? "true" : "false");
    case OCONFIG_TYPE_NUMBER:
        /* %.17g keeps 1.5 as "1.5" (refused where a whole number is due). */
        return g_strdup_printf("%.17g", value->value.number);
    }
    return NULL;
}

static int imagecache_config(oconfig_item_t *block)
{
    if (config_items == NULL)
        config_items = g_ptr_array_new_with_free_func(g_free);
    for (int i = 0; i < block->children_num; i++) {
        const oconfig_item_t *item = &block->children[i];
        char *text = option_value_text(item);
        if (text == NULL) {
            if (config_problem == NULL)
                config_problem = g_strdup_printf("option '%s' takes exactly one value", item->key);
            continue;
        }
        g_ptr_array_add(config_items, g_strdup(item->key));
        g_ptr_array_add(config_items, text);
    }
    return 0; /* errors are reported by init, which unloads the plugin */
}

static gboolean load_options(GError **error)
{
    if (config_problem != NULL) {
        g_set_error(error, IC_ERROR, IC_ERROR_CONFIG, "collectd config: %s", config_problem);
        return FALSE;
    }
    options = ic_plugin_options_new();
    for (guint i = 0; config_items != NULL && i + 1 < config_items->len; i += 2)
        if (!ic_plugin_options_set(options, config_items->pdata[i], config_items->pdata[i + 1],
                                   error))
            return FALSE;
    return ic_plugin_options_build_config(options, &config, error);
}

/* ---- the worker ---- */

/* libvirt's live domains, asked once at the pass's start and never under the
 * usage lock; the pass reads the ledger and the instances dir itself. */
static void collect_usage(IcUsage *usage, gint64 now, gpointer data)
{
    (void)now;
    (void)data;
    ic_witnesses_collect_live(config, usage);
}

static void dispatch_notification(const IcNotification *alert)
{
    static const int severities[] = {
        [IC_NOTIFY_FAILURE] = NOTIF_FAILURE,
        [IC_NOTIFY_WARNING] = NOTIF_WARNING,
        [IC_NOTIFY_OKAY] = NOTIF_OKAY,
    };
    notification_t n = {.severity = severities[alert->severity], .time = cdtime()};
    g_strlcpy(n.message, alert->message, sizeof(n.message));
    g_strlcpy(n.host, hostname_g, sizeof(n.host));
    g_strlcpy(n.plugin, PLUGIN_NAME, sizeof(n.plugin));
    g_strlcpy(n.plugin_instance, alert->file, sizeof(n.plugin_instance));
    g_strlcpy(n.type, "gauge", sizeof(n.type));
    g_strlcpy(n.type_instance, alert->condition, sizeof(n.type_instance));
    plugin_dispatch_notification(&n);
}

/* The witnesses' notes (a ledger unreadable or stale, libvirt unreachable),
 * logged when they change rather than every pass. */
static void log_notes(const IcReport *report, char **last_notes)
{
    GString *text = g_string_new(NULL);
    for (guint i = 0; i < report->notes->len; i++)
        g_string_append_printf(text, "%s%s", i ? "; " : "", (char *)report->notes->pdata[i]);
    g_autofree char *notes = g_string_free(text, FALSE);
    if (g_strcmp0(notes, *last_notes) == 0)
        return;
    if (report->notes->len > 0)
        NOTICE(LOG_PREFIX "%s", notes);
    else if (*last_notes != NULL)
        NOTICE(LOG_PREFIX "every usage witness answered again");
    g_free(*last_notes);
    *last_notes = g_steal_pointer(&notes);
}

/* One pass; FALSE when cancelled (shutdown).
 *
 * No IcLedgerCache is kept between passes (issue 15: the plugin holds its values
 * and nothing more). Measured at 10,000 base files and 200 ledger hosts x 100
 * domains: the cache held 9.6 MiB of parsed ledgers to spare reading 3.4 MiB of
 * host files once per PassInterval, and added 7.5 MiB to the pass's peak; both
 * grow with the ledger alike (a 1,000-host cell: ~85 MiB held for 31 MiB read
 * per pass). docs/performance.md, "Issue 15: the collectd plugin's memory". */
static gboolean run_pass(IcAlertState *alerts, char **last_notes)
{
    g_autofree char *claim_note = NULL;
    gboolean removes =
        ic_ledger_claim_pass(config->ledger_dir, config->host, g_get_real_time() / G_USEC_PER_SEC,
                             config->shared_pass_interval_seconds, &claim_note);
    if (!removes)
        INFO(LOG_PREFIX "%s", claim_note);
    IcPassOptions pass_options = {
        .mode = removes ? IC_PASS_RUN : IC_PASS_REPORT,
        .checksum_rate_limit = options->checksum_rate_limit,
        .cancel = cancel,
        .witnesses = collect_usage,
        /* No helper threads (the scan beside the ledger, a second walk
         * thread): glibc keeps a malloc arena for every thread that ever ran,
         * and a helper's arena, all free once the pass merged its work, stays
         * resident (malloc_trim does not shrink the top of another thread's
         * arena). Measured at 10,000 base files (bench case 5, G_SLICE drop-in):
         * 5.0 MiB held between passes with two walk threads, 1.7 MiB with one.
         * A background pass does not need the second core. */
        .walk_threads = 1,
    };
    g_autoptr(IcReport) report = NULL;
    g_autoptr(GError) error = NULL;
    gint64 now = g_get_real_time() / G_USEC_PER_SEC;

    if (!ic_pass_run(config, NULL, &pass_options, now, &report, &error)) {
        if (g_error_matches(error, IC_ERROR, IC_ERROR_CANCELLED))
            return FALSE;
        ERROR(LOG_PREFIX "pass over '%s/%s' failed: %s; trying again in %" G_GINT64_FORMAT " s",
              config->instances_path, config->base_dir_name, error->message,
              options->pass_interval);
        g_mutex_lock(&lock);
        pass_status.last_pass = now;
        pass_status.finished = g_get_real_time() / G_USEC_PER_SEC;
        guint failed = ++pass_status.failed_passes;
        g_mutex_unlock(&lock);
        g_autoptr(IcNotification) alert = ic_notification_pass_failed(failed, error->message);
        if (alert != NULL)
            dispatch_notification(alert);
        return TRUE;
    }
    ic_report_log_events(report);
    log_notes(report, last_notes);

    IcMetricSet *values =
        ic_metric_set_new_from_report(report, &report->ledger, options->per_image);
    g_mutex_lock(&lock);
    IcMetricSet *old = g_steal_pointer(&snapshot);
    snapshot = values;
    snapshot_reported = FALSE;
    guint had_failed = pass_status.failed_passes;
    pass_status = (IcPassStatus){
        .last_pass = now, .finished = g_get_real_time() / G_USEC_PER_SEC, .failed_passes = 0};
    g_mutex_unlock(&lock);
    ic_metric_set_unref(old);
    g_autoptr(IcNotification) recovered = ic_notification_pass_recovered(had_failed);
    if (recovered != NULL)
        dispatch_notification(recovered);

    g_autoptr(GPtrArray) alerts_raised = ic_alert_state_update(alerts, report);
    for (guint i = 0; i < alerts_raised->len; i++)
        dispatch_notification(g_ptr_array_index(alerts_raised, i));

    const IcTotals *t = &report->totals;
    INFO(LOG_PREFIX "pass took %.1f s: %" G_GUINT64_FORMAT " images, %" G_GUINT64_FORMAT
                    " active, %" G_GUINT64_FORMAT " corrupt, %" G_GUINT64_FORMAT
                    " removed (%" G_GUINT64_FORMAT " bytes reclaimed), %" G_GUINT64_FORMAT
                    " kept too young",
         report->duration_seconds, t->images, t->active, t->corrupt, t->removed, t->bytes_reclaimed,
         t->too_young);
    return TRUE;
}

static void *worker_main(void *arg)
{
    g_autoptr(IcAlertState) alerts = ic_alert_state_new(); /* the worker's alone */
    g_autofree char *last_notes = NULL;

    g_mutex_lock(&lock);
    while (!stopping) {
        g_mutex_unlock(&lock);
        gint64 next = g_get_monotonic_time() + options->pass_interval * G_USEC_PER_SEC;
        gboolean go_on = run_pass(alerts, &last_notes);
        /* The pass freed its report, usage and ledgers into the malloc arenas of
         * this thread and of the pass's own threads (the instances walk, the
         * hashing), which glibc keeps: give the free pages back until the next
         * pass (measured at 10,000 base files: 19 MiB, 28 MiB under G_SLICE=always-malloc).
         * malloc_trim rather than mallopt(M_ARENA_MAX): the latter would change the allocator of
         * the whole collectd process, every plugin's, and keeps free pages all the same. */
        (void)malloc_trim(0);
        g_mutex_lock(&lock);
        if (!go_on)
            break;
        while (!stopping && g_cond_wait_until(&wakeup, &lock, next))
            ; /* spurious wake-ups: wait on until the deadline or shutdown */
    }
    g_mutex_unlock(&lock);
    return NULL;
}

/* ---- callbacks ---- */

static int imagecache_init(void)
{
    g_autoptr(GError) error = NULL;

    log_handler_id = g_log_set_handler("imagecache", G_LOG_LEVEL_MASK, forward_log, NULL);
    if (!load_options(&error)) {
        ERROR(LOG_PREFIX "%s; the plugin is not started", error->message);
        /* Nothing of ours will ever be sent: say so once, where alerts go. */
        g_autofree char *message =
            g_strdup_printf("imagecache plugin not started: %s", error->message);
        dispatch_notification(&(IcNotification){.severity = IC_NOTIFY_FAILURE,
                                                .file = "",
                                                .condition = "not_started",
                                                .message = message});
        return -1;
    }
    cancel = ic_cancel_new();
    stopping = FALSE;
    started_at = g_get_real_time() / G_USEC_PER_SEC;
    int status = plugin_thread_create(&worker_thread, worker_main, NULL, "imagecache");
    if (status != 0) {
        ERROR(LOG_PREFIX "could not start the worker thread: %s", g_strerror(status));
        return -1;
    }
    worker_running = TRUE;
    g_autofree char *base_dir = ic_config_base_dir(config);
    INFO(LOG_PREFIX "checking '%s' every %" G_GINT64_FORMAT " s (config '%s', removal %s, "
                    "checksums %s, hashing at most %" G_GUINT64_FORMAT " bytes/s, "
                    "per-image values: %s)",
         base_dir, options->pass_interval, options->config_path,
         config->remove_unused_base_images ? "on" : "off",
         config->checksum_base_images ? "on" : "off", options->checksum_rate_limit,
         ic_per_image_values_to_string(options->per_image));
    /* GLib before 2.76 keeps the slices a pass freed (each GHashTable, GPtrArray,
     * list node…) in its own caches, which only later frees trim: between passes
     * that is most of the pass's peak of them (measured: 9.6 MiB at 10,000 base
     * files). Only the environment can change that, before GLib is loaded. */
    const char *slice = g_getenv("G_SLICE");
    if (glib_check_version(2, 76, 0) != NULL &&
        (slice == NULL || strstr(slice, "always-malloc") == NULL))
        INFO(LOG_PREFIX "GLib %u.%u keeps freed slices between passes: set "
                        "G_SLICE=always-malloc in collectd's environment to return them",
             glib_major_version, glib_minor_version);
    return 0;
}

static void submit(const IcMetric *metric, cdtime_t interval)
{
    value_t value = {.gauge = metric->value};
    value_list_t vl = VALUE_LIST_INIT;
    vl.values = &value;
    vl.values_len = 1;
    vl.interval = interval;
    g_strlcpy(vl.plugin, PLUGIN_NAME, sizeof(vl.plugin));
    g_strlcpy(vl.plugin_instance, metric->plugin_instance, sizeof(vl.plugin_instance));
    g_strlcpy(vl.type, metric->type, sizeof(vl.type));
    g_strlcpy(vl.type_instance, metric->type_instance, sizeof(vl.type_instance));
    plugin_dispatch_values(&vl);
}

/* The read callback's own state (collectd never runs one read callback twice
 * at once): the values being sent this cycle and how far it got. A cycle sends
 * every value of one snapshot; it spans several reads when the cache is so
 * large that sending it all would take more than READ_BUDGET of the interval. */
#define READ_BUDGET 0.25                 /* of the read interval */
static IcMetricSet *cycle;               /* NULL between cycles */
static guint cycle_next;                 /* index of the next value to send */
static cdtime_t cycle_interval;          /* interval × reads the cycle takes */
static double seconds_per_value = 20e-6; /* measured, as a moving average */

/* The liveness values, sent at the start of every cycle, whatever the snapshot;
 * a hung worker is noticed here, where the read callback still runs. */
static void submit_status(IcPassStatus status, cdtime_t interval)
{
    static gboolean overdue;
    gint64 now = g_get_real_time() / G_USEC_PER_SEC;
    g_autoptr(IcNotification) alert =
        ic_notification_liveness(&overdue, &status, started_at, now, options->pass_interval);
    if (alert != NULL)
        dispatch_notification(alert);
    g_autoptr(IcMetricSet) values = ic_metric_set_new_status(&status, now, options->pass_interval);
    for (guint i = 0; i < values->metrics->len; i++)
        submit(&g_array_index(values->metrics, IcMetric, i), interval);
}

static void start_cycle(cdtime_t interval)
{
    g_mutex_lock(&lock);
    IcPassStatus status = pass_status;
    cycle = snapshot ? ic_metric_set_ref(snapshot) : NULL;
    gboolean first_of_snapshot = cycle != NULL && !snapshot_reported;
    snapshot_reported = TRUE;
    g_mutex_unlock(&lock);
    if (cycle == NULL) {
        submit_status(status, interval);
        return; /* the first good pass is still to come */
    }

    guint per_read =
        (guint)MAX(64.0, READ_BUDGET * CDTIME_T_TO_DOUBLE(interval) / seconds_per_value);
    guint reads = MAX(1u, (cycle->metrics->len + per_read - 1) / per_read);
    cycle_next = 0;
    cycle_interval = interval * reads;
    submit_status(status, cycle_interval);
    if (first_of_snapshot)
        INFO(LOG_PREFIX "sending %u values every %.1f s (%u read%s of %.1f us per value)",
             cycle->metrics->len, CDTIME_T_TO_DOUBLE(cycle_interval), reads, reads > 1 ? "s" : "",
             seconds_per_value * 1e6);
}

/* Sends the latest pass's values and returns: the pass runs in the worker.
 * Each value is re-sent every cycle (one read interval unless the cache is
 * huge) with the cycle's length as its interval, so a graph gets a point per
 * interval, and the values of an image the pass removed, absent from the next
 * snapshot, expire from collectd's cache after Timeout cycles. A read never
 * takes more than about READ_BUDGET of the interval, whatever the cache size. */
static int imagecache_read(void)
{
    cdtime_t interval = plugin_get_interval();
    if (cycle == NULL)
        start_cycle(interval);
    if (cycle == NULL)
        return 0;

    cdtime_t started = cdtime();
    cdtime_t deadline = started + (cdtime_t)(READ_BUDGET * (double)interval);
    guint first = cycle_next;
    while (cycle_next < cycle->metrics->len) {
        submit(&g_array_index(cycle->metrics, IcMetric, cycle_next), cycle_interval);
        cycle_next++;
        if (cycle_next % 64 == 0 && cdtime() > deadline)
            break;
    }
    double took = CDTIME_T_TO_DOUBLE(cdtime() - started);
    seconds_per_value = 0.5 * seconds_per_value + 0.5 * took / (cycle_next - first);
    if (cycle_next >= cycle->metrics->len)
        g_clear_pointer(&cycle, ic_metric_set_unref);
    return 0;
}

static int imagecache_shutdown(void)
{
    if (worker_running) {
        g_mutex_lock(&lock);
        stopping = TRUE;
        g_cond_broadcast(&wakeup);
        g_mutex_unlock(&lock);
        ic_cancel_cancel(cancel); /* stops hashing, the lock wait and removal */
        (void)pthread_join(worker_thread, NULL);
        worker_running = FALSE;
    }
    g_clear_pointer(&snapshot, ic_metric_set_unref);
    g_clear_pointer(&cycle, ic_metric_set_unref);
    g_clear_pointer(&cancel, ic_cancel_free);
    g_clear_pointer(&config, ic_config_free);
    g_clear_pointer(&options, ic_plugin_options_free);
    g_clear_pointer(&config_items, g_ptr_array_unref);
    g_clear_pointer(&config_problem, g_free);
    if (log_handler_id != 0)
        g_log_remove_handler("imagecache", log_handler_id);
    log_handler_id = 0;
    return 0;
}

__attribute__((visibility("default"))) void module_register(void)
{
    plugin_register_complex_config(PLUGIN_NAME, imagecache_config);
    plugin_register_init(PLUGIN_NAME, imagecache_init);
    plugin_register_read(PLUGIN_NAME, imagecache_read);
    plugin_register_shutdown(PLUGIN_NAME, imagecache_shutdown);
}
