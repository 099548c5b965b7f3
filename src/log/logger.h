/*
 * src/log/logger.h: training metric loggers behind one interface table.
 *
 * A logger records scalars (loss, accuracy, lr, ...) against the x axis of
 * the run: the optimizer step (global_step). Each variant is one file and
 * one table entry: metrics.jsonl (log_jsonl.c), TensorBoard event files
 * (log_tensorboard.c); the trainer adds stdout and W&B beside them.
 *
 * scalar() also takes the fractional epoch: metrics.jsonl records it on
 * each line; TensorBoard has no place for it and ignores it. Loggers are
 * used by rank 0 only; they are not thread-safe.
 */
#ifndef ICS_LOG_LOGGER_H
#define ICS_LOG_LOGGER_H

#include <stdint.h>
#include <icsparse/status.h>

typedef struct ics_logger_ops {
    const char *name; /* "jsonl", "tensorboard" */
    /* Opens the logger writing under dir (created if missing). */
    ics_status (*open)(void **state, const char *dir, ics_error *err);
    /* Records tag = value at step (and epoch). */
    ics_status (*scalar)(void *state, const char *tag, int64_t step, double epoch, double value, ics_error *err);
    /* Pushes everything recorded so far to the file system. */
    ics_status (*flush)(void *state, ics_error *err);
    /* Flushes, closes and frees the state (also on error). */
    ics_status (*close)(void *state, ics_error *err);
} ics_logger_ops;

extern const ics_logger_ops ics_logger_jsonl;
extern const ics_logger_ops ics_logger_tensorboard;

/* The table entry for a name, or NULL. */
const ics_logger_ops *ics_logger_find(const char *name);

typedef struct ics_logger ics_logger;

/* Opens a logger of the named kind under dir. */
ics_status ics_logger_open(ics_logger **out, const char *kind, const char *dir, ics_error *err);
ics_status ics_logger_scalar(ics_logger *lg, const char *tag, int64_t step, double epoch, double value,
                             ics_error *err);
ics_status ics_logger_flush(ics_logger *lg, ics_error *err);
/* Closes and frees the logger, whatever the outcome; NULL is a no-op. */
ics_status ics_logger_close(ics_logger *lg, ics_error *err);

/* Creates dir and its missing parents (mkdir -p); shared by the loggers. */
ics_status ics_log_mkdirs(const char *dir, ics_error *err);

#endif
