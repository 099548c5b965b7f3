/*
 * A ZIP archive reader over a buffer in memory: the central directory
 * (ZIP64 records when present), STORED and DEFLATED entries, CRC-32
 * verified on every extraction. Enough for torch.save / torch.jit.save
 * archives and for archives repacked by other tools.
 *
 * Every offset and size read from the file is checked against the buffer
 * before use, so a truncated or hostile archive yields an error, never an
 * out-of-bounds read.
 */
#ifndef ICS_IO_ZIP_READER_H
#define ICS_IO_ZIP_READER_H

#include <stddef.h>
#include <stdint.h>
#include <icsparse/status.h>

typedef struct ics_zip_entry {
    char *name;      /* NUL-terminated as stored (no leading '/') */
    uint16_t method; /* ICS_ZIP_METHOD_STORED or _DEFLATED */
    uint32_t crc32;  /* from the central directory */
    uint64_t compressed_size;
    uint64_t size;         /* uncompressed */
    uint64_t local_offset; /* of the local header */
} ics_zip_entry;

typedef struct ics_zip_reader ics_zip_reader;

/* Parses the central directory of the archive held in data[0..size). The
 * reader borrows data: it must outlive the reader. label names the archive
 * in error messages (a path, usually). */
ics_status ics_zip_reader_open(const uint8_t *data, size_t size, const char *label,
                               ics_zip_reader **out, ics_error *err);
void ics_zip_reader_close(ics_zip_reader *zr);

size_t ics_zip_entry_count(const ics_zip_reader *zr);
const ics_zip_entry *ics_zip_entry_at(const ics_zip_reader *zr, size_t index);
/* The entry with exactly this name, or NULL. */
const ics_zip_entry *ics_zip_find(const ics_zip_reader *zr, const char *name);

/* Extracts an entry into a new buffer (malloc'd, *out_size bytes, plus a
 * NUL after the data so text entries can be used as strings); the caller
 * frees it. Verifies the local header against the central directory, the
 * uncompressed size and the CRC-32. max_size refuses entries larger than
 * that many bytes (0 = no limit beyond the archive's own bounds). */
ics_status ics_zip_extract(const ics_zip_reader *zr, const ics_zip_entry *entry, uint64_t max_size,
                           uint8_t **out, size_t *out_size, ics_error *err);

#endif
