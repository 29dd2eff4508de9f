/* floor.c — the system-call floor of a report (issue 15): single-threaded, it makes only the
 * calls any correct report must make, and nothing else. List the base dir and fstatat each
 * entry; list the instances dir; in each instance dir list it, open each `disk*` and pread
 * its first 4 KiB. Prints "<base entries> <instance dirs> <disks>" so the caller can check
 * it walked the same tree as the program it is compared with.
 *
 *   bench-floor INSTANCES_PATH BASE_DIR_NAME */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int is_dot(const char *name)
{
    return strcmp(name, ".") == 0 || strcmp(name, "..") == 0;
}

static long walk_base(int instances_fd, const char *base_name)
{
    int fd = openat(instances_fd, base_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    DIR *dir = fdopendir(fd);
    if (dir == NULL)
        return -1;
    long entries = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (is_dot(entry->d_name))
            continue;
        struct stat st;
        if (fstatat(fd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
            entries++;
    }
    closedir(dir);
    return entries;
}

static long read_disks(int instances_fd, const char *name)
{
    int fd = openat(instances_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    DIR *dir = fdopendir(fd);
    if (dir == NULL) {
        close(fd);
        return 0;
    }
    long disks = 0;
    char header[4096];
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (strncmp(entry->d_name, "disk", 4) != 0)
            continue;
        int disk = openat(fd, entry->d_name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (disk < 0)
            continue;
        if (pread(disk, header, sizeof header, 0) > 0)
            disks++;
        close(disk);
    }
    closedir(dir);
    return disks;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: bench-floor INSTANCES_PATH BASE_DIR_NAME\n");
        return 2;
    }
    int instances_fd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (instances_fd < 0) {
        perror(argv[1]);
        return 1;
    }
    long base_entries = walk_base(instances_fd, argv[2]);
    if (base_entries < 0) {
        perror(argv[2]);
        return 1;
    }
    DIR *dir = fdopendir(dup(instances_fd));
    if (dir == NULL) {
        perror(argv[1]);
        return 1;
    }
    long instance_dirs = 0, disks = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (is_dot(entry->d_name) || strcmp(entry->d_name, argv[2]) == 0)
            continue;
        instance_dirs++;
        disks += read_disks(instances_fd, entry->d_name);
    }
    closedir(dir);
    close(instances_fd);
    printf("%ld %ld %ld\n", base_entries, instance_dirs, disks);
    return 0;
}
