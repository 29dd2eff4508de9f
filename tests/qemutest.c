#include "qemutest.h"

#include <sys/stat.h>

gboolean ic_qemu_have(void)
{
    g_autofree char *prog = g_find_program_in_path("qemu-img");
    if (prog == NULL)
        g_test_skip("qemu-img is not installed");
    return prog != NULL;
}

void ic_qemu_sh(const char *cwd, const char *script)
{
    const char *argv[] = {"sh", "-ec", script, NULL};
    g_autoptr(GError) error = NULL;
    g_autofree char *err = NULL;
    int status = 0;
    g_spawn_sync(cwd, (char **)argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL, NULL,
                 NULL, NULL, &err, &status, &error);
    g_assert_no_error(error);
    if (!g_spawn_check_wait_status(status, NULL))
        g_error("layout script failed: %s\n%s", script, err);
}

JsonArray *ic_qemu_chain(const char *cwd, const char *path, const char *format, char **ret_err)
{
    const char *argv[12] = {"qemu-img", "info", "--backing-chain", "--output=json", "-U"};
    guint n = 5;
    if (format != NULL) {
        argv[n++] = "-f";
        argv[n++] = format;
    }
    argv[n++] = path;
    g_autoptr(GError) error = NULL;
    g_autofree char *out = NULL;
    g_autofree char *err = NULL;
    int status = 0;
    g_spawn_sync(cwd, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &out, &err, &status,
                 &error);
    g_assert_no_error(error);
    if (!g_spawn_check_wait_status(status, NULL)) {
        if (ret_err != NULL)
            *ret_err = g_steal_pointer(&err);
        return NULL;
    }
    g_autoptr(JsonParser) parser = json_parser_new();
    json_parser_load_from_data(parser, out, -1, &error);
    g_assert_no_error(error);
    JsonNode *root = json_parser_get_root(parser);
    g_assert_true(JSON_NODE_HOLDS_ARRAY(root));
    return json_array_ref(json_node_get_array(root));
}

static JsonObject *member(JsonArray *chain, guint i)
{
    g_assert_cmpuint(i, <, json_array_get_length(chain));
    return json_array_get_object_element(chain, i);
}

const char *ic_qemu_member_filename(JsonArray *chain, guint i)
{
    return json_object_get_string_member(member(chain, i), "filename");
}

const char *ic_qemu_member_format(JsonArray *chain, guint i)
{
    return json_object_get_string_member(member(chain, i), "format");
}

const char *ic_qemu_member_data_file(JsonArray *chain, guint i)
{
    JsonObject *m = member(chain, i);
    if (!json_object_has_member(m, "format-specific"))
        return NULL;
    JsonObject *specific = json_object_get_object_member(m, "format-specific");
    if (!json_object_has_member(specific, "data"))
        return NULL;
    JsonObject *data = json_object_get_object_member(specific, "data");
    if (!json_object_has_member(data, "data-file"))
        return NULL;
    return json_object_get_string_member(data, "data-file");
}

gboolean ic_qemu_same_file(const char *cwd, const char *a, const char *b)
{
    g_autofree char *pa = g_path_is_absolute(a) ? g_strdup(a) : g_strconcat(cwd, "/", a, NULL);
    g_autofree char *pb = g_path_is_absolute(b) ? g_strdup(b) : g_strconcat(cwd, "/", b, NULL);
    struct stat sa, sb;
    return stat(pa, &sa) == 0 && stat(pb, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}
