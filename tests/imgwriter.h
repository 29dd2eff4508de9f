/* imgwriter.h — writes small, valid qcow2 (v2, v3) and QED images with hand-built
 * headers, so tests and benchmarks can make image trees without qemu-img. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Writes a qcow2 image of @virtual_size bytes at @path. @version is 2 or 3.
 * @backing_name (NULL: none) is stored verbatim; @backing_format (NULL: none)
 * goes into the backing-format header extension. The file is one QEMU can open
 * (`qemu-img info` accepts it). */
gboolean ic_test_write_qcow2(const char *path, guint version, guint64 virtual_size,
                             const char *backing_name, const char *backing_format, GError **error);

/* Writes a QED image; @backing_format "raw" sets QED_F_BACKING_FORMAT_NO_PROBE. */
gboolean ic_test_write_qed(const char *path, guint64 virtual_size, const char *backing_name,
                           const char *backing_format, GError **error);

G_END_DECLS
