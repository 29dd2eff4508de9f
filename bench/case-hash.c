/* case-hash.c — case 3: ic_checksum_file against `openssl dgst -sha1` on the same
 * page-cached file, its peak RSS at two file sizes, the accuracy of the rate
 * limit, and what hashing does to the page cache. */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "checksum.h"
#include "config.h"
#include "pass.h"
#include "report.h"

#define MIB (1024.0 * 1024.0)

static void write_data_file(const char *path, guint64 size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        bench_die("creating %s: %s", path, g_strerror(errno));
    const gsize chunk = 1 << 20;
    g_autofree guint32 *buf = g_malloc(chunk);
    GRand *rand = g_rand_new_with_seed(7);
    for (gsize i = 0; i < chunk / 4; i++)
        buf[i] = g_rand_int(rand);
    g_rand_free(rand);
    for (guint64 off = 0; off < size; off += chunk) {
        buf[0] = (guint32)(off >> 20); /* no two MiB alike */
        if (pwrite(fd, buf, chunk, (off_t)off) != (ssize_t)chunk)
            bench_die("writing %s: %s", path, g_strerror(errno));
    }
    if (fsync(fd) < 0)
        bench_die("fsync %s: %s", path, g_strerror(errno));
    close(fd);
}

static void write_sparse_file(const char *path, guint64 size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
        bench_die("creating %s: %s", path, g_strerror(errno));
    close(fd);
}

/* Reads the file through, so it is in the page cache. */
static void warm(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        bench_die("opening %s: %s", path, g_strerror(errno));
    g_autofree char *buf = g_malloc(1 << 20);
    while (read(fd, buf, 1 << 20) > 0)
        ;
    close(fd);
}

static void evict(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        bench_die("opening %s: %s", path, g_strerror(errno));
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
}

/* MiB of the file in the page cache (mincore, as fincore(1) does). */
static double resident_mib(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        bench_die("opening %s: %s", path, g_strerror(errno));
    off_t size = lseek(fd, 0, SEEK_END);
    long page = sysconf(_SC_PAGESIZE);
    void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        bench_die("mmap %s: %s", path, g_strerror(errno));
    gsize pages = ((gsize)size + (gsize)page - 1) / (gsize)page;
    g_autofree unsigned char *vec = g_malloc(pages);
    if (mincore(map, (size_t)size, vec) < 0)
        bench_die("mincore %s: %s", path, g_strerror(errno));
    munmap(map, (size_t)size);
    gsize resident = 0;
    for (gsize i = 0; i < pages; i++)
        resident += vec[i] & 1;
    return (double)resident * (double)page / MIB;
}

/* "Cached:" of /proc/meminfo, in MiB. */
static double meminfo_cached_mib(void)
{
    g_autofree char *text = NULL;
    if (!g_file_get_contents("/proc/meminfo", &text, NULL, NULL))
        return 0;
    const char *p = strstr(text, "\nCached:");
    return p != NULL ? g_ascii_strtod(p + 8, NULL) / 1024.0 : 0;
}

static char *hash(const char *dir, const char *name, guint64 rate, double *ret_seconds)
{
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        bench_die("opening %s: %s", dir, g_strerror(errno));
    char *hex = NULL;
    g_autoptr(GError) error = NULL;
    double t0 = now_s();
    if (!ic_checksum_file(dirfd, name, rate, NULL, &hex, &error))
        bench_die("hashing: %s", error->message);
    *ret_seconds = now_s() - t0;
    close(dirfd);
    return hex;
}

int child_hash(const char *path)
{
    g_autofree char *dir = g_path_get_dirname(path);
    g_autofree char *name = g_path_get_basename(path);
    double t;
    g_autofree char *hex = hash(dir, name, 0, &t);
    printf("%s\n", hex);
    return 0;
}

static const char *status_of(gboolean ok)
{
    return bench_opts.quick ? "smoke" : ok ? "met" : "MISSED";
}

/* Seconds to verify @n files of @dir at once with up to @threads threads. */
static double verify_many_seconds(const char *dir, char **names, guint n, guint threads)
{
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        bench_die("opening %s: %s", dir, g_strerror(errno));
    g_autofree IcChecksumJob *jobs = g_new0(IcChecksumJob, n);
    for (guint i = 0; i < n; i++)
        jobs[i] = (IcChecksumJob){.dirfd = dirfd, .name = names[i]};
    IcChecksumOptions options = {.write_missing = FALSE};
    g_autoptr(GError) error = NULL;
    gint64 start = g_get_monotonic_time();
    if (!ic_checksum_verify_many(jobs, n, &options, 0, threads, &error))
        bench_die("verifying: %s", error->message);
    double t = (double)(g_get_monotonic_time() - start) / G_USEC_PER_SEC;
    for (guint i = 0; i < n; i++) {
        if (jobs[i].result.state != IC_CHECKSUM_NO_SIDECAR)
            bench_die("verifying %s: %s", names[i],
                      ic_checksum_state_to_string(jobs[i].result.state));
        ic_checksum_result_clear(&jobs[i].result);
    }
    close(dirfd);
    return t;
}

/* Seconds of one pass (report mode: no sidecar written) over @config's base dir,
 * whose @n files all get hashed: the pass's checksum step (issue 15). */
static double pass_seconds(const char *config_path, guint n)
{
    g_autoptr(IcConfig) config = ic_config_new();
    g_autoptr(GError) error = NULL;
    if (!ic_config_load_file(config, config_path, &error) || !ic_config_finish(config, &error))
        bench_die("%s", error->message);
    IcPassOptions options = {.mode = IC_PASS_REPORT};
    g_autoptr(IcReport) report = NULL;
    gint64 start = g_get_monotonic_time();
    if (!ic_pass_run(config, NULL, &options, g_get_real_time() / G_USEC_PER_SEC, &report, &error))
        bench_die("the pass: %s", error->message);
    double t = (double)(g_get_monotonic_time() - start) / G_USEC_PER_SEC;
    guint hashed = 0;
    for (guint i = 0; i < report->rows->len; i++) {
        const IcImageRow *row = g_ptr_array_index(report->rows, i);
        hashed += row->checksum.state == IC_CHECKSUM_NO_SIDECAR && row->checksum.actual != NULL;
    }
    if (hashed != n)
        bench_die("the pass hashed %u of %u files", hashed, n);
    return t;
}

/* A base dir of @n hard links to @file, named as base files, and its config. */
static char *pass_tree(const char *dir, const char *file, guint n)
{
    g_autofree char *instances = g_build_filename(dir, "pass-instances", NULL);
    g_autofree char *base = g_build_filename(instances, "_base", NULL);
    if (g_mkdir_with_parents(base, 0755) < 0)
        bench_die("mkdir %s: %s", base, g_strerror(errno));
    for (guint i = 0; i < n; i++) {
        g_autofree char *id = g_strdup_printf("bench-pass-%u", i);
        g_autofree char *name = g_compute_checksum_for_string(G_CHECKSUM_SHA1, id, -1);
        g_autofree char *alias = g_build_filename(base, name, NULL);
        unlink(alias);
        if (link(file, alias) < 0)
            bench_die("linking %s: %s", alias, g_strerror(errno));
    }
    g_autofree char *text = g_strdup_printf(
        "[imagecache]\ninstances_path=%s\nhost=bench\nchecksum_base_images=true\n", instances);
    char *config = g_build_filename(dir, "pass.conf", NULL);
    if (!g_file_set_contents(config, text, -1, NULL))
        bench_die("cannot write %s", config);
    return config;
}

/* `verify` of 8 files: one after another, then one thread per core, interleaved.
 * The 8 files are hard links to the one page-cached data file: hashing is then
 * CPU-bound, which is what the threads share out (this disk is not measured). */
static void hash_many(const char *dir, const char *file, const char *size_text)
{
    const guint n = 8, reps = bench_opts.quick ? 1 : 3;
    char *names[8];
    for (guint i = 0; i < n; i++) {
        names[i] = g_strdup_printf("many.%u", i);
        g_autofree char *alias = g_build_filename(dir, names[i], NULL);
        unlink(alias);
        if (link(file, alias) < 0)
            bench_die("linking %s: %s", alias, g_strerror(errno));
    }
    g_autofree char *config = pass_tree(dir, file, n);
    g_autoptr(Samples) serial = samples_new();
    g_autoptr(Samples) parallel = samples_new();
    g_autoptr(Samples) pass = samples_new();
    for (guint r = 0; r < reps; r++) {
        warm(file);
        samples_add(serial, verify_many_seconds(dir, names, n, 1));
        warm(file);
        samples_add(parallel, verify_many_seconds(dir, names, n, 0));
        warm(file);
        samples_add(pass, pass_seconds(config, n));
    }
    double ratio = samples_median(parallel) / samples_median(serial);
    g_autofree char *what =
        g_strdup_printf("8 x %s (hard links), %u cores", size_text, g_get_num_processors());
    g_autofree char *rt = g_strdup_printf("%.2fx the serial time", ratio);
    table_add("3 hashing", what, "verify 8 files one after another", UNIT_S, serial, 0, "", "",
              "info");
    table_add("3 hashing", what, "verify 8 files, one thread per core", UNIT_S, parallel, 0, rt,
              "<= 0.6x serial", status_of(ratio <= 0.6));
    double pass_ratio = samples_median(pass) / samples_median(serial);
    g_autofree char *pass_rt = g_strdup_printf("%.2fx the serial time", pass_ratio);
    table_add("3 hashing", what, "a pass over the 8 files (checksum step, report mode)", UNIT_S,
              pass, 0, pass_rt, "<= 0.6x serial", status_of(pass_ratio <= 0.6));
    g_autofree char *instances = g_build_filename(dir, "pass-instances", NULL);
    bench_rmtree(instances);
    unlink(config);
    for (guint i = 0; i < n; i++) {
        g_autofree char *alias = g_build_filename(dir, names[i], NULL);
        unlink(alias);
        g_free(names[i]);
    }
}

void case_hash(void)
{
    const char *c = "3 hashing";
    g_autofree char *dir = bench_dir("hash");
    const guint64 size = bench_opts.quick ? 64ULL << 20 : 1ULL << 30;
    const guint64 big = bench_opts.quick ? 256ULL << 20 : 4ULL << 30;
    const guint reps = bench_opts.quick ? 2 : 7;
    g_autofree char *file = g_build_filename(dir, "data", NULL);
    g_autofree char *sparse = g_build_filename(dir, "sparse", NULL);
    g_autofree char *size_text = g_strdup_printf("%.0f MiB file", (double)size / MIB);
    g_autofree char *big_text = g_strdup_printf("%.0f MiB sparse file", (double)big / MIB);
    g_autofree char *openssl = g_find_program_in_path("openssl");
    write_data_file(file, size);
    write_sparse_file(sparse, big);

    /* Throughput, page-cached, against openssl on the same file. */
    g_autoptr(Samples) ours = samples_new();
    g_autoptr(Samples) peer = samples_new();
    for (guint r = 0; r < reps; r++) {
        warm(file);
        double t;
        g_autofree char *hex = hash(dir, "data", 0, &t);
        samples_add(ours, (double)size / MIB / t);
        if (openssl != NULL) {
            warm(file);
            const char *argv[] = {openssl, "dgst", "-sha1", file, NULL};
            g_autofree char *out = NULL;
            double tp = run_child(argv, NULL, NULL, &out, NULL);
            if (strstr(out, hex) == NULL)
                bench_die("openssl's digest '%s' differs from ours %s", g_strstrip(out), hex);
            samples_add(peer, (double)size / MIB / tp);
        }
    }
    if (openssl != NULL) {
        double ratio = samples_median(ours) / samples_median(peer);
        g_autofree char *rt = g_strdup_printf("%.0f %% of openssl", 100 * ratio);
        table_add(c, size_text, "ic_checksum_file, page-cached", UNIT_MIBS, ours, 0, rt,
                  ">= 90 % of openssl", status_of(ratio >= 0.9));
        table_add(c, size_text, "openssl dgst -sha1 (whole process)", UNIT_MIBS, peer, 0, "", "",
                  "info");
    } else {
        table_add(c, size_text, "ic_checksum_file, page-cached", UNIT_MIBS, ours, 0,
                  "openssl not installed", ">= 90 % of openssl", "n/a");
    }

    hash_many(dir, file, size_text);

    /* Peak RSS of a process that hashes one file, at two sizes. */
    const char *paths[] = {file, sparse};
    const char *labels[] = {size_text, big_text};
    for (guint i = 0; i < 2; i++) {
        g_autoptr(Samples) rss = samples_new();
        for (guint r = 0; r < (bench_opts.quick ? 1u : 3u); r++) {
            const char *argv[] = {bench_opts.self, "--child", "hash", paths[i], NULL};
            struct rusage ru;
            run_child(argv, NULL, NULL, NULL, &ru);
            samples_add(rss, rusage_rss_mib(&ru));
        }
        table_add(c, labels[i], "peak RSS of a hashing process", UNIT_MIB, rss, 0, "", "<= 16 MiB",
                  status_of(samples_median(rss) <= 16));
    }

    /* The rate limit: achieved rate on the page-cached file. */
    const guint64 limit = 200ULL << 20;
    g_autoptr(Samples) rate = samples_new();
    double worst = 0;
    for (guint r = 0; r < (bench_opts.quick ? 1u : 3u); r++) {
        warm(file);
        double t;
        g_free(hash(dir, "data", limit, &t));
        double achieved = (double)size / MIB / t;
        samples_add(rate, achieved);
        worst = MAX(worst, fabs(achieved / ((double)limit / MIB) - 1));
    }
    g_autofree char *rate_ratio =
        g_strdup_printf("%+.1f %% of the limit (worst %.1f %%)",
                        100 * (samples_median(rate) / ((double)limit / MIB) - 1), 100 * worst);
    g_autofree char *rate_size = g_strdup_printf("%s, limit 200 MiB/s", size_text);
    table_add(c, rate_size, "achieved rate with ChecksumRateLimit", UNIT_MIBS, rate, 0, rate_ratio,
              "within +-10 %", status_of(worst <= 0.10));

    /* The page cache: a file nobody had cached, and one the guests had cached. */
    double t;
    evict(file);
    double cached0 = meminfo_cached_mib();
    g_free(hash(dir, "data", 0, &t));
    double grown = resident_mib(file);
    double cached1 = meminfo_cached_mib();
    double peer_grown = -1;
    if (openssl != NULL) {
        evict(file);
        const char *argv[] = {openssl, "dgst", "-sha1", file, NULL};
        run_child(argv, NULL, NULL, NULL, NULL);
        peer_grown = resident_mib(file);
    }
    g_autofree char *cold_ratio = g_strdup_printf(
        "meminfo Cached %+.0f MiB; openssl leaves %.0f MiB", cached1 - cached0, peer_grown);
    table_add(c, size_text, "uncached file: MiB cached after hashing", UNIT_MIB, NULL, grown,
              cold_ratio, "~0 (no eviction of others)",
              status_of(grown <= 0.05 * (double)size / MIB));

    warm(file);
    double before = resident_mib(file);
    g_free(hash(dir, "data", 0, &t));
    double after = resident_mib(file);
    g_autofree char *warm_ratio = g_strdup_printf("%.0f MiB cached before", before);
    table_add(c, size_text, "guest-cached file: MiB still cached after", UNIT_MIB, NULL, after,
              warm_ratio, "all kept", status_of(after >= 0.95 * before));

    unlink(file);
    unlink(sparse);
}
