/* durable.c — the durable-write floor of the hook's `prepare` (issue 15): a process that
 * writes one 4 KiB file the way the ledger must be written, so that a crash leaves the old
 * or the new file: temp file, write, fsync, rename, fsync of the directory.
 *
 *   bench-durable DIR */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: bench-durable DIR\n");
        return 2;
    }
    int dirfd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        perror(argv[1]);
        return 1;
    }
    char block[4096];
    memset(block, 'x', sizeof block);
    char temp[64];
    snprintf(temp, sizeof temp, "floor.tmp.%d", (int)getpid());
    int fd = openat(dirfd, temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, block, sizeof block) != (ssize_t)sizeof block || fsync(fd) < 0 ||
        close(fd) < 0 || renameat(dirfd, temp, dirfd, "floor.ledger") < 0 || fsync(dirfd) < 0) {
        perror("durable write");
        return 1;
    }
    close(dirfd);
    return 0;
}
