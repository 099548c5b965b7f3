/*
 * src/log/crc32c.h: CRC-32C (Castagnoli), the checksum of TFRecord framing.
 * Reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF;
 * crc32c("123456789") == 0xE3069283. No Debian C library provides it.
 */
#ifndef ICS_LOG_CRC32C_H
#define ICS_LOG_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32C of n bytes. */
uint32_t ics_crc32c(const void *data, size_t n);
/* Continues a CRC: ics_crc32c_extend(ics_crc32c(a), b) == crc of a then b. */
uint32_t ics_crc32c_extend(uint32_t crc, const void *data, size_t n);
/* TFRecord's masked form: ((c >> 15) | (c << 17)) + 0xA282EAD8, 32-bit.
 * (A CRC of data that itself contains CRCs is weak; masking avoids it.) */
uint32_t ics_crc32c_mask(uint32_t crc);

#endif
