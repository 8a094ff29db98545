/* Global data: a counter in .bss, an initialised variable in .data, a constant table in
 * .rodata and a string literal in .rodata.str1.1. The loader copies these sections into
 * memory owned by the loaded program, so .bss and .data keep their values between runs.
 *
 * Writes len as 16 lower-case hex digits into mem (as many as fit), then returns
 * (runs so far << 48) | (weight of len's low byte << 32) | (previous len & 0xffffffff),
 * where the weight is the number of set bits, looked up per nibble in a table. */
#include "bpf_types.h"

u64 runs;                       /* .bss */
u64 previous_len = 0xfeedbeef;  /* .data */

static const u8 nibble_bits[16] = {0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4};

u64 entry(u8 *mem, u64 len)
{
    static const char *const digits = "0123456789abcdef";

    runs++;
    u64 previous = previous_len;
    previous_len = len;

    for (u32 i = 0; i < 16 && i < len; i++)
        mem[i] = (u8)digits[(len >> (60 - 4 * i)) & 15];

    u64 weight = nibble_bits[len & 15] + nibble_bits[(len >> 4) & 15];
    return (runs << 48) | (weight << 32) | (previous & 0xffffffffULL);
}
