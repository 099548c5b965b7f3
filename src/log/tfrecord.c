/*
 * src/log/tfrecord.c: TFRecord framing (see tfrecord.h). Integers are
 * encoded byte by byte so the files are the same on any host.
 */
#include "ics_build_config.h"
#include "log/tfrecord.h"
#include "core/alloc.h"
#include "log/crc32c.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Records larger than this are refused by the reader (a corrupt length
 * would otherwise ask for gigabytes). TensorBoard scalars are ~100 bytes. */
#define TFRECORD_MAX_LEN (64u << 20)

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

ics_status ics_tfrecord_write(FILE *f, const char *path, const void *payload, size_t len, ics_error *err)
{
    unsigned char header[12], footer[4];
    uint64_t n = len;
    for (int i = 0; i < 8; i++) header[i] = (unsigned char)(n >> (8 * i));
    put_u32(header + 8, ics_crc32c_mask(ics_crc32c(header, 8)));
    put_u32(footer, ics_crc32c_mask(ics_crc32c(payload, len)));
    if (fwrite(header, 1, sizeof header, f) != sizeof header || fwrite(payload, 1, len, f) != len ||
        fwrite(footer, 1, sizeof footer, f) != sizeof footer)
        return ICS_FAIL(err, ICS_ERR_IO, "%s: cannot write a record: %s", path, strerror(errno));
    return ICS_OK;
}

void ics_tfrecord_reader_init(ics_tfrecord_reader *r, FILE *f, const char *path)
{
    memset(r, 0, sizeof *r);
    r->f = f;
    r->path = path;
}

void ics_tfrecord_reader_free(ics_tfrecord_reader *r)
{
    free(r->buf);
    r->buf = NULL;
    r->cap = 0;
}

ics_status ics_tfrecord_read(ics_tfrecord_reader *r, const unsigned char **payload, size_t *len, int *at_end,
                             ics_error *err)
{
    *at_end = 0;
    *payload = NULL;
    *len = 0;
    long offset = ftell(r->f);
    unsigned char header[12];
    size_t got = fread(header, 1, sizeof header, r->f);
    if (got == 0 && feof(r->f)) {
        *at_end = 1;
        return ICS_OK;
    }
    if (got != sizeof header)
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: record %ld at byte %ld: truncated header (%zu of 12 bytes)",
                        r->path, r->record_index, offset, got);
    if (ics_crc32c_mask(ics_crc32c(header, 8)) != get_u32(header + 8))
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: record %ld at byte %ld: length CRC mismatch", r->path,
                        r->record_index, offset);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | header[i];
    if (n > TFRECORD_MAX_LEN)
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: record %ld at byte %ld: length %llu exceeds %u bytes", r->path,
                        r->record_index, offset, (unsigned long long)n, TFRECORD_MAX_LEN);
    if (n + 4 > r->cap) {
        unsigned char *grown = ics_realloc(r->buf, (size_t)n + 4, "tfrecord buffer", err);
        if (!grown) return ICS_ERR_NOMEM;
        r->buf = grown;
        r->cap = (size_t)n + 4;
    }
    got = fread(r->buf, 1, (size_t)n + 4, r->f);
    if (got != n + 4)
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: record %ld at byte %ld: truncated payload (%zu of %llu bytes)",
                        r->path, r->record_index, offset, got, (unsigned long long)n + 4);
    if (ics_crc32c_mask(ics_crc32c(r->buf, (size_t)n)) != get_u32(r->buf + n))
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: record %ld at byte %ld: payload CRC mismatch", r->path,
                        r->record_index, offset);
    r->record_index++;
    *payload = r->buf;
    *len = (size_t)n;
    return ICS_OK;
}
