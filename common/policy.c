#include "policy.h"

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
    }
    return "unknown";
}

static IcPolicyDecision decision(IcVerdict verdict, const char *reason, gint64 age,
                                 gint64 threshold)
{
    return (IcPolicyDecision){
        .verdict = verdict, .reason = reason, .age = age, .threshold = threshold};
}

/* The rules, strongest first: a file users name is never removable; a corrupt
 * file is kept for inspection; then age, then whether removal may happen. */
IcPolicyDecision ic_policy_decide(const IcPolicyFacts *facts, const IcPolicyConfig *config,
                                  gint64 now)
{
    gint64 threshold = facts->kind == IC_KIND_ORIGINAL ? config->original_minimum_age
                                                       : config->resized_minimum_age;
    gboolean local = facts->local_users > 0;
    gboolean remote = facts->remote_users > 0;

    if (!facts->present)
        return decision(IC_VERDICT_ABSENT, local ? "in_use_local" : "in_use_remote", 0, threshold);

    /* A clock step backwards must not make a file look older than it is. */
    gint64 age = MAX(now - facts->mtime, 0);

    if (facts->checksum == IC_CHECKSUM_MISMATCH)
        return decision(IC_VERDICT_CORRUPT, "corrupt", age, threshold);
    if (local)
        return decision(IC_VERDICT_ACTIVE, "in_use_local", age, threshold);
    if (remote)
        return decision(IC_VERDICT_ACTIVE, "in_use_remote", age, threshold);
    if (age < threshold)
        return decision(IC_VERDICT_TOO_YOUNG, "too_young", age, threshold);
    if (facts->usage_incomplete)
        return decision(IC_VERDICT_KEPT, "usage_unknown", age, threshold);
    if (!config->remove_unused)
        return decision(IC_VERDICT_KEPT, "removal_disabled", age, threshold);
    return decision(IC_VERDICT_REMOVABLE, "unused", age, threshold);
}
