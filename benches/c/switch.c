/*
 * c_switch: folds an array of u32 through a dense 32-case switch (values 32 and above take
 * the default). Every case does something different, so no compiler can turn the switch
 * into a table of values: natively it becomes a jump table, for BPF (which has no indirect
 * jump) a tree of compares.
 */
#include "workload.h"

static uint64_t rotl(uint64_t x, unsigned s)
{
    return (x << s) | (x >> (64 - s));
}

EXPORT uint64_t bench_c_switch(uint8_t *mem, uint64_t len)
{
    const uint32_t *values = (const uint32_t *)mem;
    uint64_t count = len / 4;
    uint64_t acc = 0x12345;
    for (uint64_t i = 0; i < count; i++) {
        switch (values[i]) {
        case 0: acc += 0x1f3; break;
        case 1: acc ^= 0x5a5a5a; break;
        case 2: acc *= 0x1e3779b1; break;
        case 3: acc -= acc >> 3; break;
        case 4: acc = rotl(acc, 5); break;
        case 5: acc += 0x7777; break;
        case 6: acc ^= 0x13579b; break;
        case 7: acc *= 0x2545f491; break;
        case 8: acc -= acc >> 7; break;
        case 9: acc = rotl(acc, 11); break;
        case 10: acc += i; break;
        case 11: acc ^= i << 3; break;
        case 12: acc *= 0x61c88647; break;
        case 13: acc -= acc >> 11; break;
        case 14: acc = rotl(acc, 17); break;
        case 15: acc += 0x31; break;
        case 16: acc ^= 0x7fffffff; break;
        case 17: acc *= 0x5851f42d; break;
        case 18: acc -= acc >> 13; break;
        case 19: acc = rotl(acc, 23); break;
        case 20: acc += acc >> 5; break;
        case 21: acc ^= acc >> 9; break;
        case 22: acc *= 0x27d4eb2f; break;
        case 23: acc -= acc >> 17; break;
        case 24: acc = rotl(acc, 29); break;
        case 25: acc += 5; break;
        case 26: acc ^= 1; break;
        case 27: acc *= 0x165667b1; break;
        case 28: acc -= acc >> 19; break;
        case 29: acc = rotl(acc, 31); break;
        case 30: acc = ~acc; break;
        case 31: acc = (acc >> 1) + i; break;
        default: acc += 1; break;
        }
    }
    return acc;
}
