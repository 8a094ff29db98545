/*
 * Shared by the variant corpus (every C file of tests/corpus/src). Every program has uBPF's signature,
 * `uint64_t f(uint8_t *mem, uint64_t len)`, and reads its parameters from a header at the
 * start of mem: four u64 words N, A, B, C (see ARG_*), then the data (DATA). N is the
 * element count of the loop that matters, so a large N makes the loop run off the end of the
 * buffer and fault mid-loop; A is an offset or a key; B a value; C a second count.
 * No libc: a BPF build has none.
 */
#ifndef RBPF_CORPUS_H
#define RBPF_CORPUS_H

typedef __UINT8_TYPE__ uint8_t;
typedef __UINT16_TYPE__ uint16_t;
typedef __UINT32_TYPE__ uint32_t;
typedef __UINT64_TYPE__ uint64_t;
typedef __INT8_TYPE__ int8_t;
typedef __INT32_TYPE__ int32_t;
typedef __INT64_TYPE__ int64_t;

#define ARG_N(mem) (((const uint64_t *)(mem))[0])
#define ARG_A(mem) (((const uint64_t *)(mem))[1])
#define ARG_B(mem) (((const uint64_t *)(mem))[2])
#define ARG_C(mem) (((const uint64_t *)(mem))[3])
#define DATA(mem) ((mem) + 32)

#define PROGRAM uint64_t prog(uint8_t *mem, uint64_t len)

#endif
