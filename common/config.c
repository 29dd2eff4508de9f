#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "error.h"
#include "ledger.h"

typedef enum {
    KEY_STRING,
    KEY_PATH, /* a string that must be an absolute path */
    KEY_BOOL,
    KEY_SECONDS, /* a non-negative integer, at most the key's max (or 10 years) */
    KEY_PERCENT, /* an integer 0..100 */
    KEY_LIST,    /* a ';'-separated list of strings */
} KeyType;

typedef struct {
    const char *name;
    KeyType type;
    size_t offset;
    const char *default_value; /* NULL: derived in ic_config_finish */
    const char *help;
    gint64 min, max; /* KEY_SECONDS: the range (max 0: MAX_SECONDS) */
    /* The collectd plugin's option that overrides the key, or NULL. The rule:
     * the keys nova.conf has (the Nova image cache's settings) have one, so a
     * plugin configured like Nova needs no imagecache.conf changes; the keys
     * imagecache adds are read from the file only, so the hook, the CLI and the
     * plugin cannot disagree about them. */
    const char *collectd_option;
} KeyDef;

/* No duration imagecache reads means anything beyond ten years; the bound keeps
 * every "seconds * G_USEC_PER_SEC" and "now - age" far from overflow. */
#define MAX_SECONDS ((gint64)10 * 366 * 86400)

/* The one table of settings: name, type, default and what it means. */
static const KeyDef keys[] = {
    {"instances_path", KEY_PATH, offsetof(IcConfig, instances_path), "/var/lib/nova/instances",
     "Directory holding the instance directories and the base dir",
     .collectd_option = "InstancesPath"},
    {"base_dir_name", KEY_STRING, offsetof(IcConfig, base_dir_name), "_base",
     "Name of the base-image cache directory inside instances_path",
     .collectd_option = "BaseDirName"},
    {"ledger_dir", KEY_PATH, offsetof(IcConfig, ledger_dir), NULL,
     "Where hosts keep their usage ledgers (default: <instances_path>/_ledger)",
     .collectd_option = "LedgerDir"},
    {"host", KEY_STRING, offsetof(IcConfig, host), NULL,
     "This host's name in the shared ledger (default: the system host name)",
     .collectd_option = "Host"},
    {"libvirt_uri", KEY_STRING, offsetof(IcConfig, libvirt_uri), "qemu:///system",
     "libvirt connection used (read-only) to list live domains", .collectd_option = "LibvirtURI"},
    {"remove_unused_base_images", KEY_BOOL, offsetof(IcConfig, remove_unused_base_images), "true",
     "Remove base files nobody uses once they are old enough", .collectd_option = "RemoveUnused"},
    {"remove_unused_original_minimum_age_seconds", KEY_SECONDS,
     offsetof(IcConfig, remove_unused_original_minimum_age_seconds), "86400",
     "Minimum time an original base file stays unused before removal",
     .collectd_option = "OriginalMinimumAge"},
    {"remove_unused_resized_minimum_age_seconds", KEY_SECONDS,
     offsetof(IcConfig, remove_unused_resized_minimum_age_seconds), "3600",
     "Minimum time a resized or _sm base file stays unused before removal",
     .collectd_option = "ResizedMinimumAge"},
    {"checksum_base_images", KEY_BOOL, offsetof(IcConfig, checksum_base_images), "false",
     "Verify base files against their checksum sidecars (and write missing ones)",
     .collectd_option = "ChecksumBaseImages"},
    {"checksum_interval_seconds", KEY_SECONDS, offsetof(IcConfig, checksum_interval_seconds),
     "3600", "Do not re-hash a file whose sidecar was written more recently than this",
     .collectd_option = "ChecksumInterval"},
    {"ledger_stale_seconds", KEY_SECONDS, offsetof(IcConfig, ledger_stale_seconds), "86400",
     "A host ledger not refreshed for this long is reported stale (it still counts)",
     .collectd_option = "LedgerStaleAge"},
    {"strict_prepare", KEY_BOOL, offsetof(IcConfig, strict_prepare), "false",
     "Make the hook refuse a domain start when it cannot record its usage"},
    {"prepare_lock_wait_seconds", KEY_SECONDS, offsetof(IcConfig, prepare_lock_wait_seconds), "20",
     "How long the hook waits at prepare for a removal pass to release the usage lock (then it "
     "records without it, or refuses the start under strict_prepare); keep it above 10 s, the "
     "longest a pass waits for plus holds the lock",
     1, 300},
    {"shared_pass_interval_seconds", KEY_SECONDS, offsetof(IcConfig, shared_pass_interval_seconds),
     "0",
     "Where hosts share the cache: after one host's removing pass, the others only report for "
     "this long (0: every pass removes)"},
    {"disk_high_watermark_percent", KEY_PERCENT, offsetof(IcConfig, disk_high_watermark_percent),
     "0",
     "Above this use of the base dir's filesystem, evict unused files least recently used "
     "first (0: off)"},
    {"disk_low_watermark_percent", KEY_PERCENT, offsetof(IcConfig, disk_low_watermark_percent),
     "80", "Evicting for space stops once use is at or below this"},
    {"minimum_age_seconds", KEY_SECONDS, offsetof(IcConfig, minimum_age_seconds), "600",
     "Nothing unused for less than this is evicted for space"},
    {"pinned_images", KEY_LIST, offsetof(IcConfig, pinned_images), "",
     "Globs on file names, fingerprints or image ids that are never removed"},
    {"collect_swap_and_ephemeral", KEY_BOOL, offsetof(IcConfig, collect_swap_and_ephemeral),
     "false", "Also manage swap_<MB> and ephemeral_<GB>_<hash> files, with the originals' age"},
    {"quarantine_corrupt", KEY_BOOL, offsetof(IcConfig, quarantine_corrupt), "false",
     "Move unused corrupt base files to <base_dir>/.quarantine/ instead of leaving them"},
    {"quarantine_retention_seconds", KEY_SECONDS, offsetof(IcConfig, quarantine_retention_seconds),
     "604800", "Quarantined files are removed after this long"},
};

const char *ic_config_key_for_option(const char *option)
{
    for (gsize i = 0; i < G_N_ELEMENTS(keys); i++) {
        if (keys[i].collectd_option != NULL &&
            g_ascii_strcasecmp(keys[i].collectd_option, option) == 0)
            return keys[i].name;
    }
    return NULL;
}

char **ic_config_collectd_options(void)
{
    g_autoptr(GStrvBuilder) options = g_strv_builder_new();
    for (gsize i = 0; i < G_N_ELEMENTS(keys); i++) {
        if (keys[i].collectd_option != NULL)
            g_strv_builder_add(options, keys[i].collectd_option);
    }
    return g_strv_builder_end(options);
}

static const KeyDef *find_key(const char *name)
{
    for (gsize i = 0; i < G_N_ELEMENTS(keys); i++) {
        if (g_str_equal(keys[i].name, name))
            return &keys[i];
    }
    return NULL;
}

static gboolean has_dot_dot(const char *path)
{
    g_auto(GStrv) parts = g_strsplit(path, "/", -1);
    for (char **part = parts; *part != NULL; part++)
        if (g_str_equal(*part, ".."))
            return TRUE;
    return FALSE;
}

static gboolean parse_bool(const char *value, gboolean *ret)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (gsize i = 0; i < G_N_ELEMENTS(yes); i++) {
        if (g_ascii_strcasecmp(value, yes[i]) == 0) {
            *ret = TRUE;
            return TRUE;
        }
        if (g_ascii_strcasecmp(value, no[i]) == 0) {
            *ret = FALSE;
            return TRUE;
        }
    }
    return FALSE;
}

static gboolean parse_seconds(const KeyDef *key, const char *value, gint64 *ret)
{
    guint64 parsed;
    gint64 max = key->max > 0 ? key->max : MAX_SECONDS;
    if (!g_ascii_string_to_unsigned(value, 10, (guint64)key->min, (guint64)max, &parsed, NULL))
        return FALSE;
    *ret = (gint64)parsed;
    return TRUE;
}

static gboolean set_key(IcConfig *config, const KeyDef *key, const char *raw, const char *origin,
                        GError **error)
{
    g_autofree char *value = g_strstrip(g_strdup(raw));
    void *field = (char *)config + key->offset;

    switch (key->type) {
    case KEY_LIST: {
        g_auto(GStrv) items = g_strsplit(value, ";", -1);
        g_autoptr(GPtrArray) kept = g_ptr_array_new_with_free_func(g_free);
        for (char **item = items; *item != NULL; item++) {
            g_strstrip(*item);
            if (**item != '\0')
                g_ptr_array_add(kept, g_strdup(*item));
        }
        g_ptr_array_add(kept, NULL);
        g_strfreev(*(char ***)field);
        *(char ***)field = (char **)g_ptr_array_free(g_steal_pointer(&kept), FALSE);
        return TRUE;
    }
    case KEY_PERCENT: {
        guint64 percent;
        if (!g_ascii_string_to_unsigned(value, 10, 0, 100, &percent, NULL)) {
            g_set_error(error, IC_ERROR, IC_ERROR_CONFIG,
                        "%s: key '%s': '%s' is not a percentage (a whole number 0-100)", origin,
                        key->name, value);
            return FALSE;
        }
        *(gint64 *)field = (gint64)percent;
        return TRUE;
    }
    case KEY_PATH:
        if (!g_path_is_absolute(value)) {
            g_set_error(error, IC_ERROR, IC_ERROR_CONFIG,
                        "%s: key '%s': '%s' is not an absolute path", origin, key->name, value);
            return FALSE;
        }
        /* Paths are compared as strings (is the ledger dir inside
         * instances_path?): a '..' would make that lexical answer wrong. */
        if (has_dot_dot(value)) {
            g_set_error(error, IC_ERROR, IC_ERROR_CONFIG,
                        "%s: key '%s': '%s' has a '..' component (write the path it means)", origin,
                        key->name, value);
            return FALSE;
        }
        /* fall through */
    case KEY_STRING:
        if (*value == '\0' || strchr(value, '\n') != NULL) {
            g_set_error(error, IC_ERROR, IC_ERROR_CONFIG, "%s: key '%s': empty or invalid value",
                        origin, key->name);
            return FALSE;
        }
        g_free(*(char **)field);
        *(char **)field = g_steal_pointer(&value);
        return TRUE;
    case KEY_BOOL:
        if (!parse_bool(value, (gboolean *)field)) {
            g_set_error(error, IC_ERROR, IC_ERROR_CONFIG,
                        "%s: key '%s': '%s' is not a boolean (true/false)", origin, key->name,
                        value);
            return FALSE;
        }
        return TRUE;
    case KEY_SECONDS:
        if (!parse_seconds(key, value, (gint64 *)field)) {
            g_set_error(error, IC_ERROR, IC_ERROR_CONFIG,
                        "%s: key '%s': '%s' is not a number of seconds from %" G_GINT64_FORMAT
                        " to %" G_GINT64_FORMAT,
                        origin, key->name, value, key->min, key->max > 0 ? key->max : MAX_SECONDS);
            return FALSE;
        }
        return TRUE;
    }
    g_assert_not_reached();
}

IcConfig *ic_config_new(void)
{
    IcConfig *config = g_new0(IcConfig, 1);
    for (gsize i = 0; i < G_N_ELEMENTS(keys); i++) {
        if (keys[i].default_value == NULL)
            continue;
        g_autoptr(GError) error = NULL;
        if (!set_key(config, &keys[i], keys[i].default_value, "defaults", &error))
            g_error("built-in default of '%s' is invalid: %s", keys[i].name, error->message);
    }
    return config;
}

static void config_clear_strings(IcConfig *config)
{
    g_free(config->source);
    for (gsize i = 0; i < G_N_ELEMENTS(keys); i++) {
        if (keys[i].type == KEY_STRING || keys[i].type == KEY_PATH)
            g_free(*(char **)((char *)config + keys[i].offset));
        else if (keys[i].type == KEY_LIST)
            g_strfreev(*(char ***)((char *)config + keys[i].offset));
    }
}

void ic_config_free(IcConfig *config)
{
    if (config == NULL)
        return;
    config_clear_strings(config);
    g_free(config);
}

/* A deep copy, so a failed load can leave the caller's config untouched. */
static IcConfig *config_copy(const IcConfig *config)
{
    IcConfig *copy = g_memdup2(config, sizeof(*config));
    copy->source = g_strdup(config->source);
    for (gsize i = 0; i < G_N_ELEMENTS(keys); i++) {
        if (keys[i].type == KEY_STRING || keys[i].type == KEY_PATH) {
            char **field = (char **)((char *)copy + keys[i].offset);
            *field = g_strdup(*field);
        } else if (keys[i].type == KEY_LIST) {
            char ***field = (char ***)((char *)copy + keys[i].offset);
            *field = g_strdupv(*field);
        }
    }
    return copy;
}

gboolean ic_config_set(IcConfig *config, const char *key, const char *value, const char *origin,
                       GError **error)
{
    const KeyDef *def = find_key(key);
    if (def == NULL) {
        g_set_error(error, IC_ERROR, IC_ERROR_CONFIG, "%s: unknown key '%s'", origin, key);
        return FALSE;
    }
    return set_key(config, def, value, origin, error);
}

gboolean ic_config_load_file(IcConfig *config, const char *path, GError **error)
{
    g_autoptr(GKeyFile) file = g_key_file_new();
    g_autoptr(GError) local_error = NULL;

    if (!g_key_file_load_from_file(file, path, G_KEY_FILE_NONE, &local_error)) {
        int code = g_error_matches(local_error, G_FILE_ERROR, G_FILE_ERROR_NOENT)
                       ? IC_ERROR_NOT_FOUND
                       : IC_ERROR_CONFIG;
        g_set_error(error, IC_ERROR, code, "config file '%s': %s", path, local_error->message);
        return FALSE;
    }

    g_auto(GStrv) groups = g_key_file_get_groups(file, NULL);
    for (char **group = groups; *group != NULL; group++) {
        if (!g_str_equal(*group, IC_CONFIG_GROUP)) {
            g_set_error(error, IC_ERROR, IC_ERROR_CONFIG,
                        "config file '%s': unknown group '[%s]' (only [%s] is read)", path, *group,
                        IC_CONFIG_GROUP);
            return FALSE;
        }
    }

    g_autoptr(IcConfig) staged = config_copy(config);
    g_autofree char *origin = g_strdup_printf("config file '%s'", path);
    g_auto(GStrv) names = g_key_file_get_keys(file, IC_CONFIG_GROUP, NULL, NULL);
    for (char **name = names; name != NULL && *name != NULL; name++) {
        g_autofree char *value = g_key_file_get_value(file, IC_CONFIG_GROUP, *name, NULL);
        if (!ic_config_set(staged, *name, value, origin, error))
            return FALSE;
    }

    g_free(staged->source);
    staged->source = g_strdup(path);
    config_clear_strings(config);
    *config = *staged;
    g_free(g_steal_pointer(&staged));
    return TRUE;
}

gboolean ic_config_finish(IcConfig *config, GError **error)
{
    const char *origin = config->source ? config->source : "built-in defaults";

    if (strchr(config->base_dir_name, '/') != NULL || g_str_equal(config->base_dir_name, ".") ||
        g_str_equal(config->base_dir_name, "..")) {
        g_set_error(error, IC_ERROR, IC_ERROR_CONFIG,
                    "%s: key 'base_dir_name': '%s' must be a plain directory name", origin,
                    config->base_dir_name);
        return FALSE;
    }
    if (config->disk_high_watermark_percent > 0 &&
        config->disk_low_watermark_percent >= config->disk_high_watermark_percent) {
        g_set_error(error, IC_ERROR, IC_ERROR_CONFIG,
                    "%s: key 'disk_low_watermark_percent': %" G_GINT64_FORMAT
                    " must be below disk_high_watermark_percent (%" G_GINT64_FORMAT ")",
                    origin, config->disk_low_watermark_percent,
                    config->disk_high_watermark_percent);
        return FALSE;
    }
    if (config->ledger_dir == NULL)
        config->ledger_dir = g_build_filename(config->instances_path, "_ledger", NULL);
    if (config->host == NULL)
        config->host = g_strdup(g_get_host_name());
    if (!ic_ledger_host_name_is_valid(config->host)) {
        g_set_error(error, IC_ERROR, IC_ERROR_CONFIG,
                    "%s: key 'host': '%s' cannot name a ledger file (use letters, digits, '.', "
                    "'-' or '_', not starting with '.')",
                    origin, config->host);
        return FALSE;
    }
    return TRUE;
}

const char *ic_config_pinned_by(const IcConfig *config, const char *name, const char *fingerprint,
                                const char *image_id)
{
    const char *subjects[] = {name, fingerprint, image_id};
    for (char **pattern = config->pinned_images; pattern && *pattern; pattern++) {
        for (gsize i = 0; i < G_N_ELEMENTS(subjects); i++) {
            if (subjects[i] != NULL && g_pattern_match_simple(*pattern, subjects[i]))
                return *pattern;
        }
    }
    return NULL;
}

static gboolean rate_limit_error(const char *value, GError **error)
{
    g_set_error(error, IC_ERROR, IC_ERROR_CONFIG,
                "'%s' is not a rate in bytes/s (a whole number, optionally followed by K, M, G "
                "or T for KiB/s, MiB/s, GiB/s or TiB/s; 0 for unlimited)",
                value);
    return FALSE;
}

gboolean ic_config_parse_rate_limit(const char *value, guint64 *ret_bytes_per_sec, GError **error)
{
    static const char units[] = "KMGT";
    g_autofree char *text = g_strstrip(g_strdup(value));
    char *end = text;
    guint shift = 0;

    while (g_ascii_isdigit(*end))
        end++;
    if (end == text)
        return rate_limit_error(value, error);
    if (*end != '\0') {
        const char *unit = strchr(units, g_ascii_toupper(*end));
        if (unit == NULL || (end[1] != '\0' && g_ascii_strcasecmp(end + 1, "iB") != 0))
            return rate_limit_error(value, error);
        shift = 10 * (guint)(unit - units + 1);
        *end = '\0';
    }
    guint64 number;
    if (!g_ascii_string_to_unsigned(text, 10, 0, (guint64)G_MAXINT64 >> shift, &number, NULL))
        return rate_limit_error(value, error);
    *ret_bytes_per_sec = number << shift;
    return TRUE;
}

char *ic_config_base_dir(const IcConfig *config)
{
    return g_build_filename(config->instances_path, config->base_dir_name, NULL);
}

char *ic_config_to_data(const IcConfig *config)
{
    GString *out = g_string_new("[" IC_CONFIG_GROUP "]\n");
    for (gsize i = 0; i < G_N_ELEMENTS(keys); i++) {
        const KeyDef *key = &keys[i];
        const void *field = (const char *)config + key->offset;
        g_string_append_printf(out, "# %s\n", key->help);
        switch (key->type) {
        case KEY_STRING:
        case KEY_PATH: {
            const char *value = *(char *const *)field;
            if (value == NULL)
                g_string_append_printf(out, "#%s=\n", key->name);
            else
                g_string_append_printf(out, "%s=%s\n", key->name, value);
            break;
        }
        case KEY_BOOL:
            g_string_append_printf(out, "%s=%s\n", key->name,
                                   *(const gboolean *)field ? "true" : "false");
            break;
        case KEY_SECONDS:
        case KEY_PERCENT:
            g_string_append_printf(out, "%s=%" G_GINT64_FORMAT "\n", key->name,
                                   *(const gint64 *)field);
            break;
        case KEY_LIST: {
            g_autofree char *joined = g_strjoinv(";", *(char **const *)field);
            g_string_append_printf(out, "%s=%s\n", key->name, joined);
            break;
        }
        }
    }
    return g_string_free(out, FALSE);
}
