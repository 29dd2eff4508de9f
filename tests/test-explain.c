/* test-explain.c — what `report --explain` and `--json` say about a report built
 * by hand (issue 14, items 11-13): "in use" instead of an age, witnesses that
 * were not consulted, ISO 8601 times, format_version, the filesystem block, coded
 * notes, and the "problems found" test behind exit status 3. */
#include <json-glib/json-glib.h>
#include <string.h>

#include "report.h"

#define NOW      1700000000 /* 2023-11-14T22:13:20Z */
#define MTIME    1699990000 /* 2023-11-14T19:26:40Z */
#define RELEASED 1699995000 /* 2023-11-14T20:50:00Z */
#define FP       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static IcReport *report_with_row(guint local_users, IcVerdict verdict, IcReason reason)
{
    IcReport *report = ic_report_new("/i/_base", "hv1", NOW);
    report->base_dir_exists = TRUE;
    report->disk_known = TRUE;
    report->disk_total_bytes = 1000;
    report->disk_used_bytes = 250;
    report->disk_high_watermark_percent = 90;
    report->disk_low_watermark_percent = 80;
    ic_report_add_note(report, IC_NOTE_LIBVIRT_UNREACHABLE,
                       "live domains not consulted: cannot connect");
    IcImageRow *row = ic_report_add_row(report, FP);
    row->kind = IC_KIND_ORIGINAL;
    row->present = TRUE;
    row->size = 42;
    row->mtime = MTIME;
    row->last_used = RELEASED;
    row->local_users = local_users;
    if (local_users > 0) {
        g_ptr_array_add(row->users, g_strdup("vm1"));
        row->witnesses = IC_WITNESS_INSTANCES_DIR;
    }
    row->decision = (IcPolicyDecision){
        .verdict = verdict, .reason = reason, .age = NOW - MTIME, .threshold = 86400};
    ic_report_finish(report);
    return report;
}

static void assert_contains(const char *text, const char *part)
{
    if (strstr(text, part) == NULL)
        g_error("'%s' not found in:\n%s", part, text);
}

static void test_explain_in_use(void)
{
    g_autoptr(IcReport) report = report_with_row(1, IC_VERDICT_ACTIVE, IC_REASON_IN_USE_LOCAL);
    g_autofree char *text = ic_report_explain(report, ic_report_lookup(report, FP));
    assert_contains(text, "\nage:      in use (mtime 2023-11-14T19:26:40Z, last released "
                          "2023-11-14T20:50:00Z)\n");
    assert_contains(text, "\n  libvirt        not consulted\n");
    assert_contains(text, "\n  instances_dir  names a user\n");
    assert_contains(text, "\n  ledger         names no user\n");
    assert_contains(text, "\nas of:    2023-11-14T22:13:20Z on host hv1\n");
    g_assert_null(strstr(text, "unused for"));
}

static void test_explain_unused(void)
{
    g_autoptr(IcReport) report = report_with_row(0, IC_VERDICT_TOO_YOUNG, IC_REASON_TOO_YOUNG);
    g_autofree char *text = ic_report_explain(report, ic_report_lookup(report, FP));
    assert_contains(text, "\nage:      unused for 2h (mtime 2023-11-14T19:26:40Z, last released "
                          "2023-11-14T20:50:00Z); minimum age for this verdict 24h\n");
}

static JsonObject *parse_object(const char *json, JsonParser *parser)
{
    g_autoptr(GError) error = NULL;
    g_assert_true(json_parser_load_from_data(parser, json, -1, &error));
    g_assert_no_error(error);
    return json_node_get_object(json_parser_get_root(parser));
}

static void test_explain_json(void)
{
    g_autoptr(IcReport) report = report_with_row(1, IC_VERDICT_ACTIVE, IC_REASON_IN_USE_LOCAL);
    g_autofree char *json = ic_report_explain_to_json(report, ic_report_lookup(report, FP));
    g_autoptr(JsonParser) parser = json_parser_new();
    JsonObject *root = parse_object(json, parser);
    g_assert_cmpint(json_object_get_int_member(root, "format_version"), ==, 1);
    g_assert_true(json_object_get_boolean_member(root, "in_use"));
    g_assert_cmpstr(
        json_object_get_string_member(json_object_get_object_member(root, "image"), "name"), ==,
        FP);
    JsonArray *answers = json_object_get_array_member(root, "witness_answers");
    g_assert_cmpuint(json_array_get_length(answers), ==, 3);
    JsonObject *libvirt = json_array_get_object_element(answers, 1);
    g_assert_cmpstr(json_object_get_string_member(libvirt, "witness"), ==, "libvirt");
    g_assert_false(json_object_get_boolean_member(libvirt, "consulted"));
}

static void test_report_json(void)
{
    g_autoptr(IcReport) report = report_with_row(0, IC_VERDICT_REMOVABLE, IC_REASON_UNUSED);
    g_autofree char *json = ic_report_to_json(report);
    g_autoptr(JsonParser) parser = json_parser_new();
    JsonObject *root = parse_object(json, parser);
    g_assert_cmpint(json_object_get_int_member(root, "format_version"), ==, 1);
    JsonObject *fs = json_object_get_object_member(root, "filesystem");
    g_assert_true(json_object_get_boolean_member(fs, "known"));
    g_assert_cmpint(json_object_get_int_member(fs, "used_bytes"), ==, 250);
    g_assert_cmpint(json_object_get_int_member(fs, "high_watermark_percent"), ==, 90);
    g_assert_cmpfloat(json_object_get_double_member(fs, "used_percent"), ==, 25.0);
    JsonObject *note =
        json_array_get_object_element(json_object_get_array_member(root, "notes"), 0);
    g_assert_cmpstr(json_object_get_string_member(note, "code"), ==, "libvirt_unreachable");
    g_assert_cmpstr(json_object_get_string_member(note, "witness"), ==, "libvirt");
    g_assert_false(json_object_get_boolean_member(note, "blocks_removal"));
}

/* Every witness below _IC_WITNESS_MAX has a name and shows in explain and
 * JSON when it names a user: a new witness cannot be left out by a loop. */
static void test_every_witness_listed(void)
{
    g_autoptr(IcReport) report = report_with_row(1, IC_VERDICT_ACTIVE, IC_REASON_IN_USE_LOCAL);
    IcImageRow *row = (IcImageRow *)ic_report_lookup(report, FP);
    row->witnesses = _IC_WITNESS_MAX - 1;
    g_autofree char *text = ic_report_explain(report, row);
    g_autofree char *json = ic_report_to_json(report);
    g_autoptr(JsonParser) parser = json_parser_new();
    JsonObject *root = parse_object(json, parser);
    JsonObject *image =
        json_array_get_object_element(json_object_get_array_member(root, "images"), 0);
    JsonArray *named = json_object_get_array_member(image, "witnesses");
    guint n = 0;
    IC_WITNESS_FOREACH (witness) {
        const char *name = ic_witness_to_string(witness);
        g_assert_cmpstr(name, !=, "unknown");
        g_autofree char *line = g_strdup_printf("\n  %-14s names a user\n", name);
        assert_contains(text, line);
        g_assert_cmpstr(json_array_get_string_element(named, n), ==, name);
        n++;
    }
    g_assert_cmpuint(json_array_get_length(named), ==, n);
    g_assert_cmpuint(n, ==, g_bit_nth_lsf(_IC_WITNESS_MAX, -1));
}

/* Exit status 3 of report/run: corrupt or absent files, nothing else. */
static void test_has_problems(void)
{
    static const struct {
        IcVerdict verdict;
        IcReason reason;
        gboolean problem;
    } cases[] = {
        {IC_VERDICT_ACTIVE, IC_REASON_IN_USE_LOCAL, FALSE},
        {IC_VERDICT_REMOVABLE, IC_REASON_UNUSED, FALSE},
        {IC_VERDICT_KEPT, IC_REASON_USAGE_UNKNOWN, FALSE},
        {IC_VERDICT_CORRUPT, IC_REASON_CORRUPT, TRUE},
        {IC_VERDICT_ABSENT, IC_REASON_IN_USE_LOCAL, TRUE},
    };
    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(IcReport) report = report_with_row(0, cases[i].verdict, cases[i].reason);
        g_assert_cmpint(ic_report_has_problems(report), ==, cases[i].problem);
    }
}

static gint compare_row_names(gconstpointer a, gconstpointer b)
{
    return strcmp((*(IcImageRow *const *)a)->name, (*(IcImageRow *const *)b)->name);
}

/* The rows end sorted by name as a stable sort leaves them (of two rows with
 * one name the first stays first), whatever part of them arrives sorted: the
 * pass adds the base dir's rows in order and the quarantined and absent ones
 * after them, and ic_report_finish sorts only that tail and merges it in. */
static void test_rows_sorted(void)
{
    static const char *const cases[][8] = {
        {NULL},
        {"x", NULL},
        {"a", "b", "c", NULL},
        {"c", "a", NULL},
        {"b", "d", "f", "a", "e", "c", NULL},
        {"b", "b", "a", "b", NULL},
        {"a", "c", "c", "b", "c", "a", NULL},
        {"m", "n", "o", "z", "y", "x", "a", NULL},
    };
    for (gsize c = 0; c < G_N_ELEMENTS(cases) + 20; c++) {
        g_autoptr(IcReport) report = ic_report_new("/base", "host", NOW);
        if (c < G_N_ELEMENTS(cases)) {
            for (gsize i = 0; cases[c][i] != NULL; i++)
                ic_report_add_row(report, cases[c][i]);
        } else {
            /* A sorted run of names from a small alphabet, then any. */
            GRand *rand = g_rand_new_with_seed((guint32)c);
            g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
            guint n_sorted = (guint)g_rand_int_range(rand, 0, 60);
            for (guint i = 0; i < n_sorted; i++)
                g_ptr_array_add(names, g_strdup_printf("%c", 'a' + g_rand_int_range(rand, 0, 8)));
            g_ptr_array_sort(names, (GCompareFunc)g_strcmp0);
            for (guint i = 0, n = (guint)g_rand_int_range(rand, 0, 20); i < n; i++)
                g_ptr_array_add(names, g_strdup_printf("%c", 'a' + g_rand_int_range(rand, 0, 8)));
            for (guint i = 0; i < names->len; i++)
                ic_report_add_row(report, g_ptr_array_index(names, i));
            g_rand_free(rand);
        }
        g_autoptr(GPtrArray) expected = g_ptr_array_new();
        for (guint i = 0; i < report->rows->len; i++)
            g_ptr_array_add(expected, g_ptr_array_index(report->rows, i));
        g_ptr_array_sort(expected, compare_row_names); /* stable since GLib 2.32 */
        ic_report_finish(report);
        g_assert_cmpuint(report->rows->len, ==, expected->len);
        for (guint i = 0; i < expected->len; i++)
            g_assert_true(g_ptr_array_index(report->rows, i) == g_ptr_array_index(expected, i));
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
    g_test_add_func("/imagecache/explain/in_use", test_explain_in_use);
    g_test_add_func("/imagecache/explain/unused", test_explain_unused);
    g_test_add_func("/imagecache/explain/json", test_explain_json);
    g_test_add_func("/imagecache/explain/report_json", test_report_json);
    g_test_add_func("/imagecache/explain/has_problems", test_has_problems);
    g_test_add_func("/imagecache/explain/every_witness", test_every_witness_listed);
    g_test_add_func("/imagecache/explain/rows_sorted", test_rows_sorted);
    return g_test_run();
}
