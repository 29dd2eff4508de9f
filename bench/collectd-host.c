/* collectd-host.c — bench-collectd-host: loads the real imagecache.so the way collectd
 * does (module_register, the <Plugin imagecache> block, init), waits for the first
 * pass, then times the read callback in-process. plugin_dispatch_values is a stub
 * that copies the value list (the least collectd's own would cost), so the figure
 * is the plugin's share of a read. Prints "<values per read> <ms>..." per read. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "collectd/core/daemon/plugin.h"

char *hostname_g = "bench-host";

static int (*config_cb)(oconfig_item_t *);
static plugin_init_cb init_cb;
static int (*read_cb)(void);
static plugin_shutdown_cb shutdown_cb;
static unsigned long dispatched;
static value_list_t sink;
static value_t sink_value;

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
    return 0;
}

int plugin_dispatch_notification(const notification_t *notif)
{
    return 0;
}

void plugin_log(int level, const char *format, ...)
{
    if (level > LOG_WARNING && getenv("BENCH_PLUGIN_LOG") == NULL)
        return;
    va_list ap;
    va_start(ap, format);
    vfprintf(stderr, format, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: bench-collectd-host PLUGIN.so CONFIG READS\n");
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

    oconfig_value_t name = {.value.string = "imagecache", .type = OCONFIG_TYPE_STRING};
    oconfig_value_t path = {.value.string = argv[2], .type = OCONFIG_TYPE_STRING};
    oconfig_item_t option = {.key = "Config", .values = &path, .values_num = 1};
    oconfig_item_t block = {
        .key = "Plugin", .values = &name, .values_num = 1, .children = &option, .children_num = 1};
    option.parent = &block;
    if (config_cb == NULL || read_cb == NULL || config_cb(&block) != 0 ||
        (init_cb != NULL && init_cb() != 0)) {
        fprintf(stderr, "the plugin did not configure\n");
        return 1;
    }

    /* Until the worker's first pass is in: reads dispatch nothing. */
    double t0 = now_ms();
    while (dispatched == 0) {
        read_cb();
        if (dispatched == 0) {
            if (now_ms() - t0 > 300000) {
                fprintf(stderr, "no values after 300 s\n");
                return 1;
            }
            struct timespec pause = {0, 20 * 1000 * 1000};
            nanosleep(&pause, NULL);
        }
    }
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
