/* IDIOM: switch. Sparse signed keys far apart (negative, small, large) that each pick a
 * value: no table covers them, so the keys are found by a search. */
#include "../corpus.h"
static int64_t weight(int32_t k)
{
    switch (k) {
    case -100000: return 11;
    case -8: return 13;
    case -1: return 17;
    case 7: return 19;
    case 100: return 23;
    case 4096: return 29;
    case 65537: return 31;
    case 1048576: return 37;
    case 305419896: return 41;
    case 2147483647: return 43;
    default: return -3;
    }
}
PROGRAM
{
    const int32_t *v = (const int32_t *)mem;
    uint64_t n = ARG_N(mem), acc = 0;
    (void)len;
    for (uint64_t i = 0; i < n; i++)
        acc = acc * 3 + (uint64_t)weight(v[i]);
    return acc;
}
