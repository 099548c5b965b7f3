/*
 * A ZIP archive writer for torch.save-style archives: STORED entries whose
 * data starts on a 64-byte boundary (padding in an "FB" extra field, as
 * torch's writer does), CRC-32, a central directory, and ZIP64 records for
 * entries or offsets beyond 4 GiB. The archive is written to a temporary
 * name in the same directory and renamed over the final name by
 * ics_zip_writer_close, so a crash never leaves half a file there.
 */
#ifndef ICS_IO_ZIP_WRITER_H
#define ICS_IO_ZIP_WRITER_H

#include <stddef.h>
#include <stdint.h>
#include <icsparse/status.h>

typedef struct ics_zip_writer ics_zip_writer;

/* Creates path's temporary sibling and starts an archive there. */
ics_status ics_zip_writer_open(const char *path, ics_zip_writer **out, ics_error *err);
/* Appends one STORED entry (name as given, data copied to the file). */
ics_status ics_zip_writer_add(ics_zip_writer *zw, const char *name, const void *data, size_t size,
                              ics_error *err);
/* Writes the central directory, flushes and syncs, renames to the final
 * name, and frees the writer (also when it fails). */
ics_status ics_zip_writer_close(ics_zip_writer *zw, ics_error *err);
/* Gives up: removes the temporary file and frees the writer. */
void ics_zip_writer_abort(ics_zip_writer *zw);

/* Test hook: sizes and offsets at or above this many bytes get ZIP64
 * records (default 0xFFFFFFFF, the format's limit); tests lower it to
 * exercise ZIP64 with small files. */
void ics_zip_writer_set_zip64_threshold(ics_zip_writer *zw, uint64_t bytes);

#endif
