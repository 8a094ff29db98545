/* A store into read-only data: `x` is a `const volatile` global, so clang places it in
 * .rodata and keeps both accesses. The program reads x, then writes through a pointer to
 * the very same bytes, in the same basic block. The loader keeps .rodata read-only, so every
 * run must fail with an out-of-bounds store at the store and leave x at 5 — in the JIT too,
 * where the load just before has already proven those bytes readable. */
#include "bpf_types.h"

const volatile int x = 5;

u64 entry(u8 *mem, u64 len)
{
    (void)mem;
    volatile int *p = (volatile int *)&x;
    int before = *p;
    *p = (int)len;
    return (u64)before;
}
