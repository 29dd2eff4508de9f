#include "jsonout.h"

void ic_json_member_string(JsonBuilder *b, const char *name, const char *value)
{
    json_builder_set_member_name(b, name);
    if (value == NULL)
        json_builder_add_null_value(b);
    else
        json_builder_add_string_value(b, value);
}

void ic_json_member_int(JsonBuilder *b, const char *name, gint64 value)
{
    json_builder_set_member_name(b, name);
    json_builder_add_int_value(b, value);
}

void ic_json_member_bool(JsonBuilder *b, const char *name, gboolean value)
{
    json_builder_set_member_name(b, name);
    json_builder_add_boolean_value(b, value);
}

void ic_json_member_double(JsonBuilder *b, const char *name, double value)
{
    json_builder_set_member_name(b, name);
    json_builder_add_double_value(b, value);
}

void ic_json_member_strings(JsonBuilder *b, const char *name, const GPtrArray *strings)
{
    json_builder_set_member_name(b, name);
    json_builder_begin_array(b);
    for (guint i = 0; i < strings->len; i++)
        json_builder_add_string_value(b, g_ptr_array_index(strings, i));
    json_builder_end_array(b);
}

char *ic_json_to_data(JsonBuilder *b)
{
    g_autoptr(JsonNode) root = json_builder_get_root(b);
    g_autoptr(JsonGenerator) gen = json_generator_new();
    json_generator_set_pretty(gen, TRUE);
    json_generator_set_root(gen, root);
    return json_generator_to_data(gen, NULL);
}
