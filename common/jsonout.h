/* jsonout.h — small helpers for the JSON that report, ledger and CLI print (json-glib).
 * One way to write a member, one way to finish a document. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* Each sets member @name of the object being built; a NULL string becomes null. */
void ic_json_member_string(JsonBuilder *b, const char *name, const char *value);
void ic_json_member_int(JsonBuilder *b, const char *name, gint64 value);
void ic_json_member_bool(JsonBuilder *b, const char *name, gboolean value);
void ic_json_member_double(JsonBuilder *b, const char *name, double value);
void ic_json_member_strings(JsonBuilder *b, const char *name, const GPtrArray *strings);

/* The built document, pretty-printed; caller frees. */
char *ic_json_to_data(JsonBuilder *b);

G_END_DECLS
