/* openfiles.h — which files some process on this host holds open or mapped.
 * The remover's last line of defence: a base file held open is never unlinked. */
#pragma once

#include <glib.h>
#include <sys/types.h>

G_BEGIN_DECLS

typedef struct _IcOpenFiles IcOpenFiles;

/* Scans /proc/<pid>/fd/ and /proc/<pid>/maps of every process once. Processes
 * that exit or deny access meanwhile are passed over (as root none deny); a
 * /proc that cannot be listed fails with IC_ERROR_IO. @proc_root is "/proc"
 * except in tests. */
gboolean ic_open_files_scan(const char *proc_root, IcOpenFiles **ret_open_files, GError **error);

/* The pid of one process holding (@dev, @ino) open or mapped, or 0. */
pid_t ic_open_files_holder(const IcOpenFiles *open_files, dev_t dev, ino_t ino);

void ic_open_files_free(IcOpenFiles *open_files);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IcOpenFiles, ic_open_files_free)

G_END_DECLS
