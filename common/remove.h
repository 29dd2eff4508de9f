/* remove.h — carrying out verdicts on the base dir: unlinking removable files and
 * their sidecars, refreshing the mtime of files in use. All relative to the base dir's fd. */
#pragma once

#include <glib.h>
#include <sys/types.h>

G_BEGIN_DECLS

/* Opens the base dir as a directory descriptor without following a symlink at
 * its last component. */
gboolean ic_remove_open_base_dir(const char *base_dir, int *ret_dirfd, GError **error);

/* What the scan saw of the file; removal refuses if the file changed since. */
typedef struct {
    dev_t dev;
    ino_t ino;
    gint64 min_age; /* re-checked against the mtime found now */
} IcRemoveExpect;

/* Unlinks base file @name in @dirfd and then its sidecars. Refuses (IC_ERROR_UNSAFE)
 * a name outside the grammar or anything but a regular file; refuses
 * (IC_ERROR_CHANGED) a file that is not the one @expect describes (NULL: no
 * identity check) or one younger than @expect->min_age at @now: the identity
 * and age re-check of the removal protocol, made at the last moment. A missing
 * file fails with IC_ERROR_NOT_FOUND. */
gboolean ic_remove_base_file(int dirfd, const char *name, const IcRemoveExpect *expect, gint64 now,
                             GError **error);

#define IC_QUARANTINE_DIR ".quarantine"

/* Moves base file @name and its sidecars into <dirfd>/.quarantine/ (created
 * 0700 when missing; same filesystem, so a rename), under the same refusals
 * as ic_remove_base_file except the age check. */
gboolean ic_remove_quarantine(int dirfd, const char *name, const IcRemoveExpect *expect,
                              GError **error);

/* Sets the mtime of @name to @now (without following symlinks), so that age
 * means "unused for". */
gboolean ic_remove_touch(int dirfd, const char *name, gint64 now, GError **error);

G_END_DECLS
