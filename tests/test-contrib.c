/* The documentation of the config cannot drift from the code: every key of config.c's table
 * (read through ic_config_to_data, so nothing here lists keys by hand) must appear with its
 * default in contrib/imagecache.conf and man/imagecache.conf.5.scd, and the example file must
 * load as it is and with every key uncommented. */
#include <json-glib/json-glib.h>
#include <string.h>

#include "config.h"
#include "error.h"
#include "policy.h"
#include "report.h"
#include "testutil.h"

typedef struct {
    char *name;
    char *default_value; /* NULL: derived at finish (ledger_dir, host) */
} Key;

static void key_free(Key *key)
{
    g_free(key->name);
    g_free(key->default_value);
    g_free(key);
}

/* The keys in table order, from the defaults as GKeyFile text: "key=value", or
 * "#key=" for a key whose default is derived. */
static GPtrArray *config_keys(void)
{
    g_autoptr(IcConfig) config = ic_config_new();
    g_autofree char *data = ic_config_to_data(config);
    g_auto(GStrv) lines = g_strsplit(data, "\n", -1);
    GPtrArray *keys = g_ptr_array_new_with_free_func((GDestroyNotify)key_free);

    for (char **line = lines; *line != NULL; line++) {
        const char *text = *line;
        gboolean derived = FALSE;
        if (g_str_has_prefix(text, "#") && strchr(text, '=') != NULL && strchr(text, ' ') == NULL) {
            derived = TRUE;
            text++;
        } else if (text[0] == '#' || text[0] == '[' || text[0] == '\0') {
            continue;
        }
        const char *eq = strchr(text, '=');
        g_assert_nonnull(eq);
        Key *key = g_new0(Key, 1);
        key->name = g_strndup(text, (gsize)(eq - text));
        key->default_value = derived ? NULL : g_strdup(eq + 1);
        g_ptr_array_add(keys, key);
    }
    g_assert_cmpuint(keys->len, >=, 12);
    return keys;
}

static char *read_source_file(const char *relative)
{
    g_autofree char *path = g_test_build_filename(G_TEST_DIST, "..", relative, NULL);
    char *contents = NULL;
    g_autoptr(GError) error = NULL;
    if (!g_file_get_contents(path, &contents, NULL, &error))
        g_error("%s", error->message);
    return contents;
}

/* The value of "key=" or "#key=" at the start of a line of @text, or NULL. */
static char *find_assignment(const char *text, const char *name)
{
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    g_autofree char *prefix = g_strconcat(name, "=", NULL);
    for (char **line = lines; *line != NULL; line++) {
        const char *l = *line;
        if (l[0] == '#')
            l++;
        if (g_str_has_prefix(l, prefix))
            return g_strstrip(g_strdup(l + strlen(prefix)));
    }
    return NULL;
}

static void test_example_conf_has_every_key(void)
{
    g_autoptr(GPtrArray) keys = config_keys();
    g_autofree char *example = read_source_file("contrib/imagecache.conf");
    for (guint i = 0; i < keys->len; i++) {
        const Key *key = g_ptr_array_index(keys, i);
        g_autofree char *value = find_assignment(example, key->name);
        if (value == NULL)
            g_error("contrib/imagecache.conf lacks key '%s'", key->name);
        if (key->default_value != NULL && !g_str_equal(value, key->default_value))
            g_error("contrib/imagecache.conf: %s=%s, but the default is %s", key->name, value,
                    key->default_value);
    }
}

/* Loads @text (written to a temporary file) and finishes the config. */
static IcConfig *load_text(const char *text, GError **error)
{
    g_autofree char *dir = ic_test_mkdtemp();
    g_autofree char *path = ic_test_write_file(dir, "imagecache.conf", text, -1);
    g_autoptr(IcConfig) config = ic_config_new();
    gboolean ok = ic_config_load_file(config, path, error) && ic_config_finish(config, error);
    ic_test_rmtree(dir);
    return ok ? g_steal_pointer(&config) : NULL;
}

static void test_example_conf_loads(void)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *example = read_source_file("contrib/imagecache.conf");

    /* As shipped: everything commented, so the defaults. */
    g_autoptr(IcConfig) as_is = load_text(example, &error);
    g_assert_no_error(error);
    g_autoptr(IcConfig) defaults = ic_config_new();
    g_assert_true(ic_config_finish(defaults, &error));
    g_autofree char *as_is_data = ic_config_to_data(as_is);
    g_autofree char *defaults_data = ic_config_to_data(defaults);
    g_assert_cmpstr(as_is_data, ==, defaults_data);

    /* Every "#key=value" uncommented: each is a known key with a valid value, and
     * the result equals the defaults except for the derived examples. */
    g_auto(GStrv) lines = g_strsplit(example, "\n", -1);
    GString *uncommented = g_string_new(NULL);
    guint assignments = 0;
    for (char **line = lines; *line != NULL; line++) {
        const char *l = *line;
        if (l[0] == '#' && strchr(l, '=') != NULL && strchr(l, ' ') == NULL) {
            l++;
            assignments++;
        }
        g_string_append_printf(uncommented, "%s\n", l);
    }
    g_autofree char *text = g_string_free(uncommented, FALSE);
    g_autoptr(IcConfig) all = load_text(text, &error);
    g_assert_no_error(error);
    g_autoptr(GPtrArray) keys = config_keys();
    g_assert_cmpuint(assignments, ==, keys->len);
    g_assert_cmpstr(all->instances_path, ==, defaults->instances_path);
    g_assert_cmpstr(all->ledger_dir, ==, defaults->ledger_dir); /* the derived default */
    g_assert_cmpint(all->remove_unused_base_images, ==, defaults->remove_unused_base_images);
    g_assert_cmpint(all->strict_prepare, ==, defaults->strict_prepare);
}

static void test_man_page_has_every_key(void)
{
    g_autoptr(GPtrArray) keys = config_keys();
    g_autofree char *man = read_source_file("man/imagecache.conf.5.scd");
    g_auto(GStrv) lines = g_strsplit(man, "\n", -1);
    for (guint i = 0; i < keys->len; i++) {
        const Key *key = g_ptr_array_index(keys, i);
        g_autofree char *heading = g_strdup_printf("*%s* = ", key->name);
        const char *found = NULL;
        for (char **line = lines; *line != NULL && found == NULL; line++) {
            if (g_str_has_prefix(*line, heading))
                found = *line;
        }
        if (found == NULL)
            g_error("man/imagecache.conf.5.scd has no entry '%s...' for key '%s'", heading,
                    key->name);
        if (key->default_value == NULL)
            continue;
        if (key->default_value[0] == '\0') {
            if (strstr(found, "(default: empty)") == NULL)
                g_error("man/imagecache.conf.5.scd: key '%s' should say '(default: empty)': %s",
                        key->name, found);
            continue;
        }
        /* "(default: *3600*)", "(default: _/var/lib/nova/instances_)", "*\_base*" */
        g_autofree char *escaped = key->default_value[0] == '_'
                                       ? g_strconcat("\\", key->default_value, NULL)
                                       : g_strdup(key->default_value);
        g_autofree char *bold = g_strdup_printf("(default: *%s*)", escaped);
        g_autofree char *underlined = g_strdup_printf("(default: _%s_)", escaped);
        if (strstr(found, bold) == NULL && strstr(found, underlined) == NULL)
            g_error("man/imagecache.conf.5.scd: key '%s' does not give its default '%s': %s",
                    key->name, key->default_value, found);
    }
}

static gint compare_strings(gconstpointer a, gconstpointer b)
{
    return g_strcmp0(*(char *const *)a, *(char *const *)b);
}

/* The collectd options of config.c's table, each as "Option=key", sorted. */
static GPtrArray *table_options(void)
{
    GPtrArray *pairs = g_ptr_array_new_with_free_func(g_free);
    g_auto(GStrv) options = ic_config_collectd_options();
    for (char **option = options; *option != NULL; option++)
        g_ptr_array_add(pairs,
                        g_strdup_printf("%s=%s", *option, ic_config_key_for_option(*option)));
    g_ptr_array_sort(pairs, compare_strings);
    return pairs;
}

static char *join_pairs(GPtrArray *pairs)
{
    g_ptr_array_add(pairs, NULL);
    char *text = g_strjoinv(" ", (char **)pairs->pdata);
    g_ptr_array_remove_index(pairs, pairs->len - 1);
    return text;
}

/* collectd-imagecache(5)'s table of override options is config.c's: the same
 * options for the same keys, none missing, none extra. */
static void test_collectd_man_page_has_every_option(void)
{
    g_autofree char *man = read_source_file("man/collectd-imagecache.5.scd");
    g_autoptr(GRegex) row =
        g_regex_new("^\\|  \\*([A-Za-z]+)\\*\n:  ([a-z_]+)\n", G_REGEX_MULTILINE, 0, NULL);
    g_autoptr(GMatchInfo) match = NULL;
    g_autoptr(GPtrArray) documented = g_ptr_array_new_with_free_func(g_free);
    for (g_regex_match(row, man, 0, &match); g_match_info_matches(match);
         g_match_info_next(match, NULL)) {
        g_autofree char *option = g_match_info_fetch(match, 1);
        g_autofree char *key = g_match_info_fetch(match, 2);
        g_ptr_array_add(documented, g_strdup_printf("%s=%s", option, key));
    }
    g_ptr_array_sort(documented, compare_strings);
    g_autoptr(GPtrArray) table = table_options();
    g_autofree char *want = join_pairs(table);
    g_autofree char *have = join_pairs(documented);
    g_assert_cmpstr(have, ==, want);
}

/* imagecache.conf(5)'s COLLECTD OVERRIDES names each option with its key. */
static void test_conf_man_page_has_every_option(void)
{
    g_autofree char *man = read_source_file("man/imagecache.conf.5.scd");
    g_auto(GStrv) words = g_strsplit_set(man, " \n\t", -1);
    g_autofree char *flat = g_strjoinv(" ", words);
    g_auto(GStrv) options = ic_config_collectd_options();
    for (char **option = options; *option != NULL; option++) {
        g_autofree char *entry =
            g_strdup_printf("*%s* (%s)", *option, ic_config_key_for_option(*option));
        if (strstr(flat, entry) == NULL)
            g_error("man/imagecache.conf.5.scd does not name collectd option '%s'", entry);
    }
}

/* The one node of docs/report.schema.json at JSONPath @expression (a copy; caller frees). */
static JsonNode *schema_node(const char *expression)
{
    g_autofree char *schema = read_source_file("docs/report.schema.json");
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) error = NULL;
    g_assert_true(json_parser_load_from_data(parser, schema, -1, &error));
    g_assert_no_error(error);
    g_autoptr(JsonPath) path = json_path_new();
    g_assert_true(json_path_compile(path, expression, &error));
    g_assert_no_error(error);
    g_autoptr(JsonNode) found = json_path_match(path, json_parser_get_root(parser));
    JsonArray *matches = json_node_get_array(found);
    g_assert_cmpuint(json_array_get_length(matches), ==, 1);
    return json_node_copy(json_array_get_element(matches, 0));
}

/* docs/report.schema.json lists every reason of policy.c's table, in its order, and no other. */
static void test_schema_has_every_reason(void)
{
    g_autoptr(JsonNode) node = schema_node("$..reason.enum");
    JsonArray *names = json_node_get_array(node);
    g_assert_cmpuint(json_array_get_length(names), ==, _IC_REASON_MAX);
    for (IcReason reason = 0; reason < _IC_REASON_MAX; reason++)
        g_assert_cmpstr(json_array_get_string_element(names, reason), ==,
                        ic_reason_to_string(reason));
}

/* docs/report.schema.json requires exactly report.c's totals, each with a property. */
static void test_schema_has_every_total(void)
{
    g_autoptr(JsonNode) node = schema_node("$['$defs'].totals");
    JsonObject *totals = json_node_get_object(node);
    JsonArray *required = json_object_get_array_member(totals, "required");
    JsonObject *properties = json_object_get_object_member(totals, "properties");
    gsize n;
    const IcTotalInfo *info = ic_totals_info(&n);
    g_assert_cmpuint(json_array_get_length(required), ==, n);
    g_assert_cmpuint(json_object_get_size(properties), ==, n);
    for (gsize i = 0; i < n; i++) {
        gboolean listed = FALSE;
        for (guint j = 0; j < json_array_get_length(required); j++)
            listed =
                listed || g_str_equal(json_array_get_string_element(required, j), info[i].name);
        if (!listed || !json_object_has_member(properties, info[i].name))
            g_error("docs/report.schema.json: total '%s' is not required or has no property",
                    info[i].name);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/contrib/example-conf/every-key", test_example_conf_has_every_key);
    g_test_add_func("/contrib/example-conf/loads", test_example_conf_loads);
    g_test_add_func("/contrib/man-conf/every-key", test_man_page_has_every_key);
    g_test_add_func("/contrib/schema/every-reason", test_schema_has_every_reason);
    g_test_add_func("/contrib/schema/every-total", test_schema_has_every_total);
    g_test_add_func("/contrib/man-collectd/every-option", test_collectd_man_page_has_every_option);
    g_test_add_func("/contrib/man-conf/every-option", test_conf_man_page_has_every_option);
    return g_test_run();
}
