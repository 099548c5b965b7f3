/*
 * src/log/tfrecord.h: TFRecord framing, the container of TensorBoard event
 * files. Each record, little-endian:
 *   u64 length | u32 masked CRC-32C of the 8 length bytes |
 *   payload (length bytes) | u32 masked CRC-32C of the payload
 * The reader checks both CRCs: TensorBoard silently drops everything after
 * a bad record, so we want to find one ourselves.
 */
#ifndef ICS_LOG_TFRECORD_H
#define ICS_LOG_TFRECORD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <icsparse/status.h>

/* Appends one record to f (buffered; the caller flushes). path names the
 * file in errors. */
ics_status ics_tfrecord_write(FILE *f, const char *path, const void *payload, size_t len, ics_error *err);

/* A reader's buffer, grown as records need it. */
typedef struct ics_tfrecord_reader {
    FILE *f;
    const char *path;
    unsigned char *buf;
    size_t cap;
    long record_index; /* 0-based index of the next record */
} ics_tfrecord_reader;

void ics_tfrecord_reader_init(ics_tfrecord_reader *r, FILE *f, const char *path);
void ics_tfrecord_reader_free(ics_tfrecord_reader *r);
/* Reads the next record: *payload points into the reader's buffer (valid
 * until the next call). Returns ICS_OK with *at_end = 1 at a clean end of
 * file, ICS_ERR_FORMAT for a truncated record or a CRC mismatch (naming
 * the file, record and byte offset). */
ics_status ics_tfrecord_read(ics_tfrecord_reader *r, const unsigned char **payload, size_t *len, int *at_end,
                             ics_error *err);

#endif
