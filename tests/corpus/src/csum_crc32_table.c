/* CRC-32 (IEEE) with a 16-entry nibble table built on the stack, pointer form. */
#include "../corpus.h"
PROGRAM
{
    uint32_t table[16];
    for (uint32_t i = 0; i < 16; i++) {
        uint32_t c = i;
        for (int k = 0; k < 4; k++)
            c = (c & 1) ? (c >> 1) ^ 0xedb88320u : c >> 1;
        table[i] = c;
    }
    const uint8_t *p = DATA(mem), *end = DATA(mem) + ARG_N(mem);
    uint32_t crc = 0xffffffffu;
    (void)len;
    while (p != end) {
        crc ^= *p++;
        crc = (crc >> 4) ^ table[crc & 15];
        crc = (crc >> 4) ^ table[crc & 15];
    }
    return ~crc;
}
