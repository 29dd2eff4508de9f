/* plugin-options.h — the <Plugin imagecache> options: the plugin's own
 * (Config, PassInterval, ChecksumRateLimit, PerImageValues) and the overrides
 * of config keys, whose option names config.c's key table holds. */
#pragma once

#include <glib.h>

#include "config.h"
#include "metrics.h"

G_BEGIN_DECLS

#define IC_PLUGIN_DEFAULT_PASS_INTERVAL 2400        /* seconds: Nova's image cache period */
#define IC_PLUGIN_MAX_PASS_INTERVAL     (7 * 86400) /* seconds: a week */
/* 50 MiB/s: about a third of a hard disk's or a 1 GbE NFS link's sequential
 * throughput, so guests keep the rest; still 117 GiB per 2400 s pass. */
#define IC_PLUGIN_DEFAULT_CHECKSUM_RATE_LIMIT (50 * 1024 * 1024)

typedef struct {
    char *config_path;           /* Config: required, nothing runs on a config nobody wrote */
    GPtrArray *overrides;        /* private: the library keys to set, in order */
    gint64 pass_interval;        /* PassInterval, seconds, 1..IC_PLUGIN_MAX_PASS_INTERVAL */
    guint64 checksum_rate_limit; /* ChecksumRateLimit, bytes/s, 0 = unlimited */
    IcPerImageValues per_image;  /* PerImageValues */
} IcPluginOptions;

IcPluginOptions *ic_plugin_options_new(void);
void ic_plugin_options_free(IcPluginOptions *options);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IcPluginOptions, ic_plugin_options_free)

/* Records option @name with its textual @value. An unknown option or a bad
 * PassInterval/ChecksumRateLimit/PerImageValues fails with IC_ERROR_CONFIG naming the option;
 * library keys are checked when the config is built. */
gboolean ic_plugin_options_set(IcPluginOptions *options, const char *name, const char *value,
                               GError **error);

/* Loads the Config file, applies the overrides in order and finishes the
 * config. No Config option, an unreadable file or a bad value fails with
 * IC_ERROR_CONFIG (IC_ERROR_NOT_FOUND for a missing file) naming the option. */
gboolean ic_plugin_options_build_config(const IcPluginOptions *options, IcConfig **ret_config,
                                        GError **error);

G_END_DECLS
