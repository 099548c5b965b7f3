/* ZIP archive reader: see zip_reader.h. Layout facts from PKWARE's
 * APPNOTE.TXT (sections 4.3.7 local header, 4.3.12 central directory,
 * 4.3.14-16 ZIP64 end records, 4.5.3 ZIP64 extra field). */
#include "ics_build_config.h"
#include "io/zip_reader.h"
#include "io/zip_format.h"
#include "core/alloc.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

struct ics_zip_reader {
    const uint8_t *data;
    size_t size;
    char *label;
    ics_zip_entry *entries;
    size_t count;
};

/* The end-of-central-directory record sits in the last 22 + 65535 bytes
 * (its comment is at most 65535 bytes long); search backwards for its
 * signature so that a trailing comment does not hide it. */
static int find_eocd(const uint8_t *data, size_t size, size_t *pos)
{
    if (size < ICS_ZIP_EOCD_SIZE) return 0;
    size_t last = size - ICS_ZIP_EOCD_SIZE;
    size_t first = last > 65535 ? last - 65535 : 0;
    for (size_t p = last + 1; p-- > first;) {
        if (ics_zip_rd32(data + p) == ICS_ZIP_EOCD_SIG &&
            p + ICS_ZIP_EOCD_SIZE + ics_zip_rd16(data + p + 20) <= size) {
            *pos = p;
            return 1;
        }
    }
    return 0;
}

/* Reads the ZIP64 end record that a locator right before the classic end
 * record points to, replacing the 16/32-bit counts with 64-bit ones. */
static ics_status read_zip64_end(const ics_zip_reader *zr, size_t eocd, uint64_t *count,
                                 uint64_t *cd_size, uint64_t *cd_offset, ics_error *err)
{
    if (eocd < ICS_ZIP64_LOCATOR_SIZE ||
        ics_zip_rd32(zr->data + eocd - ICS_ZIP64_LOCATOR_SIZE) != ICS_ZIP64_LOCATOR_SIG)
        return ICS_OK; /* no ZIP64 records: keep the classic values */
    const uint8_t *loc = zr->data + eocd - ICS_ZIP64_LOCATOR_SIZE;
    uint64_t rec = ics_zip_rd64(loc + 8);
    if (rec > zr->size || zr->size - rec < ICS_ZIP64_EOCD_SIZE ||
        ics_zip_rd32(zr->data + rec) != ICS_ZIP64_EOCD_SIG)
        return ICS_FAIL(err, ICS_ERR_FORMAT,
                        "%s: bad zip archive: ZIP64 end record missing at offset %llu", zr->label,
                        (unsigned long long)rec);
    const uint8_t *p = zr->data + rec;
    if (ics_zip_rd32(p + 16) != 0 || ics_zip_rd32(p + 20) != 0)
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: multi-disk zip archives are not supported",
                        zr->label);
    *count = ics_zip_rd64(p + 32);
    *cd_size = ics_zip_rd64(p + 40);
    *cd_offset = ics_zip_rd64(p + 48);
    return ICS_OK;
}

/* Replaces the 32-bit sizes and offset that are 0xFFFFFFFF with the values
 * of the ZIP64 extra field, which lists only those, in this order. */
static ics_status apply_zip64_extra(const ics_zip_reader *zr, ics_zip_entry *e,
                                    const uint8_t *extra, size_t extra_len, ics_error *err)
{
    int need_size = e->size == 0xFFFFFFFFu, need_csize = e->compressed_size == 0xFFFFFFFFu,
        need_offset = e->local_offset == 0xFFFFFFFFu;
    if (!need_size && !need_csize && !need_offset) return ICS_OK;
    size_t p = 0;
    while (p + 4 <= extra_len) {
        uint16_t id = ics_zip_rd16(extra + p), len = ics_zip_rd16(extra + p + 2);
        if (p + 4 + len > extra_len) break;
        if (id == ICS_ZIP_EXTRA_ZIP64) {
            const uint8_t *f = extra + p + 4;
            size_t avail = len;
            uint64_t *slots[3] = {need_size ? &e->size : NULL,
                                  need_csize ? &e->compressed_size : NULL,
                                  need_offset ? &e->local_offset : NULL};
            for (int k = 0; k < 3; k++) {
                if (!slots[k]) continue;
                if (avail < 8) break;
                *slots[k] = ics_zip_rd64(f);
                f += 8;
                avail -= 8;
                if (k == 0) need_size = 0;
                if (k == 1) need_csize = 0;
                if (k == 2) need_offset = 0;
            }
            break;
        }
        p += 4 + (size_t)len;
    }
    if (need_size || need_csize || need_offset)
        return ICS_FAIL(err, ICS_ERR_FORMAT,
                        "%s: bad zip archive: entry '%s' lacks its ZIP64 sizes", zr->label,
                        e->name);
    return ICS_OK;
}

static ics_status read_central_directory(ics_zip_reader *zr, ics_error *err)
{
    size_t eocd;
    if (!find_eocd(zr->data, zr->size, &eocd))
        return ICS_FAIL(err, ICS_ERR_FORMAT,
                        "%s: bad zip archive: no end-of-central-directory record (truncated?)",
                        zr->label);
    const uint8_t *p = zr->data + eocd;
    uint64_t count = ics_zip_rd16(p + 10), cd_size = ics_zip_rd32(p + 12),
             cd_offset = ics_zip_rd32(p + 16);
    if (ics_zip_rd16(p + 4) != 0 && ics_zip_rd16(p + 4) != 0xFFFF)
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: multi-disk zip archives are not supported",
                        zr->label);
    ics_status st = read_zip64_end(zr, eocd, &count, &cd_size, &cd_offset, err);
    if (st != ICS_OK) return st;
    if (cd_offset > zr->size || cd_size > zr->size - cd_offset ||
        count > cd_size / ICS_ZIP_CENTRAL_HEADER_SIZE)
        return ICS_FAIL(err, ICS_ERR_FORMAT,
                        "%s: bad zip archive: central directory (%llu entries, %llu bytes at "
                        "offset %llu) lies outside the %zu-byte file (truncated?)",
                        zr->label, (unsigned long long)count, (unsigned long long)cd_size,
                        (unsigned long long)cd_offset, zr->size);
    zr->entries = ics_calloc(count ? count : 1, sizeof *zr->entries, "zip entries", err);
    if (!zr->entries) return ICS_ERR_NOMEM;
    const uint8_t *cd = zr->data + cd_offset, *end = cd + cd_size;
    for (uint64_t i = 0; i < count; i++) {
        if (end - cd < ICS_ZIP_CENTRAL_HEADER_SIZE || ics_zip_rd32(cd) != ICS_ZIP_CENTRAL_SIG)
            return ICS_FAIL(err, ICS_ERR_FORMAT,
                            "%s: bad zip archive: central directory entry %llu is damaged",
                            zr->label, (unsigned long long)i);
        size_t name_len = ics_zip_rd16(cd + 28), extra_len = ics_zip_rd16(cd + 30),
               comment_len = ics_zip_rd16(cd + 32);
        size_t record = ICS_ZIP_CENTRAL_HEADER_SIZE + name_len + extra_len + comment_len;
        if ((size_t)(end - cd) < record)
            return ICS_FAIL(err, ICS_ERR_FORMAT,
                            "%s: bad zip archive: central directory entry %llu is damaged",
                            zr->label, (unsigned long long)i);
        ics_zip_entry *e = &zr->entries[zr->count];
        e->name = ics_malloc(name_len + 1, "zip entry name", err);
        if (!e->name) return ICS_ERR_NOMEM;
        memcpy(e->name, cd + ICS_ZIP_CENTRAL_HEADER_SIZE, name_len);
        e->name[name_len] = '\0';
        zr->count++;
        uint16_t flags = ics_zip_rd16(cd + 8);
        e->method = ics_zip_rd16(cd + 10);
        e->crc32 = ics_zip_rd32(cd + 16);
        e->compressed_size = ics_zip_rd32(cd + 20);
        e->size = ics_zip_rd32(cd + 24);
        e->local_offset = ics_zip_rd32(cd + 42);
        if (flags & 1u)
            return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: zip entry '%s' is encrypted", zr->label,
                            e->name);
        st = apply_zip64_extra(zr, e, cd + ICS_ZIP_CENTRAL_HEADER_SIZE + name_len, extra_len, err);
        if (st != ICS_OK) return st;
        cd += record;
    }
    return ICS_OK;
}

ics_status ics_zip_reader_open(const uint8_t *data, size_t size, const char *label,
                               ics_zip_reader **out, ics_error *err)
{
    *out = NULL;
    ics_zip_reader *zr = ics_calloc(1, sizeof *zr, "zip reader", err);
    if (!zr) return ICS_ERR_NOMEM;
    zr->data = data;
    zr->size = size;
    zr->label = ics_strdup(label ? label : "zip archive", err);
    if (!zr->label) {
        free(zr);
        return ICS_ERR_NOMEM;
    }
    ics_status st = read_central_directory(zr, err);
    if (st != ICS_OK) {
        ics_zip_reader_close(zr);
        return st;
    }
    *out = zr;
    return ICS_OK;
}

void ics_zip_reader_close(ics_zip_reader *zr)
{
    if (!zr) return;
    for (size_t i = 0; i < zr->count; i++)
        free(zr->entries[i].name);
    free(zr->entries);
    free(zr->label);
    free(zr);
}

size_t ics_zip_entry_count(const ics_zip_reader *zr)
{
    return zr->count;
}

const ics_zip_entry *ics_zip_entry_at(const ics_zip_reader *zr, size_t index)
{
    return index < zr->count ? &zr->entries[index] : NULL;
}

const ics_zip_entry *ics_zip_find(const ics_zip_reader *zr, const char *name)
{
    for (size_t i = 0; i < zr->count; i++)
        if (strcmp(zr->entries[i].name, name) == 0) return &zr->entries[i];
    return NULL;
}

/* zlib's allocations go through the checked allocator, so a failure names
 * itself and the tests' failure injection reaches zlib too. */
static voidpf zlib_alloc(voidpf opaque, uInt items, uInt size)
{
    return ics_calloc(items, size, "zlib inflate state", opaque);
}

static void zlib_free(voidpf opaque, voidpf p)
{
    (void)opaque;
    free(p);
}

/* Raw DEFLATE (no zlib header: windowBits -15) into a buffer of exactly
 * the expected size; zlib's 32-bit counters are fed in pieces. */
static ics_status inflate_entry(const ics_zip_reader *zr, const ics_zip_entry *e,
                                const uint8_t *src, uint8_t *dst, ics_error *err)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    zs.zalloc = zlib_alloc;
    zs.zfree = zlib_free;
    zs.opaque = err;
    if (inflateInit2(&zs, -15) != Z_OK)
        return err && err->status != ICS_OK ? err->status : ICS_ERR_NOMEM;
    uint64_t in_left = e->compressed_size, out_left = e->size;
    zs.next_in = (Bytef *)src;
    zs.next_out = dst;
    int rc = Z_OK;
    while (rc == Z_OK) {
        if (zs.avail_in == 0 && in_left > 0) {
            zs.avail_in = in_left > UINT_MAX ? UINT_MAX : (uInt)in_left;
            in_left -= zs.avail_in;
        }
        if (zs.avail_out == 0 && out_left > 0) {
            zs.avail_out = out_left > UINT_MAX ? UINT_MAX : (uInt)out_left;
            out_left -= zs.avail_out;
        }
        rc = inflate(&zs, Z_NO_FLUSH);
        if (rc == Z_BUF_ERROR && (zs.avail_in != 0 || in_left != 0) &&
            (zs.avail_out != 0 || out_left != 0))
            rc = Z_OK; /* zlib wants the next piece of a buffer */
    }
    int complete =
        rc == Z_STREAM_END && zs.total_out == e->size && zs.avail_out == 0 && out_left == 0;
    inflateEnd(&zs);
    if (rc == Z_MEM_ERROR) return err && err->status != ICS_OK ? err->status : ICS_ERR_NOMEM;
    if (!complete)
        return ICS_FAIL(err, ICS_ERR_FORMAT,
                        "%s: zip entry '%s': compressed data is damaged or does not inflate to "
                        "%llu bytes",
                        zr->label, e->name, (unsigned long long)e->size);
    return ICS_OK;
}

ics_status ics_zip_extract(const ics_zip_reader *zr, const ics_zip_entry *e, uint64_t max_size,
                           uint8_t **out, size_t *out_size, ics_error *err)
{
    *out = NULL;
    *out_size = 0;
    if (e->local_offset > zr->size || zr->size - e->local_offset < ICS_ZIP_LOCAL_HEADER_SIZE ||
        ics_zip_rd32(zr->data + e->local_offset) != ICS_ZIP_LOCAL_SIG)
        return ICS_FAIL(err, ICS_ERR_FORMAT,
                        "%s: bad zip archive: local header of '%s' missing at offset %llu",
                        zr->label, e->name, (unsigned long long)e->local_offset);
    const uint8_t *lh = zr->data + e->local_offset;
    size_t name_len = ics_zip_rd16(lh + 26), extra_len = ics_zip_rd16(lh + 28);
    uint64_t data_offset = e->local_offset + ICS_ZIP_LOCAL_HEADER_SIZE + name_len + extra_len;
    if (name_len != strlen(e->name) || data_offset > zr->size ||
        memcmp(lh + ICS_ZIP_LOCAL_HEADER_SIZE, e->name, name_len) != 0 ||
        ics_zip_rd16(lh + 8) != e->method)
        return ICS_FAIL(err, ICS_ERR_FORMAT,
                        "%s: bad zip archive: local header of '%s' disagrees with the central "
                        "directory",
                        zr->label, e->name);
    if (e->compressed_size > zr->size - data_offset)
        return ICS_FAIL(err, ICS_ERR_FORMAT,
                        "%s: zip entry '%s' is truncated: %llu bytes expected at offset %llu, "
                        "file has %zu",
                        zr->label, e->name, (unsigned long long)e->compressed_size,
                        (unsigned long long)data_offset, zr->size);
    if (e->method != ICS_ZIP_METHOD_STORED && e->method != ICS_ZIP_METHOD_DEFLATED)
        return ICS_FAIL(err, ICS_ERR_FORMAT,
                        "%s: zip entry '%s' uses compression method %u (only stored and deflated "
                        "are supported)",
                        zr->label, e->name, (unsigned)e->method);
    if (e->method == ICS_ZIP_METHOD_STORED && e->compressed_size != e->size)
        return ICS_FAIL(
            err, ICS_ERR_FORMAT,
            "%s: bad zip archive: stored entry '%s' has different stored and real sizes", zr->label,
            e->name);
    /* Deflate expands at most ~1032:1; a larger claim is a decompression
     * bomb or a damaged header, and would make us allocate for nothing. */
    if ((max_size && e->size > max_size) || e->size >= SIZE_MAX / 2 ||
        (e->method == ICS_ZIP_METHOD_DEFLATED && e->size / 1032 > e->compressed_size + 1))
        return ICS_FAIL(err, ICS_ERR_FORMAT,
                        "%s: zip entry '%s' claims an implausible size (%llu bytes)", zr->label,
                        e->name, (unsigned long long)e->size);
    uint8_t *buf = ics_malloc((size_t)e->size + 1, e->name, err);
    if (!buf) return ICS_ERR_NOMEM;
    const uint8_t *src = zr->data + data_offset;
    if (e->method == ICS_ZIP_METHOD_STORED) {
        memcpy(buf, src, (size_t)e->size);
    } else {
        ics_status st = inflate_entry(zr, e, src, buf, err);
        if (st != ICS_OK) {
            free(buf);
            return st;
        }
    }
    buf[e->size] = '\0';
    uint32_t crc = ics_crc32_update(0, buf, (size_t)e->size);
    if (crc != e->crc32) {
        free(buf);
        return ICS_FAIL(err, ICS_ERR_FORMAT,
                        "%s: zip entry '%s' is corrupt: CRC-32 %08x, expected %08x", zr->label,
                        e->name, crc, e->crc32);
    }
    *out = buf;
    *out_size = (size_t)e->size;
    return ICS_OK;
}
