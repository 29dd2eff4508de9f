/* fault-read.c — an LD_PRELOAD shim for tests/test-stale.c: makes read(2) and pread(2)
 * of a chosen file fail the way a network filesystem does, to prove the retry and the
 * "a failed read is an error, never absent" rules without a NFS or GlusterFS server.
 *
 *   IC_FAULT_PATH   a substring of the file's path (/proc/self/fd/N); unset: no fault
 *   IC_FAULT_ERRNO  the errno to fail with (ESTALE 116; ENOENT 2, GlusterFS open-behind)
 *   IC_FAULT_COUNT  how many reads of that file fail in this process (default 1)
 *
 * And a rendezvous, for tests/test-pass.c (issue 15: the pass hashes files in
 * parallel): the first read of each of IC_RENDEZVOUS_FILES distinct files whose
 * path holds IC_RENDEZVOUS_PATH (sidecars, whose names hold a '.', excepted)
 * waits until that many files are being read at once; when they are not within
 * 10 s (the files are read one after another) it fails with EIO.
 *
 *   IC_RENDEZVOUS_PATH   a substring of the files' paths; unset: no rendezvous
 *   IC_RENDEZVOUS_FILES  how many files must be read at once (default 2) */
/* Our own names for pread and pread64, not the header's redirection of one to the other. */
#undef _FILE_OFFSET_BITS
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <time.h>
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

#define PATH_MAX_LEN 4096

/* The path @fd was opened with, into @target (PATH_MAX_LEN bytes): its length, or -1. */
static ssize_t fd_path(int fd, char *target)
{
    char link[64];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, PATH_MAX_LEN - 1);
    if (n >= 0)
        target[n] = '\0';
    return n;
}

static int should_fail(int fd)
{
    const char *want = getenv("IC_FAULT_PATH");
    if (want == NULL || *want == '\0')
        return 0;
    const char *count = getenv("IC_FAULT_COUNT");
    if (faults_done >= (count != NULL ? atoi(count) : 1))
        return 0;
    char target[PATH_MAX_LEN];
    if (fd_path(fd, target) < 0 || strstr(target, want) == NULL)
        return 0;
    faults_done++;
    const char *err = getenv("IC_FAULT_ERRNO");
    errno = err != NULL ? atoi(err) : ESTALE;
    return 1;
}

#define RENDEZVOUS_MAX 16
static pthread_mutex_t rendezvous_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rendezvous_cond = PTHREAD_COND_INITIALIZER;
static char rendezvous_seen[RENDEZVOUS_MAX][PATH_MAX_LEN];
static int rendezvous_count;

/* 0 to read on, -1 (errno EIO) when the rendezvous failed. */
static int rendezvous(int fd)
{
    const char *want = getenv("IC_RENDEZVOUS_PATH");
    if (want == NULL || *want == '\0')
        return 0;
    const char *files = getenv("IC_RENDEZVOUS_FILES");
    int needed = files != NULL ? atoi(files) : 2;
    char target[PATH_MAX_LEN];
    ssize_t n = fd_path(fd, target);
    if (n < 0 || strstr(target, want) == NULL || strchr(strrchr(target, '/'), '.') != NULL)
        return 0; /* not a base file (absolute paths hold a '/'), or a sidecar */

    pthread_mutex_lock(&rendezvous_lock);
    int known = 0;
    for (int i = 0; i < rendezvous_count; i++)
        known |= strcmp(rendezvous_seen[i], target) == 0;
    if (!known && rendezvous_count < RENDEZVOUS_MAX)
        memcpy(rendezvous_seen[rendezvous_count++], target, (size_t)n + 1);
    pthread_cond_broadcast(&rendezvous_cond);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    int status = 0;
    while (rendezvous_count < needed && status == 0)
        status = pthread_cond_timedwait(&rendezvous_cond, &rendezvous_lock, &deadline);
    int met = rendezvous_count >= needed;
    pthread_mutex_unlock(&rendezvous_lock);
    if (met)
        return 0;
    errno = EIO;
    return -1;
}

ssize_t read(int fd, void *buf, size_t len)
{
    static ssize_t (*real)(int, void *, size_t);
    LOAD_NEXT(real, "read");
    return should_fail(fd) || rendezvous(fd) < 0 ? -1 : real(fd, buf, len);
}

ssize_t pread(int fd, void *buf, size_t len, off_t offset)
{
    static ssize_t (*real)(int, void *, size_t, off_t);
    LOAD_NEXT(real, "pread");
    return should_fail(fd) || rendezvous(fd) < 0 ? -1 : real(fd, buf, len, offset);
}

ssize_t pread64(int fd, void *buf, size_t len, off64_t offset)
{
    static ssize_t (*real)(int, void *, size_t, off64_t);
    LOAD_NEXT(real, "pread64");
    return should_fail(fd) || rendezvous(fd) < 0 ? -1 : real(fd, buf, len, offset);
}
