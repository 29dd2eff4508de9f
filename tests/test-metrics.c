/* What the collectd plugin publishes, without collectd: the values built from a
 * real pass over a temporary tree, the notification transitions, the options. */
#include <fcntl.h>
#include <glib/gstdio.h>
#include <unistd.h>

#include "error.h"
#include "imgwriter.h"
#include "alerts.h"
#include "metrics.h"
#include "plugin-options.h"
#include "pass.h"
#include "testutil.h"

#define DAY ((gint64)86400)

static char *fingerprint(const char *image_id)
{
    return g_compute_checksum_for_string(G_CHECKSUM_SHA1, image_id, -1);
}

/* A base file with @contents, an .info sidecar holding @sidecar_sha1 (NULL:
 * the right digest), mtime @mtime. */
static void make_base(IcTestTree *tree, const char *name, const char *contents,
                      const char *sidecar_sha1, gint64 mtime)
{
    g_autofree char *path = ic_test_write_file(tree->base_dir, name, contents, -1);
    g_autofree char *sha1 = sidecar_sha1 ? g_strdup(sidecar_sha1) : fingerprint(contents);
    g_autofree char *info_name = g_strconcat(name, ".info", NULL);
    g_autofree char *info = g_strdup_printf("{\"sha1\": \"%s\", \"sha1-timestamp\": 0}\n", sha1);
    g_free(ic_test_write_file(tree->base_dir, info_name, info, -1));
    ic_test_set_mtime(path, mtime);
}

/* An instance dir @instance_name whose disk is a qcow2 overlay on base file @backing_name. */
static void make_instance(IcTestTree *tree, const char *instance_name, const char *backing_name)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *instance = g_build_filename(tree->root, instance_name, NULL);
    g_assert_cmpint(g_mkdir(instance, 0755), ==, 0);
    g_autofree char *disk = g_build_filename(instance, "disk", NULL);
    g_autofree char *backing = g_strconcat("../_base/", backing_name, NULL);
    g_assert_true(ic_test_write_qcow2(disk, 3, 1 << 20, backing, "raw", &error));
    g_assert_no_error(error);
}

/* A real pass (run mode, checksums on) over @tree at @now. */
static IcReport *run_pass(IcTestTree *tree, gint64 now)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcConfig) config = ic_config_new();
    g_assert_true(ic_config_set(config, "instances_path", tree->root, "test", &error));
    g_assert_true(ic_config_set(config, "host", "testhost", "test", &error));
    g_assert_true(ic_config_set(config, "checksum_base_images", "true", "test", &error));
    g_assert_true(ic_config_finish(config, &error));
    g_assert_no_error(error);
    IcPassOptions options = {.mode = IC_PASS_RUN};
    IcReport *report = NULL;
    g_assert_true(ic_pass_run(config, NULL, &options, now, &report, &error));
    g_assert_no_error(error);
    return report;
}

static void assert_metric(const IcMetricSet *set, const char *plugin_instance, const char *type,
                          const char *type_instance, double expected)
{
    const IcMetric *metric = ic_metric_set_lookup(set, plugin_instance, type, type_instance);
    if (metric == NULL)
        g_error("no value %s/%s-%s", plugin_instance, type, type_instance);
    g_assert_cmpfloat_with_epsilon(metric->value, expected, 1e-9);
}

static void test_values_from_pass(IcTestTree *tree, gconstpointer data)
{
    gint64 now = g_get_real_time() / G_USEC_PER_SEC;
    g_autofree char *used = fingerprint("used-image");
    g_autofree char *old = fingerprint("old-image");
    g_autofree char *rotten = fingerprint("rotten-image");
    g_autofree char *young_fingerprint = fingerprint("young-image");
    g_autofree char *young = g_strconcat(young_fingerprint, "_10737418240", NULL);

    make_base(tree, used, "used contents", NULL, now - 3 * DAY);
    make_base(tree, old, "old unused contents", NULL, now - 3 * DAY);
    make_base(tree, rotten, "rotten contents", "0123456789abcdef0123456789abcdef01234567",
              now - 3 * DAY);
    make_base(tree, young, "young", NULL, now - 60);
    make_instance(tree, "instance-0001", used);
    g_autoptr(IcReport) report = run_pass(tree, now);

    IcLedgerCounts ledger = {.known = TRUE, .hosts = 3, .stale_hosts = 1};
    g_autoptr(IcMetricSet) set = ic_metric_set_new_from_report(report, &ledger, IC_PER_IMAGE_ALL);
    g_assert_cmpint(set->pass_time, ==, now);

    assert_metric(set, used, "bytes", "", strlen("used contents"));
    assert_metric(set, used, "gauge", "in_use", 1);
    assert_metric(set, used, "gauge", "corrupt", 0);
    assert_metric(set, used, "count", "local_users", 1);
    assert_metric(set, used, "count", "remote_users", 0);
    assert_metric(set, rotten, "gauge", "corrupt", 1);
    assert_metric(set, rotten, "gauge", "in_use", 0);
    assert_metric(set, rotten, "duration", "age", 3 * DAY);
    assert_metric(set, young, "duration", "age", 60);
    /* The removed file's values stop, so collectd ages them out. */
    g_assert_null(ic_metric_set_lookup(set, old, "bytes", ""));
    g_autofree char *old_path = g_build_filename(tree->base_dir, old, NULL);
    g_assert_false(ic_test_exists(old_path));

    assert_metric(set, "", "count", "images", 4);
    assert_metric(set, "", "count", "active", 1);
    assert_metric(set, "", "count", "corrupt", 1);
    assert_metric(set, "", "count", "too_young", 1);
    assert_metric(set, "", "count", "removed", 1);
    assert_metric(set, "", "bytes", "reclaimed", strlen("old unused contents"));
    assert_metric(set, "", "bytes", "active", strlen("used contents"));
    assert_metric(set, "", "count", "ledger_hosts", 3);
    assert_metric(set, "", "count", "ledger_stale_hosts", 1);
    /* The liveness values come from the worker, not from the report. */
    g_assert_null(ic_metric_set_lookup(set, "", "timestamp", "last_pass"));
    g_assert_nonnull(ic_metric_set_lookup(set, "", "duration", "pass"));
    /* per reason (issue 6): the one removal was of an unused file */
    assert_metric(set, "", "count", "removed-unused", 1);
    assert_metric(set, "", "bytes", "reclaimed-unused", strlen("old unused contents"));
    assert_metric(set, "", "count", "removed-disk_pressure", 0);
    assert_metric(set, "", "bytes", "reclaimed-quarantine_expired", 0);
    assert_metric(set, "", "count", "quarantined", 0);
    /* 3 files with values, 6 each; 13 totals of issue 4 (last_pass is a
     * liveness value now), 5 of issue 6 and count/bytes for each of the 3
     * removal reasons. */
    g_assert_cmpuint(set->metrics->len, ==, 3 * 6 + 13 + 5 + 3 * 2);

    /* Only the types of collectd's stock types.db. */
    for (guint i = 0; i < set->metrics->len; i++) {
        const char *type = g_array_index(set->metrics, IcMetric, i).type;
        g_assert_true(g_strv_contains(
            (const char *const[]){"bytes", "count", "duration", "gauge", "timestamp", NULL}, type));
    }

    /* Without the ledger, its two totals are left out rather than reported as 0. */
    g_autoptr(IcMetricSet) no_ledger =
        ic_metric_set_new_from_report(report, NULL, IC_PER_IMAGE_ALL);
    g_assert_null(ic_metric_set_lookup(no_ledger, "", "count", "ledger_hosts"));
    g_assert_cmpuint(no_ledger->metrics->len, ==, set->metrics->len - 2);
}

/* ---- cardinality: PerImageValues over a 5,000-file cache (issue 14) ---- */

/* A plain write: no temp file and rename, which 10,000 files can't afford. */
static char *write_plain(const char *dir, const char *name, const char *contents)
{
    g_autoptr(GError) error = NULL;
    char *path = g_build_filename(dir, name, NULL);
    g_assert_true(
        g_file_set_contents_full(path, contents, -1, G_FILE_SET_CONTENTS_NONE, 0644, &error));
    g_assert_no_error(error);
    return path;
}

#define CACHE_FILES 5000

/* One real pass over 5,000 base files of which 3 are corrupt and 1 is unused,
 * old and held open, plus 2 in-use files that are absent: the series count per
 * host under each PerImageValues setting, as collectd would get them. */
static void test_cardinality(IcTestTree *tree, gconstpointer data)
{
    gint64 now = g_get_real_time() / G_USEC_PER_SEC;
    int held_fd = -1;
    for (guint i = 0; i < CACHE_FILES; i++) {
        g_autofree char *id = g_strdup_printf("image-%u", i);
        g_autofree char *name = fingerprint(id);
        if (i < 3) { /* corrupt */
            make_base(tree, name, id, "0123456789abcdef0123456789abcdef01234567", now - 60);
            continue;
        }
        g_autofree char *path = write_plain(tree->base_dir, name, id);
        /* verified a moment ago: not hashed again (checksum_interval_seconds) */
        g_autofree char *info_name = g_strconcat(name, ".info", NULL);
        g_autofree char *sha1 = fingerprint(id);
        g_autofree char *info = g_strdup_printf(
            "{\"sha1\": \"%s\", \"sha1-timestamp\": %" G_GINT64_FORMAT "}\n", sha1, now);
        g_free(write_plain(tree->base_dir, info_name, info));
        if (i == 3) { /* old, unused, held open: kept "held_open" */
            ic_test_set_mtime(path, now - 3 * DAY);
            held_fd = g_open(path, O_RDONLY | O_CLOEXEC, 0);
            g_assert_cmpint(held_fd, >=, 0);
        } else {
            ic_test_set_mtime(path, now - 60); /* young: kept, too_young */
        }
    }
    for (guint i = 0; i < 2; i++) { /* in use, absent */
        g_autofree char *instance_name = g_strdup_printf("instance-%u", i);
        g_autofree char *id = g_strdup_printf("absent-image-%u", i);
        g_autofree char *missing = fingerprint(id);
        make_instance(tree, instance_name, missing);
    }

    gint64 started = g_get_monotonic_time();
    g_autoptr(IcReport) report = run_pass(tree, now);
    g_test_message("pass over %u files: %.2f s", report->rows->len,
                   (g_get_monotonic_time() - started) / 1e6);
    g_assert_cmpuint(report->totals.corrupt, ==, 3);
    g_assert_cmpuint(report->totals.absent, ==, 2);
    g_assert_cmpuint(report->totals.removed, ==, 0);

    IcLedgerCounts ledger = {.known = TRUE, .hosts = 1, .stale_hosts = 0};
    IcPassStatus status = {.last_pass = now, .finished = now, .failed_passes = 0};
    g_autoptr(IcMetricSet) liveness = ic_metric_set_new_status(&status, now, 2400);
    guint series[_IC_PER_IMAGE_MAX];
    for (int mode = 0; mode < _IC_PER_IMAGE_MAX; mode++) {
        g_autoptr(IcMetricSet) set = ic_metric_set_new_from_report(report, &ledger, mode);
        series[mode] = set->metrics->len + liveness->metrics->len;
        g_test_message("PerImageValues %s: %u series for %u files",
                       ic_per_image_values_to_string(mode), series[mode], report->rows->len);
        if (mode == IC_PER_IMAGE_PROBLEMS) {
            /* every problem file, and no other, has its six values */
            guint files = 0;
            for (guint i = 0; i < report->rows->len; i++) {
                const IcImageRow *row = g_ptr_array_index(report->rows, i);
                gboolean has = ic_metric_set_lookup(set, row->name, "gauge", "corrupt") != NULL;
                files += has;
                gboolean problem = row->checksum.state == IC_CHECKSUM_MISMATCH || !row->present ||
                                   row->decision.reason == IC_REASON_HELD_OPEN;
                if (has != problem)
                    g_error("%s (%s): per-file values %s", row->name,
                            ic_reason_to_string(row->decision.reason), has ? "sent" : "missing");
            }
            g_assert_cmpuint(files, ==, 3 + 2 + 1);
        }
    }
    /* totals only: the figure collectd-imagecache(5) documents */
    g_assert_cmpuint(series[IC_PER_IMAGE_NONE], ==, 26);
    g_assert_cmpuint(series[IC_PER_IMAGE_PROBLEMS], ==, 26 + 6 * (3 + 2 + 1));
    g_assert_cmpuint(series[IC_PER_IMAGE_ALL], ==, 26 + 6 * (CACHE_FILES + 2));
    g_assert_cmpint(close(held_fd), ==, 0);
}

static void test_per_image_option(void)
{
    g_autoptr(IcPluginOptions) options = ic_plugin_options_new();
    g_autoptr(GError) error = NULL;
    g_assert_cmpint(options->per_image, ==, IC_PER_IMAGE_PROBLEMS); /* the default */
    g_assert_true(ic_plugin_options_set(options, "PerImageValues", "All", &error));
    g_assert_cmpint(options->per_image, ==, IC_PER_IMAGE_ALL);
    g_assert_true(ic_plugin_options_set(options, "perimagevalues", "none", &error));
    g_assert_cmpint(options->per_image, ==, IC_PER_IMAGE_NONE);
    g_assert_no_error(error);
    g_assert_false(ic_plugin_options_set(options, "PerImageValues", "some", &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_CONFIG);
    g_assert_nonnull(strstr(error->message, "option 'PerImageValues'"));
}

/* The liveness values: failed passes always, last_pass only while fresh. */
static void test_status_values(void)
{
    IcPassStatus none = {0};
    g_autoptr(IcMetricSet) before = ic_metric_set_new_status(&none, 1000, 10);
    g_assert_null(ic_metric_set_lookup(before, "", "timestamp", "last_pass"));
    assert_metric(before, "", "count", "failed_passes", 0);

    IcPassStatus failing = {.last_pass = 990, .finished = 1000, .failed_passes = 2};
    g_autoptr(IcMetricSet) fresh = ic_metric_set_new_status(&failing, 1020, 10);
    assert_metric(fresh, "", "timestamp", "last_pass", 990);
    assert_metric(fresh, "", "count", "failed_passes", 2);
    /* 2 x PassInterval without a finished pass: a hung worker stops the value */
    g_autoptr(IcMetricSet) hung = ic_metric_set_new_status(&failing, 1021, 10);
    g_assert_null(ic_metric_set_lookup(hung, "", "timestamp", "last_pass"));
}

static void test_liveness_notifications(void)
{
    gboolean overdue = FALSE;
    IcPassStatus status = {0};
    /* the first pass may take up to 2 x PassInterval */
    g_assert_null(ic_notification_liveness(&overdue, &status, 1000, 1020, 10));
    g_autoptr(IcNotification) late = ic_notification_liveness(&overdue, &status, 1000, 1021, 10);
    g_assert_nonnull(late);
    g_assert_cmpint(late->severity, ==, IC_NOTIFY_FAILURE);
    g_assert_cmpstr(late->condition, ==, "pass_overdue");
    g_assert_null(ic_notification_liveness(&overdue, &status, 1000, 1500, 10)); /* once */
    status.last_pass = 1400;
    status.finished = 1495;
    g_autoptr(IcNotification) okay = ic_notification_liveness(&overdue, &status, 1000, 1500, 10);
    g_assert_cmpint(okay->severity, ==, IC_NOTIFY_OKAY);
    g_assert_null(ic_notification_liveness(&overdue, &status, 1000, 1501, 10));
}

static void test_pass_failed_notifications(void)
{
    g_autoptr(IcNotification) first = ic_notification_pass_failed(1, "base dir gone");
    g_assert_nonnull(first);
    g_assert_cmpint(first->severity, ==, IC_NOTIFY_FAILURE);
    g_assert_cmpstr(first->condition, ==, "pass_failed");
    g_assert_nonnull(strstr(first->message, "base dir gone"));
    g_assert_null(ic_notification_pass_failed(2, "base dir gone")); /* one per event */
    g_assert_null(ic_notification_pass_recovered(0));
    g_autoptr(IcNotification) okay = ic_notification_pass_recovered(2);
    g_assert_cmpint(okay->severity, ==, IC_NOTIFY_OKAY);
    g_assert_cmpstr(okay->condition, ==, "pass_failed");
}

/* ---- notifications: one report per step, the notifications it must raise ---- */

#define FILE_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define GOOD   "1111111111111111111111111111111111111111"
#define BAD    "2222222222222222222222222222222222222222"

typedef enum {
    ROW_NONE, /* the file is not in the report */
    ROW_CORRUPT,
    ROW_VERIFIED,
    ROW_UNREADABLE, /* checksum error: not verified */
    ROW_ABSENT_IN_USE,
    ROW_REMOVE_FAILED,
    ROW_REMOVED,
} RowState;

typedef struct {
    RowState row;
    const char *expect; /* "SEVERITY condition" or NULL for none */
    const char *message_has;
} Step;

typedef struct {
    const char *name;
    Step steps[6]; /* the unused tail is {ROW_NONE, NULL}: no file, nothing to say */
} AlertCase;

static const AlertCase alert_cases[] = {
    {"corrupt_once_then_repaired",
     {{ROW_CORRUPT, "FAILURE corrupt", "expected sha1 " GOOD ", actual " BAD},
      {ROW_CORRUPT, NULL, NULL},
      {ROW_UNREADABLE, NULL, NULL},
      {ROW_CORRUPT, NULL, NULL},
      {ROW_VERIFIED, "OKAY corrupt", "no longer corrupt"},
      {ROW_VERIFIED, NULL, NULL}}},
    {"corrupt_then_gone",
     {{ROW_VERIFIED, NULL, NULL},
      {ROW_CORRUPT, "FAILURE corrupt", FILE_A},
      {ROW_NONE, "OKAY corrupt", "gone"},
      {ROW_NONE, NULL, NULL}}},
    {"absent_in_use",
     {{ROW_ABSENT_IN_USE, "WARNING absent", "users: vm-1"},
      {ROW_ABSENT_IN_USE, NULL, NULL},
      {ROW_VERIFIED, "OKAY absent", "present again"},
      {ROW_ABSENT_IN_USE, "WARNING absent", "in use but absent"},
      {ROW_NONE, "OKAY absent", "no longer in use"}}},
    {"remove_failed",
     {{ROW_REMOVE_FAILED, "WARNING remove_failed", "Device or resource busy"},
      {ROW_REMOVE_FAILED, NULL, NULL},
      {ROW_REMOVED, "OKAY remove_failed", "removed now"},
      {ROW_NONE, NULL, NULL}}},
    {"nothing_to_say",
     {{ROW_VERIFIED, NULL, NULL}, {ROW_UNREADABLE, NULL, NULL}, {ROW_NONE, NULL, NULL}}},
};

static IcReport *report_with(RowState state)
{
    IcReport *report = ic_report_new("/x/_base", "testhost", 1700000000);
    if (state == ROW_NONE) {
        ic_report_finish(report);
        return report;
    }
    IcImageRow *row = ic_report_add_row(report, FILE_A);
    row->present = state != ROW_ABSENT_IN_USE;
    row->size = 100;
    switch (state) {
    case ROW_CORRUPT:
        row->checksum.state = IC_CHECKSUM_MISMATCH;
        row->checksum.expected = g_strdup(GOOD);
        row->checksum.actual = g_strdup(BAD);
        row->decision.verdict = IC_VERDICT_CORRUPT;
        break;
    case ROW_VERIFIED:
        row->checksum.state = IC_CHECKSUM_OK;
        break;
    case ROW_UNREADABLE:
        row->checksum.state = IC_CHECKSUM_ERROR;
        row->checksum.error = g_strdup("Input/output error");
        break;
    case ROW_ABSENT_IN_USE:
        row->local_users = 1;
        g_ptr_array_add(row->users, g_strdup("vm-1"));
        row->decision.verdict = IC_VERDICT_ABSENT;
        break;
    case ROW_REMOVE_FAILED:
        row->decision.verdict = IC_VERDICT_REMOVABLE;
        row->action = IC_ACTION_REMOVE_FAILED;
        row->error = g_strdup("Device or resource busy");
        break;
    case ROW_REMOVED:
        row->decision.verdict = IC_VERDICT_REMOVABLE;
        row->action = IC_ACTION_REMOVED;
        break;
    case ROW_NONE:
        break;
    }
    ic_report_finish(report);
    return report;
}

static void test_alerts(gconstpointer data)
{
    const AlertCase *c = data;
    g_autoptr(IcAlertState) state = ic_alert_state_new();
    for (guint i = 0; i < G_N_ELEMENTS(c->steps); i++) {
        const Step *step = &c->steps[i];
        g_autoptr(IcReport) report = report_with(step->row);
        g_autoptr(GPtrArray) notifications = ic_alert_state_update(state, report);
        if (step->expect == NULL) {
            g_assert_cmpuint(notifications->len, ==, 0);
            continue;
        }
        g_assert_cmpuint(notifications->len, ==, 1);
        const IcNotification *n = g_ptr_array_index(notifications, 0);
        g_autofree char *got =
            g_strdup_printf("%s %s", ic_notify_severity_to_string(n->severity), n->condition);
        g_assert_cmpstr(got, ==, step->expect);
        g_assert_cmpstr(n->file, ==, FILE_A);
        g_assert_nonnull(strstr(n->message, FILE_A));
        if (strstr(n->message, step->message_has) == NULL)
            g_error("step %u: '%s' lacks '%s'", i, n->message, step->message_has);
        g_assert_cmpuint(strlen(n->message), <, 256); /* collectd's NOTIF_MAX_MSG_LEN */
    }
}

/* Several files change at once: one notification each, in file order. */
static void test_alerts_several_files(void)
{
    g_autoptr(IcAlertState) state = ic_alert_state_new();
    g_autoptr(IcReport) first = ic_report_new("/x/_base", "h", 1);
    const char *names[] = {"hhhh", "cccc", "aaaa", "gggg", "bbbb", "eeee", "dddd", "ffff"};
    const char *sorted[] = {"aaaa", "bbbb", "cccc", "dddd", "eeee", "ffff", "gggg", "hhhh"};
    for (guint i = 0; i < G_N_ELEMENTS(names); i++) {
        IcImageRow *row = ic_report_add_row(first, names[i]);
        row->present = TRUE;
        row->checksum.state = IC_CHECKSUM_MISMATCH;
    }
    ic_report_finish(first);
    g_autoptr(GPtrArray) raised = ic_alert_state_update(state, first);
    g_assert_cmpuint(raised->len, ==, G_N_ELEMENTS(names));
    for (guint i = 0; i < raised->len; i++)
        g_assert_cmpstr(((IcNotification *)raised->pdata[i])->file, ==, sorted[i]);

    /* "bbbb" is still there, healed; the others are gone from the report: each
     * is cleared once, the gone ones in file order too. */
    g_autoptr(IcReport) second = ic_report_new("/x/_base", "h", 2);
    IcImageRow *healed = ic_report_add_row(second, "bbbb");
    healed->present = TRUE;
    healed->checksum.state = IC_CHECKSUM_OK;
    ic_report_finish(second);
    g_autoptr(GPtrArray) cleared = ic_alert_state_update(state, second);
    g_assert_cmpuint(cleared->len, ==, G_N_ELEMENTS(names));
    for (guint i = 0; i < cleared->len; i++)
        g_assert_cmpint(((IcNotification *)cleared->pdata[i])->severity, ==, IC_NOTIFY_OKAY);
    g_assert_cmpstr(((IcNotification *)cleared->pdata[0])->file, ==, "bbbb");
    g_assert_null(strstr(((IcNotification *)cleared->pdata[0])->message, "gone"));
    const char *gone[] = {"aaaa", "cccc", "dddd", "eeee", "ffff", "gggg", "hhhh"};
    for (guint i = 0; i < G_N_ELEMENTS(gone); i++) {
        const IcNotification *n = cleared->pdata[i + 1];
        g_assert_cmpstr(n->file, ==, gone[i]);
        g_assert_nonnull(strstr(n->message, "gone"));
    }

    g_autoptr(IcReport) empty = ic_report_new("/x/_base", "h", 3);
    ic_report_finish(empty);
    g_autoptr(GPtrArray) quiet = ic_alert_state_update(state, empty);
    g_assert_cmpuint(quiet->len, ==, 0);
}

/* ---- the <Plugin imagecache> options ---- */

static void test_option_keys(void)
{
    g_assert_cmpstr(ic_config_key_for_option("InstancesPath"), ==, "instances_path");
    g_assert_cmpstr(ic_config_key_for_option("removeunused"), ==, "remove_unused_base_images");
    g_assert_cmpstr(ic_config_key_for_option("OriginalMinimumAge"), ==,
                    "remove_unused_original_minimum_age_seconds");
    g_assert_cmpstr(ic_config_key_for_option("ResizedMinimumAge"), ==,
                    "remove_unused_resized_minimum_age_seconds");
    g_assert_cmpstr(ic_config_key_for_option("ChecksumInterval"), ==, "checksum_interval_seconds");
    g_assert_cmpstr(ic_config_key_for_option("LibvirtURI"), ==, "libvirt_uri");
    g_assert_null(ic_config_key_for_option("PassInterval"));
    g_assert_null(ic_config_key_for_option("NoSuchOption"));

    /* Every library key the table names is one the library knows. */
    const char *options[] = {
        "InstancesPath",      "BaseDirName",      "LedgerDir",          "Host",
        "LibvirtURI",         "RemoveUnused",     "OriginalMinimumAge", "ResizedMinimumAge",
        "ChecksumBaseImages", "ChecksumInterval", "LedgerStaleAge"};
    const char *values[] = {"/srv/i", "_b",   "/srv/l", "h1", "test:///default", "false", "7",
                            "8",      "true", "9",      "10"};
    g_autoptr(IcConfig) config = ic_config_new();
    for (guint i = 0; i < G_N_ELEMENTS(options); i++) {
        g_autoptr(GError) error = NULL;
        g_assert_true(
            ic_config_set(config, ic_config_key_for_option(options[i]), values[i], "t", &error));
        g_assert_no_error(error);
    }
}

static void test_options_defaults_and_errors(void)
{
    g_autoptr(IcPluginOptions) options = ic_plugin_options_new();
    g_autoptr(GError) error = NULL;
    g_assert_cmpint(options->pass_interval, ==, 2400);
    g_assert_cmpuint(options->checksum_rate_limit, ==, 50 * 1024 * 1024);

    g_assert_false(ic_plugin_options_set(options, "RemoveUnusd", "true", &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_CONFIG);
    g_assert_nonnull(strstr(error->message, "unknown option 'RemoveUnusd'"));
    g_clear_error(&error);

    /* 10^13 s: PassInterval * G_USEC_PER_SEC overflowed (issue 11 item 9) */
    const char *bad[][2] = {{"PassInterval", "0"},        {"PassInterval", "10000000000000"},
                            {"PassInterval", "604801"},   {"PassInterval", "10m"},
                            {"PassInterval", "-5"},       {"ChecksumRateLimit", "fast"},
                            {"ChecksumRateLimit", "1.5"}, {"Config", "relative.conf"}};
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_assert_false(ic_plugin_options_set(options, bad[i][0], bad[i][1], &error));
        g_assert_error(error, IC_ERROR, IC_ERROR_CONFIG);
        g_autofree char *named = g_strdup_printf("option '%s'", bad[i][0]);
        g_assert_nonnull(strstr(error->message, named));
        g_clear_error(&error);
    }
    g_assert_true(ic_plugin_options_set(options, "passinterval", "600", &error));
    g_assert_true(ic_plugin_options_set(options, "ChecksumRateLimit", "0", &error));
    g_assert_no_error(error);
    g_assert_cmpint(options->pass_interval, ==, 600);
    g_assert_cmpuint(options->checksum_rate_limit, ==, 0);

    /* No Config: nothing runs on a config the operator did not write. */
    g_autoptr(IcConfig) config = NULL;
    g_assert_false(ic_plugin_options_build_config(options, &config, &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_CONFIG);
    g_assert_nonnull(strstr(error->message, "'Config' is missing"));
    g_assert_null(config);
    g_clear_error(&error);

    g_assert_true(ic_plugin_options_set(options, "Config", "/nonexistent/imagecache.conf", NULL));
    g_assert_false(ic_plugin_options_build_config(options, &config, &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_NOT_FOUND);
    g_assert_nonnull(strstr(error->message, "/nonexistent/imagecache.conf"));
}

static void test_options_build(IcTestTree *tree, gconstpointer data)
{
    g_autofree char *text = g_strdup_printf("[imagecache]\ninstances_path=%s\nhost=filehost\n"
                                            "remove_unused_original_minimum_age_seconds=100\n",
                                            tree->root);
    g_autofree char *path = ic_test_write_file(tree->root, "imagecache.conf", text, -1);
    g_autoptr(IcPluginOptions) options = ic_plugin_options_new();
    g_autoptr(IcConfig) config = NULL;
    g_autoptr(GError) error = NULL;

    g_assert_true(ic_plugin_options_set(options, "Config", path, &error));
    g_assert_true(ic_plugin_options_set(options, "Host", "plughost", &error));
    g_assert_true(ic_plugin_options_set(options, "RemoveUnused", "false", &error));
    g_assert_true(ic_plugin_options_set(options, "ChecksumBaseImages", "true", &error));
    g_assert_true(ic_plugin_options_build_config(options, &config, &error));
    g_assert_no_error(error);
    g_assert_cmpstr(config->instances_path, ==, tree->root);
    g_assert_cmpstr(config->host, ==, "plughost"); /* the override wins over the file */
    g_assert_false(config->remove_unused_base_images);
    g_assert_true(config->checksum_base_images);
    g_assert_cmpint(config->remove_unused_original_minimum_age_seconds, ==, 100);
    g_autofree char *ledger = g_build_filename(tree->root, "_ledger", NULL);
    g_assert_cmpstr(config->ledger_dir, ==, ledger); /* finished: derived defaults filled */
    g_clear_pointer(&config, ic_config_free);

    /* A bad override names both the option and the library key. */
    g_assert_true(ic_plugin_options_set(options, "OriginalMinimumAge", "a day", &error));
    g_assert_false(ic_plugin_options_build_config(options, &config, &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_CONFIG);
    g_assert_nonnull(strstr(error->message, "option 'OriginalMinimumAge'"));
    g_assert_nonnull(strstr(error->message, "remove_unused_original_minimum_age_seconds"));
    g_assert_null(config);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

    g_test_add("/imagecache/metrics/values-from-pass", IcTestTree, NULL, ic_test_tree_setup,
               test_values_from_pass, ic_test_tree_teardown);
    for (guint i = 0; i < G_N_ELEMENTS(alert_cases); i++) {
        g_autofree char *path =
            g_strdup_printf("/imagecache/metrics/alerts/%s", alert_cases[i].name);
        g_test_add_data_func(path, &alert_cases[i], test_alerts);
    }
    g_test_add_func("/imagecache/metrics/alerts/several-files", test_alerts_several_files);
    g_test_add_func("/imagecache/metrics/alerts/pass-failed", test_pass_failed_notifications);
    g_test_add_func("/imagecache/metrics/alerts/liveness", test_liveness_notifications);
    g_test_add("/imagecache/metrics/cardinality", IcTestTree, NULL, ic_test_tree_setup,
               test_cardinality, ic_test_tree_teardown);
    g_test_add_func("/imagecache/metrics/status-values", test_status_values);
    g_test_add_func("/imagecache/metrics/options/per-image-values", test_per_image_option);
    g_test_add_func("/imagecache/metrics/options/keys", test_option_keys);
    g_test_add_func("/imagecache/metrics/options/defaults-and-errors",
                    test_options_defaults_and_errors);
    g_test_add("/imagecache/metrics/options/build", IcTestTree, NULL, ic_test_tree_setup,
               test_options_build, ic_test_tree_teardown);
    return g_test_run();
}
