/* test-redteam-usage.c — probes against the issue 15 rewrite of the usage
 * table (interned strings compared as pointers, the seen index past 16 users,
 * usages merged from walk threads): whatever the order and spelling witnesses
 * report users in, the table counts what a plain string model counts, and a
 * walk large enough for several threads loses, merges and splits no user. */
#include <string.h>
#include <unistd.h>

#include "imgwriter.h"
#include "pass.h"
#include "report.h"
#include "scan.h"
#include "testutil.h"
#include "usage.h"

#include <glib/gstdio.h>

/* ---- a string model of a set of users: the pre-rewrite semantics ---- */

typedef struct {
    char *uuid; /* lowercase or NULL */
    char *name;
    char *host; /* NULL: on this host */
} ModelUser;

typedef struct {
    GPtrArray *users; /* ModelUser* */
    guint local, remote, witnesses;
} ModelSet;

static void model_user_free(ModelUser *user)
{
    g_free(user->uuid);
    g_free(user->name);
    g_free(user->host);
    g_free(user);
}

static ModelSet *model_set_new(void)
{
    ModelSet *set = g_new0(ModelSet, 1);
    set->users = g_ptr_array_new_with_free_func((GDestroyNotify)model_user_free);
    return set;
}

static void model_set_free(ModelSet *set)
{
    g_ptr_array_unref(set->users);
    g_free(set);
}

static ModelUser *model_find(ModelSet *set, const char *id, const char *host)
{
    if (id == NULL)
        return NULL;
    for (guint i = 0; i < set->users->len; i++) {
        ModelUser *user = g_ptr_array_index(set->users, i);
        if (g_strcmp0(user->host, host) == 0 &&
            (g_strcmp0(user->uuid, id) == 0 || g_strcmp0(user->name, id) == 0))
            return user;
    }
    return NULL;
}

/* One user per UUID (per host), by name only where a UUID is missing. */
static void model_add(ModelSet *set, const char *uuid, const char *name, const char *host,
                      guint witnesses)
{
    set->witnesses |= witnesses;
    ModelUser *user = model_find(set, uuid, host);
    if (user == NULL) {
        user = model_find(set, name, host);
        if (user != NULL && uuid != NULL && user->uuid != NULL)
            user = NULL;
    }
    if (user == NULL) {
        user = g_new0(ModelUser, 1);
        user->host = g_strdup(host);
        g_ptr_array_add(set->users, user);
        if (host == NULL)
            set->local++;
        else
            set->remote++;
    }
    if (user->uuid == NULL && uuid != NULL)
        user->uuid = g_strdup(uuid);
    if (user->name == NULL && name != NULL)
        user->name = g_strdup(name);
}

static void model_merge(ModelSet *into, const ModelSet *from)
{
    if (from == NULL)
        return;
    into->witnesses |= from->witnesses;
    for (guint i = 0; i < from->users->len; i++) {
        const ModelUser *user = g_ptr_array_index(from->users, i);
        model_add(into, user->uuid, user->name, user->host, 0);
    }
}

static char *model_text(const ModelSet *set)
{
    GString *text = g_string_new(NULL);
    for (guint i = 0; set != NULL && i < set->users->len; i++) {
        const ModelUser *user = g_ptr_array_index(set->users, i);
        const char *id = user->name ? user->name : user->uuid;
        g_string_append_printf(text, "%s%s", i ? "," : "", id);
        if (user->host != NULL)
            g_string_append_printf(text, "@%s", user->host);
    }
    return g_string_free(text, FALSE);
}

/* key (path or fingerprint) -> ModelSet* */
static GHashTable *model_table_new(void)
{
    return g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)model_set_free);
}

static ModelSet *model_table_get(GHashTable *table, const char *key)
{
    ModelSet *set = g_hash_table_lookup(table, key);
    if (set == NULL) {
        set = model_set_new();
        g_hash_table_insert(table, g_strdup(key), set);
    }
    return set;
}

/* ---- random reports ---- */

#define BASE_DIR "/i/_base"
static const char *const names_of_files[] = {"p1", "p2",
                                             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
static const char *const fingerprints[] = {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                                           "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"};
static const char *const image_ids[] = {"img-1", "img-2", "IMG-1"};
static const char *const hosts[] = {"h", "g", "", "h2"};

/* A UUID from a pool of @pool, in lower, upper or mixed case. */
static char *random_uuid(GRand *rand, guint pool)
{
    guint k = (guint)g_rand_int_range(rand, 0, (gint32)pool);
    char *uuid = g_strdup_printf("3f2a4b8e-1c1d-4e0f-9a55-%012x", 0xabcdefu + k * 0x1111u);
    switch (g_rand_int_range(rand, 0, 3)) {
    case 1:
        for (char *p = uuid; *p; p++)
            *p = g_ascii_toupper(*p);
        break;
    case 2: {
        gint32 at = g_rand_int_range(rand, 24, 36);
        uuid[at] = g_ascii_toupper(uuid[at]);
        break;
    }
    }
    return uuid;
}

/* A name from a pool of @pool, or one that reads like a label or a UUID. */
static char *random_name(GRand *rand, guint pool)
{
    guint k = (guint)g_rand_int_range(rand, 0, (gint32)pool + 3);
    if (k == pool)
        return g_strdup("");
    if (k == pool + 1)
        return g_strdup("vm0@g"); /* a local domain named like remote vm0 on g */
    if (k == pool + 2)
        return g_strdup_printf("3f2a4b8e-1c1d-4e0f-9a55-%012x", 0xabcdefu); /* a pool UUID */
    return g_strdup_printf("vm%u", k);
}

typedef struct {
    IcUsage *usage;
    GHashTable *by_path;        /* model */
    GHashTable *by_fingerprint; /* model */
} Both;

static void both_init(Both *both)
{
    both->usage = ic_usage_new();
    both->by_path = model_table_new();
    both->by_fingerprint = model_table_new();
}

static void both_clear(Both *both)
{
    ic_usage_free(both->usage);
    g_hash_table_unref(both->by_path);
    g_hash_table_unref(both->by_fingerprint);
}

static void model_merge_table(GHashTable *into, GHashTable *from)
{
    GHashTableIter iter;
    gpointer key, set;
    g_hash_table_iter_init(&iter, from);
    while (g_hash_table_iter_next(&iter, &key, &set))
        model_merge(model_table_get(into, key), set);
}

/* One random report into @both. */
static void report_random_user(GRand *rand, Both *both, guint uuid_pool, guint name_pool)
{
    g_autofree char *uuid = g_rand_int_range(rand, 0, 4) ? random_uuid(rand, uuid_pool) : NULL;
    g_autofree char *name =
        uuid == NULL || g_rand_boolean(rand) ? random_name(rand, name_pool) : NULL;
    gboolean local = g_rand_int_range(rand, 0, 3) != 0;
    const char *host = hosts[g_rand_int_range(rand, 0, G_N_ELEMENTS(hosts))];
    guint witness = 1u << g_rand_int_range(rand, 0, 4);
    g_autofree char *lower = uuid ? g_ascii_strdown(uuid, -1) : NULL;
    const char *model_host = local ? NULL : host;
    switch (g_rand_int_range(rand, 0, 3)) {
    case 0: {
        g_autofree char *path = g_build_filename(
            BASE_DIR, names_of_files[g_rand_int_range(rand, 0, G_N_ELEMENTS(names_of_files))],
            NULL);
        ic_usage_add_path_user(both->usage, path, uuid, name, host, local, witness);
        model_add(model_table_get(both->by_path, path), lower, name, model_host, witness);
        break;
    }
    case 1: {
        const char *fp = fingerprints[g_rand_int_range(rand, 0, G_N_ELEMENTS(fingerprints))];
        ic_usage_add_fingerprint_user(both->usage, fp, uuid, name, host, local, witness);
        model_add(model_table_get(both->by_fingerprint, fp), lower, name, model_host, witness);
        break;
    }
    default: {
        const char *image_id = image_ids[g_rand_int_range(rand, 0, G_N_ELEMENTS(image_ids))];
        g_autofree char *fp = ic_fingerprint_of_image_id(image_id);
        ic_usage_add_image_user(both->usage, image_id, uuid, name, host, local, witness);
        model_add(model_table_get(both->by_fingerprint, fp), lower, name, model_host, witness);
        break;
    }
    }
}

static void assert_same(const IcUsers *users, const ModelSet *model, guint seed, const char *what)
{
    g_autofree char *want = model_text(model);
    g_autofree char *got = users ? ic_test_users_text(users) : g_strdup("");
    if (g_strcmp0(got, want) != 0)
        g_error("seed %u, %s: users '%s', the model says '%s'", seed, what, got, want);
    g_assert_cmpuint(users ? users->local : 0, ==, model ? model->local : 0);
    g_assert_cmpuint(users ? users->remote : 0, ==, model ? model->remote : 0);
    g_assert_cmpuint(users ? users->witnesses : 0, ==, model ? model->witnesses : 0);
}

/* Every set and every file's merged users agree with the model. */
static void assert_like_model(const Both *both, guint seed)
{
    for (gsize n = 0; n < G_N_ELEMENTS(names_of_files); n++) {
        g_autofree char *path = g_build_filename(BASE_DIR, names_of_files[n], NULL);
        const ModelSet *by_path = g_hash_table_lookup(both->by_path, path);
        assert_same(ic_usage_lookup_path(both->usage, path), by_path, seed, path);
        for (gsize f = 0; f < G_N_ELEMENTS(fingerprints); f++) {
            g_autoptr(IcUsers) users =
                ic_usage_users_of(both->usage, BASE_DIR, names_of_files[n], fingerprints[f], 0, 0);
            g_autoptr(GHashTable) scratch = model_table_new();
            ModelSet *merged = model_table_get(scratch, "merged");
            model_merge(merged, by_path);
            model_merge(merged, g_hash_table_lookup(both->by_fingerprint, fingerprints[f]));
            assert_same(users, merged, seed, "users_of");
        }
    }
    for (gsize i = 0; i < G_N_ELEMENTS(image_ids); i++) {
        g_autofree char *fp = ic_fingerprint_of_image_id(image_ids[i]);
        assert_same(ic_usage_lookup_image(both->usage, image_ids[i]),
                    g_hash_table_lookup(both->by_fingerprint, fp), seed, image_ids[i]);
    }
}

/* Random witnesses' reports, into one usage and across up to four usages
 * merged as the walk threads' are: a UUID in any case, a name only, a name
 * that is another domain's UUID or reads "vm0@g", an empty host, more than 16
 * users in a set (the seen index) with names learnt after it is built. */
static void test_like_model(void)
{
    guint seeds = g_test_slow() ? 20000 : 2000;
    for (guint seed = 0; seed < seeds; seed++) {
        g_autoptr(GRand) rand = g_rand_new_with_seed(seed);
        gboolean large = seed % 3 == 0;
        guint reports = (guint)g_rand_int_range(rand, 1, seed % 5 == 0 ? 400 : 40);
        guint uuid_pool = (guint)g_rand_int_range(rand, 1, large ? 40 : 6);
        guint name_pool = (guint)g_rand_int_range(rand, 1, large ? 40 : 5);
        guint parts = (guint)g_rand_int_range(rand, 1, 5);
        Both shares[4];
        for (guint p = 0; p < parts; p++)
            both_init(&shares[p]);
        for (guint r = 0; r < reports; r++)
            report_random_user(rand, &shares[g_rand_int_range(rand, 0, (gint32)parts)], uuid_pool,
                               name_pool);
        assert_like_model(&shares[0], seed);
        Both merged;
        both_init(&merged);
        for (guint p = 0; p < parts; p++) {
            ic_usage_merge(merged.usage, shares[p].usage);
            model_merge_table(merged.by_path, shares[p].by_path);
            model_merge_table(merged.by_fingerprint, shares[p].by_fingerprint);
            both_clear(&shares[p]); /* the merged usage keeps no string of a share */
        }
        assert_like_model(&merged, seed);
        both_clear(&merged);
    }
}

/* ---- a walk large enough for several threads ---- */

#define WALK_FILES     20
#define WALK_INSTANCES 4100 /* past two walk threads' worth (2000 each) */

static char *walk_file(guint i)
{
    g_autofree char *seed = g_strdup_printf("walk-%u", i % WALK_FILES);
    return g_compute_checksum_for_string(G_CHECKSUM_SHA1, seed, -1);
}

/* Even instances are dirs named by UUID, odd ones old-layout dirs named by
 * the domain's name. */
static char *walk_uuid(guint i)
{
    return g_strdup_printf("00000000-0000-4000-%d000-%012u", i % 2 ? 9 : 8, i);
}

static char *walk_name(guint i)
{
    return i % 2 ? g_strdup_printf("instance-%08x", i) : g_strdup_printf("vm-%u", i);
}

/* The ledger's view: every third domain with its name and its UUID in upper
 * case, every seventh also on host "other" (it moved; both ledgers name it). */
static void walk_witnesses(IcUsage *usage, gint64 now, gpointer base_dir)
{
    for (guint i = 0; i < WALK_INSTANCES; i++) {
        if (i % 3 != 0 && i % 7 != 0)
            continue;
        g_autofree char *file = walk_file(i);
        g_autofree char *path = g_build_filename(base_dir, file, NULL);
        g_autofree char *uuid = walk_uuid(i);
        g_autofree char *upper = g_ascii_strup(uuid, -1);
        g_autofree char *name = walk_name(i);
        if (i % 3 == 0)
            ic_usage_add_path_user(usage, path, upper, name, "testhost", TRUE, IC_WITNESS_LEDGER);
        if (i % 7 == 0)
            ic_usage_add_path_user(usage, path, upper, name, "other", FALSE, IC_WITNESS_LEDGER);
    }
}

static gint compare_strings(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Each base file's users after a pass over 4100 instance dirs (walked by up
 * to three threads into their own usages, merged): one user per domain, named
 * where the ledger named it, by UUID where only its dir did, remote ones
 * apart; none lost, merged or split. */
static void test_walk_threads(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    for (guint f = 0; f < WALK_FILES; f++) {
        g_autofree char *file = walk_file(f);
        g_free(ic_test_write_file(tree->base_dir, file, "base", -1));
    }
    for (guint i = 0; i < WALK_INSTANCES; i++) {
        g_autofree char *dir_name = i % 2 ? walk_name(i) : walk_uuid(i);
        g_autofree char *dir = g_build_filename(tree->root, dir_name, NULL);
        g_assert_cmpint(g_mkdir(dir, 0755), ==, 0);
        g_autofree char *disk = g_build_filename(dir, "disk", NULL);
        g_autofree char *file = walk_file(i);
        g_autofree char *backing = g_build_filename(tree->base_dir, file, NULL);
        g_assert_true(ic_test_write_qcow2(disk, 3, 1 << 20, backing, "raw", &error));
        g_assert_no_error(error);
    }

    g_autoptr(IcConfig) config = ic_config_new();
    g_assert_true(ic_config_set(config, "instances_path", tree->root, "test", &error));
    g_assert_true(ic_config_set(config, "host", "testhost", "test", &error));
    g_assert_true(ic_config_finish(config, &error));
    g_assert_no_error(error);
    IcPassOptions options = {
        .mode = IC_PASS_REPORT,
        .witnesses = walk_witnesses,
        .witnesses_data = tree->base_dir,
    };
    g_autoptr(IcReport) report = NULL;
    g_assert_true(ic_pass_run(config, NULL, &options, 1700000000, &report, &error));
    g_assert_no_error(error);

    for (guint f = 0; f < WALK_FILES; f++) {
        g_autofree char *file = walk_file(f);
        g_autoptr(GPtrArray) want = g_ptr_array_new_with_free_func(g_free);
        guint local = 0, remote = 0;
        for (guint i = f; i < WALK_INSTANCES; i += WALK_FILES) {
            g_autofree char *uuid = walk_uuid(i);
            g_autofree char *name = walk_name(i);
            gboolean named = i % 2 || i % 3 == 0;
            g_ptr_array_add(want, g_strdup(named ? name : uuid));
            local++;
            if (i % 7 == 0) {
                g_ptr_array_add(want, g_strdup_printf("%s@other", name));
                remote++;
            }
        }
        const IcImageRow *row = ic_report_lookup(report, file);
        g_assert_nonnull(row);
        g_autoptr(GPtrArray) got = g_ptr_array_new();
        for (guint u = 0; u < row->users->len; u++)
            g_ptr_array_add(got, g_ptr_array_index(row->users, u));
        g_ptr_array_sort(want, compare_strings);
        g_ptr_array_sort(got, compare_strings);
        g_assert_cmpuint(row->remote_users, ==, remote);
        g_assert_cmpuint(row->local_users, ==, local);
        g_assert_cmpuint(got->len, ==, want->len);
        for (guint u = 0; u < want->len; u++)
            g_assert_cmpstr(g_ptr_array_index(got, u), ==, g_ptr_array_index(want, u));
        g_assert_true(row->witnesses & IC_WITNESS_INSTANCES_DIR);
        g_assert_true(row->witnesses & IC_WITNESS_LEDGER);
    }
}

/* ---- one file under many spellings ---- */

#define SPELLING_FP "cccccccccccccccccccccccccccccccccccccccc"

/* 40 domains report one base file under four spellings (two through
 * symlinked dirs, one with a "." component) and by fingerprint, in three
 * usages merged as the walk threads' are, UUIDs in random case, some from
 * host "other": the file's users are every domain once per host (the merged
 * set is past the seen index's threshold), however the reports fall. */
static void test_identity_many_spellings(IcTestTree *tree, gconstpointer data)
{
    g_autofree char *file = ic_test_write_file(tree->base_dir, SPELLING_FP, "image", -1);
    g_autoptr(GPtrArray) spellings = g_ptr_array_new_with_free_func(g_free);
    g_ptr_array_add(spellings, g_strdup(file));
    for (guint v = 0; v < 2; v++) {
        g_autofree char *via = g_strdup_printf("%s/via%u", tree->root, v);
        g_assert_cmpint(symlink(tree->base_dir, via), ==, 0);
        g_ptr_array_add(spellings, g_build_filename(via, SPELLING_FP, NULL));
    }
    g_ptr_array_add(spellings, g_strdup_printf("%s/./%s", tree->base_dir, SPELLING_FP));
    g_autoptr(GError) error = NULL;
    g_autoptr(IcScan) scan = NULL;
    g_assert_true(ic_scan_base_dir(tree->base_dir, &scan, &error));
    g_assert_no_error(error);
    const IcBaseFile *scanned = ic_scan_lookup(scan, SPELLING_FP);
    g_assert_nonnull(scanned);

    for (guint seed = 0; seed < 50; seed++) {
        g_autoptr(GRand) rand = g_rand_new_with_seed(seed);
        IcUsage *parts[3] = {ic_usage_new(), ic_usage_new(), ic_usage_new()};
        g_autoptr(GHashTable) want = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        guint local = 0, remote = 0;
        for (guint r = 0; r < 120; r++) {
            guint k = (guint)g_rand_int_range(rand, 0, 40);
            gboolean here = g_rand_int_range(rand, 0, 4) != 0;
            g_autofree char *uuid = g_strdup_printf("3f2a4b8e-1c1d-4e0f-9a55-%012X", k);
            if (g_rand_boolean(rand))
                for (char *p = uuid; *p; p++)
                    *p = g_ascii_tolower(*p);
            g_autofree char *name =
                g_rand_int_range(rand, 0, 3) ? g_strdup_printf("vm-%u", k) : NULL;
            IcUsage *usage = parts[g_rand_int_range(rand, 0, 3)];
            gint32 where = g_rand_int_range(rand, 0, (gint32)spellings->len + 1);
            if (where == (gint32)spellings->len)
                ic_usage_add_fingerprint_user(usage, SPELLING_FP, uuid, name,
                                              here ? "testhost" : "other", here, IC_WITNESS_LEDGER);
            else
                ic_usage_add_path_user(usage, g_ptr_array_index(spellings, where), uuid, name,
                                       here ? "testhost" : "other", here, IC_WITNESS_LEDGER);
            g_autofree char *key = g_strdup_printf("%u%s", k, here ? "" : "@other");
            if (g_hash_table_add(want, g_steal_pointer(&key))) {
                if (here)
                    local++;
                else
                    remote++;
            }
        }
        g_autoptr(IcUsage) merged = ic_usage_new();
        for (guint p = 0; p < G_N_ELEMENTS(parts); p++) {
            ic_usage_merge(merged, parts[p]);
            ic_usage_free(parts[p]);
        }
        ic_usage_index_identities(merged, scan);
        g_autoptr(IcUsers) users = ic_usage_users_of(merged, tree->base_dir, SPELLING_FP,
                                                     SPELLING_FP, scanned->dev, scanned->ino);
        g_assert_cmpuint(users->local, ==, local);
        g_assert_cmpuint(users->remote, ==, remote);
        g_assert_cmpuint(users->len, ==, g_hash_table_size(want));
        /* each domain once per host, by name where one report named it */
        for (guint u = 0; u < users->len; u++) {
            const IcUser *user = &users->users[u];
            g_assert_nonnull(user->uuid);
            guint k = (guint)g_ascii_strtoull(user->uuid + 24, NULL, 16);
            g_autofree char *key = g_strdup_printf("%u%s", k, user->host ? "@other" : "");
            g_assert_true(g_hash_table_remove(want, key));
            g_assert_true(user->host == NULL || g_str_equal(user->host, "other"));
            if (user->name != NULL) {
                g_autofree char *name = g_strdup_printf("vm-%u", k);
                g_assert_cmpstr(user->name, ==, name);
            }
        }
        g_assert_cmpuint(g_hash_table_size(want), ==, 0);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
    g_test_add_func("/imagecache/redteam-usage/like_model", test_like_model);
    g_test_add("/imagecache/redteam-usage/walk_threads", IcTestTree, NULL, ic_test_tree_setup,
               test_walk_threads, ic_test_tree_teardown);
    g_test_add("/imagecache/redteam-usage/identity_many_spellings", IcTestTree, NULL,
               ic_test_tree_setup, test_identity_many_spellings, ic_test_tree_teardown);
    return g_test_run();
}
