/*
 * The logger: the one piece of global mutable state. Lines look like
 *   2026-11-25 12:00:01.123 [rank 0] INFO  message
 * on stderr. Per-step lines (ics_log_step) come from rank 0 only unless the
 * logger is verbose; other lines come from every rank that logs them.
 */
#ifndef ICS_CORE_LOG_H
#define ICS_CORE_LOG_H

#include <stdio.h>

typedef enum ics_log_level {
    ICS_LOG_DEBUG = 0,
    ICS_LOG_INFO,
    ICS_LOG_WARN,
    ICS_LOG_ERROR,
    ICS_LOG_QUIET /* nothing below this is printed */
} ics_log_level;

/* Sets the rank shown in every line (-1 = no MPI yet). */
void ics_log_set_rank(int rank);
int ics_log_rank(void);
void ics_log_set_level(ics_log_level level);
ics_log_level ics_log_get_level(void);
/* Verbose: per-step lines from every rank, not only rank 0. */
void ics_log_set_verbose(int verbose);
int ics_log_verbose(void);
/* Where lines go (default stderr); tests point it at a file. */
void ics_log_set_stream(FILE *stream);
/* Parses "debug", "info", "warn", "error", "quiet"; -1 if unknown. */
int ics_log_level_parse(const char *name);

void ics_log(ics_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A per-step line: printed by rank 0, or by every rank when verbose. */
void ics_log_step(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define ICS_DEBUG(...) ics_log(ICS_LOG_DEBUG, __VA_ARGS__)
#define ICS_INFO(...) ics_log(ICS_LOG_INFO, __VA_ARGS__)
#define ICS_WARN(...) ics_log(ICS_LOG_WARN, __VA_ARGS__)
#define ICS_ERROR(...) ics_log(ICS_LOG_ERROR, __VA_ARGS__)

#endif
