/* case-pass.c — case 2: one pass without hashing over a large synthetic cache,
 * run in a child process (its wall time measured inside, its peak RSS from
 * wait4), at 1x and at a larger multiple to show how it scales. */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "pass.h"
#include "report.h"

/* Prints "<seconds> <rows> <active> <removable>" for the parent. */
int child_pass(const char *config_path)
{
    double t0 = now_s();
    g_autoptr(IcConfig) config = ic_config_new();
    g_autoptr(GError) error = NULL;
    if (!ic_config_load_file(config, config_path, &error) || !ic_config_finish(config, &error)) {
        fprintf(stderr, "%s\n", error->message);
        return 1;
    }
    IcPassOptions options = {
        .mode = IC_PASS_DRY_RUN, /* the pass reads every host's ledger itself */
    };
    g_autoptr(IcReport) report = NULL;
    if (!ic_pass_run(config, NULL, &options, g_get_real_time() / G_USEC_PER_SEC, &report, &error)) {
        fprintf(stderr, "%s\n", error->message);
        return 1;
    }
    double t = now_s() - t0;
    guint active = 0, removable = 0;
    for (guint i = 0; i < report->rows->len; i++) {
        const IcImageRow *row = g_ptr_array_index(report->rows, i);
        active += row->decision.verdict == IC_VERDICT_ACTIVE;
        removable += row->decision.verdict == IC_VERDICT_REMOVABLE;
    }
    printf("%.6f %u %u %u\n", t, report->rows->len, active, removable);
    return 0;
}

int child_noop(void)
{
    return 0;
}

static void measure(const BenchTree *tree, guint reps, Samples *wall, Samples *rss, guint *ret_rows)
{
    const char *argv[] = {bench_opts.self, "--child", "pass", tree->config, NULL};
    for (guint r = 0; r < reps; r++) {
        g_autofree char *out = NULL;
        struct rusage ru;
        run_child(argv, NULL, NULL, &out, &ru);
        double t = 0;
        guint rows = 0, active = 0, removable = 0;
        if (sscanf(out, "%lf %u %u %u", &t, &rows, &active, &removable) != 4)
            bench_die("the pass child printed '%s'", out);
        if (rows < tree->base_files || active == 0 || removable == 0)
            bench_die("the pass saw %u rows (%u active, %u removable) of %u base files", rows,
                      active, removable, tree->base_files);
        samples_add(wall, t);
        samples_add(rss, rusage_rss_mib(&ru));
        *ret_rows = rows;
    }
}

/* Its stamp file says a tree in --trees is complete. */
BenchTree *bench_get_tree(const char *label, guint base, guint disks, guint hosts, guint per_host,
                          char **ret_remove)
{
    g_autofree char *name =
        g_strdup_printf("pass-%s-%u-%u-%ux%u", label, base, disks, hosts, per_host);
    g_autofree char *dir =
        bench_opts.trees ? g_build_filename(bench_opts.trees, name, NULL) : bench_dir(name);
    g_autofree char *stamp = g_build_filename(dir, "complete", NULL);
    gboolean reuse = bench_opts.trees != NULL && g_file_test(stamp, G_FILE_TEST_EXISTS);
    if (bench_opts.trees != NULL && !reuse) {
        bench_rmtree(dir); /* a partial tree from an interrupted run */
        g_mkdir_with_parents(dir, 0755);
    }
    double t0 = now_s();
    BenchTree *tree = gen_tree(dir, base, disks, hosts, per_host, reuse);
    fprintf(stderr, "  (%s tree %s in %.1f s: %s)\n", label, reuse ? "reused" : "generated",
            now_s() - t0, dir);
    if (!reuse && bench_opts.trees != NULL && !g_file_set_contents(stamp, "", 0, NULL))
        bench_die("cannot write %s", stamp);
    *ret_remove = bench_opts.trees ? NULL : g_steal_pointer(&dir);
    return tree;
}

void case_pass(void)
{
    const guint base = bench_opts.quick ? 200 : 10000;
    const guint disks = 2 * base;
    const guint hosts = bench_opts.quick ? 4 : 200, per_host = 100;
    const guint reps = bench_opts.quick ? 2 : 7;
    const char *c = "2 pass, no hashing";

    /* The child's start-up RSS: what the process costs before any work. */
    {
        const char *argv[] = {bench_opts.self, "--child", "noop", NULL};
        struct rusage ru;
        run_child(argv, NULL, NULL, NULL, &ru);
        table_add(c, "-", "peak RSS of an idle child (baseline)", UNIT_MIB, NULL,
                  rusage_rss_mib(&ru), "", "", "info");
    }

    g_autoptr(Samples) wall1 = samples_new();
    g_autoptr(Samples) rss1 = samples_new();
    guint rows = 0;
    {
        g_autofree char *remove = NULL;
        g_autoptr(BenchTree) tree = bench_get_tree("1x", base, disks, hosts, per_host, &remove);
        measure(tree, reps, wall1, rss1, &rows);
        if (remove != NULL)
            bench_rmtree(remove);
    }
    g_autofree char *size1 =
        g_strdup_printf("%u base, %u disks, ledger %ux%u", base, disks, hosts, per_host);
    double w1 = samples_median(wall1);
    table_add(c, size1, "pass wall (in the child)", UNIT_S, wall1, 0, "", "<= 1 s",
              bench_opts.quick ? "smoke"
              : w1 <= 1.0      ? "met"
                               : "MISSED");
    table_add(c, size1, "pass peak RSS (child maxrss)", UNIT_MIB, rss1, 0, "", "<= 64 MiB",
              bench_opts.quick             ? "smoke"
              : samples_median(rss1) <= 64 ? "met"
                                           : "MISSED");

    guint k = bench_opts.scale_max;
    g_autoptr(Samples) wallk = samples_new();
    g_autoptr(Samples) rssk = samples_new();
    {
        g_autofree char *label = g_strdup_printf("%ux", k);
        g_autofree char *remove = NULL;
        g_autoptr(BenchTree) tree =
            bench_get_tree(label, base * k, disks * k, hosts * k, per_host, &remove);
        measure(tree, bench_opts.quick ? 1 : 3, wallk, rssk, &rows);
        if (remove != NULL)
            bench_rmtree(remove);
    }
    g_autofree char *sizek = g_strdup_printf("%ux: %u base, %u disks, ledger %ux%u", k, base * k,
                                             disks * k, hosts * k, per_host);
    double scaling = samples_median(wallk) / w1;
    g_autofree char *ratio = g_strdup_printf("%.2fx the 1x time", scaling);
    g_autofree char *target = g_strdup_printf("<= %.1fx", 1.1 * k);
    table_add(c, sizek, "pass wall (in the child)", UNIT_S, wallk, 0, ratio, target,
              bench_opts.quick     ? "smoke"
              : scaling <= 1.1 * k ? "met"
                                   : "MISSED");
    table_add(c, sizek, "pass peak RSS (child maxrss)", UNIT_MIB, rssk, 0, "", "", "info");
}
