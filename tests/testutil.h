/* testutil.h — helpers shared by the test binaries: temporary trees, files, mtimes.
 * Tests use real files in a fresh directory; nothing here mocks the system. */
#pragma once

#include <glib.h>

#include "usage.h"

G_BEGIN_DECLS

/* A fresh temporary directory (under G_TEST_OPTION_ISOLATE_DIRS' tmp when set);
 * abort on failure. Caller frees the string and removes with ic_test_rmtree. */
char *ic_test_mkdtemp(void);

/* Removes a tree (no symlink following). */
void ic_test_rmtree(const char *path);

/* Writes @contents (@len -1: strlen) to dir/name, creating dirs; returns the path. */
char *ic_test_write_file(const char *dir, const char *name, const char *contents, gssize len);

/* Sets the mtime of @path to @mtime (epoch seconds). */
void ic_test_set_mtime(const char *path, gint64 mtime);

gboolean ic_test_exists(const char *path);

/* The source dir's tests/data/<area>/<name>. */
char *ic_test_data_path(const char *area, const char *name);

/* Fixture for g_test_add: a temporary instances dir with an empty _base. */
typedef struct {
    char *root;     /* the instances path */
    char *base_dir; /* root/_base */
} IcTestTree;

void ic_test_tree_setup(IcTestTree *tree, gconstpointer data);
void ic_test_tree_teardown(IcTestTree *tree, gconstpointer data);

/* @users' labels in their order, joined by ","; the caller frees it. */
char *ic_test_users_text(const IcUsers *users);

/* TRUE when one of @users is labelled @label. */
gboolean ic_test_users_have(const IcUsers *users, const char *label);

G_END_DECLS
