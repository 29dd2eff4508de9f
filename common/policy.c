#include "policy.h"

#include <stdlib.h>

const char *ic_verdict_to_string(IcVerdict verdict)
{
    switch (verdict) {
    case IC_VERDICT_ACTIVE:
        return "active";
    case IC_VERDICT_REMOVABLE:
        return "removable";
    case IC_VERDICT_TOO_YOUNG:
        return "too_young";
    case IC_VERDICT_CORRUPT:
        return "corrupt";
    case IC_VERDICT_ABSENT:
        return "absent";
    case IC_VERDICT_KEPT:
        return "kept";
    case IC_VERDICT_QUARANTINED:
        return "quarantined";
    }
    return "unknown";
}

/* Removals counted per reason in the collectd values (type instances must be static). */
#define REMOVALS(name) .removed_value = "removed-" name, .reclaimed_value = "reclaimed-" name

static const IcReasonInfo reasons[] = {
    [IC_REASON_IN_USE_LOCAL] = {"in_use_local", "in use by {users}"},
    [IC_REASON_IN_USE_REMOTE] = {"in_use_remote", "in use by {users}"},
    [IC_REASON_CORRUPT] = {"corrupt", "checksum mismatch: expected {expected}, got {actual}"},
    [IC_REASON_PINNED] = {"pinned", "pinned by '{pinned_by}'"},
    [IC_REASON_HELD_OPEN] = {"held_open", "unused by every witness, but a process holds it open"},
    [IC_REASON_DISK_PRESSURE] = {"disk_pressure",
                                 "evicted for space (disk above the high watermark, least "
                                 "recently used first)",
                                 REMOVALS("disk_pressure")},
    [IC_REASON_TOO_YOUNG] = {"too_young", "unused, kept until unused for {threshold}"},
    [IC_REASON_USAGE_UNKNOWN] = {"usage_unknown",
                                 "unused as far as known, but a witness could not be read"},
    [IC_REASON_REMOVAL_DISABLED] = {"removal_disabled",
                                    "unused, removal is off (remove_unused_base_images)"},
    [IC_REASON_UNUSED] = {"unused", "unused for longer than {threshold}", REMOVALS("unused")},
    [IC_REASON_QUARANTINED] = {"quarantined", "corrupt, in quarantine until {threshold} old"},
    [IC_REASON_QUARANTINE_EXPIRED] = {"quarantine_expired",
                                      "corrupt, in quarantine for longer than {threshold}",
                                      REMOVALS("quarantine_expired")},
    [IC_REASON_REMOVAL_DEFERRED] = {"removal_deferred",
                                    "unused, removal deferred to the next pass (see the notes)"},
    [IC_REASON_ALREADY_GONE] = {"already_gone",
                                "unused, already gone when it was to be removed (another pass?)"},
};
G_STATIC_ASSERT(G_N_ELEMENTS(reasons) == _IC_REASON_MAX);

const IcReasonInfo *ic_reason_info(IcReason reason)
{
    g_return_val_if_fail(reason < _IC_REASON_MAX, &reasons[IC_REASON_USAGE_UNKNOWN]);
    return &reasons[reason];
}

const char *ic_reason_to_string(IcReason reason)
{
    return ic_reason_info(reason)->name;
}

static IcPolicyDecision decision(IcVerdict verdict, IcReason reason, gint64 age, gint64 threshold)
{
    return (IcPolicyDecision){
        .verdict = verdict, .reason = reason, .age = age, .threshold = threshold};
}

static gint64 threshold_for(const IcPolicyFacts *facts, const IcConfig *config)
{
    switch (facts->kind) {
    case IC_KIND_RESIZED:
    case IC_KIND_SMALL:
        return config->remove_unused_resized_minimum_age_seconds;
    default:
        return config->remove_unused_original_minimum_age_seconds;
    }
}

/* Time unused: since the later of the last release and the mtime (which the
 * pass refreshes while a file is in use). A clock step backwards must not
 * make a file look older than it is. */
static gint64 age_of(const IcPolicyFacts *facts, gint64 now)
{
    return MAX(now - MAX(facts->mtime, facts->last_used), 0);
}

static IcPolicyDecision decide_quarantined(const IcPolicyFacts *facts, const IcConfig *config,
                                           gint64 now)
{
    gint64 age = MAX(now - facts->mtime, 0);
    /* A domain that still names the file under its base-dir name may be
     * repaired by moving it back: while anyone names it, or we cannot tell, keep it. */
    gboolean named = facts->local_users + facts->remote_users > 0 || facts->usage_incomplete;
    if (age >= config->quarantine_retention_seconds && !facts->held_open && !named)
        return decision(IC_VERDICT_REMOVABLE, IC_REASON_QUARANTINE_EXPIRED, age,
                        config->quarantine_retention_seconds);
    return decision(IC_VERDICT_QUARANTINED, IC_REASON_QUARANTINED, age,
                    config->quarantine_retention_seconds);
}

/* The rules, strongest first: a file users name is never removable; a corrupt
 * file is kept for inspection; pinned and held-open files stay; then age,
 * disk pressure, and whether removal may happen at all. */
IcPolicyDecision ic_policy_decide(const IcPolicyFacts *facts, const IcConfig *config, gint64 now)
{
    gint64 threshold = threshold_for(facts, config);
    gboolean local = facts->local_users > 0;
    gboolean remote = facts->remote_users > 0;

    if (facts->quarantined)
        return decide_quarantined(facts, config, now);
    if (!facts->present)
        return decision(IC_VERDICT_ABSENT, local ? IC_REASON_IN_USE_LOCAL : IC_REASON_IN_USE_REMOTE,
                        0, threshold);

    gint64 age = age_of(facts, now);
    if (facts->checksum == IC_CHECKSUM_MISMATCH) {
        IcPolicyDecision corrupt = decision(IC_VERDICT_CORRUPT, IC_REASON_CORRUPT, age, threshold);
        corrupt.quarantine = config->quarantine_corrupt && !local && !remote && !facts->pinned &&
                             !facts->held_open && !facts->usage_incomplete &&
                             facts->sidecar_is_digest;
        return corrupt;
    }
    if (local)
        return decision(IC_VERDICT_ACTIVE, IC_REASON_IN_USE_LOCAL, age, threshold);
    if (remote)
        return decision(IC_VERDICT_ACTIVE, IC_REASON_IN_USE_REMOTE, age, threshold);
    if (facts->pinned)
        return decision(IC_VERDICT_KEPT, IC_REASON_PINNED, age, threshold);
    if (facts->held_open)
        return decision(IC_VERDICT_KEPT, IC_REASON_HELD_OPEN, age, threshold);
    if (age < threshold) {
        if (facts->evict_for_space && age >= config->minimum_age_seconds &&
            !facts->usage_incomplete && config->remove_unused_base_images)
            return decision(IC_VERDICT_REMOVABLE, IC_REASON_DISK_PRESSURE, age,
                            config->minimum_age_seconds);
        return decision(IC_VERDICT_TOO_YOUNG, IC_REASON_TOO_YOUNG, age, threshold);
    }
    if (facts->usage_incomplete)
        return decision(IC_VERDICT_KEPT, IC_REASON_USAGE_UNKNOWN, age, threshold);
    if (!config->remove_unused_base_images)
        return decision(IC_VERDICT_KEPT, IC_REASON_REMOVAL_DISABLED, age, threshold);
    return decision(IC_VERDICT_REMOVABLE, IC_REASON_UNUSED, age, threshold);
}

static int compare_least_recently_used(const void *a, const void *b)
{
    const IcPolicyFacts *fa = *(IcPolicyFacts *const *)a;
    const IcPolicyFacts *fb = *(IcPolicyFacts *const *)b;
    gint64 used_a = MAX(fa->mtime, fa->last_used);
    gint64 used_b = MAX(fb->mtime, fb->last_used);
    return used_a < used_b ? -1 : used_a > used_b;
}

guint ic_policy_select_for_space(IcPolicyFacts *const *facts, guint n_facts, const IcConfig *config,
                                 const IcDiskUsage *disk, gint64 now)
{
    if (config->disk_high_watermark_percent <= 0 || disk->total_bytes == 0)
        return 0;
    if (disk->used_bytes * 100 < (guint64)config->disk_high_watermark_percent * disk->total_bytes)
        return 0;

    guint64 target = disk->total_bytes * (guint64)config->disk_low_watermark_percent / 100;
    guint64 projected = disk->used_bytes;
    g_autoptr(GPtrArray) candidates = g_ptr_array_new();
    for (guint i = 0; i < n_facts; i++) {
        IcPolicyFacts *f = facts[i];
        f->evict_for_space = FALSE;
        IcPolicyDecision d = ic_policy_decide(f, config, now);
        if (d.verdict == IC_VERDICT_REMOVABLE)
            projected -= MIN(projected, (guint64)MAX(f->disk_bytes, 0));
        else if (d.verdict == IC_VERDICT_TOO_YOUNG && d.age >= config->minimum_age_seconds)
            g_ptr_array_add(candidates, f);
    }

    /* An empty GPtrArray's pdata is NULL, and qsort(NULL, 0, ...) is undefined. */
    if (candidates->len > 0)
        qsort(candidates->pdata, candidates->len, sizeof(gpointer), compare_least_recently_used);
    guint chosen = 0;
    for (guint i = 0; i < candidates->len && projected > target; i++) {
        IcPolicyFacts *f = g_ptr_array_index(candidates, i);
        f->evict_for_space = TRUE;
        projected -= MIN(projected, (guint64)MAX(f->disk_bytes, 0));
        chosen++;
    }
    return chosen;
}
