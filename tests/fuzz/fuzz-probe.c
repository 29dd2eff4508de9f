/* fuzz-probe.c — libFuzzer target for the image-header probe (qcow2 v2/v3, QED, raw).
 * Parses the input as the first bytes of an image, twice (absolute and relative image
 * dir), and once more through ic_probe_image on an in-memory file, and checks that all
 * three agree and that what they return is well formed; then as each declared format
 * (raw never parsed; qcow2/qed the same as probed, or refused), with the qcow2
 * external data file extension checked like the backing name. */
#include "fuzz.h"

#include "error.h"
#include "probe.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define FUZZ_IMAGE_DIR "/var/lib/nova/instances/_base"
/* probe.c's PROBE_READ_SIZE: a file no longer than the first read is parsed whole.
 * (A longer one without a backing name is parsed from that prefix only.) */
#define FUZZ_FIRST_READ 4096

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ic_fuzz_init();
    return 0;
}

static void check_info(const IcImageInfo *info, gboolean absolute_dir)
{
    IC_FUZZ_CHECK(info != NULL);
    switch (info->format) {
    case IC_IMAGE_FORMAT_RAW:
        IC_FUZZ_CHECK(info->version == 0 && info->virtual_size == 0);
        IC_FUZZ_CHECK(info->backing_name == NULL);
        break;
    case IC_IMAGE_FORMAT_QCOW2:
        IC_FUZZ_CHECK(info->version == 2 || info->version == 3);
        break;
    case IC_IMAGE_FORMAT_QED:
        IC_FUZZ_CHECK(info->version == 0);
        break;
    default:
        IC_FUZZ_CHECK(!"unknown format");
    }
    /* The external data file: qcow2 only, named, within PATH_MAX; its path is
     * NULL only for a protocol or a relative "file:" name. */
    if (info->data_file_name == NULL) {
        IC_FUZZ_CHECK(info->data_file_path == NULL && !info->data_file_raw);
    } else {
        IC_FUZZ_CHECK(info->format == IC_IMAGE_FORMAT_QCOW2);
        gsize data_len = strlen(info->data_file_name);
        IC_FUZZ_CHECK(data_len > 0 && data_len <= 4095);
        if (info->data_file_path != NULL && absolute_dir)
            IC_FUZZ_CHECK(g_path_is_absolute(info->data_file_path));
        if (info->data_file_path == NULL)
            IC_FUZZ_CHECK(strchr(info->data_file_name, ':') != NULL);
    }
    if (info->backing_name == NULL) {
        IC_FUZZ_CHECK(info->backing_path == NULL && info->backing_format == NULL);
        return;
    }
    /* No empty names (QEMU: no backing file), and within QED's larger limit. */
    gsize name_len = strlen(info->backing_name);
    IC_FUZZ_CHECK(name_len > 0 && name_len <= 4095);
    if (info->format == IC_IMAGE_FORMAT_QCOW2)
        IC_FUZZ_CHECK(name_len <= IC_PROBE_MAX_BACKING_NAME);
    /* A protocol name ("nbd:…") has no path; a file name against an absolute
     * image dir an absolute one (appended, not canonicalised: the kernel resolves it). */
    if (info->backing_path != NULL && absolute_dir)
        IC_FUZZ_CHECK(g_path_is_absolute(info->backing_path));
    if (info->backing_path == NULL)
        IC_FUZZ_CHECK(strchr(info->backing_name, ':') != NULL);
    if (info->backing_format != NULL)
        IC_FUZZ_CHECK(strlen(info->backing_format) <= 15);
}

static void check_same(const IcImageInfo *a, const IcImageInfo *b, gboolean same_dir)
{
    IC_FUZZ_CHECK(a->format == b->format && a->version == b->version);
    IC_FUZZ_CHECK(a->virtual_size == b->virtual_size);
    IC_FUZZ_CHECK(g_strcmp0(a->backing_name, b->backing_name) == 0);
    IC_FUZZ_CHECK(g_strcmp0(a->backing_format, b->backing_format) == 0);
    IC_FUZZ_CHECK((a->backing_path == NULL) == (b->backing_path == NULL));
    IC_FUZZ_CHECK(g_strcmp0(a->data_file_name, b->data_file_name) == 0);
    IC_FUZZ_CHECK(a->data_file_raw == b->data_file_raw);
    IC_FUZZ_CHECK((a->data_file_path == NULL) == (b->data_file_path == NULL));
    if (same_dir) {
        IC_FUZZ_CHECK(g_strcmp0(a->backing_path, b->backing_path) == 0);
        IC_FUZZ_CHECK(g_strcmp0(a->data_file_path, b->data_file_path) == 0);
    }
}

/* ic_probe_image on a memfd holding the input: the same bytes through the file
 * path (bounded reads, the extra read for a name past the first 64 KiB). */
static void probe_as_file(const uint8_t *data, size_t size, const IcImageInfo *parsed,
                          gboolean parse_ok)
{
    int fd = memfd_create("fuzz-probe", MFD_CLOEXEC);
    IC_FUZZ_CHECK(fd >= 0);
    for (size_t done = 0; done < size;) {
        ssize_t n = write(fd, data + done, size - done);
        IC_FUZZ_CHECK(n > 0);
        done += (size_t)n;
    }
    g_autofree char *path = g_strdup_printf("/proc/self/fd/%d", fd);
    g_autoptr(IcImageInfo) info = NULL;
    g_autoptr(GError) error = NULL;
    gboolean ok = ic_probe_image(path, &info, &error);
    close(fd);

    IC_FUZZ_CHECK(ok == (error == NULL));
    /* Up to the first read, the file path sees exactly the input. */
    if (size <= FUZZ_FIRST_READ)
        IC_FUZZ_CHECK(ok == parse_ok);
    if (!ok)
        return;
    check_info(info, FALSE);
    if (size <= FUZZ_FIRST_READ)
        check_same(parsed, info, FALSE);
}

/* Declared formats: raw is never parsed (whatever the bytes hold); qcow2 and
 * qed give what probing gave when the bytes are that format, else an error. */
static void check_declared(const uint8_t *data, size_t size, const IcImageInfo *probed,
                           gboolean probed_ok)
{
    static const char *const formats[] = {"raw", "qcow2", "qed", "vmdk"};
    for (guint i = 0; i < G_N_ELEMENTS(formats); i++) {
        g_autoptr(IcImageInfo) info = NULL;
        g_autoptr(GError) error = NULL;
        gboolean ok = ic_probe_parse_as(data, size, FUZZ_IMAGE_DIR, formats[i], &info, &error);
        IC_FUZZ_CHECK(ok == (error == NULL) && ok == (info != NULL));
        if (i == 0) {
            IC_FUZZ_CHECK(ok && info->format == IC_IMAGE_FORMAT_RAW && info->backing_name == NULL &&
                          info->data_file_name == NULL);
            continue;
        }
        if (i == 3) {
            IC_FUZZ_CHECK(!ok); /* not a format imagecache reads */
            continue;
        }
        IcImageFormat want = i == 1 ? IC_IMAGE_FORMAT_QCOW2 : IC_IMAGE_FORMAT_QED;
        if (!ok)
            continue;
        check_info(info, TRUE);
        IC_FUZZ_CHECK(info->format == want);
        /* The bytes are that format, so probing read the same header. */
        IC_FUZZ_CHECK(probed_ok && probed->format == want);
        check_same(probed, info, TRUE);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autoptr(IcImageInfo) info = NULL;
    g_autoptr(GError) error = NULL;
    gboolean ok = ic_probe_parse(data, size, FUZZ_IMAGE_DIR, &info, &error);
    IC_FUZZ_CHECK(ok == (error == NULL) && ok == (info != NULL));
    if (ok) {
        check_info(info, TRUE);
    } else {
        IC_FUZZ_CHECK(error->domain == IC_ERROR && error->message != NULL);
    }

    /* A relative image dir resolves against the current directory: still absolute. */
    g_autoptr(IcImageInfo) relative = NULL;
    g_autoptr(GError) relative_error = NULL;
    gboolean relative_ok =
        ic_probe_parse(data, size, "instances/_base", &relative, &relative_error);
    IC_FUZZ_CHECK(relative_ok == ok);
    if (ok) {
        check_info(relative, FALSE);
        check_same(info, relative, FALSE);
    }

    check_declared(data, size, info, ok);
    probe_as_file(data, size, info, ok);
    return 0;
}
