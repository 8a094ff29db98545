/*
 * c_log2_bits: xor of floor(log2 x) over an array of u64 (0 gives 0), each computed without
 * loops: the 32-bit half that holds the top set bit is narrowed by halving steps, each step
 * a comparison turned into a shift amount. BPF has no set-on-condition instruction, so clang
 * emits every `(v > k) << s` as a short branch around a register move.
 */
#include "workload.h"

static inline uint32_t floor_log2_u32(uint32_t v)
{
    uint32_t shift = (uint32_t)(v > 0xffff) << 4;
    uint32_t bits = shift;
    v >>= shift;
    shift = (uint32_t)(v > 0xff) << 3;
    v >>= shift;
    bits |= shift;
    shift = (uint32_t)(v > 0xf) << 2;
    v >>= shift;
    bits |= shift;
    shift = (uint32_t)(v > 0x3) << 1;
    v >>= shift;
    bits |= shift;
    return bits | (v >> 1);
}

EXPORT uint64_t bench_c_log2_bits(uint8_t *mem, uint64_t len)
{
    const uint64_t *values = (const uint64_t *)mem;
    uint64_t count = len / 8;
    uint64_t acc = 0;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t x = values[i];
        uint32_t high = (uint32_t)(x >> 32);
        uint32_t bits = high ? 32 + floor_log2_u32(high) : floor_log2_u32((uint32_t)x);
        acc ^= bits;
    }
    return acc;
}
