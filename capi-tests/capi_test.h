/*
 * Shared helpers of the C API tests (the .c files of capi-tests/): check macros that count failures,
 * an eBPF instruction builder, and an error printer that captures runtime messages.
 *
 * Each test file is a program whose main() returns 0 when every check passed; tests/capi.rs
 * compiles each one against include/ and target/<profile>/librbpf.so and runs it.
 */
#ifndef CAPI_TEST_H
#define CAPI_TEST_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ubpf.h>

static int test_failures;

/* Records a failed check with its location and keeps going. */
#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            test_failures++;                                                          \
        }                                                                             \
    } while (0)

/* Checks that two integers are equal, printing both on failure. */
#define CHECK_EQ(actual, expected)                                                         \
    do {                                                                                   \
        long long check_a_ = (long long)(actual);                                          \
        long long check_e_ = (long long)(expected);                                        \
        if (check_a_ != check_e_) {                                                        \
            fprintf(stderr, "%s:%d: %s is %lld (0x%llx), expected %lld (0x%llx)\n", __FILE__, \
                    __LINE__, #actual, check_a_, (unsigned long long)check_a_, check_e_,   \
                    (unsigned long long)check_e_);                                         \
            test_failures++;                                                               \
        }                                                                                  \
    } while (0)

/* Checks that a C string equals the expected text (NULL never does). */
#define CHECK_STR(actual, expected)                                                          \
    do {                                                                                     \
        const char* check_s_ = (actual);                                                     \
        if (check_s_ == NULL || strcmp(check_s_, (expected)) != 0) {                         \
            fprintf(stderr, "%s:%d: %s is \"%s\", expected \"%s\"\n", __FILE__, __LINE__,    \
                    #actual, check_s_ ? check_s_ : "(NULL)", (expected));                   \
            test_failures++;                                                                 \
        }                                                                                    \
    } while (0)

/* The exit status of main(). */
#define TEST_RESULT() (test_failures == 0 ? 0 : 1)

/* One eBPF instruction slot, laid out as in the bytecode (little-endian hosts). */
struct test_insn
{
    uint8_t opcode;
    uint8_t regs; /* dst in the low nibble, src in the high nibble */
    int16_t offset;
    int32_t imm;
};

/* An instruction from its fields. */
#define INSN(op, dst, src, off, imm_) {(uint8_t)(op), (uint8_t)((dst) | ((src) << 4)), (int16_t)(off), (int32_t)(imm_)}

/* Frequently used instructions. */
#define MOV64_IMM(dst, imm_) INSN(0xb7, dst, 0, 0, imm_)
#define MOV64_REG(dst, src) INSN(0xbf, dst, src, 0, 0)
#define ADD64_IMM(dst, imm_) INSN(0x07, dst, 0, 0, imm_)
#define ADD64_REG(dst, src) INSN(0x0f, dst, src, 0, 0)
#define CALL_HELPER(idx) INSN(0x85, 0, 0, 0, idx)
#define CALL_LOCAL(rel) INSN(0x85, 0, 1, 0, rel)
#define EXIT() INSN(0x95, 0, 0, 0, 0)
#define LDDW(dst, value)                                                           \
    INSN(0x18, dst, 0, 0, (int32_t)(uint32_t)((uint64_t)(value) & 0xffffffffu)), \
        INSN(0x00, 0, 0, 0, (int32_t)(uint32_t)((uint64_t)(value) >> 32))

/* Byte length of an instruction array, for ubpf_load. */
#define PROG_LEN(prog) ((uint32_t)sizeof(prog))

/* The text of every runtime error printed since the last reset (see capture_printer). */
static char captured[8192];

static inline void
capture_reset(void)
{
    captured[0] = '\0';
}

/* A uBPF error printer that appends every message to `captured` instead of printing it. */
static inline int
capture_printer(FILE* stream, const char* format, ...)
{
    (void)stream;
    size_t used = strlen(captured);
    va_list args;
    va_start(args, format);
    int n = vsnprintf(captured + used, sizeof(captured) - used, format, args);
    va_end(args);
    return n;
}

/*
 * Loads `len` bytes of bytecode into `vm`; on failure returns -1 and, if `message` is not
 * NULL, copies the error text into it (at most `size` bytes). Frees errmsg with free().
 */
static inline int
load_program(struct ubpf_vm* vm, const void* code, uint32_t len, char* message, size_t size)
{
    char* errmsg = NULL;
    int rc = ubpf_load(vm, code, len, &errmsg);
    if (message != NULL && size > 0) {
        snprintf(message, size, "%s", errmsg ? errmsg : "");
    }
    if (rc != 0 && errmsg == NULL) {
        fprintf(stderr, "ubpf_load failed without a message\n");
        test_failures++;
    }
    if (rc == 0 && errmsg != NULL) {
        fprintf(stderr, "ubpf_load succeeded but set errmsg \"%s\"\n", errmsg);
        test_failures++;
    }
    free(errmsg);
    return rc;
}

/* Reads a whole file into a malloc'd buffer (freed with free()); NULL on failure or if empty. */
static inline uint8_t*
read_file(const char* path, size_t* len)
{
    FILE* file = fopen(path, "rb");
    if (file == NULL) {
        return NULL;
    }
    uint8_t* bytes = NULL;
    if (fseek(file, 0, SEEK_END) == 0) {
        long size = ftell(file);
        if (size > 0 && fseek(file, 0, SEEK_SET) == 0 && (bytes = malloc((size_t)size)) != NULL) {
            if (fread(bytes, 1, (size_t)size, file) != (size_t)size) {
                free(bytes);
                bytes = NULL;
            }
            *len = (size_t)size;
        }
    }
    fclose(file);
    return bytes;
}

#endif /* CAPI_TEST_H */
