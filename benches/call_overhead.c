/*
 * Per-call cost of running a tiny program through the C API: ubpf_exec (interpreter) and the
 * function from ubpf_compile (JIT), for three programs that differ only in how much stack
 * the engines must clear before the run (docs/sandbox.md, "Stack"):
 *
 *   empty    mov r0, 0; exit                                 no stack at all
 *   stack8   stdw [r10-8], 1; ldxdw r0, [r10-8]; exit        8 bytes (constant offsets)
 *   escaped  mov r1, r10; ldxdw r0, [r1-8]; exit             all 4096 bytes (r10 copied)
 *
 * and `helper100`, a loop making 100 calls to a trivial helper, for the cost of a helper
 * call (each one is a level of the per-thread re-entrancy record, docs/sandbox.md).
 *
 * Build and run against a release build (see benches/README.md):
 *   cargo build --release
 *   cc -O2 -Wall -Wextra -Werror -Iinclude benches/call_overhead.c -Ltarget/release -lrbpf \
 *      -Wl,-rpath,"$PWD/target/release" -o /tmp/call_overhead && /tmp/call_overhead
 */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <ubpf.h>

struct insn
{
    uint8_t opcode;
    uint8_t regs;
    int16_t offset;
    int32_t imm;
};

static const struct insn empty[] = {{0xb7, 0x00, 0, 0}, {0x95, 0, 0, 0}};
static const struct insn stack8[] = {{0x7a, 0x0a, -8, 1}, {0x79, 0xa0, -8, 0}, {0x95, 0, 0, 0}};
static const struct insn escaped[] = {{0xbf, 0xa1, 0, 0}, {0x79, 0x10, -8, 0}, {0x95, 0, 0, 0}};
/* mov r6, 100; loop: call 1; sub r6, 1; jne r6, 0, loop; exit */
static const struct insn helper100[] = {
    {0xb7, 0x06, 0, 100}, {0x85, 0, 0, 1}, {0x17, 0x06, 0, 1}, {0x55, 0x06, -3, 0}, {0x95, 0, 0, 0}};

static uint64_t
identity(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e)
{
    (void)b, (void)c, (void)d, (void)e;
    return a;
}

static double
now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Median of 7 samples of `iters` calls, in ns per call. */
static double
measure(struct ubpf_vm* vm, ubpf_jit_fn fn, long iters)
{
    double samples[7];
    uint64_t sink = 0;
    for (int s = 0; s < 7; s++) {
        double start = now();
        for (long i = 0; i < iters; i++) {
            uint64_t r = 0;
            if (fn) {
                r = fn(NULL, 0);
            } else {
                ubpf_exec(vm, NULL, 0, &r);
            }
            sink += r;
            __asm__ volatile("" : : "r"(sink) : "memory");
        }
        samples[s] = (now() - start) * 1e9 / (double)iters;
    }
    for (int i = 0; i < 7; i++) {
        for (int j = i + 1; j < 7; j++) {
            if (samples[j] < samples[i]) {
                double t = samples[i];
                samples[i] = samples[j];
                samples[j] = t;
            }
        }
    }
    return samples[3];
}

int
main(int argc, char** argv)
{
    long iters = argc > 1 ? atol(argv[1]) : 2000000;
    const struct
    {
        const char* name;
        const struct insn* code;
        size_t len;
    } programs[] = {
        {"empty", empty, sizeof(empty)},
        {"stack8", stack8, sizeof(stack8)},
        {"escaped", escaped, sizeof(escaped)},
        {"helper100", helper100, sizeof(helper100)},
    };
    printf("| program | ubpf_exec ns | ubpf_compile fn ns |\n|---|--:|--:|\n");
    for (size_t p = 0; p < sizeof(programs) / sizeof(programs[0]); p++) {
        struct ubpf_vm* vm = ubpf_create();
        char* errmsg = NULL;
        ubpf_register(vm, 1, "identity", identity);
        if (ubpf_load(vm, programs[p].code, (uint32_t)programs[p].len, &errmsg) != 0) {
            fprintf(stderr, "load: %s\n", errmsg);
            return 1;
        }
        ubpf_jit_fn fn = ubpf_compile(vm, &errmsg);
        if (fn == NULL) {
            fprintf(stderr, "compile: %s\n", errmsg);
            return 1;
        }
        double interp = measure(vm, NULL, iters / 10);
        double jit = measure(vm, fn, iters);
        printf("| %s | %.1f | %.2f |\n", programs[p].name, interp, jit);
        ubpf_destroy(vm);
    }
    return 0;
}
