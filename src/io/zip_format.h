/*
 * ZIP container facts shared by the reader and the writer (APPNOTE.TXT,
 * PKWARE's specification), and the zip CRC-32. Little-endian throughout.
 *
 * PyTorch's torch.save and torch.jit.save write a ZIP archive whose entries
 * are STORED, aligned to 64 bytes by an extra field, under one top-level
 * folder (see docs/FORMATS-PTH.md).
 */
#ifndef ICS_IO_ZIP_FORMAT_H
#define ICS_IO_ZIP_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#define ICS_ZIP_LOCAL_SIG 0x04034b50u
#define ICS_ZIP_CENTRAL_SIG 0x02014b50u
#define ICS_ZIP_EOCD_SIG 0x06054b50u
#define ICS_ZIP64_EOCD_SIG 0x06064b50u
#define ICS_ZIP64_LOCATOR_SIG 0x07064b50u

#define ICS_ZIP_LOCAL_HEADER_SIZE 30
#define ICS_ZIP_CENTRAL_HEADER_SIZE 46
#define ICS_ZIP_EOCD_SIZE 22
#define ICS_ZIP64_EOCD_SIZE 56
#define ICS_ZIP64_LOCATOR_SIZE 20

#define ICS_ZIP_METHOD_STORED 0
#define ICS_ZIP_METHOD_DEFLATED 8

/* Extra-field ids: ZIP64 sizes, and the padding field torch uses ("FB"). */
#define ICS_ZIP_EXTRA_ZIP64 0x0001u
#define ICS_ZIP_EXTRA_TORCH_PAD 0x4246u

/* torch aligns every entry's data to this many bytes (so storages can be
 * mmapped with their natural alignment). */
#define ICS_ZIP_TORCH_ALIGNMENT 64

/* The CRC-32 of zip, gzip and PNG: reflected polynomial 0xEDB88320, initial
 * value and final xor 0xFFFFFFFF. Start with crc = 0 and feed the data in
 * any number of pieces; crc32("123456789") = 0xCBF43926. */
uint32_t ics_crc32_update(uint32_t crc, const void *data, size_t bytes);

static inline uint16_t ics_zip_rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t ics_zip_rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline uint64_t ics_zip_rd64(const uint8_t *p)
{
    return (uint64_t)ics_zip_rd32(p) | ((uint64_t)ics_zip_rd32(p + 4) << 32);
}

static inline void ics_zip_wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void ics_zip_wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

#endif
