/* test-usage.c — who counts as a user: one domain named by several witnesses
 * (the ledger and libvirt by UUID and name, the instances dir by its UUID
 * directory) is one user, shown by its name (issue 14, item 8). */
#include <string.h>

#include "fileutil.h"
#include "imgwriter.h"
#include "pass.h"
#include "testutil.h"
#include "usage.h"

#include <glib/gstdio.h>

#define UUID      "3f2a4b8e-1c1d-4e0f-9a55-0123456789ab"
#define UUID_UP   "3F2A4B8E-1C1D-4E0F-9A55-0123456789AB"
#define OTHER     "9d0c5b1e-7a4e-4b8c-8d3f-fedcba987654"
#define BASE_PATH "/i/_base/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define FP        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static void assert_users(const IcUsers *users, guint local, guint remote, const char *labels)
{
    g_assert_nonnull(users);
    g_autofree char *got = ic_test_users_text(users);
    g_assert_cmpstr(got, ==, labels);
    g_assert_cmpuint(users->local, ==, local);
    g_assert_cmpuint(users->remote, ==, remote);
}

typedef struct {
    const char *what;
    /* up to four reports of a user of BASE_PATH: uuid, name, host, local */
    struct {
        const char *uuid, *name, *host;
        gboolean local;
    } seen[4];
    guint local, remote;
    const char *labels;
} UserCase;

static const UserCase user_cases[] = {
    {"ledger, then the instances dir by UUID",
     {{UUID, "vm1", "h", TRUE}, {UUID, NULL, "h", TRUE}},
     1,
     0,
     "vm1"},
    {"the instances dir first: the name replaces the UUID",
     {{UUID, NULL, "h", TRUE}, {UUID, "vm1", "h", TRUE}},
     1,
     0,
     "vm1"},
    {"UUIDs compare without case",
     {{UUID_UP, NULL, "h", TRUE}, {UUID, "vm1", "h", TRUE}},
     1,
     0,
     "vm1"},
    {"only the instances dir: shown by UUID", {{UUID, NULL, "h", TRUE}}, 1, 0, UUID},
    {"an old layout's dir named like the domain",
     {{NULL, "instance-00000001", "h", TRUE}, {UUID, "instance-00000001", "h", TRUE}},
     1,
     0,
     "instance-00000001"},
    {"two domains with one name are two users",
     {{UUID, "vm1", "h", TRUE}, {OTHER, "vm1", "h", TRUE}},
     2,
     0,
     "vm1,vm1"},
    {"the same UUID on another host is a remote user",
     {{UUID, "vm1", "h", TRUE}, {UUID, "vm1", "g", FALSE}, {UUID, NULL, "h", TRUE}},
     1,
     1,
     "vm1,vm1@g"},
    /* Two users named "web", the first without a UUID, the second named
     * late: a domain named "web" is the first, as a search in order finds. */
    {"a name learnt late does not hide an earlier user of that name",
     {{NULL, "web", "h", TRUE},
      {UUID, NULL, "h", TRUE},
      {UUID, "web", "h", TRUE},
      {OTHER, "web", "h", TRUE}},
     2,
     0,
     "web,web"},
};

static void test_one_user_per_uuid(gconstpointer data)
{
    const UserCase *c = data;
    g_autoptr(IcUsage) usage = ic_usage_new();
    for (guint i = 0; i < G_N_ELEMENTS(c->seen) && c->seen[i].host; i++)
        ic_usage_add_path_user(usage, BASE_PATH, c->seen[i].uuid, c->seen[i].name, c->seen[i].host,
                               c->seen[i].local, IC_WITNESS_STATIC);
    assert_users(ic_usage_lookup_path(usage, BASE_PATH), c->local, c->remote, c->labels);
}

/* The same cases in a set already holding 20 users: past 16 users a set is
 * indexed by a hash table instead of searched slot by slot (issue 15); both
 * ways must count the same users. */
static void check_with_fillers(const UserCase *c, guint fillers)
{
    g_autoptr(IcUsage) usage = ic_usage_new();
    g_autoptr(GString) labels = g_string_new(NULL);
    for (guint i = 0; i < fillers; i++) {
        g_autofree char *uuid = g_strdup_printf("00000000-0000-0000-0000-0000000000%02u", i);
        g_autofree char *name = g_strdup_printf("filler%02u", i);
        /* each filler twice, by UUID then with its name: one user */
        ic_usage_add_path_user(usage, BASE_PATH, uuid, NULL, "h", TRUE, IC_WITNESS_STATIC);
        ic_usage_add_path_user(usage, BASE_PATH, uuid, name, "h", TRUE, IC_WITNESS_STATIC);
        g_string_append_printf(labels, "%s,", name);
    }
    for (guint i = 0; i < G_N_ELEMENTS(c->seen) && c->seen[i].host; i++)
        ic_usage_add_path_user(usage, BASE_PATH, c->seen[i].uuid, c->seen[i].name, c->seen[i].host,
                               c->seen[i].local, IC_WITNESS_STATIC);
    g_string_append(labels, c->labels);
    assert_users(ic_usage_lookup_path(usage, BASE_PATH), c->local + fillers, c->remote,
                 labels->str);
}

static void test_one_user_per_uuid_large(gconstpointer data)
{
    check_with_fillers(data, 20);
}

/* The same cases in a set one user short of what it holds in its own
 * allocation (IC_USERS_INLINE): each case's users move to an array of their
 * own while the case runs, and what is learnt after the move (a name, a
 * UUID) must land on the moved user. */
static void test_one_user_per_uuid_inline_edge(gconstpointer data)
{
    check_with_fillers(data, IC_USERS_INLINE - 1);
}

/* The tables merge by UUID too: a path user and a fingerprint user that are
 * one domain, and usages merged from two walker threads. */
static void test_merge_by_uuid(void)
{
    g_autoptr(IcUsage) usage = ic_usage_new();
    ic_usage_add_path_user(usage, BASE_PATH, UUID, NULL, "h", TRUE, IC_WITNESS_INSTANCES_DIR);
    ic_usage_add_fingerprint_user(usage, FP, UUID, "vm1", "h", TRUE, IC_WITNESS_LEDGER);
    g_autoptr(IcUsers) users = ic_usage_users_of(usage, "/i/_base", FP, FP, 0, 0);
    assert_users(users, 1, 0, "vm1"); /* first seen by UUID, named by the ledger */
    g_assert_cmpuint(users->witnesses, ==, IC_WITNESS_INSTANCES_DIR | IC_WITNESS_LEDGER);

    g_autoptr(IcUsage) merged = ic_usage_new();
    g_autoptr(IcUsage) named = ic_usage_new();
    ic_usage_add_path_user(named, BASE_PATH, UUID, "vm1", "h", TRUE, IC_WITNESS_LIBVIRT);
    ic_usage_merge(merged, usage);
    ic_usage_merge(merged, named);
    assert_users(ic_usage_lookup_path(merged, BASE_PATH), 1, 0, "vm1");
}

/* Through a real pass: the instances dir <uuid>/disk and a ledger-like
 * witness naming the same domain count one local user, shown by name. */
static void name_the_domain(IcUsage *usage, gint64 now, gpointer base_file)
{
    ic_usage_add_path_user(usage, base_file, UUID, "vm1", "testhost", TRUE, IC_WITNESS_LEDGER);
}

static void test_pass_counts_one_vm_once(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *base_file = ic_test_write_file(tree->base_dir, FP, "base", -1);
    g_autofree char *instance = g_build_filename(tree->root, UUID, NULL);
    g_assert_cmpint(g_mkdir_with_parents(instance, 0755), ==, 0);
    g_autofree char *disk = g_build_filename(instance, "disk", NULL);
    g_assert_true(ic_test_write_qcow2(disk, 3, 1 << 20, base_file, "raw", &error));
    g_assert_no_error(error);

    g_autoptr(IcConfig) config = ic_config_new();
    g_assert_true(ic_config_set(config, "instances_path", tree->root, "test", &error));
    g_assert_true(ic_config_set(config, "host", "testhost", "test", &error));
    g_assert_true(ic_config_finish(config, &error));
    IcPassOptions options = {
        .mode = IC_PASS_REPORT,
        .witnesses = name_the_domain,
        .witnesses_data = base_file,
    };
    g_autoptr(IcReport) report = NULL;
    g_assert_true(ic_pass_run(config, NULL, &options, 1700000000, &report, &error));
    g_assert_no_error(error);
    const IcImageRow *row = ic_report_lookup(report, FP);
    g_assert_nonnull(row);
    g_assert_cmpuint(row->local_users, ==, 1);
    g_assert_cmpuint(row->users->len, ==, 1);
    g_assert_cmpstr(g_ptr_array_index(row->users, 0), ==, "vm1");
    g_assert_true(row->witnesses & IC_WITNESS_INSTANCES_DIR);
    g_assert_true(row->witnesses & IC_WITNESS_LEDGER);
}

/* Every note code is documented where scripts look for it: the JSON Schema
 * (an enum, so output with an undocumented code fails tests/test-cli-json.py)
 * and imagecachectl(1). */
static void test_note_codes_documented(void)
{
    static const char *const docs[] = {"docs/report.schema.json", "man/imagecachectl.1.scd"};
    for (gsize d = 0; d < G_N_ELEMENTS(docs); d++) {
        g_autofree char *path = g_test_build_filename(G_TEST_DIST, "..", docs[d], NULL);
        g_autofree char *text = NULL;
        g_autoptr(GError) error = NULL;
        g_assert_true(g_file_get_contents(path, &text, NULL, &error));
        g_assert_no_error(error);
        for (IcNoteCode code = 0; code < _IC_NOTE_MAX; code++) {
            const char *name = ic_note_code_to_string(code);
            g_autofree char *quoted = g_strdup_printf(d == 0 ? "\"%s\"" : "*%s*", name);
            if (strstr(text, quoted) == NULL)
                g_error("note code '%s' is not documented in %s", name, docs[d]);
        }
    }
}

/* ic_int64_text writes what printf's "%" G_GINT64_FORMAT writes (the JSON
 * writer and the ledger depend on it), at both ends of the range too. */
static void test_int64_text(void)
{
    const gint64 values[] = {0,
                             1,
                             -1,
                             9,
                             10,
                             -10,
                             99,
                             100,
                             1700000000,
                             G_MAXINT32,
                             (gint64)G_MAXINT32 + 1,
                             G_MININT64,
                             G_MININT64 + 1,
                             G_MAXINT64};
    for (guint i = 0; i < G_N_ELEMENTS(values); i++) {
        char buf[IC_INT64_TEXT_SIZE];
        gsize len = 0;
        const char *text = ic_int64_text(values[i], buf, &len);
        g_autofree char *got = g_strndup(text, len);
        g_autofree char *want = g_strdup_printf("%" G_GINT64_FORMAT, values[i]);
        g_assert_cmpstr(got, ==, want);
    }
}

/* The paths usage and the pass key users by are g_build_filename's, byte
 * for byte, whatever the spelling of the base dir (ic_path_join's fast path). */
static void test_path_join(void)
{
    static const char *const dirs[] = {"/i/_base", "/i/_base/", "/", "",
                                       "i",        "//i//",     ".", "/i/./_base"};
    static const char *const names[] = {"f", "/f", "f/", "", "//f", "a/b", ".", "f g"};
    for (gsize d = 0; d < G_N_ELEMENTS(dirs); d++) {
        for (gsize n = 0; n < G_N_ELEMENTS(names); n++) {
            g_autofree char *want = g_build_filename(dirs[d], names[n], NULL);
            g_autofree char *got = ic_path_join(dirs[d], names[n]);
            g_assert_cmpstr(got, ==, want);
        }
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
    for (gsize i = 0; i < G_N_ELEMENTS(user_cases); i++) {
        g_autofree char *path = g_strdup_printf("/imagecache/usage/one_user_per_uuid/%zu", i);
        g_test_add_data_func(path, &user_cases[i], test_one_user_per_uuid);
        g_autofree char *large =
            g_strdup_printf("/imagecache/usage/one_user_per_uuid_large/%zu", i);
        g_test_add_data_func(large, &user_cases[i], test_one_user_per_uuid_large);
        g_autofree char *edge =
            g_strdup_printf("/imagecache/usage/one_user_per_uuid_inline_edge/%zu", i);
        g_test_add_data_func(edge, &user_cases[i], test_one_user_per_uuid_inline_edge);
    }
    g_test_add_func("/imagecache/usage/merge_by_uuid", test_merge_by_uuid);
    g_test_add("/imagecache/usage/pass_counts_one_vm_once", IcTestTree, NULL, ic_test_tree_setup,
               test_pass_counts_one_vm_once, ic_test_tree_teardown);
    g_test_add_func("/imagecache/usage/note_codes_documented", test_note_codes_documented);
    g_test_add_func("/imagecache/usage/path_join", test_path_join);
    g_test_add_func("/imagecache/usage/int64_text", test_int64_text);
    return g_test_run();
}
