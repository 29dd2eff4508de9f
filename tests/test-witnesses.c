/* The filesystem witnesses the pass reads (ic_protocol_read_witnesses): when a missing
 * ledger dir means "nothing recorded yet" and when it means "unknown". */
#include "protocol.h"
#include "testutil.h"
#include "witnesses.h"

static IcUsage *read_witnesses(const IcConfig *config, IcLedgerCounts *ret_counts)
{
    g_autoptr(GError) error = NULL;
    IcUsage *usage = NULL;
    g_assert_true(ic_protocol_read_witnesses(config, NULL, NULL, NULL, NULL, 0, 1700000000, &usage,
                                             ret_counts, &error));
    g_assert_no_error(error);
    return usage;
}

static IcConfig *config_for(const IcTestTree *tree, const char *ledger_dir)
{
    g_autoptr(GError) error = NULL;
    IcConfig *config = ic_config_new();
    g_free(config->instances_path);
    config->instances_path = g_strdup(tree->root);
    config->host = g_strdup("testhost");
    if (ledger_dir != NULL)
        config->ledger_dir = g_strdup(ledger_dir);
    g_assert_true(ic_config_finish(config, &error));
    return config;
}

/* The default ledger dir, inside instances_path, not there yet: a fresh host. */
static void test_missing_default_ledger_dir(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(IcConfig) config = config_for(tree, NULL);
    IcLedgerCounts counts;
    g_autoptr(IcUsage) usage = read_witnesses(config, &counts);
    g_assert_false(usage->incomplete);
    g_assert_true(counts.known);
    g_assert_cmpuint(counts.hosts, ==, 0);
}

/* A ledger dir elsewhere that is missing may be an unmounted share. */
static void test_missing_ledger_dir_elsewhere(IcTestTree *tree, gconstpointer data)
{
    g_autofree char *elsewhere = g_strconcat(tree->root, "-shared/ledger", NULL);
    g_autoptr(IcConfig) config = config_for(tree, elsewhere);
    g_autoptr(IcUsage) usage = read_witnesses(config, NULL);
    g_assert_true(usage->incomplete);
    g_assert_nonnull(strstr(g_ptr_array_index(usage->notes, 0), "unmounted share"));

    /* An existing empty dir is what an unmounted share's mount point looks
     * like: still unknown. Once marked (ledger --init), it is read as usual. */
    g_assert_cmpint(g_mkdir_with_parents(elsewhere, 0755), ==, 0);
    g_autoptr(IcUsage) empty = read_witnesses(config, NULL);
    g_assert_true(empty->incomplete);
    g_assert_nonnull(strstr(g_ptr_array_index(empty->notes, 0), "ledger --init"));
    g_free(ic_test_write_file(elsewhere, IC_PROTOCOL_LEDGER_MARKER, "", -1));
    g_autoptr(IcUsage) again = read_witnesses(config, NULL);
    g_assert_false(again->incomplete);
    g_autofree char *shared = g_strconcat(tree->root, "-shared", NULL);
    ic_test_rmtree(shared);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
    g_test_add("/imagecache/witnesses/missing_default_ledger_dir", IcTestTree, NULL,
               ic_test_tree_setup, test_missing_default_ledger_dir, ic_test_tree_teardown);
    g_test_add("/imagecache/witnesses/missing_ledger_dir_elsewhere", IcTestTree, NULL,
               ic_test_tree_setup, test_missing_ledger_dir_elsewhere, ic_test_tree_teardown);
    return g_test_run();
}
