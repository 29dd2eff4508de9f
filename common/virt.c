#include "virt.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdlib.h>

#include "domxml.h"
#include "error.h"
#include "ledger-domain.h"

G_DEFINE_AUTOPTR_CLEANUP_FUNC(virConnect, virConnectClose)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(virDomain, virDomainFree)

static void ignore_virt_error(void *data, virErrorPtr virt_error)
{
    /* libvirt would print every error to stderr; we turn them into GErrors. */
}

static gboolean virt_init(GError **error)
{
    static gsize initialised = 0;
    if (g_once_init_enter(&initialised)) {
        virSetErrorFunc(NULL, ignore_virt_error);
        g_once_init_leave(&initialised, virInitialize() == 0 ? 1 : 2);
    }
    if (initialised != 1) {
        g_set_error(error, IC_ERROR, IC_ERROR_FAILED, "libvirt could not be initialised");
        return FALSE;
    }
    return TRUE;
}

static const char *uri_label(const char *uri)
{
    return uri != NULL ? uri : "(default URI)";
}

static gboolean connect_read_only(const char *uri, virConnectPtr *ret_conn, GError **error)
{
    if (!virt_init(error))
        return FALSE;
    virConnectPtr conn = virConnectOpenReadOnly(uri);
    if (conn == NULL) {
        g_set_error(error, IC_ERROR, IC_ERROR_IO, "cannot connect to libvirt at '%s': %s",
                    uri_label(uri), virGetLastErrorMessage());
        return FALSE;
    }
    *ret_conn = conn;
    return TRUE;
}

/* The XML of one domain, parsed; FALSE with *ret_domain NULL and no error when
 * the domain went away meanwhile. */
static gboolean read_domain(virDomainPtr dom, IcDomain **ret_domain, GError **error)
{
    const char *name = virDomainGetName(dom);
    char *xml = virDomainGetXMLDesc(dom, 0);
    if (xml == NULL) {
        virErrorPtr last = virGetLastError();
        if (last != NULL && last->code == VIR_ERR_NO_DOMAIN) {
            g_debug("domain '%s' went away while it was listed", name);
            *ret_domain = NULL;
            return TRUE;
        }
        g_set_error(error, IC_ERROR, IC_ERROR_FAILED, "reading the XML of domain '%s': %s", name,
                    virGetLastErrorMessage());
        return FALSE;
    }
    gboolean ok = ic_domxml_parse(xml, strlen(xml), ret_domain, error);
    free(xml);
    if (!ok)
        g_prefix_error(error, "XML of domain '%s': ", name);
    return ok;
}

/* Lists the active domains. A domain that cannot be read goes to @problems
 * (char*) when it is given, else fails the listing. */
static gboolean list_domains(const char *uri, GPtrArray *problems, GPtrArray **ret_domains,
                             GError **error)
{
    g_autoptr(virConnect) conn = NULL;
    if (!connect_read_only(uri, &conn, error))
        return FALSE;

    virDomainPtr *doms = NULL;
    int count = virConnectListAllDomains(conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
    if (count < 0) {
        g_set_error(error, IC_ERROR, IC_ERROR_FAILED, "listing the domains at '%s': %s",
                    uri_label(uri), virGetLastErrorMessage());
        return FALSE;
    }

    g_autoptr(GPtrArray) domains = g_ptr_array_new_with_free_func((GDestroyNotify)ic_domain_free);
    g_autoptr(GError) failure = NULL;
    for (int i = 0; i < count; i++) {
        g_autoptr(virDomain) dom = doms[i];
        g_autoptr(GError) local_error = NULL;
        IcDomain *domain = NULL;
        if (failure != NULL)
            continue; /* still free the rest */
        if (!read_domain(dom, &domain, &local_error)) {
            if (problems == NULL)
                failure = g_steal_pointer(&local_error);
            else
                g_ptr_array_add(problems, g_strdup(local_error->message));
            continue;
        }
        if (domain != NULL)
            g_ptr_array_add(domains, domain);
    }
    free(doms);
    if (failure != NULL) {
        g_propagate_error(error, g_steal_pointer(&failure));
        return FALSE;
    }
    *ret_domains = g_steal_pointer(&domains);
    return TRUE;
}

gboolean ic_virt_list_domains(const char *uri, GPtrArray **ret_domains, GError **error)
{
    return list_domains(uri, NULL, ret_domains, error);
}

gboolean ic_virt_add_usage(const char *uri, const char *base_dir, const char *host, IcUsage *usage,
                           GError **error)
{
    g_autoptr(GPtrArray) unreadable = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GPtrArray) domains = NULL;
    if (!list_domains(uri, unreadable, &domains, error))
        return FALSE;

    for (guint i = 0; i < unreadable->len; i++) {
        g_autofree char *note = g_strdup_printf(
            "live domain not understood (%s): its base files are unknown, so nothing is removed",
            (const char *)g_ptr_array_index(unreadable, i));
        ic_usage_add_note(usage, IC_NOTE_LIVE_DOMAIN_UNREADABLE, note);
    }
    for (guint i = 0; i < domains->len; i++) {
        const IcDomain *domain = g_ptr_array_index(domains, i);
        g_autoptr(GPtrArray) problems = NULL;
        g_autoptr(IcLedgerDomain) entry = ic_ledger_domain_collect(domain, base_dir, 0, &problems);
        for (guint j = 0; problems != NULL && j < problems->len; j++) {
            g_autofree char *note = g_strdup_printf(
                "live %s could not be read: its base files may be incomplete, so nothing is "
                "removed",
                (const char *)g_ptr_array_index(problems, j));
            ic_usage_add_note(usage, IC_NOTE_LIVE_DOMAIN_UNREADABLE, note);
        }
        for (guint j = 0; j < entry->base_files->len; j++)
            ic_usage_add_path_user(usage, g_ptr_array_index(entry->base_files, j), domain->uuid,
                                   domain->name, host, TRUE, IC_WITNESS_LIBVIRT);
        for (guint j = 0; j < entry->image_ids->len; j++)
            ic_usage_add_image_user(usage, g_ptr_array_index(entry->image_ids, j), domain->uuid,
                                    domain->name, host, TRUE, IC_WITNESS_LIBVIRT);
    }
    g_debug("%u live domains at '%s' consulted", domains->len, uri_label(uri));
    return TRUE;
}

gboolean ic_virt_ledger_domains(const char *uri, const char *base_dir, gint64 now,
                                GPtrArray **ret_entries, GPtrArray **ret_problems, GError **error)
{
    g_autoptr(GPtrArray) domains = NULL;
    if (!list_domains(uri, NULL, &domains, error))
        return FALSE;

    g_autoptr(GPtrArray) entries =
        g_ptr_array_new_with_free_func((GDestroyNotify)ic_ledger_domain_free);
    g_autoptr(GPtrArray) all_problems = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < domains->len; i++) {
        g_autoptr(GPtrArray) problems = NULL;
        g_ptr_array_add(entries, ic_ledger_domain_collect(g_ptr_array_index(domains, i), base_dir,
                                                          now, &problems));
        if (problems != NULL)
            g_ptr_array_extend_and_steal(all_problems, g_steal_pointer(&problems));
    }
    *ret_entries = g_steal_pointer(&entries);
    *ret_problems = all_problems->len > 0 ? g_steal_pointer(&all_problems) : NULL;
    return TRUE;
}
