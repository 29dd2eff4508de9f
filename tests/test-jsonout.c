/* test-jsonout.c — the streaming JSON writer (issue 15) writes what json-glib's
 * pretty generator wrote for the same document, byte for byte (the report's and
 * the ledger's JSON did not change when the tree went away), escapes what JSON
 * requires, and reports a failed write or an unbalanced document. */
#include <json-glib/json-glib.h>
#include <string.h>

#include "jsonout.h"

/* Strings with every ASCII byte json-glib 1.6 handles as JSON requires (it
 * leaves 0x1f raw: tested apart), UTF-8, quotes and backslashes. */
static GPtrArray *tricky_strings(void)
{
    GPtrArray *strings = g_ptr_array_new_with_free_func(g_free);
    GString *ascii = g_string_new(NULL);
    for (int c = 1; c < 0x80; c++) {
        if (c != 0x1f)
            g_string_append_c(ascii, (char)c);
    }
    g_ptr_array_add(strings, g_string_free(ascii, FALSE));
    g_ptr_array_add(strings, g_strdup(""));
    g_ptr_array_add(strings, g_strdup("inst\xc3\xa9-\xe2\x82\xac \"q\" \\b\\ /x/"));
    g_ptr_array_add(strings, g_strdup("line\nnext\ttab\r\b\f"));
    return strings;
}

static const double doubles[] = {0, 1, -1, 22.5, 1.0 / 3, 14.383166, 100, 1e300, 0.1, 2.5e-5};
static const gint64 ints[] = {0, 1, -1, G_MAXINT64, G_MININT64, 1073741824};

/* The same document through json-glib's builder (the old code) … */
static char *with_json_glib(const GPtrArray *strings)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "empty_array");
    json_builder_begin_array(b);
    json_builder_end_array(b);
    json_builder_set_member_name(b, "empty_object");
    json_builder_begin_object(b);
    json_builder_end_object(b);
    json_builder_set_member_name(b, "null");
    json_builder_add_null_value(b);
    json_builder_set_member_name(b, "strings");
    json_builder_begin_array(b);
    for (guint i = 0; i < strings->len; i++)
        json_builder_add_string_value(b, g_ptr_array_index(strings, i));
    json_builder_end_array(b);
    json_builder_set_member_name(b, "numbers");
    json_builder_begin_object(b);
    for (guint i = 0; i < G_N_ELEMENTS(doubles); i++) {
        g_autofree char *name = g_strdup_printf("d%u", i);
        json_builder_set_member_name(b, name);
        json_builder_add_double_value(b, doubles[i]);
    }
    for (guint i = 0; i < G_N_ELEMENTS(ints); i++) {
        g_autofree char *name = g_strdup_printf("i%u", i);
        json_builder_set_member_name(b, name);
        json_builder_add_int_value(b, ints[i]);
    }
    json_builder_set_member_name(b, "yes");
    json_builder_add_boolean_value(b, TRUE);
    json_builder_set_member_name(b, "no");
    json_builder_add_boolean_value(b, FALSE);
    json_builder_end_object(b);
    json_builder_set_member_name(b, "nested");
    json_builder_begin_array(b);
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "deep");
    json_builder_begin_array(b);
    json_builder_begin_array(b);
    json_builder_add_int_value(b, 1);
    json_builder_end_array(b);
    json_builder_end_array(b);
    json_builder_end_object(b);
    json_builder_begin_object(b);
    json_builder_end_object(b);
    json_builder_end_array(b);
    json_builder_end_object(b);

    g_autoptr(JsonNode) root = json_builder_get_root(b);
    g_autoptr(JsonGenerator) gen = json_generator_new();
    json_generator_set_pretty(gen, TRUE);
    json_generator_set_root(gen, root);
    return json_generator_to_data(gen, NULL);
}

/* … and through the writer. */
static void with_writer(IcJsonWriter *w, gconstpointer data)
{
    const GPtrArray *strings = data;
    ic_json_begin_object(w);
    ic_json_member_name(w, "empty_array");
    ic_json_begin_array(w);
    ic_json_end_array(w);
    ic_json_member_name(w, "empty_object");
    ic_json_begin_object(w);
    ic_json_end_object(w);
    ic_json_member_string(w, "null", NULL);
    ic_json_member_strings(w, "strings", strings);
    ic_json_member_name(w, "numbers");
    ic_json_begin_object(w);
    for (guint i = 0; i < G_N_ELEMENTS(doubles); i++) {
        g_autofree char *name = g_strdup_printf("d%u", i);
        ic_json_member_double(w, name, doubles[i]);
    }
    for (guint i = 0; i < G_N_ELEMENTS(ints); i++) {
        g_autofree char *name = g_strdup_printf("i%u", i);
        ic_json_member_int(w, name, ints[i]);
    }
    ic_json_member_bool(w, "yes", TRUE);
    ic_json_member_bool(w, "no", FALSE);
    ic_json_end_object(w);
    ic_json_member_name(w, "nested");
    ic_json_begin_array(w);
    ic_json_begin_object(w);
    ic_json_member_name(w, "deep");
    ic_json_begin_array(w);
    ic_json_begin_array(w);
    ic_json_value_int(w, 1);
    ic_json_end_array(w);
    ic_json_end_array(w);
    ic_json_end_object(w);
    ic_json_begin_object(w);
    ic_json_end_object(w);
    ic_json_end_array(w);
    ic_json_end_object(w);
}

static void test_same_as_json_glib(void)
{
    g_autoptr(GPtrArray) strings = tricky_strings();
    g_autofree char *expected = with_json_glib(strings);
    g_autofree char *got = ic_json_to_string(with_writer, strings);
    g_assert_cmpstr(got, ==, expected);
}

static void write_small_double(IcJsonWriter *w, gconstpointer data)
{
    ic_json_begin_array(w);
    ic_json_value_double(w, 1e-300);
    ic_json_end_array(w);
}

/* A double printed with an exponent and no point reads back (json-glib 1.6
 * wrote "1e-300.0"). */
static void test_exponent(void)
{
    g_autofree char *text = ic_json_to_string(write_small_double, NULL);
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) error = NULL;
    g_assert_true(json_parser_load_from_data(parser, text, -1, &error));
    g_assert_no_error(error);
    JsonArray *array = json_node_get_array(json_parser_get_root(parser));
    g_assert_cmpfloat(json_array_get_double_element(array, 0), ==, 1e-300);
}

static void write_unit_separator(IcJsonWriter *w, gconstpointer data)
{
    ic_json_begin_array(w);
    ic_json_value_string(w, "a\x1f"
                            "b");
    ic_json_end_array(w);
}

/* JSON forbids raw control characters: 0x1f too (json-glib 1.6 let it through). */
static void test_control_characters_escaped(void)
{
    g_autofree char *text = ic_json_to_string(write_unit_separator, NULL);
    g_assert_null(strchr(text, 0x1f));
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) error = NULL;
    g_assert_true(json_parser_load_from_data(parser, text, -1, &error));
    g_assert_no_error(error);
    JsonArray *array = json_node_get_array(json_parser_get_root(parser));
    g_assert_cmpstr(json_array_get_string_element(array, 0), ==,
                    "a\x1f"
                    "b");
}

/* A full disk is an error, not a truncated document that looks fine. */
static void test_write_error(void)
{
    FILE *out = fopen("/dev/full", "w");
    if (out == NULL) {
        g_test_skip("no /dev/full");
        return;
    }
    setvbuf(out, NULL, _IONBF, 0);
    IcJsonWriter *w = ic_json_writer_new(out);
    ic_json_begin_object(w);
    ic_json_member_int(w, "n", 1);
    ic_json_end_object(w);
    g_autoptr(GError) error = NULL;
    g_assert_false(ic_json_writer_finish(w, &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_IO);
    fclose(out);
}

static void test_unbalanced(void)
{
    FILE *out = fopen("/dev/null", "w");
    g_assert_nonnull(out);
    IcJsonWriter *w = ic_json_writer_new(out);
    ic_json_begin_object(w);
    ic_json_member_name(w, "open");
    ic_json_begin_array(w);
    ic_json_end_object(w); /* the array is still open: refused */
    g_autoptr(GError) error = NULL;
    g_assert_false(ic_json_writer_finish(w, &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_FAILED);
    fclose(out);
}

/* What the writer must make of @s, byte by byte (the escaping rules in
 * jsonout.c's write_escaped, spelled out the slow way). */
static void append_escaped(GString *out, const char *s)
{
    g_string_append_c(out, '"');
    for (const char *p = s; *p != '\0';) {
        unsigned char c = (unsigned char)*p;
        const char *named = strchr("\"\\\b\f\n\r\t", c);
        if (c >= 0x80) {
            gunichar ch = g_utf8_get_char_validated(p, -1);
            if (ch == (gunichar)-1 || ch == (gunichar)-2) {
                g_string_append(out, "\\ufffd");
                p++;
            } else {
                const char *next = g_utf8_next_char(p);
                g_string_append_len(out, p, next - p);
                p = next;
            }
            continue;
        }
        if (c != '\0' && named != NULL)
            g_string_append_printf(out, "\\%c", "\"\\bfnrt"[named - "\"\\\b\f\n\r\t"]);
        else if (c < 0x20 || c == 0x7f)
            g_string_append_printf(out, "\\u%04x", c);
        else
            g_string_append_c(out, (char)c);
        p++;
    }
    g_string_append_c(out, '"');
}

static void write_strings(IcJsonWriter *w, gconstpointer data)
{
    const GPtrArray *strings = data;
    ic_json_begin_array(w);
    for (guint i = 0; i < strings->len; i++)
        ic_json_value_string(w, g_ptr_array_index(strings, i));
    ic_json_end_array(w);
}

/* Issue 15: plain strings are checked and copied eight bytes at a time. Every
 * byte that needs escaping (or is UTF-8, valid or not) at every place of
 * strings of 1 to 40 bytes, among plain bytes of every kind, is written as the
 * byte-by-byte rules say; so many strings that some straddle the writer's
 * 64 KiB buffer. */
static void test_escape_each_place(void)
{
    static const char *const odd[] = {"\x01", "\x1f",     "\x20\x7e",     "\"",   "\\",   "\x7f",
                                      "\n",   "\xc3\xa9", "\xe2\x82\xac", "\xff", "\xc3", "\x80"};
    static const char plain[] = "a Z~!#[]{}0/";
    g_autoptr(GPtrArray) strings = g_ptr_array_new_with_free_func(g_free);
    for (gsize len = 1; len <= 40; len++) {
        for (gsize at = 0; at < len; at++) {
            for (gsize k = 0; k < G_N_ELEMENTS(odd); k++) {
                GString *s = g_string_new(NULL);
                for (gsize i = 0; i < len; i++) {
                    if (i == at)
                        g_string_append(s, odd[k]);
                    else
                        g_string_append_c(s, plain[(i + k) % (sizeof plain - 1)]);
                }
                g_ptr_array_add(strings, g_string_free(s, FALSE));
            }
        }
        g_ptr_array_add(strings, g_strnfill(len, 'x'));
    }
    GString *expected = g_string_new("[");
    for (guint i = 0; i < strings->len; i++) {
        g_string_append(expected, i > 0 ? ",\n  " : "\n  ");
        append_escaped(expected, g_ptr_array_index(strings, i));
    }
    g_string_append(expected, "\n]");
    g_autofree char *want = g_string_free(expected, FALSE);
    g_assert_cmpuint(strlen(want), >, 2 * 64 * 1024);
    g_autofree char *got = ic_json_to_string(write_strings, strings);
    g_assert_cmpstr(got, ==, want);
}

/* One element of test_elements_threads: an object with nested containers,
 * escapes, numbers, and an empty array and object now and then. */
static void write_element(IcJsonWriter *w, gconstpointer data, guint i)
{
    (void)data;
    g_autofree char *name = g_strdup_printf("row \"%u\"\n\xc3\xa9", i);
    ic_json_begin_object(w);
    ic_json_member_string(w, "name", name);
    ic_json_member_int(w, "i", i);
    ic_json_member_bool(w, "even", i % 2 == 0);
    ic_json_member_name(w, "list");
    ic_json_begin_array(w);
    for (guint k = 0; k < i % 3; k++)
        ic_json_value_int(w, k);
    ic_json_end_array(w);
    ic_json_member_name(w, "object");
    ic_json_begin_object(w);
    if (i % 4 != 0)
        ic_json_member_string(w, "x", NULL);
    ic_json_end_object(w);
    ic_json_end_object(w);
}

typedef struct {
    guint n;
    guint threads;
    gboolean one_before; /* the array already holds an element */
} ElementsCase;

static void write_elements_doc(IcJsonWriter *w, gconstpointer data)
{
    const ElementsCase *c = data;
    ic_json_begin_object(w);
    ic_json_member_int(w, "before", 1);
    ic_json_member_name(w, "items");
    ic_json_begin_array(w);
    if (c->one_before)
        ic_json_value_string(w, "first");
    if (c->threads == 0) {
        for (guint i = 0; i < c->n; i++)
            write_element(w, NULL, i);
    } else {
        ic_json_write_elements(w, c->n, write_element, NULL, c->threads);
    }
    ic_json_end_array(w);
    ic_json_member_string(w, "after", "end");
    ic_json_end_object(w);
}

/* Issue 15: elements formatted on several threads, chunk by chunk, are written
 * as one thread writes them, whatever the count (none, one, a chunk's worth
 * and one either side of it, many chunks) and whether the array held
 * elements before. */
static void test_elements_threads(void)
{
    static const guint counts[] = {0, 1, 255, 256, 257, 512, 1000, 2049};
    for (gsize i = 0; i < G_N_ELEMENTS(counts); i++) {
        for (int before = 0; before <= 1; before++) {
            ElementsCase serial = {.n = counts[i], .threads = 0, .one_before = before};
            g_autofree char *want = ic_json_to_string(write_elements_doc, &serial);
            for (guint threads = 1; threads <= 5; threads++) {
                ElementsCase c = {.n = counts[i], .threads = threads, .one_before = before};
                g_autofree char *got = ic_json_to_string(write_elements_doc, &c);
                g_assert_cmpstr(got, ==, want);
            }
        }
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
    g_test_summary("The streaming JSON writer: json-glib's layout, escaping, write errors");
    g_test_add_func("/imagecache/jsonout/same_as_json_glib", test_same_as_json_glib);
    g_test_add_func("/imagecache/jsonout/control_characters_escaped",
                    test_control_characters_escaped);
    g_test_add_func("/imagecache/jsonout/exponent", test_exponent);
    g_test_add_func("/imagecache/jsonout/write_error", test_write_error);
    g_test_add_func("/imagecache/jsonout/unbalanced", test_unbalanced);
    g_test_add_func("/imagecache/jsonout/escape_each_place", test_escape_each_place);
    g_test_add_func("/imagecache/jsonout/elements_threads", test_elements_threads);
    return g_test_run();
}
