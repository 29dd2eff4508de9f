/* The base-dir name grammar and the scan's treatment of odd entries. */
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include "error.h"
#include "fileutil.h"
#include "scan.h"
#include "testutil.h"

#define FP "e97222e91fc4241f49a7f520d1dcf446751129b3"

typedef struct {
    const char *name;
    IcImageKind kind;
} NameCase;

static const NameCase name_cases[] = {
    {FP, IC_KIND_ORIGINAL},
    {FP "_sm", IC_KIND_SMALL},
    {FP "_10737418240", IC_KIND_RESIZED},
    {FP "_0", IC_KIND_RESIZED},
    {FP "_", IC_KIND_IGNORED},
    {FP "_sm2", IC_KIND_IGNORED},
    {FP "_5G", IC_KIND_IGNORED},
    {FP "_-1", IC_KIND_IGNORED},
    {FP "_123456789012345678901", IC_KIND_IGNORED}, /* more digits than any size */
    {FP ".sha1", IC_KIND_IGNORED},
    {FP ".info", IC_KIND_IGNORED},
    {FP "_10.info", IC_KIND_IGNORED},
    {"E97222E91FC4241F49A7F520D1DCF446751129B3", IC_KIND_IGNORED}, /* not how Nova names */
    {"e97222e91fc4241f49a7f520d1dcf446751129b", IC_KIND_IGNORED},  /* 39 chars */
    {"g97222e91fc4241f49a7f520d1dcf446751129b3", IC_KIND_IGNORED},
    {"00000001", IC_KIND_IGNORED},
    {"ephemeral_0_20_None", IC_KIND_IGNORED},
    {"swap_512", IC_KIND_SWAP},
    {"swap_", IC_KIND_IGNORED},
    {"swap_1G", IC_KIND_IGNORED},
    {"ephemeral_20_40d1d2c", IC_KIND_EPHEMERAL},
    {"ephemeral_0_default", IC_KIND_EPHEMERAL},
    {"ephemeral_20_", IC_KIND_IGNORED},
    {"ephemeral__abc", IC_KIND_IGNORED},
    {"ephemeral_20_ABC", IC_KIND_IGNORED},
    {"", IC_KIND_IGNORED},
    {".", IC_KIND_IGNORED},
    {FP "\n", IC_KIND_IGNORED},
    {FP "_1\n", IC_KIND_IGNORED},
};

static void test_classify(gconstpointer data)
{
    const NameCase *tc = data;
    g_autofree char *fingerprint = NULL;
    IcImageKind kind = ic_scan_classify_name(tc->name, &fingerprint);
    g_assert_cmpint(kind, ==, tc->kind);
    if (kind == IC_KIND_IGNORED || kind == IC_KIND_SWAP || kind == IC_KIND_EPHEMERAL)
        g_assert_null(fingerprint);
    else
        g_assert_cmpstr(fingerprint, ==, FP);
}

static void test_sidecar_temp_names(void)
{
    g_assert_true(ic_scan_is_sidecar_temp(FP ".info.tmp.0a1b2c3d"));
    g_assert_true(ic_scan_is_sidecar_temp(FP "_10.sha1.tmp.ffffffff"));
    g_assert_false(ic_scan_is_sidecar_temp(FP ".info.tmp.0a1b2c3"));  /* 7 digits */
    g_assert_false(ic_scan_is_sidecar_temp(FP ".info.tmp.0a1b2c3g")); /* not hex */
    g_assert_false(ic_scan_is_sidecar_temp(FP ".txt.tmp.0a1b2c3d"));  /* not a sidecar */
    g_assert_false(ic_scan_is_sidecar_temp("foo.info.tmp.0a1b2c3d")); /* not a base file */
    g_assert_false(ic_scan_is_sidecar_temp(FP ".tmp.0a1b2c3d"));
}

static void test_fingerprint_of_image_id(void)
{
    g_autofree char *fp = ic_fingerprint_of_image_id("42");
    g_assert_cmpstr(fp, ==, "92cfceb39d57d914ed8b14d0e37643de0797ae56");
    g_assert_true(ic_fingerprint_is_valid(fp));
    g_assert_false(ic_fingerprint_is_valid("92cfceb39d57d914ed8b14d0e37643de0797ae5"));
}

/* Entries with base file names that are not regular files are reported as
 * skipped and never become candidates; other names are only counted. */
static void test_odd_entries(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcScan) scan = NULL;
    g_autofree char *outside = ic_test_write_file(tree->root, "outside", "secret", -1);
    g_autofree char *symlink_out = g_build_filename(tree->base_dir, FP "_1", NULL);
    g_autofree char *dangling = g_build_filename(tree->base_dir, FP "_2", NULL);
    g_autofree char *dir = g_build_filename(tree->base_dir, FP "_3", NULL);
    g_autofree char *fifo = g_build_filename(tree->base_dir, FP "_4", NULL);
    g_autofree char *sock_path = g_build_filename(tree->base_dir, FP "_5", NULL);
    g_autofree char *real = ic_test_write_file(tree->base_dir, FP, "data", -1);
    g_autofree char *hardlink = g_build_filename(tree->base_dir, FP "_sm", NULL);
    g_free(ic_test_write_file(tree->base_dir, "junk name\nwith newline", "x", -1));
    g_free(ic_test_write_file(tree->base_dir, "\xff\xfe-not-utf8", "x", -1));

    g_assert_cmpint(symlink(outside, symlink_out), ==, 0);
    g_assert_cmpint(symlink("/nonexistent/target", dangling), ==, 0);
    g_assert_cmpint(mkdir(dir, 0755), ==, 0);
    g_assert_cmpint(mkfifo(fifo, 0644), ==, 0);
    g_assert_cmpint(link(real, hardlink), ==, 0);
    int sock = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    g_strlcpy(addr.sun_path, sock_path, sizeof(addr.sun_path));
    g_assert_cmpint(bind(sock, (struct sockaddr *)&addr, sizeof(addr)), ==, 0);
    close(sock);

    g_assert_true(ic_scan_base_dir(tree->base_dir, &scan, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(scan->files->len, ==, 2); /* FP and its hard link FP_sm */
    g_assert_nonnull(ic_scan_lookup(scan, FP));
    g_assert_nonnull(ic_scan_lookup(scan, FP "_sm"));
    g_assert_cmpuint(scan->skipped->len, ==, 5);
    const char *const expect_why[] = {"a symbolic link", "a symbolic link", "a directory", "a FIFO",
                                      "a socket"};
    for (guint i = 0; i < scan->skipped->len; i++) {
        const IcSkippedEntry *entry = g_ptr_array_index(scan->skipped, i);
        g_assert_cmpstr(entry->why, ==, expect_why[i]);
    }
    g_assert_cmpuint(scan->ignored, ==, 2);
}

static void test_base_dir_symlink_refused(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcScan) scan = NULL;
    g_autofree char *link = g_build_filename(tree->root, "linked_base", NULL);
    g_assert_cmpint(symlink(tree->base_dir, link), ==, 0);
    g_assert_false(ic_scan_base_dir(link, &scan, &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_UNSAFE);
    g_assert_null(scan);
}

static void test_base_dir_missing(void)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcScan) scan = NULL;
    g_assert_true(ic_scan_base_dir("/nonexistent/_base", &scan, &error));
    g_assert_no_error(error);
    g_assert_false(scan->exists);
    g_assert_cmpuint(scan->files->len, ==, 0);
}

static void test_base_dir_unreadable(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcScan) scan = NULL;
    g_autofree char *file = ic_test_write_file(tree->root, "plainfile", "x", -1);
    g_assert_false(ic_scan_base_dir(file, &scan, &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_UNSAFE);
    g_assert_nonnull(strstr(error->message, "plainfile"));
}

/* The directory helper: every entry but "." and "..", then the end; a read
 * error is an error, not the end of the listing. */
static void test_dir_read(IcTestTree *tree, gconstpointer data)
{
    (void)data;
    g_free(ic_test_write_file(tree->base_dir, "a", "a", -1));
    g_free(ic_test_write_file(tree->base_dir, "b", "b", -1));
    g_autoptr(GError) error = NULL;
    g_autoptr(DIR) dir = ic_dir_fdopen(open(tree->base_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC),
                                       "base dir", tree->base_dir, &error);
    g_assert_no_error(error);
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    struct dirent *entry;
    while (ic_dir_read(dir, "base dir", tree->base_dir, &entry, &error) && entry != NULL)
        g_ptr_array_add(names, g_strdup(entry->d_name));
    g_assert_no_error(error);
    g_assert_cmpuint(names->len, ==, 2);
    g_assert_true(g_ptr_array_find_with_equal_func(names, "a", g_str_equal, NULL));
    g_assert_true(g_ptr_array_find_with_equal_func(names, "b", g_str_equal, NULL));

    g_autofree char *file = ic_test_write_file(tree->root, "plain", "x", -1);
    int file_fd = open(file, O_RDONLY | O_CLOEXEC);
    g_assert_null(ic_dir_fdopen(file_fd, "base dir", file, &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_IO);
    g_clear_error(&error);

    /* A stream whose descriptor went bad: readdir fails with EBADF. */
    g_autoptr(DIR) broken = opendir(tree->base_dir);
    g_assert_nonnull(broken);
    g_assert_cmpint(close(dirfd(broken)), ==, 0);
    g_assert_false(ic_dir_read(broken, "base dir", tree->base_dir, &entry, &error));
    g_assert_error(error, IC_ERROR, IC_ERROR_IO);
    g_assert_nonnull(strstr(error->message, "listing base dir '"));
    /* closedir then fails with EBADF: nothing else was opened since. */
}

/* The getdents64 listing (IcDirList) gives what readdir gives: the same
 * names and types, "." and ".." left out, across many reads of its buffer;
 * a descriptor that is no directory fails as a listing error, and a
 * directory removed while open lists as empty. */
static void test_dir_list(IcTestTree *tree, gconstpointer data)
{
    (void)data;
    /* 600 names of 200 bytes: about 17 buffers of IC_DIR_LIST_BUFFER. */
    g_autofree char *pad = g_strnfill(190, 'n');
    for (guint i = 0; i < 600; i++) {
        g_autofree char *name = g_strdup_printf("%s%04u", pad, i);
        g_free(ic_test_write_file(tree->base_dir, name, "x", -1));
    }
    g_autofree char *sub = g_build_filename(tree->base_dir, "subdir", NULL);
    g_assert_cmpint(mkdir(sub, 0700), ==, 0);
    g_autofree char *link = g_build_filename(tree->base_dir, "link", NULL);
    g_assert_cmpint(symlink("subdir", link), ==, 0);

    g_autoptr(GHashTable) want = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_autoptr(DIR) dir = opendir(tree->base_dir);
    g_assert_nonnull(dir);
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (!g_str_equal(entry->d_name, ".") && !g_str_equal(entry->d_name, ".."))
            g_hash_table_insert(want, g_strdup(entry->d_name), GINT_TO_POINTER(entry->d_type + 1));
    }
    g_assert_cmpuint(g_hash_table_size(want), ==, 602);

    g_autoptr(GError) error = NULL;
    guint listed = 0;
    {
        g_auto(IcDirList) list;
        ic_dir_list_init(&list, open(tree->base_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        while (ic_dir_list_read(&list, "base dir", tree->base_dir, &entry, &error) &&
               entry != NULL) {
            gpointer type = g_hash_table_lookup(want, entry->d_name);
            g_assert_nonnull(type);
            g_assert_cmpint(GPOINTER_TO_INT(type), ==, entry->d_type + 1);
            g_assert_true(g_hash_table_remove(want, entry->d_name));
            listed++;
        }
        g_assert_no_error(error);
        /* The end stays the end. */
        g_assert_true(ic_dir_list_read(&list, "base dir", tree->base_dir, &entry, &error));
        g_assert_null(entry);
    }
    g_assert_cmpuint(listed, ==, 602);
    g_assert_cmpuint(g_hash_table_size(want), ==, 0);

    /* Not a directory: ENOTDIR, an error, never an empty listing. */
    g_autofree char *file = ic_test_write_file(tree->root, "plain", "x", -1);
    {
        g_auto(IcDirList) list;
        ic_dir_list_init(&list, open(file, O_RDONLY | O_CLOEXEC));
        g_assert_false(ic_dir_list_read(&list, "instance dir", file, &entry, &error));
        g_assert_cmpint(errno, ==, ENOTDIR);
        g_assert_error(error, IC_ERROR, IC_ERROR_IO);
        g_assert_nonnull(strstr(error->message, "listing instance dir '"));
        g_clear_error(&error);
    }

    /* Removed while open: no entries, no error (readdir's ENOENT rule). */
    g_autofree char *gone = g_build_filename(tree->root, "gone", NULL);
    g_assert_cmpint(mkdir(gone, 0700), ==, 0);
    g_auto(IcDirList) list;
    ic_dir_list_init(&list, open(gone, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    g_assert_cmpint(rmdir(gone), ==, 0);
    g_assert_true(ic_dir_list_read(&list, "instance dir", gone, &entry, &error));
    g_assert_no_error(error);
    g_assert_null(entry);
}

/* Identities: every scanned file is found by its (device, inode), whatever
 * its name; a file outside the grammar (the walk asks about each overlay) and
 * a symlink's target are not scanned files. */
static void test_lookup_identity(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(IcScan) scan = NULL;
    g_autofree char *original = ic_test_write_file(tree->base_dir, FP, "data", -1);
    g_autofree char *resized = ic_test_write_file(tree->base_dir, FP "_10", "bigger", -1);
    g_autofree char *outside = ic_test_write_file(tree->base_dir, "disk", "overlay", -1);
    g_autofree char *target = ic_test_write_file(tree->root, "target", "x", -1);
    g_autofree char *link_path = g_build_filename(tree->base_dir, FP "_sm", NULL);
    g_assert_cmpint(symlink(target, link_path), ==, 0);

    g_assert_true(ic_scan_base_dir(tree->base_dir, &scan, &error));
    g_assert_no_error(error);
    const char *scanned[] = {original, resized};
    for (gsize i = 0; i < G_N_ELEMENTS(scanned); i++) {
        struct stat st;
        g_assert_cmpint(stat(scanned[i], &st), ==, 0);
        const IcBaseFile *file = ic_scan_lookup_identity(scan, st.st_dev, st.st_ino);
        g_assert_nonnull(file);
        g_assert_true(file == ic_scan_lookup(scan, strrchr(scanned[i], '/') + 1));
        g_assert_null(ic_scan_lookup_identity(scan, st.st_dev + 1, st.st_ino));
    }
    const char *not_scanned[] = {outside, target};
    for (gsize i = 0; i < G_N_ELEMENTS(not_scanned); i++) {
        struct stat st;
        g_assert_cmpint(stat(not_scanned[i], &st), ==, 0);
        g_assert_null(ic_scan_lookup_identity(scan, st.st_dev, st.st_ino));
    }

    /* No base dir: no file. */
    g_autoptr(IcScan) none = NULL;
    g_autofree char *missing = g_build_filename(tree->root, "no-such-dir", NULL);
    g_assert_true(ic_scan_base_dir(missing, &none, &error));
    g_assert_no_error(error);
    struct stat st;
    g_assert_cmpint(stat(original, &st), ==, 0);
    g_assert_null(ic_scan_lookup_identity(none, st.st_dev, st.st_ino));
}

/* The inode runs of a base dir of 100,000 files written on ext4 (the bench's
 * 10x tree: flex_bg groups of 8,192 inodes, spaced by powers of two). */
static const struct {
    ino_t first;
    guint len;
} ext4_runs[] = {
    {1082450, 7087},  {1090604, 2803},  {1728513, 8192},  {10117121, 8192}, {10133507, 8190},
    {10149889, 8192}, {10182657, 8192}, {10248193, 8192}, {10379265, 8192}, {10641409, 8192},
    {11165697, 8192}, {12214273, 8192}, {14311425, 8192},
};

/* GHashTable (GLib 2.74, ghash.c g_hash_table_hash_to_index) puts a key in
 * bucket (hash * 11) % mod, mod a prime just below the table's size: 131071
 * for 100,000 keys. Keys that share a bucket are probed past each other, on
 * every insert and every lookup of a file that is not there. */
#define GLIB_MOD_2_17 131071u

static void test_file_id_hash_spreads(void)
{
    const dev_t devs[] = {makedev(254, 0), makedev(8, 1), makedev(253, 3)};
    for (gsize d = 0; d < G_N_ELEMENTS(devs); d++) {
        g_autofree guint8 *taken = g_new0(guint8, GLIB_MOD_2_17);
        guint keys = 0, buckets = 0;
        for (gsize r = 0; r < G_N_ELEMENTS(ext4_runs); r++) {
            for (guint i = 0; i < ext4_runs[r].len; i++, keys++) {
                IcFileId id = {.dev = devs[d], .ino = ext4_runs[r].first + i};
                guint bucket = (ic_file_id_hash(&id) * 11u) % GLIB_MOD_2_17;
                buckets += !taken[bucket];
                taken[bucket] = 1;
            }
        }
        g_assert_cmpuint(keys, ==, 100000);
        /* Uniform hashing fills 1 - e^(-100000/131071) = 53 % of the
         * buckets, 70,000 distinct; the plain inode number filled 39,940. */
        g_test_message("dev %#lx: %u keys in %u buckets", (unsigned long)devs[d], keys, buckets);
        g_assert_cmpuint(buckets, >=, 65000);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
    g_test_add("/imagecache/scan/dir_read", IcTestTree, NULL, ic_test_tree_setup, test_dir_read,
               ic_test_tree_teardown);
    for (gsize i = 0; i < G_N_ELEMENTS(name_cases); i++) {
        g_autofree char *path = g_strdup_printf("/imagecache/scan/classify/%zu", i);
        g_test_add_data_func(path, &name_cases[i], test_classify);
    }
    g_test_add_func("/imagecache/scan/fingerprint_of_image_id", test_fingerprint_of_image_id);
    g_test_add_func("/imagecache/scan/sidecar_temp_names", test_sidecar_temp_names);
    g_test_add_func("/imagecache/scan/file_id_hash_spreads", test_file_id_hash_spreads);
    g_test_add("/imagecache/scan/dir_list", IcTestTree, NULL, ic_test_tree_setup, test_dir_list,
               ic_test_tree_teardown);
    g_test_add("/imagecache/scan/lookup_identity", IcTestTree, NULL, ic_test_tree_setup,
               test_lookup_identity, ic_test_tree_teardown);
    g_test_add("/imagecache/scan/odd_entries", IcTestTree, NULL, ic_test_tree_setup,
               test_odd_entries, ic_test_tree_teardown);
    g_test_add("/imagecache/scan/base_dir_symlink_refused", IcTestTree, NULL, ic_test_tree_setup,
               test_base_dir_symlink_refused, ic_test_tree_teardown);
    g_test_add_func("/imagecache/scan/base_dir_missing", test_base_dir_missing);
    g_test_add("/imagecache/scan/base_dir_unreadable", IcTestTree, NULL, ic_test_tree_setup,
               test_base_dir_unreadable, ic_test_tree_teardown);
    return g_test_run();
}
