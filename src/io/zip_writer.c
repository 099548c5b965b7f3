/* ZIP archive writer: see zip_writer.h and APPNOTE.TXT 4.3.7 (local
 * header), 4.3.12 (central directory), 4.3.14-16 (ZIP64 end records),
 * 4.5.3 (ZIP64 extra field). */
#include "ics_build_config.h"
#include "io/zip_writer.h"
#include "io/zip_format.h"
#include "core/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct written_entry {
    char *name;
    uint32_t crc32;
    uint64_t size, offset;
} written_entry;

struct ics_zip_writer {
    FILE *file;
    char *path, *tmp_path;
    uint64_t offset; /* bytes written so far */
    uint64_t zip64_threshold;
    written_entry *entries;
    size_t count, cap;
};

/* DOS date of 1980-01-01 00:00 (day 1, month 1, year 0): fixed so that
 * the same content gives the same bytes. */
#define DOS_DATE_1980 0x0021u
/* General-purpose flag 11: names are UTF-8. */
#define FLAG_UTF8 0x0800u

static ics_status write_bytes(ics_zip_writer *zw, const void *p, size_t n, ics_error *err)
{
    if (n && fwrite(p, 1, n, zw->file) != n)
        return ICS_FAIL(err, ICS_ERR_IO, "%s: write failed: %s", zw->tmp_path, strerror(errno));
    zw->offset += n;
    return ICS_OK;
}

void ics_zip_writer_set_zip64_threshold(ics_zip_writer *zw, uint64_t bytes)
{
    zw->zip64_threshold = bytes;
}

ics_status ics_zip_writer_open(const char *path, ics_zip_writer **out, ics_error *err)
{
    *out = NULL;
    ics_zip_writer *zw = ics_calloc(1, sizeof *zw, "zip writer", err);
    if (!zw) return ICS_ERR_NOMEM;
    zw->zip64_threshold = 0xFFFFFFFFu;
    size_t n = strlen(path) + 32;
    zw->path = ics_strdup(path, err);
    zw->tmp_path = zw->path ? ics_malloc(n, "temporary file name", err) : NULL;
    if (!zw->tmp_path) {
        free(zw->path);
        free(zw);
        return ICS_ERR_NOMEM;
    }
    snprintf(zw->tmp_path, n, "%s.tmp.%ld", path, (long)getpid());
    zw->file = fopen(zw->tmp_path, "wb");
    if (!zw->file) {
        ics_status st =
            ICS_FAIL(err, ICS_ERR_IO, "%s: cannot create: %s", zw->tmp_path, strerror(errno));
        free(zw->tmp_path);
        free(zw->path);
        free(zw);
        return st;
    }
    *out = zw;
    return ICS_OK;
}

ics_status ics_zip_writer_add(ics_zip_writer *zw, const char *name, const void *data, size_t size,
                              ics_error *err)
{
    size_t name_len = strlen(name);
    if (name_len == 0 || name_len > 0xFFFF)
        return ICS_FAIL(err, ICS_ERR_INVALID, "%s: bad zip entry name length %zu", zw->path,
                        name_len);
    if (zw->count == zw->cap) {
        size_t cap = zw->cap ? zw->cap * 2 : 16;
        written_entry *p = ics_realloc(zw->entries, cap * sizeof *p, "zip entries", err);
        if (!p) return ICS_ERR_NOMEM;
        zw->entries = p;
        zw->cap = cap;
    }
    written_entry *e = &zw->entries[zw->count];
    e->name = ics_strdup(name, err);
    if (!e->name) return ICS_ERR_NOMEM;
    zw->count++;
    e->crc32 = ics_crc32_update(0, data, size);
    e->size = size;
    e->offset = zw->offset;
    int zip64 = size >= zw->zip64_threshold;
    /* extra: [ZIP64: id, 16, size, compressed size] then torch's padding
     * field "FB" sized so the data starts on a 64-byte boundary */
    uint8_t extra[20 + 4 + ICS_ZIP_TORCH_ALIGNMENT];
    size_t extra_len = 0;
    if (zip64) {
        ics_zip_wr16(extra, ICS_ZIP_EXTRA_ZIP64);
        ics_zip_wr16(extra + 2, 16);
        for (int k = 0; k < 2; k++) {
            ics_zip_wr32(extra + 4 + 8 * k, (uint32_t)size);
            ics_zip_wr32(extra + 8 + 8 * k, (uint32_t)((uint64_t)size >> 32));
        }
        extra_len = 20;
    }
    uint64_t start = zw->offset + ICS_ZIP_LOCAL_HEADER_SIZE + name_len + extra_len + 4;
    size_t pad = (size_t)((ICS_ZIP_TORCH_ALIGNMENT - start % ICS_ZIP_TORCH_ALIGNMENT) %
                          ICS_ZIP_TORCH_ALIGNMENT);
    ics_zip_wr16(extra + extra_len, ICS_ZIP_EXTRA_TORCH_PAD);
    ics_zip_wr16(extra + extra_len + 2, (uint16_t)pad);
    memset(extra + extra_len + 4, 'Z', pad);
    extra_len += 4 + pad;
    uint8_t h[ICS_ZIP_LOCAL_HEADER_SIZE];
    ics_zip_wr32(h, ICS_ZIP_LOCAL_SIG);
    ics_zip_wr16(h + 4, zip64 ? 45 : 20); /* version needed: 4.5 for ZIP64 */
    ics_zip_wr16(h + 6, FLAG_UTF8);
    ics_zip_wr16(h + 8, ICS_ZIP_METHOD_STORED);
    ics_zip_wr16(h + 10, 0);
    ics_zip_wr16(h + 12, DOS_DATE_1980);
    ics_zip_wr32(h + 14, e->crc32);
    ics_zip_wr32(h + 18, zip64 ? 0xFFFFFFFFu : (uint32_t)size);
    ics_zip_wr32(h + 22, zip64 ? 0xFFFFFFFFu : (uint32_t)size);
    ics_zip_wr16(h + 26, (uint16_t)name_len);
    ics_zip_wr16(h + 28, (uint16_t)extra_len);
    ics_status st = write_bytes(zw, h, sizeof h, err);
    if (st == ICS_OK) st = write_bytes(zw, name, name_len, err);
    if (st == ICS_OK) st = write_bytes(zw, extra, extra_len, err);
    if (st == ICS_OK) st = write_bytes(zw, data, size, err);
    return st;
}

/* One central directory record; the 32-bit fields that do not fit say
 * 0xFFFFFFFF and the ZIP64 extra field carries them (size, compressed
 * size, offset: only those, in that order). */
static ics_status write_central_entry(ics_zip_writer *zw, const written_entry *e, ics_error *err)
{
    size_t name_len = strlen(e->name);
    int big_size = e->size >= zw->zip64_threshold, big_offset = e->offset >= zw->zip64_threshold;
    uint8_t extra[28];
    size_t extra_len = 0;
    if (big_size || big_offset) {
        size_t p = 4;
        if (big_size) {
            for (int k = 0; k < 2; k++) {
                ics_zip_wr32(extra + p, (uint32_t)e->size);
                ics_zip_wr32(extra + p + 4, (uint32_t)(e->size >> 32));
                p += 8;
            }
        }
        if (big_offset) {
            ics_zip_wr32(extra + p, (uint32_t)e->offset);
            ics_zip_wr32(extra + p + 4, (uint32_t)(e->offset >> 32));
            p += 8;
        }
        ics_zip_wr16(extra, ICS_ZIP_EXTRA_ZIP64);
        ics_zip_wr16(extra + 2, (uint16_t)(p - 4));
        extra_len = p;
    }
    uint8_t h[ICS_ZIP_CENTRAL_HEADER_SIZE];
    memset(h, 0, sizeof h);
    ics_zip_wr32(h, ICS_ZIP_CENTRAL_SIG);
    ics_zip_wr16(h + 4, extra_len ? 45 : 20); /* made by: MS-DOS attributes, spec version */
    ics_zip_wr16(h + 6, extra_len ? 45 : 20);
    ics_zip_wr16(h + 8, FLAG_UTF8);
    ics_zip_wr16(h + 10, ICS_ZIP_METHOD_STORED);
    ics_zip_wr16(h + 14, DOS_DATE_1980);
    ics_zip_wr32(h + 16, e->crc32);
    ics_zip_wr32(h + 20, big_size ? 0xFFFFFFFFu : (uint32_t)e->size);
    ics_zip_wr32(h + 24, big_size ? 0xFFFFFFFFu : (uint32_t)e->size);
    ics_zip_wr16(h + 28, (uint16_t)name_len);
    ics_zip_wr16(h + 30, (uint16_t)extra_len);
    ics_zip_wr32(h + 42, big_offset ? 0xFFFFFFFFu : (uint32_t)e->offset);
    ics_status st = write_bytes(zw, h, sizeof h, err);
    if (st == ICS_OK) st = write_bytes(zw, e->name, name_len, err);
    if (st == ICS_OK) st = write_bytes(zw, extra, extra_len, err);
    return st;
}

static ics_status write_end_records(ics_zip_writer *zw, uint64_t cd_offset, ics_error *err)
{
    uint64_t cd_size = zw->offset - cd_offset, count = zw->count;
    int zip64 =
        count >= 0xFFFF || cd_offset >= zw->zip64_threshold || cd_size >= zw->zip64_threshold;
    ics_status st = ICS_OK;
    if (zip64) {
        uint64_t record_offset = zw->offset;
        uint8_t r[ICS_ZIP64_EOCD_SIZE + ICS_ZIP64_LOCATOR_SIZE];
        memset(r, 0, sizeof r);
        uint64_t fields[] = {ICS_ZIP64_EOCD_SIZE - 12, 0, 0, count, count, cd_size, cd_offset};
        ics_zip_wr32(r, ICS_ZIP64_EOCD_SIG);
        ics_zip_wr32(r + 4, (uint32_t)fields[0]); /* size of the rest of the record */
        ics_zip_wr16(r + 12, 45);
        ics_zip_wr16(r + 14, 45);
        for (int k = 3; k < 7; k++) {
            ics_zip_wr32(r + 24 + 8 * (k - 3), (uint32_t)fields[k]);
            ics_zip_wr32(r + 28 + 8 * (k - 3), (uint32_t)(fields[k] >> 32));
        }
        uint8_t *loc = r + ICS_ZIP64_EOCD_SIZE;
        ics_zip_wr32(loc, ICS_ZIP64_LOCATOR_SIG);
        ics_zip_wr32(loc + 8, (uint32_t)record_offset);
        ics_zip_wr32(loc + 12, (uint32_t)(record_offset >> 32));
        ics_zip_wr32(loc + 16, 1); /* total number of disks */
        st = write_bytes(zw, r, sizeof r, err);
    }
    uint8_t end[ICS_ZIP_EOCD_SIZE];
    memset(end, 0, sizeof end);
    ics_zip_wr32(end, ICS_ZIP_EOCD_SIG);
    ics_zip_wr16(end + 8, zip64 ? 0xFFFF : (uint16_t)count);
    ics_zip_wr16(end + 10, zip64 ? 0xFFFF : (uint16_t)count);
    ics_zip_wr32(end + 12, zip64 ? 0xFFFFFFFFu : (uint32_t)cd_size);
    ics_zip_wr32(end + 16, zip64 ? 0xFFFFFFFFu : (uint32_t)cd_offset);
    if (st == ICS_OK) st = write_bytes(zw, end, sizeof end, err);
    return st;
}

static void free_writer(ics_zip_writer *zw)
{
    for (size_t i = 0; i < zw->count; i++)
        free(zw->entries[i].name);
    free(zw->entries);
    free(zw->tmp_path);
    free(zw->path);
    free(zw);
}

void ics_zip_writer_abort(ics_zip_writer *zw)
{
    if (!zw) return;
    if (zw->file) fclose(zw->file);
    remove(zw->tmp_path);
    free_writer(zw);
}

ics_status ics_zip_writer_close(ics_zip_writer *zw, ics_error *err)
{
    uint64_t cd_offset = zw->offset;
    ics_status st = ICS_OK;
    for (size_t i = 0; i < zw->count && st == ICS_OK; i++)
        st = write_central_entry(zw, &zw->entries[i], err);
    if (st == ICS_OK) st = write_end_records(zw, cd_offset, err);
    if (st == ICS_OK && (fflush(zw->file) != 0 || fsync(fileno(zw->file)) != 0))
        st = ICS_FAIL(err, ICS_ERR_IO, "%s: flush failed: %s", zw->tmp_path, strerror(errno));
    int close_rc = fclose(zw->file);
    zw->file = NULL;
    if (st == ICS_OK && close_rc != 0)
        st = ICS_FAIL(err, ICS_ERR_IO, "%s: flush failed: %s", zw->tmp_path, strerror(errno));
    if (st == ICS_OK && rename(zw->tmp_path, zw->path) != 0)
        st = ICS_FAIL(err, ICS_ERR_IO, "cannot rename %s to %s: %s", zw->tmp_path, zw->path,
                      strerror(errno));
    if (st != ICS_OK) remove(zw->tmp_path);
    free_writer(zw);
    return st;
}
