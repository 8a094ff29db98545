/*
 * Shared by the clang-built workloads in this folder. Each workload is one C file with one
 * function, compiled twice from the same source: for BPF (`clang -O2 -target bpf -fno-builtin`,
 * the checked-in <name>.o) and natively (the system compiler at -O2, into the bench's shared
 * object). The function gets the memory buffer and its length, uBPF's calling convention.
 */
#ifndef RBPF_BENCH_WORKLOAD_H
#define RBPF_BENCH_WORKLOAD_H

/* The compilers' own fixed-width types: no libc headers, which a BPF build lacks. */
typedef __UINT8_TYPE__ uint8_t;
typedef __UINT32_TYPE__ uint32_t;
typedef __INT32_TYPE__ int32_t;
typedef __UINT64_TYPE__ uint64_t;

#define EXPORT __attribute__((visibility("default")))

#endif
