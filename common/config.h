/* config.h — the [imagecache] settings: their names, defaults, parsing and validation.
 * Every key lives in one table in config.c; the CLI, hook and plugin only load and override. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define IC_CONFIG_GROUP        "imagecache"
#define IC_CONFIG_DEFAULT_PATH SYSCONFDIR "/imagecache.conf"

typedef struct {
    char *source; /* the file the settings came from, NULL for built-in defaults */

    char *instances_path;
    char *base_dir_name;
    char *ledger_dir; /* NULL until loaded: then <instances_path>/_ledger unless set */
    char *host;
    char *libvirt_uri;

    gboolean remove_unused_base_images;
    gint64 remove_unused_original_minimum_age_seconds;
    gint64 remove_unused_resized_minimum_age_seconds;
    gboolean checksum_base_images;
    gint64 checksum_interval_seconds;
    gint64 ledger_stale_seconds;
    gboolean strict_prepare;
    gint64 prepare_lock_wait_seconds;    /* the hook's bound on the usage lock at prepare */
    gint64 shared_pass_interval_seconds; /* 0: every host's pass removes */

    /* Beyond Nova: disk pressure, pinning, swap/ephemeral files, quarantine. */
    gint64 disk_high_watermark_percent; /* 0: off */
    gint64 disk_low_watermark_percent;
    gint64 minimum_age_seconds; /* nothing younger is evicted for space */
    char **pinned_images;       /* globs on file names, fingerprints or image ids */
    gboolean collect_swap_and_ephemeral;
    gboolean quarantine_corrupt;
    gint64 quarantine_retention_seconds;
} IcConfig;

/* A config holding Nova's defaults; never fails. */
IcConfig *ic_config_new(void);
void ic_config_free(IcConfig *config);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IcConfig, ic_config_free)

/* Reads @path (GKeyFile syntax, group [imagecache]) over the current values.
 * An unreadable file, a missing group, an unknown key or a bad value fails with
 * IC_ERROR_CONFIG (IC_ERROR_NOT_FOUND for a missing file) naming key and file;
 * on failure @config is left unchanged. */
gboolean ic_config_load_file(IcConfig *config, const char *path, GError **error);

/* Sets one key from its textual value, as the file would; @origin names where
 * the value came from in error messages (a file, "collectd config"). */
gboolean ic_config_set(IcConfig *config, const char *key, const char *value, const char *origin,
                       GError **error);

/* Checks cross-key rules and fills derived defaults (ledger_dir, host). */
gboolean ic_config_finish(IcConfig *config, GError **error);

/* The first pattern of pinned_images that matches @name, @fingerprint or
 * @image_id (each may be NULL), or NULL. */
const char *ic_config_pinned_by(const IcConfig *config, const char *name, const char *fingerprint,
                                const char *image_id);

/* Parses a hashing rate limit in bytes per second, as imagecachectl's
 * --rate-limit and the plugin's ChecksumRateLimit take it: a whole number,
 * optionally with K, M, G or T (KiB/s, MiB/s, GiB/s, TiB/s; "50M", "50MiB");
 * 0 means unlimited. A bad value fails with IC_ERROR_CONFIG quoting it; the
 * caller prefixes the option's name. */
gboolean ic_config_parse_rate_limit(const char *value, guint64 *ret_bytes_per_sec, GError **error);

/* The key the collectd plugin's option @option overrides (case-insensitive,
 * as collectd compares), or NULL when no key has that option. */
const char *ic_config_key_for_option(const char *option);
/* Every collectd option of a key, in file order; caller frees (g_strfreev). */
char **ic_config_collectd_options(void);

/* <instances_path>/<base_dir_name>; caller frees. */
char *ic_config_base_dir(const IcConfig *config);

/* Every known key with its current value, in file order, as GKeyFile text
 * (for the example file and the man page). */
char *ic_config_to_data(const IcConfig *config);

G_END_DECLS
