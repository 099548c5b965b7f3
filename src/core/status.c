/* Error records: see include/icsparse/status.h. */
#include "ics_build_config.h"
#include <icsparse/status.h>

#include <stdio.h>
#include <string.h>

void ics_error_clear(ics_error *err)
{
    if (!err) return;
    err->status = ICS_OK;
    err->message[0] = '\0';
    err->source_file = NULL;
    err->source_line = 0;
}

ics_status ics_error_vset_at(ics_error *err, ics_status status, const char *source_file,
                             int source_line, const char *fmt, va_list ap)
{
    if (!err) return status;
    err->status = status;
    err->source_file = source_file;
    err->source_line = source_line;
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    return status;
}

ics_status ics_error_set_at(ics_error *err, ics_status status, const char *source_file,
                            int source_line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ics_error_vset_at(err, status, source_file, source_line, fmt, ap);
    va_end(ap);
    return status;
}

ics_status ics_error_prefix(ics_error *err, const char *fmt, ...)
{
    if (!err) return ICS_ERR_RUNTIME;
    char prefix[ICS_ERROR_MESSAGE_MAX];
    char old[ICS_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->message, sizeof old);
    snprintf(err->message, sizeof err->message, "%s%s", prefix, old);
    return err->status;
}

const char *ics_status_name(ics_status status)
{
    switch (status) {
    case ICS_OK: return "ok";
    case ICS_ERR_RUNTIME: return "runtime error";
    case ICS_ERR_CONFIG: return "configuration error";
    case ICS_ERR_NOMEM: return "out of memory";
    case ICS_ERR_IO: return "I/O error";
    case ICS_ERR_FORMAT: return "format error";
    case ICS_ERR_INVALID: return "invalid argument";
    case ICS_ERR_NOT_IMPLEMENTED: return "not implemented yet";
    case ICS_ERR_MPI: return "MPI error";
    case ICS_ERR_CUDA: return "CUDA error";
    case ICS_ERR_INTERRUPTED: return "interrupted";
    }
    return "unknown error";
}

int ics_status_exit_code(ics_status status)
{
    switch (status) {
    case ICS_OK: return 0;
    case ICS_ERR_CONFIG:
    case ICS_ERR_NOT_IMPLEMENTED: return 2;
    case ICS_ERR_INTERRUPTED: return ICS_EXIT_PREEMPTED;
    default: return 1;
    }
}
