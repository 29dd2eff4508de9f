/* test-golden.c — every output of imagecachectl pinned by a golden file
 * (libvirt's virTestCompareToFile): the report table, --json, --explain,
 * --explain --json, ledger and ledger --json on one fixed tree at a fixed
 * time, compared byte for byte with tests/data/report/<name>. A renamed JSON
 * key, a changed column or changed words fail here; when the change is meant,
 * IMAGECACHE_REGENERATE_GOLDEN=1 rewrites the files (review the diff).
 *
 * The commands run as imagecachectl-fixed-clock ($IMAGECACHE_CTL): the real
 * commands with "now" read from $IMAGECACHE_TEST_NOW. What still differs
 * between runs (the temp dir, the filesystem's size, the pass's duration) is
 * replaced in one place, normalise(). */
#include <string.h>
#include <sys/wait.h>

#include "ledger-store.h"
#include "testutil.h"

#define NOW 1700000000 /* 2023-11-14T22:13:20Z */
#define DAY 86400

#define UNUSED_OLD   "1111111111111111111111111111111111111111"
#define UNUSED_YOUNG "2222222222222222222222222222222222222222"
#define IN_USE_LOCAL "3333333333333333333333333333333333333333"
#define IN_USE_OTHER "4444444444444444444444444444444444444444_10"
#define PINNED       "5555555555555555555555555555555555555555"
#define ABSENT       "6666666666666666666666666666666666666666"

typedef struct {
    char *root; /* the instances path; "@ROOT@" in the golden files */
    char *config;
} Golden;

static void record(const Golden *g, const char *host, const char *uuid, const char *name,
                   const char *base_file, gint64 when)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcLedgerDomain) domain = ic_ledger_domain_new(uuid, name);
    g_ptr_array_add(domain->base_files, g_strdup(base_file)); /* a name in the base dir */
    domain->started = when;
    g_autofree char *ledger_dir = g_build_filename(g->root, "_ledger", NULL);
    g_assert_true(ic_ledger_record_domain(ledger_dir, host, domain, when, &error));
    g_assert_no_error(error);
}

static void add_base_file(const Golden *g, const char *name, const char *contents, gint64 mtime)
{
    g_autofree char *base = g_build_filename(g->root, "_base", NULL);
    g_autofree char *path = ic_test_write_file(base, name, contents, -1);
    ic_test_set_mtime(path, mtime);
}

/* One of each kind of row: removable, too young, in use here, in use on a
 * stale host, pinned, in use but absent, and a skipped entry. Libvirt is
 * asked at a socket that does not exist (not consulted, the same everywhere). */
static void golden_setup(Golden *g, gconstpointer data)
{
    (void)data;
    g->root = ic_test_mkdtemp();
    add_base_file(g, UNUSED_OLD, "unused for a month\n", NOW - 30 * DAY);
    add_base_file(g, UNUSED_YOUNG, "written a minute ago\n", NOW - 60);
    add_base_file(g, IN_USE_LOCAL, "in use here\n", NOW - 10 * DAY);
    add_base_file(g, IN_USE_OTHER, "in use on a stale host\n", NOW - 10 * DAY);
    add_base_file(g, PINNED, "pinned\n", NOW - 30 * DAY);
    add_base_file(g, "not-a-base-file", "junk\n", NOW - 30 * DAY);
    record(g, "golden", "3f2504e0-4f89-41d3-9a0c-0305e82c3301", "instance-00000001", IN_USE_LOCAL,
           NOW - 2 * DAY);
    record(g, "golden", "3f2504e0-4f89-41d3-9a0c-0305e82c3302", "instance-00000002", ABSENT,
           NOW - DAY);
    record(g, "other", "3f2504e0-4f89-41d3-9a0c-0305e82c3303", "instance-00000003", IN_USE_OTHER,
           NOW - 3 * DAY);
    g_autofree char *conf =
        g_strdup_printf("[imagecache]\ninstances_path=%s\nhost=golden\n"
                        "libvirt_uri=qemu+unix:///system?socket=%s/no-libvirtd.sock\n"
                        "pinned_images=" PINNED "\ndisk_high_watermark_percent=0\n",
                        g->root, g->root);
    g->config = ic_test_write_file(g->root, "imagecache.conf", conf, -1);
}

static void golden_teardown(Golden *g, gconstpointer data)
{
    (void)data;
    ic_test_rmtree(g->root);
    g_free(g->root);
    g_free(g->config);
}

/* Replaces @pattern's first group, everywhere in @text, with @with. */
static char *replace_group(const char *text, const char *pattern, const char *with)
{
    g_autoptr(GRegex) regex = g_regex_new(pattern, G_REGEX_MULTILINE, 0, NULL);
    g_assert_nonnull(regex);
    g_autofree char *replacement = g_strdup_printf("\\g<1>%s\\g<2>", with);
    return g_regex_replace(regex, text, -1, 0, replacement, 0, NULL);
}

/* The one place where what differs between runs is made the same. */
static char *normalise(const char *text, const char *root)
{
    static const struct {
        const char *pattern; /* (kept)(replaced)(kept) */
        const char *with;
    } rules[] = {
        {"(\"duration_seconds\" : )[0-9.e+-]+(,?)$", "0"},
        {"(\"machine_id\" : \")[0-9a-f]+(\",?)$", "@MACHINE_ID@"}, /* /etc/machine-id */
        {"(\"total_bytes\" : )[0-9]+(,?)$", "0"},
        {"(\"used_bytes\" : )[0-9]+(,?)$", "0"},
        {"(\"used_percent\" : )[0-9.e+-]+(,?)$", "0"},
        {"(Filesystem: ).* used \\([0-9.]+%\\)(;)", "@DISK@"},
        {"(disk: +)[0-9.]+%( used)", "@PERCENT@"},
    };
    g_autofree char *out = NULL;
    g_auto(GStrv) parts = g_strsplit(text, root, -1);
    out = g_strjoinv("@ROOT@", parts);
    for (gsize i = 0; i < G_N_ELEMENTS(rules); i++) {
        char *next = replace_group(out, rules[i].pattern, rules[i].with);
        g_free(out);
        out = next;
    }
    return g_steal_pointer(&out);
}

/* Runs imagecachectl @args with the fixed clock; its exit status must be
 * @status; returns its normalised stdout. */
static char *run_ctl(const Golden *g, const char *const *args, int status)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_ptr_array_add(argv, (gpointer)g_getenv("IMAGECACHE_CTL"));
    for (gsize i = 0; args[i] != NULL; i++)
        g_ptr_array_add(argv, (gpointer)args[i]);
    g_ptr_array_add(argv, "--config");
    g_ptr_array_add(argv, g->config);
    g_ptr_array_add(argv, NULL);
    g_autofree char *now = g_strdup_printf("%d", NOW);
    /* The command logs its warnings (libvirt unreachable) as it does for a user. */
    g_auto(GStrv) env = g_environ_unsetenv(g_get_environ(), "G_DEBUG");
    env = g_environ_setenv(env, "IMAGECACHE_TEST_NOW", now, TRUE);

    g_autofree char *out = NULL;
    g_autofree char *err = NULL;
    int wait_status = 0;
    g_autoptr(GError) error = NULL;
    g_assert_true(g_spawn_sync(NULL, (char **)argv->pdata, env, G_SPAWN_DEFAULT, NULL, NULL, &out,
                               &err, &wait_status, &error));
    g_assert_no_error(error);
    if (!WIFEXITED(wait_status) || WEXITSTATUS(wait_status) != status)
        g_error("%s: exit status %d, not %d; stderr: %s", args[0], WEXITSTATUS(wait_status), status,
                err);
    return normalise(out, g->root);
}

/* Compares @actual with tests/data/report/@name, or rewrites the file when
 * IMAGECACHE_REGENERATE_GOLDEN is set. */
static void compare_golden(const char *name, const char *actual)
{
    g_autofree char *path = ic_test_data_path("report", name);
    g_autoptr(GError) error = NULL;
    if (g_getenv("IMAGECACHE_REGENERATE_GOLDEN") != NULL) {
        g_assert_true(g_file_set_contents(path, actual, -1, &error));
        g_assert_no_error(error);
        g_test_message("regenerated %s", path);
        return;
    }
    g_autofree char *expected = NULL;
    if (!g_file_get_contents(path, &expected, NULL, &error))
        g_error("%s (IMAGECACHE_REGENERATE_GOLDEN=1 writes it)", error->message);
    if (g_strcmp0(expected, actual) != 0) {
        g_test_message("output differs from golden file '%s' (IMAGECACHE_REGENERATE_GOLDEN=1 "
                       "rewrites it if the change is meant); got:\n%s",
                       path, actual);
        g_test_fail();
    }
}

typedef struct {
    const char *golden; /* file name in tests/data/report/ */
    int status;         /* expected exit status */
    const char *args[6];
} GoldenCase;

/* The absent file the ledger names makes report exit 3 (problems found); the
 * stale host "other" makes nothing fail. */
static const GoldenCase cases[] = {
    {"report.table", 3, {"report", NULL}},
    {"report.json", 3, {"report", "--json", NULL}},
    {"in-use.explain", 0, {"report", "--explain", IN_USE_LOCAL, NULL}},
    {"in-use.explain.json", 0, {"report", "--explain", IN_USE_LOCAL, "--json", NULL}},
    {"unused.explain", 0, {"report", "--explain", UNUSED_OLD, NULL}},
    {"unused.explain.json", 0, {"report", "--explain", UNUSED_OLD, "--json", NULL}},
    {"pinned.explain", 0, {"report", "--explain", PINNED, NULL}},
    {"absent.explain", 0, {"report", "--explain", ABSENT, NULL}},
    {"ledger.txt", 0, {"ledger", NULL}},
    {"ledger.json", 0, {"ledger", "--json", NULL}},
};

static void test_golden(Golden *g, gconstpointer data)
{
    const GoldenCase *c = data;
    g_autofree char *out = run_ctl(g, c->args, c->status);
    compare_golden(c->golden, out);
}

/* The comparison itself can fail: one renamed key in the JSON report, one
 * changed column header in the table. */
static void test_golden_catches_rename(Golden *g, gconstpointer data)
{
    (void)data;
    g_autofree char *json = run_ctl(g, cases[1].args, 3);
    g_autofree char *renamed = replace_group(json, "(\")bytes_reclaimed(\")", "reclaimed_bytes");
    g_assert_cmpstr(renamed, !=, json);
    g_autofree char *table = run_ctl(g, cases[0].args, 3);
    g_autofree char *column = replace_group(table, "^(.*)VERDICT( )", "DECISION");
    g_assert_cmpstr(column, !=, table);

    g_autofree char *golden_json = ic_test_data_path("report", cases[1].golden);
    g_autofree char *golden_table = ic_test_data_path("report", cases[0].golden);
    g_autofree char *expected_json = NULL;
    g_autofree char *expected_table = NULL;
    g_assert_true(g_file_get_contents(golden_json, &expected_json, NULL, NULL));
    g_assert_true(g_file_get_contents(golden_table, &expected_table, NULL, NULL));
    g_assert_cmpstr(expected_json, ==, json);
    g_assert_cmpstr(expected_json, !=, renamed);
    g_assert_cmpstr(expected_table, ==, table);
    g_assert_cmpstr(expected_table, !=, column);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
    g_test_summary("imagecachectl's outputs equal the golden files in tests/data/report/");
    if (g_getenv("IMAGECACHE_CTL") == NULL) {
        g_test_skip("IMAGECACHE_CTL (imagecachectl-fixed-clock) is not set");
        return g_test_run();
    }
    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *path = g_strconcat("/imagecache/golden/", cases[i].golden, NULL);
        g_test_add(path, Golden, &cases[i], golden_setup, test_golden, golden_teardown);
    }
    if (g_getenv("IMAGECACHE_REGENERATE_GOLDEN") == NULL)
        g_test_add("/imagecache/golden/catches_rename", Golden, NULL, golden_setup,
                   test_golden_catches_rename, golden_teardown);
    return g_test_run();
}
