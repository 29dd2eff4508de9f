/* test-rules.c — safety rules of the removal protocol that scripts/mutate.sh found no test
 * for, each shown on real files through ic_pass_run, in milliseconds, without sleeps:
 *  - a file some process holds open, or only maps, is kept (/proc/<pid>/fd, /proc/<pid>/maps);
 *  - report and dry-run change nothing: no removal, no mtime refreshed, no file written;
 *  - what changes between the first read and the unlink counts: a ledger record written
 *    once the lock is held keeps the file (the re-read), and so does an mtime refreshed
 *    right before the unlink (the age re-check), a file replaced then (the identity re-check);
 *  - an instance disk that cannot be read blocks removal;
 *  - the pass's lock excludes a starting domain's hook; the hook holds the usage lock
 *    across its ledger write (the real hook binary).
 * "Between the first read and the unlink" is the removal protocol's seam (protocol.h). */
#include <fcntl.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "imgwriter.h"
#include "ledger-store.h"
#include "pass.h"
#include "protocol.h"
#include "testutil.h"

#define NOW ((gint64)1700000000)
#define DAY ((gint64)86400)
#define FP  "0123456789abcdef0123456789abcdef01234567"
#define FP2 "fedcba9876543210fedcba9876543210fedcba98"

static IcConfig *tree_config(const IcTestTree *tree)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *text = g_strdup_printf("[imagecache]\ninstances_path=%s\nhost=testhost\n"
                                            "remove_unused_base_images=true\n",
                                            tree->root);
    g_autofree char *path = ic_test_write_file(tree->root, "imagecache.conf", text, -1);
    IcConfig *config = ic_config_new();
    g_assert_true(ic_config_load_file(config, path, &error));
    g_assert_no_error(error);
    g_assert_true(ic_config_finish(config, &error));
    g_assert_no_error(error);
    return config;
}

static char *make_base(const IcTestTree *tree, const char *name, gint64 mtime)
{
    char *path = ic_test_write_file(tree->base_dir, name, "image data", -1);
    ic_test_set_mtime(path, mtime);
    return path;
}

static gint64 mtime_of(const char *path)
{
    GStatBuf st;
    g_assert_cmpint(g_lstat(path, &st), ==, 0);
    return st.st_mtime;
}

/* What the test does between the pass's first read and its unlink. */
typedef void (*Meddle)(const IcConfig *config, const char *base_path);

typedef struct {
    const IcConfig *config;
    const char *base_path;
    Meddle at_lock;   /* once the exclusive lock is held, before the re-read */
    Meddle at_unlink; /* right before the identity/age re-check and unlink */
} Meddling;

static void meddling_seam(IcProtocolStage stage, const char *name, gpointer data)
{
    Meddling *m = data;
    if (stage == IC_PROTOCOL_STAGE_LOCKED && m->at_lock)
        m->at_lock(m->config, m->base_path);
    if (stage == IC_PROTOCOL_STAGE_BEFORE_UNLINK && m->at_unlink)
        m->at_unlink(m->config, m->base_path);
}

static IcReport *run_pass(const IcConfig *config, IcPassMode mode, Meddling *meddling)
{
    g_autoptr(GError) error = NULL;
    IcReport *report = NULL;
    IcPassOptions options = {.mode = mode};
    if (meddling != NULL) {
        options.seam = meddling_seam;
        options.seam_data = meddling;
    }
    g_assert_true(ic_pass_run(config, NULL, &options, NOW, &report, &error));
    g_assert_no_error(error);
    return report;
}

/* ---- held open ---- */

/* Held open by a descriptor of this very process: /proc/self/fd names it. */
static void test_held_open_by_fd(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(IcConfig) config = tree_config(tree);
    g_autofree char *held = make_base(tree, FP, NOW - 3 * DAY);
    g_autofree char *free_file = make_base(tree, FP2, NOW - 3 * DAY);
    int fd = open(held, O_RDONLY | O_CLOEXEC);
    g_assert_cmpint(fd, >=, 0);

    ic_report_free(run_pass(config, IC_PASS_RUN, NULL));
    g_assert_true(ic_test_exists(held));
    g_assert_false(ic_test_exists(free_file)); /* the same file not held open goes */
    close(fd);
}

/* Only mapped (the descriptor closed, as a loader or QEMU may do): /proc/self/maps. */
static void test_held_open_by_map(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(IcConfig) config = tree_config(tree);
    g_autofree char *held = make_base(tree, FP, NOW - 3 * DAY);
    g_autofree char *free_file = make_base(tree, FP2, NOW - 3 * DAY);
    int fd = open(held, O_RDONLY | O_CLOEXEC);
    g_assert_cmpint(fd, >=, 0);
    void *map = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
    g_assert_true(map != MAP_FAILED);
    close(fd);

    ic_report_free(run_pass(config, IC_PASS_RUN, NULL));
    g_assert_true(ic_test_exists(held));
    g_assert_false(ic_test_exists(free_file));
    munmap(map, 4096);
}

/* ---- report and dry-run change nothing ---- */

static gint compare_strings(gconstpointer a, gconstpointer b)
{
    return g_strcmp0(*(char *const *)a, *(char *const *)b);
}

/* Every entry of the base dir with its mtime, as one string. */
static char *dir_state(const char *dir)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GDir) d = g_dir_open(dir, 0, &error);
    g_assert_no_error(error);
    g_autoptr(GPtrArray) lines = g_ptr_array_new_with_free_func(g_free);
    const char *name;
    while ((name = g_dir_read_name(d)) != NULL) {
        g_autofree char *path = g_build_filename(dir, name, NULL);
        g_ptr_array_add(lines, g_strdup_printf("%s@%" G_GINT64_FORMAT, name, mtime_of(path)));
    }
    g_ptr_array_sort(lines, compare_strings);
    g_ptr_array_add(lines, NULL);
    return g_strjoinv(" ", (char **)lines->pdata);
}

static void check_changes_nothing(IcTestTree *tree, IcPassMode mode)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcConfig) config = tree_config(tree);
    g_free(make_base(tree, FP, NOW - 3 * DAY));
    g_autofree char *used = make_base(tree, FP2, NOW - 3 * DAY);
    /* An instance whose overlay is backed by the used file: the instances dir names it. */
    g_autofree char *instance = g_build_filename(tree->root, "instance-1", NULL);
    g_assert_cmpint(g_mkdir(instance, 0755), ==, 0);
    g_autofree char *disk = g_build_filename(instance, "disk", NULL);
    g_assert_true(ic_test_write_qcow2(disk, 3, 1 << 20, used, "raw", &error));
    g_assert_no_error(error);
    g_autofree char *before = dir_state(tree->base_dir);

    g_autoptr(IcReport) report = run_pass(config, mode, NULL);
    const IcImageRow *row = ic_report_lookup(report, FP);
    g_assert_nonnull(row);
    g_assert_cmpint(row->decision.verdict, ==, IC_VERDICT_REMOVABLE); /* it would go */
    const IcImageRow *used_row = ic_report_lookup(report, FP2);
    g_assert_nonnull(used_row);
    g_assert_cmpint(used_row->decision.verdict, ==, IC_VERDICT_ACTIVE); /* it would be touched */
    g_autofree char *after = dir_state(tree->base_dir);
    g_assert_cmpstr(after, ==, before);
}

static void test_report_changes_nothing(IcTestTree *tree, gconstpointer data)
{
    check_changes_nothing(tree, IC_PASS_REPORT);
}

static void test_dry_run_changes_nothing(IcTestTree *tree, gconstpointer data)
{
    check_changes_nothing(tree, IC_PASS_DRY_RUN);
}

/* ---- between the first read and the unlink ---- */

/* A domain that starts once the pass holds the lock... cannot: the lock keeps its
 * prepare out. One whose record landed just before the lock was granted is what the
 * re-read must see: written here at the moment the lock is held. */
static void record_user(const IcConfig *config, const char *base_path)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcLedgerDomain) domain =
        ic_ledger_domain_new("6a1c1d5e-8c3f-4a4e-9a55-0c0ffee00001", "late-starter");
    g_ptr_array_add(domain->base_files, g_strdup(base_path));
    g_assert_true(ic_ledger_record_domain(config->ledger_dir, config->host, domain, NOW, &error));
    g_assert_no_error(error);
}

static void test_reread_under_lock(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(IcConfig) config = tree_config(tree);
    g_autofree char *path = make_base(tree, FP, NOW - 3 * DAY);
    Meddling meddling = {.config = config, .base_path = path, .at_lock = record_user};

    g_autoptr(IcReport) report = run_pass(config, IC_PASS_RUN, &meddling);
    g_assert_true(ic_test_exists(path));
    const IcImageRow *row = ic_report_lookup(report, FP);
    g_assert_nonnull(row);
    g_assert_cmpint(row->action, !=, IC_ACTION_REMOVED);
}

/* A user refreshed the mtime (a pass on another host touched it) right before the unlink. */
static void touch_now(const IcConfig *config, const char *base_path)
{
    ic_test_set_mtime(base_path, NOW);
}

static void test_age_rechecked_at_unlink(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(IcConfig) config = tree_config(tree);
    g_autofree char *path = make_base(tree, FP, NOW - 3 * DAY);
    Meddling meddling = {.config = config, .base_path = path, .at_unlink = touch_now};

    ic_report_free(run_pass(config, IC_PASS_RUN, &meddling));
    g_assert_true(ic_test_exists(path));
    g_assert_cmpint(mtime_of(path), ==, NOW);
}

/* The file was replaced (same name, same old mtime, another inode) right before the
 * unlink: what the pass decided about is gone, the new file is someone else's. */
static void replace_file(const IcConfig *config, const char *base_path)
{
    g_autofree char *dir = g_path_get_dirname(base_path);
    g_autofree char *fresh = ic_test_write_file(dir, "replacement.tmp", "another image", -1);
    ic_test_set_mtime(fresh, NOW - 3 * DAY);
    g_assert_cmpint(g_rename(fresh, base_path), ==, 0);
}

static void test_identity_rechecked_at_unlink(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcConfig) config = tree_config(tree);
    g_autofree char *path = make_base(tree, FP, NOW - 3 * DAY);
    Meddling meddling = {.config = config, .base_path = path, .at_unlink = replace_file};

    ic_report_free(run_pass(config, IC_PASS_RUN, &meddling));
    g_autofree char *contents = NULL;
    g_assert_true(g_file_get_contents(path, &contents, NULL, &error));
    g_assert_cmpstr(contents, ==, "another image");
}

/* ---- a witness that cannot be read blocks removal ---- */

/* An instance disk whose header cannot be read might be backed by any base file. */
static void test_unreadable_disk_blocks_removal(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(IcConfig) config = tree_config(tree);
    g_autofree char *path = make_base(tree, FP, NOW - 3 * DAY);
    g_autofree char *instance = g_build_filename(tree->root, "instance-1", NULL);
    g_assert_cmpint(g_mkdir(instance, 0755), ==, 0);
    /* qcow2's magic and version 3, then nothing: a header cut short. */
    g_free(ic_test_write_file(instance, "disk", "QFI\xfb\0\0\0\3", 8));

    g_autoptr(IcReport) report = run_pass(config, IC_PASS_RUN, NULL);
    g_assert_true(ic_test_exists(path));
    const IcImageRow *row = ic_report_lookup(report, FP);
    g_assert_nonnull(row);
    g_assert_cmpstr(ic_reason_to_string(row->decision.reason), ==, "usage_unknown");
    g_assert_cmpuint(report->notes->len, >=, 1);
}

/* Control: the same meddling with nothing that matters still removes the file, so
 * the tests above keep it for the reason they name. */
static void nothing(const IcConfig *config, const char *base_path)
{
}

static void test_meddling_control(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(IcConfig) config = tree_config(tree);
    g_autofree char *path = make_base(tree, FP, NOW - 3 * DAY);
    Meddling meddling = {
        .config = config, .base_path = path, .at_lock = nothing, .at_unlink = nothing};

    ic_report_free(run_pass(config, IC_PASS_RUN, &meddling));
    g_assert_false(ic_test_exists(path));
}

/* ---- the hook's side ---- */

#define USAGE_LOCK_NAME IC_PROTOCOL_LOCK_NAME

/* Whether anyone holds a lock on any byte of @path that an exclusive one would meet. */
static gboolean lock_is_held(const char *path)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    g_assert_cmpint(fd, >=, 0);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    g_assert_cmpint(fcntl(fd, F_OFD_GETLK, &fl), ==, 0);
    close(fd);
    return fl.l_type != F_UNLCK;
}

/* Whether process @pid has @path open. */
static gboolean process_has_open(const char *pid, const char *path)
{
    g_autofree char *fd_dir = g_build_filename("/proc", pid, "fd", NULL);
    g_autoptr(GDir) dir = g_dir_open(fd_dir, 0, NULL);
    if (dir == NULL)
        return FALSE;
    const char *name;
    while ((name = g_dir_read_name(dir)) != NULL) {
        g_autofree char *link = g_build_filename(fd_dir, name, NULL);
        g_autofree char *target = g_file_read_link(link, NULL);
        if (target != NULL && g_str_equal(target, path))
            return TRUE;
    }
    return FALSE;
}

/* The hook at prepare: while it waits for its host file's lock (which this test
 * holds), that is after it took the usage lock and before its ledger write, the
 * usage lock must still be held, or a pass could re-read the ledger and unlink
 * between the two. */
static void test_hook_holds_usage_lock_across_write(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    const char *hook = g_getenv("IMAGECACHE_HOOK");
    if (hook == NULL) {
        g_test_skip("IMAGECACHE_HOOK is not set: run through meson test");
        return;
    }
    g_autoptr(IcConfig) config = tree_config(tree);
    g_autofree char *config_path = g_build_filename(tree->root, "imagecache.conf", NULL);
    g_autofree char *base = make_base(tree, FP, NOW - 3 * DAY);
    g_autofree char *overlay = g_build_filename(tree->root, "overlay.qcow2", NULL);
    g_assert_true(ic_test_write_qcow2(overlay, 3, 1 << 20, base, "raw", &error));
    g_assert_no_error(error);
    g_autofree char *xml = g_strdup_printf(
        "<domain type='qemu'><name>vm</name><uuid>6a1c1d5e-8c3f-4a4e-9a55-0c0ffee00002</uuid>"
        "<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
        "<source file='%s'/><target dev='vda' bus='virtio'/></disk></devices></domain>",
        overlay);
    g_assert_cmpint(g_mkdir_with_parents(config->ledger_dir, 0755), ==, 0);
    g_autofree char *host_lock = g_build_filename(config->ledger_dir, "testhost.lock", NULL);
    g_autofree char *usage_lock = g_build_filename(config->ledger_dir, USAGE_LOCK_NAME, NULL);
    int host_fd = open(host_lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    g_assert_cmpint(host_fd, >=, 0);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    g_assert_cmpint(fcntl(host_fd, F_OFD_SETLK, &fl), ==, 0);

    g_autoptr(GSubprocessLauncher) launcher =
        g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDIN_PIPE);
    g_subprocess_launcher_setenv(launcher, "IMAGECACHE_CONFIG", config_path, TRUE);
    g_autoptr(GSubprocess) proc =
        g_subprocess_launcher_spawn(launcher, &error, hook, "vm", "prepare", "begin", "-", NULL);
    g_assert_no_error(error);
    GOutputStream *in = g_subprocess_get_stdin_pipe(proc);
    g_assert_true(g_output_stream_write_all(in, xml, strlen(xml), NULL, NULL, &error));
    g_assert_true(g_output_stream_close(in, NULL, &error));
    g_assert_no_error(error);

    /* The hook opens its host lock file once it is past the usage lock. */
    const char *pid = g_subprocess_get_identifier(proc);
    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    while (!process_has_open(pid, host_lock)) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(1000);
    }
    gboolean held = lock_is_held(usage_lock);
    close(host_fd); /* lets the hook write */
    g_assert_true(g_subprocess_wait_check(proc, NULL, &error));
    g_assert_no_error(error);
    g_assert_true(held);
    g_assert_false(lock_is_held(usage_lock)); /* and it let go when done */
}

/* ---- the pass's side ---- */

typedef struct {
    const IcConfig *config;
    GMutex mutex;
    GCond cond;
    gboolean before_lock; /* the pass decided and is about to ask for the lock */
    gint done;
} Exclusion;

static void exclusion_reached_lock(Exclusion *x)
{
    g_mutex_lock(&x->mutex);
    x->before_lock = TRUE;
    g_cond_signal(&x->cond);
    g_mutex_unlock(&x->mutex);
}

static void exclusion_seam(IcProtocolStage stage, const char *name, gpointer data)
{
    if (stage == IC_PROTOCOL_STAGE_BEFORE_LOCK)
        exclusion_reached_lock(data);
}

static gpointer exclusion_pass(gpointer data)
{
    Exclusion *x = data;
    g_autoptr(GError) error = NULL;
    g_autoptr(IcReport) report = NULL;
    IcPassOptions options = {.mode = IC_PASS_RUN};
    options.seam = exclusion_seam;
    options.seam_data = x;
    g_assert_true(ic_pass_run(x->config, NULL, &options, NOW, &report, &error));
    g_assert_no_error(error);
    g_atomic_int_set(&x->done, 1);
    return NULL;
}

/* While a starting domain's hook holds the usage lock shared, a pass must not
 * remove: its lock is exclusive. (The pass waits here; once the hook lets go it
 * removes the file.) */
static void test_pass_lock_excludes_hook(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(IcConfig) config = tree_config(tree);
    g_autofree char *path = make_base(tree, FP, NOW - 3 * DAY);
    g_assert_cmpint(g_mkdir_with_parents(config->ledger_dir, 0755), ==, 0);
    g_autofree char *usage_lock = g_build_filename(config->ledger_dir, USAGE_LOCK_NAME, NULL);
    int fd = open(usage_lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    g_assert_cmpint(fd, >=, 0);
    struct flock fl = {
        .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = IC_PROTOCOL_USAGE_BYTE, .l_len = 1};
    g_assert_cmpint(fcntl(fd, F_OFD_SETLK, &fl), ==, 0);

    Exclusion x = {.config = config};
    g_mutex_init(&x.mutex);
    g_cond_init(&x.cond);
    GThread *thread = g_thread_new("pass", exclusion_pass, &x);
    g_mutex_lock(&x.mutex);
    while (!x.before_lock)
        g_cond_wait(&x.cond, &x.mutex);
    g_mutex_unlock(&x.mutex);
    /* A pass that does not wait removes within microseconds; give it ample time. */
    g_usleep(300 * 1000);
    gboolean kept = ic_test_exists(path);
    gboolean waited = !g_atomic_int_get(&x.done);
    close(fd);
    g_thread_join(thread);
    g_mutex_clear(&x.mutex);
    g_cond_clear(&x.cond);
    g_assert_true(kept);
    g_assert_true(waited);
    g_assert_false(ic_test_exists(path)); /* the hook gone, the pass went on */
}

#define ADD(path, func)                                                                            \
    g_test_add(path, IcTestTree, NULL, ic_test_tree_setup, func, ic_test_tree_teardown)

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
    ADD("/imagecache/rules/held_open_by_fd", test_held_open_by_fd);
    ADD("/imagecache/rules/held_open_by_map", test_held_open_by_map);
    ADD("/imagecache/rules/report_changes_nothing", test_report_changes_nothing);
    ADD("/imagecache/rules/dry_run_changes_nothing", test_dry_run_changes_nothing);
    ADD("/imagecache/rules/reread_under_lock", test_reread_under_lock);
    ADD("/imagecache/rules/age_rechecked_at_unlink", test_age_rechecked_at_unlink);
    ADD("/imagecache/rules/identity_rechecked_at_unlink", test_identity_rechecked_at_unlink);
    ADD("/imagecache/rules/unreadable_disk_blocks_removal", test_unreadable_disk_blocks_removal);
    ADD("/imagecache/rules/meddling_control", test_meddling_control);
    ADD("/imagecache/rules/pass_lock_excludes_hook", test_pass_lock_excludes_hook);
    ADD("/imagecache/rules/hook_holds_usage_lock_across_write",
        test_hook_holds_usage_lock_across_write);
    return g_test_run();
}
