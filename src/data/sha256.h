/*
 * src/data/sha256.h: SHA-256 (FIPS 180-4), used to verify downloaded
 * archives, to record the source's digest in a dataset and to checksum
 * shards in the manifest. A small own implementation: no dependency is
 * linked for it.
 */
#ifndef ICS_DATA_SHA256_H
#define ICS_DATA_SHA256_H

#include <stddef.h>
#include <stdint.h>
#include <icsparse/status.h>

typedef struct ics_sha256 {
    uint32_t state[8];
    uint64_t total_bytes;
    uint8_t block[64];
    size_t block_used;
} ics_sha256;

/* Starts a digest. */
void ics_sha256_init(ics_sha256 *ctx);
/* Feeds bytes (any length, any number of calls). */
void ics_sha256_update(ics_sha256 *ctx, const void *data, size_t bytes);
/* Finishes: 32 raw bytes into digest. */
void ics_sha256_final(ics_sha256 *ctx, uint8_t digest[32]);
/* Lower-case hex of a digest into hex[65] (NUL-terminated). */
void ics_sha256_hex(const uint8_t digest[32], char hex[65]);
/* Digest of a whole file as hex; an I/O error names the file. */
ics_status ics_sha256_file(const char *path, char hex[65], ics_error *err);

#endif
