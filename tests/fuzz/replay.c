/* replay.c — a main for a fuzz target without libFuzzer: feeds every file of the
 * directories (or the files) named on the command line through LLVMFuzzerTestOneInput
 * once, in name order, and prints TAP. Any compiler builds it, so the seed corpora
 * and the crash reproducers run in the unit suite (and under ASan or valgrind). */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPLAY_MAX_INPUT (4 * 1024 * 1024)

static gint compare_paths(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void collect(const char *arg, GPtrArray *files)
{
    if (!g_file_test(arg, G_FILE_TEST_IS_DIR)) {
        g_ptr_array_add(files, g_strdup(arg));
        return;
    }
    g_autoptr(GError) error = NULL;
    g_autoptr(GDir) dir = g_dir_open(arg, 0, &error);
    if (dir == NULL) {
        fprintf(stderr, "replay: %s\n", error->message);
        exit(1);
    }
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    for (const char *name; (name = g_dir_read_name(dir)) != NULL;) {
        if (name[0] != '.')
            g_ptr_array_add(names, g_build_filename(arg, name, NULL));
    }
    g_ptr_array_sort(names, compare_paths);
    for (guint i = 0; i < names->len; i++)
        g_ptr_array_add(files, g_strdup(names->pdata[i]));
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS-DIR-OR-FILE...\n", argv[0]);
        return 2;
    }
    LLVMFuzzerInitialize(&argc, &argv);

    g_autoptr(GPtrArray) files = g_ptr_array_new_with_free_func(g_free);
    for (int i = 1; i < argc; i++)
        collect(argv[i], files);

    printf("1..%u\n", files->len);
    for (guint i = 0; i < files->len; i++) {
        const char *path = files->pdata[i];
        g_autofree char *contents = NULL;
        gsize len = 0;
        g_autoptr(GError) error = NULL;
        if (!g_file_get_contents(path, &contents, &len, &error) || len > REPLAY_MAX_INPUT) {
            printf("not ok %u - %s: %s\n", i + 1, path, error ? error->message : "too large");
            return 1;
        }
        /* An exact-size copy, as libFuzzer passes it: no NUL after the data, so
         * ASan or valgrind sees a parser that reads past @len. */
        g_autofree guint8 *copy = g_malloc(MAX(len, 1));
        memcpy(copy, contents, len);
        LLVMFuzzerTestOneInput(copy, len);
        printf("ok %u - %s\n", i + 1, path);
        fflush(stdout);
    }
    return 0;
}
