#include "openfiles.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "error.h"
#include "fileutil.h"

struct _IcOpenFiles {
    GHashTable *holders; /* FileId* -> pid */
};

typedef struct {
    dev_t dev;
    ino_t ino;
} FileId;

static guint file_id_hash(gconstpointer key)
{
    const FileId *id = key;
    return g_int64_hash(&(gint64){(gint64)id->ino}) ^ (guint)id->dev;
}

static gboolean file_id_equal(gconstpointer a, gconstpointer b)
{
    const FileId *ia = a;
    const FileId *ib = b;
    return ia->dev == ib->dev && ia->ino == ib->ino;
}

static void add_holder(IcOpenFiles *open_files, dev_t dev, ino_t ino, pid_t pid)
{
    FileId key = {.dev = dev, .ino = ino};
    if (g_hash_table_contains(open_files->holders, &key))
        return;
    g_hash_table_insert(open_files->holders, g_memdup2(&key, sizeof(key)), GINT_TO_POINTER(pid));
}

static gboolean is_pid_name(const char *name)
{
    if (*name == '\0')
        return FALSE;
    for (; *name != '\0'; name++) {
        if (!g_ascii_isdigit(*name))
            return FALSE;
    }
    return TRUE;
}

/* Every descriptor of one process: stat() through /proc/<pid>/fd/<n> gives the
 * identity of the open file even when its name is gone. */
static void scan_fds(IcOpenFiles *open_files, int pid_fd, pid_t pid)
{
    int fd_dir = openat(pid_fd, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd_dir < 0)
        return;
    /* Errors here are the process exiting (or one we may not inspect): its
     * descriptors are gone with it, so what was read is all there is. */
    g_autoptr(DIR) dir = ic_dir_fdopen(fd_dir, "descriptors in", "fd", NULL);
    struct dirent *entry;
    while (dir != NULL && ic_dir_read(dir, "descriptors in", "fd", &entry, NULL) && entry != NULL) {
        struct stat st;
        if (!is_pid_name(entry->d_name))
            continue;
        if (fstatat(fd_dir, entry->d_name, &st, 0) == 0 && S_ISREG(st.st_mode))
            add_holder(open_files, st.st_dev, st.st_ino, pid);
    }
}

/* Mapped files: "start-end perms offset major:minor inode path". */
static void scan_maps(IcOpenFiles *open_files, int pid_fd, pid_t pid)
{
    int maps_fd = openat(pid_fd, "maps", O_RDONLY | O_CLOEXEC);
    if (maps_fd < 0)
        return;
    FILE *maps = fdopen(maps_fd, "r");
    if (maps == NULL) {
        close(maps_fd);
        return;
    }
    char line[4096];
    while (fgets(line, sizeof(line), maps) != NULL) {
        unsigned int major, minor;
        unsigned long long inode;
        if (sscanf(line, "%*s %*s %*s %x:%x %llu", &major, &minor, &inode) == 3 && inode != 0)
            add_holder(open_files, makedev(major, minor), (ino_t)inode, pid);
    }
    fclose(maps);
}

gboolean ic_open_files_scan(const char *proc_root, IcOpenFiles **ret_open_files, GError **error)
{
    int proc_fd = open(proc_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (proc_fd < 0)
        return ic_error_set_errno(error, errno, "listing processes in", proc_root);
    g_autoptr(DIR) proc = ic_dir_fdopen(proc_fd, "processes in", proc_root, error);
    if (proc == NULL)
        return FALSE;

    g_autoptr(IcOpenFiles) open_files = g_new0(IcOpenFiles, 1);
    open_files->holders = g_hash_table_new_full(file_id_hash, file_id_equal, g_free, NULL);
    for (;;) {
        /* A process list read only in part could miss a holder: fail, keep the files. */
        struct dirent *entry;
        if (!ic_dir_read(proc, "processes in", proc_root, &entry, error))
            return FALSE;
        if (entry == NULL)
            break;
        if (!is_pid_name(entry->d_name))
            continue;
        int pid_fd = openat(proc_fd, entry->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (pid_fd < 0)
            continue; /* exited meanwhile */
        pid_t pid = (pid_t)g_ascii_strtoll(entry->d_name, NULL, 10);
        scan_fds(open_files, pid_fd, pid);
        scan_maps(open_files, pid_fd, pid);
        close(pid_fd);
    }
    *ret_open_files = g_steal_pointer(&open_files);
    return TRUE;
}

pid_t ic_open_files_holder(const IcOpenFiles *open_files, dev_t dev, ino_t ino)
{
    FileId key = {.dev = dev, .ino = ino};
    return (pid_t)GPOINTER_TO_INT(g_hash_table_lookup(open_files->holders, &key));
}

void ic_open_files_free(IcOpenFiles *open_files)
{
    if (open_files == NULL)
        return;
    g_hash_table_unref(open_files->holders);
    g_free(open_files);
}
