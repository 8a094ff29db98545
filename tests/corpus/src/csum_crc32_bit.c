/* CRC-32 (IEEE), bit by bit. */
#include "../corpus.h"
PROGRAM
{
    const uint8_t *p = DATA(mem);
    uint64_t n = ARG_N(mem);
    uint32_t crc = 0xffffffffu;
    (void)len;
    for (uint64_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
    }
    return ~crc;
}
