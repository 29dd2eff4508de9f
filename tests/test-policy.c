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

/* The policy as configured by default, with the ages these cases assume spelled
 * out: a key added later keeps its default here, as on a host. */
static IcConfig *default_config(void)
{
    IcConfig *config = ic_config_new();
    config->remove_unused_original_minimum_age_seconds = DAY;
    config->remove_unused_resized_minimum_age_seconds = HOUR;
    config->minimum_age_seconds = 600;
    return config;
}

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
    {"pinned_keeps", {ORIGINAL(10 * DAY), .pinned = TRUE}, TRUE, IC_VERDICT_KEPT, "pinned"},
    {"in_use_beats_pinned",
     {ORIGINAL(10 * DAY), .pinned = TRUE, .local_users = 1},
     TRUE,
     IC_VERDICT_ACTIVE,
     "in_use_local"},
    {"corrupt_beats_pinned",
     {ORIGINAL(10 * DAY), .pinned = TRUE, .checksum = IC_CHECKSUM_MISMATCH},
     TRUE,
     IC_VERDICT_CORRUPT,
     "corrupt"},
    {"held_open_keeps",
     {ORIGINAL(10 * DAY), .held_open = TRUE},
     TRUE,
     IC_VERDICT_KEPT,
     "held_open"},
    /* used yesterday, downloaded last year: not old */
    {"last_used_counts",
     {ORIGINAL(365 * DAY), .last_used = NOW - HOUR},
     TRUE,
     IC_VERDICT_TOO_YOUNG,
     "too_young"},
    {"last_used_old_enough",
     {ORIGINAL(365 * DAY), .last_used = NOW - 2 * DAY},
     TRUE,
     IC_VERDICT_REMOVABLE,
     "unused"},
    {"swap_uses_original_age",
     {.kind = IC_KIND_SWAP, .present = TRUE, .mtime = NOW - 2 * HOUR},
     TRUE,
     IC_VERDICT_TOO_YOUNG,
     "too_young"},
    {"ephemeral_old",
     {.kind = IC_KIND_EPHEMERAL, .present = TRUE, .mtime = NOW - 2 * DAY},
     TRUE,
     IC_VERDICT_REMOVABLE,
     "unused"},
    {"chosen_for_space",
     {RESIZED(HOUR - 1), .evict_for_space = TRUE},
     TRUE,
     IC_VERDICT_REMOVABLE,
     "disk_pressure"},
    {"chosen_for_space_but_in_use",
     {RESIZED(HOUR - 1), .evict_for_space = TRUE, .remote_users = 1},
     TRUE,
     IC_VERDICT_ACTIVE,
     "in_use_remote"},
    {"chosen_for_space_below_floor",
     {RESIZED(60), .evict_for_space = TRUE},
     TRUE,
     IC_VERDICT_TOO_YOUNG,
     "too_young"},
    {"chosen_for_space_removal_off",
     {RESIZED(HOUR - 1), .evict_for_space = TRUE},
     FALSE,
     IC_VERDICT_TOO_YOUNG,
     "too_young"},
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
    g_autoptr(IcConfig) config = default_config();
    config->remove_unused_base_images = tc->remove_unused;
    IcPolicyDecision decision = ic_policy_decide(&tc->facts, config, NOW);
    g_assert_cmpstr(ic_verdict_to_string(decision.verdict), ==, ic_verdict_to_string(tc->verdict));
    g_assert_cmpstr(ic_reason_to_string(decision.reason), ==, tc->reason);
    gboolean short_lived = tc->facts.kind == IC_KIND_RESIZED || tc->facts.kind == IC_KIND_SMALL;
    if (g_str_equal(tc->reason, "disk_pressure"))
        g_assert_cmpint(decision.threshold, ==, 600);
    else
        g_assert_cmpint(decision.threshold, ==, short_lived ? HOUR : DAY);
    if (tc->facts.present)
        g_assert_cmpint(decision.age, ==, MAX(NOW - MAX(tc->facts.mtime, tc->facts.last_used), 0));
}

static void test_quarantine(void)
{
    g_autoptr(IcConfig) config = default_config();
    config->quarantine_retention_seconds = 7 * DAY;
    IcPolicyFacts facts = {.kind = IC_KIND_ORIGINAL,
                           .present = TRUE,
                           .quarantined = TRUE,
                           .checksum = IC_CHECKSUM_MISMATCH,
                           .mtime = NOW - DAY};
    IcPolicyDecision d = ic_policy_decide(&facts, config, NOW);
    g_assert_cmpint(d.verdict, ==, IC_VERDICT_QUARANTINED);
    g_assert_cmpstr(ic_reason_to_string(d.reason), ==, "quarantined");
    facts.mtime = NOW - 7 * DAY;
    d = ic_policy_decide(&facts, config, NOW);
    g_assert_cmpint(d.verdict, ==, IC_VERDICT_REMOVABLE);
    g_assert_cmpstr(ic_reason_to_string(d.reason), ==, "quarantine_expired");
}

/* ---- disk pressure: a fake disk of 1000 bytes ---- */

typedef struct {
    const char *name;
    guint64 used; /* of 1000 */
    IcPolicyFacts files[5];
    guint n_files;
    const char *chosen; /* one letter per file: x chosen, . not */
} PressureCase;

#define UNUSED(age, bytes)                                                                         \
    {                                                                                              \
        .kind = IC_KIND_RESIZED, .present = TRUE, .mtime = NOW - (age), .disk_bytes = (bytes)      \
    }

static const PressureCase pressure_cases[] = {
    /* 90 % used, evict LRU-first down to 80 %: the two oldest suffice */
    {"lru_down_to_low_mark", 900, {UNUSED(3000, 60), UNUSED(1000, 60), UNUSED(2000, 60)}, 3, "x.x"},
    {"below_high_mark", 840, {UNUSED(3000, 60), UNUSED(1000, 60)}, 2, ".."},
    {"at_high_mark", 850, {UNUSED(3000, 60), UNUSED(1000, 60)}, 2, "x."},
    /* pinned beats disk pressure: the next oldest goes instead */
    {"pinned_beats_pressure",
     900,
     {{.kind = IC_KIND_RESIZED,
       .present = TRUE,
       .mtime = NOW - 3000,
       .disk_bytes = 60,
       .pinned = TRUE},
      UNUSED(2000, 60),
      UNUSED(1000, 60)},
     3,
     ".xx"},
    /* in use beats everything */
    {"in_use_beats_pressure",
     990,
     {{.kind = IC_KIND_RESIZED,
       .present = TRUE,
       .mtime = NOW - 3000,
       .disk_bytes = 500,
       .local_users = 1},
      UNUSED(2000, 10)},
     2,
     ".x"},
    /* nothing younger than the floor (600 s) goes, even short of the low mark */
    {"minimum_age_floor", 990, {UNUSED(599, 500), UNUSED(700, 10)}, 2, ".x"},
    /* a file already removable by age counts towards the target */
    {"removable_counts_first", 900, {UNUSED(2 * HOUR, 100), UNUSED(3000, 60)}, 2, ".."},
    {"corrupt_never_chosen",
     990,
     {{.kind = IC_KIND_RESIZED,
       .present = TRUE,
       .mtime = NOW - 3000,
       .disk_bytes = 500,
       .checksum = IC_CHECKSUM_MISMATCH}},
     1,
     "."},
};

static void test_pressure(gconstpointer data)
{
    const PressureCase *tc = data;
    g_autoptr(IcConfig) config = default_config();
    config->disk_high_watermark_percent = 85;
    config->disk_low_watermark_percent = 80;
    IcDiskUsage disk = {.total_bytes = 1000, .used_bytes = tc->used};
    IcPolicyFacts files[5];
    IcPolicyFacts *pointers[5];
    for (guint i = 0; i < tc->n_files; i++) {
        files[i] = tc->files[i];
        pointers[i] = &files[i];
    }
    guint chosen = ic_policy_select_for_space(pointers, tc->n_files, config, &disk, NOW);
    GString *got = g_string_new(NULL);
    guint marked = 0;
    for (guint i = 0; i < tc->n_files; i++) {
        g_string_append_c(got, files[i].evict_for_space ? 'x' : '.');
        marked += files[i].evict_for_space;
        /* and the chosen ones are what the policy then removes */
        IcPolicyDecision d = ic_policy_decide(&files[i], config, NOW);
        if (files[i].evict_for_space)
            g_assert_cmpstr(ic_reason_to_string(d.reason), ==, "disk_pressure");
    }
    g_assert_cmpstr(got->str, ==, tc->chosen);
    g_assert_cmpuint(chosen, ==, marked);
    g_string_free(got, TRUE);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *path = g_strdup_printf("/imagecache/policy/%s", cases[i].name);
        g_test_add_data_func(path, &cases[i], test_case);
    }
    g_test_add_func("/imagecache/policy/quarantine", test_quarantine);
    for (gsize i = 0; i < G_N_ELEMENTS(pressure_cases); i++) {
        g_autofree char *path =
            g_strdup_printf("/imagecache/policy/pressure/%s", pressure_cases[i].name);
        g_test_add_data_func(path, &pressure_cases[i], test_pressure);
    }
    return g_test_run();
}
