/* case-report.c — case 6 (issue 15): `imagecachectl report --json` against the system-call
 * floor (bench/floor.c) over the same tree, run interleaved (floor, report, floor, report …)
 * so that machine noise hits both alike; at 1x and at --scale. Wall time and peak RSS of
 * each whole process. */
#include "bench.h"

#include <stdio.h>

typedef struct {
    Samples *floor_wall;
    Samples *report_wall;
    Samples *report_rss;
} ReportRun;

static void measure(const BenchTree *tree, guint reps, ReportRun *run)
{
    const char *floor_argv[] = {bench_opts.floor, tree->instances, "_base", NULL};
    const char *report_argv[] = {bench_opts.ctl, "--config", tree->config,
                                 "report",       "--json",   NULL};
    /* One unmeasured run of each: the page cache is warm for both from here on. */
    run_child(floor_argv, NULL, NULL, NULL, NULL);
    run_child(report_argv, NULL, NULL, NULL, NULL);
    for (guint r = 0; r < reps; r++) {
        g_autofree char *out = NULL;
        samples_add(run->floor_wall, run_child(floor_argv, NULL, NULL, &out, NULL));
        long base = 0, dirs = 0, disks = 0;
        if (sscanf(out, "%ld %ld %ld", &base, &dirs, &disks) != 3 || base < tree->base_files ||
            disks < tree->disks)
            bench_die("the floor walked a different tree: '%s'", out);
        struct rusage ru;
        samples_add(run->report_wall, run_child(report_argv, NULL, NULL, NULL, &ru));
        samples_add(run->report_rss, rusage_rss_mib(&ru));
    }
}

static double report_at(const char *label, guint scale, double rss_target, ReportRun *run)
{
    const guint base = (bench_opts.quick ? 200 : 10000) * scale;
    const guint hosts = (bench_opts.quick ? 4 : 200) * scale, per_host = 100;
    const guint reps = bench_opts.quick ? 2 : (scale > 1 ? 3 : 7);
    const char *c = "6 report vs floor";

    g_autofree char *remove = NULL;
    g_autoptr(BenchTree) tree = bench_get_tree(label, base, 2 * base, hosts, per_host, &remove);
    measure(tree, reps, run);
    if (remove != NULL)
        bench_rmtree(remove);

    g_autofree char *size = g_strdup_printf("%s: %u base, %u disks, ledger %ux%u", label, base,
                                            2 * base, hosts, per_host);
    double floor = samples_median(run->floor_wall);
    double wall = samples_median(run->report_wall);
    g_autofree char *ratio = g_strdup_printf("%.2fx the floor", wall / floor);
    table_add(c, size, "syscall floor (bench-floor, whole process)", UNIT_S, run->floor_wall, 0, "",
              "", "info");
    table_add(c, size, "imagecachectl report --json, whole process", UNIT_S, run->report_wall, 0,
              ratio, "<= 1.5x floor",
              bench_opts.quick      ? "smoke"
              : wall <= 1.5 * floor ? "met"
                                    : "MISSED");
    g_autofree char *rss_text = g_strdup_printf("<= %.0f MiB", rss_target);
    table_add(c, size, "imagecachectl report --json, peak RSS", UNIT_MIB, run->report_rss, 0, "",
              rss_text,
              bench_opts.quick                                ? "smoke"
              : samples_median(run->report_rss) <= rss_target ? "met"
                                                              : "MISSED");
    return wall;
}

/* imagecachectl's start-up for commands that do not ask libvirt (--version,
 * check-config) against an empty GLib program, interleaved: wall and peak RSS. */
static void startup(void)
{
    const char *c = "6 report vs floor";
    const guint reps = bench_opts.quick ? 3 : 21;
    if (!g_file_test("/usr/bin/time", G_FILE_TEST_IS_EXECUTABLE)) {
        table_add(c, "start-up", "/usr/bin/time not installed", UNIT_COUNT, NULL, 0, "", "", "n/a");
        return;
    }
    g_autofree char *dir = bench_dir("startup");
    g_autofree char *config = gen_config(dir, dir, dir, "startup");
    /* Through time(1), which reads the peak RSS of a child it forked: a child of
     * this process would count this process's ~6 MiB (posix_spawn's child
     * shares our memory until its exec, and the peak survives the exec). The
     * same time(1) start is in every row. */
    const char *time_prog = "/usr/bin/time";
    g_autofree char *rss_file = g_build_filename(dir, "maxrss", NULL);
    const char *empty_argv[] = {time_prog, "-f", "%M", "-o", rss_file, bench_opts.empty_glib, NULL};
    const char *version_argv[] = {time_prog, "-f",           "%M",        "-o",
                                  rss_file,  bench_opts.ctl, "--version", NULL};
    const char *check_argv[] = {time_prog,      "-f",           "%M",       "-o",   rss_file,
                                bench_opts.ctl, "check-config", "--config", config, NULL};
    const char *const *argvs[] = {empty_argv, version_argv, check_argv};
    const char *labels[] = {"empty GLib program start (floor)", "imagecachectl --version",
                            "imagecachectl check-config"};
    Samples *wall[3], *rss[3];
    for (guint k = 0; k < 3; k++) {
        wall[k] = samples_new();
        rss[k] = samples_new();
    }
    for (guint r = 0; r < reps; r++) {
        for (guint k = 0; k < 3; k++) {
            samples_add(wall[k], 1000 * run_child(argvs[k], NULL, NULL, NULL, NULL));
            g_autofree char *kib = NULL;
            if (!g_file_get_contents(rss_file, &kib, NULL, NULL))
                bench_die("time(1) wrote no '%s'", rss_file);
            samples_add(rss[k], g_ascii_strtod(kib, NULL) / 1024);
        }
    }
    double floor_ms = samples_median(wall[0]), floor_rss = samples_median(rss[0]);
    for (guint k = 0; k < 3; k++) {
        g_autofree char *ratio = k == 0 ? g_strdup("")
                                        : g_strdup_printf("+%.2f ms, +%.1f MiB over the floor",
                                                          samples_median(wall[k]) - floor_ms,
                                                          samples_median(rss[k]) - floor_rss);
        /* No libvirt: within 2 ms and 8 MiB of an empty GLib program (libvirt
         * and its libraries alone were 12 MiB). */
        gboolean met_wall = samples_median(wall[k]) <= floor_ms + 2;
        gboolean met_rss = samples_median(rss[k]) <= floor_rss + 8;
        table_add(c, "start-up, no libvirt needed", labels[k], UNIT_MS, wall[k], 0, ratio,
                  k == 0 ? "" : "<= floor + 2 ms",
                  k == 0             ? "info"
                  : bench_opts.quick ? "smoke"
                  : met_wall         ? "met"
                                     : "MISSED");
        g_autofree char *rss_label = g_strdup_printf("%s, peak RSS", labels[k]);
        table_add(c, "start-up, no libvirt needed", rss_label, UNIT_MIB, rss[k], 0, "",
                  k == 0 ? "" : "<= floor + 8 MiB",
                  k == 0             ? "info"
                  : bench_opts.quick ? "smoke"
                  : met_rss          ? "met"
                                     : "MISSED");
    }
    for (guint k = 0; k < 3; k++) {
        samples_free(wall[k]);
        samples_free(rss[k]);
    }
}

void case_report(void)
{
    if (bench_opts.ctl == NULL || bench_opts.floor == NULL) {
        table_add("6 report vs floor", "-", "imagecachectl or bench-floor not built", UNIT_COUNT,
                  NULL, 0, "", "", "n/a");
        return;
    }
    startup();
    ReportRun one = {samples_new(), samples_new(), samples_new()};
    double wall1 = report_at("1x", 1, 48, &one);

    guint k = bench_opts.scale_max;
    g_autofree char *label = g_strdup_printf("%ux", k);
    ReportRun many = {samples_new(), samples_new(), samples_new()};
    double wallk = report_at(label, k, 200, &many);
    g_autofree char *target = g_strdup_printf("<= %.2fx", 1.05 * k);
    table_add("6 report vs floor", label, "report time growth with the tree", UNIT_TIMES, NULL,
              wallk / wall1, "vs the 1x time", target,
              bench_opts.quick            ? "smoke"
              : wallk / wall1 <= 1.05 * k ? "met"
                                          : "MISSED");
    /* The target above is absolute; the floor itself grows faster than the tree
     * (page cache, dentries, a 10x tree's inodes): say by how much, and whether
     * the report grows faster than the floor does. */
    double floor_growth = samples_median(many.floor_wall) / samples_median(one.floor_wall);
    table_add("6 report vs floor", label, "syscall floor time growth with the tree", UNIT_TIMES,
              NULL, floor_growth, "vs the 1x floor", "", "info");
    g_autofree char *relative =
        g_strdup_printf("report %.2fx / floor %.2fx", wallk / wall1, floor_growth);
    table_add("6 report vs floor", label, "report growth over the floor's growth", UNIT_TIMES, NULL,
              (wallk / wall1) / floor_growth, relative, "", "info");
    ReportRun *runs[] = {&one, &many};
    for (guint i = 0; i < G_N_ELEMENTS(runs); i++) {
        samples_free(runs[i]->floor_wall);
        samples_free(runs[i]->report_wall);
        samples_free(runs[i]->report_rss);
    }
}
