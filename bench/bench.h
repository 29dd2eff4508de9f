/* bench.h — the benchmark suite's shared pieces: options, timing statistics, the
 * result table, child processes (spawned, timed, with their peak RSS) and the
 * synthetic trees. Benchmarks report figures; nothing here asserts a timing. */
#pragma once

#include <glib.h>
#include <sys/resource.h>

G_BEGIN_DECLS

typedef struct {
    gboolean quick;            /* smoke mode: tiny sizes, few repetitions (CI) */
    guint scale_max;           /* the larger tree of case 2 (times the 1x tree) */
    const char *hook;          /* the imagecache-hook binary */
    const char *empty;         /* an empty C program */
    const char *empty_glib;    /* an empty program linked to GLib */
    const char *collectd_host; /* bench-collectd-host, NULL: not built */
    const char *plugin;        /* imagecache.so */
    const char *ctl;           /* imagecachectl (case 6) */
    const char *durable;       /* bench-durable, the hook's durable-write floor (case 1) */
    const char *floor;         /* bench-floor, the report's system-call floor (case 6) */
    const char *self;          /* this binary, re-run for child measurements */
    char *workdir;             /* scratch space, removed at the end */
    const char *trees;         /* where case 2 keeps its big trees between runs; NULL: workdir */
    GHashTable *cases;         /* case numbers to run (as strings); NULL: all */
} BenchOptions;

extern BenchOptions bench_opts;

/* ---- statistics and the table ---- */

typedef struct {
    GArray *v; /* double */
} Samples;

Samples *samples_new(void);
void samples_free(Samples *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Samples, samples_free)
void samples_add(Samples *s, double value);
double samples_median(const Samples *s);
double samples_min(const Samples *s);
double samples_max(const Samples *s);

typedef enum {
    UNIT_MS,
    UNIT_S,
    UNIT_US,
    UNIT_MIB,
    UNIT_MIBS, /* MiB/s */
    UNIT_PER_S,
    UNIT_COUNT,
    UNIT_PCT,
    UNIT_TIMES, /* a ratio: "3.2 x" */
} Unit;

/* One row: @s may be NULL for a derived figure (@value). @ratio is the text of
 * the comparison with the peer ("" for none), @target the figure to reach and
 * @status "met", "MISSED" or "info". */
void table_add(const char *case_name, const char *size, const char *what, Unit unit,
               const Samples *s, double value, const char *ratio, const char *target,
               const char *status);
void table_print(void);

/* ---- processes ---- */

double now_s(void); /* monotonic seconds */

/* Runs @argv (stdin from @stdin_path or /dev/null, stdout to /dev/null unless
 * @ret_out, stderr inherited) with @env_add ("KEY=VALUE", NULL-terminated, may be
 * NULL) added to the environment; waits and returns its wall time in seconds,
 * its rusage in @ret_ru (may be NULL). Aborts the run if it fails to start or
 * exits non-zero. */
double run_child(const char *const *argv, const char *const *env_add, const char *stdin_path,
                 char **ret_out, struct rusage *ret_ru);

/* Starts @argv without waiting: returns the pid (stdin from @stdin_path). */
int spawn_child(const char *const *argv, const char *const *env_add, const char *stdin_path);
/* Waits for @pid; aborts the run on a non-zero exit. */
void wait_child(int pid, struct rusage *ret_ru);

/* Peak RSS in MiB from an rusage. */
double rusage_rss_mib(const struct rusage *ru);

gboolean case_enabled(int number);
char *bench_dir(const char *name); /* a fresh directory under the workdir */
void bench_rmtree(const char *path);

G_GNUC_NORETURN void bench_die(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

/* ---- synthetic trees (gen.c) ---- */

/* The fingerprint of base image @i ("bench-image-<i>"): callers free. */
char *gen_image_id(guint i);

/* Writes a qcow2 image with the library's test writer (tests/imgwriter.c), but
 * sparse: only its non-zero blocks are written, so thousands of them cost little
 * disk. The header is byte-for-byte what ic_test_write_qcow2 produces. */
void gen_qcow2_sparse(const char *path, const char *backing_name, const char *backing_format);

typedef struct {
    char *instances; /* instances_path */
    char *base_dir;
    char *ledger_dir;
    char *config; /* config file for this tree */
    guint base_files;
    guint disks;
    guint hosts;
    guint domains_per_host;
} BenchTree;

/* The case-2 tree (@reuse: the files exist from an earlier run, only the ledger
 * and config are written again): @base_files sparse raw base files (1 GiB apparent size, mtime
 * two days ago) of which 80 % are used by @disks instance disks (qcow2, backing
 * file by absolute path) and the ledger of @hosts x @domains_per_host domains. */
BenchTree *gen_tree(const char *root, guint base_files, guint disks, guint hosts,
                    guint domains_per_host, gboolean reuse);
void bench_tree_free(BenchTree *tree);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(BenchTree, bench_tree_free)

/* Writes the config file for a tree: returns its path. */
char *gen_config(const char *dir, const char *instances, const char *ledger_dir, const char *host);

/* ---- the cases ---- */

void case_hook(void);
void case_pass(void);
void case_hash(void);
void case_ledger(void);
void case_metrics(void);
void case_report(void);

/* Case 2's tree from --trees when one was made before, else a fresh one; *ret_remove is the
 * dir to remove after use (NULL when it is kept in --trees). Shared with case 6. */
BenchTree *bench_get_tree(const char *label, guint base, guint disks, guint hosts, guint per_host,
                          char **ret_remove);
void case_cell(void);

/* Child modes (run by re-executing this binary): return the exit code. */
int child_pass(const char *config_path);
int child_hash(const char *path);
int child_noop(void);

G_END_DECLS
