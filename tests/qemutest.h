/* qemutest.h — asking QEMU itself (qemu-img) in tests: layouts made by shell
 * lines with real `qemu-img create`, and QEMU's own backing chain to compare with. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* TRUE when qemu-img is installed; otherwise marks the test skipped. */
gboolean ic_qemu_have(void);

/* Runs @script with `sh -ec` in @cwd; aborts the test when it fails. */
void ic_qemu_sh(const char *cwd, const char *script);

/* QEMU's answer: `qemu-img info --backing-chain --output=json -U [-f @format] @path`
 * run in @cwd, as a JSON array (one object per chain member, the disk first);
 * NULL when qemu-img fails (its stderr in *ret_err when given). */
JsonArray *ic_qemu_chain(const char *cwd, const char *path, const char *format, char **ret_err);

/* A member's "filename" / "format" / external data file name (NULL: none). */
const char *ic_qemu_member_filename(JsonArray *chain, guint i);
const char *ic_qemu_member_format(JsonArray *chain, guint i);
const char *ic_qemu_member_data_file(JsonArray *chain, guint i);

/* TRUE when @a and @b (relative ones taken against @cwd) name the same file
 * now, by the kernel's resolution (device and inode). */
gboolean ic_qemu_same_file(const char *cwd, const char *a, const char *b);

G_END_DECLS
