/* test-crash.c — kill -9 at random moments: the hook while it records or drops a domain,
 * imagecachectl while it hashes and writes sidecars. After every kill the ledger must parse
 * and hold every update that completed; every sidecar must be whole or absent.
 * IMAGECACHE_CRASH_ROUNDS sets the rounds (default 300 for the hook, 60 for the pass). */
#include <gio/gio.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checksum.h"
#include "imgwriter.h"
#include "ledger-store.h"
#include "pass.h"
#include "remove.h"
#include "testutil.h"

#define DOMAINS 8

typedef struct {
    char *root;
    char *instances;
    char *base_dir;
    char *config_path;
    IcConfig *config;
} Tree;

static void tree_setup(Tree *tree)
{
    g_autoptr(GError) error = NULL;
    tree->root = ic_test_mkdtemp();
    tree->instances = g_build_filename(tree->root, "instances", NULL);
    tree->base_dir = g_build_filename(tree->instances, "_base", NULL);
    g_assert_cmpint(g_mkdir_with_parents(tree->base_dir, 0755), ==, 0);
    g_autofree char *text = g_strdup_printf(
        "[imagecache]\ninstances_path=%s\nhost=crashhost\nchecksum_base_images=true\n"
        "checksum_interval_seconds=0\nremove_unused_base_images=false\n",
        tree->instances);
    tree->config_path = ic_test_write_file(tree->root, "imagecache.conf", text, -1);
    tree->config = ic_config_new();
    g_assert_true(ic_config_load_file(tree->config, tree->config_path, &error));
    g_assert_true(ic_config_finish(tree->config, &error));
}

static void tree_teardown(Tree *tree)
{
    ic_test_rmtree(tree->root);
    g_free(tree->root);
    g_free(tree->instances);
    g_free(tree->base_dir);
    g_free(tree->config_path);
    ic_config_free(tree->config);
}

static guint rounds(guint fallback)
{
    const char *env = g_getenv("IMAGECACHE_CRASH_ROUNDS");
    return env ? (guint)g_ascii_strtoull(env, NULL, 10) : fallback;
}

/* Runs @argv with @input on stdin and SIGKILLs it after @kill_after_us unless
 * it finished first. TRUE when it exited 0 on its own. */
static gboolean run_and_kill(const char *const *argv, const char *input, guint kill_after_us,
                             const char *config_path)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new(
        G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_SILENCE |
        G_SUBPROCESS_FLAGS_STDERR_SILENCE);
    g_subprocess_launcher_setenv(launcher, "IMAGECACHE_CONFIG", config_path, TRUE);
    g_autoptr(GSubprocess) proc = g_subprocess_launcher_spawnv(launcher, argv, &error);
    g_assert_no_error(error);
    GOutputStream *in = g_subprocess_get_stdin_pipe(proc);
    if (input != NULL)
        (void)g_output_stream_write_all(in, input, strlen(input), NULL, NULL, NULL);
    g_output_stream_close(in, NULL, NULL);
    g_usleep(kill_after_us);
    g_subprocess_send_signal(proc, SIGKILL);
    g_assert_true(g_subprocess_wait(proc, NULL, &error));
    return g_subprocess_get_if_exited(proc) && g_subprocess_get_exit_status(proc) == 0;
}

static gboolean ledger_has(const IcLedger *ledger, const char *uuid)
{
    for (guint i = 0; i < ledger->hosts->len; i++) {
        const IcLedgerHost *host = g_ptr_array_index(ledger->hosts, i);
        for (guint j = 0; j < host->domains->len; j++) {
            const IcLedgerDomain *domain = g_ptr_array_index(host->domains, j);
            if (g_str_equal(domain->uuid, uuid))
                return TRUE;
        }
    }
    return FALSE;
}

typedef enum { KNOWN_ABSENT, KNOWN_PRESENT, UNKNOWN } DomainState;

static void test_hook_killed(void)
{
    const char *hook = g_getenv("IMAGECACHE_HOOK");
    if (hook == NULL) {
        g_test_skip("IMAGECACHE_HOOK is not set: run through meson test");
        return;
    }
    Tree tree = {0};
    tree_setup(&tree);
    g_autoptr(GError) error = NULL;
    g_autofree char *base =
        g_build_filename(tree.base_dir, "0123456789abcdef0123456789abcdef01234567", NULL);
    g_assert_true(ic_test_write_qcow2(base, 3, 1 << 20, NULL, NULL, &error));

    char *xml[DOMAINS];
    char *uuids[DOMAINS];
    DomainState state[DOMAINS];
    for (int d = 0; d < DOMAINS; d++) {
        g_autofree char *overlay = g_strdup_printf("%s/vm%d.qcow2", tree.root, d);
        g_assert_true(ic_test_write_qcow2(overlay, 3, 1 << 20, base, "qcow2", &error));
        uuids[d] = g_strdup_printf("00000000-0000-4000-8000-%012d", d);
        xml[d] = g_strdup_printf("<domain type='qemu'><name>vm%d</name><uuid>%s</uuid><devices>"
                                 "<disk type='file' device='disk'><source file='%s'/>"
                                 "<target dev='vda'/></disk></devices></domain>",
                                 d, uuids[d], overlay);
        state[d] = KNOWN_ABSENT;
    }

    g_autoptr(GRand) rand = g_rand_new();
    guint n = rounds(300), completed = 0, killed = 0;
    for (guint round = 0; round < n; round++) {
        int d = g_rand_int_range(rand, 0, DOMAINS);
        gboolean start = g_rand_boolean(rand);
        g_autofree char *name = g_strdup_printf("vm%d", d);
        const char *argv[] = {hook, name, start ? "prepare" : "release", start ? "begin" : "end",
                              "-",  NULL};
        if (run_and_kill(argv, xml[d], g_rand_int_range(rand, 0, 12000), tree.config_path)) {
            state[d] = start ? KNOWN_PRESENT : KNOWN_ABSENT;
            completed++;
        } else {
            state[d] = UNKNOWN;
            killed++;
        }

        g_autoptr(IcLedger) ledger = NULL;
        g_assert_true(ic_ledger_read_all(tree.config->ledger_dir, 0, G_MAXINT64, &ledger, &error));
        g_assert_no_error(error);
        g_assert_cmpuint(ledger->errors->len, ==, 0);
        for (int k = 0; k < DOMAINS; k++) {
            if (state[k] == KNOWN_PRESENT)
                g_assert_true(ledger_has(ledger, uuids[k]));
            else if (state[k] == KNOWN_ABSENT)
                g_assert_false(ledger_has(ledger, uuids[k]));
        }
    }
    g_test_message("hook: %u rounds, %u completed, %u killed mid-way; the ledger always parsed "
                   "and held every completed update",
                   n, completed, killed);
    g_assert_cmpuint(killed, >, 0);
    g_assert_cmpuint(completed, >, 0);
    for (int d = 0; d < DOMAINS; d++) {
        g_free(xml[d]);
        g_free(uuids[d]);
    }
    tree_teardown(&tree);
}

static void test_pass_killed(void)
{
    const char *ctl = g_getenv("IMAGECACHE_CTL");
    if (ctl == NULL) {
        g_test_skip("IMAGECACHE_CTL is not set: run through meson test");
        return;
    }
    Tree tree = {0};
    tree_setup(&tree);
    g_autoptr(GError) error = NULL;
    g_autofree char *blob = g_malloc(4 << 20);
    memset(blob, 'z', 4 << 20);
    for (int i = 0; i < 6; i++) {
        g_autofree char *name = g_strdup_printf("%040d", i);
        g_autofree char *path = g_build_filename(tree.base_dir, name, NULL);
        g_assert_true(g_file_set_contents(path, blob, 4 << 20, &error));
    }

    g_autoptr(GRand) rand = g_rand_new();
    guint n = rounds(300) / 5, completed = 0;
    int dirfd = -1;
    g_assert_true(ic_remove_open_base_dir(tree.base_dir, &dirfd, &error));
    for (guint round = 0; round < n; round++) {
        const char *argv[] = {ctl, "run", "--config", tree.config_path, NULL};
        completed += run_and_kill(argv, NULL, g_rand_int_range(rand, 0, 300000), tree.config_path);
        /* every sidecar is whole (or there is none yet) */
        for (int i = 0; i < 6; i++) {
            g_autofree char *name = g_strdup_printf("%040d", i);
            g_autoptr(IcStoredChecksum) stored = NULL;
            g_assert_true(ic_checksum_read_stored(dirfd, name, &stored, &error));
            g_assert_no_error(error);
            if (stored != NULL)
                g_assert_cmpuint(strlen(stored->sha1), ==, IC_SHA1_HEX_LEN);
        }
    }

    /* The next run an hour later clears what killed writers left. */
    g_autoptr(IcReport) report = NULL;
    IcPassOptions options = {.mode = IC_PASS_RUN};
    gint64 later = g_get_real_time() / G_USEC_PER_SEC + 7200;
    g_assert_true(ic_pass_run(tree.config, NULL, &options, later, &report, &error));
    g_autoptr(IcScan) scan = NULL;
    g_assert_true(ic_scan_base_dir(tree.base_dir, &scan, &error));
    g_assert_cmpuint(scan->temps->len, ==, 0);
    g_test_message("pass: %u runs killed at random (%u finished first); sidecars always whole", n,
                   completed);
    close(dirfd);
    tree_teardown(&tree);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
    g_test_add_func("/imagecache/crash/hook_killed", test_hook_killed);
    g_test_add_func("/imagecache/crash/pass_killed", test_pass_killed);
    return g_test_run();
}
