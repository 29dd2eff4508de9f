/* mh-stress.c — the pieces of the two-host stress test (tests/multihost/test-stress.sh).
 *
 *   mh-stress domains SECONDS THREADS BRICK_BASE LOCAL_DIR LOG
 *       simulated domains on this host: each thread picks a base file, downloads it when
 *       missing (exclusive create), runs the real hook's prepare, "runs" a few ms, runs
 *       release, and again. Its log holds one line per start: "S <prepared> <released>
 *       <name> <inode on the brick at prepare, 0: absent> <hook-errors>".
 *   mh-stress passes SECONDS LOG
 *       removal passes on this host (zero minimum ages; the ledger is the witness) in a loop;
 *       the log holds "P <removed>" per pass and "E <message>" per failed pass.
 *   mh-stress oracle BRICK_BASE LOG
 *       inotify on the brick's base dir, the server's truth: "D <time> <name>" for every
 *       name removed or renamed away, until SIGTERM.
 *   mh-stress check LOG...
 *       a removal of a file between a start's prepare (when it existed on the brick) and
 *       its release is a violation. Prints the figures; exit 1 on a violation.
 *
 * Times are CLOCK_MONOTONIC nanoseconds, one clock for every namespace. The hook reads
 * IMAGECACHE_CONFIG and IMAGECACHE_HOOK names it; the overlays live in LOCAL_DIR, outside
 * the share, so the ledger is the only witness (as in tests/test-race.c). */
#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "imgwriter.h"
#include "pass.h"
#include "scan.h"

#define BASE_FILES 8

static gint64 mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (gint64)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static IcConfig *load_config(void)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcConfig) config = ic_config_new();
    if (!ic_config_load_file(config, g_getenv("IMAGECACHE_CONFIG"), &error) ||
        !ic_config_finish(config, &error))
        g_error("config: %s", error->message);
    return g_steal_pointer(&config);
}

/* ---- domains ---- */

typedef struct {
    const char *hook;
    char *base_dir;
    const char *brick_base;
    const char *local_dir;
    gint64 deadline;
    GMutex lock;
    FILE *log;
    char *names[BASE_FILES];
} Domains;

/* The hook as libvirtd runs it; returns how many errors it logged. */
static int run_hook(Domains *d, const char *name, const char *op, const char *subop,
                    const char *xml)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GSubprocessLauncher) launcher =
        g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
    g_subprocess_launcher_setenv(launcher, "IMAGECACHE_HOOK_LOG_STDERR", "1", TRUE);
    g_autoptr(GSubprocess) proc =
        g_subprocess_launcher_spawn(launcher, &error, d->hook, name, op, subop, "-", NULL);
    if (proc == NULL)
        g_error("spawning the hook: %s", error->message);
    g_autoptr(GBytes) input = g_bytes_new(xml, strlen(xml));
    g_autoptr(GBytes) err = NULL;
    if (!g_subprocess_communicate(proc, input, NULL, NULL, &err, &error))
        g_error("running the hook: %s", error->message);
    gsize len = 0;
    const char *text = g_bytes_get_data(err, &len);
    int errors = 0;
    for (const char *p = text; p != NULL && p < text + len; p++) {
        const char *nl = memchr(p, '\n', (gsize)(text + len - p));
        g_autofree char *line = g_strndup(p, nl ? (gsize)(nl - p) : (gsize)(text + len - p));
        if (*line != '\0') {
            errors++;
            g_printerr("hook %s %s: %s\n", name, op, line);
        }
        if (nl == NULL)
            break;
        p = nl;
    }
    if (!g_subprocess_get_if_exited(proc) || g_subprocess_get_exit_status(proc) != 0)
        errors++;
    return errors;
}

static ino_t brick_inode(Domains *d, const char *name)
{
    g_autofree char *path = g_build_filename(d->brick_base, name, NULL);
    struct stat st;
    return lstat(path, &st) == 0 ? st.st_ino : 0;
}

/* "Nova downloads the image": exclusive create, so two hosts never write one file. */
static void download(Domains *d, const char *name)
{
    g_autofree char *path = g_build_filename(d->base_dir, name, NULL);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return; /* there already, or another host is writing it */
    if (write(fd, "image data", 10) != 10)
        g_printerr("download '%s': %s\n", path, g_strerror(errno));
    close(fd);
}

static gpointer domain_thread(gpointer data)
{
    Domains *d = ((gpointer *)data)[0];
    int slot = GPOINTER_TO_INT(((gpointer *)data)[1]);
    g_autoptr(GRand) rand = g_rand_new();
    g_autofree char *name = g_strdup_printf("dom-%d", slot);
    g_autofree char *overlay = g_strdup_printf("%s/%s.qcow2", d->local_dir, name);

    while (mono_ns() < d->deadline) {
        g_autoptr(GError) error = NULL;
        const char *base = d->names[g_rand_int_range(rand, 0, BASE_FILES)];
        g_autofree char *base_path = g_build_filename(d->base_dir, base, NULL);
        g_autofree char *uuid = g_uuid_string_random();
        struct stat st;
        if (stat(base_path, &st) != 0)
            download(d, base);
        if (!ic_test_write_qcow2(overlay, 3, 1 << 20, base_path, "raw", &error))
            g_error("overlay: %s", error->message);
        g_autofree char *xml =
            g_strdup_printf("<domain type='qemu'><name>%s</name><uuid>%s</uuid><devices>"
                            "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
                            "<source file='%s'/><target dev='vda' bus='virtio'/></disk>"
                            "</devices></domain>",
                            name, uuid, overlay);

        int errors = run_hook(d, name, "prepare", "begin", xml);
        gint64 prepared = mono_ns();
        ino_t ino = brick_inode(d, base);
        /* The domain runs longer than a pass holds the lock: a removal under the lock
         * then overlaps running domains, so an unseen user shows as a violation. */
        g_usleep(g_rand_int_range(rand, 20000, 300000));
        ino_t after = brick_inode(d, base);
        gint64 released = mono_ns();
        errors += run_hook(d, name, "release", "end", xml);
        g_usleep(g_rand_int_range(rand, 0, 50000)); /* shut off a while: files go unused */
        g_mutex_lock(&d->lock);
        /* A file present at prepare and gone (or replaced) before release: removed in use. */
        fprintf(d->log, "S %" G_GINT64_FORMAT " %" G_GINT64_FORMAT " %s %ju %d %d\n", prepared,
                released, base, (uintmax_t)ino, errors, ino != 0 && after != ino);
        fflush(d->log);
        g_mutex_unlock(&d->lock);
    }
    return NULL;
}

static int cmd_domains(char **argv)
{
    g_autoptr(IcConfig) config = load_config();
    Domains d = {
        .hook = g_getenv("IMAGECACHE_HOOK"),
        .base_dir = ic_config_base_dir(config),
        .brick_base = argv[3],
        .local_dir = argv[4],
        .deadline = mono_ns() + (gint64)(g_ascii_strtod(argv[1], NULL) * 1e9),
        .log = fopen(argv[5], "a"),
    };
    g_assert_nonnull(d.hook);
    g_assert_nonnull(d.log);
    g_mutex_init(&d.lock);
    for (int i = 0; i < BASE_FILES; i++) {
        g_autofree char *id = g_strdup_printf("mh-image-%d", i);
        d.names[i] = ic_fingerprint_of_image_id(id);
    }
    int threads = atoi(argv[2]);
    GThread *workers[64];
    gpointer args[64][2];
    for (int i = 0; i < threads && i < 64; i++) {
        args[i][0] = &d;
        args[i][1] = GINT_TO_POINTER(i);
        workers[i] = g_thread_new("domain", domain_thread, args[i]);
    }
    for (int i = 0; i < threads && i < 64; i++)
        g_thread_join(workers[i]);
    fclose(d.log);
    g_free(d.base_dir);
    for (int i = 0; i < BASE_FILES; i++)
        g_free(d.names[i]);
    return 0;
}

/* ---- passes ---- */

static int cmd_passes(char **argv)
{
    g_autoptr(IcConfig) config = load_config();
    gint64 deadline = mono_ns() + (gint64)(g_ascii_strtod(argv[1], NULL) * 1e9);
    FILE *log = fopen(argv[2], "a");
    g_assert_nonnull(log);
    /* The pass reads every host's ledger itself; no libvirt in a test host. */
    IcPassOptions options = {.mode = IC_PASS_RUN};
    while (mono_ns() < deadline) {
        g_autoptr(GError) error = NULL;
        g_autoptr(IcReport) report = NULL;
        gint64 now = g_get_real_time() / G_USEC_PER_SEC;
        if (ic_pass_run(config, NULL, &options, now, &report, &error))
            fprintf(log, "P %" G_GUINT64_FORMAT "\n", (guint64)report->totals.removed);
        else
            fprintf(log, "E %s\n", error->message);
        fflush(log);
        g_usleep(20000);
    }
    fclose(log);
    return 0;
}

/* ---- oracle ---- */

static gboolean on_term(gpointer loop)
{
    g_main_loop_quit(loop);
    return G_SOURCE_REMOVE;
}

typedef struct {
    int fd;
    FILE *log;
} Oracle;

static gboolean on_inotify(gint fd, GIOCondition cond, gpointer data)
{
    Oracle *o = data;
    char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n = read(fd, buf, sizeof(buf));
    gint64 now = mono_ns();
    for (char *p = buf; n > 0 && p < buf + n;) {
        const struct inotify_event *ev = (const struct inotify_event *)p;
        if (ev->len > 0 && (ev->mask & (IN_DELETE | IN_MOVED_FROM)))
            fprintf(o->log, "D %" G_GINT64_FORMAT " %s\n", now, ev->name);
        p += sizeof(*ev) + ev->len;
    }
    fflush(o->log);
    return G_SOURCE_CONTINUE;
}

static int cmd_oracle(char **argv)
{
    Oracle o = {.fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK), .log = fopen(argv[2], "a")};
    g_assert_cmpint(o.fd, >=, 0);
    g_assert_nonnull(o.log);
    if (inotify_add_watch(o.fd, argv[1], IN_DELETE | IN_MOVED_FROM) < 0)
        g_error("watching '%s': %s", argv[1], g_strerror(errno));
    g_autoptr(GMainLoop) loop = g_main_loop_new(NULL, FALSE);
    g_unix_fd_add(o.fd, G_IO_IN, on_inotify, &o);
    g_unix_signal_add(SIGTERM, on_term, loop);
    /* Ready: the caller waits for this line before starting the hosts. */
    fprintf(o.log, "READY\n");
    fflush(o.log);
    g_main_loop_run(loop);
    on_inotify(o.fd, G_IO_IN, &o);
    fclose(o.log);
    return 0;
}

/* ---- check ---- */

typedef struct {
    gint64 prepared, released;
    char name[64];
    guint64 ino;
    int errors;
    int gone;
} Start;

static int cmd_check(int argc, char **argv)
{
    g_autoptr(GArray) starts = g_array_new(FALSE, FALSE, sizeof(Start));
    g_autoptr(GArray) deletes = g_array_new(FALSE, FALSE, sizeof(Start));
    guint passes = 0, failed_passes = 0, reported_removals = 0;
    for (int i = 1; i < argc; i++) {
        g_autofree char *text = NULL;
        if (!g_file_get_contents(argv[i], &text, NULL, NULL))
            continue;
        g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
        for (char **l = lines; *l != NULL; l++) {
            Start s = {0};
            guint64 removed = 0;
            if (sscanf(*l,
                       "S %" G_GINT64_FORMAT " %" G_GINT64_FORMAT " %63s %" G_GUINT64_FORMAT
                       " %d %d",
                       &s.prepared, &s.released, s.name, &s.ino, &s.errors, &s.gone) == 6)
                g_array_append_val(starts, s);
            else if (sscanf(*l, "D %" G_GINT64_FORMAT " %63s", &s.prepared, s.name) == 2)
                g_array_append_val(deletes, s);
            else if (sscanf(*l, "P %" G_GUINT64_FORMAT, &removed) == 1) {
                passes++;
                reported_removals += (guint)removed;
            } else if ((*l)[0] == 'E') {
                failed_passes++;
                passes++;
                if (failed_passes <= 5)
                    g_print("# failed pass: %s\n", *l + 2);
            }
        }
    }
    guint violations = 0, found_gone = 0, hook_errors = 0, stat_violations = 0;
    for (guint i = 0; i < starts->len; i++) {
        const Start *s = &g_array_index(starts, Start, i);
        hook_errors += s->errors > 0;
        stat_violations += s->gone;
        if (s->ino == 0) {
            found_gone++;
            continue;
        }
        for (guint j = 0; j < deletes->len; j++) {
            const Start *d = &g_array_index(deletes, Start, j);
            if (g_str_equal(d->name, s->name) && d->prepared > s->prepared &&
                d->prepared < s->released) {
                violations++;
                if (violations <= 10)
                    g_print("# VIOLATION: '%s' removed %.1f ms after a prepare, before release\n",
                            s->name, (double)(d->prepared - s->prepared) / 1e6);
                break;
            }
        }
    }
    /* The brick's inode check catches what inotify timing could blur, and back. */
    violations = MAX(violations, stat_violations);
    g_print("# starts %u (found their base file gone: %u; with hook errors: %u), passes %u "
            "(failed: %u), removals %u on the brick (%u reported by passes), violations %u\n",
            starts->len, found_gone, hook_errors, passes, failed_passes, deletes->len,
            reported_removals, violations);
    g_print("FIGURES starts=%u passes=%u removals=%u violations=%u hook_errors=%u "
            "failed_passes=%u\n",
            starts->len, passes, deletes->len, violations, hook_errors, failed_passes);
    return violations > 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc == 7 && g_str_equal(argv[1], "domains"))
        return cmd_domains(argv + 1);
    if (argc == 4 && g_str_equal(argv[1], "passes"))
        return cmd_passes(argv + 1);
    if (argc == 4 && g_str_equal(argv[1], "oracle"))
        return cmd_oracle(argv + 1);
    if (argc >= 3 && g_str_equal(argv[1], "check"))
        return cmd_check(argc - 1, argv + 1);
    g_printerr("usage: see the comment at the top of mh-stress.c\n");
    return 2;
}
