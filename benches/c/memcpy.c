/*
 * c_memcpy: copies the first half of the buffer into the second half, one byte at a time,
 * and returns the last byte copied. The halves never overlap (`restrict`), so the native
 * compiler calls libc's memcpy; for BPF, -fno-builtin keeps the byte loop.
 */
#include "workload.h"

static void copy_bytes(uint8_t *restrict dst, const uint8_t *restrict src, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        dst[i] = src[i];
}

EXPORT uint64_t bench_c_memcpy(uint8_t *mem, uint64_t len)
{
    uint64_t half = len / 2;
    copy_bytes(mem + half, mem, half);
    return half ? mem[len / 2 + half - 1] : 0;
}
