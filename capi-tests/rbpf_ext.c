/*
 * librbpf's extensions (rbpf.h): the version string (equal to the RBPF_VERSION_* macros,
 * which tests/header_up_to_date.rs takes from Cargo.toml), the assembler and disassembler with
 * malloc'd outputs, rbpf_exec_jit, rbpf_set_jit_tier, and background tier-up
 * (rbpf_set_background_tier_up, rbpf_wait_for_tier_up).
 */
#include "capi_test.h"
#include <rbpf.h>

/*
 * rbpf_set_jit_tier: every tier runs a summing loop to the interpreter's result and refuses
 * an access past the end of mem with the same message; the tiers really differ (the forced
 * baseline tier's code differs in size from the optimised tier's); bad arguments are refused.
 */
static void
check_jit_tiers(void)
{
/* Sums the bytes of mem at indices below r2 (EXIT_TEST "jge") or up to r2 ("jgt": the last
 * load is one byte past mem). */
#define SUM_TEXT(EXIT_TEST)      \
    "mov %r0, 0\n"                \
    "mov %r3, 0\n"                \
    "loop:\n"                     \
    EXIT_TEST " %r3, %r2, done\n" \
    "mov %r4, %r1\n"              \
    "add %r4, %r3\n"              \
    "ldxb %r5, [%r4]\n"           \
    "add %r0, %r5\n"              \
    "add %r3, 1\n"                \
    "ja loop\n"                   \
    "done:\n"                     \
    "exit\n"
    uint8_t* bytes = NULL;
    size_t len = 0;
    CHECK_EQ(rbpf_assemble(SUM_TEXT("jge"), &bytes, &len, NULL), 0);
    uint8_t* past_end = NULL;
    size_t past_end_len = 0;
    CHECK_EQ(rbpf_assemble(SUM_TEXT("jgt"), &past_end, &past_end_len, NULL), 0);
    static const int tiers[] = {RBPF_JIT_TIER_AUTO, RBPF_JIT_TIER_OPTIMISED, RBPF_JIT_TIER_FAST,
                                RBPF_JIT_TIER_BASELINE};
    size_t sizes[4] = {0};
    uint8_t mem[100];
    for (size_t i = 0; i < sizeof mem; i++) {
        mem[i] = (uint8_t)(i * 7);
    }
    for (size_t t = 0; t < 4; t++) {
        struct ubpf_vm* vm = ubpf_create();
        ubpf_set_error_print(vm, capture_printer);
        CHECK_EQ(rbpf_set_jit_tier(vm, tiers[t]), 0);
        CHECK_EQ(load_program(vm, bytes, (uint32_t)len, NULL, 0), 0);
        /* The sum of the first 100 bytes, as r2 = 100 asks, in both engines. */
        uint64_t interpreted = 0;
        uint64_t compiled = 0;
        CHECK_EQ(ubpf_exec(vm, mem, sizeof mem, &interpreted), 0);
        uint64_t expected = 0;
        for (size_t i = 0; i < sizeof mem; i++) {
            expected += mem[i];
        }
        CHECK_EQ(interpreted, expected);
        char* errmsg = NULL;
        uint8_t code[65536];
        sizes[t] = sizeof code;
        CHECK_EQ(ubpf_translate(vm, code, &sizes[t], &errmsg), 0);
        free(errmsg);
        errmsg = NULL;
        ubpf_jit_fn fn = ubpf_compile(vm, &errmsg);
        CHECK(fn != NULL);
        free(errmsg);
        if (fn != NULL) {
            compiled = fn(mem, sizeof mem);
            CHECK_EQ(compiled, expected);
        }
        ubpf_destroy(vm);
    }
    CHECK(sizes[1] != sizes[3]);

    /* One byte past mem: the same fault text from every tier. */
    for (size_t t = 0; t < 4; t++) {
        struct ubpf_vm* vm = ubpf_create();
        ubpf_set_error_print(vm, capture_printer);
        CHECK_EQ(rbpf_set_jit_tier(vm, tiers[t]), 0);
        CHECK_EQ(load_program(vm, past_end, (uint32_t)past_end_len, NULL, 0), 0);
        capture_reset();
        uint64_t ret = 0;
        CHECK_EQ(ubpf_exec(vm, mem, sizeof mem, &ret), -1);
        /* The first line: the second gives the stack's address, which differs by engine. */
        static char interpreted[sizeof captured];
        memcpy(interpreted, captured, sizeof captured);
        char* stack_line = strchr(interpreted, '\n');
        if (stack_line != NULL) {
            *stack_line = '\0';
        }
        CHECK(strstr(interpreted, "out of bounds") != NULL);
        char* errmsg = NULL;
        ubpf_jit_fn fn = ubpf_compile(vm, &errmsg);
        free(errmsg);
        CHECK(fn != NULL);
        if (fn != NULL) {
            capture_reset();
            CHECK_EQ(fn(mem, sizeof mem), UINT64_MAX);
            CHECK(strncmp(captured, interpreted, strlen(interpreted)) == 0);
            CHECK(captured[strlen(interpreted)] == '\n');
        }
        ubpf_destroy(vm);
    }

    /* Unknown tiers and a NULL vm are refused. */
    struct ubpf_vm* vm = ubpf_create();
    CHECK_EQ(rbpf_set_jit_tier(vm, 4), -1);
    CHECK_EQ(rbpf_set_jit_tier(vm, -1), -1);
    CHECK_EQ(rbpf_set_jit_tier(NULL, RBPF_JIT_TIER_AUTO), -1);
    ubpf_destroy(vm);
    free(past_end);
    free(bytes);
}

/*
 * Background tier-up: a branchy program large enough to tier up gives the same result from
 * its first code and, after rbpf_wait_for_tier_up says the optimised code is in place, from
 * the same pointer; with rbpf_set_background_tier_up(vm, 0) it compiles in one step. NULL
 * and uncompiled VMs are refused.
 */
static void
check_background_tier_up(void)
{
    /* r0 = the sum of the k in 0..59 with mem[0] > k, as 60 compare-and-add pairs. */
    static char text[8192];
    size_t used = (size_t)snprintf(text, sizeof text, "mov %%r0, 0\nldxb %%r5, [%%r1]\n");
    for (int k = 0; k < 60; k++) {
        used += (size_t)snprintf(text + used, sizeof text - used,
                                 "jle %%r5, %d, +1\nadd %%r0, %d\n", k, k);
    }
    snprintf(text + used, sizeof text - used, "exit\n");
    uint8_t* bytes = NULL;
    size_t len = 0;
    CHECK_EQ(rbpf_assemble(text, &bytes, &len, NULL), 0);
    uint8_t mem[16] = {41};
    uint64_t expected = 41 * 40 / 2;
    for (int background = 1; background >= 0; background--) {
        struct ubpf_vm* vm = ubpf_create();
        CHECK_EQ(rbpf_set_background_tier_up(vm, background), 0);
        CHECK_EQ(load_program(vm, bytes, (uint32_t)len, NULL, 0), 0);
        CHECK_EQ(rbpf_wait_for_tier_up(vm), -1);
        char* errmsg = NULL;
        ubpf_jit_fn fn = ubpf_compile(vm, &errmsg);
        free(errmsg);
        CHECK(fn != NULL);
        if (fn != NULL) {
            CHECK_EQ(fn(mem, sizeof mem), expected);
            CHECK_EQ(rbpf_wait_for_tier_up(vm), background);
            CHECK_EQ(fn(mem, sizeof mem), expected);
            errmsg = NULL;
            CHECK(ubpf_compile(vm, &errmsg) == fn);
            free(errmsg);
        }
        ubpf_destroy(vm);
    }
    free(bytes);
    CHECK_EQ(rbpf_set_background_tier_up(NULL, 1), -1);
    CHECK_EQ(rbpf_wait_for_tier_up(NULL), -1);
}

int
main(void)
{
    const char* version = rbpf_version();
    CHECK(version != NULL && strcmp(version, RBPF_VERSION_STRING) == 0);
    char expected[64];
    snprintf(expected, sizeof expected, "%d.%d.%d", RBPF_VERSION_MAJOR, RBPF_VERSION_MINOR,
             RBPF_VERSION_PATCH);
    CHECK(strcmp(version, expected) == 0);

    /* Assemble, load, run. */
    uint8_t* bytes = NULL;
    size_t len = 0;
    char* errmsg = NULL;
    CHECK_EQ(rbpf_assemble("mov %r0, 40\nadd %r0, 2\nexit\n", &bytes, &len, &errmsg), 0);
    CHECK(errmsg == NULL);
    CHECK_EQ(len, 24);
    struct ubpf_vm* vm = ubpf_create();
    CHECK_EQ(load_program(vm, bytes, (uint32_t)len, NULL, 0), 0);
    uint64_t ret = 0;
    CHECK_EQ(ubpf_exec(vm, NULL, 0, &ret), 0);
    CHECK_EQ(ret, 42);

    /* rbpf_exec_jit: -1 before compiling, the result after. */
    CHECK_EQ(rbpf_exec_jit(vm, NULL, 0, &ret), -1);
    CHECK(ubpf_compile(vm, &errmsg) != NULL);
    free(errmsg);
    ret = 0;
    CHECK_EQ(rbpf_exec_jit(vm, NULL, 0, &ret), 0);
    CHECK_EQ(ret, 42);
    ubpf_destroy(vm);

    /* Disassemble and assemble again: the same bytes. */
    char* text = NULL;
    CHECK_EQ(rbpf_disassemble(bytes, len, &text, &errmsg), 0);
    CHECK(text != NULL && strstr(text, "exit") != NULL);
    uint8_t* again = NULL;
    size_t again_len = 0;
    CHECK_EQ(rbpf_assemble(text, &again, &again_len, &errmsg), 0);
    CHECK(again_len == len && again != NULL && memcmp(again, bytes, len) == 0);
    free(again);
    free(text);
    free(bytes);

    /* Errors come back in errmsg. */
    bytes = NULL;
    CHECK_EQ(rbpf_assemble("frobnicate %r0\n", &bytes, &len, &errmsg), -1);
    CHECK(errmsg != NULL && bytes == NULL);
    free(errmsg);
    errmsg = NULL;
    static const uint8_t seven[7] = {0};
    CHECK_EQ(rbpf_disassemble(seven, sizeof(seven), &text, &errmsg), -1);
    CHECK_STR(errmsg, "bytecode length must be a multiple of 8");
    free(errmsg);
    errmsg = NULL;
    CHECK_EQ(rbpf_assemble(NULL, &bytes, &len, &errmsg), -1);
    CHECK_STR(errmsg, "invalid argument: text is NULL");
    free(errmsg);
    CHECK_EQ(rbpf_disassemble(NULL, 8, &text, NULL), -1);
    CHECK_EQ(rbpf_exec_jit(NULL, NULL, 0, &ret), -1);

    /* An empty text is an empty program. */
    CHECK_EQ(rbpf_assemble("", &bytes, &len, NULL), 0);
    CHECK_EQ(len, 0);
    free(bytes);

    check_jit_tiers();
    check_background_tier_up();
    return TEST_RESULT();
}
