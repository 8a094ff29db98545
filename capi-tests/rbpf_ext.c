/*
 * librbpf's extensions (rbpf.h): the version string (equal to the RBPF_VERSION_* macros,
 * which tests/header_up_to_date.rs takes from Cargo.toml), the assembler and disassembler with
 * malloc'd outputs, and rbpf_exec_jit.
 */
#include "capi_test.h"
#include <rbpf.h>

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
    return TEST_RESULT();
}
