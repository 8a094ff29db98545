/*
 * A uBPF user's program, built against an installed librbpf by tests/install.rs: through
 * pkg-config, CMake (find_package(rbpf) and find_package(ubpf)) and plain -lubpf. It uses
 * uBPF's headers only (ubpf.h and ebpf.h); with USE_RBPF_H it also checks rbpf.h's version.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ebpf.h>
#include <ubpf.h>
#ifdef USE_RBPF_H
#include <rbpf.h>
#endif

int
main(void)
{
#ifdef USE_RBPF_H
    if (strcmp(rbpf_version(), RBPF_VERSION_STRING) != 0) {
        fprintf(stderr, "rbpf_version() is %s, rbpf.h says %s\n", rbpf_version(),
                RBPF_VERSION_STRING);
        return 1;
    }
#endif
    /* r0 = *(uint32_t*)r1 + 1 */
    static const struct ebpf_inst program[] = {
        {.opcode = EBPF_OP_LDXW, .dst = BPF_REG_0, .src = BPF_REG_1},
        {.opcode = EBPF_OP_ADD64_IMM, .dst = BPF_REG_0, .imm = 1},
        {.opcode = EBPF_OP_EXIT},
    };
    struct ubpf_vm* vm = ubpf_create();
    char* errmsg = NULL;
    if (vm == NULL || ubpf_load(vm, program, sizeof program, &errmsg) != 0) {
        fprintf(stderr, "load failed: %s\n", errmsg ? errmsg : "?");
        free(errmsg);
        return 1;
    }
    uint32_t memory = 41;
    uint64_t interpreted = 0;
    if (ubpf_exec(vm, &memory, sizeof memory, &interpreted) != 0) {
        fprintf(stderr, "ubpf_exec failed\n");
        return 1;
    }
    ubpf_jit_fn compiled = ubpf_compile(vm, &errmsg);
    if (compiled == NULL) {
        fprintf(stderr, "compile failed: %s\n", errmsg ? errmsg : "?");
        free(errmsg);
        return 1;
    }
    uint64_t jitted = compiled(&memory, sizeof memory);
    printf("interpreter %llu, jit %llu\n", (unsigned long long)interpreted,
           (unsigned long long)jitted);
    ubpf_destroy(vm);
    return interpreted == 42 && jitted == 42 ? 0 : 1;
}
