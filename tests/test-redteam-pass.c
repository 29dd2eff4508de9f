/* test-redteam-pass.c — the pass-side findings of the red-team review: a witness that
 * cannot be seen (a dangling disk symlink, an unmounted ledger share) is an unknown
 * user, never an absent one; names reach JSON and the terminal escaped; a dry run
 * says removal_deferred where a run would defer. */
#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "imgwriter.h"
#include "pass.h"
#include "protocol.h"
#include "report.h"
#include "testutil.h"

#define FP  "dddddddddddddddddddddddddddddddddddddddd"
#define NOW ((gint64)1700000000)

static IcReport *pass_with(IcConfig *config, IcPassMode mode)
{
    g_autoptr(GError) error = NULL;
    g_assert_true(ic_config_finish(config, &error));
    g_assert_no_error(error);
    IcReport *report = NULL;
    IcPassOptions options = {.mode = mode};
    g_assert_true(ic_pass_run(config, NULL, &options, NOW, &report, &error));
    g_assert_no_error(error);
    return report;
}

static IcConfig *tree_config(const IcTestTree *tree, const char *ledger_dir)
{
    IcConfig *config = ic_config_new();
    g_free(config->instances_path);
    config->instances_path = g_strdup(tree->root);
    if (ledger_dir != NULL)
        config->ledger_dir = g_strdup(ledger_dir);
    return config;
}

static char *old_base(const IcTestTree *tree)
{
    char *base = ic_test_write_file(tree->base_dir, FP, "data", -1);
    ic_test_set_mtime(base, NOW - 30 * 86400);
    return base;
}

static gboolean has_note(const IcReport *report, const char *needle)
{
    for (guint i = 0; i < report->notes->len; i++)
        if (strstr(g_ptr_array_index(report->notes, i), needle) != NULL)
            return TRUE;
    return FALSE;
}

/* #5: an instance's disk is a symlink to a volume mounted only on the VM's
 * host. Here it dangles, which hides the disk's base files: unknown, kept. */
static void test_dangling_disk_symlink(IcTestTree *tree, gconstpointer data)
{
    g_autofree char *base = old_base(tree);
    g_autofree char *instance = g_build_filename(tree->root, "vm1", NULL);
    g_assert_cmpint(g_mkdir(instance, 0755), ==, 0);
    g_autofree char *link = g_build_filename(instance, "disk", NULL);
    g_assert_cmpint(symlink("/nonexistent-volume/vm1/disk", link), ==, 0);

    g_autoptr(IcConfig) config = tree_config(tree, NULL);
    g_autoptr(IcReport) report = pass_with(config, IC_PASS_RUN);
    g_assert_cmpstr(ic_reason_to_string(ic_report_lookup(report, FP)->decision.reason), ==,
                    "usage_unknown");
    g_assert_true(ic_test_exists(base));
    g_assert_true(has_note(report, "vm1/disk"));
}

/* #4: a ledger dir outside instances_path that exists but is empty is what an
 * unmounted share's mount point looks like: other hosts' users are unknown
 * until the marker proves it is the share. */
static void test_unmounted_share_mount_point(IcTestTree *tree, gconstpointer data)
{
    g_autofree char *base = old_base(tree);
    g_autofree char *mount_point = g_strconcat(tree->root, "-mnt-ledger", NULL);
    g_assert_cmpint(g_mkdir(mount_point, 0755), ==, 0);

    g_autoptr(IcConfig) config = tree_config(tree, mount_point);
    g_autoptr(IcReport) report = pass_with(config, IC_PASS_RUN);
    g_assert_cmpstr(ic_reason_to_string(ic_report_lookup(report, FP)->decision.reason), ==,
                    "usage_unknown");
    g_assert_true(ic_test_exists(base));
    g_assert_true(has_note(report, "ledger --init"));

    /* Marked (the share mounted and confirmed): read as usual, and removed. */
    g_free(ic_test_write_file(mount_point, IC_PROTOCOL_LEDGER_MARKER, "", -1));
    g_autoptr(IcReport) marked = pass_with(config, IC_PASS_RUN);
    g_assert_cmpint(ic_report_lookup(marked, FP)->action, ==, IC_ACTION_REMOVED);
    g_assert_false(ic_test_exists(base));
    ic_test_rmtree(mount_point);
}

/* A missing ledger dir outside instances_path is never created: not by the
 * pass (to take its lock) and not by the hook or reconcile (the same check). */
static void test_missing_share_not_created(IcTestTree *tree, gconstpointer data)
{
    g_autofree char *base = old_base(tree);
    g_autofree char *missing = g_strconcat(tree->root, "-mnt-missing", NULL);
    g_autoptr(IcConfig) config = tree_config(tree, missing);
    ic_report_free(pass_with(config, IC_PASS_RUN));
    g_assert_true(ic_test_exists(base));
    g_assert_false(ic_test_exists(missing));

    g_autoptr(GError) error = NULL;
    g_assert_false(ic_protocol_ledger_dir_check(config, TRUE, NULL, &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_UNSAFE);
    g_assert_false(ic_test_exists(missing));
}

/* #11a: the "inside instances_path" test is not fooled by '..' (refused by
 * the config) or by a symlink below instances_path (followed to a share). */
static void test_ledger_dir_inside_not_fooled(IcTestTree *tree, gconstpointer data)
{
    g_autofree char *text = g_strdup_printf(
        "[imagecache]\ninstances_path=%s\nledger_dir=%s/../share\n", tree->root, tree->root);
    g_autofree char *path = ic_test_write_file(tree->root, "dotdot.conf", text, -1);
    g_autoptr(IcConfig) loaded = ic_config_new();
    g_autoptr(GError) error = NULL;
    g_assert_false(ic_config_load_file(loaded, path, &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_CONFIG);
    g_assert_nonnull(strstr(error->message, ".."));

    g_autofree char *base = old_base(tree);
    g_autofree char *link = g_build_filename(tree->root, "_share", NULL);
    g_assert_cmpint(symlink("/nonexistent-unmounted-share/ledger", link), ==, 0);
    g_autoptr(IcConfig) config = tree_config(tree, link);
    g_assert_true(ic_config_finish(config, &error));
    g_assert_false(ic_protocol_ledger_dir_is_local(config));
    g_autoptr(IcReport) report = pass_with(config, IC_PASS_DRY_RUN);
    g_assert_cmpstr(ic_reason_to_string(ic_report_lookup(report, FP)->decision.reason), ==,
                    "usage_unknown");
    g_assert_true(ic_test_exists(base));

    /* The default, a real dir (or none yet) below instances_path, is local. */
    g_autoptr(IcConfig) plain = tree_config(tree, NULL);
    g_assert_true(ic_config_finish(plain, &error));
    g_assert_true(ic_protocol_ledger_dir_is_local(plain));
}

/* The hook at prepare: the same check. A missing share dir is not created and
 * an empty mount point gets no record (it would hide under the share). */
static void run_hook(const IcTestTree *tree, const char *ledger_dir)
{
    const char *hook = g_getenv("IMAGECACHE_HOOK");
    g_autofree char *text = g_strdup_printf(
        "[imagecache]\ninstances_path=%s\nhost=hosta\nledger_dir=%s\n", tree->root, ledger_dir);
    g_autofree char *config = ic_test_write_file(tree->root, "hook.conf", text, -1);
    g_autofree char *xml = ic_test_write_file(
        tree->root, "dom.xml",
        "<domain type='kvm'><name>vm</name><uuid>11111111-2222-3333-4444-000000000001</uuid>"
        "<devices/></domain>",
        -1);
    g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new(
        G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_SILENCE);
    g_subprocess_launcher_setenv(launcher, "IMAGECACHE_CONFIG", config, TRUE);
    g_subprocess_launcher_setenv(launcher, "IMAGECACHE_HOOK_LOG_STDERR", "1", TRUE);
    g_subprocess_launcher_set_stdin_file_path(launcher, xml);
    g_autoptr(GError) error = NULL;
    g_autoptr(GSubprocess) proc =
        g_subprocess_launcher_spawn(launcher, &error, hook, "vm", "prepare", "begin", "-", NULL);
    g_assert_no_error(error);
    g_assert_true(g_subprocess_wait_check(proc, NULL, &error));
    g_assert_no_error(error);
}

static void test_hook_leaves_unproven_share(IcTestTree *tree, gconstpointer data)
{
    if (g_getenv("IMAGECACHE_HOOK") == NULL) {
        g_test_skip("IMAGECACHE_HOOK is not set: run through meson test");
        return;
    }
    g_autofree char *missing = g_strconcat(tree->root, "-mnt-missing", NULL);
    run_hook(tree, missing);
    g_assert_false(ic_test_exists(missing));

    g_autofree char *mount_point = g_strconcat(tree->root, "-mnt-empty", NULL);
    g_assert_cmpint(g_mkdir(mount_point, 0755), ==, 0);
    run_hook(tree, mount_point);
    g_autofree char *ledger = g_build_filename(mount_point, "hosta.ledger", NULL);
    g_assert_false(ic_test_exists(ledger));

    /* Marked: recorded as usual. */
    g_free(ic_test_write_file(mount_point, IC_PROTOCOL_LEDGER_MARKER, "", -1));
    run_hook(tree, mount_point);
    g_assert_true(ic_test_exists(ledger));
    ic_test_rmtree(mount_point);
}

/* #10: an instance dir's name is any bytes, and reaches the report as a user.
 * JSON stays valid (each invalid byte U+FFFD); the text report shows control
 * characters and invalid bytes as \\xNN, never raw. */
static void test_names_escaped(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *base = old_base(tree);
    g_autofree char *instance = g_build_filename(tree->root, "vm\xff\x1b[2J\xc2\x9b\xc3\xa9", NULL);
    g_assert_cmpint(g_mkdir(instance, 0755), ==, 0);
    g_autofree char *disk = g_build_filename(instance, "disk", NULL);
    g_assert_true(ic_test_write_qcow2(disk, 3, 1 << 20, base, "raw", &error));
    g_assert_no_error(error);
    g_autoptr(IcConfig) config = tree_config(tree, NULL);
    g_autoptr(IcReport) report = pass_with(config, IC_PASS_REPORT);
    g_assert_cmpuint(ic_report_lookup(report, FP)->users->len, ==, 1);

    g_autofree char *json = ic_report_to_json(report);
    g_autoptr(JsonParser) parser = json_parser_new();
    g_assert_true(json_parser_load_from_data(parser, json, -1, &error));
    g_assert_no_error(error);
    g_assert_nonnull(strstr(json, "vm\\ufffd\\u001b[2J\xc2\x9b\xc3\xa9"));

    g_autofree char *table = ic_report_to_table(report);
    g_assert_null(strchr(table, '\x1b'));
    g_assert_null(strchr(table, '\xff'));
    g_assert_nonnull(strstr(table, "vm\\xff\\x1b[2J\\xc2\\x9b\xc3\xa9"));
    g_autofree char *explain = ic_report_explain(report, ic_report_lookup(report, FP));
    g_assert_null(strchr(explain, '\x1b'));
}

/* #11: where the run cannot take the usage lock (here its lock file is a
 * symlink, never followed) it defers; the dry run and the report must say
 * removal_deferred too, not would_remove, and change nothing. */
static void test_dry_run_sees_deferral(IcTestTree *tree, gconstpointer data)
{
    g_autofree char *base = old_base(tree);
    g_autofree char *ledger_dir = g_build_filename(tree->root, "_ledger", NULL);
    g_assert_cmpint(g_mkdir(ledger_dir, 0755), ==, 0);
    g_autofree char *lock = g_build_filename(ledger_dir, ".usage.lock", NULL);
    g_assert_cmpint(symlink("/nonexistent", lock), ==, 0);
    g_autoptr(IcConfig) config = tree_config(tree, NULL);

    const IcPassMode modes[] = {IC_PASS_REPORT, IC_PASS_DRY_RUN, IC_PASS_RUN};
    for (gsize i = 0; i < G_N_ELEMENTS(modes); i++) {
        g_autoptr(IcReport) report = pass_with(config, modes[i]);
        const IcImageRow *row = ic_report_lookup(report, FP);
        g_assert_cmpstr(ic_reason_to_string(row->decision.reason), ==, "removal_deferred");
        g_assert_cmpint(row->action, ==, IC_ACTION_NONE);
        g_assert_true(has_note(report, "could not take the usage lock"));
        g_assert_true(ic_test_exists(base));
    }

    /* Usable again: the dry run plans the removal, and creates nothing. */
    g_assert_cmpint(g_unlink(lock), ==, 0);
    g_autoptr(IcReport) dry = pass_with(config, IC_PASS_DRY_RUN);
    g_assert_cmpint(ic_report_lookup(dry, FP)->action, ==, IC_ACTION_WOULD_REMOVE);
    g_assert_false(ic_test_exists(lock));
}

#define ADD(path, func)                                                                            \
    g_test_add(path, IcTestTree, NULL, ic_test_tree_setup, func, ic_test_tree_teardown)

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
    ADD("/imagecache/redteam-pass/dangling_disk_symlink", test_dangling_disk_symlink);
    ADD("/imagecache/redteam-pass/unmounted_share_mount_point", test_unmounted_share_mount_point);
    ADD("/imagecache/redteam-pass/missing_share_not_created", test_missing_share_not_created);
    ADD("/imagecache/redteam-pass/ledger_dir_inside_not_fooled", test_ledger_dir_inside_not_fooled);
    ADD("/imagecache/redteam-pass/hook_leaves_unproven_share", test_hook_leaves_unproven_share);
    ADD("/imagecache/redteam-pass/names_escaped", test_names_escaped);
    ADD("/imagecache/redteam-pass/dry_run_sees_deferral", test_dry_run_sees_deferral);
    return g_test_run();
}
