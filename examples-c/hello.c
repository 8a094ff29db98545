/*
 * hello.c: embedding librbpf from C through the uBPF-compatible API.
 *
 * The bundled eBPF program computes the IPv4 header checksum of a packet: it sums the header
 * as 16-bit big-endian words and calls a helper registered by this program to fold and
 * invert the sum. The host runs it with the interpreter (ubpf_exec) and as native code
 * (ubpf_compile).
 *
 * Build and run from the repository root:  ./examples-c/run-hello.sh
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <ubpf.h>

/* One eBPF instruction: opcode, dst (low nibble) and src (high nibble) registers, offset,
   immediate. */
struct insn
{
    uint8_t opcode;
    uint8_t regs;
    int16_t offset;
    int32_t imm;
};

#define REGS(dst, src) ((uint8_t)((dst) | ((src) << 4)))

/*
 * r1 = packet, r2 = length (set by ubpf_exec). Sums 16-bit big-endian words, then returns
 * csum_fold(sum) (helper 0).
 */
static const struct insn checksum_program[] = {
    {0xb7, REGS(0, 0), 0, 0},  /* 0: mov r0, 0           sum = 0             */
    {0xb7, REGS(3, 0), 0, 0},  /* 1: mov r3, 0           i = 0               */
    {0x3d, REGS(3, 2), 7, 0},  /* 2: jge r3, r2, +7      while (i < len) {   */
    {0xbf, REGS(4, 1), 0, 0},  /* 3: mov r4, r1                              */
    {0x0f, REGS(4, 3), 0, 0},  /* 4: add r4, r3            p = packet + i    */
    {0x69, REGS(5, 4), 0, 0},  /* 5: ldxh r5, [r4]         w = *(u16 *)p     */
    {0xdc, REGS(5, 0), 0, 16}, /* 6: be16 r5               w = ntohs(w)      */
    {0x0f, REGS(0, 5), 0, 0},  /* 7: add r0, r5            sum += w          */
    {0x07, REGS(3, 0), 0, 2},  /* 8: add r3, 2             i += 2            */
    {0x05, REGS(0, 0), -8, 0}, /* 9: ja -8               }                   */
    {0xbf, REGS(1, 0), 0, 0},  /* 10: mov r1, r0                             */
    {0x85, REGS(0, 0), 0, 0},  /* 11: call 0             r0 = csum_fold(sum) */
    {0x95, REGS(0, 0), 0, 0},  /* 12: exit                                   */
};

/* Helper 0: folds a 32-bit one's-complement sum to 16 bits and inverts it. */
static uint64_t
csum_fold(uint64_t sum, uint64_t unused2, uint64_t unused3, uint64_t unused4, uint64_t unused5)
{
    (void)unused2, (void)unused3, (void)unused4, (void)unused5;
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return ~sum & 0xffff;
}

int
main(void)
{
    /* An IPv4 header (192.168.0.1 -> 192.168.0.199, UDP) with its checksum field zeroed. */
    uint8_t packet[20] = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                          0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};

    struct ubpf_vm* vm = ubpf_create();
    if (vm == NULL) {
        fprintf(stderr, "ubpf_create failed\n");
        return 1;
    }
    if (ubpf_register(vm, 0, "csum_fold", csum_fold) != 0) {
        fprintf(stderr, "ubpf_register failed\n");
        ubpf_destroy(vm);
        return 1;
    }

    char* errmsg = NULL;
    if (ubpf_load(vm, checksum_program, sizeof(checksum_program), &errmsg) != 0) {
        fprintf(stderr, "ubpf_load failed: %s\n", errmsg);
        free(errmsg);
        ubpf_destroy(vm);
        return 1;
    }

    uint64_t result = 0;
    if (ubpf_exec(vm, packet, sizeof(packet), &result) != 0) {
        fprintf(stderr, "ubpf_exec failed\n");
        ubpf_destroy(vm);
        return 1;
    }
    printf("IPv4 header checksum (interpreter): 0x%04llx\n", (unsigned long long)result);

    /* The same program as native code. The function belongs to the VM. */
    ubpf_jit_fn compiled = ubpf_compile(vm, &errmsg);
    if (compiled == NULL) {
        fprintf(stderr, "ubpf_compile failed: %s\n", errmsg);
        free(errmsg);
        ubpf_destroy(vm);
        return 1;
    }
    uint64_t jit_result = compiled(packet, sizeof(packet));
    printf("IPv4 header checksum (JIT):         0x%04llx\n", (unsigned long long)jit_result);
    if (jit_result != result) {
        fprintf(stderr, "the JIT and the interpreter disagree\n");
        ubpf_destroy(vm);
        return 1;
    }

    ubpf_destroy(vm);
    return 0;
}
