/* domxml.c — a bounded reader for the parts of a libvirt domain XML imagecache needs.
 *
 * Why GMarkup and not libxml2: the hook links GLib alone (it runs inside every VM
 * start), and GMarkup is the safer parser for hostile input anyway. It has no DTD
 * support at all: it never loads external entities and knows only the five
 * predefined entities and character references, so entity-expansion tricks
 * ("billion laughs", external SYSTEM entities) cannot expand or reach the
 * filesystem or the network — an undeclared entity is a parse error. We also
 * refuse any <!DOCTYPE> outright (libvirt never writes one), and cap the input
 * size. What is read is capped too (the nesting depth it follows, the length of a
 * value it keeps, the number of disks, image refs and backing-chain members), but
 * a cap reached never refuses the domain: libvirt accepts documents past each of
 * them (256 levels, attributes of any length in <metadata> or <qemu:commandline>),
 * and a domain that is not recorded is one whose base files any host may remove.
 * Past a cap in a part it reads, the disk (or the domain's image refs) is marked
 * unread, which records the domain with unknown usage; elsewhere the excess is
 * skipped. */
#include "domxml.h"

#include "error.h"

#include <string.h>

#define MAX_DEPTH         128  /* domain/devices/disk/backingStore×chain stays far below */
#define MAX_ATTR_LEN      4096 /* PATH_MAX: longer values are no paths libvirt writes */
#define UNREAD_DEPTH      "elements nested deeper than " G_STRINGIFY(MAX_DEPTH) " levels: not read"
#define UNREAD_ATTR       "a value longer than " G_STRINGIFY(MAX_ATTR_LEN) " bytes: not read"
#define MAX_TEXT_LEN      1024 /* <name>, <uuid> */
#define MAX_BACKING_CHAIN 64   /* libvirt itself stops at 200, QEMU images at 16 here */
#define MAX_IMAGE_IDS     64

#define NOVA_NS_PREFIX "http://openstack.org/xmlns/libvirt/nova/"

typedef enum {
    TEXT_NONE,
    TEXT_NAME,
    TEXT_UUID,
} TextTarget;

typedef struct {
    IcDomain *domain;
    GPtrArray *stack; /* char*: copies of the open element names, root first */
    guint beyond;     /* elements open past MAX_DEPTH, not on the stack */
    guint roots;
    TextTarget text_target;
    GString *text;
    IcDomainDisk *disk; /* the <disk> being read, owned by domain->disks */
    guint disk_depth;   /* stack depth of that <disk> */
    /* Per stack depth: the <backingStore> there is a file layer under file layers. */
    gboolean file_layer[MAX_DEPTH + 1];
    guint nova_depth;  /* stack depth of the Nova <*:instance>, 0 when outside */
    char *nova_prefix; /* "nova" in <nova:instance> */
    gboolean have_name;
    gboolean have_uuid;
} ParseState;

static void ic_domain_disk_free(IcDomainDisk *disk)
{
    if (disk == NULL)
        return;
    g_free(disk->target);
    g_free(disk->device);
    g_free(disk->type);
    g_free(disk->source_file);
    g_free(disk->format);
    g_clear_pointer(&disk->backing_store, g_ptr_array_unref);
    g_free(disk);
}

void ic_domain_free(IcDomain *domain)
{
    if (domain == NULL)
        return;
    g_free(domain->name);
    g_free(domain->uuid);
    g_clear_pointer(&domain->disks, g_ptr_array_unref);
    g_clear_pointer(&domain->image_ids, g_ptr_array_unref);
    g_free(domain);
}

static const char *parent_name(const ParseState *st, guint up)
{
    if (st->stack->len < up + 1)
        return NULL;
    return g_ptr_array_index(st->stack, st->stack->len - 1 - up);
}

static const char *attr(const char **names, const char **values, const char *name)
{
    for (guint i = 0; names[i] != NULL; i++) {
        if (strcmp(names[i], name) == 0)
            return values[i];
    }
    return NULL;
}

/* The local part after "prefix:", or NULL when @qname has no prefix. */
static const char *local_name(const char *qname, char **ret_prefix)
{
    const char *colon = strchr(qname, ':');
    if (colon == NULL || colon == qname || colon[1] == '\0')
        return NULL;
    if (ret_prefix != NULL)
        *ret_prefix = g_strndup(qname, (gsize)(colon - qname));
    return colon + 1;
}

static gboolean in_domain_child(const ParseState *st, const char *name)
{
    /* The element just opened is stack top; its parent must be the root <domain>. */
    return st->stack->len == 2 && g_strcmp0(parent_name(st, 1), "domain") == 0 &&
           strcmp(parent_name(st, 0), name) == 0;
}

/* @name's value on a disk's element, or NULL; a value too long to keep marks the
 * disk unread instead. */
static const char *disk_attr(ParseState *st, const char **names, const char **values,
                             const char *name)
{
    const char *value = attr(names, values, name);
    if (value != NULL && strlen(value) > MAX_ATTR_LEN) {
        st->disk->unread = UNREAD_ATTR;
        return NULL;
    }
    return value;
}

static void add_image_id(ParseState *st, const char *id)
{
    if (id == NULL || *id == '\0')
        return;
    if (strlen(id) > MAX_ATTR_LEN) {
        st->domain->unread = "a Nova image ref longer than " G_STRINGIFY(MAX_ATTR_LEN) " bytes";
        return;
    }
    for (guint i = 0; i < st->domain->image_ids->len; i++) {
        if (strcmp(g_ptr_array_index(st->domain->image_ids, i), id) == 0)
            return;
    }
    if (st->domain->image_ids->len >= MAX_IMAGE_IDS) {
        st->domain->unread = "more than " G_STRINGIFY(MAX_IMAGE_IDS) " Nova image refs";
        return;
    }
    g_ptr_array_add(st->domain->image_ids, g_strdup(id));
}

/* <X:instance xmlns:X="http://openstack.org/xmlns/libvirt/nova/1.x"> directly under
 * <domain><metadata>. libvirt keeps each metadata element's namespace declaration
 * on that element; a prefix bound there to a foreign namespace is not Nova's. */
static void maybe_enter_nova(ParseState *st, const char *element, const char **names,
                             const char **values)
{
    if (st->stack->len != 3 || g_strcmp0(parent_name(st, 1), "metadata") != 0 ||
        g_strcmp0(parent_name(st, 2), "domain") != 0)
        return;
    g_autofree char *prefix = NULL;
    const char *local = local_name(element, &prefix);
    if (local == NULL || strcmp(local, "instance") != 0)
        return;
    g_autofree char *xmlns = g_strconcat("xmlns:", prefix, NULL);
    const char *uri = attr(names, values, xmlns);
    if (uri != NULL && !g_str_has_prefix(uri, NOVA_NS_PREFIX))
        return;
    if (uri == NULL && strcmp(prefix, "nova") != 0)
        return;
    st->nova_depth = st->stack->len;
    st->nova_prefix = g_steal_pointer(&prefix);
}

static void nova_element(ParseState *st, const char *element, const char **names,
                         const char **values)
{
    g_autofree char *prefix = NULL;
    const char *local = local_name(element, &prefix);
    if (local == NULL || strcmp(prefix, st->nova_prefix) != 0)
        return;
    if (strcmp(local, "image") == 0) {
        add_image_id(st, attr(names, values, "uuid"));
        return;
    }
    /* <nova:root type="volume"> names a Cinder volume, not an image. */
    if (strcmp(local, "root") == 0 && g_strcmp0(attr(names, values, "type"), "image") == 0)
        add_image_id(st, attr(names, values, "uuid"));
}

static void disk_element(ParseState *st, const char *element, const char **names,
                         const char **values)
{
    const char *parent = parent_name(st, 1);
    gboolean direct = st->stack->len == st->disk_depth + 1;

    if (strcmp(element, "backingStore") == 0) {
        /* Nested chains: only a file layer under file layers (or the disk) counts. */
        guint depth = st->stack->len;
        gboolean parent_ok =
            direct || (strcmp(parent, "backingStore") == 0 && st->file_layer[depth - 1]);
        st->file_layer[depth] =
            parent_ok && g_strcmp0(disk_attr(st, names, values, "type"), "file") == 0;
        return;
    }
    if (strcmp(element, "driver") == 0 && direct) {
        g_free(st->disk->format);
        st->disk->format = g_strdup(disk_attr(st, names, values, "type"));
        return;
    }
    if (strcmp(element, "target") == 0 && direct) {
        g_free(st->disk->target);
        st->disk->target = g_strdup(disk_attr(st, names, values, "dev"));
        return;
    }
    if (strcmp(element, "source") != 0)
        return;
    if (direct) {
        const char *file = disk_attr(st, names, values, "file");
        if (file == NULL)
            file = disk_attr(st, names, values, "dev");
        g_free(st->disk->source_file);
        st->disk->source_file = g_strdup(file);
        return;
    }
    if (strcmp(parent, "backingStore") == 0 && st->file_layer[st->stack->len - 1]) {
        const char *file = disk_attr(st, names, values, "file");
        if (file == NULL || *file == '\0')
            return;
        if (st->disk->backing_store->len >= MAX_BACKING_CHAIN) {
            st->disk->unread =
                "a <backingStore> chain deeper than " G_STRINGIFY(MAX_BACKING_CHAIN) ": not read";
            return;
        }
        g_ptr_array_add(st->disk->backing_store, g_strdup(file));
    }
}

static void on_start(GMarkupParseContext *ctx, const char *element, const char **names,
                     const char **values, gpointer user_data, GError **error)
{
    ParseState *st = user_data;

    if (st->beyond > 0 || st->stack->len >= MAX_DEPTH) {
        /* Deeper than anything read here: skipped, except that a disk's own
         * subtree this deep leaves the disk unread. */
        st->beyond++;
        if (st->disk != NULL)
            st->disk->unread = UNREAD_DEPTH;
        return;
    }
    if (st->stack->len == 0) {
        if (st->roots++ > 0 || strcmp(element, "domain") != 0) {
            g_set_error(error, IC_ERROR, IC_ERROR_FORMAT,
                        "the document is not one <domain> element (found <%s>)", element);
            return;
        }
    }
    g_ptr_array_add(st->stack, g_strdup(element));

    if (in_domain_child(st, "name") || in_domain_child(st, "uuid")) {
        st->text_target = strcmp(element, "name") == 0 ? TEXT_NAME : TEXT_UUID;
        g_string_truncate(st->text, 0);
        return;
    }
    if (st->nova_depth > 0) {
        nova_element(st, element, names, values);
        return;
    }
    if (in_domain_child(st, "metadata"))
        return;
    if (st->stack->len == 3 && strcmp(element, "disk") == 0 &&
        g_strcmp0(parent_name(st, 1), "devices") == 0) {
        if (st->domain->disks->len >= IC_DOMXML_MAX_DISKS) {
            /* Failing here would leave the whole domain unrecorded (and every
             * base file it uses unprotected): count the disk as unread. */
            st->domain->disks_over_limit++;
            return;
        }
        IcDomainDisk *disk = g_new0(IcDomainDisk, 1);
        /* libvirt's default device is "disk". */
        disk->backing_store = g_ptr_array_new_with_free_func(g_free);
        g_ptr_array_add(st->domain->disks, disk);
        st->disk = disk;
        st->disk_depth = st->stack->len;
        const char *device = disk_attr(st, names, values, "device");
        disk->device = g_strdup(device != NULL ? device : "disk");
        disk->type = g_strdup(disk_attr(st, names, values, "type"));
        return;
    }
    if (st->disk != NULL) {
        disk_element(st, element, names, values);
        return;
    }
    maybe_enter_nova(st, element, names, values);
}

static void on_end(GMarkupParseContext *ctx, const char *element, gpointer user_data,
                   GError **error)
{
    ParseState *st = user_data;
    guint depth = st->stack->len;

    if (st->beyond > 0) {
        st->beyond--;
        return;
    }
    if (st->text_target != TEXT_NONE) {
        IcDomain *domain = st->domain;
        char **slot = st->text_target == TEXT_NAME ? &domain->name : &domain->uuid;
        gboolean *seen = st->text_target == TEXT_NAME ? &st->have_name : &st->have_uuid;
        if (*seen) {
            g_set_error(error, IC_ERROR, IC_ERROR_FORMAT, "more than one <%s>", element);
            return;
        }
        *seen = TRUE;
        g_free(*slot);
        *slot = g_strstrip(g_strdup(st->text->str));
        st->text_target = TEXT_NONE;
    }
    if (st->disk != NULL && depth == st->disk_depth) {
        st->disk = NULL;
        st->disk_depth = 0;
    }
    if (st->nova_depth > 0 && depth == st->nova_depth) {
        st->nova_depth = 0;
        g_clear_pointer(&st->nova_prefix, g_free);
    }
    g_ptr_array_remove_index(st->stack, depth - 1);
}

static void on_text(GMarkupParseContext *ctx, const char *text, gsize len, gpointer user_data,
                    GError **error)
{
    ParseState *st = user_data;
    if (st->text_target == TEXT_NONE)
        return;
    if (st->text->len + len > MAX_TEXT_LEN) {
        g_set_error(error, IC_ERROR, IC_ERROR_LIMIT, "element text longer than %d bytes",
                    MAX_TEXT_LEN);
        return;
    }
    g_string_append_len(st->text, text, (gssize)len);
}

static void on_passthrough(GMarkupParseContext *ctx, const char *text, gsize len,
                           gpointer user_data, GError **error)
{
    /* Comments, processing instructions and CDATA are harmless; a DOCTYPE is the
     * only way to declare entities and libvirt never writes one. */
    if (len >= 9 && g_ascii_strncasecmp(text, "<!DOCTYPE", 9) == 0)
        g_set_error(error, IC_ERROR, IC_ERROR_FORMAT, "a <!DOCTYPE> is not allowed");
}

static const GMarkupParser parser = {
    .start_element = on_start,
    .end_element = on_end,
    .text = on_text,
    .passthrough = on_passthrough,
};

/* A canonical UUID, lowercased: it becomes a ledger group name. */
static gboolean check_identity(IcDomain *domain, GError **error)
{
    if (domain->name == NULL || *domain->name == '\0') {
        g_set_error(error, IC_ERROR, IC_ERROR_FORMAT, "the domain has no <name>");
        return FALSE;
    }
    if (domain->uuid == NULL || *domain->uuid == '\0') {
        g_set_error(error, IC_ERROR, IC_ERROR_FORMAT, "domain '%s' has no <uuid>", domain->name);
        return FALSE;
    }
    if (!g_uuid_string_is_valid(domain->uuid)) {
        g_set_error(error, IC_ERROR, IC_ERROR_FORMAT, "domain '%s' has an invalid <uuid> '%s'",
                    domain->name, domain->uuid);
        return FALSE;
    }
    g_autofree char *lower = g_ascii_strdown(domain->uuid, -1);
    g_free(domain->uuid);
    domain->uuid = g_steal_pointer(&lower);
    return TRUE;
}

gboolean ic_domxml_parse(const char *xml, gsize len, IcDomain **ret_domain, GError **error)
{
    if (len > IC_DOMXML_MAX_BYTES) {
        g_set_error(error, IC_ERROR, IC_ERROR_LIMIT,
                    "the domain XML is larger than %d bytes (%" G_GSIZE_FORMAT ")",
                    IC_DOMXML_MAX_BYTES, len);
        return FALSE;
    }

    /* GMarkup rejects invalid UTF-8 too, but GLib 2.74 then goes on parsing after a
     * bad comment or processing instruction and may return TRUE with the error set
     * (or set a second error over it): check the whole input first. */
    if (!g_utf8_validate_len(xml, len, NULL)) {
        g_set_error(error, IC_ERROR, IC_ERROR_FORMAT,
                    "domain XML: not valid UTF-8 (or holds a NUL byte)");
        return FALSE;
    }

    g_autoptr(IcDomain) domain = g_new0(IcDomain, 1);
    domain->disks = g_ptr_array_new_with_free_func((GDestroyNotify)ic_domain_disk_free);
    domain->image_ids = g_ptr_array_new_with_free_func(g_free);

    ParseState st = {
        .domain = domain,
        .stack = g_ptr_array_new_with_free_func(g_free),
        .text = g_string_new(NULL),
    };
    GMarkupParseContext *ctx = g_markup_parse_context_new(&parser, 0, &st, NULL);
    gboolean ok = g_markup_parse_context_parse(ctx, xml, (gssize)len, error) &&
                  g_markup_parse_context_end_parse(ctx, error);
    g_markup_parse_context_free(ctx);
    g_ptr_array_unref(st.stack);
    g_string_free(st.text, TRUE);
    g_free(st.nova_prefix);

    if (!ok) {
        /* GMarkup's own errors are G_MARKUP_ERROR: fold them into our domain. */
        if (error != NULL && *error != NULL && (*error)->domain != IC_ERROR) {
            (*error)->domain = IC_ERROR;
            (*error)->code = IC_ERROR_FORMAT;
        }
        g_prefix_error(error, "domain XML: ");
        return FALSE;
    }
    if (st.roots == 0) {
        g_set_error(error, IC_ERROR, IC_ERROR_FORMAT, "malformed domain XML: no <domain>");
        return FALSE;
    }
    if (!check_identity(domain, error))
        return FALSE;

    *ret_domain = g_steal_pointer(&domain);
    return TRUE;
}

gboolean ic_domain_disk_is_file_disk(const IcDomainDisk *disk)
{
    gboolean file_type =
        disk->type == NULL || strcmp(disk->type, "file") == 0 || strcmp(disk->type, "block") == 0;
    return file_type && disk->source_file != NULL && *disk->source_file != '\0';
}

const char *ic_domain_disk_unknown_reason(const IcDomainDisk *disk)
{
    if (disk->unread != NULL)
        return disk->unread;
    if (disk->type == NULL)
        return NULL;
    if (strcmp(disk->type, "volume") == 0)
        return "a type='volume' disk: the storage pool volume's file is not in the XML";
    if (strcmp(disk->type, "dir") == 0)
        return "a type='dir' disk: the directory QEMU exposes is not followed";
    /* A raw image has no backing file (libvirt opens a network disk without a
     * declared format as raw: it never probes); any other format over the
     * network may name a local backing file we cannot read from here. */
    if (strcmp(disk->type, "network") == 0 && disk->format != NULL &&
        strcmp(disk->format, "raw") != 0)
        return "a network disk whose format is not 'raw': its backing chain cannot be read";
    return NULL;
}
