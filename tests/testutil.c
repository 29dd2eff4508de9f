#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glib/gstdio.h>
#include <sys/stat.h>
#include <unistd.h>

char *ic_test_mkdtemp(void)
{
    g_autoptr(GError) error = NULL;
    char *dir = g_dir_make_tmp("imagecache-test-XXXXXX", &error);
    g_assert_no_error(error);
    return dir;
}

static int rmtree_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

void ic_test_rmtree(const char *path)
{
    if (path == NULL)
        return;
    /* Make everything writable first: tests chmod things away. */
    g_autofree char *cmd = g_strdup_printf("chmod -R u+rwx '%s' 2>/dev/null", path);
    (void)!system(cmd);
    nftw(path, rmtree_one, 16, FTW_DEPTH | FTW_PHYS);
}

char *ic_test_write_file(const char *dir, const char *name, const char *contents, gssize len)
{
    g_autoptr(GError) error = NULL;
    char *path = g_build_filename(dir, name, NULL);
    g_autofree char *parent = g_path_get_dirname(path);
    g_assert_cmpint(g_mkdir_with_parents(parent, 0755), ==, 0);
    g_file_set_contents(path, contents, len, &error);
    g_assert_no_error(error);
    return path;
}

void ic_test_set_mtime(const char *path, gint64 mtime)
{
    struct timespec times[2] = {
        {.tv_sec = 0, .tv_nsec = UTIME_OMIT},
        {.tv_sec = (time_t)mtime, .tv_nsec = 0},
    };
    g_assert_cmpint(utimensat(AT_FDCWD, path, times, AT_SYMLINK_NOFOLLOW), ==, 0);
}

gboolean ic_test_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

char *ic_test_data_path(const char *area, const char *name)
{
    return g_test_build_filename(G_TEST_DIST, "data", area, name, NULL);
}

void ic_test_tree_setup(IcTestTree *tree, gconstpointer data)
{
    tree->root = ic_test_mkdtemp();
    tree->base_dir = g_build_filename(tree->root, "_base", NULL);
    g_assert_cmpint(g_mkdir(tree->base_dir, 0755), ==, 0);
}

void ic_test_tree_teardown(IcTestTree *tree, gconstpointer data)
{
    ic_test_rmtree(tree->root);
    g_clear_pointer(&tree->root, g_free);
    g_clear_pointer(&tree->base_dir, g_free);
}

char *ic_test_users_text(const IcUsers *users)
{
    GString *text = g_string_new(NULL);
    for (guint i = 0; i < users->len; i++) {
        g_autofree char *label = ic_user_label(&users->users[i]);
        g_string_append_printf(text, "%s%s", i ? "," : "", label);
    }
    return g_string_free(text, FALSE);
}

gboolean ic_test_users_have(const IcUsers *users, const char *label)
{
    for (guint i = 0; i < users->len; i++) {
        g_autofree char *text = ic_user_label(&users->users[i]);
        if (g_str_equal(text, label))
            return TRUE;
    }
    return FALSE;
}
