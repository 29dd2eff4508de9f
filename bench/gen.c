/* gen.c — synthetic image trees for the benchmarks: base files, instance disks
 * with real qcow2 headers (tests/imgwriter.c's, written sparse) and ledgers. */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "imgwriter.h"
#include "ledger-store.h"
#include "scan.h"

#define BLOCK 4096

/* One qcow2 image as ic_test_write_qcow2 lays it out, with a placeholder
 * backing name of a given length that each copy overwrites. */
typedef struct {
    gsize name_len;
    char *format;
    guint8 *data;
    gsize len;
    gssize name_offset; /* -1: no backing name */
    GArray *blocks;     /* guint: indexes of the non-zero BLOCK-sized blocks */
} Template;

static GPtrArray *templates;

static void template_free(gpointer p)
{
    Template *t = p;
    g_free(t->format);
    g_free(t->data);
    g_array_unref(t->blocks);
    g_free(t);
}

static const Template *get_template(gsize name_len, const char *format)
{
    if (templates == NULL)
        templates = g_ptr_array_new_with_free_func(template_free);
    for (guint i = 0; i < templates->len; i++) {
        Template *t = g_ptr_array_index(templates, i);
        if (t->name_len == name_len && g_strcmp0(t->format, format) == 0)
            return t;
    }
    Template *t = g_new0(Template, 1);
    t->name_len = name_len;
    t->format = g_strdup(format);
    g_autofree char *placeholder = name_len ? g_strnfill(name_len, 'X') : NULL;
    g_autofree char *path = g_build_filename(bench_opts.workdir, "template.qcow2", NULL);
    g_autoptr(GError) error = NULL;
    if (!ic_test_write_qcow2(path, 3, 1ULL << 30, placeholder, format, &error))
        bench_die("%s", error->message);
    if (!g_file_get_contents(path, (char **)&t->data, &t->len, &error))
        bench_die("%s", error->message);
    unlink(path);
    t->name_offset = -1;
    if (placeholder != NULL) {
        guint8 *hit = memmem(t->data, t->len, placeholder, name_len);
        if (hit == NULL)
            bench_die("qcow2 template: backing name not found");
        t->name_offset = hit - t->data;
    }
    t->blocks = g_array_new(FALSE, FALSE, sizeof(guint));
    for (gsize off = 0; off < t->len; off += BLOCK) {
        gsize n = MIN(BLOCK, t->len - off);
        for (gsize i = 0; i < n; i++) {
            if (t->data[off + i] != 0) {
                guint b = (guint)(off / BLOCK);
                g_array_append_val(t->blocks, b);
                break;
            }
        }
    }
    g_ptr_array_add(templates, t);
    return t;
}

void gen_qcow2_sparse(const char *path, const char *backing_name, const char *backing_format)
{
    gsize name_len = backing_name ? strlen(backing_name) : 0;
    const Template *t = get_template(name_len, backing_format);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        bench_die("creating %s: %s", path, g_strerror(errno));
    guint8 block[BLOCK];
    for (guint i = 0; i < t->blocks->len; i++) {
        gsize off = (gsize)g_array_index(t->blocks, guint, i) * BLOCK;
        gsize n = MIN(BLOCK, t->len - off);
        memcpy(block, t->data + off, n);
        if (t->name_offset >= 0 && (gsize)t->name_offset >= off && (gsize)t->name_offset < off + n)
            memcpy(block + (t->name_offset - off), backing_name, name_len);
        if (pwrite(fd, block, n, (off_t)off) != (ssize_t)n)
            bench_die("writing %s: %s", path, g_strerror(errno));
    }
    if (ftruncate(fd, (off_t)t->len) < 0)
        bench_die("truncating %s: %s", path, g_strerror(errno));
    close(fd);
}

char *gen_image_id(guint i)
{
    return g_strdup_printf("bench-image-%06u", i);
}

/* Base file @i: every 10th a resized copy "<fp>_10737418240", the rest originals. */
static char *base_name(guint i)
{
    g_autofree char *id = gen_image_id(i);
    g_autofree char *fp = ic_fingerprint_of_image_id(id);
    return i % 10 == 9 ? g_strconcat(fp, "_10737418240", NULL) : g_steal_pointer(&fp);
}

char *gen_config(const char *dir, const char *instances, const char *ledger_dir, const char *host)
{
    g_autofree char *text = g_strdup_printf("[imagecache]\ninstances_path=%s\nledger_dir=%s\n"
                                            "host=%s\nchecksum_base_images=false\n"
                                            "remove_unused_base_images=true\n",
                                            instances, ledger_dir, host);
    char *path = g_build_filename(dir, "imagecache.conf", NULL);
    g_autoptr(GError) error = NULL;
    if (!g_file_set_contents(path, text, -1, &error))
        bench_die("%s", error->message);
    return path;
}

BenchTree *gen_tree(const char *root, guint base_files, guint disks, guint hosts,
                    guint domains_per_host, gboolean reuse)
{
    BenchTree *tree = g_new0(BenchTree, 1);
    tree->instances = g_build_filename(root, "instances", NULL);
    tree->base_dir = g_build_filename(tree->instances, "_base", NULL);
    tree->ledger_dir = g_build_filename(tree->instances, "_ledger", NULL);
    tree->base_files = base_files;
    tree->disks = disks;
    tree->hosts = hosts;
    tree->domains_per_host = domains_per_host;
    if (g_mkdir_with_parents(tree->base_dir, 0755) < 0)
        bench_die("mkdir %s: %s", tree->base_dir, g_strerror(errno));
    tree->config = gen_config(root, tree->instances, tree->ledger_dir, "host0000");

    gint64 two_days_ago = g_get_real_time() / G_USEC_PER_SEC - 2 * 86400;
    struct timespec times[2] = {{.tv_sec = two_days_ago}, {.tv_sec = two_days_ago}};
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < base_files; i++) {
        char *name = base_name(i);
        g_ptr_array_add(names, name);
        if (reuse)
            continue;
        g_autofree char *path = g_build_filename(tree->base_dir, name, NULL);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || ftruncate(fd, 1LL << 30) < 0 || futimens(fd, times) < 0)
            bench_die("base file %s: %s", path, g_strerror(errno));
        close(fd);
    }

    /* 80 % of the base files have instance disks; the rest are unused. */
    guint used = MAX(base_files * 8 / 10, 1);
    for (guint i = 0; i < disks && !reuse; i++) {
        g_autofree char *dir = g_strdup_printf("%s/inst-%07u", tree->instances, i);
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
            bench_die("mkdir %s: %s", dir, g_strerror(errno));
        g_autofree char *disk = g_build_filename(dir, "disk", NULL);
        g_autofree char *backing =
            g_build_filename(tree->base_dir, g_ptr_array_index(names, i % used), NULL);
        gen_qcow2_sparse(disk, backing, "raw");
    }

    /* The ledger, rewritten on reuse so no host is stale: host0000 is this host; each domain names
     * one base file (by path) and its image id, spread over all base files. */
    for (guint h = 0; h < hosts; h++) {
        g_autofree char *host = g_strdup_printf("host%04u", h);
        g_autoptr(GPtrArray) domains =
            g_ptr_array_new_with_free_func((GDestroyNotify)ic_ledger_domain_free);
        for (guint d = 0; d < domains_per_host; d++) {
            guint n = h * domains_per_host + d;
            g_autofree char *uuid = g_strdup_printf("%08x-0000-4000-8000-%012x", h, d);
            g_autofree char *name = g_strdup_printf("instance-%08x", n);
            IcLedgerDomain *dom = ic_ledger_domain_new(uuid, name);
            guint b = (n * 7919u) % used;
            g_ptr_array_add(dom->base_files,
                            g_build_filename(tree->base_dir, g_ptr_array_index(names, b), NULL));
            g_ptr_array_add(dom->image_ids, gen_image_id(b));
            dom->started = two_days_ago;
            g_ptr_array_add(domains, dom);
        }
        g_autoptr(GError) error = NULL;
        if (!ic_ledger_replace_host(tree->ledger_dir, host, domains,
                                    g_get_real_time() / G_USEC_PER_SEC, &error))
            bench_die("writing the ledger: %s", error->message);
    }
    return tree;
}

void bench_tree_free(BenchTree *tree)
{
    if (tree == NULL)
        return;
    g_free(tree->instances);
    g_free(tree->base_dir);
    g_free(tree->ledger_dir);
    g_free(tree->config);
    g_free(tree);
}
