/* bench.c — imagecache-bench: runs the benchmark cases of issue 7 and prints one
 * table (case, size, median, min, max, ratio against the peer, target, status),
 * headed by the machine it ran on. `--quick` is the CI smoke mode. */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

extern char **environ;

BenchOptions bench_opts;

/* ---- statistics ---- */

Samples *samples_new(void)
{
    Samples *s = g_new0(Samples, 1);
    s->v = g_array_new(FALSE, FALSE, sizeof(double));
    return s;
}

void samples_free(Samples *s)
{
    if (s == NULL)
        return;
    g_array_unref(s->v);
    g_free(s);
}

void samples_add(Samples *s, double value)
{
    g_array_append_val(s->v, value);
}

static gint compare_doubles(gconstpointer a, gconstpointer b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double samples_median(const Samples *s)
{
    guint n = s->v->len;
    if (n == 0)
        return 0;
    g_autoptr(GArray) sorted = g_array_copy(s->v);
    g_array_sort(sorted, compare_doubles);
    double *d = (double *)(void *)sorted->data;
    return n % 2 ? d[n / 2] : (d[n / 2 - 1] + d[n / 2]) / 2;
}

double samples_min(const Samples *s)
{
    double m = s->v->len ? g_array_index(s->v, double, 0) : 0;
    for (guint i = 1; i < s->v->len; i++)
        m = MIN(m, g_array_index(s->v, double, i));
    return m;
}

double samples_max(const Samples *s)
{
    double m = s->v->len ? g_array_index(s->v, double, 0) : 0;
    for (guint i = 1; i < s->v->len; i++)
        m = MAX(m, g_array_index(s->v, double, i));
    return m;
}

/* ---- the table ---- */

typedef struct {
    char *cells[9];
} Row;

static GPtrArray *rows;

static const char *unit_name(Unit unit)
{
    static const char *const names[] = {"ms", "s", "us", "MiB", "MiB/s", "/s", "", "%", "x"};
    return names[unit];
}

static char *format_value(Unit unit, double v)
{
    if (unit == UNIT_COUNT)
        return g_strdup_printf("%.0f", v);
    if (v != 0 && fabs(v) < 0.1)
        return g_strdup_printf("%.4f %s", v, unit_name(unit));
    if (fabs(v) < 100)
        return g_strdup_printf("%.2f %s", v, unit_name(unit));
    return g_strdup_printf("%.0f %s", v, unit_name(unit));
}

void table_add(const char *case_name, const char *size, const char *what, Unit unit,
               const Samples *s, double value, const char *ratio, const char *target,
               const char *status)
{
    Row *row = g_new0(Row, 1);
    row->cells[0] = g_strdup(case_name);
    row->cells[1] = g_strdup(size);
    row->cells[2] = g_strdup(what);
    if (s != NULL) {
        row->cells[3] = format_value(unit, samples_median(s));
        row->cells[4] = format_value(unit, samples_min(s));
        row->cells[5] = format_value(unit, samples_max(s));
    } else {
        row->cells[3] = format_value(unit, value);
        row->cells[4] = g_strdup("-");
        row->cells[5] = g_strdup("-");
    }
    row->cells[6] = g_strdup(ratio != NULL && *ratio ? ratio : "-");
    row->cells[7] = g_strdup(target != NULL && *target ? target : "-");
    row->cells[8] = g_strdup(status != NULL ? status : "info");
    g_ptr_array_add(rows, row);
    /* Progress on stderr, so a long run shows life. */
    fprintf(stderr, "  %s | %s | %s: %s (%s)\n", case_name, size, what, row->cells[3],
            row->cells[8]);
}

static void row_free(gpointer p)
{
    Row *row = p;
    for (guint i = 0; i < G_N_ELEMENTS(row->cells); i++)
        g_free(row->cells[i]);
    g_free(row);
}

void table_print(void)
{
    static const char *const head[] = {"case", "size",    "figure", "median", "min",
                                       "max",  "vs peer", "target", "status"};
    gsize width[G_N_ELEMENTS(head)];
    for (guint c = 0; c < G_N_ELEMENTS(head); c++)
        width[c] = g_utf8_strlen(head[c], -1);
    for (guint r = 0; r < rows->len; r++) {
        Row *row = g_ptr_array_index(rows, r);
        for (guint c = 0; c < G_N_ELEMENTS(head); c++)
            width[c] = MAX(width[c], (gsize)g_utf8_strlen(row->cells[c], -1));
    }
    for (guint r = 0; r <= rows->len; r++) {
        const char *const *cells =
            r == 0 ? head : (const char *const *)((Row *)g_ptr_array_index(rows, r - 1))->cells;
        GString *line = g_string_new(NULL);
        for (guint c = 0; c < G_N_ELEMENTS(head); c++) {
            gboolean right = c >= 3 && c <= 5;
            gsize pad = width[c] - (gsize)g_utf8_strlen(cells[c], -1);
            if (right)
                for (gsize i = 0; i < pad; i++)
                    g_string_append_c(line, ' ');
            g_string_append(line, cells[c]);
            if (!right && c + 1 < G_N_ELEMENTS(head))
                for (gsize i = 0; i < pad; i++)
                    g_string_append_c(line, ' ');
            if (c + 1 < G_N_ELEMENTS(head))
                g_string_append(line, "  ");
        }
        printf("%s\n", line->str);
        g_string_free(line, TRUE);
    }
    fflush(stdout);
}

/* ---- processes ---- */

void bench_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    fprintf(stderr, "imagecache-bench: %s\n", msg);
    if (bench_opts.workdir != NULL && g_getenv("IMAGECACHE_BENCH_KEEP") == NULL)
        bench_rmtree(bench_opts.workdir);
    exit(2);
}

double now_s(void)
{
    return (double)g_get_monotonic_time() / G_USEC_PER_SEC;
}

static char **make_env(const char *const *env_add)
{
    GPtrArray *env = g_ptr_array_new();
    for (char **e = environ; *e != NULL; e++) {
        gboolean replaced = FALSE;
        for (const char *const *a = env_add; a != NULL && *a != NULL; a++) {
            const char *eq = strchr(*a, '=');
            if (eq != NULL && strncmp(*e, *a, (gsize)(eq - *a + 1)) == 0)
                replaced = TRUE;
        }
        if (!replaced)
            g_ptr_array_add(env, g_strdup(*e));
    }
    for (const char *const *a = env_add; a != NULL && *a != NULL; a++)
        g_ptr_array_add(env, g_strdup(*a));
    g_ptr_array_add(env, NULL);
    return (char **)g_ptr_array_free(env, FALSE);
}

static int spawn_full(const char *const *argv, const char *const *env_add, const char *stdin_path,
                      int out_fd)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, stdin_path ? stdin_path : "/dev/null",
                                     O_RDONLY, 0);
    if (out_fd >= 0)
        posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO);
    else
        posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    g_auto(GStrv) env = make_env(env_add);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, env);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        bench_die("cannot start %s: %s", argv[0], g_strerror(rc));
    return pid;
}

int spawn_child(const char *const *argv, const char *const *env_add, const char *stdin_path)
{
    return spawn_full(argv, env_add, stdin_path, -1);
}

void wait_child(int pid, struct rusage *ret_ru)
{
    int status;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0) {
        if (errno != EINTR)
            bench_die("wait4: %s", g_strerror(errno));
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        bench_die("child %d failed (status 0x%x)", pid, status);
    if (ret_ru != NULL)
        *ret_ru = ru;
}

double run_child(const char *const *argv, const char *const *env_add, const char *stdin_path,
                 char **ret_out, struct rusage *ret_ru)
{
    int fds[2] = {-1, -1};
    if (ret_out != NULL && pipe2(fds, O_CLOEXEC) < 0)
        bench_die("pipe: %s", g_strerror(errno));
    double t0 = now_s();
    int pid = spawn_full(argv, env_add, stdin_path, fds[1]);
    if (ret_out != NULL) {
        close(fds[1]);
        GString *out = g_string_new(NULL);
        char buf[4096];
        ssize_t n;
        while ((n = read(fds[0], buf, sizeof(buf))) != 0) {
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                bench_die("reading a child's output: %s", g_strerror(errno));
            g_string_append_len(out, buf, n);
        }
        close(fds[0]);
        *ret_out = g_string_free(out, FALSE);
    }
    wait_child(pid, ret_ru);
    return now_s() - t0;
}

double rusage_rss_mib(const struct rusage *ru)
{
    return (double)ru->ru_maxrss / 1024.0; /* ru_maxrss is in KiB on Linux */
}

gboolean case_enabled(int number)
{
    if (bench_opts.cases == NULL)
        return TRUE;
    g_autofree char *key = g_strdup_printf("%d", number);
    return g_hash_table_contains(bench_opts.cases, key);
}

char *bench_dir(const char *name)
{
    char *path = g_build_filename(bench_opts.workdir, name, NULL);
    if (g_mkdir_with_parents(path, 0755) < 0)
        bench_die("mkdir %s: %s", path, g_strerror(errno));
    return path;
}

void bench_rmtree(const char *path)
{
    ic_test_rmtree(path);
}

/* ---- the machine ---- */

static char *cpu_model(void)
{
    g_autofree char *text = NULL;
    if (!g_file_get_contents("/proc/cpuinfo", &text, NULL, NULL))
        return g_strdup("unknown");
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    for (char **l = lines; *l != NULL; l++) {
        if (g_str_has_prefix(*l, "model name")) {
            const char *colon = strchr(*l, ':');
            if (colon != NULL)
                return g_strstrip(g_strdup(colon + 1));
        }
    }
    return g_strdup("unknown");
}

static void print_machine(void)
{
    g_autofree char *model = cpu_model();
    struct utsname u;
    uname(&u);
    double load[3] = {0, 0, 0};
    getloadavg(load, 3);
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    printf("imagecache benchmarks%s\n", bench_opts.quick ? " (quick smoke mode: sizes cut, "
                                                           "figures not comparable to targets)"
                                                         : "");
    printf("cpu: %s, %ld cores online; memory %.1f GiB; kernel %s %s\n", model,
           sysconf(_SC_NPROCESSORS_ONLN), (double)pages * (double)page / (1 << 30), u.sysname,
           u.release);
    printf("load average at start: %.2f %.2f %.2f; workdir %s\n", load[0], load[1], load[2],
           bench_opts.workdir);
    fflush(stdout);
}

static void print_load_end(void)
{
    double load[3] = {0, 0, 0};
    getloadavg(load, 3);
    printf("load average at end: %.2f %.2f %.2f\n", load[0], load[1], load[2]);
}

/* ---- main ---- */

static char *sibling(const char *self_dir, const char *name)
{
    return g_build_filename(self_dir, name, NULL);
}

int main(int argc, char **argv)
{
    /* Child modes: `imagecache-bench --child MODE ARG`. */
    if (argc >= 3 && strcmp(argv[1], "--child") == 0) {
        if (strcmp(argv[2], "pass") == 0 && argc == 4)
            return child_pass(argv[3]);
        if (strcmp(argv[2], "hash") == 0 && argc == 4)
            return child_hash(argv[3]);
        if (strcmp(argv[2], "noop") == 0)
            return child_noop();
        fprintf(stderr, "imagecache-bench: bad child mode\n");
        return 2;
    }

    gboolean quick = FALSE;
    char *hook = NULL, *empty = NULL, *empty_glib = NULL, *workdir_parent = NULL, **cases = NULL;
    char *trees = NULL, *collectd_host = NULL, *plugin = NULL, *ctl = NULL, *floor = NULL;
    char *durable = NULL;
    int scale = 0;
    GOptionEntry entries[] = {
        {"quick", 0, 0, G_OPTION_ARG_NONE, &quick, "Smoke mode: tiny sizes (CI)", NULL},
        {"hook", 0, 0, G_OPTION_ARG_FILENAME, &hook, "The imagecache-hook binary", "PATH"},
        {"empty", 0, 0, G_OPTION_ARG_FILENAME, &empty, "An empty C program", "PATH"},
        {"empty-glib", 0, 0, G_OPTION_ARG_FILENAME, &empty_glib, "An empty GLib program", "PATH"},
        {"workdir", 0, 0, G_OPTION_ARG_FILENAME, &workdir_parent,
         "Where to make the scratch trees (default: $TMPDIR)", "DIR"},
        {"trees", 0, 0, G_OPTION_ARG_FILENAME, &trees,
         "Keep case 2's trees here and reuse them (deleting 300,000 files on a filesystem "
         "mounted with discard takes long)",
         "DIR"},
        {"collectd-host", 0, 0, G_OPTION_ARG_FILENAME, &collectd_host,
         "bench-collectd-host (case 5)", "PATH"},
        {"plugin", 0, 0, G_OPTION_ARG_FILENAME, &plugin, "The collectd plugin imagecache.so",
         "PATH"},
        {"ctl", 0, 0, G_OPTION_ARG_FILENAME, &ctl, "imagecachectl (case 6)", "PATH"},
        {"durable", 0, 0, G_OPTION_ARG_FILENAME, &durable, "bench-durable (case 1)", "PATH"},
        {"floor", 0, 0, G_OPTION_ARG_FILENAME, &floor, "bench-floor (case 6)", "PATH"},
        {"scale", 0, 0, G_OPTION_ARG_INT, &scale, "Case 2's large tree, times the 1x tree (10)",
         "N"},
        {"case", 0, 0, G_OPTION_ARG_STRING_ARRAY, &cases, "Run only this case (1-7; repeatable)",
         "N"},
        G_OPTION_ENTRY_NULL,
    };
    g_autoptr(GOptionContext) ctx = g_option_context_new("- imagecache benchmarks (issue 7)");
    g_option_context_add_main_entries(ctx, entries, NULL);
    g_autoptr(GError) error = NULL;
    if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
        fprintf(stderr, "imagecache-bench: %s\n", error->message);
        return 2;
    }

    g_autofree char *self = g_file_read_link("/proc/self/exe", NULL);
    g_autofree char *self_dir = g_path_get_dirname(self);
    g_autofree char *build_root = g_path_get_dirname(self_dir);
    bench_opts.quick = quick;
    bench_opts.scale_max = scale > 0 ? (guint)scale : (quick ? 2 : 10);
    bench_opts.self = self;
    bench_opts.trees = trees;
    g_autofree char *default_host = sibling(self_dir, "bench-collectd-host");
    g_autofree char *default_plugin =
        g_build_filename(build_root, "collectd-plugin", "imagecache.so", NULL);
    bench_opts.collectd_host = collectd_host ? collectd_host : default_host;
    bench_opts.plugin = plugin ? plugin : default_plugin;
    bench_opts.hook = hook ? hook : g_build_filename(build_root, "hook", "imagecache-hook", NULL);
    bench_opts.ctl = ctl ? ctl : g_build_filename(build_root, "cli", "imagecachectl", NULL);
    bench_opts.durable = durable ? durable : sibling(self_dir, "bench-durable");
    bench_opts.floor = floor ? floor : sibling(self_dir, "bench-floor");
    bench_opts.empty = empty ? empty : sibling(self_dir, "bench-empty");
    bench_opts.empty_glib = empty_glib ? empty_glib : sibling(self_dir, "bench-empty-glib");
    if (cases != NULL) {
        bench_opts.cases = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        for (char **c = cases; *c != NULL; c++)
            g_hash_table_add(bench_opts.cases, g_strdup(*c));
    }
    g_autofree char *tmpl = g_build_filename(workdir_parent ? workdir_parent : g_get_tmp_dir(),
                                             "imagecache-bench.XXXXXX", NULL);
    bench_opts.workdir = g_mkdtemp(tmpl) ? g_strdup(tmpl) : NULL;
    if (bench_opts.workdir == NULL)
        bench_die("cannot make a scratch dir from %s: %s", tmpl, g_strerror(errno));
    rows = g_ptr_array_new_with_free_func(row_free);

    print_machine();
    if (case_enabled(1))
        case_hook();
    if (case_enabled(2))
        case_pass();
    if (case_enabled(3))
        case_hash();
    if (case_enabled(4))
        case_ledger();
    if (case_enabled(5))
        case_metrics();
    if (case_enabled(6))
        case_report();
    if (case_enabled(7))
        case_cell();

    printf("\n");
    table_print();
    print_load_end();

    if (g_getenv("IMAGECACHE_BENCH_KEEP") == NULL)
        bench_rmtree(bench_opts.workdir);
    g_ptr_array_unref(rows);
    if (bench_opts.cases != NULL)
        g_hash_table_unref(bench_opts.cases);
    if (hook == NULL)
        g_free((char *)bench_opts.hook);
    if (empty == NULL)
        g_free((char *)bench_opts.empty);
    if (empty_glib == NULL)
        g_free((char *)bench_opts.empty_glib);
    g_free(hook);
    g_free(empty);
    g_free(empty_glib);
    g_free(workdir_parent);
    g_free(trees);
    g_free(collectd_host);
    g_free(plugin);
    g_strfreev(cases);
    g_free(bench_opts.workdir);
    return 0;
}
