/* jsonout.h — the streaming JSON writer that report, ledger and CLI print with.
 * No document tree: each value goes out to the FILE* as it is written, in the
 * layout json-glib's pretty generator used (2-space indent, `"name" : value`),
 * so the output is byte-for-byte what it was. One way to write a member. */
#pragma once

#include <glib.h>
#include <stdio.h>

#include "error.h"

G_BEGIN_DECLS

typedef struct IcJsonWriter IcJsonWriter;

/* A writer to @out (not closed by the writer). */
IcJsonWriter *ic_json_writer_new(FILE *out);

/* Frees the writer; FALSE (with @error set) when a write to the FILE* failed or
 * the containers were left unbalanced. Does not flush @out. */
gboolean ic_json_writer_finish(IcJsonWriter *w, GError **error);
void ic_json_writer_free(IcJsonWriter *w);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IcJsonWriter, ic_json_writer_free)

/* Containers. Inside an object, name the member first (ic_json_member_name) or
 * use the _member_ helpers; inside an array, the values follow one another. */
void ic_json_begin_object(IcJsonWriter *w);
void ic_json_end_object(IcJsonWriter *w);
void ic_json_begin_array(IcJsonWriter *w);
void ic_json_end_array(IcJsonWriter *w);
void ic_json_member_name(IcJsonWriter *w, const char *name);

/* Array elements (or a member's value after ic_json_member_name). A NULL string
 * becomes null. */
void ic_json_value_string(IcJsonWriter *w, const char *value);
void ic_json_value_int(IcJsonWriter *w, gint64 value);
void ic_json_value_bool(IcJsonWriter *w, gboolean value);
void ic_json_value_double(IcJsonWriter *w, double value);

/* Each writes member @name of the current object; a NULL string becomes null. */
void ic_json_member_string(IcJsonWriter *w, const char *name, const char *value);
void ic_json_member_int(IcJsonWriter *w, const char *name, gint64 value);
void ic_json_member_bool(IcJsonWriter *w, const char *name, gboolean value);
void ic_json_member_double(IcJsonWriter *w, const char *name, double value);
void ic_json_member_strings(IcJsonWriter *w, const char *name, const GPtrArray *strings);

/* Writes @n elements of the current array, element @i by @write(@w, @data, @i),
 * each call one element: the same bytes as calling @write for each in turn.
 * With @threads > 1, up to that many threads (this one included) format
 * contiguous chunks of them into buffers, written in order: @write must then
 * read only what no thread writes meanwhile, and write only to its writer. */
typedef void (*IcJsonElementFunc)(IcJsonWriter *w, gconstpointer data, guint i);
void ic_json_write_elements(IcJsonWriter *w, guint n, IcJsonElementFunc write, gconstpointer data,
                            guint threads);

/* For callers that want the document as a string (tests, explain): runs @write
 * on a writer over a memory stream and returns what it wrote; caller frees. */
typedef void (*IcJsonWriteFunc)(IcJsonWriter *w, gconstpointer data);
char *ic_json_to_string(IcJsonWriteFunc write, gconstpointer data);

G_END_DECLS
