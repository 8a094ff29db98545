/* Fixed-width types for eBPF programs built with `clang -target bpf`, which has no libc
 * headers of its own. */
#ifndef RBPF_EXAMPLES_BPF_TYPES_H
#define RBPF_EXAMPLES_BPF_TYPES_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long s64;

/* Reads a big-endian (network order) 16-bit field; works at any alignment. */
static inline u16 load_be16(const u8 *p)
{
    return (u16)((p[0] << 8) | p[1]);
}

#endif
