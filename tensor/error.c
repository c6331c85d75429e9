#include "error.h"

#include <stdarg.h>
#include <string.h>

static _Thread_local char error_message[1024];
static _Thread_local aspo_status error_status = ASPO_OK;

static aspo_status set_message(aspo_status status, const char *fmt, va_list ap)
{
    vsnprintf(error_message, sizeof error_message, fmt, ap);
    error_status = status;
    return status;
}

aspo_status aspo_fail(aspo_status status, const char *fmt, ...)
{
    if (error_status != ASPO_OK) return status;
    va_list ap;
    va_start(ap, fmt);
    set_message(status, fmt, ap);
    va_end(ap);
    return status;
}

aspo_status aspo_fail_replace(aspo_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_message(status, fmt, ap);
    va_end(ap);
    return status;
}

aspo_status aspo_fail_prefix(aspo_status status, const char *fmt, ...)
{
    char prefix[512], old[sizeof error_message];
    snprintf(old, sizeof old, "%s", error_message);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    size_t n = strlen(prefix), room = sizeof error_message - 1;
    if (n > room) n = room;
    memcpy(error_message, prefix, n);
    size_t m = strlen(old) < room - n ? strlen(old) : room - n; /* truncate the old tail */
    memcpy(error_message + n, old, m);
    error_message[n + m] = 0;
    if (status != ASPO_OK) error_status = status;
    return error_status;
}

const char *aspo_error_message(void) { return error_status == ASPO_OK ? "" : error_message; }
aspo_status aspo_error_status(void) { return error_status; }

void aspo_error_clear(void)
{
    error_status = ASPO_OK;
    error_message[0] = 0;
}

const char *aspo_status_name(aspo_status status)
{
    switch (status) {
    case ASPO_OK: return "ok";
    case ASPO_ERR_USAGE: return "usage";
    case ASPO_ERR_IO: return "io";
    case ASPO_ERR_FORMAT: return "format";
    case ASPO_ERR_SHAPE: return "shape";
    case ASPO_ERR_OOM: return "out of memory";
    case ASPO_ERR_UNSUPPORTED: return "unsupported";
    case ASPO_ERR_NUMERIC: return "numeric";
    case ASPO_ERR_NO_DEVICE: return "no device";
    case ASPO_ERR_STOPPED: return "stopped";
    }
    return "unknown";
}
