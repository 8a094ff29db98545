/* Helper calls: two helpers declared `extern` and resolved by name when the host has
 * registered them (clang emits these as calls with a relocation against an undefined symbol),
 * and one called by its numeric id, which needs no relocation.
 *
 * Returns sqrti(len * 1000) + (checksum(mem, len) << 16) + (mix(len, 7, 11, 13, 17) << 40). */
#include "bpf_types.h"

extern u64 sqrti(u64 x);
extern u64 checksum(const u8 *data, u64 len);

/* Helper number 1, whatever the host calls it. */
static u64 (*const mix)(u64, u64, u64, u64, u64) = (void *)1;

u64 entry(const u8 *mem, u64 len)
{
    u64 root = sqrti(len * 1000);
    u64 sum = checksum(mem, len);
    return root + (sum << 16) + (mix(len, 7, 11, 13, 17) << 40);
}
