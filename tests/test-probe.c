/* test-probe.c — image header parsing and backing chains, against images made both by
 * qemu-img and by imgwriter, plus damaged headers that must fail cleanly. */
#include "error.h"
#include "imgwriter.h"
#include "probe.h"
#include "testutil.h"

#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIB (1024 * 1024)

typedef enum {
    KIND_RAW,
    KIND_QCOW2_V2,
    KIND_QCOW2_V3,
    KIND_QED,
} ImageKind;

typedef enum {
    MAKER_IMGWRITER,
    MAKER_QEMU_IMG,
} ImageMaker;

static gboolean have_qemu_img(void)
{
    g_autofree char *prog = g_find_program_in_path("qemu-img");
    return prog != NULL;
}

static void run_qemu_img(const char *const *argv, char **ret_stdout)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *out = NULL;
    g_autofree char *err = NULL;
    int status = 0;

    g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &out, &err, &status,
                 &error);
    g_assert_no_error(error);
    if (!g_spawn_check_wait_status(status, NULL))
        g_error("qemu-img %s failed: %s", argv[1], err);
    if (ret_stdout != NULL)
        *ret_stdout = g_steal_pointer(&out);
}

/* Makes one image of @kind at @path (1 MiB) with the given backing, by @maker. */
static void make_image(ImageMaker maker, ImageKind kind, const char *path, const char *backing_name,
                       const char *backing_format)
{
    g_autoptr(GError) error = NULL;

    if (kind == KIND_RAW) {
        g_autofree char *dir = g_path_get_dirname(path);
        g_autofree char *base = g_path_get_basename(path);
        g_free(ic_test_write_file(dir, base, "plain raw bytes", -1));
        return;
    }

    if (maker == MAKER_IMGWRITER) {
        if (kind == KIND_QED)
            ic_test_write_qed(path, MIB, backing_name, backing_format, &error);
        else
            ic_test_write_qcow2(path, kind == KIND_QCOW2_V2 ? 2 : 3, MIB, backing_name,
                                backing_format, &error);
        g_assert_no_error(error);
        return;
    }

    const char *argv[16] = {"qemu-img", "create", "-q", "-f"};
    guint n = 4;
    argv[n++] = kind == KIND_QED ? "qed" : "qcow2";
    if (kind != KIND_QED) {
        argv[n++] = "-o";
        argv[n++] = kind == KIND_QCOW2_V2 ? "compat=0.10" : "compat=1.1";
    }
    if (backing_name != NULL) {
        argv[n++] = "-b";
        argv[n++] = backing_name;
        argv[n++] = "-F";
        argv[n++] = backing_format;
    }
    argv[n++] = path;
    argv[n++] = "1M";
    argv[n] = NULL;
    run_qemu_img(argv, NULL);
}

static IcImageInfo *probe_ok(const char *path)
{
    g_autoptr(GError) error = NULL;
    IcImageInfo *info = NULL;

    g_assert_true(ic_probe_image(path, &info, &error));
    g_assert_no_error(error);
    g_assert_nonnull(info);
    return info;
}

/* ---- formats: each made by imgwriter and by qemu-img ---- */

typedef struct {
    const char *name;
    ImageMaker maker;
    ImageKind kind;
    const char *backing_name;   /* relative to the image's dir */
    const char *backing_format; /* written */
    const char *expect_format;  /* probed back: NULL when the header cannot tell */
    guint32 expect_version;
} FormatCase;

static const FormatCase format_cases[] = {
    {"raw", MAKER_IMGWRITER, KIND_RAW, NULL, NULL, NULL, 0},
    {"qcow2-v2/imgwriter", MAKER_IMGWRITER, KIND_QCOW2_V2, "base.raw", "raw", "raw", 2},
    {"qcow2-v2/qemu-img", MAKER_QEMU_IMG, KIND_QCOW2_V2, "base.raw", "raw", "raw", 2},
    {"qcow2-v2-nobacking/imgwriter", MAKER_IMGWRITER, KIND_QCOW2_V2, NULL, NULL, NULL, 2},
    {"qcow2-v2-nobacking/qemu-img", MAKER_QEMU_IMG, KIND_QCOW2_V2, NULL, NULL, NULL, 2},
    {"qcow2-v3/imgwriter", MAKER_IMGWRITER, KIND_QCOW2_V3, "base.raw", "raw", "raw", 3},
    {"qcow2-v3/qemu-img", MAKER_QEMU_IMG, KIND_QCOW2_V3, "base.raw", "raw", "raw", 3},
    {"qcow2-v3-qcow2-base/qemu-img", MAKER_QEMU_IMG, KIND_QCOW2_V3, "base.qcow2", "qcow2", "qcow2",
     3},
    /* qemu-img 6.1+ refuses -b without -F, so only imgwriter makes this one. */
    {"qcow2-v3-nofmt/imgwriter", MAKER_IMGWRITER, KIND_QCOW2_V3, "base.raw", NULL, NULL, 3},
    {"qcow2-v3-nobacking/imgwriter", MAKER_IMGWRITER, KIND_QCOW2_V3, NULL, NULL, NULL, 3},
    {"qcow2-v3-nobacking/qemu-img", MAKER_QEMU_IMG, KIND_QCOW2_V3, NULL, NULL, NULL, 3},
    {"qed-noprobe/imgwriter", MAKER_IMGWRITER, KIND_QED, "base.raw", "raw", "raw", 0},
    {"qed-noprobe/qemu-img", MAKER_QEMU_IMG, KIND_QED, "base.raw", "raw", "raw", 0},
    {"qed-probe/imgwriter", MAKER_IMGWRITER, KIND_QED, "base.qcow2", "qcow2", NULL, 0},
    {"qed-probe/qemu-img", MAKER_QEMU_IMG, KIND_QED, "base.qcow2", "qcow2", NULL, 0},
    {"qed-nobacking/qemu-img", MAKER_QEMU_IMG, KIND_QED, NULL, NULL, NULL, 0},
};

static void test_format(IcTestTree *tree, gconstpointer data)
{
    const FormatCase *c = data;

    if (c->maker == MAKER_QEMU_IMG && !have_qemu_img()) {
        g_test_skip("qemu-img not installed");
        return;
    }
    /* qemu-img opens the backing file to check it, so it must exist. */
    if (c->backing_name != NULL) {
        g_autofree char *base = g_build_filename(tree->base_dir, c->backing_name, NULL);
        if (g_strcmp0(c->backing_format, "qcow2") == 0)
            make_image(MAKER_IMGWRITER, KIND_QCOW2_V3, base, NULL, NULL);
        else
            make_image(MAKER_IMGWRITER, KIND_RAW, base, NULL, NULL);
    }
    g_autofree char *path = g_build_filename(tree->base_dir, "disk", NULL);
    make_image(c->maker, c->kind, path, c->backing_name, c->backing_format);

    g_autoptr(IcImageInfo) info = probe_ok(path);
    switch (c->kind) {
    case KIND_RAW:
        g_assert_cmpint(info->format, ==, IC_IMAGE_FORMAT_RAW);
        g_assert_cmpuint(info->virtual_size, ==, 0);
        break;
    case KIND_QCOW2_V2:
    case KIND_QCOW2_V3:
        g_assert_cmpint(info->format, ==, IC_IMAGE_FORMAT_QCOW2);
        g_assert_cmpuint(info->virtual_size, ==, MIB);
        break;
    case KIND_QED:
        g_assert_cmpint(info->format, ==, IC_IMAGE_FORMAT_QED);
        g_assert_cmpuint(info->virtual_size, ==, MIB);
        break;
    }
    g_assert_cmpuint(info->version, ==, c->expect_version);
    g_assert_cmpstr(info->backing_name, ==, c->backing_name);
    g_assert_cmpstr(info->backing_format, ==, c->expect_format);
    if (c->backing_name == NULL) {
        g_assert_null(info->backing_path);
        return;
    }
    g_autofree char *expect_path = g_build_filename(tree->base_dir, c->backing_name, NULL);
    g_assert_cmpstr(info->backing_path, ==, expect_path);
}

/* ---- imgwriter output is what QEMU accepts ---- */

typedef struct {
    const char *name;
    ImageKind kind;
    const char *backing_format;
    const char *expect_json[3];
} AcceptCase;

static const AcceptCase accept_cases[] = {
    {"qcow2-v2",
     KIND_QCOW2_V2,
     "raw",
     {"\"format\": \"qcow2\"", "\"compat\": \"0.10\"", "\"backing-filename-format\": \"raw\""}},
    {"qcow2-v3",
     KIND_QCOW2_V3,
     "raw",
     {"\"format\": \"qcow2\"", "\"compat\": \"1.1\"", "\"backing-filename-format\": \"raw\""}},
    {"qcow2-v3-nofmt", KIND_QCOW2_V3, NULL, {"\"format\": \"qcow2\"", "\"compat\": \"1.1\""}},
    {"qed", KIND_QED, "raw", {"\"format\": \"qed\""}},
};

static void test_qemu_img_accepts(IcTestTree *tree, gconstpointer data)
{
    const AcceptCase *c = data;

    if (!have_qemu_img()) {
        g_test_skip("qemu-img not installed");
        return;
    }
    /* qemu-img check opens the backing file. */
    g_autofree char *base = g_build_filename(tree->base_dir, "base.raw", NULL);
    make_image(MAKER_IMGWRITER, KIND_RAW, base, NULL, NULL);
    g_autofree char *path = g_build_filename(tree->base_dir, "disk", NULL);
    make_image(MAKER_IMGWRITER, c->kind, path, "base.raw", c->backing_format);

    g_autofree char *out = NULL;
    const char *argv[] = {"qemu-img", "info", "--output=json", path, NULL};
    run_qemu_img(argv, &out);
    g_assert_nonnull(strstr(out, "\"virtual-size\": 1048576"));
    g_assert_nonnull(strstr(out, "\"backing-filename\": \"base.raw\""));
    for (guint i = 0; i < G_N_ELEMENTS(c->expect_json) && c->expect_json[i] != NULL; i++) {
        if (strstr(out, c->expect_json[i]) == NULL)
            g_error("'%s' missing from qemu-img info: %s", c->expect_json[i], out);
    }

    const char *check[] = {"qemu-img", "check", "-q", path, NULL};
    run_qemu_img(check, NULL);
}

/* ---- resolution of backing names ---- */

typedef struct {
    const char *name;
    const char *backing_name;
    const char *expect_path; /* relative to the instances root, or absolute; NULL: protocol */
} ResolveCase;

/* QEMU appends a relative name to the overlay's directory as a string and
 * lets the kernel resolve the result (symlinks before ".."): no lexical
 * canonicalisation, which would take "link/.." differently from the kernel. */
static const ResolveCase resolve_cases[] = {
    {"parent", "../_base/x", "inst/../_base/x"},
    {"plain", "x", "inst/x"},
    {"dot-dotdot", "./a/../b", "inst/./a/../b"},
    {"double-slash", "a//b/./", "inst/a//b/./"},
    {"through-symlink", "link/../y", "inst/link/../y"},
    {"colon-after-slash", "./a:b", "inst/./a:b"},
    {"absolute", "/var/lib/nova/instances/_base/abc", "/var/lib/nova/instances/_base/abc"},
    {"absolute-dotdot", "/srv/./a/../b", "/srv/./a/../b"},
    {"nbd", "nbd:localhost:10809", NULL},
    {"json", "json:{\"file.driver\":\"file\",\"file.filename\":\"/x\"}", NULL},
    {"file-prefix", "file:/srv/_base/x", "/srv/_base/x"},
    /* QEMU takes a relative "file:" name against its working directory: unknowable. */
    {"file-prefix-relative", "file:x", NULL},
};

static void test_resolve(IcTestTree *tree, gconstpointer data)
{
    const ResolveCase *c = data;
    g_autoptr(GError) error = NULL;

    g_autofree char *inst = g_build_filename(tree->root, "inst", NULL);
    g_assert_cmpint(g_mkdir(inst, 0755), ==, 0);
    /* Parsing resolves nothing: a symlink in the name is the kernel's to follow. */
    g_autofree char *link = g_build_filename(inst, "link", NULL);
    g_assert_cmpint(symlink("/nonexistent/elsewhere", link), ==, 0);

    g_autofree char *path = g_build_filename(inst, "disk", NULL);
    make_image(MAKER_IMGWRITER, KIND_QCOW2_V3, path, c->backing_name, "raw");

    g_autofree char *contents = NULL;
    gsize len = 0;
    g_file_get_contents(path, &contents, &len, &error);
    g_assert_no_error(error);
    g_autoptr(IcImageInfo) info = NULL;
    g_assert_true(ic_probe_parse((const guint8 *)contents, len, inst, &info, &error));
    g_assert_no_error(error);
    g_assert_cmpstr(info->backing_name, ==, c->backing_name);

    if (c->expect_path == NULL) {
        g_assert_null(info->backing_path);
        return;
    }
    g_autofree char *expect = g_path_is_absolute(c->expect_path)
                                  ? g_strdup(c->expect_path)
                                  : g_strconcat(tree->root, "/", c->expect_path, NULL);
    g_assert_cmpstr(info->backing_path, ==, expect);
}

/* A relative image path stays relative, as QEMU keeps it (the kernel takes it
 * against the current directory). */
static void test_resolve_relative_image(IcTestTree *tree, gconstpointer data)
{
    g_autofree char *cwd = g_get_current_dir();
    g_assert_cmpint(chdir(tree->root), ==, 0);
    g_assert_cmpint(g_mkdir("inst", 0755), ==, 0);
    make_image(MAKER_IMGWRITER, KIND_QCOW2_V2, "inst/disk", "../_base/b", "raw");

    g_autoptr(IcImageInfo) info = probe_ok("inst/disk");
    g_assert_cmpint(chdir(cwd), ==, 0);
    g_assert_cmpstr(info->backing_path, ==, "inst/../_base/b");
}

/* ---- chains ---- */

static void assert_chain(const char *path, const char *const *expect)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) chain = NULL;

    g_assert_true(ic_probe_chain(path, &chain, &error));
    g_assert_no_error(error);
    guint n = g_strv_length((char **)expect);
    g_assert_cmpuint(chain->len, ==, n);
    for (guint i = 0; i < n; i++)
        g_assert_cmpstr(g_ptr_array_index(chain, i), ==, expect[i]);
}

static void assert_chain_fails(const char *path, gint code)
{
    g_autoptr(GError) error = NULL;
    GPtrArray *chain = NULL;

    g_assert_false(ic_probe_chain(path, &chain, &error));
    g_assert_error(error, IC_ERROR, code);
    g_assert_null(chain);
}

static void test_chain_two_level(IcTestTree *tree, gconstpointer data)
{
    g_autofree char *disk = g_build_filename(tree->root, "inst", "disk", NULL);
    g_autofree char *mid = g_build_filename(tree->base_dir, "mid.qcow2", NULL);
    g_autofree char *base = g_build_filename(tree->base_dir, "base.raw", NULL);
    g_autofree char *inst = g_path_get_dirname(disk);
    g_assert_cmpint(g_mkdir(inst, 0755), ==, 0);

    make_image(MAKER_IMGWRITER, KIND_RAW, base, NULL, NULL);
    make_image(MAKER_IMGWRITER, KIND_QCOW2_V2, mid, "base.raw", "raw");
    make_image(MAKER_IMGWRITER, KIND_QCOW2_V3, disk, "../_base/mid.qcow2", "qcow2");

    const char *expect[] = {mid, base, NULL};
    assert_chain(disk, expect);
}

/* qemu-img writes the names; the probe reads what it wrote. */
static void test_chain_three_level_qemu_img(IcTestTree *tree, gconstpointer data)
{
    if (!have_qemu_img()) {
        g_test_skip("qemu-img not installed");
        return;
    }
    g_autofree char *base = g_build_filename(tree->base_dir, "base.raw", NULL);
    g_autofree char *l1 = g_build_filename(tree->base_dir, "l1.qed", NULL);
    g_autofree char *l2 = g_build_filename(tree->base_dir, "l2.qcow2", NULL);
    g_autofree char *disk = g_build_filename(tree->root, "disk", NULL);

    make_image(MAKER_IMGWRITER, KIND_RAW, base, NULL, NULL);
    make_image(MAKER_QEMU_IMG, KIND_QED, l1, base, "raw");
    make_image(MAKER_QEMU_IMG, KIND_QCOW2_V2, l2, "l1.qed", "qed");
    make_image(MAKER_QEMU_IMG, KIND_QCOW2_V3, disk, "_base/l2.qcow2", "qcow2");

    const char *expect[] = {l2, l1, base, NULL};
    assert_chain(disk, expect);
}

static void test_chain_no_backing(IcTestTree *tree, gconstpointer data)
{
    g_autofree char *disk = g_build_filename(tree->root, "disk", NULL);
    make_image(MAKER_IMGWRITER, KIND_QCOW2_V3, disk, NULL, NULL);
    const char *expect[] = {NULL};
    assert_chain(disk, expect);
}

static void test_chain_missing_end(IcTestTree *tree, gconstpointer data)
{
    g_autofree char *disk = g_build_filename(tree->root, "disk", NULL);
    g_autofree char *mid = g_build_filename(tree->base_dir, "mid", NULL);
    g_autofree char *gone = g_build_filename(tree->base_dir, "gone", NULL);

    make_image(MAKER_IMGWRITER, KIND_QCOW2_V3, mid, "gone", "raw");
    make_image(MAKER_IMGWRITER, KIND_QCOW2_V3, disk, "_base/mid", "qcow2");

    const char *expect[] = {mid, gone, NULL};
    assert_chain(disk, expect);
}

static void test_chain_missing_top(IcTestTree *tree, gconstpointer data)
{
    g_autofree char *disk = g_build_filename(tree->root, "disk", NULL);
    assert_chain_fails(disk, IC_ERROR_NOT_FOUND);
}

static void test_chain_protocol(IcTestTree *tree, gconstpointer data)
{
    g_autofree char *disk = g_build_filename(tree->root, "disk", NULL);
    make_image(MAKER_IMGWRITER, KIND_QCOW2_V3, disk, "nbd:localhost:10809", "raw");
    /* It might be a base file behind the protocol: unknowable, so an error. */
    assert_chain_fails(disk, IC_ERROR_FORMAT);
}

/* QEMU's "file:" prefix names a plain file: followed like any path. */
static void test_chain_file_prefix(IcTestTree *tree, gconstpointer data)
{
    g_autofree char *base = g_build_filename(tree->base_dir, "x", NULL);
    make_image(MAKER_IMGWRITER, KIND_RAW, base, NULL, NULL);
    g_autofree char *disk = g_build_filename(tree->root, "disk", NULL);
    g_autofree char *name = g_strconcat("file:", base, NULL);
    make_image(MAKER_IMGWRITER, KIND_QCOW2_V3, disk, name, "raw");
    const char *expect[] = {base, NULL};
    assert_chain(disk, expect);
}

static void test_chain_self_loop(IcTestTree *tree, gconstpointer data)
{
    g_autofree char *disk = g_build_filename(tree->root, "disk", NULL);
    make_image(MAKER_IMGWRITER, KIND_QCOW2_V3, disk, "./disk", "qcow2");
    assert_chain_fails(disk, IC_ERROR_LIMIT);
}

static void test_chain_two_cycle(IcTestTree *tree, gconstpointer data)
{
    g_autofree char *a = g_build_filename(tree->root, "a", NULL);
    g_autofree char *b = g_build_filename(tree->base_dir, "b", NULL);
    make_image(MAKER_IMGWRITER, KIND_QCOW2_V2, a, "_base/b", "qed");
    make_image(MAKER_IMGWRITER, KIND_QED, b, "../a", "qcow2");
    assert_chain_fails(a, IC_ERROR_LIMIT);
}

/* disk -> l1 -> ... -> l<depth>, l<depth> with no backing file. */
static char *make_deep_chain(const char *dir, guint depth)
{
    for (guint i = 0; i <= depth; i++) {
        g_autofree char *name = g_strdup_printf("l%u", i);
        g_autofree char *path = g_build_filename(dir, name, NULL);
        g_autofree char *next = i < depth ? g_strdup_printf("l%u", i + 1) : NULL;
        make_image(MAKER_IMGWRITER, KIND_QCOW2_V3, path, next, next ? "qcow2" : NULL);
    }
    return g_build_filename(dir, "l0", NULL);
}

static void test_chain_at_limit(IcTestTree *tree, gconstpointer data)
{
    g_autofree char *top = make_deep_chain(tree->base_dir, IC_PROBE_MAX_CHAIN_DEPTH);
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) chain = NULL;

    g_assert_true(ic_probe_chain(top, &chain, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(chain->len, ==, IC_PROBE_MAX_CHAIN_DEPTH);
}

static void test_chain_too_deep(IcTestTree *tree, gconstpointer data)
{
    g_autofree char *top = make_deep_chain(tree->base_dir, IC_PROBE_MAX_CHAIN_DEPTH + 1);
    assert_chain_fails(top, IC_ERROR_LIMIT);
}

static void test_chain_damaged_middle(IcTestTree *tree, gconstpointer data)
{
    g_autofree char *disk = g_build_filename(tree->root, "disk", NULL);
    make_image(MAKER_IMGWRITER, KIND_QCOW2_V3, disk, "_base/bad", "qcow2");
    g_free(ic_test_write_file(tree->base_dir, "bad", "QFI\xfb\0\0\0\x07", 8));
    assert_chain_fails(disk, IC_ERROR_FORMAT);
}

/* ---- damaged headers ---- */

typedef struct {
    const char *name;
    ImageKind kind; /* base image, written by imgwriter with backing "base.raw" */
    gsize offset;   /* where to patch, in the format's byte order */
    guint width;    /* 0: no patch; 1, 4 or 8 bytes */
    guint64 value;
    gsize truncate; /* 0: keep the length */
    gint code;
    const char *message; /* a part of the message */
} DamageCase;

/* imgwriter's layout: v2 backing-format extension at 72, v3 at 104; the name after. */
static const DamageCase damage_cases[] = {
    {"qcow2-truncated", KIND_QCOW2_V2, 0, 0, 0, 40, IC_ERROR_FORMAT, "truncated"},
    {"qcow2-v3-truncated", KIND_QCOW2_V3, 0, 0, 0, 90, IC_ERROR_FORMAT, "truncated"},
    {"qcow2-version-1", KIND_QCOW2_V2, 4, 4, 1, 0, IC_ERROR_FORMAT, "unsupported qcow2 version 1"},
    {"qcow2-version-4", KIND_QCOW2_V3, 4, 4, 4, 0, IC_ERROR_FORMAT, "unsupported qcow2 version 4"},
    {"qcow2-offset-past-eof", KIND_QCOW2_V2, 8, 8, 0x100000000ull, 0, IC_ERROR_FORMAT, "past"},
    {"qcow2-offset-past-cluster", KIND_QCOW2_V3, 8, 8, 65535, 0, IC_ERROR_FORMAT, "past"},
    {"qcow2-offset-overflow", KIND_QCOW2_V2, 8, 8, G_MAXUINT64 - 2, 0, IC_ERROR_FORMAT, "past"},
    {"qcow2-size-ffffffff", KIND_QCOW2_V2, 16, 4, 0xffffffffu, 0, IC_ERROR_FORMAT, "longer"},
    {"qcow2-size-1024", KIND_QCOW2_V3, 16, 4, 1024, 0, IC_ERROR_FORMAT, "longer"},
    {"qcow2-nul-in-name", KIND_QCOW2_V2, 96 + 2, 1, 0, 0, IC_ERROR_FORMAT, "NUL"},
    {"qcow2-cluster-bits-8", KIND_QCOW2_V2, 20, 4, 8, 0, IC_ERROR_FORMAT, "cluster_bits"},
    {"qcow2-cluster-bits-22", KIND_QCOW2_V3, 20, 4, 22, 0, IC_ERROR_FORMAT, "cluster_bits"},
    {"qcow2-cluster-bits-huge", KIND_QCOW2_V3, 20, 4, 0xffffffffu, 0, IC_ERROR_FORMAT,
     "cluster_bits"},
    {"qcow2-header-length-small", KIND_QCOW2_V3, 100, 4, 72, 0, IC_ERROR_FORMAT, "header_length"},
    {"qcow2-header-length-huge", KIND_QCOW2_V3, 100, 4, 0xfffffff8u, 0, IC_ERROR_FORMAT,
     "header_length"},
    {"qcow2-ext-length-past-end", KIND_QCOW2_V3, 104 + 4, 4, 0xfffffff0u, 0, IC_ERROR_FORMAT,
     "extension"},
    {"qcow2-v2-ext-length-past-end", KIND_QCOW2_V2, 72 + 4, 4, 4000, 0, IC_ERROR_FORMAT,
     "extension"},
    {"qcow2-backing-format-too-long", KIND_QCOW2_V3, 104 + 4, 4, 16, 0, IC_ERROR_FORMAT, "format"},
    {"qed-truncated", KIND_QED, 0, 0, 0, 30, IC_ERROR_FORMAT, "truncated"},
    {"qed-offset-past-eof", KIND_QED, 56, 4, 0x7fffffffu, 0, IC_ERROR_FORMAT, "past"},
    {"qed-size-past-eof", KIND_QED, 60, 4, 0xffffffffu, 0, IC_ERROR_FORMAT, "longer"},
    {"qed-name-past-file", KIND_QED, 60, 4, 4000, 256, IC_ERROR_FORMAT, "past"},
    {"qed-offset-and-size-wrap", KIND_QED, 56, 4, 0xfffffff0u, 0, IC_ERROR_FORMAT, "past"},
    {"qed-nul-in-name", KIND_QED, 64 + 1, 1, 0, 0, IC_ERROR_FORMAT, "NUL"},
    {"qed-cluster-size-0", KIND_QED, 4, 4, 0, 0, IC_ERROR_FORMAT, "cluster size"},
    {"qed-table-size-3", KIND_QED, 8, 4, 3, 0, IC_ERROR_FORMAT, "table size"},
    {"qed-unknown-feature", KIND_QED, 16, 8, 0x101, 0, IC_ERROR_FORMAT, "features"},
};

static void patch(guint8 *p, ImageKind kind, guint width, guint64 value)
{
    for (guint i = 0; i < width; i++) {
        guint shift = kind == KIND_QED ? 8 * i : 8 * (width - 1 - i);
        p[i] = (guint8)(value >> shift);
    }
}

static void assert_probe_fails(const char *path, gint code, const char *message)
{
    g_autoptr(GError) error = NULL;
    IcImageInfo *info = NULL;

    g_assert_false(ic_probe_image(path, &info, &error));
    g_assert_error(error, IC_ERROR, code);
    g_assert_null(info);
    g_test_message("%s", error->message);
    /* Every error names the image it is about. */
    g_assert_nonnull(strstr(error->message, path));
    if (message != NULL && strstr(error->message, message) == NULL)
        g_error("expected '%s' in '%s'", message, error->message);
}

static void test_damaged(IcTestTree *tree, gconstpointer data)
{
    const DamageCase *c = data;
    g_autoptr(GError) error = NULL;

    g_autofree char *path = g_build_filename(tree->base_dir, "disk", NULL);
    make_image(MAKER_IMGWRITER, c->kind, path, "base.raw", "raw");

    g_autofree char *contents = NULL;
    gsize len = 0;
    g_file_get_contents(path, &contents, &len, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(c->offset + c->width, <=, len);
    patch((guint8 *)contents + c->offset, c->kind, c->width, c->value);
    if (c->truncate != 0)
        len = c->truncate;
    g_file_set_contents(path, contents, (gssize)len, &error);
    g_assert_no_error(error);

    assert_probe_fails(path, c->code, c->message);
}

/* Hand-made damaged files kept in tests/data/probe. */
typedef struct {
    const char *file;
    gint code;
    const char *message;
} DataCase;

static const DataCase data_cases[] = {
    {"truncated.qcow2", IC_ERROR_FORMAT, "truncated"},
    {"name-past-eof.qcow2", IC_ERROR_FORMAT, "past"},
    {"ext-past-end.qcow2", IC_ERROR_FORMAT, "extension"},
    {"name-past-eof.qed", IC_ERROR_FORMAT, "past"},
};

static void test_data_file(void *data)
{
    const DataCase *c = data;
    g_autofree char *path = ic_test_data_path("probe", c->file);
    assert_probe_fails(path, c->code, c->message);
}

/* A qcow2 overlay on a block device (LVM, iSCSI): read like a file. Needs
 * root and a free loop device; skipped otherwise. */
static void test_block_device(IcTestTree *tree, gconstpointer data)
{
    g_autofree char *file = g_build_filename(tree->root, "lv.img", NULL);
    make_image(MAKER_IMGWRITER, KIND_QCOW2_V3, file, "/srv/_base/golden", "raw");
    g_autofree char *cmd = g_strdup_printf("losetup --find --show --read-only '%s'", file);
    g_autofree char *out = NULL;
    int status = -1;
    if (!g_spawn_command_line_sync(cmd, &out, NULL, &status, NULL) || status != 0) {
        g_test_skip("no loop device here (needs root and losetup)");
        return;
    }
    g_strstrip(out);
    g_autoptr(GError) error = NULL;
    g_autoptr(IcImageInfo) info = NULL;
    gboolean ok = ic_probe_image(out, &info, &error);
    g_autofree char *detach = g_strdup_printf("losetup --detach '%s'", out);
    g_spawn_command_line_sync(detach, NULL, NULL, NULL, NULL);
    g_assert_no_error(error);
    g_assert_true(ok);
    g_assert_cmpint(info->format, ==, IC_IMAGE_FORMAT_QCOW2);
    g_assert_cmpstr(info->backing_path, ==, "/srv/_base/golden");
}

/* A valid header whose extensions run past the first page the probe reads. */
static void test_extension_beyond_first_page(void)
{
    g_autofree char *path = ic_test_data_path("probe", "ext-beyond-first-page.qcow2");
    g_autoptr(IcImageInfo) info = probe_ok(path);
    g_assert_cmpint(info->format, ==, IC_IMAGE_FORMAT_QCOW2);
    g_assert_null(info->backing_path);
}

/* ---- bounded reads and odd files ---- */

static void test_name_length_limit(IcTestTree *tree, gconstpointer data)
{
    g_autofree char *longest = g_strnfill(IC_PROBE_MAX_BACKING_NAME, 'n');
    g_autofree char *path = g_build_filename(tree->root, "disk", NULL);
    make_image(MAKER_IMGWRITER, KIND_QCOW2_V3, path, longest, "raw");

    g_autoptr(IcImageInfo) info = probe_ok(path);
    g_assert_cmpstr(info->backing_name, ==, longest);

    g_autofree char *too_long = g_strnfill(IC_PROBE_MAX_BACKING_NAME + 1, 'n');
    make_image(MAKER_IMGWRITER, KIND_QCOW2_V3, path, too_long, "raw");
    assert_probe_fails(path, IC_ERROR_FORMAT, "longer");
}

/* The probe cache keeps one answer per file and format: a base file one
 * overlay declares raw (never opened) and another leaves to be probed (a
 * qcow2 with its own backing file) gives each overlay its own answer, in
 * either order, from one cache. */
static void test_cache_keyed_by_format(IcTestTree *tree, gconstpointer data)
{
    (void)data;
    g_autofree char *c = g_build_filename(tree->root, "c", NULL);
    g_autofree char *b = g_build_filename(tree->root, "b", NULL);
    g_autofree char *raw_overlay = g_build_filename(tree->root, "o-raw", NULL);
    g_autofree char *probed_overlay = g_build_filename(tree->root, "o-probed", NULL);
    make_image(MAKER_IMGWRITER, KIND_RAW, c, NULL, NULL);
    make_image(MAKER_IMGWRITER, KIND_QCOW2_V3, b, "c", "raw");
    make_image(MAKER_IMGWRITER, KIND_QCOW2_V3, raw_overlay, "b", "raw");
    make_image(MAKER_IMGWRITER, KIND_QCOW2_V3, probed_overlay, "b", NULL);

    g_autoptr(IcProbeCache) cache = ic_probe_cache_new();
    const char *order[] = {raw_overlay, probed_overlay, raw_overlay, probed_overlay};
    for (gsize i = 0; i < G_N_ELEMENTS(order); i++) {
        gboolean raw = order[i] == raw_overlay;
        g_autoptr(GError) error = NULL;
        g_autoptr(GPtrArray) files = NULL;
        g_assert_true(
            ic_probe_disk_files(AT_FDCWD, order[i], order[i], NULL, cache, &files, &error));
        g_assert_no_error(error);
        g_assert_cmpuint(files->len, ==, raw ? 2 : 3);
        const IcDiskFile *backing = g_ptr_array_index(files, 1);
        g_assert_cmpstr(backing->path, ==, b);
        g_assert_cmpstr(backing->format, ==, raw ? "raw" : "qcow2");
        if (!raw) {
            const IcDiskFile *last = g_ptr_array_index(files, 2);
            g_assert_cmpstr(last->path, ==, c);
            g_assert_true(last->present);
        }
    }
}

/* A 2 MiB-cluster image whose name sits at 1 MiB: beyond the first read, within the
 * first cluster, so the probe must read on to it. */
static void test_name_beyond_first_read(IcTestTree *tree, gconstpointer data)
{
    gsize len = MIB + 64;
    g_autofree guint8 *img = g_malloc0(len);
    memcpy(img, "QFI\xfb", 4);
    patch(img + 4, KIND_QCOW2_V2, 4, 2);
    patch(img + 8, KIND_QCOW2_V2, 8, MIB);
    patch(img + 16, KIND_QCOW2_V2, 4, 4);
    patch(img + 20, KIND_QCOW2_V2, 4, 21);
    memcpy(img + MIB, "far!", 4);
    g_autofree char *path = ic_test_write_file(tree->root, "disk", (const char *)img, (gssize)len);

    g_autoptr(IcImageInfo) info = probe_ok(path);
    g_assert_cmpstr(info->backing_name, ==, "far!");

    /* The same header cut to the first read's size: the name lies past EOF. */
    g_assert_cmpint(truncate(path, 64 * 1024), ==, 0);
    assert_probe_fails(path, IC_ERROR_FORMAT, "past");
}

/* Zero-length unknown extensions, one after another: the walk is bounded by count. */
static void test_too_many_extensions(IcTestTree *tree, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *path = g_build_filename(tree->root, "disk", NULL);
    make_image(MAKER_IMGWRITER, KIND_QCOW2_V3, path, NULL, NULL);

    g_autofree char *contents = NULL;
    gsize len = 0;
    g_file_get_contents(path, &contents, &len, &error);
    g_assert_no_error(error);
    for (guint i = 0; i < 100; i++)
        patch((guint8 *)contents + 104 + 8 * i, KIND_QCOW2_V3, 4, 0x12345678);
    g_file_set_contents(path, contents, (gssize)len, &error);
    g_assert_no_error(error);

    assert_probe_fails(path, IC_ERROR_FORMAT, "extensions");
}

static void test_fifo(IcTestTree *tree, gconstpointer data)
{
    g_autofree char *fifo = g_build_filename(tree->root, "disk", NULL);
    if (g_test_subprocess()) {
        assert_probe_fails(g_getenv("IC_TEST_FIFO"), IC_ERROR_UNSAFE, "regular");
        return;
    }
    g_assert_cmpint(mkfifo(fifo, 0600), ==, 0);
    g_setenv("IC_TEST_FIFO", fifo, TRUE);
    /* A blocking open would hang the child; the timeout turns that into a failure. */
    g_test_trap_subprocess(NULL, 10 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
    g_test_trap_assert_passed();
}

static void test_directory(IcTestTree *tree, gconstpointer data)
{
    assert_probe_fails(tree->base_dir, IC_ERROR_UNSAFE, "regular");
}

static void test_parse_short_raw(void)
{
    static const guint8 bytes[] = {'Q', 'F', 'I'};
    g_autoptr(GError) error = NULL;

    for (gsize len = 0; len <= sizeof(bytes); len++) {
        g_autoptr(IcImageInfo) info = NULL;
        g_assert_true(ic_probe_parse(bytes, len, "/x", &info, &error));
        g_assert_no_error(error);
        g_assert_cmpint(info->format, ==, IC_IMAGE_FORMAT_RAW);
        g_assert_null(info->backing_name);
        g_assert_null(info->backing_path);
        g_assert_null(info->backing_format);
    }
}

/* Every prefix of a valid image either parses or fails with IC_ERROR_FORMAT. */
static void test_parse_every_prefix(IcTestTree *tree, gconstpointer data)
{
    static const ImageKind kinds[] = {KIND_QCOW2_V2, KIND_QCOW2_V3, KIND_QED};

    for (guint k = 0; k < G_N_ELEMENTS(kinds); k++) {
        g_autoptr(GError) error = NULL;
        g_autofree char *path = g_build_filename(tree->root, "disk", NULL);
        make_image(MAKER_IMGWRITER, kinds[k], path, "../_base/base.raw", "raw");
        g_autofree char *contents = NULL;
        g_file_get_contents(path, &contents, NULL, &error);
        g_assert_no_error(error);

        for (gsize len = 0; len < 200; len++) {
            g_autoptr(IcImageInfo) info = NULL;
            g_autoptr(GError) parse_error = NULL;
            /* A copy of exactly @len bytes so a sanitizer sees any overread. */
            g_autofree guint8 *prefix = g_memdup2(contents, len);
            if (ic_probe_parse(prefix, len, tree->root, &info, &parse_error)) {
                g_assert_no_error(parse_error);
                g_assert_nonnull(info);
            } else {
                g_assert_error(parse_error, IC_ERROR, IC_ERROR_FORMAT);
                g_assert_null(info);
            }
        }
    }
}

static void test_format_to_string(void)
{
    g_assert_cmpstr(ic_image_format_to_string(IC_IMAGE_FORMAT_RAW), ==, "raw");
    g_assert_cmpstr(ic_image_format_to_string(IC_IMAGE_FORMAT_QCOW2), ==, "qcow2");
    g_assert_cmpstr(ic_image_format_to_string(IC_IMAGE_FORMAT_QED), ==, "qed");
    ic_image_info_free(NULL);
}

#define ADD_TREE_TEST(path, data, func)                                                            \
    g_test_add(path, IcTestTree, data, ic_test_tree_setup, func, ic_test_tree_teardown)

#define ADD_TABLE(prefix, table, func)                                                             \
    for (guint i = 0; i < G_N_ELEMENTS(table); i++) {                                              \
        g_autofree char *test_path = g_strconcat(prefix, table[i].name, NULL);                     \
        ADD_TREE_TEST(test_path, &table[i], func);                                                 \
    }

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

    ADD_TABLE("/imagecache/probe/format/", format_cases, test_format);
    ADD_TABLE("/imagecache/probe/qemu-img-accepts/", accept_cases, test_qemu_img_accepts);
    ADD_TABLE("/imagecache/probe/resolve/", resolve_cases, test_resolve);
    ADD_TABLE("/imagecache/probe/damaged/", damage_cases, test_damaged);
    for (guint i = 0; i < G_N_ELEMENTS(data_cases); i++) {
        g_autofree char *test_path =
            g_strconcat("/imagecache/probe/damaged-file/", data_cases[i].file, NULL);
        g_test_add_data_func(test_path, &data_cases[i], (GTestDataFunc)test_data_file);
    }

    ADD_TREE_TEST("/imagecache/probe/resolve-relative-image", NULL, test_resolve_relative_image);
    ADD_TREE_TEST("/imagecache/probe/chain/two-level", NULL, test_chain_two_level);
    ADD_TREE_TEST("/imagecache/probe/chain/three-level-qemu-img", NULL,
                  test_chain_three_level_qemu_img);
    ADD_TREE_TEST("/imagecache/probe/chain/no-backing", NULL, test_chain_no_backing);
    ADD_TREE_TEST("/imagecache/probe/chain/missing-end", NULL, test_chain_missing_end);
    ADD_TREE_TEST("/imagecache/probe/chain/missing-top", NULL, test_chain_missing_top);
    ADD_TREE_TEST("/imagecache/probe/chain/protocol", NULL, test_chain_protocol);
    ADD_TREE_TEST("/imagecache/probe/chain/file-prefix", NULL, test_chain_file_prefix);
    ADD_TREE_TEST("/imagecache/probe/chain/self-loop", NULL, test_chain_self_loop);
    ADD_TREE_TEST("/imagecache/probe/chain/two-cycle", NULL, test_chain_two_cycle);
    ADD_TREE_TEST("/imagecache/probe/chain/at-limit", NULL, test_chain_at_limit);
    ADD_TREE_TEST("/imagecache/probe/chain/too-deep", NULL, test_chain_too_deep);
    ADD_TREE_TEST("/imagecache/probe/chain/damaged-middle", NULL, test_chain_damaged_middle);
    ADD_TREE_TEST("/imagecache/probe/name-length-limit", NULL, test_name_length_limit);
    ADD_TREE_TEST("/imagecache/probe/name-beyond-first-read", NULL, test_name_beyond_first_read);
    ADD_TREE_TEST("/imagecache/probe/cache-keyed-by-format", NULL, test_cache_keyed_by_format);
    ADD_TREE_TEST("/imagecache/probe/too-many-extensions", NULL, test_too_many_extensions);
    ADD_TREE_TEST("/imagecache/probe/fifo", NULL, test_fifo);
    ADD_TREE_TEST("/imagecache/probe/directory", NULL, test_directory);
    ADD_TREE_TEST("/imagecache/probe/parse-every-prefix", NULL, test_parse_every_prefix);
    g_test_add_func("/imagecache/probe/parse-short-raw", test_parse_short_raw);
    g_test_add_func("/imagecache/probe/format-to-string", test_format_to_string);
    g_test_add_func("/imagecache/probe/extension-beyond-first-page",
                    test_extension_beyond_first_page);
    g_test_add("/imagecache/probe/block-device", IcTestTree, NULL, ic_test_tree_setup,
               test_block_device, ic_test_tree_teardown);

    return g_test_run();
}
