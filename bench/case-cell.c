/* case-cell.c — case 7: a shared cache's ledger dir, read by every pass. A cell of
 * 1,000 hosts × 200 domains (local dir): what one pass reads and how long it takes,
 * naively (every host file, every pass) and through the change cache the collectd plugin
 * keeps (first pass, steady state with nothing changed, and with 1 % of hosts changed). */
#include "bench.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "error.h"
#include "fileutil.h"
#include "ledger-store.h"
#include "scan.h"

static void write_cell(const char *dir, guint hosts, guint domains, gint64 stamp)
{
    for (guint h = 0; h < hosts; h++) {
        g_autoptr(GError) error = NULL;
        g_autofree char *name = g_strdup_printf("compute-%04u", h);
        IcLedgerHost host = {.host = name, .refreshed = stamp};
        host.domains = g_ptr_array_new_with_free_func((GDestroyNotify)ic_ledger_domain_free);
        host.last_used = g_hash_table_new(g_str_hash, g_str_equal);
        for (guint d = 0; d < domains; d++) {
            g_autofree char *uuid = g_strdup_printf("%08x-0000-4000-8000-%012x", h, d);
            g_autofree char *dname = g_strdup_printf("instance-%08x", h * domains + d);
            IcLedgerDomain *domain = ic_ledger_domain_new(uuid, dname);
            g_autofree char *id = g_strdup_printf("image-%u", (h + d) % 500);
            g_ptr_array_add(domain->base_files, ic_fingerprint_of_image_id(id));
            g_ptr_array_add(domain->image_ids, g_strdup(id));
            domain->started = stamp;
            g_ptr_array_add(host.domains, domain);
        }
        gsize len = 0;
        g_autofree char *text = ic_ledger_host_serialize(&host, &len);
        g_autofree char *file = g_strconcat(name, ".ledger", NULL);
        ic_autofd dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (!ic_file_write_atomic_at(dirfd, file, text, len, 0644, &error))
            bench_die("writing %s: %s", file, error->message);
        g_ptr_array_unref(host.domains);
        g_hash_table_unref(host.last_used);
    }
}

static guint64 dir_bytes(const char *dir)
{
    guint64 total = 0;
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    const char *name;
    while (d != NULL && (name = g_dir_read_name(d)) != NULL) {
        g_autofree char *path = g_build_filename(dir, name, NULL);
        struct stat st;
        if (stat(path, &st) == 0)
            total += (guint64)st.st_size;
    }
    return total;
}

/* One read of the whole ledger dir; returns milliseconds, *ret_bytes what was read. */
static double one_read(IcLedgerCache *cache, const char *dir, guint64 *ret_bytes)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcLedger) ledger = NULL;
    double t0 = now_s();
    if (!ic_ledger_read_all_cached(cache, dir, 0, 0, &ledger, &error))
        bench_die("reading the cell: %s", error->message);
    g_autoptr(IcUsage) usage = ic_usage_new();
    ic_ledger_add_usage(ledger, "compute-0000", "/var/lib/nova/instances/_base", usage);
    double ms = 1000 * (now_s() - t0);
    if (ledger->errors->len > 0)
        bench_die("%s", (char *)ledger->errors->pdata[0]);
    if (cache != NULL) {
        guint files = 0;
        ic_ledger_cache_last_read(cache, &files, ret_bytes);
    } else {
        *ret_bytes = dir_bytes(dir);
    }
    return ms;
}

void case_cell(void)
{
    guint hosts = bench_opts.quick ? 20 : 1000;
    guint domains = bench_opts.quick ? 20 : 200;
    guint reps = bench_opts.quick ? 2 : 5;
    g_autofree char *dir = bench_dir("cell");
    write_cell(dir, hosts, domains, 1700000000);

    g_autoptr(Samples) naive = samples_new(), first = samples_new(), steady = samples_new(),
                       churn = samples_new();
    guint64 naive_bytes = 0, first_bytes = 0, steady_bytes = 0, churn_bytes = 0;
    for (guint r = 0; r < reps; r++) {
        samples_add(naive, one_read(NULL, dir, &naive_bytes));
        g_autoptr(IcLedgerCache) cache = ic_ledger_cache_new();
        samples_add(first, one_read(cache, dir, &first_bytes));
        samples_add(steady, one_read(cache, dir, &steady_bytes));
        /* 1 % of the hosts start or stop a domain between two passes. */
        g_autofree char *sub = bench_dir("cell-churn");
        write_cell(sub, MAX(hosts / 100, 1), domains, 1700000000 + r + 1);
        g_autoptr(GDir) d = g_dir_open(sub, 0, NULL);
        const char *name;
        while ((name = g_dir_read_name(d)) != NULL) {
            g_autofree char *from = g_build_filename(sub, name, NULL);
            g_autofree char *to = g_build_filename(dir, name, NULL);
            if (rename(from, to) != 0)
                bench_die("rename %s: %s", from, g_strerror(errno));
        }
        samples_add(churn, one_read(cache, dir, &churn_bytes));
    }

    const char *c = "7 cell";
    g_autofree char *size = g_strdup_printf("%u hosts x %u domains", hosts, domains);
    double mib = 1024.0 * 1024.0;
    table_add(c, size, "naive pass: read every ledger", UNIT_MS, naive, 0, "", "", "info");
    table_add(c, size, "naive pass: bytes read", UNIT_MIB, NULL, naive_bytes / mib, "", "", "info");
    table_add(c, size, "cached, first pass", UNIT_MS, first, 0, "", "", "info");
    table_add(c, size, "cached, first pass: bytes read", UNIT_MIB, NULL, first_bytes / mib, "", "",
              "info");
    g_autofree char *ratio =
        g_strdup_printf("%.0fx faster than naive", samples_median(naive) / samples_median(steady));
    table_add(c, size, "cached, steady (nothing changed)", UNIT_MS, steady, 0, ratio, "", "info");
    table_add(c, size, "cached, steady: bytes read", UNIT_MIB, NULL, steady_bytes / mib, "", "",
              "info");
    table_add(c, size, "cached, 1% of hosts changed", UNIT_MS, churn, 0, "", "", "info");
    table_add(c, size, "cached, 1% changed: bytes read", UNIT_MIB, NULL, churn_bytes / mib, "", "",
              "info");
    /* Every host's pass, every interval: the cell-wide figure grows with hosts². */
    table_add(c, size, "cell-wide per interval, naive", UNIT_MIB, NULL,
              (double)hosts * naive_bytes / mib, "", "", "info");
    table_add(c, size, "cell-wide per interval, cached (1% churn)", UNIT_MIB, NULL,
              (double)hosts * churn_bytes / mib, "", "", "info");
}
