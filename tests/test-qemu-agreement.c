/* test-qemu-agreement.c — issue 12: imagecache's answer to "which files does this
 * disk need" (ic_probe_disk_files) against QEMU's (`qemu-img info --backing-chain
 * --output=json -U`) over generated layouts: symlinks at each level, relative and
 * absolute names, "..", "//", "file:", qcow2/qed/raw, data files, loops, declared
 * raw formats over qcow2-looking bytes, protocols. Any difference fails, except:
 * where QEMU cannot open the chain, imagecache must say "unknown" or keep the
 * name it could not open (never "unused"); and the few layouts marked
 * conservative, where imagecache says "unknown" on purpose (documented in the
 * README) although QEMU has an answer. */
#include "error.h"
#include "imgwriter.h"
#include "fileutil.h"
#include "probe.h"
#include "scan.h"
#include "qemutest.h"
#include "testutil.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    char *name;
    char *script;       /* sh, run in the root with $ROOT set */
    const char *disk;   /* the disk, relative to the root */
    const char *format; /* the disk's declared format, NULL: probed */
    gboolean conservative;
    /* An overlay with no backing format (qemu-img no longer writes one). */
    const char *probe_overlay;
    const char *probe_backing;
} Layout;

static void layout_free(Layout *l)
{
    g_free(l->name);
    g_free(l->script);
    g_free(l);
}

static GPtrArray *layouts; /* Layout* */

static void add_layout(const char *name, const char *script, const char *disk, const char *format,
                       gboolean conservative)
{
    Layout *l = g_new0(Layout, 1);
    l->name = g_strdup(name);
    l->script = g_strdup(script);
    l->disk = disk;
    l->format = format;
    l->conservative = conservative;
    g_ptr_array_add(layouts, l);
}

#define BASE_X "mkdir -p inst/_base images\nqemu-img create -q -f raw inst/_base/X 1M\n"

typedef enum {
    STYLE_RELATIVE,
    STYLE_RELATIVE_DOT,
    STYLE_ABSOLUTE,
    STYLE_DOUBLE_SLASH,
    STYLE_FILE_PREFIX,
    STYLE_ABSOLUTE_THROUGH_VM, /* an absolute name with ".." after the instance dir */
    _STYLE_MAX,
} Style;

static const char *const style_names[] = {"rel", "rel-dot", "abs", "dslash", "file", "abs-via-vm"};
G_STATIC_ASSERT(G_N_ELEMENTS(style_names) == _STYLE_MAX);

/* The generated part: top format x instance dir (real, symlink two levels
 * down) x base file (direct, a symlink outside _base into it) x name style. */
static void generate_layouts(void)
{
    const char *formats[] = {"qcow2", "qed"};
    for (guint fi = 0; fi < G_N_ELEMENTS(formats); fi++) {
        for (int vm_link = 0; vm_link <= 1; vm_link++) {
            for (int base_link = 0; base_link <= 1; base_link++) {
                for (Style style = 0; style < _STYLE_MAX; style++) {
                    const char *target = base_link ? "../images/cur.img" : "_base/X";
                    /* As the kernel sees it: vm is inst/vm or inst/deep/a. */
                    const char *up = vm_link ? "../../" : "../";
                    g_autofree char *name = NULL;
                    switch (style) {
                    case STYLE_RELATIVE:
                        name = g_strconcat(up, target, NULL);
                        break;
                    case STYLE_RELATIVE_DOT:
                        name = g_strconcat("./", up, ".//", target, NULL);
                        break;
                    case STYLE_ABSOLUTE:
                        name = g_strconcat("$ROOT/inst/", target, NULL);
                        break;
                    case STYLE_DOUBLE_SLASH:
                        name = g_strconcat("$ROOT//inst//", target, NULL);
                        break;
                    case STYLE_FILE_PREFIX:
                        name = g_strconcat("file:$ROOT/inst/", target, NULL);
                        break;
                    case STYLE_ABSOLUTE_THROUGH_VM:
                        name = g_strconcat("$ROOT/inst/vm/", up, target, NULL);
                        break;
                    case _STYLE_MAX:
                        g_assert_not_reached();
                    }
                    g_autofree char *script = g_strdup_printf(
                        BASE_X "%s%s"
                               "qemu-img create -q -f %s -u -F raw -b \"%s\" inst/vm/disk 1M\n",
                        base_link ? "ln -s ../inst/_base/X images/cur.img\n" : "",
                        vm_link ? "mkdir -p inst/deep/a\nln -s deep/a inst/vm\n"
                                : "mkdir -p inst/vm\n",
                        formats[fi], name);
                    g_autofree char *label =
                        g_strdup_printf("gen-%s-%s-%s-%s", formats[fi], vm_link ? "vmlink" : "vm",
                                        base_link ? "baselink" : "base", style_names[style]);
                    add_layout(label, script, "inst/vm/disk", NULL, FALSE);
                }
            }
        }
    }
}

#define OVERLAY(fmt, backing_fmt, backing, disk)                                                   \
    "qemu-img create -q -f " fmt " -u -F " backing_fmt " -b '" backing "' " disk " 1M\n"

/* The cases that are not a product of the dimensions above. */
static void special_layouts(void)
{
    add_layout("two-level",
               BASE_X "mkdir -p inst/vm\n" OVERLAY("qcow2", "raw", "X", "inst/_base/M")
                   OVERLAY("qcow2", "qcow2", "../_base/M", "inst/vm/disk"),
               "inst/vm/disk", NULL, FALSE);
    add_layout("qed-qcow2-raw",
               BASE_X "mkdir -p inst/vm\n" OVERLAY("qcow2", "raw", "X", "inst/_base/M")
                   OVERLAY("qed", "qcow2", "../_base/M", "inst/vm/disk"),
               "inst/vm/disk", NULL, FALSE);
    add_layout("data-file-absolute",
               "mkdir -p inst/_base inst/vm\n"
               "qemu-img create -q -f qcow2 -o \"data_file=$ROOT/inst/_base/D,data_file_raw=on\" "
               "inst/vm/disk 1M\n",
               "inst/vm/disk", NULL, FALSE);
    add_layout("data-file-relative",
               "mkdir -p inst/_base inst/vm\n"
               "cd inst/vm && qemu-img create -q -f qcow2 -o data_file=../_base/D,data_file_raw=on "
               "disk 1M\n",
               "inst/vm/disk", NULL, FALSE);
    add_layout("data-file-and-backing",
               BASE_X "mkdir -p inst/vm\n"
                      "qemu-img create -q -f qcow2 -u -F raw -b ../_base/X "
                      "-o \"data_file=$ROOT/inst/_base/D\" inst/vm/disk 1M\n",
               "inst/vm/disk", NULL, FALSE);
    add_layout("data-file-in-backing",
               "mkdir -p inst/_base inst/vm\n"
               "qemu-img create -q -f qcow2 -o \"data_file=$ROOT/inst/_base/D,data_file_raw=on\" "
               "inst/_base/M 1M\n" OVERLAY("qcow2", "qcow2", "../_base/M", "inst/vm/disk"),
               "inst/vm/disk", NULL, FALSE);
    add_layout("self-loop", "mkdir -p inst/vm\n" OVERLAY("qcow2", "qcow2", "disk", "inst/vm/disk"),
               "inst/vm/disk", NULL, FALSE);
    add_layout("two-loop-through-symlink",
               "mkdir -p inst/_base inst/vm\nln -s vm inst/alias\n" OVERLAY(
                   "qcow2", "qcow2", "../_base/B", "inst/vm/disk")
                   OVERLAY("qcow2", "qcow2", "../alias/disk", "inst/_base/B"),
               "inst/vm/disk", NULL, FALSE);
    add_layout("declared-raw-over-qcow2-bytes",
               "mkdir -p inst/vm\n" OVERLAY("qcow2", "raw", "nbd:localhost:10809", "inst/vm/disk"),
               "inst/vm/disk", "raw", FALSE);
    add_layout("backing-fmt-raw-over-qcow2-bytes",
               "mkdir -p inst/_base inst/vm\n" OVERLAY("qcow2", "raw", "nbd:localhost:10809",
                                                       "inst/_base/R")
                   OVERLAY("qcow2", "raw", "../_base/R", "inst/vm/disk"),
               "inst/vm/disk", NULL, FALSE);
    add_layout("qed-no-probe-over-qcow2-bytes",
               "mkdir -p inst/_base inst/vm\n" OVERLAY("qcow2", "raw", "nbd:localhost:10809",
                                                       "inst/_base/R")
                   OVERLAY("qed", "raw", "../_base/R", "inst/vm/disk"),
               "inst/vm/disk", NULL, FALSE);
    add_layout("declared-qcow2-over-raw", BASE_X, "inst/_base/X", "qcow2", FALSE);
    add_layout("declared-qed-over-qcow2",
               "mkdir -p inst/vm\nqemu-img create -q -f qcow2 inst/vm/disk 1M\n", "inst/vm/disk",
               "qed", FALSE);
    add_layout("protocol-nbd",
               "mkdir -p inst/vm\n" OVERLAY("qcow2", "raw", "nbd:127.0.0.1:1", "inst/vm/disk"),
               "inst/vm/disk", NULL, FALSE);
    add_layout(
        "missing-backing",
        "mkdir -p inst/_base inst/vm\n" OVERLAY("qcow2", "raw", "../_base/gone", "inst/vm/disk"),
        "inst/vm/disk", NULL, FALSE);
    /* Lexically inst/_base/X (which exists); the kernel takes ".." after the
     * symlink: inst/deep/a/_base/X, which does not. QEMU fails; so must we, or
     * keep the name QEMU would open, never the lexical one alone. */
    add_layout("dotdot-lexical-trap",
               BASE_X "mkdir -p inst/deep/a/b\nln -s deep/a/b inst/vm\n" OVERLAY(
                   "qcow2", "raw", "../_base/X", "inst/vm/disk"),
               "inst/vm/disk", NULL, FALSE);
    add_layout("relative-double-slash",
               BASE_X "mkdir -p inst/vm\n" OVERLAY("qcow2", "raw", "..//_base//X", "inst/vm/disk"),
               "inst/vm/disk", NULL, FALSE);
    add_layout("symlinked-disk",
               BASE_X "mkdir -p inst/vm store\n" OVERLAY("qcow2", "raw", "../_base/X",
                                                         "store/disk") "ln -s ../../store/disk "
                                                                       "inst/vm/disk\n",
               "inst/vm/disk", NULL, FALSE);
    /* QEMU takes these against its working directory or a JSON option set:
     * imagecache says "unknown user" instead (README, "How it decides"). */
    add_layout("file-prefix-relative",
               BASE_X
               "mkdir -p inst/vm\n" OVERLAY("qcow2", "raw", "file:inst/_base/X", "inst/vm/disk"),
               "inst/vm/disk", NULL, TRUE);
    add_layout("json-backing",
               BASE_X "mkdir -p inst/vm\n"
                      "qemu-img create -q -f qcow2 -u -F raw -b "
                      "\"json:{\\\"file.driver\\\":\\\"file\\\",\\\"file.filename\\\":"
                      "\\\"$ROOT/inst/_base/X\\\"}\" inst/vm/disk 1M\n",
               "inst/vm/disk", NULL, TRUE);

    Layout *probed = g_new0(Layout, 1);
    probed->name = g_strdup("no-backing-format-probed");
    probed->script =
        g_strdup(BASE_X "mkdir -p inst/vm\n" OVERLAY("qcow2", "raw", "X", "inst/_base/M"));
    probed->disk = "inst/vm/disk";
    probed->probe_overlay = "inst/vm/disk";
    probed->probe_backing = "../_base/M";
    g_ptr_array_add(layouts, probed);
}

static const IcDiskFile *data_file_after(GPtrArray *files, guint image_index)
{
    if (image_index + 1 < files->len) {
        const IcDiskFile *next = g_ptr_array_index(files, image_index + 1);
        if (next->role == IC_DISK_FILE_DATA)
            return next;
    }
    return NULL;
}

/* Compares the two answers; every difference is a failure of this layout
 * (the table goes on, so one run shows every layout that disagrees). */
/* The walk's fast ways to the same answer (issue 15): the disk opened as its
 * directory listing typed it, and base files told from a scan of <root>/inst/_base.
 * Whatever they skip, the files a disk needs must not change. */
static void check_fast_paths_agree(const Layout *l, const char *root, const char *disk,
                                   gboolean ours, GPtrArray *files)
{
    g_autofree char *base_dir = g_build_filename(root, "inst", "_base", NULL);
    g_autoptr(IcScan) scan = NULL;
    g_autoptr(GError) scan_error = NULL;
    g_assert_true(ic_scan_base_dir(base_dir, &scan, &scan_error));
    g_autoptr(IcProbeCache) cache = ic_probe_cache_new_for_scan(scan->exists ? scan : NULL);
    g_autofree char *dir = g_path_get_dirname(disk);
    g_autofree char *name = g_path_get_basename(disk);
    ic_autofd dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    g_assert_cmpint(dirfd, >=, 0);
    struct stat lst;
    gboolean regular = fstatat(dirfd, name, &lst, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(lst.st_mode);
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) fast = NULL;
    gboolean fast_ok =
        ic_probe_listed_disk_files(dirfd, name, disk, l->format, regular, cache, &fast, &error);
    if (fast_ok != ours) {
        g_test_fail_printf("%s: the walk's fast path says %s, the plain probe %s", l->name,
                           fast_ok ? "known" : error->message, ours ? "known" : "unknown");
        return;
    }
    if (!ours)
        return;
    g_assert_cmpuint(fast->len, ==, files->len);
    ic_autofd base_fd = open(base_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    for (guint i = 0; i < files->len; i++) {
        const IcDiskFile *a = g_ptr_array_index(files, i), *b = g_ptr_array_index(fast, i);
        g_assert_cmpstr(a->path, ==, b->path);
        g_assert_cmpint(a->present, ==, b->present);
        g_assert_cmpstr(a->entry_name, ==, b->entry_name);
        g_assert_cmpuint(a->dev, ==, b->dev);
        g_assert_cmpuint(a->ino, ==, b->ino);
        if (base_fd < 0)
            continue;
        g_autofree char *base_a = ic_disk_file_base_name_at(a, base_fd, base_dir);
        g_autofree char *base_b = ic_disk_file_base_name_at(b, base_fd, base_dir);
        if (g_strcmp0(base_a, base_b) == 0)
            continue;
        /* The scan may spare the question only where no row could hear the
         * answer: a name outside the grammar whose inode no scanned file has. */
        g_assert_nonnull(base_a);
        g_assert_null(base_b);
        g_assert_cmpint(ic_scan_classify_name(base_a, NULL), ==, IC_KIND_IGNORED);
        for (guint k = 0; k < scan->files->len; k++) {
            const IcBaseFile *scanned = g_ptr_array_index(scan->files, k);
            g_assert_false(scanned->dev == a->dev && scanned->ino == a->ino);
        }
    }
}

static void compare(const Layout *l, const char *root, gboolean ours, GPtrArray *files,
                    const GError *error, JsonArray *qemu)
{
    if (l->conservative) {
        if (qemu == NULL || ours)
            g_test_fail_printf("%s: expected QEMU to open it and imagecache to say unknown",
                               l->name);
        return;
    }
    if (qemu == NULL) {
        /* QEMU cannot open the chain. Never "unused": either unknown, or the
         * chain ends at a name that resolves to nothing, kept as in use. */
        const IcDiskFile *last = ours ? g_ptr_array_index(files, files->len - 1) : NULL;
        if (last != NULL && last->present)
            g_test_fail_printf("%s: QEMU cannot open the chain, imagecache reads all of it",
                               l->name);
        return;
    }
    if (!ours) {
        g_test_fail_printf("%s: QEMU opens the chain, imagecache says: %s", l->name,
                           error->message);
        return;
    }
    guint qi = 0;
    guint qlen = json_array_get_length(qemu);
    for (guint i = 0; i < files->len; i++) {
        const IcDiskFile *file = g_ptr_array_index(files, i);
        if (file->role != IC_DISK_FILE_IMAGE)
            continue;
        if (qi >= qlen) {
            g_test_fail_printf("%s: imagecache's chain is longer than QEMU's (%u)", l->name, qlen);
            return;
        }
        const char *theirs = ic_qemu_member_filename(qemu, qi);
        if (!file->present || !ic_qemu_same_file(root, file->path, theirs)) {
            g_test_fail_printf("%s: member %u: imagecache '%s', QEMU '%s'", l->name, qi, file->path,
                               theirs);
            return;
        }
        if (g_strcmp0(file->format, ic_qemu_member_format(qemu, qi)) != 0) {
            g_test_fail_printf("%s: member %u: imagecache reads it as %s, QEMU as %s", l->name, qi,
                               file->format, ic_qemu_member_format(qemu, qi));
            return;
        }
        const IcDiskFile *data_file = data_file_after(files, i);
        const char *their_data = ic_qemu_member_data_file(qemu, qi);
        if (g_strcmp0(data_file ? data_file->name : NULL, their_data) != 0) {
            g_test_fail_printf("%s: member %u: data file '%s' for imagecache, '%s' for QEMU",
                               l->name, qi, data_file ? data_file->name : "(none)",
                               their_data ? their_data : "(none)");
            return;
        }
        qi++;
    }
    if (qi != qlen)
        g_test_fail_printf("%s: imagecache's chain has %u members, QEMU's %u", l->name, qi, qlen);
}

static void test_layout(gconstpointer data)
{
    const Layout *l = data;
    if (!ic_qemu_have())
        return;
    g_autofree char *root = ic_test_mkdtemp();
    g_autofree char *script = g_strdup_printf("ROOT='%s'\n%s", root, l->script);
    ic_qemu_sh(root, script);
    if (l->probe_overlay != NULL) {
        g_autofree char *overlay = g_build_filename(root, l->probe_overlay, NULL);
        g_autoptr(GError) werror = NULL;
        g_assert_true(ic_test_write_qcow2(overlay, 3, 1 << 20, l->probe_backing, NULL, &werror));
        g_assert_no_error(werror);
    }
    g_autofree char *disk = g_build_filename(root, l->disk, NULL);

    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) files = NULL;
    gboolean ours = ic_probe_disk_files(AT_FDCWD, disk, disk, l->format, NULL, &files, &error);
    g_autofree char *qemu_err = NULL;
    g_autoptr(JsonArray) qemu = ic_qemu_chain(root, disk, l->format, &qemu_err);
    g_test_message("%s: imagecache %s%s; qemu-img %s%s", l->name,
                   ours ? "ok" : "unknown: ", ours ? "" : error->message,
                   qemu ? "ok" : "failed: ", qemu ? "" : qemu_err);
    compare(l, root, ours, files, error, qemu);
    check_fast_paths_agree(l, root, disk, ours, files);
    ic_test_rmtree(root);
}

int main(int argc, char **argv)
{
    /* One run must show every layout that disagrees, not stop at the first. */
    g_autofree char **args = g_new0(char *, argc + 2);
    for (int i = 0; i < argc; i++)
        args[i] = argv[i];
    args[argc] = (char *)"--keep-going";
    int nargs = argc + 1;
    argv = args;
    argc = nargs;
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
    g_test_summary("imagecache and qemu-img agree on which files each generated layout needs");
    layouts = g_ptr_array_new_with_free_func((GDestroyNotify)layout_free);
    generate_layouts();
    special_layouts();
    g_assert_cmpuint(layouts->len, >=, 30);
    for (guint i = 0; i < layouts->len; i++) {
        const Layout *l = g_ptr_array_index(layouts, i);
        g_autofree char *path = g_strdup_printf("/imagecache/qemu-agreement/%s", l->name);
        g_test_add_data_func(path, l, test_layout);
    }
    int status = g_test_run();
    g_ptr_array_unref(layouts);
    return status;
}
