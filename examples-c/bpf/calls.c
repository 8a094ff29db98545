/* Local calls: static and global functions calling each other, one of them in a second
 * executable section.
 *
 * mem holds two little-endian u32 values a and b (r2 must be at least 8). Returns
 * combine(a, b) + fib(a % 32) + weigh(b), where combine(x, y) = gcd(x, y) * 1000 + (x ^ y)
 * and weigh(x) = 3x + 1; or all ones when mem is too short. */
#include "bpf_types.h"

#define NOINLINE __attribute__((noinline))

static u64 gcd(u64 a, u64 b);
static u64 fib(u32 n);
u64 combine(u64 x, u64 y);

/* Lives in its own executable section: the loader links functions from every one. */
__attribute__((section("sec1"))) NOINLINE u64 weigh(u64 x)
{
    return x * 3 + 1;
}

u64 entry(const u32 *mem, u64 len)
{
    if (len < 8)
        return ~0ULL;
    u64 a = mem[0];
    u64 b = mem[1];
    return combine(a, b) + fib((u32)(a % 32)) + weigh(b);
}

NOINLINE u64 combine(u64 x, u64 y)
{
    return gcd(x, y) * 1000 + (x ^ y);
}

static NOINLINE u64 gcd(u64 a, u64 b)
{
    while (b != 0) {
        u64 t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static NOINLINE u64 fib(u32 n)
{
    u64 a = 0, b = 1;
    for (u32 i = 0; i < n; i++) {
        u64 t = a + b;
        a = b;
        b = t;
    }
    return a;
}
