/* collectd-host.c — bench-collectd-host: loads the real imagecache.so the way collectd
 * does (module_register, the <Plugin imagecache> block, init), waits for the first
 * pass, then times the read callback in-process. plugin_dispatch_values is a stub
 * that copies the value list (the least collectd's own would cost), so the figure
 * is the plugin's share of a read. Prints "<values per read> <ms>..." per read.
 *
 * With --passes N (issue 15), it measures the plugin's memory instead: the
 * process's RSS before init, its peak during each pass (VmHWM, reset between
 * passes through /proc/self/clear_refs) and its RSS between passes, after the
 * pass's values were sent once. Prints "start <rss KiB> <anon KiB>", then per
 * pass "pass <i> <seconds> <peak KiB> <rss KiB> <anon KiB> <values> <value bytes>". */
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "collectd/core/daemon/plugin.h"

char *hostname_g = "bench-host";

static int (*config_cb)(oconfig_item_t *);
static plugin_init_cb init_cb;
static int (*read_cb)(void);
static plugin_shutdown_cb shutdown_cb;
static unsigned long dispatched;
static unsigned long dispatched_bytes; /* what the plugin holds for them, estimated */
static value_list_t sink;
static value_t sink_value;

/* Passes the plugin finished (its "pass took" log line), for --passes. */
static pthread_mutex_t passes_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t passes_cond = PTHREAD_COND_INITIALIZER;
static int passes_done;
static double last_pass_seconds;

cdtime_t cdtime(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((cdtime_t)ts.tv_sec << 30) + (((cdtime_t)ts.tv_nsec << 30) / 1000000000);
}

cdtime_t plugin_get_interval(void)
{
    return (cdtime_t)10 << 30;
}

int plugin_register_complex_config(const char *type, int (*callback)(oconfig_item_t *))
{
    config_cb = callback;
    return 0;
}

int plugin_register_init(const char *name, plugin_init_cb callback)
{
    init_cb = callback;
    return 0;
}

int plugin_register_read(const char *name, int (*callback)(void))
{
    read_cb = callback;
    return 0;
}

int plugin_register_shutdown(const char *name, plugin_shutdown_cb callback)
{
    shutdown_cb = callback;
    return 0;
}

int plugin_thread_create(pthread_t *thread, void *(*start_routine)(void *), void *arg,
                         char const *name)
{
    return pthread_create(thread, NULL, start_routine, arg);
}

int plugin_dispatch_values(value_list_t const *vl)
{
    memcpy(&sink, vl, sizeof(sink));
    if (vl->values_len > 0)
        memcpy(&sink_value, vl->values, sizeof(sink_value));
    dispatched++;
    /* An IcMetric (a pointer, two static strings, a double: 32 bytes) and its
     * plugin_instance, a malloc chunk of the name's length + 8 rounded to 16. */
    dispatched_bytes += 32 + ((strlen(vl->plugin_instance) + 1 + 8 + 15) & ~(size_t)15);
    return 0;
}

int plugin_dispatch_notification(const notification_t *notif)
{
    return 0;
}

void plugin_log(int level, const char *format, ...)
{
    char message[1024];
    va_list ap;
    va_start(ap, format);
    vsnprintf(message, sizeof(message), format, ap);
    va_end(ap);
    double took;
    if (sscanf(message, "imagecache plugin: pass took %lf s", &took) == 1) {
        pthread_mutex_lock(&passes_lock);
        passes_done++;
        last_pass_seconds = took;
        pthread_cond_broadcast(&passes_cond);
        pthread_mutex_unlock(&passes_lock);
    }
    if (level > LOG_WARNING && getenv("BENCH_PLUGIN_LOG") == NULL)
        return;
    fprintf(stderr, "%s\n", message);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* "VmRSS", "RssAnon" or "VmHWM" of this process, in KiB. */
static long status_kib(const char *field)
{
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    long kib = -1;
    size_t len = strlen(field);
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, field, len) == 0 && line[len] == ':') {
            kib = atol(line + len + 1);
            break;
        }
    }
    if (f != NULL)
        fclose(f);
    return kib;
}

/* Resets VmHWM to the current RSS (Linux 4.0+), so the next reading is one pass's peak. */
static void reset_peak(void)
{
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "5", 1) != 1) {
        fprintf(stderr, "cannot reset VmHWM through /proc/self/clear_refs\n");
        exit(1);
    }
    close(fd);
}

/* Waits until the plugin has finished @n passes; its last pass's duration. */
static double wait_passes(int n)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 600;
    pthread_mutex_lock(&passes_lock);
    while (passes_done < n) {
        if (pthread_cond_timedwait(&passes_cond, &passes_lock, &deadline) != 0) {
            fprintf(stderr, "pass %d not finished after 600 s\n", n);
            exit(1);
        }
    }
    double took = last_pass_seconds;
    pthread_mutex_unlock(&passes_lock);
    return took;
}

/* --passes: the memory the plugin holds during and between passes. Its option
 * block's PassInterval must leave time after each pass for the reading. */
static int measure_passes(int passes)
{
    printf("start %ld %ld\n", status_kib("VmRSS"), status_kib("RssAnon"));
    fflush(stdout);
    reset_peak();
    if (init_cb != NULL && init_cb() != 0) {
        fprintf(stderr, "the plugin did not start\n");
        return 1;
    }
    for (int i = 1; i <= passes; i++) {
        double took = wait_passes(i);
        long peak = status_kib("VmHWM");
        /* The worker logs "pass took" just before it frees the pass's report. */
        struct timespec settle = {0, 500 * 1000 * 1000};
        nanosleep(&settle, NULL);
        /* One cycle: every value of the new snapshot sent once. */
        unsigned long before = dispatched;
        dispatched_bytes = 0;
        read_cb();
        unsigned long values = dispatched - before;
        unsigned long value_bytes = dispatched_bytes;
        printf("pass %d %.1f %ld %ld %ld %lu %lu\n", i, took, peak, status_kib("VmRSS"),
               status_kib("RssAnon"), values, value_bytes);
        fflush(stdout);
        reset_peak();
    }
    if (shutdown_cb != NULL)
        shutdown_cb();
    return 0;
}

int main(int argc, char **argv)
{
    /* PLUGIN CONFIG READS|--passes N [OPTION VALUE]... */
    int passes = 0, first_option = 4;
    if (argc >= 5 && strcmp(argv[3], "--passes") == 0) {
        passes = atoi(argv[4]);
        first_option = 5;
    }
    if (argc < 4 || (argc - first_option) % 2 != 0) {
        fprintf(stderr,
                "usage: bench-collectd-host PLUGIN.so CONFIG READS [OPTION VALUE]...\n"
                "       bench-collectd-host PLUGIN.so CONFIG --passes N [OPTION VALUE]...\n");
        return 2;
    }
    void *module = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (module == NULL) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    void (*module_register)(void) = NULL;
    *(void **)&module_register = dlsym(module, "module_register");
    if (module_register == NULL)
        return 1;
    module_register();

    /* Config "CONFIG", then the OPTION VALUE pairs, as strings. */
    oconfig_value_t name = {.value.string = "imagecache", .type = OCONFIG_TYPE_STRING};
    int n_options = 1 + (argc - first_option) / 2;
    oconfig_value_t values[n_options];
    oconfig_item_t options[n_options];
    oconfig_item_t block = {.key = "Plugin",
                            .values = &name,
                            .values_num = 1,
                            .children = options,
                            .children_num = n_options};
    for (int i = 0; i < n_options; i++) {
        int arg = first_option + 2 * (i - 1);
        values[i] = (oconfig_value_t){.value.string = i == 0 ? argv[2] : argv[arg + 1],
                                      .type = OCONFIG_TYPE_STRING};
        options[i] = (oconfig_item_t){.key = i == 0 ? "Config" : argv[arg],
                                      .values = &values[i],
                                      .values_num = 1,
                                      .parent = &block};
    }
    if (config_cb == NULL || read_cb == NULL || config_cb(&block) != 0) {
        fprintf(stderr, "the plugin did not configure\n");
        return 1;
    }
    if (passes > 0)
        return measure_passes(passes);
    if (init_cb != NULL && init_cb() != 0) {
        fprintf(stderr, "the plugin did not configure\n");
        return 1;
    }

    /* Until the worker's first pass is in (its log line): before it, a read
     * sends only the liveness values. */
    wait_passes(1);
    struct timespec settle = {0, 100 * 1000 * 1000};
    nanosleep(&settle, NULL);
    int reads = atoi(argv[3]);
    for (int i = 0; i < reads; i++) {
        unsigned long before = dispatched;
        double t = now_ms();
        read_cb();
        double ms = now_ms() - t;
        printf("%lu %.6f\n", dispatched - before, ms);
    }
    if (shutdown_cb != NULL)
        shutdown_cb();
    return 0;
}
