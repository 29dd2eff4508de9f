/* fault-read.c — an LD_PRELOAD shim for tests/test-stale.c: makes read(2) and pread(2)
 * of a chosen file fail the way a network filesystem does, to prove the retry and the
 * "a failed read is an error, never absent" rules without a NFS or GlusterFS server.
 *
 *   IC_FAULT_PATH   a substring of the file's path (/proc/self/fd/N); unset: no fault
 *   IC_FAULT_ERRNO  the errno to fail with (ESTALE 116; ENOENT 2, GlusterFS open-behind)
 *   IC_FAULT_COUNT  how many reads of that file fail in this process (default 1) */
/* Our own names for pread and pread64, not the header's redirection of one to the other. */
#undef _FILE_OFFSET_BITS
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static int faults_done;

/* dlsym's object pointer as a function pointer, without a cast ISO C forbids. */
static void *next_symbol(const char *name)
{
    return dlsym(RTLD_NEXT, name);
}
#define LOAD_NEXT(var, name)                                                                       \
    do {                                                                                           \
        if (var == NULL) {                                                                         \
            void *sym = next_symbol(name);                                                         \
            memcpy(&var, &sym, sizeof(var));                                                       \
        }                                                                                          \
    } while (0)

static int should_fail(int fd)
{
    const char *want = getenv("IC_FAULT_PATH");
    if (want == NULL || *want == '\0')
        return 0;
    const char *count = getenv("IC_FAULT_COUNT");
    if (faults_done >= (count != NULL ? atoi(count) : 1))
        return 0;
    char link[64], target[4096];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    if (n < 0)
        return 0;
    target[n] = '\0';
    if (strstr(target, want) == NULL)
        return 0;
    faults_done++;
    const char *err = getenv("IC_FAULT_ERRNO");
    errno = err != NULL ? atoi(err) : ESTALE;
    return 1;
}

ssize_t read(int fd, void *buf, size_t len)
{
    static ssize_t (*real)(int, void *, size_t);
    LOAD_NEXT(real, "read");
    return should_fail(fd) ? -1 : real(fd, buf, len);
}

ssize_t pread(int fd, void *buf, size_t len, off_t offset)
{
    static ssize_t (*real)(int, void *, size_t, off_t);
    LOAD_NEXT(real, "pread");
    return should_fail(fd) ? -1 : real(fd, buf, len, offset);
}

ssize_t pread64(int fd, void *buf, size_t len, off64_t offset)
{
    static ssize_t (*real)(int, void *, size_t, off64_t);
    LOAD_NEXT(real, "pread64");
    return should_fail(fd) ? -1 : real(fd, buf, len, offset);
}
