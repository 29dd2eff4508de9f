#include "report.h"

#include <string.h>

#include "jsonout.h"
#include "usage.h"

const char *ic_action_to_string(IcAction action)
{
    switch (action) {
    case IC_ACTION_NONE:
        return "none";
    case IC_ACTION_TOUCHED:
        return "touched";
    case IC_ACTION_REMOVED:
        return "removed";
    case IC_ACTION_WOULD_REMOVE:
        return "would_remove";
    case IC_ACTION_REMOVE_FAILED:
        return "remove_failed";
    case IC_ACTION_QUARANTINED:
        return "quarantined";
    case IC_ACTION_WOULD_QUARANTINE:
        return "would_quarantine";
    }
    return "unknown";
}

static void row_free(IcImageRow *row)
{
    g_free(row->name);
    g_free(row->fingerprint);
    g_free(row->image_id);
    g_ptr_array_unref(row->users);
    ic_checksum_result_clear(&row->checksum);
    g_free(row->error);
    g_free(row);
}

static void event_free(IcEvent *event)
{
    g_free(event->file);
    g_free(event->message);
    g_free(event);
}

IcReport *ic_report_new(const char *base_dir, const char *host, gint64 now)
{
    IcReport *report = g_new0(IcReport, 1);
    report->base_dir = g_strdup(base_dir);
    report->host = g_strdup(host);
    report->now = now;
    report->rows = g_ptr_array_new_with_free_func((GDestroyNotify)row_free);
    report->skipped = g_ptr_array_new();
    report->events = g_ptr_array_new_with_free_func((GDestroyNotify)event_free);
    report->notes = g_ptr_array_new_with_free_func(g_free);
    report->note_codes = g_array_new(FALSE, FALSE, sizeof(IcNoteCode));
    return report;
}

void ic_report_free(IcReport *report)
{
    if (report == NULL)
        return;
    g_free(report->base_dir);
    g_free(report->host);
    g_ptr_array_unref(report->rows);
    g_ptr_array_unref(report->skipped);
    g_ptr_array_unref(report->events);
    g_ptr_array_unref(report->notes);
    g_array_unref(report->note_codes);
    g_free(report->removal_deferred);
    g_free(report);
}

IcImageRow *ic_image_row_new(const char *name)
{
    IcImageRow *row = g_new0(IcImageRow, 1);
    row->name = g_strdup(name);
    /* NULL-terminated, so the list reads as a strv too (g_strjoinv). */
    row->users = g_ptr_array_new_null_terminated(0, g_free, TRUE);
    return row;
}

IcImageRow *ic_report_add_row(IcReport *report, const char *name)
{
    IcImageRow *row = ic_image_row_new(name);
    g_ptr_array_add(report->rows, row);
    return row;
}

char *ic_image_row_users_text(const IcImageRow *row)
{
    GString *text = g_string_new(NULL);
    for (guint i = 0; i < row->users->len; i++) {
        if (i > 0)
            g_string_append(text, ", ");
        g_string_append(text, g_ptr_array_index(row->users, i));
    }
    return g_string_free(text, FALSE);
}

const IcImageRow *ic_report_lookup(const IcReport *report, const char *name)
{
    for (guint i = 0; i < report->rows->len; i++) {
        const IcImageRow *row = g_ptr_array_index(report->rows, i);
        if (g_str_equal(row->name, name))
            return row;
    }
    return NULL;
}

void ic_report_add_event(IcReport *report, IcEventLevel level, const char *file, const char *format,
                         ...)
{
    IcEvent *event = g_new0(IcEvent, 1);
    va_list args;
    va_start(args, format);
    event->level = level;
    event->file = g_strdup(file);
    event->message = g_strdup_vprintf(format, args);
    va_end(args);
    g_ptr_array_add(report->events, event);
}

void ic_report_add_note(IcReport *report, IcNoteCode code, const char *text)
{
    g_ptr_array_add(report->notes, g_strdup(text));
    g_array_append_val(report->note_codes, code);
}

static IcNoteCode note_code(const IcReport *report, guint i)
{
    return g_array_index(report->note_codes, IcNoteCode, i);
}

gboolean ic_report_has_problems(const IcReport *report)
{
    return report->totals.corrupt > 0 || report->totals.absent > 0;
}

static int compare_rows(gconstpointer a, gconstpointer b)
{
    const IcImageRow *ra = *(IcImageRow *const *)a;
    const IcImageRow *rb = *(IcImageRow *const *)b;
    return strcmp(ra->name, rb->name);
}

static gint compare_rows_data(gconstpointer a, gconstpointer b, gpointer data)
{
    return compare_rows(a, b);
}

/* Sorts @rows by name. The base dir's rows arrive sorted (in the scan's
 * order), the quarantined and absent ones after them: only the unsorted tail
 * is sorted, then merged in from the back, so 100,000 rows cost about one
 * comparison each instead of a merge sort's 17 (28-37 ms at 10x, issue 15).
 * Stable, as g_ptr_array_sort: of two rows with the same name the first
 * stays first. */
static void sort_rows(GPtrArray *rows)
{
    gpointer *pdata = rows->pdata;
    guint sorted = 1;
    while (sorted < rows->len && compare_rows(&pdata[sorted - 1], &pdata[sorted]) <= 0)
        sorted++;
    if (sorted >= rows->len)
        return;
    guint n_tail = rows->len - sorted;
    g_autofree gpointer *tail = g_memdup2(&pdata[sorted], n_tail * sizeof(gpointer));
    g_qsort_with_data(tail, (gint)n_tail, sizeof(gpointer), compare_rows_data, NULL);
    /* From the back: a row of the sorted part goes after the tail's rows
     * that sort before it, and before those with its name. */
    guint i = sorted, k = rows->len;
    for (guint j = n_tail; j > 0;) {
        if (i > 0 && compare_rows(&pdata[i - 1], &tail[j - 1]) > 0)
            pdata[--k] = pdata[--i];
        else
            pdata[--k] = tail[--j];
    }
}

/* ---- totals ---- */

#define VERDICT(v)   (1u << (v))
#define ACTION(a)    (1u << (a))
#define COUNT(field) #field, IC_TOTAL_COUNT, offsetof(IcTotals, field)
#define BYTES(field) #field, IC_TOTAL_BYTES, offsetof(IcTotals, field)

/* One row per IcTotals field, in the order the outputs list them. */
static const IcTotalInfo totals_info[] = {
    {COUNT(images), .present = TRUE, .text = IC_TOTAL_TEXT_HEAD, .words = "base files",
     .metric = "images", .perfdata = TRUE},
    {BYTES(bytes_total), .present = TRUE, .text = IC_TOTAL_TEXT_PAREN, .metric = "total",
     .perfdata = TRUE},
    {COUNT(active), .verdicts = VERDICT(IC_VERDICT_ACTIVE), .text = IC_TOTAL_TEXT_ITEM,
     .words = "active", .metric = "active", .perfdata = TRUE},
    {BYTES(bytes_active), .verdicts = VERDICT(IC_VERDICT_ACTIVE), .metric = "active"},
    {COUNT(removable), .verdicts = VERDICT(IC_VERDICT_REMOVABLE), .text = IC_TOTAL_TEXT_ITEM,
     .words = "removable", .metric = "removable", .perfdata = TRUE},
    {BYTES(bytes_removable), .verdicts = VERDICT(IC_VERDICT_REMOVABLE), .text = IC_TOTAL_TEXT_PAREN,
     .metric = "removable", .perfdata = TRUE},
    {COUNT(too_young), .verdicts = VERDICT(IC_VERDICT_TOO_YOUNG), .text = IC_TOTAL_TEXT_ITEM,
     .words = "too young", .metric = "too_young"},
    {COUNT(corrupt), .verdicts = VERDICT(IC_VERDICT_CORRUPT), .text = IC_TOTAL_TEXT_ITEM,
     .words = "corrupt", .metric = "corrupt", .perfdata = TRUE},
    {COUNT(kept), .verdicts = VERDICT(IC_VERDICT_KEPT), .text = IC_TOTAL_TEXT_ITEM, .words = "kept",
     .metric = "kept", .perfdata = TRUE},
    {COUNT(pinned), .pinned = TRUE, .text = IC_TOTAL_TEXT_PAREN, .words = "pinned",
     .metric = "pinned"},
    {COUNT(absent), .verdicts = VERDICT(IC_VERDICT_ABSENT), .text = IC_TOTAL_TEXT_ITEM,
     .words = "in use but absent", .metric = "absent", .perfdata = TRUE},
    {COUNT(quarantined), .verdicts = VERDICT(IC_VERDICT_QUARANTINED),
     .actions = ACTION(IC_ACTION_QUARANTINED), .text = IC_TOTAL_TEXT_ITEM, .words = "quarantined",
     .metric = "quarantined"},
    {BYTES(bytes_quarantined), .verdicts = VERDICT(IC_VERDICT_QUARANTINED),
     .actions = ACTION(IC_ACTION_QUARANTINED), .metric = "quarantined"},
    {COUNT(removed), .actions = ACTION(IC_ACTION_REMOVED), .text = IC_TOTAL_TEXT_LINE,
     .words = "removed", .metric = "removed"},
    {BYTES(bytes_reclaimed), .actions = ACTION(IC_ACTION_REMOVED), .text = IC_TOTAL_TEXT_PAREN,
     .words = "reclaimed", .metric = "reclaimed"},
    {COUNT(remove_failed), .actions = ACTION(IC_ACTION_REMOVE_FAILED), .text = IC_TOTAL_TEXT_ITEM,
     .words = "removals failed"},
};
/* A field without a row (or a row too many) fails here. */
G_STATIC_ASSERT(sizeof(IcTotals) == G_N_ELEMENTS(totals_info) * sizeof(guint64));

const IcTotalInfo *ic_totals_info(gsize *ret_n)
{
    *ret_n = G_N_ELEMENTS(totals_info);
    return totals_info;
}

static guint64 *total_field(IcTotals *totals, const IcTotalInfo *info)
{
    return (guint64 *)(void *)((char *)totals + info->offset);
}

guint64 ic_totals_value(const IcTotals *totals, const IcTotalInfo *info)
{
    return *total_field((IcTotals *)totals, info);
}

static gboolean total_counts_row(const IcTotalInfo *info, const IcImageRow *row)
{
    return (info->present && row->present) || (info->pinned && row->pinned_by != NULL) ||
           (info->verdicts & VERDICT(row->decision.verdict)) != 0 ||
           (info->actions & ACTION(row->action)) != 0;
}

/* Totals are derived from the rows, never kept alongside them. */
void ic_report_finish(IcReport *report)
{
    memset(&report->totals, 0, sizeof(report->totals));
    sort_rows(report->rows);
    for (guint i = 0; i < report->rows->len; i++) {
        const IcImageRow *row = g_ptr_array_index(report->rows, i);
        guint64 size = row->present ? (guint64)MAX(row->size, 0) : 0;
        for (gsize j = 0; j < G_N_ELEMENTS(totals_info); j++) {
            const IcTotalInfo *info = &totals_info[j];
            if (total_counts_row(info, row))
                *total_field(&report->totals, info) += info->unit == IC_TOTAL_BYTES ? size : 1;
        }
    }
}

/* One total as the totals lines show it: "3 too young", "19 bytes reclaimed". */
static void append_total(GString *out, const IcTotalInfo *info, guint64 value)
{
    if (info->unit == IC_TOTAL_BYTES) {
        g_autofree char *size = g_format_size_full(value, G_FORMAT_SIZE_IEC_UNITS);
        g_string_append(out, size);
    } else
        g_string_append_printf(out, "%" G_GUINT64_FORMAT, value);
    if (info->words != NULL)
        g_string_append_printf(out, " %s", info->words);
}

/* The table's totals lines, from the table of totals. */
static void append_totals_text(GString *out, const IcTotals *totals)
{
    gboolean after_head = FALSE;
    for (gsize i = 0; i < G_N_ELEMENTS(totals_info); i++) {
        const IcTotalInfo *info = &totals_info[i];
        guint64 value = ic_totals_value(totals, info);
        switch (info->text) {
        case IC_TOTAL_TEXT_NONE:
            continue;
        case IC_TOTAL_TEXT_HEAD:
        case IC_TOTAL_TEXT_LINE:
            g_string_append_c(out, '\n');
            append_total(out, info, value);
            after_head = info->text == IC_TOTAL_TEXT_HEAD;
            continue;
        case IC_TOTAL_TEXT_ITEM:
            g_string_append(out, after_head ? ": " : ", ");
            after_head = FALSE;
            append_total(out, info, value);
            continue;
        case IC_TOTAL_TEXT_PAREN:
            g_string_append(out, " (");
            append_total(out, info, value);
            g_string_append_c(out, ')');
            continue;
        }
    }
    g_string_append_c(out, '\n');
}

void ic_report_removed_by_reason(const IcReport *report, IcReason reason, guint *ret_count,
                                 guint64 *ret_bytes)
{
    guint count = 0;
    guint64 bytes = 0;
    for (guint i = 0; i < report->rows->len; i++) {
        const IcImageRow *row = g_ptr_array_index(report->rows, i);
        if (row->action == IC_ACTION_REMOVED && row->decision.reason == reason) {
            count++;
            bytes += (guint64)MAX(row->size, 0);
        }
    }
    *ret_count = count;
    *ret_bytes = bytes;
}

void ic_report_log_events(const IcReport *report)
{
    for (guint i = 0; i < report->events->len; i++) {
        const IcEvent *event = g_ptr_array_index(report->events, i);
        GLogLevelFlags level = event->level == IC_EVENT_INFO      ? G_LOG_LEVEL_MESSAGE
                               : event->level == IC_EVENT_WARNING ? G_LOG_LEVEL_WARNING
                                                                  : G_LOG_LEVEL_CRITICAL;
        g_log("imagecache", level, "%s", event->message);
    }
}

/* ---- human output ---- */

static double disk_used_percent(const IcReport *report)
{
    return 100.0 * (double)report->disk_used_bytes / (double)MAX(report->disk_total_bytes, 1);
}

char *ic_format_time(gint64 epoch)
{
    g_autoptr(GDateTime) time = g_date_time_new_from_unix_utc(epoch);
    if (time == NULL)
        return g_strdup_printf("@%" G_GINT64_FORMAT, epoch);
    return g_date_time_format(time, "%Y-%m-%dT%H:%M:%SZ");
}

static char *format_size(gint64 bytes)
{
    return g_format_size_full((guint64)MAX(bytes, 0), G_FORMAT_SIZE_IEC_UNITS);
}

static char *format_age(gint64 seconds)
{
    if (seconds < 120)
        return g_strdup_printf("%" G_GINT64_FORMAT "s", seconds);
    if (seconds < 2 * 3600)
        return g_strdup_printf("%" G_GINT64_FORMAT "m", seconds / 60);
    if (seconds < 2 * 86400)
        return g_strdup_printf("%" G_GINT64_FORMAT "h", seconds / 3600);
    return g_strdup_printf("%" G_GINT64_FORMAT "d", seconds / 86400);
}

/* What the operator reads in the last column: the words of the verdict's
 * reason (policy.c's table) with this row's facts filled in. */
static char *describe_row(const IcImageRow *row)
{
    g_autofree char *threshold = format_age(row->decision.threshold);
    /* row->users is a GPtrArray, not NULL-terminated: never g_strjoinv it. */
    g_autofree char *users = row->users->len > 0 ? ic_image_row_users_text(row) : NULL;
    GString *text = g_string_new(ic_reason_info(row->decision.reason)->words);

    (void)g_string_replace(text, "{users}", users ? users : "?", 0);
    (void)g_string_replace(text, "{threshold}", threshold, 0);
    (void)g_string_replace(text, "{pinned_by}", row->pinned_by ? row->pinned_by : "?", 0);
    (void)g_string_replace(text, "{expected}",
                           row->checksum.expected ? row->checksum.expected : "?", 0);
    (void)g_string_replace(text, "{actual}", row->checksum.actual ? row->checksum.actual : "?", 0);

    if (row->decision.verdict == IC_VERDICT_ABSENT)
        g_string_prepend(text, "missing from the base dir, ");
    if (row->decision.verdict == IC_VERDICT_CORRUPT && users != NULL)
        g_string_append_printf(text, "; in use by %s", users);
    if (row->error != NULL)
        g_string_append_printf(text, "; %s", row->error);
    return g_string_free(text, FALSE);
}

static const char *const table_headers[] = {"NAME",     "KIND",    "SIZE",   "AGE", "USERS",
                                            "CHECKSUM", "VERDICT", "ACTION", "WHY"};
#define TABLE_COLUMNS G_N_ELEMENTS(table_headers)

static void append_row(GString *out, char **cells, const gsize *widths)
{
    for (gsize c = 0; c < TABLE_COLUMNS; c++) {
        if (c + 1 == TABLE_COLUMNS)
            g_string_append(out, cells[c]);
        else
            g_string_append_printf(out, "%-*s  ", (int)widths[c], cells[c]);
    }
    g_string_append_c(out, '\n');
}

/* Names come from the filesystem (base files, instance dirs in users and notes)
 * and may hold any bytes: escape sequences would drive the operator's
 * terminal, tabs and newlines would forge table rows. Control characters (C0,
 * DEL, C1), bytes that are not valid UTF-8 and '\\' are shown as \xNN; other
 * UTF-8 is kept. */
char *ic_text_printable(const char *text)
{
    GString *out = g_string_sized_new(strlen(text));
    const char *end = text + strlen(text);
    for (const char *p = text; *p != '\0';) {
        unsigned char c = (unsigned char)*p;
        gunichar ch = c < 0x80 ? c : g_utf8_get_char_validated(p, end - p);
        gsize len = ch == (gunichar)-1 || ch == (gunichar)-2 ? 1 : (gsize)g_utf8_skip[c];
        if (ch < 0x20 || (ch >= 0x7f && ch < 0xa0) || ch == '\\' || (len == 1 && c >= 0x80)) {
            for (gsize i = 0; i < len; i++)
                g_string_append_printf(out, "\\x%02x", (unsigned char)p[i]);
        } else {
            g_string_append_len(out, p, (gssize)len);
        }
        p += len;
    }
    return g_string_free(out, FALSE);
}

char *ic_report_to_table(const IcReport *report)
{
    GString *out = g_string_new(NULL);
    g_autoptr(GPtrArray) lines = g_ptr_array_new_with_free_func((GDestroyNotify)g_strfreev);
    gsize widths[TABLE_COLUMNS];

    g_string_append_printf(out, "Base dir %s on host %s%s\n", report->base_dir, report->host,
                           report->dry_run ? " (dry run: nothing changed)" : "");
    if (!report->base_dir_exists) {
        g_string_append(out, "The base dir does not exist (an unmounted share?): nothing was "
                             "checked or removed.\n");
        return g_string_free(out, FALSE);
    }

    for (gsize c = 0; c < TABLE_COLUMNS; c++)
        widths[c] = strlen(table_headers[c]);
    for (guint i = 0; i < report->rows->len; i++) {
        const IcImageRow *row = g_ptr_array_index(report->rows, i);
        char **cells = g_new0(char *, TABLE_COLUMNS + 1);
        cells[0] = ic_text_printable(row->name);
        cells[1] = g_strdup(ic_image_kind_to_string(row->kind));
        cells[2] = row->present ? format_size(row->size) : g_strdup("-");
        cells[3] = row->present ? format_age(row->decision.age) : g_strdup("-");
        cells[4] = g_strdup_printf("%u+%u", row->local_users, row->remote_users);
        cells[5] = g_strdup(ic_checksum_state_to_string(row->checksum.state));
        cells[6] = g_strdup(ic_verdict_to_string(row->decision.verdict));
        cells[7] = g_strdup(ic_action_to_string(row->action));
        g_autofree char *why = describe_row(row);
        cells[8] = ic_text_printable(why);
        for (gsize c = 0; c < TABLE_COLUMNS; c++)
            widths[c] = MAX(widths[c], strlen(cells[c]));
        g_ptr_array_add(lines, cells);
    }

    append_row(out, (char **)table_headers, widths);
    for (guint i = 0; i < lines->len; i++)
        append_row(out, g_ptr_array_index(lines, i), widths);
    if (report->rows->len == 0)
        g_string_append(out, "(no base files)\n");

    append_totals_text(out, &report->totals);
    g_string_append(out, "USERS is local+remote. A file in use is never removed.\n");
    if (report->disk_known) {
        g_autofree char *disk_used = format_size((gint64)report->disk_used_bytes);
        g_autofree char *disk_total = format_size((gint64)report->disk_total_bytes);
        g_string_append_printf(out, "Filesystem: %s of %s used (%.1f%%)", disk_used, disk_total,
                               disk_used_percent(report));
        if (report->disk_high_watermark_percent > 0)
            g_string_append_printf(
                out, "; watermarks: high %" G_GINT64_FORMAT "%%, low %" G_GINT64_FORMAT "%%%s\n",
                report->disk_high_watermark_percent, report->disk_low_watermark_percent,
                report->disk_pressure ? ", above the high watermark" : "");
        else
            g_string_append(out, "; no eviction for space (disk_high_watermark_percent is 0)\n");
    }

    for (guint i = 0; i < report->skipped->len; i++) {
        const IcSkippedEntry *entry = g_ptr_array_index(report->skipped, i);
        g_autofree char *name = ic_text_printable(entry->name);
        g_string_append_printf(out, "skipped '%s': %s (never touched)\n", name, entry->why);
    }
    for (guint i = 0; i < report->notes->len; i++) {
        g_autofree char *note = ic_text_printable(g_ptr_array_index(report->notes, i));
        g_string_append_printf(out, "note: %s\n", note);
    }
    return g_string_free(out, FALSE);
}

/* ---- monitoring check ---- */

static const char *const check_state_names[] = {
    [IC_CHECK_OK] = "OK",
    [IC_CHECK_WARNING] = "WARNING",
    [IC_CHECK_CRITICAL] = "CRITICAL",
    [IC_CHECK_UNKNOWN] = "UNKNOWN",
};
G_STATIC_ASSERT(G_N_ELEMENTS(check_state_names) == IC_CHECK_UNKNOWN + 1);

/* The first note that blocks removal, or -1. */
static gint first_blocking_note(const IcReport *report)
{
    for (guint i = 0; i < report->notes->len; i++) {
        if (ic_note_code_blocks_removal(note_code(report, i)))
            return (gint)i;
    }
    return -1;
}

/* The worst finding in words, and its state: the strongest rule first. */
static IcCheckState check_state(const IcReport *report, GString *why)
{
    const IcTotals *t = &report->totals;
    gint blocking = first_blocking_note(report);
    if (!report->base_dir_exists) {
        g_string_append_printf(why, "base dir %s does not exist (an unmounted share?)",
                               report->base_dir);
        return IC_CHECK_CRITICAL;
    }
    if (t->corrupt > 0 || t->absent > 0) {
        g_string_append_printf(
            why, "%" G_GUINT64_FORMAT " corrupt, %" G_GUINT64_FORMAT " in use but absent; ",
            t->corrupt, t->absent);
        return IC_CHECK_CRITICAL;
    }
    if (blocking >= 0) {
        g_string_append_printf(why, "nothing can be removed (%s); ",
                               ic_note_code_to_string(note_code(report, (guint)blocking)));
        return IC_CHECK_WARNING;
    }
    if (t->remove_failed > 0) {
        g_string_append_printf(why, "%" G_GUINT64_FORMAT " removals failed; ", t->remove_failed);
        return IC_CHECK_WARNING;
    }
    if (report->disk_pressure) {
        g_string_append_printf(why, "disk %.1f%% used, above the high watermark; ",
                               disk_used_percent(report));
        return IC_CHECK_WARNING;
    }
    return IC_CHECK_OK;
}

char *ic_report_to_check(const IcReport *report, IcCheckState *ret_state)
{
    const IcTotals *t = &report->totals;
    g_autoptr(GString) why = g_string_new(NULL);
    IcCheckState state = check_state(report, why);
    GString *out = g_string_new(NULL);

    g_string_append_printf(out, "IMAGECACHE %s - %s", check_state_names[state], why->str);
    if (report->base_dir_exists) {
        g_autofree char *total = format_size((gint64)t->bytes_total);
        g_string_append_printf(out,
                               "%" G_GUINT64_FORMAT " base files (%s), %" G_GUINT64_FORMAT
                               " active, %" G_GUINT64_FORMAT " removable",
                               t->images, total, t->active, t->removable);
    }
    g_string_append(out, " |");
    for (gsize i = 0; i < G_N_ELEMENTS(totals_info); i++) {
        const IcTotalInfo *info = &totals_info[i];
        if (info->perfdata)
            g_string_append_printf(out, " %s=%" G_GUINT64_FORMAT "%s", info->name,
                                   ic_totals_value(t, info),
                                   info->unit == IC_TOTAL_BYTES ? "B" : "");
    }
    if (report->disk_known)
        g_string_append_printf(out, " disk_used=%.1f%%", disk_used_percent(report));
    g_string_append_c(out, '\n');
    *ret_state = state;
    return g_string_free(out, FALSE);
}

/* The first note about @witness that says it was not consulted, or NULL. */
static const char *witness_not_consulted(const IcReport *report, IcWitness witness)
{
    for (guint i = 0; i < report->notes->len; i++) {
        IcNoteCode code = note_code(report, i);
        if (ic_note_code_witness(code) == witness && ic_note_code_not_consulted(code))
            return g_ptr_array_index(report->notes, i);
    }
    return NULL;
}

/* The witnesses explain lists: those always listed, and the others only
 * when they named a user. */
static gboolean witness_listed(const IcImageRow *row, IcWitness witness)
{
    return ic_witness_always_listed(witness) || (row->witnesses & witness);
}

static const char *witness_answer(const IcReport *report, const IcImageRow *row, IcWitness witness)
{
    if (row->witnesses & witness)
        return "names a user";
    if (witness_not_consulted(report, witness) != NULL)
        return "not consulted";
    return "names no user";
}

static void explain_witnesses(GString *out, const IcReport *report, const IcImageRow *row)
{
    IC_WITNESS_FOREACH (witness) {
        if (witness_listed(row, witness))
            g_string_append_printf(out, "  %-14s %s\n", ic_witness_to_string(witness),
                                   witness_answer(report, row, witness));
    }
}

static gboolean row_in_use(const IcImageRow *row)
{
    return row->local_users + row->remote_users > 0;
}

static void explain_age(GString *out, const IcImageRow *row)
{
    g_autofree char *mtime = ic_format_time(row->mtime);
    g_autofree char *threshold = format_age(row->decision.threshold);
    if (!row->present) {
        g_string_append(out, "age:      - (the file is not in the base dir)\n");
        return;
    }
    if (row_in_use(row)) {
        /* Age means "unused for": a file in use has none. */
        g_string_append_printf(out, "age:      in use (mtime %s", mtime);
    } else {
        g_autofree char *age = format_age(row->decision.age);
        g_string_append_printf(out, "age:      unused for %s (mtime %s", age, mtime);
    }
    if (row->last_used > 0) {
        g_autofree char *released = ic_format_time(row->last_used);
        g_string_append_printf(out, ", last released %s", released);
    }
    if (row_in_use(row))
        g_string_append(out, ")\n");
    else
        g_string_append_printf(out, "); minimum age for this verdict %s\n", threshold);
}

char *ic_report_explain(const IcReport *report, const IcImageRow *row)
{
    GString *out = g_string_new(NULL);
    g_autofree char *raw_why = describe_row(row);
    g_autofree char *why = ic_text_printable(raw_why);
    g_autofree char *raw_users = ic_image_row_users_text(row);
    g_autofree char *users = ic_text_printable(raw_users);
    g_autofree char *name = ic_text_printable(row->name);
    g_autofree char *now = ic_format_time(report->now);

    g_string_append_printf(out, "%s/%s\n", report->base_dir, name);
    g_string_append_printf(out, "as of:    %s on host %s\n", now, report->host);
    g_string_append_printf(out, "verdict:  %s (%s)\n  %s\n",
                           ic_verdict_to_string(row->decision.verdict),
                           ic_reason_to_string(row->decision.reason), why);
    g_string_append_printf(out, "action:   %s\n", ic_action_to_string(row->action));
    g_string_append_printf(out, "kind:     %s%s%s\n", ic_image_kind_to_string(row->kind),
                           row->image_id ? ", image id " : "", row->image_id ? row->image_id : "");
    if (row->present)
        g_string_append_printf(out, "size:     %" G_GINT64_FORMAT " bytes\n", row->size);
    else
        g_string_append(out, "size:     - (the file is not in the base dir)\n");
    g_string_append_printf(out, "users:    %u local, %u remote%s%s\n", row->local_users,
                           row->remote_users, *users ? ": " : "", users);
    g_string_append(out, "witnesses:\n");
    explain_witnesses(out, report, row);
    for (guint i = 0; i < report->notes->len; i++) {
        g_autofree char *note = ic_text_printable(g_ptr_array_index(report->notes, i));
        g_string_append_printf(out, "  note: %s\n", note);
    }
    explain_age(out, row);
    g_string_append_printf(out, "checksum: %s", ic_checksum_state_to_string(row->checksum.state));
    if (row->checksum.expected != NULL)
        g_string_append_printf(out, ", sidecar %s", row->checksum.expected);
    if (row->checksum.actual != NULL)
        g_string_append_printf(out, ", computed %s", row->checksum.actual);
    if (row->checksum.error != NULL)
        g_string_append_printf(out, ", %s", row->checksum.error);
    g_string_append_c(out, '\n');
    g_string_append_printf(out, "pinned:   %s\n", row->pinned_by ? row->pinned_by : "no");
    if (report->disk_known)
        g_string_append_printf(out, "disk:     %.1f%% used%s\n", disk_used_percent(report),
                               report->disk_pressure ? ", above the high watermark" : "");
    if (row->error != NULL) {
        g_autofree char *error = ic_text_printable(row->error);
        g_string_append_printf(out, "error:    %s\n", error);
    }
    return g_string_free(out, FALSE);
}

/* ---- JSON output ---- */

static void json_add_row(IcJsonWriter *b, const IcImageRow *row)
{
    ic_json_begin_object(b);
    ic_json_member_string(b, "name", row->name);
    ic_json_member_string(b, "kind", ic_image_kind_to_string(row->kind));
    ic_json_member_string(b, "fingerprint", row->fingerprint);
    ic_json_member_string(b, "image_id", row->image_id);
    ic_json_member_bool(b, "present", row->present);
    ic_json_member_int(b, "size", row->present ? row->size : 0);
    ic_json_member_int(b, "mtime", row->mtime);
    ic_json_member_int(b, "age_seconds", row->decision.age);
    ic_json_member_int(b, "min_age_seconds", row->decision.threshold);
    ic_json_member_int(b, "last_used", row->last_used);
    ic_json_member_string(b, "pinned_by", row->pinned_by);
    ic_json_member_int(b, "local_users", row->local_users);
    ic_json_member_int(b, "remote_users", row->remote_users);
    ic_json_member_strings(b, "users", row->users);
    ic_json_member_name(b, "witnesses");
    ic_json_begin_array(b);
    IC_WITNESS_FOREACH (witness) {
        if (row->witnesses & witness)
            ic_json_value_string(b, ic_witness_to_string(witness));
    }
    ic_json_end_array(b);
    ic_json_member_string(b, "checksum", ic_checksum_state_to_string(row->checksum.state));
    ic_json_member_string(b, "checksum_expected", row->checksum.expected);
    ic_json_member_string(b, "checksum_actual", row->checksum.actual);
    ic_json_member_string(b, "checksum_error", row->checksum.error);
    ic_json_member_string(b, "verdict", ic_verdict_to_string(row->decision.verdict));
    ic_json_member_string(b, "reason", ic_reason_to_string(row->decision.reason));
    ic_json_member_string(b, "action", ic_action_to_string(row->action));
    ic_json_member_string(b, "error", row->error);
    ic_json_end_object(b);
}

static void json_add_totals(IcJsonWriter *b, const IcTotals *t)
{
    ic_json_member_name(b, "totals");
    ic_json_begin_object(b);
    for (gsize i = 0; i < G_N_ELEMENTS(totals_info); i++)
        ic_json_member_int(b, totals_info[i].name, (gint64)ic_totals_value(t, &totals_info[i]));
    ic_json_end_object(b);
}

static const char *event_level_to_string(IcEventLevel level)
{
    switch (level) {
    case IC_EVENT_INFO:
        return "info";
    case IC_EVENT_WARNING:
        return "warning";
    case IC_EVENT_ERROR:
        return "error";
    }
    return "unknown";
}

/* The members every document starts with. */
static void json_add_header(IcJsonWriter *b, const IcReport *report)
{
    ic_json_member_int(b, "format_version", IC_REPORT_FORMAT_VERSION);
    ic_json_member_string(b, "base_dir", report->base_dir);
    ic_json_member_bool(b, "base_dir_exists", report->base_dir_exists);
    ic_json_member_string(b, "host", report->host);
    ic_json_member_int(b, "now", report->now);
}

/* What the table's "Filesystem:" line shows. */
static void json_add_filesystem(IcJsonWriter *b, const IcReport *report)
{
    ic_json_member_name(b, "filesystem");
    ic_json_begin_object(b);
    ic_json_member_bool(b, "known", report->disk_known);
    ic_json_member_int(b, "total_bytes", (gint64)report->disk_total_bytes);
    ic_json_member_int(b, "used_bytes", (gint64)report->disk_used_bytes);
    ic_json_member_double(b, "used_percent", report->disk_known ? disk_used_percent(report) : 0);
    ic_json_member_int(b, "high_watermark_percent", report->disk_high_watermark_percent);
    ic_json_member_int(b, "low_watermark_percent", report->disk_low_watermark_percent);
    ic_json_member_bool(b, "above_high_watermark", report->disk_pressure);
    ic_json_end_object(b);
}

static void json_add_notes(IcJsonWriter *b, const IcReport *report)
{
    ic_json_member_name(b, "notes");
    ic_json_begin_array(b);
    for (guint i = 0; i < report->notes->len; i++) {
        IcNoteCode code = note_code(report, i);
        IcWitness witness = ic_note_code_witness(code);
        ic_json_begin_object(b);
        ic_json_member_string(b, "code", ic_note_code_to_string(code));
        ic_json_member_string(b, "witness", witness ? ic_witness_to_string(witness) : NULL);
        ic_json_member_bool(b, "blocks_removal", ic_note_code_blocks_removal(code));
        ic_json_member_string(b, "message", g_ptr_array_index(report->notes, i));
        ic_json_end_object(b);
    }
    ic_json_end_array(b);
}

typedef struct {
    const IcReport *report;
    const IcImageRow *row;
} ExplainedRow;

static void write_explain(IcJsonWriter *b, gconstpointer data)
{
    const IcReport *report = ((const ExplainedRow *)data)->report;
    const IcImageRow *row = ((const ExplainedRow *)data)->row;
    g_autofree char *why = describe_row(row);
    ic_json_begin_object(b);
    json_add_header(b, report);
    ic_json_member_name(b, "image");
    json_add_row(b, row);
    ic_json_member_string(b, "why", why);
    ic_json_member_bool(b, "in_use", row_in_use(row));
    ic_json_member_name(b, "witness_answers");
    ic_json_begin_array(b);
    IC_WITNESS_FOREACH (witness) {
        if (!witness_listed(row, witness))
            continue;
        ic_json_begin_object(b);
        ic_json_member_string(b, "witness", ic_witness_to_string(witness));
        ic_json_member_bool(b, "consulted", witness_not_consulted(report, witness) == NULL);
        ic_json_member_bool(b, "names_user", (row->witnesses & witness) != 0);
        ic_json_end_object(b);
    }
    ic_json_end_array(b);
    json_add_filesystem(b, report);
    json_add_notes(b, report);
    ic_json_end_object(b);
}

char *ic_report_explain_to_json(const IcReport *report, const IcImageRow *row)
{
    ExplainedRow explained = {report, row};
    return ic_json_to_string(write_explain, &explained);
}

static void write_row_element(IcJsonWriter *w, gconstpointer data, guint i)
{
    const IcReport *report = data;
    json_add_row(w, g_ptr_array_index(report->rows, i));
}

/* The report's document, its rows formatted on up to @threads threads. */
static void write_report_rows_aside(IcJsonWriter *b, const IcReport *report, guint threads)
{
    ic_json_begin_object(b);
    json_add_header(b, report);
    ic_json_member_bool(b, "dry_run", report->dry_run);
    ic_json_member_double(b, "duration_seconds", report->duration_seconds);
    json_add_filesystem(b, report);

    ic_json_member_name(b, "images");
    ic_json_begin_array(b);
    ic_json_write_elements(b, report->rows->len, write_row_element, report, threads);
    ic_json_end_array(b);
    json_add_totals(b, &report->totals);

    ic_json_member_name(b, "skipped");
    ic_json_begin_array(b);
    for (guint i = 0; i < report->skipped->len; i++) {
        const IcSkippedEntry *entry = g_ptr_array_index(report->skipped, i);
        ic_json_begin_object(b);
        ic_json_member_string(b, "name", entry->name);
        ic_json_member_string(b, "why", entry->why);
        ic_json_end_object(b);
    }
    ic_json_end_array(b);

    ic_json_member_name(b, "events");
    ic_json_begin_array(b);
    for (guint i = 0; i < report->events->len; i++) {
        const IcEvent *event = g_ptr_array_index(report->events, i);
        ic_json_begin_object(b);
        ic_json_member_string(b, "level", event_level_to_string(event->level));
        ic_json_member_string(b, "file", event->file);
        ic_json_member_string(b, "message", event->message);
        ic_json_end_object(b);
    }
    ic_json_end_array(b);
    json_add_notes(b, report);
    ic_json_member_string(b, "removal_deferred", report->removal_deferred);
    ic_json_end_object(b);
}

static void write_report(IcJsonWriter *b, gconstpointer data)
{
    write_report_rows_aside(b, data, 1);
}

char *ic_report_to_json(const IcReport *report)
{
    return ic_json_to_string(write_report, report);
}

/* Row formatters beside the writing thread: at 100,000 rows the JSON took
 * 97 ms on one core while the other idled, its time more than ten times the
 * 10,000 rows' (the rows no longer fit the cache; issue 15). */
#define MAX_JSON_THREADS 4

gboolean ic_report_write_json(const IcReport *report, FILE *out, guint threads, GError **error)
{
    if (threads == 0)
        threads = MIN(g_get_num_processors(), MAX_JSON_THREADS);
    IcJsonWriter *w = ic_json_writer_new(out);
    write_report_rows_aside(w, report, threads);
    return ic_json_writer_finish(w, error);
}
