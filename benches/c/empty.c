/* c_empty: returns 0; measures only the cost of one call. */
#include "workload.h"

EXPORT uint64_t bench_c_empty(uint8_t *mem, uint64_t len)
{
    (void)mem;
    (void)len;
    return 0;
}
