#include "plugin-options.h"

#include "error.h"

/* The plugin's own options; the others override config keys (config.c's
 * table names each key's option). */
static const char *const plugin_options[] = {
    "Config",
    "PassInterval",
    "ChecksumRateLimit",
    "PerImageValues",
};

typedef struct {
    char *option; /* as the operator spelled it */
    const char *key;
    char *value;
} Override;

static void override_free(Override *override)
{
    g_free(override->option);
    g_free(override->value);
    g_free(override);
}

IcPluginOptions *ic_plugin_options_new(void)
{
    IcPluginOptions *options = g_new0(IcPluginOptions, 1);
    options->overrides = g_ptr_array_new_with_free_func((GDestroyNotify)override_free);
    options->pass_interval = IC_PLUGIN_DEFAULT_PASS_INTERVAL;
    options->checksum_rate_limit = IC_PLUGIN_DEFAULT_CHECKSUM_RATE_LIMIT;
    return options;
}

void ic_plugin_options_free(IcPluginOptions *options)
{
    if (options == NULL)
        return;
    g_free(options->config_path);
    g_ptr_array_unref(options->overrides);
    g_free(options);
}

/* The plugin's own spelling of option @name, or NULL. */
static const char *find_plugin_option(const char *name)
{
    for (guint i = 0; i < G_N_ELEMENTS(plugin_options); i++)
        if (g_ascii_strcasecmp(name, plugin_options[i]) == 0)
            return plugin_options[i];
    return NULL;
}

static char *known_options(void)
{
    g_auto(GStrv) overrides = ic_config_collectd_options();
    GString *text = g_string_new(NULL);
    for (guint i = 0; i < G_N_ELEMENTS(plugin_options); i++)
        g_string_append_printf(text, "%s, ", plugin_options[i]);
    for (guint i = 0; overrides[i] != NULL; i++)
        g_string_append_printf(text, "%s, ", overrides[i]);
    g_string_truncate(text, text->len - 2);
    return g_string_free(text, FALSE);
}

static gboolean parse_unsigned(const char *name, const char *value, guint64 min, guint64 max,
                               guint64 *ret, GError **error)
{
    if (g_ascii_string_to_unsigned(value, 10, min, max, ret, NULL))
        return TRUE;
    g_set_error(error, IC_ERROR, IC_ERROR_CONFIG,
                "collectd config: option '%s': '%s' is not a whole number from %" G_GUINT64_FORMAT
                " to %" G_GUINT64_FORMAT,
                name, value, min, max);
    return FALSE;
}

gboolean ic_plugin_options_set(IcPluginOptions *options, const char *name, const char *value,
                               GError **error)
{
    const char *key = ic_config_key_for_option(name);
    if (key != NULL) {
        Override *override = g_new0(Override, 1);
        override->option = g_strdup(name);
        override->key = key;
        override->value = g_strdup(value);
        g_ptr_array_add(options->overrides, override);
        return TRUE;
    }
    const char *option = find_plugin_option(name);
    if (option == NULL) {
        g_autofree char *known = known_options();
        g_set_error(error, IC_ERROR, IC_ERROR_CONFIG,
                    "collectd config: unknown option '%s' (known: %s)", name, known);
        return FALSE;
    }
    if (g_str_equal(option, "Config")) {
        if (!g_path_is_absolute(value)) {
            g_set_error(error, IC_ERROR, IC_ERROR_CONFIG,
                        "collectd config: option '%s': '%s' is not an absolute path", name, value);
            return FALSE;
        }
        g_free(options->config_path);
        options->config_path = g_strdup(value);
        return TRUE;
    }
    guint64 number;
    if (g_str_equal(option, "PassInterval")) {
        /* A bound, so pass_interval * G_USEC_PER_SEC cannot overflow. */
        if (!parse_unsigned(name, value, 1, IC_PLUGIN_MAX_PASS_INTERVAL, &number, error))
            return FALSE;
        options->pass_interval = (gint64)number;
        return TRUE;
    }
    if (g_str_equal(option, "PerImageValues")) {
        if (ic_per_image_values_from_string(value, &options->per_image))
            return TRUE;
        g_set_error(error, IC_ERROR, IC_ERROR_CONFIG,
                    "collectd config: option '%s': '%s' is none of problems, all, none", name,
                    value);
        return FALSE;
    }
    g_assert(g_str_equal(option, "ChecksumRateLimit"));
    if (!parse_unsigned(name, value, 0, G_MAXINT64, &number, error))
        return FALSE;
    options->checksum_rate_limit = number;
    return TRUE;
}

gboolean ic_plugin_options_build_config(const IcPluginOptions *options, IcConfig **ret_config,
                                        GError **error)
{
    if (options->config_path == NULL) {
        g_set_error(error, IC_ERROR, IC_ERROR_CONFIG,
                    "collectd config: option 'Config' is missing: name the imagecache config "
                    "file, e.g. Config \"%s\"",
                    IC_CONFIG_DEFAULT_PATH);
        return FALSE;
    }
    g_autoptr(IcConfig) config = ic_config_new();
    if (!ic_config_load_file(config, options->config_path, error)) {
        g_prefix_error(error, "collectd config: option 'Config': ");
        return FALSE;
    }
    for (guint i = 0; i < options->overrides->len; i++) {
        const Override *override = g_ptr_array_index(options->overrides, i);
        g_autofree char *origin = g_strdup_printf("collectd config: option '%s'", override->option);
        if (!ic_config_set(config, override->key, override->value, origin, error))
            return FALSE;
    }
    if (!ic_config_finish(config, error))
        return FALSE;
    *ret_config = g_steal_pointer(&config);
    return TRUE;
}
