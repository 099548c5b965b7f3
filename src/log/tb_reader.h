/*
 * src/log/tb_reader.h: reads the scalars back from a TensorBoard event
 * file, checking every CRC: TensorBoard itself silently drops the rest of a
 * file after a bad record, so icsparse checks its own files (tests, and
 * tools that inspect a run).
 */
#ifndef ICS_LOG_TB_READER_H
#define ICS_LOG_TB_READER_H

#include <stdint.h>
#include <icsparse/status.h>

/* Called once per scalar, in file order; tag is NUL-terminated and valid
 * during the call. A non-OK return stops the reading with that status. */
typedef ics_status (*ics_tb_scalar_fn)(void *ctx, int64_t step, double wall_time, const char *tag, float value,
                                       ics_error *err);

/* Reads path: the first record must be the file_version event
 * ("brain.Event:<n>"), every record's framing and CRCs must be right and
 * every payload a valid Event. *n_scalars (if not NULL) gets the count. */
ics_status ics_tb_read_scalars(const char *path, ics_tb_scalar_fn fn, void *ctx, long *n_scalars, ics_error *err);

#endif
