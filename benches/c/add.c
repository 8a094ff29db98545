/* c_add: a + b, two u32 read from memory. */
#include "workload.h"

EXPORT uint64_t bench_c_add(uint8_t *mem, uint64_t len)
{
    const uint32_t *words = (const uint32_t *)mem;
    (void)len;
    return (uint64_t)words[0] + words[1];
}
