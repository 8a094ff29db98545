/*
 * One loaded VM run from 8 threads at once (ubpf_exec takes a const VM): interpreter and
 * JIT-compiled code, a helper that reads its 6th argument (each thread's own buffer), and an
 * error printer called from every thread.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "capi_test.h"

#define THREADS 8
#define RUNS 100
#define LEN 64

/* Helper 0: r1 plus 1000 times the first byte of the run's mem. */
static uint64_t
add_first_byte(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e, void* mem)
{
    (void)b, (void)c, (void)d, (void)e;
    return a + 1000u * ((const uint8_t*)mem)[0];
}

/* r0 = sum of the r2 bytes at r1; return add_first_byte(r0). */
static const struct test_insn sum_program[] = {
    MOV64_IMM(0, 0),
    MOV64_IMM(3, 0),
    INSN(0x3d, 3, 2, 6, 0), /* jge r3, r2, +6 */
    MOV64_REG(4, 1),
    ADD64_REG(4, 3),
    INSN(0x71, 5, 4, 0, 0), /* ldxb r5, [r4] */
    ADD64_REG(0, 5),
    ADD64_IMM(3, 1),
    INSN(0x05, 0, 0, -7, 0), /* ja -7 */
    MOV64_REG(1, 0),
    CALL_HELPER(0),
    EXIT()};

/* stb [r10], 0: always out of bounds. */
static const struct test_insn faulting[] = {INSN(0x72, 10, 0, 0, 0), EXIT()};

static struct ubpf_vm* vm;
static struct ubpf_vm* faulting_vm;
static ubpf_jit_fn compiled;
static atomic_int printed;
static atomic_int wrong;

static int
counting_printer(FILE* stream, const char* format, ...)
{
    (void)stream, (void)format;
    atomic_fetch_add(&printed, 1);
    return 0;
}

static void*
worker(void* arg)
{
    unsigned int id = (unsigned int)(uintptr_t)arg;
    uint8_t mem[LEN];
    uint64_t sum = 0;
    for (unsigned int i = 0; i < LEN; i++) {
        mem[i] = (uint8_t)(id * 31 + i * 7);
        sum += mem[i];
    }
    uint64_t expected = sum + 1000u * mem[0];
    for (int run = 0; run < RUNS; run++) {
        uint64_t ret = 0;
        if (ubpf_exec(vm, mem, sizeof(mem), &ret) != 0 || ret != expected) {
            atomic_fetch_add(&wrong, 1);
        }
        if (compiled(mem, sizeof(mem)) != expected) {
            atomic_fetch_add(&wrong, 1);
        }
        if (ubpf_exec(faulting_vm, mem, sizeof(mem), &ret) != -1) {
            atomic_fetch_add(&wrong, 1);
        }
    }
    return NULL;
}

int
main(void)
{
    vm = ubpf_create();
    CHECK_EQ(ubpf_register(vm, 0, "add_first_byte", as_external_function_t((void*)add_first_byte)), 0);
    CHECK_EQ(load_program(vm, sum_program, PROG_LEN(sum_program), NULL, 0), 0);
    char* errmsg = NULL;
    compiled = ubpf_compile(vm, &errmsg);
    CHECK(compiled != NULL);
    free(errmsg);
    faulting_vm = ubpf_create();
    ubpf_set_error_print(faulting_vm, counting_printer);
    CHECK_EQ(load_program(faulting_vm, faulting, PROG_LEN(faulting), NULL, 0), 0);
    if (compiled == NULL || test_failures != 0) {
        return 1;
    }

    pthread_t threads[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++) {
        CHECK_EQ(pthread_create(&threads[i], NULL, worker, (void*)i), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        CHECK_EQ(pthread_join(threads[i], NULL), 0);
    }
    CHECK_EQ(atomic_load(&wrong), 0);
    CHECK_EQ(atomic_load(&printed), THREADS * RUNS);

    ubpf_destroy(faulting_vm);
    ubpf_destroy(vm);
    return TEST_RESULT();
}
