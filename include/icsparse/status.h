/*
 * icsparse/status.h: errors are values.
 *
 * Every library function that can fail returns an ics_status and, when the
 * caller passes an ics_error, fills it with one human-readable line that
 * names the context (file, line, key, tensor). Only the executables print
 * the message and choose an exit code; the library never exits.
 */
#ifndef ICSPARSE_STATUS_H
#define ICSPARSE_STATUS_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ics_status {
    ICS_OK = 0,
    ICS_ERR_RUNTIME,         /* a run-time failure (I/O, numerics, MPI) */
    ICS_ERR_CONFIG,          /* bad configuration or usage */
    ICS_ERR_NOMEM,           /* an allocation failed */
    ICS_ERR_IO,              /* a file could not be read or written */
    ICS_ERR_FORMAT,          /* a file is not in the expected format */
    ICS_ERR_INVALID,         /* an argument is out of its domain */
    ICS_ERR_NOT_IMPLEMENTED, /* the feature is not there yet */
    ICS_ERR_MPI,             /* an MPI call failed */
    ICS_ERR_CUDA,            /* a CUDA, cuDNN, cuBLAS or NCCL call failed */
    ICS_ERR_INTERRUPTED      /* stopped by a signal (preemption) */
} ics_status;

#define ICS_ERROR_MESSAGE_MAX 1024

typedef struct ics_error {
    ics_status status;
    char message[ICS_ERROR_MESSAGE_MAX];
    const char *source_file; /* where in icsparse the error was raised */
    int source_line;
} ics_error;

/* Resets an error record to "no error". */
void ics_error_clear(ics_error *err);

/* Records an error (printf-style message) and returns status. err may be
 * NULL, in which case only the status is returned. Use ICS_FAIL to record
 * the call site. */
ics_status ics_error_set_at(ics_error *err, ics_status status, const char *source_file,
                            int source_line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
ics_status ics_error_vset_at(ics_error *err, ics_status status, const char *source_file,
                             int source_line, const char *fmt, va_list ap);

/* Prefixes an existing message with more context ("loading x.h5: " + old). */
ics_status ics_error_prefix(ics_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define ICS_FAIL(err, status, ...) ics_error_set_at((err), (status), __FILE__, __LINE__, __VA_ARGS__)

/* Short name of a status ("config error", ...). */
const char *ics_status_name(ics_status status);

/* Exit code of a training run stopped by SIGTERM or SIGUSR1 after writing a
 * resumable checkpoint (EX_TEMPFAIL): job scripts requeue on it. */
#define ICS_EXIT_PREEMPTED 75

/* The exit code an executable uses for a status: 0 success, 2 usage or
 * configuration error (also "not implemented yet"), 75 preempted
 * (ICS_ERR_INTERRUPTED), 1 any other failure. */
int ics_status_exit_code(ics_status status);

#ifdef __cplusplus
}
#endif
#endif
