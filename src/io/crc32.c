/* The zip CRC-32 (see zip_format.h). Not the CRC-32C of TensorBoard's
 * records: different polynomial. */
#include "ics_build_config.h"
#include "io/zip_format.h"

#include <stdatomic.h>

static uint32_t crc_table[256];
static atomic_int crc_table_ready;

/* Entry k of the table is the CRC remainder of the single byte k, computed
 * bit by bit with the reflected polynomial. Building it twice from two
 * threads writes the same values, so a race is harmless; the atomic flag
 * only publishes the finished table. */
static void build_table(void)
{
    for (uint32_t k = 0; k < 256; k++) {
        uint32_t c = k;
        for (int bit = 0; bit < 8; bit++)
            c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[k] = c;
    }
    atomic_store(&crc_table_ready, 1);
}

uint32_t ics_crc32_update(uint32_t crc, const void *data, size_t bytes)
{
    if (!atomic_load(&crc_table_ready)) build_table();
    const uint8_t *p = data;
    uint32_t c = crc ^ 0xFFFFFFFFu;
    for (size_t i = 0; i < bytes; i++)
        c = crc_table[(c ^ p[i]) & 0xFFu] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}
