/* test-race.c — the removal race, tried hard: simulated domains start and stop through the
 * real hook binary while passes with zero minimum ages remove whatever looks unused.
 *
 * The invariant: a base file that exists after its domain's `prepare` returned stays until
 * the domain's `release`. (A start may find its file already gone: the protocol allows that
 * outcome, libvirt would then fail the start.) The overlays live outside instances_path so
 * the ledger, written by the hook, is the only witness, and the simulated QEMU never holds
 * the file open, so the /proc check cannot hide a broken lock.
 *
 * IMAGECACHE_STRESS_SECONDS sets how long the locked run lasts (default 15). */
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <sys/stat.h>

#include "imgwriter.h"
#include "ledger.h"
#include "pass.h"
#include "testutil.h"

#define BASE_FILES 4
#define DOMAINS    8

typedef struct {
    const char *hook;
    char *root;
    char *instances;
    char *base_dir;
    char *overlays;
    char *config_path;
    IcConfig *config;
    char *names[BASE_FILES];

    gint stop;
    gint starts;
    gint starts_found_gone;
    gint violations;
    gint removals;
    gint passes;
} Race;

static void race_setup(Race *race)
{
    g_autoptr(GError) error = NULL;
    race->hook = g_getenv("IMAGECACHE_HOOK");
    /* On tmpfs when there is one: fsync is free there, so the hooks and passes
     * interleave thousands of times instead of waiting on the disk. */
    race->root = g_file_test("/dev/shm", G_FILE_TEST_IS_DIR)
                     ? g_mkdtemp(g_strdup("/dev/shm/imagecache-race-XXXXXX"))
                     : ic_test_mkdtemp();
    g_assert_nonnull(race->root);
    race->instances = g_build_filename(race->root, "instances", NULL);
    race->base_dir = g_build_filename(race->instances, "_base", NULL);
    race->overlays = g_build_filename(race->root, "overlays", NULL);
    g_assert_cmpint(g_mkdir_with_parents(race->base_dir, 0755), ==, 0);
    g_assert_cmpint(g_mkdir_with_parents(race->overlays, 0755), ==, 0);
    g_autofree char *text = g_strdup_printf("[imagecache]\ninstances_path=%s\nhost=racehost\n"
                                            "remove_unused_original_minimum_age_seconds=0\n"
                                            "remove_unused_resized_minimum_age_seconds=0\n",
                                            race->instances);
    race->config_path = ic_test_write_file(race->root, "imagecache.conf", text, -1);
    race->config = ic_config_new();
    g_assert_true(ic_config_load_file(race->config, race->config_path, &error));
    g_assert_true(ic_config_finish(race->config, &error));
    g_assert_no_error(error);
    for (int i = 0; i < BASE_FILES; i++) {
        g_autofree char *id = g_strdup_printf("image-%d", i);
        race->names[i] = ic_fingerprint_of_image_id(id);
    }
}

static void race_teardown(Race *race)
{
    ic_test_rmtree(race->root);
    g_free(race->root);
    g_free(race->instances);
    g_free(race->base_dir);
    g_free(race->overlays);
    g_free(race->config_path);
    ic_config_free(race->config);
    for (int i = 0; i < BASE_FILES; i++)
        g_free(race->names[i]);
}

static gboolean run_hook(Race *race, const char *name, const char *op, const char *subop,
                         const char *xml)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GSubprocessLauncher) launcher =
        g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDIN_PIPE);
    g_subprocess_launcher_setenv(launcher, "IMAGECACHE_CONFIG", race->config_path, TRUE);
    g_autoptr(GSubprocess) proc =
        g_subprocess_launcher_spawn(launcher, &error, race->hook, name, op, subop, "-", NULL);
    g_assert_no_error(error);
    g_autoptr(GBytes) input = g_bytes_new(xml, strlen(xml));
    g_assert_true(g_subprocess_communicate(proc, input, NULL, NULL, NULL, &error));
    g_assert_no_error(error);
    return g_subprocess_get_if_exited(proc) && g_subprocess_get_exit_status(proc) == 0;
}

static gboolean stat_base(Race *race, const char *name, ino_t *ret_ino)
{
    g_autofree char *path = g_build_filename(race->base_dir, name, NULL);
    GStatBuf st;
    if (g_lstat(path, &st) != 0)
        return FALSE;
    *ret_ino = st.st_ino;
    return TRUE;
}

/* One simulated domain, started and stopped over and over. */
static gpointer domain_thread(gpointer data)
{
    Race *race = ((gpointer *)data)[0];
    int slot = GPOINTER_TO_INT(((gpointer *)data)[1]);
    g_autoptr(GRand) rand = g_rand_new();

    while (!g_atomic_int_get(&race->stop)) {
        g_autoptr(GError) error = NULL;
        const char *base = race->names[g_rand_int_range(rand, 0, BASE_FILES)];
        g_autofree char *base_path = g_build_filename(race->base_dir, base, NULL);
        g_autofree char *name = g_strdup_printf("dom-%d", slot);
        g_autofree char *uuid = g_uuid_string_random();
        g_autofree char *overlay = g_strdup_printf("%s/%s.qcow2", race->overlays, name);
        ino_t before, after;

        /* "Nova downloads the image" when it is missing, then defines the domain. */
        if (!stat_base(race, base, &before))
            g_free(ic_test_write_file(race->base_dir, base, "data", -1));
        g_assert_true(ic_test_write_qcow2(overlay, 3, 1 << 20, base_path, "raw", &error));
        g_assert_no_error(error);
        g_autofree char *xml =
            g_strdup_printf("<domain type='qemu'><name>%s</name><uuid>%s</uuid><devices>"
                            "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
                            "<source file='%s'/><target dev='vda' bus='virtio'/></disk>"
                            "</devices></domain>",
                            name, uuid, overlay);

        g_assert_true(run_hook(race, name, "prepare", "begin", xml));
        g_atomic_int_inc(&race->starts);
        if (!stat_base(race, base, &before)) {
            g_atomic_int_inc(&race->starts_found_gone);
        } else {
            g_usleep(g_rand_int_range(rand, 500, 5000)); /* the domain runs */
            if (!stat_base(race, base, &after) || after != before) {
                g_atomic_int_inc(&race->violations);
                g_test_message("VIOLATION: '%s' removed while %s ran", base, name);
            }
        }
        g_assert_true(run_hook(race, name, "release", "end", xml));
    }
    return NULL;
}

static void ledger_witness(IcUsage *usage, gint64 now, gpointer data)
{
    Race *race = data;
    g_autoptr(GError) error = NULL;
    g_autoptr(IcLedger) ledger = NULL;
    g_assert_true(ic_ledger_read_all(race->config->ledger_dir, now, 86400, &ledger, &error));
    g_assert_no_error(error);
    ic_ledger_add_usage(ledger, race->config->host, race->base_dir, usage);
}

static void run_race(Race *race, gboolean locked, double seconds, gboolean stop_on_violation)
{
    GThread *threads[DOMAINS];
    gpointer args[DOMAINS][2];
    for (int i = 0; i < DOMAINS; i++) {
        args[i][0] = race;
        args[i][1] = GINT_TO_POINTER(i);
        threads[i] = g_thread_new("domain", domain_thread, args[i]);
    }

    IcPassOptions options = {
        .mode = IC_PASS_RUN,
        .witnesses = ledger_witness,
        .witnesses_data = race,
    };
    gint64 deadline = g_get_monotonic_time() + (gint64)(seconds * G_USEC_PER_SEC);
    while (g_get_monotonic_time() < deadline) {
        g_autoptr(GError) error = NULL;
        g_autoptr(IcReport) report = NULL;
        gint64 now = g_get_real_time() / G_USEC_PER_SEC;
        g_assert_true(ic_pass_run(race->config, NULL, &options, now, &report, &error));
        g_assert_no_error(error);
        race->passes++;
        g_atomic_int_add(&race->removals, (gint)report->totals.removed);
        if (stop_on_violation && g_atomic_int_get(&race->violations) > 0)
            break;
    }
    g_atomic_int_set(&race->stop, 1);
    for (int i = 0; i < DOMAINS; i++)
        g_thread_join(threads[i]);
    g_test_message("%s run: %d passes, %d starts (%d found their base file gone), %d removals, "
                   "%d violations",
                   locked ? "locked" : "UNLOCKED", race->passes, race->starts,
                   race->starts_found_gone, race->removals, race->violations);
}

static void test_locked(void)
{
    Race race = {0};
    const char *env = g_getenv("IMAGECACHE_STRESS_SECONDS");
    double seconds = env ? g_ascii_strtod(env, NULL) : 15.0;
    race_setup(&race);
    if (race.hook == NULL) {
        race_teardown(&race);
        g_test_skip("IMAGECACHE_HOOK is not set: run through meson test");
        return;
    }
    run_race(&race, TRUE, seconds, FALSE);
    g_assert_cmpint(race.violations, ==, 0);
    g_assert_cmpint(race.starts, >, 0);
    g_assert_cmpint(race.removals, >, 0); /* unused files do get removed */
    race_teardown(&race);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
    g_test_add_func("/imagecache/race/locked_never_removes_in_use", test_locked);
    return g_test_run();
}
