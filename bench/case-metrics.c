/* case-metrics.c — case 5: the collectd read callback at 10,000 images. Until the
 * plugin can be driven here, this measures what its read callback does: take a
 * reference to the latest metric set (common/metrics.h) and copy every value into
 * a collectd value_list_t-shaped record handed to a dispatch stub; plus, for
 * information, the worker's cost of building the set from a report. */
#include "bench.h"

#include <stdio.h>
#include <string.h>

#ifdef BENCH_HAVE_METRICS
#include "metrics.h"
#include "report.h"

/* The layout of collectd 5's value_list_t (DATA_MAX_NAME_LEN 128). */
#define NAME_LEN 128
typedef struct {
    double value; /* value_t, one data source */
    guint64 time, interval;
    char host[NAME_LEN], plugin[NAME_LEN], plugin_instance[NAME_LEN], type[NAME_LEN],
        type_instance[NAME_LEN];
} ValueList;

static ValueList sink;
static guint64 dispatched;

/* What plugin_dispatch_values costs the caller at the least: the record is copied. */
__attribute__((noinline)) static void dispatch_stub(const ValueList *vl)
{
    memcpy(&sink, vl, sizeof(sink));
    dispatched++;
}

static GMutex latest_lock;
static IcMetricSet *latest;

/* The read callback: dispatch the latest set, as collectd-plugin/imagecache.c's does. */
static void read_callback(void)
{
    g_mutex_lock(&latest_lock);
    IcMetricSet *set = latest ? ic_metric_set_ref(latest) : NULL;
    g_mutex_unlock(&latest_lock);
    if (set == NULL)
        return;
    ValueList vl = {.interval = 10};
    g_strlcpy(vl.host, "bench-host", sizeof(vl.host));
    g_strlcpy(vl.plugin, "imagecache", sizeof(vl.plugin));
    vl.time = (guint64)set->pass_time;
    for (guint i = 0; i < set->metrics->len; i++) {
        const IcMetric *m = &g_array_index(set->metrics, IcMetric, i);
        g_strlcpy(vl.plugin_instance, m->plugin_instance, sizeof(vl.plugin_instance));
        g_strlcpy(vl.type, m->type, sizeof(vl.type));
        g_strlcpy(vl.type_instance, m->type_instance, sizeof(vl.type_instance));
        vl.value = m->value;
        dispatch_stub(&vl);
    }
    ic_metric_set_unref(set);
}

static IcReport *make_report(guint images)
{
    gint64 now = g_get_real_time() / G_USEC_PER_SEC;
    IcReport *report = ic_report_new("/var/lib/nova/instances/_base", "bench-host", now);
    for (guint i = 0; i < images; i++) {
        g_autofree char *id = gen_image_id(i);
        g_autofree char *fp = ic_fingerprint_of_image_id(id);
        IcImageRow *row = ic_report_add_row(report, fp);
        row->kind = IC_KIND_ORIGINAL;
        row->fingerprint = g_strdup(fp);
        row->present = TRUE;
        row->size = 1LL << 30;
        row->mtime = now - 86400;
        row->local_users = i % 5 != 0;
        row->decision.verdict = i % 5 ? IC_VERDICT_ACTIVE : IC_VERDICT_REMOVABLE;
        row->decision.age = 86400;
    }
    ic_report_finish(report);
    return report;
}

/* The real plugin in bench-collectd-host, over a tree of @images base files with
 * users from the ledger. FALSE when the plugin or the host is not built. */
static gboolean drive_plugin(guint images)
{
    if (!g_file_test(bench_opts.collectd_host, G_FILE_TEST_IS_EXECUTABLE) ||
        !g_file_test(bench_opts.plugin, G_FILE_TEST_EXISTS))
        return FALSE;
    g_autofree char *dir = bench_dir("collectd");
    g_autoptr(BenchTree) tree = gen_tree(dir, images, 0, 100, 100, FALSE);
    guint reads = bench_opts.quick ? 5 : 100;
    g_autofree char *reads_text = g_strdup_printf("%u", reads);
    const char *argv[] = {bench_opts.collectd_host,
                          bench_opts.plugin,
                          tree->config,
                          reads_text,
                          "PerImageValues",
                          "all",
                          NULL};
    g_autofree char *out = NULL;
    run_child(argv, NULL, NULL, &out, NULL);
    g_auto(GStrv) lines = g_strsplit(out, "\n", -1);
    g_autoptr(Samples) ms = samples_new();
    g_autoptr(Samples) values = samples_new();
    for (char **l = lines; *l != NULL; l++) {
        unsigned long n;
        double t;
        if (sscanf(*l, "%lu %lf", &n, &t) == 2 && n > 0) {
            samples_add(values, (double)n);
            samples_add(ms, t);
        }
    }
    g_autofree char *size = g_strdup_printf("%u images", images);
    g_autofree char *what =
        g_strdup_printf("imagecache.so read callback, %.0f values a read", samples_median(values));
    double med = samples_median(ms);
    g_autofree char *ratio =
        g_strdup_printf("%.2f us per value", 1000 * med / samples_median(values));
    table_add("5 collectd read", size, what, UNIT_MS, ms, 0, ratio, "<= 1 ms",
              bench_opts.quick ? "smoke"
              : med <= 1.0     ? "met"
                               : "MISSED");
    bench_rmtree(dir);
    return TRUE;
}

/* The plugin's memory (issue 15): bench-collectd-host --passes over case 2's 1x tree
 * (10,000 base files, 20,000 disks, 200 ledger hosts x 100 domains; --trees reuses it),
 * with removal off and libvirt's test driver with no domains, so the tree is left as
 * it was (the pass only refreshes the mtime of the files in use). Run with collectd's
 * usual environment and with G_SLICE=always-malloc (GLib 2.74 keeps freed slices). */
static void plugin_memory_run(const BenchTree *tree, const char *config, const char *slice)
{
    const char *passes = bench_opts.quick ? "2" : "4", *interval = bench_opts.quick ? "2" : "10";
    const char *argv[] = {bench_opts.collectd_host, bench_opts.plugin, config, "--passes", passes,
                          "PassInterval",           interval,          NULL};
    const char *env[] = {slice, NULL};
    g_autofree char *out = NULL;
    run_child(argv, slice ? env : NULL, NULL, &out, NULL);
    g_auto(GStrv) lines = g_strsplit(out, "\n", -1);
    g_autoptr(Samples) peak = samples_new(), held = samples_new(), rss = samples_new(),
                       took = samples_new();
    long start_rss = -1, start_anon = -1, second_anon = -1, last_anon = -1;
    int passes_seen = 0;
    unsigned long values = 0, value_bytes = 0;
    double first_peak = 0;
    for (char **l = lines; *l != NULL; l++) {
        int i;
        double t;
        long p, r, a;
        if (sscanf(*l, "start %ld %ld", &r, &a) == 2) {
            start_rss = r;
            start_anon = a;
        } else if (sscanf(*l, "pass %d %lf %ld %ld %ld %lu %lu", &i, &t, &p, &r, &a, &values,
                          &value_bytes) == 7) {
            /* The reading after a pass must come before the next one starts. */
            if (t + 1.0 >= g_ascii_strtod(interval, NULL))
                bench_die("a plugin pass took %.1f s, too close to PassInterval %s s", t, interval);
            /* The first pass's peak includes the plugin's start (libvirt's
             * driver, GLib's types, the libraries' first use): shown apart. */
            if (i == 1)
                first_peak = p / 1024.0;
            else
                samples_add(peak, p / 1024.0);
            if (i == 2)
                second_anon = a;
            last_anon = a;
            passes_seen = i;
            samples_add(took, t);
            samples_add(rss, r / 1024.0);
            samples_add(held, (a - start_anon) / 1024.0);
        }
    }
    if (start_rss < 0 || took->v->len == 0)
        bench_die("bench-collectd-host --passes printed '%s'", out);

    const char *c = "5 collectd read";
    g_autofree char *size =
        g_strdup_printf("1x: %u base, %u disks, ledger %ux100%s", tree->base_files, tree->disks,
                        tree->hosts, slice ? ", G_SLICE=always-malloc" : "");
    const char *quick = bench_opts.quick ? "smoke" : NULL;
    if (slice == NULL) {
        table_add(c, size, "plugin pass (worker, removal off)", UNIT_S, took, 0, "", "", "info");
        table_add(c, size, "plugin process RSS before its first pass", UNIT_MIB, NULL,
                  start_rss / 1024.0, "", "", "info");
    }
    g_autofree char *first =
        g_strdup_printf("%.1f MiB in the first pass (start-up included)", first_peak);
    double peak_med = samples_median(peak);
    table_add(c, size, "plugin process peak RSS during a pass", UNIT_MIB, peak, 0, first,
              "<= 48 MiB",
              quick            ? quick
              : peak_med <= 48 ? "met"
                               : "MISSED");
    table_add(c, size, "plugin process RSS between passes", UNIT_MIB, rss, 0, "", "", "info");
    /* Between passes the plugin should hold its values and nothing else: the
     * anonymous memory over the start (the libraries' first use included)
     * beside the values' size, and whether it grows from pass to pass. */
    double values_mib = value_bytes / (1024.0 * 1024.0);
    g_autofree char *ratio = g_strdup_printf("values sent: %lu, %.3f MiB", values, values_mib);
    table_add(c, size, "plugin anon memory between passes, over the start", UNIT_MIB, held, 0,
              ratio, "", "info");
    /* Per pass: RSS creeps by a few tens of KiB a pass (allocator and thread-stack
     * reuse; valgrind finds the same heap in use at exit after 2 passes as after 6). */
    double growth = second_anon >= 0 && passes_seen > 2
                        ? (last_anon - second_anon) / 1024.0 / (passes_seen - 2)
                        : 0;
    table_add(c, size, "plugin anon memory growth a pass, from pass 2 on", UNIT_MIB, NULL, growth,
              "", "<= 0.06 MiB (64 KiB)",
              quick              ? quick
              : growth <= 0.0625 ? "met"
                                 : "MISSED");
}

/* FALSE when the plugin or the host is not built. */
static gboolean plugin_memory(void)
{
    if (!g_file_test(bench_opts.collectd_host, G_FILE_TEST_IS_EXECUTABLE) ||
        !g_file_test(bench_opts.plugin, G_FILE_TEST_EXISTS))
        return FALSE;
    const guint base = bench_opts.quick ? 200 : 10000, hosts = bench_opts.quick ? 4 : 200;
    g_autofree char *remove = NULL;
    g_autoptr(BenchTree) tree = bench_get_tree("1x", base, 2 * base, hosts, 100, &remove);
    g_autofree char *dir = bench_dir("collectd-memory");
    g_autofree char *node = g_build_filename(dir, "libvirt-node.xml", NULL);
    g_autofree char *config = g_build_filename(dir, "imagecache.conf", NULL);
    g_autofree char *text = g_strdup_printf(
        "[imagecache]\ninstances_path=%s\nledger_dir=%s\nhost=host0000\n"
        "checksum_base_images=false\nremove_unused_base_images=false\nlibvirt_uri=test://%s\n",
        tree->instances, tree->ledger_dir, node);
    if (!g_file_set_contents(node, "<node>\n</node>\n", -1, NULL) ||
        !g_file_set_contents(config, text, -1, NULL))
        bench_die("cannot write %s", config);
    /* The tree's pages in the cache, as case 6 does: a cold first pass can
     * outlast the PassInterval that leaves time for the readings. */
    if (bench_opts.floor != NULL && g_file_test(bench_opts.floor, G_FILE_TEST_IS_EXECUTABLE)) {
        const char *floor_argv[] = {bench_opts.floor, tree->instances, "_base", NULL};
        run_child(floor_argv, NULL, NULL, NULL, NULL);
    }
    plugin_memory_run(tree, config, NULL);
    if (!bench_opts.quick) /* CI: the plugin's passes run once */
        plugin_memory_run(tree, config, "G_SLICE=always-malloc");
    if (remove != NULL)
        bench_rmtree(remove);
    return TRUE;
}

void case_metrics(void)
{
    const char *c = "5 collectd read";
    const guint images = bench_opts.quick ? 1000 : 10000;
    const guint reps = bench_opts.quick ? 20 : 200;
    g_autofree char *size = g_strdup_printf("%u images", images);
    if (!drive_plugin(images))
        table_add(c, "-", "imagecache.so read callback", UNIT_MS, NULL, 0,
                  "plugin not built: metrics.h path below", "<= 1 ms", "n/a");
    else
        plugin_memory();
    g_autoptr(IcReport) report = make_report(images);
    IcLedgerCounts counts = {.known = TRUE, .hosts = 200, .stale_hosts = 0};

    g_autoptr(Samples) build = samples_new();
    for (guint r = 0; r < MAX(reps / 10, 3u); r++) {
        double t0 = now_s();
        IcMetricSet *set = ic_metric_set_new_from_report(report, &counts, IC_PER_IMAGE_ALL);
        samples_add(build, 1000 * (now_s() - t0));
        g_mutex_lock(&latest_lock);
        if (latest != NULL)
            ic_metric_set_unref(latest);
        latest = set;
        g_mutex_unlock(&latest_lock);
    }

    g_autoptr(Samples) read = samples_new();
    read_callback(); /* warm */
    for (guint r = 0; r < reps; r++) {
        double t0 = now_s();
        read_callback();
        samples_add(read, 1000 * (now_s() - t0));
    }
    guint values = latest->metrics->len;
    g_clear_pointer(&latest, ic_metric_set_unref);

    g_autofree char *what =
        g_strdup_printf("same %u values from metrics.h, no plugin (floor)", values);
    table_add(c, size, what, UNIT_MS, read, 0, "", "", "info");
    table_add(c, size, "worker: build the metric set from a report", UNIT_MS, build, 0, "", "",
              "info");
}
#else
void case_metrics(void)
{
    table_add("5 collectd read", "10000 images", "read callback", UNIT_MS, NULL, 0,
              "common/metrics.c not in this tree", "<= 1 ms", "n/a");
}
#endif
