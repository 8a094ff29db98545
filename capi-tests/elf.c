/*
 * C API tests of the ELF loader: ubpf_load_elf / ubpf_load_elf_ex on the example objects in
 * examples-c/bpf/, helpers registered by name from C, uBPF's error texts and return codes,
 * the data-relocation callback, and running the loaded programs with ubpf_exec and the JIT.
 *
 * The example objects are found through CARGO_MANIFEST_DIR (set by cargo when it runs the
 * tests), or else relative to this source file's path. Returns 0 when every check passes.
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ubpf.h>

static int failures = 0;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                          \
        }                                                                        \
    } while (0)

#define CHECK_U64(actual, expected)                                                              \
    do {                                                                                         \
        uint64_t a_ = (actual), e_ = (expected);                                                 \
        if (a_ != e_) {                                                                          \
            fprintf(                                                                             \
                stderr, "%s:%d: %s = 0x%" PRIx64 ", expected 0x%" PRIx64 "\n", __FILE__, __LINE__, #actual, a_, e_); \
            failures++;                                                                          \
        }                                                                                        \
    } while (0)

/* ---------------------------------------------------------------------------------------- */
/* Files */

struct blob {
    uint8_t* data;
    size_t size;
};

static char root[4096];

static void
find_root(void)
{
    const char* dir = getenv("CARGO_MANIFEST_DIR");
    if (dir != NULL) {
        snprintf(root, sizeof(root), "%s", dir);
        return;
    }
    /* __FILE__ is ".../capi-tests/elf.c" (or "capi-tests/elf.c" when compiled from the
     * repository root): the repository is the directory above capi-tests/. */
    snprintf(root, sizeof(root), "%s", __FILE__);
    char* slash = strrchr(root, '/');
    if (slash != NULL) {
        *slash = '\0';
        slash = strrchr(root, '/');
    }
    if (slash != NULL) {
        *slash = '\0';
    } else {
        snprintf(root, sizeof(root), ".");
    }
}

static struct blob
read_blob(const char* relative)
{
    struct blob b = {NULL, 0};
    char path[8192];
    snprintf(path, sizeof(path), "%s/%s", root, relative);
    FILE* f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(1);
    }
    if (fseek(f, 0, SEEK_END) != 0) {
        fprintf(stderr, "cannot seek %s\n", path);
        exit(1);
    }
    long size = ftell(f);
    rewind(f);
    b.data = malloc(size > 0 ? (size_t)size : 1);
    if (b.data == NULL || size < 0 || fread(b.data, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(1);
    }
    b.size = (size_t)size;
    fclose(f);
    return b;
}

static struct blob
example(const char* name)
{
    char relative[256];
    snprintf(relative, sizeof(relative), "examples-c/bpf/%s.o", name);
    return read_blob(relative);
}

/* ---------------------------------------------------------------------------------------- */
/* Helpers the examples call */

static uint64_t
sqrti(uint64_t x, uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5)
{
    (void)a2, (void)a3, (void)a4, (void)a5;
    uint64_t r = 0;
    while ((r + 1) * (r + 1) <= x) {
        r++;
    }
    return r;
}

static uint64_t
checksum_bytes(const uint8_t* data, uint64_t len)
{
    uint64_t sum = 0;
    for (uint64_t i = 0; i < len; i++) {
        sum = sum * 31 + data[i];
    }
    return sum;
}

static uint64_t
checksum(uint64_t data, uint64_t len, uint64_t a3, uint64_t a4, uint64_t a5)
{
    (void)a3, (void)a4, (void)a5;
    return data == 0 ? 0 : checksum_bytes((const uint8_t*)(uintptr_t)data, len);
}

static uint64_t
mix(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e)
{
    return (((a * b) ^ (c + d)) - e) & 0xffff;
}

#define MAP_SLOTS 8
static int64_t map[MAP_SLOTS];

static uint64_t
map_lookup(uint64_t key, uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5)
{
    (void)a2, (void)a3, (void)a4, (void)a5;
    return key < MAP_SLOTS ? (uint64_t)map[key] : 0;
}

static uint64_t
map_update(uint64_t key, uint64_t value, uint64_t a3, uint64_t a4, uint64_t a5)
{
    (void)a3, (void)a4, (void)a5;
    if (key >= MAP_SLOTS) {
        return (uint64_t)-1;
    }
    map[key] = (int64_t)value;
    return 0;
}

/* A VM with every helper the examples use, at indices unrelated to their order. */
static struct ubpf_vm*
new_vm(void)
{
    struct ubpf_vm* vm = ubpf_create();
    CHECK(vm != NULL);
    CHECK(ubpf_register(vm, 1, "mix", mix) == 0);
    CHECK(ubpf_register(vm, 3, "sqrti", sqrti) == 0);
    CHECK(ubpf_register(vm, 4, "checksum", checksum) == 0);
    CHECK(ubpf_register(vm, 9, "map_lookup", map_lookup) == 0);
    CHECK(ubpf_register(vm, 12, "map_update", map_update) == 0);
    return vm;
}

/* Loads; returns the return code and checks the message matches `expected` (NULL: success). */
static int
load_expect(struct ubpf_vm* vm, struct blob b, const char* entry, const char* expected)
{
    char* errmsg = NULL;
    int rc = ubpf_load_elf_ex(vm, b.data, b.size, entry, &errmsg);
    if (expected == NULL) {
        if (rc != 0) {
            fprintf(stderr, "unexpected load failure (%d): %s\n", rc, errmsg ? errmsg : "(null)");
            failures++;
        }
        CHECK(errmsg == NULL);
    } else {
        CHECK(rc == -1);
        if (errmsg == NULL || strcmp(errmsg, expected) != 0) {
            fprintf(stderr, "error text \"%s\", expected \"%s\"\n", errmsg ? errmsg : "(null)", expected);
            failures++;
        }
    }
    free(errmsg); /* the caller owns it, and it must come from malloc */
    return rc;
}

static uint64_t
exec_ok(struct ubpf_vm* vm, void* mem, size_t len)
{
    uint64_t result = 0;
    CHECK(ubpf_exec(vm, mem, len, &result) == 0);
    return result;
}

/* ---------------------------------------------------------------------------------------- */
/* Frames */

static size_t
make_frame(uint8_t* f, uint16_t ethertype, uint8_t proto, uint16_t dport)
{
    memset(f, 0, 64);
    f[12] = (uint8_t)(ethertype >> 8);
    f[13] = (uint8_t)ethertype;
    f[14] = 0x45;
    f[23] = proto;
    f[14 + 20 + 2] = (uint8_t)(dport >> 8);
    f[14 + 20 + 3] = (uint8_t)dport;
    return 64;
}

/* ---------------------------------------------------------------------------------------- */
/* Tests */

static void
test_packet_filter(void)
{
    struct blob b = example("packet_filter");
    uint8_t frame[64];
    for (int jit = 0; jit < 2; jit++) {
        struct ubpf_vm* vm = new_vm();
        load_expect(vm, b, NULL, NULL);
        char* errmsg = NULL;
        ubpf_jit_fn fn = jit ? ubpf_compile(vm, &errmsg) : NULL;
        if (jit && fn == NULL) {
            fprintf(stderr, "ubpf_compile failed: %s\n", errmsg ? errmsg : "(null)");
            free(errmsg);
            failures++;
            ubpf_destroy(vm);
            continue;
        }
        struct {
            uint16_t ethertype;
            uint8_t proto;
            uint16_t dport;
            uint64_t verdict;
        } cases[] = {
            {0x0800, 6, 80, 1},
            {0x0800, 6, 443, 0},
            {0x0800, 17, 80, 0},
            {0x86dd, 6, 80, 0},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            size_t len = make_frame(frame, cases[i].ethertype, cases[i].proto, cases[i].dport);
            uint64_t verdict = jit ? fn(frame, len) : exec_ok(vm, frame, len);
            CHECK_U64(verdict, cases[i].verdict);
        }
        /* Truncated before the destination port: dropped, not read past the end. */
        make_frame(frame, 0x0800, 6, 80);
        CHECK_U64(jit ? fn(frame, 37) : exec_ok(vm, frame, 37), 0);
        ubpf_destroy(vm);
    }
    free(b.data);
}

static void
test_ubpf_load_elf_uses_text_offset_zero(void)
{
    struct blob b = example("calls");
    struct ubpf_vm* vm = new_vm();
    char* errmsg = NULL;
    CHECK(ubpf_load_elf(vm, b.data, b.size, &errmsg) == 0);
    CHECK(errmsg == NULL);
    uint32_t mem[2] = {1071, 462};
    /* gcd 21 * 1000 + (1071 ^ 462) + fib(1071 % 32 = 15) + 3 * 462 + 1 */
    CHECK_U64(exec_ok(vm, mem, sizeof(mem)), 21000 + (1071 ^ 462) + 610 + 1387);
    ubpf_destroy(vm);
    free(b.data);
}

static void
test_helpers_by_name(void)
{
    struct blob b = example("helpers");
    struct ubpf_vm* vm = ubpf_create();
    load_expect(vm, b, NULL, "function 'sqrti' not found");
    ubpf_destroy(vm);

    vm = new_vm();
    load_expect(vm, b, NULL, NULL);
    uint8_t mem[100];
    for (size_t i = 0; i < sizeof(mem); i++) {
        mem[i] = (uint8_t)(i * 7 + 3);
    }
    uint64_t n = sizeof(mem);
    /* sqrti and checksum are called by name, mix by number (helper 1). */
    CHECK_U64(
        exec_ok(vm, mem, sizeof(mem)),
        sqrti(n * 1000, 0, 0, 0, 0) + (checksum_bytes(mem, n) << 16) + (mix(n, 7, 11, 13, 17) << 40));
    ubpf_destroy(vm);
    free(b.data);
}

static void
test_map_helpers(void)
{
    struct blob b = example("map");
    struct ubpf_vm* vm = new_vm();
    load_expect(vm, b, "entry", NULL);
    memset(map, 0, sizeof(map));
    uint8_t frame[64];
    size_t len = make_frame(frame, 0x0800, 6, 80);
    CHECK_U64(exec_ok(vm, frame, len), 1);
    CHECK_U64(exec_ok(vm, frame, len), 2);
    len = make_frame(frame, 0x0800, 17, 53);
    CHECK_U64(exec_ok(vm, frame, len), 1);
    len = make_frame(frame, 0x0806, 0, 0);
    CHECK_U64(exec_ok(vm, frame, len), 1);
    CHECK_U64((uint64_t)map[0], 1); /* not IPv4 */
    CHECK_U64((uint64_t)map[1], 2); /* TCP */
    CHECK_U64((uint64_t)map[2], 1); /* UDP */
    CHECK_U64((uint64_t)map[5], 4); /* total */
    ubpf_destroy(vm);
    free(b.data);
}

static void
test_globals_persist_between_runs(void)
{
    struct blob b = example("globals");
    struct ubpf_vm* vm = new_vm();
    load_expect(vm, b, NULL, NULL);
    char mem[20];
    uint64_t first = exec_ok(vm, mem, sizeof(mem));
    CHECK_U64(first >> 48, 1);
    CHECK_U64(first & 0xffffffffu, 0xfeedbeefu);
    CHECK(memcmp(mem, "0000000000000014", 16) == 0);
    uint64_t second = exec_ok(vm, mem, 5);
    CHECK_U64(second >> 48, 2);
    CHECK_U64(second & 0xffffffffu, 20);
    ubpf_destroy(vm);
    free(b.data);
}

static uint64_t relocation_calls;

static uint64_t
relocate(
    void* user_context,
    const uint8_t* data,
    uint64_t data_size,
    const char* symbol_name,
    uint64_t symbol_offset,
    uint64_t symbol_size)
{
    (void)data;
    CHECK(user_context == &relocation_calls);
    CHECK(strcmp(symbol_name, "previous_len") == 0);
    CHECK_U64(data_size, 8);
    CHECK_U64(symbol_offset, 0);
    CHECK_U64(symbol_size, 8);
    relocation_calls++;
    return 0;
}

static void
test_data_relocation_callback(void)
{
    struct blob b = example("globals");
    struct ubpf_vm* vm = new_vm();
    CHECK(ubpf_register_data_relocation(vm, &relocation_calls, relocate) == 0);
    /* The callback resolves .data; like uBPF, .bss is then refused. */
    load_expect(vm, b, NULL, "bad R_BPF_64_64 relocation section");
    CHECK_U64(relocation_calls, 1);
    ubpf_destroy(vm);
    free(b.data);
}

static void
test_error_texts(void)
{
    struct blob b = example("packet_filter");
    struct ubpf_vm* vm = new_vm();
    struct blob shortened = {b.data, 4};
    load_expect(vm, shortened, NULL, "not enough data for ELF header");

    uint8_t* copy = malloc(b.size);
    CHECK(copy != NULL);
    struct blob patched = {copy, b.size};

    memcpy(copy, b.data, b.size);
    copy[18] = 1; /* e_machine = EM_M32 */
    copy[19] = 0;
    load_expect(vm, patched, NULL, "wrong machine, expected none or BPF, got 1");

    memcpy(copy, b.data, b.size);
    copy[4] = 1; /* ELFCLASS32 */
    load_expect(vm, patched, NULL, "wrong class");

    memcpy(copy, b.data, b.size);
    copy[60] = 33; /* e_shnum */
    copy[61] = 0;
    load_expect(vm, patched, NULL, "too many sections");

    load_expect(vm, b, "nope", "nope function not found.");

    /* Success, then a second load without unloading: the ubpf_load error comes through. */
    load_expect(vm, b, "filter", NULL);
    load_expect(
        vm, b, NULL, "code has already been loaded into this VM. Use ubpf_unload_code() if you need to reuse this VM");
    ubpf_unload_code(vm);
    load_expect(vm, b, NULL, NULL);

    free(copy);
    ubpf_destroy(vm);
    free(b.data);
}

/* File offset of the first entry of the first SHT_REL section of an ELF64 file. */
static size_t
first_relocation(const uint8_t* elf)
{
    uint64_t shoff;
    uint16_t shnum;
    memcpy(&shoff, elf + 40, sizeof(shoff));
    memcpy(&shnum, elf + 60, sizeof(shnum));
    for (uint16_t i = 0; i < shnum; i++) {
        const uint8_t* header = elf + shoff + (size_t)i * 64;
        uint32_t type;
        uint64_t offset;
        memcpy(&type, header + 4, sizeof(type));
        memcpy(&offset, header + 24, sizeof(offset));
        if (type == 9 /* SHT_REL */) {
            return (size_t)offset;
        }
    }
    return 0;
}

/* The messages the error printer received (see warning_printer). */
static char printed[256];

/* An error printer that appends every message to `printed`. */
static int
warning_printer(FILE* stream, const char* format, ...)
{
    (void)stream;
    size_t used = strlen(printed);
    va_list args;
    va_start(args, format);
    int n = vsnprintf(printed + used, sizeof(printed) - used, format, args);
    va_end(args);
    return n;
}

/* An unknown relocation type is skipped with uBPF's warning text, which goes to the error
 * printer like every other message (uBPF prints it on standard output; see docs/elf.md). */
static void
test_unknown_relocation_warning(void)
{
    struct blob b = example("helpers");
    size_t rel = first_relocation(b.data);
    CHECK(rel != 0);
    b.data[rel + 8] = 3; /* r_info's type byte: R_BPF_64_32 (10) -> 3 */

    struct ubpf_vm* vm = new_vm();
    printed[0] = '\0';
    ubpf_set_error_print(vm, warning_printer);
    /* The skipped relocation leaves clang's unresolved call, which the verifier rejects. */
    load_expect(vm, b, NULL, "sub-program does not end with EXIT or unconditional jump at PC 3");
    ubpf_destroy(vm);
    if (strcmp(printed, "Warning: bad relocation type 3; skipping.\n") != 0) {
        fprintf(stderr, "the error printer received \"%s\"\n", printed);
        failures++;
    }
    free(b.data);
}

int
main(void)
{
    find_root();
    test_packet_filter();
    test_ubpf_load_elf_uses_text_offset_zero();
    test_helpers_by_name();
    test_map_helpers();
    test_globals_persist_between_runs();
    test_data_relocation_callback();
    test_error_texts();
    test_unknown_relocation_warning();
    if (failures != 0) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    return 0;
}
