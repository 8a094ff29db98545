/*
 * bpf_conformance_plugin.c: a plugin for the bpf_conformance test runner
 * (https://github.com/Alan-Jowett/bpf_conformance), written against the uBPF API only, so it
 * builds unchanged against uBPF or librbpf.
 *
 * Protocol (as the runner drives it):
 *
 *     bpf_conformance_plugin [MEMHEX] [--program HEX] [--jit | --interpret]
 *                            [--profile legacy|safe] [--debug]   < PROGRAMHEX
 *
 * MEMHEX and the program are hex bytes ("b7  00  00 ..."), separated by one or more spaces.
 * The program is read from the first line of standard input unless --program gives it.
 * On success the plugin prints r0 as lowercase hex (no "0x") and a newline, and exits 0.
 * On failure it prints one line saying why and exits 1; load errors go to standard output as
 * "Failed to load code: <message>", which is what the runner compares with a test's
 * expected error.
 *
 * Every engine entry point is exercised, and they must agree:
 *   interpreter: helpers through an external dispatcher, then the same program through the
 *                indexed helper table, then ubpf_exec_ex on a caller-supplied 512-byte stack;
 *   JIT:         the compiled function with the dispatcher, the same function after switching
 *                to indexed helpers, a copy made with ubpf_copy_jit in a fresh executable
 *                mapping, and the extended-mode function on a 512-byte stack.
 * Each run gets a fresh copy of the input memory.
 *
 * Build (against librbpf):
 *   cc -Wall -Wextra -Werror -std=c11 -Iinclude examples-c/bpf_conformance_plugin.c \
 *      -Ltarget/release -Wl,-rpath,$PWD/target/release -lrbpf -lm -o bpf_conformance_plugin
 */

#define _GNU_SOURCE /* getline, mmap's MAP_ANONYMOUS */

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ubpf.h"

/* ---------------------------------------------------------------------------------------- */
/* The conformance suite's helper table                                                      */
/* ---------------------------------------------------------------------------------------- */

/* Helper 0: packs the low byte of each argument into one number, p0's byte highest. */
static uint64_t
gather_bytes(uint64_t p0, uint64_t p1, uint64_t p2, uint64_t p3, uint64_t p4)
{
    return ((p0 & 0xff) << 32) | ((p1 & 0xff) << 24) | ((p2 & 0xff) << 16) | ((p3 & 0xff) << 8) |
           (p4 & 0xff);
}

/* Helper 1: XORs the p1 bytes at address p0 with 42. */
static uint64_t
memfrob_helper(uint64_t p0, uint64_t p1, uint64_t p2, uint64_t p3, uint64_t p4)
{
    (void)p2;
    (void)p3;
    (void)p4;
    unsigned char* bytes = (unsigned char*)(uintptr_t)p0;
    for (uint64_t i = 0; i < p1; i++) {
        bytes[i] ^= 42;
    }
    return 0;
}

/* Helper 2: does nothing. */
static uint64_t
no_op(uint64_t p0, uint64_t p1, uint64_t p2, uint64_t p3, uint64_t p4)
{
    (void)p0;
    (void)p1;
    (void)p2;
    (void)p3;
    (void)p4;
    return 0;
}

/* Helper 3: the square root of p0, rounded down through a double as the reference does. */
static uint64_t
sqrti(uint64_t p0, uint64_t p1, uint64_t p2, uint64_t p3, uint64_t p4)
{
    (void)p1;
    (void)p2;
    (void)p3;
    (void)p4;
    return (uint64_t)sqrt((double)p0);
}

/* Helper 4: strcmp of the NUL-terminated strings at p0 and p1 (sign-extended to 64 bits). */
static uint64_t
strcmp_ext(uint64_t p0, uint64_t p1, uint64_t p2, uint64_t p3, uint64_t p4)
{
    (void)p2;
    (void)p3;
    (void)p4;
    return (uint64_t)(int64_t)strcmp((const char*)(uintptr_t)p0, (const char*)(uintptr_t)p1);
}

/* Helper 5: returns p0; registered as the unwind helper, so a 0 result ends the program. */
static uint64_t
unwind(uint64_t p0, uint64_t p1, uint64_t p2, uint64_t p3, uint64_t p4)
{
    (void)p1;
    (void)p2;
    (void)p3;
    (void)p4;
    return p0;
}

static const external_function_t helper_table[] = {
    gather_bytes, memfrob_helper, no_op, sqrti, strcmp_ext, unwind,
};

#define HELPER_COUNT (sizeof(helper_table) / sizeof(helper_table[0]))
#define UNWIND_HELPER_INDEX 5
#define EXTERNAL_STACK_SIZE 512

static uint64_t
dispatch_helper(
    uint64_t p0, uint64_t p1, uint64_t p2, uint64_t p3, uint64_t p4, unsigned int index, void* cookie)
{
    (void)cookie;
    /* The validator admits only table indices, so the load refuses any other call. */
    return helper_table[index](p0, p1, p2, p3, p4);
}

static bool
validate_helper(unsigned int index, const struct ubpf_vm* vm)
{
    (void)vm;
    return index < HELPER_COUNT;
}

/* Switches the VM from the dispatcher to the indexed helper table. */
static bool
use_indexed_helpers(struct ubpf_vm* vm)
{
    if (ubpf_register_external_dispatcher(vm, NULL, validate_helper) != 0) {
        return false;
    }
    for (unsigned int i = 0; i < HELPER_COUNT; i++) {
        if (ubpf_register(vm, i, "unnamed", helper_table[i]) != 0) {
            return false;
        }
    }
    return true;
}

/* ---------------------------------------------------------------------------------------- */
/* Input                                                                                     */
/* ---------------------------------------------------------------------------------------- */

/* A growable byte buffer. */
struct bytes
{
    uint8_t* data;
    size_t len;
    size_t cap;
};

static bool
bytes_push(struct bytes* b, uint8_t value)
{
    if (b->len == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        uint8_t* data = realloc(b->data, cap);
        if (data == NULL) {
            return false;
        }
        b->data = data;
        b->cap = cap;
    }
    b->data[b->len++] = value;
    return true;
}

static bool
is_separator(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/*
 * Decodes hex bytes separated by spaces (any number of them). Like the reference plugin, a
 * token is read as a base-16 number from its start, a value is truncated to its low byte,
 * and tokens without a number are skipped. Returns false only when out of memory.
 */
static bool
decode_hex(const char* text, struct bytes* out)
{
    const char* p = text;
    char token[64];
    while (*p != '\0') {
        while (is_separator(*p)) {
            p++;
        }
        const char* start = p;
        while (*p != '\0' && !is_separator(*p)) {
            p++;
        }
        size_t len = (size_t)(p - start);
        if (len == 0 || len >= sizeof(token)) {
            continue; /* the end of the text, or a token too long to be a number */
        }
        memcpy(token, start, len);
        token[len] = '\0';
        char* end = NULL;
        errno = 0;
        long value = strtol(token, &end, 16);
        if (end == token || errno == ERANGE || value < INT_MIN || value > INT_MAX) {
            continue;
        }
        if (!bytes_push(out, (uint8_t)value)) {
            return false;
        }
    }
    return true;
}

/* What the command line asks for. */
struct options
{
    const char* memory_hex;  /* NULL when the test has no memory */
    const char* program_hex; /* NULL: read the program from standard input */
    bool jit;
    bool safe_profile;
};

/*
 * Parses the command line. Returns 0, or prints why the arguments are wrong and returns 1.
 */
static int
parse_arguments(int argc, char** argv, struct options* options)
{
    int i = 1;
    if (i < argc && strncmp(argv[i], "--", 2) != 0) {
        options->memory_hex = argv[i++];
    }
    while (i < argc && strncmp(argv[i], "--", 2) == 0) {
        const char* arg = argv[i];
        if (strcmp(arg, "--program") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "Missing program argument\n");
                return 1;
            }
            options->program_hex = argv[i + 1];
            i += 2;
        } else if (strcmp(arg, "--jit") == 0) {
            options->jit = true;
            i++;
        } else if (strcmp(arg, "--interpret") == 0) {
            options->jit = false;
            i++;
        } else if (strcmp(arg, "--profile") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "Missing profile argument\n");
                return 1;
            }
            const char* profile = argv[i + 1];
            if (strcmp(profile, "legacy") == 0) {
                options->safe_profile = false;
            } else if (strcmp(profile, "safe") == 0) {
                options->safe_profile = true;
            } else {
                fprintf(stderr, "Invalid profile: %s\n", profile);
                return 1;
            }
            i += 2;
        } else if (strcmp(arg, "--debug") == 0) {
            i++;
        } else {
            break; /* an option this plugin does not know (e.g. --elf) */
        }
    }
    if (i < argc && argv[i][0] != '\0') {
        fprintf(stderr, "Invalid arguments: %s\n", argv[i]);
        return 1;
    }
    return 0;
}

/* Reads the first line of standard input into a malloc'd string (NULL on failure). */
static char*
read_program_line(void)
{
    char* line = NULL;
    size_t cap = 0;
    if (getline(&line, &cap, stdin) < 0) {
        if (feof(stdin) && !ferror(stdin)) {
            /* No input at all: an empty program, which ubpf_load rejects with its own text. */
            free(line);
            line = calloc(1, 1);
            return line;
        }
        free(line);
        return NULL;
    }
    return line;
}

/* ---------------------------------------------------------------------------------------- */
/* Running                                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* The input memory and a scratch copy that each run starts from. */
struct memory
{
    const struct bytes* input;
    uint8_t* scratch; /* NULL when there is no memory */
};

/* Resets the scratch copy to the input and returns what r1 should point at (NULL if empty). */
static void*
fresh_memory(struct memory* m)
{
    if (m->input->len == 0) {
        return NULL;
    }
    memcpy(m->scratch, m->input->data, m->input->len);
    return m->scratch;
}

/* Runs the interpreter (legacy profile): dispatcher, indexed helpers, caller's stack. */
static int
run_interpreter(struct ubpf_vm* vm, struct memory* mem, uint64_t* result)
{
    size_t len = mem->input->len;
    uint64_t with_dispatcher = 0;
    uint64_t with_table = 0;
    uint64_t with_stack = 0;

    if (ubpf_exec(vm, fresh_memory(mem), len, &with_dispatcher) != 0) {
        fprintf(stderr, "Failed to execute program\n");
        return 1;
    }
    if (!use_indexed_helpers(vm)) {
        fprintf(stderr, "Failed to register helper function\n");
        return 1;
    }
    if (ubpf_exec(vm, fresh_memory(mem), len, &with_table) != 0) {
        fprintf(stderr, "Failed to execute program\n");
        return 1;
    }
    uint8_t* stack = calloc(EXTERNAL_STACK_SIZE, 1);
    if (stack == NULL) {
        fprintf(stderr, "Out of memory\n");
        return 1;
    }
    int status = ubpf_exec_ex(vm, fresh_memory(mem), len, &with_stack, stack, EXTERNAL_STACK_SIZE);
    free(stack);
    if (status != 0) {
        fprintf(stderr, "Failed to execute program\n");
        return 1;
    }
    if (with_dispatcher != with_table) {
        fprintf(
            stderr,
            "Execution of the interpreted code with external and indexed helpers gave difference results: "
            "0x%" PRIx64 " vs 0x%" PRIx64 ".\n",
            with_dispatcher,
            with_table);
        return 1;
    }
    *result = with_dispatcher;
    return 0;
}

/* Runs the interpreter (safe profile): ubpf_exec and ubpf_exec_ex must agree. */
static int
run_safe_interpreter(struct ubpf_vm* vm, struct memory* mem, uint64_t* result)
{
    size_t len = mem->input->len;
    uint64_t plain = 0;
    uint64_t with_stack = 0;

    if (ubpf_exec(vm, fresh_memory(mem), len, &plain) != 0) {
        fprintf(stderr, "Failed to execute program\n");
        return 1;
    }
    uint8_t* stack = calloc(EXTERNAL_STACK_SIZE, 1);
    if (stack == NULL) {
        fprintf(stderr, "Out of memory\n");
        return 1;
    }
    int status = ubpf_exec_ex(vm, fresh_memory(mem), len, &with_stack, stack, EXTERNAL_STACK_SIZE);
    free(stack);
    if (status != 0) {
        fprintf(stderr, "Failed to execute program\n");
        return 1;
    }
    if (plain != with_stack) {
        fprintf(
            stderr,
            "Execution of safe-profile interpreter entry points gave different results: 0x%" PRIx64
            " vs 0x%" PRIx64 ".\n",
            plain,
            with_stack);
        return 1;
    }
    *result = plain;
    return 0;
}

/* The largest image copy the plugin tries before giving up (the JIT's default limit is 64 KiB). */
#define MAX_COPY_SIZE ((size_t)1 << 30)

/*
 * Copies the compiled image with ubpf_copy_jit into a fresh mapping that is then made
 * read+execute. The API does not tell the image's size, so the buffer starts at one page and
 * doubles while the copy fails for lack of room. On success *mapping and *mapping_size
 * describe the mapping (the caller unmaps it); on failure the error has been printed.
 */
static ubpf_jit_fn
copy_jit_image(struct ubpf_vm* vm, void** mapping, size_t* mapping_size)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t size = page > 0 ? (size_t)page : 4096;
    for (;;) {
        void* buffer = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (buffer == MAP_FAILED) {
            fprintf(stderr, "Failed to copy JIT'd program: mmap of %zu bytes failed\n", size);
            return NULL;
        }
        char* error = NULL;
        ubpf_jit_fn copy = ubpf_copy_jit(vm, buffer, size, &error);
        if (copy != NULL) {
            free(error);
            if (mprotect(buffer, size, PROT_READ | PROT_EXEC) != 0) {
                fprintf(stderr, "Failed to copy JIT'd program: mprotect failed\n");
                munmap(buffer, size);
                return NULL;
            }
            *mapping = buffer;
            *mapping_size = size;
            return copy;
        }
        munmap(buffer, size);
        bool too_small = error != NULL && strcmp(error, "Buffer not big enough for copy") == 0;
        if (!too_small || size >= MAX_COPY_SIZE) {
            fprintf(stderr, "Failed to copy JIT'd program: %s\n", error != NULL ? error : "(no message)");
            free(error);
            return NULL;
        }
        free(error);
        size *= 2;
    }
}

/* Runs the JIT: dispatcher, indexed helpers, a copy of the image, extended mode. */
static int
run_jit(struct ubpf_vm* vm, struct memory* mem, uint64_t* result)
{
    size_t len = mem->input->len;
    char* error = NULL;

    ubpf_jit_fn fn = ubpf_compile(vm, &error);
    if (fn == NULL) {
        fprintf(stderr, "Failed to compile program: %s\n", error != NULL ? error : "(no message)");
        free(error);
        return 1;
    }
    free(error);
    error = NULL;

    uint64_t with_dispatcher = fn(fresh_memory(mem), len);

    /* The compiled code reads the helper table at run time, so the same function now calls
     * the indexed helpers. */
    if (!use_indexed_helpers(vm)) {
        fprintf(stderr, "Failed to register helper function\n");
        return 1;
    }
    uint64_t with_table = fn(fresh_memory(mem), len);

    void* mapping = NULL;
    size_t mapping_size = 0;
    ubpf_jit_fn copy = copy_jit_image(vm, &mapping, &mapping_size);
    if (copy == NULL) {
        return 1;
    }
    uint64_t from_copy = copy(fresh_memory(mem), len);
    munmap(mapping, mapping_size);

    ubpf_jit_ex_fn fn_ex = ubpf_compile_ex(vm, &error, ExtendedJitMode);
    if (fn_ex == NULL) {
        fprintf(stderr, "Failed to compile program (extended): %s\n", error != NULL ? error : "(no message)");
        free(error);
        return 1;
    }
    free(error);

    uint8_t* stack = calloc(EXTERNAL_STACK_SIZE, 1);
    if (stack == NULL) {
        fprintf(stderr, "Out of memory\n");
        return 1;
    }
    uint64_t extended = fn_ex(fresh_memory(mem), len, stack, EXTERNAL_STACK_SIZE);
    free(stack);

    if (with_dispatcher != with_table || with_table != from_copy || with_dispatcher != extended) {
        fprintf(
            stderr,
            "Execution of the JIT'd code (with external and indexed helpers) and a copy of the JIT'd code gave "
            "different results: 0x%" PRIx64 " vs 0x%" PRIx64 " vs 0x%" PRIx64 " vs 0x%" PRIx64 ".\n",
            with_dispatcher,
            with_table,
            from_copy,
            extended);
        return 1;
    }
    *result = with_dispatcher;
    return 0;
}

/* Creates and configures the VM and loads the program; prints why on failure. */
static struct ubpf_vm*
prepare_vm(const struct options* options, const struct bytes* program)
{
    struct ubpf_vm* vm = ubpf_create();
    if (vm == NULL) {
        fprintf(stderr, "Failed to create VM\n");
        return NULL;
    }
    enum ubpf_execution_profile profile =
        options->safe_profile ? UBPF_EXECUTION_PROFILE_SAFE : UBPF_EXECUTION_PROFILE_LEGACY;
    if (ubpf_set_execution_profile(vm, profile) != 0) {
        fprintf(stderr, "Failed to set execution profile\n");
        goto fail;
    }
    if (options->safe_profile) {
        for (unsigned int i = 0; i < HELPER_COUNT; i++) {
            struct ubpf_safe_helper_descriptor descriptor = {
                .index = i,
                .name = "unnamed",
                .fn = helper_table[i],
                .result_kind = UBPF_SAFE_HELPER_RESULT_SCALAR,
                .region_id = 0,
                .region_size = 0,
            };
            if (ubpf_register_safe_helper(vm, &descriptor) != 0) {
                fprintf(stderr, "Failed to register safe helper metadata\n");
                goto fail;
            }
        }
    } else if (ubpf_register_external_dispatcher(vm, dispatch_helper, validate_helper) != 0) {
        fprintf(stderr, "Failed to register helper dispatcher\n");
        goto fail;
    }
    const char* blinding = getenv("UBPF_ENABLE_CONSTANT_BLINDING");
    if (blinding != NULL && strcmp(blinding, "1") == 0) {
        ubpf_toggle_constant_blinding(vm, true);
    }
    if (ubpf_set_unwind_function_index(vm, UNWIND_HELPER_INDEX) != 0) {
        fprintf(stderr, "Failed to set unwind function index\n");
        goto fail;
    }

    /* The program is the bytes taken 8 at a time; a trailing partial instruction is dropped. */
    size_t code_len = program->len - program->len % 8;
    if (code_len > UINT32_MAX) {
        code_len = UINT32_MAX - UINT32_MAX % 8;
    }
    char* error = NULL;
    if (ubpf_load(vm, program->data, (uint32_t)code_len, &error) != 0) {
        printf("Failed to load code: %s\n", error != NULL ? error : "(no message)");
        free(error);
        goto fail;
    }
    free(error);
    return vm;

fail:
    ubpf_destroy(vm);
    return NULL;
}

int
main(int argc, char** argv)
{
    struct options options = {0};
    struct bytes program = {0};
    struct bytes input = {0};
    struct memory mem = {.input = &input, .scratch = NULL};
    char* line = NULL;
    struct ubpf_vm* vm = NULL;
    int status = 1;

    if (parse_arguments(argc, argv, &options) != 0) {
        goto out;
    }
    const char* program_hex = options.program_hex;
    if (program_hex == NULL) {
        line = read_program_line();
        if (line == NULL) {
            fprintf(stderr, "Failed to read the program from standard input\n");
            goto out;
        }
        program_hex = line;
    }
    if (!decode_hex(program_hex, &program) ||
        (options.memory_hex != NULL && !decode_hex(options.memory_hex, &input))) {
        fprintf(stderr, "Out of memory\n");
        goto out;
    }
    if (input.len > 0) {
        mem.scratch = malloc(input.len);
        if (mem.scratch == NULL) {
            fprintf(stderr, "Out of memory\n");
            goto out;
        }
    }

    vm = prepare_vm(&options, &program);
    if (vm == NULL) {
        goto out;
    }

    uint64_t result = 0;
    if (options.jit) {
        status = run_jit(vm, &mem, &result);
    } else if (options.safe_profile) {
        status = run_safe_interpreter(vm, &mem, &result);
    } else {
        status = run_interpreter(vm, &mem, &result);
    }
    if (status == 0) {
        printf("%" PRIx64 "\n", result);
    }

out:
    if (vm != NULL) {
        ubpf_destroy(vm);
    }
    free(mem.scratch);
    free(input.data);
    free(program.data);
    free(line);
    return status;
}
