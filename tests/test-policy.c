/* The policy function, rule by rule, on plain facts: no files, no clock. */
#include "policy.h"

#define NOW  ((gint64)1700000000)
#define HOUR ((gint64)3600)
#define DAY  ((gint64)86400)

typedef struct {
    const char *name;
    IcPolicyFacts facts;
    gboolean remove_unused;
    IcVerdict verdict;
    const char *reason;
} PolicyCase;

#define ORIGINAL(age) .kind = IC_KIND_ORIGINAL, .present = TRUE, .mtime = NOW - (age)
#define RESIZED(age)  .kind = IC_KIND_RESIZED, .present = TRUE, .mtime = NOW - (age)
#define SMALL(age)    .kind = IC_KIND_SMALL, .present = TRUE, .mtime = NOW - (age)

static const PolicyCase cases[] = {
    {"unused_original_old", {ORIGINAL(DAY + 1)}, TRUE, IC_VERDICT_REMOVABLE, "unused"},
    {"unused_original_at_threshold", {ORIGINAL(DAY)}, TRUE, IC_VERDICT_REMOVABLE, "unused"},
    {"unused_original_young", {ORIGINAL(DAY - 1)}, TRUE, IC_VERDICT_TOO_YOUNG, "too_young"},
    {"unused_original_hour", {ORIGINAL(HOUR + 1)}, TRUE, IC_VERDICT_TOO_YOUNG, "too_young"},
    {"unused_resized_old", {RESIZED(HOUR + 1)}, TRUE, IC_VERDICT_REMOVABLE, "unused"},
    {"unused_resized_young", {RESIZED(HOUR - 1)}, TRUE, IC_VERDICT_TOO_YOUNG, "too_young"},
    {"unused_small_old", {SMALL(HOUR + 1)}, TRUE, IC_VERDICT_REMOVABLE, "unused"},
    {"local_user_keeps",
     {ORIGINAL(10 * DAY), .local_users = 1},
     TRUE,
     IC_VERDICT_ACTIVE,
     "in_use_local"},
    {"remote_user_keeps",
     {RESIZED(10 * DAY), .remote_users = 3},
     TRUE,
     IC_VERDICT_ACTIVE,
     "in_use_remote"},
    {"local_beats_remote_in_reason",
     {RESIZED(10 * DAY), .local_users = 1, .remote_users = 1},
     TRUE,
     IC_VERDICT_ACTIVE,
     "in_use_local"},
    {"corrupt_unused_kept",
     {ORIGINAL(10 * DAY), .checksum = IC_CHECKSUM_MISMATCH},
     TRUE,
     IC_VERDICT_CORRUPT,
     "corrupt"},
    {"corrupt_in_use_reported",
     {ORIGINAL(0), .local_users = 2, .checksum = IC_CHECKSUM_MISMATCH},
     TRUE,
     IC_VERDICT_CORRUPT,
     "corrupt"},
    {"checksum_error_not_corrupt",
     {RESIZED(2 * HOUR), .checksum = IC_CHECKSUM_ERROR},
     TRUE,
     IC_VERDICT_REMOVABLE,
     "unused"},
    {"removal_off", {ORIGINAL(10 * DAY)}, FALSE, IC_VERDICT_KEPT, "removal_disabled"},
    {"removal_off_young_is_young", {RESIZED(1)}, FALSE, IC_VERDICT_TOO_YOUNG, "too_young"},
    {"usage_incomplete_keeps",
     {ORIGINAL(10 * DAY), .usage_incomplete = TRUE},
     TRUE,
     IC_VERDICT_KEPT,
     "usage_unknown"},
    {"usage_incomplete_user_active",
     {ORIGINAL(1), .usage_incomplete = TRUE, .local_users = 1},
     TRUE,
     IC_VERDICT_ACTIVE,
     "in_use_local"},
    {"absent_local",
     {.kind = IC_KIND_ORIGINAL, .present = FALSE, .local_users = 1},
     TRUE,
     IC_VERDICT_ABSENT,
     "in_use_local"},
    {"absent_remote",
     {.kind = IC_KIND_RESIZED, .present = FALSE, .remote_users = 1},
     TRUE,
     IC_VERDICT_ABSENT,
     "in_use_remote"},
    /* mtime in the future (clock stepped back): age 0, never old */
    {"future_mtime",
     {.kind = IC_KIND_RESIZED, .present = TRUE, .mtime = NOW + DAY},
     TRUE,
     IC_VERDICT_TOO_YOUNG,
     "too_young"},
};

static void test_case(gconstpointer data)
{
    const PolicyCase *tc = data;
    IcPolicyConfig config = {
        .remove_unused = tc->remove_unused,
        .original_minimum_age = DAY,
        .resized_minimum_age = HOUR,
    };
    IcPolicyDecision decision = ic_policy_decide(&tc->facts, &config, NOW);
    g_assert_cmpstr(ic_verdict_to_string(decision.verdict), ==, ic_verdict_to_string(tc->verdict));
    g_assert_cmpstr(decision.reason, ==, tc->reason);
    g_assert_cmpint(decision.threshold, ==, tc->facts.kind == IC_KIND_ORIGINAL ? DAY : HOUR);
    if (tc->facts.present)
        g_assert_cmpint(decision.age, ==, MAX(NOW - tc->facts.mtime, 0));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *path = g_strdup_printf("/imagecache/policy/%s", cases[i].name);
        g_test_add_data_func(path, &cases[i], test_case);
    }
    return g_test_run();
}
