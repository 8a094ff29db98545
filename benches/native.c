/*
 * Native C twins of the BPF workloads in benches/workloads.rs.
 *
 * Each function has the JIT entry point's signature (uBPF's ubpf_jit_fn):
 * it gets the memory buffer and its length and returns a 64-bit value, so
 * the harness calls native code, JIT code and the interpreter on the same
 * bytes and compares the results before timing anything.
 *
 * The code is plain portable C, written the way a C programmer would write
 * each loop; the harness compiles it with the system compiler at -O2 (plus
 * the flags documented in benches/README.md) into a temporary shared object.
 * Every function must compute exactly what its BPF twin computes.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

/* Reads a little-endian u64 without alignment assumptions. */
static uint64_t load_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static uint32_t load_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* (1) The empty program: only the call and return are measured. */
EXPORT uint64_t bench_empty(uint8_t *mem, size_t len)
{
    (void)mem;
    (void)len;
    return 0;
}

/* (2) Adds the two u32 at mem[0..4] and mem[4..8] (64-bit sum). */
EXPORT uint64_t bench_add(uint8_t *mem, size_t len)
{
    (void)len;
    return (uint64_t)load_u32(mem) + (uint64_t)load_u32(mem + 4);
}

/* (3) Sums floor(log2(x)) over the u64 array filling mem, each computed by a
 * shift loop (log2 of 0 and of 1 count as 0). */
EXPORT uint64_t bench_log2(uint8_t *mem, size_t len)
{
    uint64_t sum = 0;
    for (size_t i = 0; i + 8 <= len; i += 8) {
        uint64_t x = load_u64(mem + i) >> 1;
        while (x != 0) {
            sum++;
            x >>= 1;
        }
    }
    return sum;
}

/* (4) Counts the primes below N (a u64 at mem[0..8]) by trial division. */
EXPORT uint64_t bench_primes(uint8_t *mem, size_t len)
{
    (void)len;
    uint64_t limit = load_u64(mem);
    uint64_t count = 0;
    for (uint64_t n = 2; n < limit; n++) {
        for (uint64_t d = 2;; d++) {
            if (d * d > n) {
                count++;
                break;
            }
            if (n % d == 0) {
                break;
            }
        }
    }
    return count;
}

/* (5) Copies the first half of mem onto the second half, one byte at a
 * time; returns the last byte copied (0 if none). */
EXPORT uint64_t bench_memcpy(uint8_t *mem, size_t len)
{
    size_t half = len >> 1;
    uint8_t *dst = mem + half;
    uint8_t last = 0;
    for (size_t i = 0; i < half; i++) {
        last = mem[i];
        dst[i] = last;
    }
    return last;
}

/* (6) strcmp of the NUL-terminated string at mem[0] with the one at
 * mem[len/2]; returns (difference << 32) | index of the deciding byte. */
EXPORT uint64_t bench_strcmp(uint8_t *mem, size_t len)
{
    const uint8_t *a = mem;
    const uint8_t *b = mem + (len >> 1);
    uint64_t i = 0;
    while (a[i] == b[i] && a[i] != 0) {
        i++;
    }
    int64_t diff = (int64_t)a[i] - (int64_t)b[i];
    return ((uint64_t)diff << 32) | i;
}

/* (7) A 30-case switch on each byte of mem, updating an accumulator.
 * benches/workloads.rs has the same cases in SWITCH_CASES (same order). */
EXPORT uint64_t bench_switch(uint8_t *mem, size_t len)
{
    uint64_t acc = 0x12345;
    for (size_t i = 0; i < len; i++) {
        switch (mem[i]) {
        case 0: acc += 0x1f3; break;
        case 1: acc ^= 0x5a5a5a; break;
        case 2: acc *= 0x1e3779b1; break;
        case 3: acc -= acc >> 3; break;
        case 4: acc = (acc << 5) | (acc >> 59); break;
        case 5: acc += 0x7777; break;
        case 6: acc ^= 0x13579b; break;
        case 7: acc *= 0x2545f491; break;
        case 8: acc -= acc >> 7; break;
        case 9: acc = (acc << 11) | (acc >> 53); break;
        case 10: acc += 0x1234567; break;
        case 11: acc ^= 0x0f0f0f0f; break;
        case 12: acc *= 0x61c88647; break;
        case 13: acc -= acc >> 11; break;
        case 14: acc = (acc << 17) | (acc >> 47); break;
        case 15: acc += 0x31; break;
        case 16: acc ^= 0x7fffffff; break;
        case 17: acc *= 0x5851f42d; break;
        case 18: acc -= acc >> 13; break;
        case 19: acc = (acc << 23) | (acc >> 41); break;
        case 20: acc += 0xabcdef; break;
        case 21: acc ^= 0x2468ace; break;
        case 22: acc *= 0x27d4eb2f; break;
        case 23: acc -= acc >> 17; break;
        case 24: acc = (acc << 29) | (acc >> 35); break;
        case 25: acc += 0x5; break;
        case 26: acc ^= 0x1; break;
        case 27: acc *= 0x165667b1; break;
        case 28: acc -= acc >> 19; break;
        case 29: acc = (acc << 31) | (acc >> 33); break;
        default: acc += 1; break;
        }
    }
    return acc;
}
