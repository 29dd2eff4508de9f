/* durable.c — the durable-write floor of the hook's `prepare` (issue 15): a process that
 * writes one file the way the ledger must be written, so that a crash leaves the old or
 * the new file: temp file, write, fsync, rename, fsync of the directory.
 *
 *   bench-durable DIR                        4 KiB, nothing read (the floor)
 *   bench-durable DIR SIZE [FILE]...         also reads FILE's first 4 KiB each (the
 *                                            headers a chain walk must read) and writes
 *                                            SIZE bytes (the ledger's size): the floor of
 *                                            what prepare must do, without any rule */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int read_header(const char *path)
{
    char header[4096];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || pread(fd, header, sizeof header, 0) < 0) {
        perror(path);
        return -1;
    }
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench-durable DIR [SIZE [FILE]...]\n");
        return 2;
    }
    size_t size = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 4096;
    for (int i = 3; i < argc; i++)
        if (read_header(argv[i]) < 0)
            return 1;
    int dirfd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        perror(argv[1]);
        return 1;
    }
    char *block = malloc(size);
    if (block == NULL)
        return 1;
    memset(block, 'x', size);
    char temp[64];
    snprintf(temp, sizeof temp, "floor.tmp.%d", (int)getpid());
    int fd = openat(dirfd, temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, block, size) != (ssize_t)size || fsync(fd) < 0 || close(fd) < 0 ||
        renameat(dirfd, temp, dirfd, "floor.ledger") < 0 || fsync(dirfd) < 0) {
        perror("durable write");
        return 1;
    }
    free(block);
    close(dirfd);
    return 0;
}
