#include "error.h"

#include <errno.h>

GQuark ic_error_quark(void)
{
    return g_quark_from_static_string("imagecache-error-quark");
}

gboolean ic_error_set_errno(GError **error, int errsv, const char *what, const char *path)
{
    int code = errsv == ENOENT   ? IC_ERROR_NOT_FOUND
               : errsv == ESTALE ? IC_ERROR_STALE
                                 : IC_ERROR_IO;
    g_set_error(error, IC_ERROR, code, "%s '%s': %s", what, path, g_strerror(errsv));
    return FALSE;
}
