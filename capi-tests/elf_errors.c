/*
 * Every ELF-level error text of uBPF's loader, through ubpf_load_elf / ubpf_load_elf_ex: each
 * case copies a valid clang-built object (examples-c/bpf/calls.o, read from the repository
 * root), corrupts one field, and checks the exact errmsg and the -1 return. The fields are
 * found by walking the object's own section headers, symbols and relocations.
 */
#include "capi_test.h"

/* ELF64 layout offsets used below. */
enum {
    E_TYPE = 0x10,
    E_MACHINE = 0x12,
    E_SHOFF = 0x28,
    E_SHENTSIZE = 0x3a,
    E_SHNUM = 0x3c,
    SHDR_SIZE = 64,
    SH_NAME = 0,
    SH_TYPE = 4,
    SH_OFFSET = 24,
    SH_SIZE = 32,
    SH_LINK = 40,
    SYM_SIZE = 24,
    ST_NAME = 0,
    ST_SHNDX = 6,
    REL_SIZE = 16,
    R_OFFSET = 0,
    R_INFO = 8,
    SHT_SYMTAB = 2,
    SHT_STRTAB = 3,
    SHT_REL = 9,
};

static uint8_t* original;
static size_t original_len;

static uint64_t
get(const uint8_t* elf, size_t at, size_t width)
{
    uint64_t value = 0;
    memcpy(&value, elf + at, width); /* little-endian host, as the object */
    return value;
}

static void
put(uint8_t* elf, size_t at, size_t width, uint64_t value)
{
    memcpy(elf + at, &value, width);
}

/* File offset of section header `index`. */
static size_t
shdr(size_t index)
{
    return (size_t)get(original, E_SHOFF, 8) + index * SHDR_SIZE;
}

/* Index of the first section of `type`, or of the section called `name` when not NULL. */
static size_t
find_section(uint32_t type, const char* name)
{
    size_t count = (size_t)get(original, E_SHNUM, 2);
    size_t strtab = 0;
    for (size_t i = 0; i < count; i++) {
        if (get(original, shdr(i) + SH_TYPE, 4) == SHT_STRTAB) {
            strtab = (size_t)get(original, shdr(i) + SH_OFFSET, 8);
            break;
        }
    }
    for (size_t i = 0; i < count; i++) {
        if (name != NULL) {
            const char* section_name = (const char*)original + strtab + get(original, shdr(i) + SH_NAME, 4);
            if (strcmp(section_name, name) == 0) {
                return i;
            }
        } else if (get(original, shdr(i) + SH_TYPE, 4) == type) {
            return i;
        }
    }
    fprintf(stderr, "calls.o has no section %s\n", name ? name : "of that type");
    exit(1);
}

/* File offset of the symbol called `name` in the symbol table. */
static size_t
find_symbol(const char* name)
{
    size_t symtab = find_section(SHT_SYMTAB, NULL);
    size_t strtab = (size_t)get(original, shdr((size_t)get(original, shdr(symtab) + SH_LINK, 4)) + SH_OFFSET, 8);
    size_t start = (size_t)get(original, shdr(symtab) + SH_OFFSET, 8);
    size_t size = (size_t)get(original, shdr(symtab) + SH_SIZE, 8);
    for (size_t at = start; at + SYM_SIZE <= start + size; at += SYM_SIZE) {
        if (strcmp((const char*)original + strtab + get(original, at + ST_NAME, 4), name) == 0) {
            return at;
        }
    }
    fprintf(stderr, "calls.o has no symbol %s\n", name);
    exit(1);
}

/* Loads `elf` (entry function `entry`, NULL for uBPF's default) and checks the failure text. */
static void
expect_error(const char* what, const uint8_t* elf, size_t len, const char* entry, const char* expected)
{
    struct ubpf_vm* vm = ubpf_create();
    char* errmsg = NULL;
    int rc = ubpf_load_elf_ex(vm, elf, len, entry, &errmsg);
    if (rc != -1 || errmsg == NULL || strcmp(errmsg, expected) != 0) {
        fprintf(stderr, "%s: expected -1 \"%s\", got %d \"%s\"\n", what, expected, rc, errmsg ? errmsg : "(null)");
        test_failures++;
    }
    free(errmsg);
    ubpf_destroy(vm);
}

/* A fresh copy of the valid object to corrupt. */
static uint8_t*
copy(void)
{
    uint8_t* elf = malloc(original_len);
    if (elf == NULL) {
        exit(1);
    }
    memcpy(elf, original, original_len);
    return elf;
}

/* Applies `edit` to a copy at `at`, loads it and checks the message. */
#define CASE(what, at, width, value, entry, expected)                 \
    do {                                                              \
        uint8_t* elf = copy();                                        \
        put(elf, (at), (width), (value));                             \
        expect_error((what), elf, original_len, (entry), (expected)); \
        free(elf);                                                    \
    } while (0)


int
main(void)
{
    original = read_file("examples-c/bpf/calls.o", &original_len);
    if (original == NULL) {
        fprintf(stderr, "cannot read examples-c/bpf/calls.o (run from the repository root)\n");
        return 1;
    }

    /* The unmodified object loads. */
    struct ubpf_vm* vm = ubpf_create();
    char* errmsg = NULL;
    CHECK_EQ(ubpf_load_elf(vm, original, original_len, &errmsg), 0);
    CHECK(errmsg == NULL);
    free(errmsg);
    ubpf_destroy(vm);

    /* docs/elf.md, "Header checks", in uBPF's order. */
    expect_error("short file", original, 63, NULL, "not enough data for ELF header");
    CASE("magic", 0, 1, 'X', NULL, "wrong magic");
    CASE("class", 4, 1, 1, NULL, "wrong class");
    CASE("byte order", 5, 1, 2, NULL, "wrong byte order");
    CASE("version", 6, 1, 2, NULL, "wrong version");
    CASE("OS ABI", 7, 1, 3, NULL, "wrong OS ABI");
    CASE("type", E_TYPE, 2, 2, NULL, "wrong type, expected relocatable");
    CASE("machine", E_MACHINE, 2, 1, NULL, "wrong machine, expected none or BPF, got 1");
    CASE("section count", E_SHNUM, 2, 33, NULL, "too many sections");
    CASE("section header offset", E_SHOFF, 8, original_len, NULL, "bad section header offset or size");
    CASE("section header size", E_SHENTSIZE, 2, 1024, NULL, "bad section header offset or size");
    size_t text = find_section(0, ".text");
    CASE("section offset", shdr(text) + SH_OFFSET, 8, 1u << 20, NULL, "bad section offset or size");
    CASE("section size", shdr(text) + SH_SIZE, 8, 1u << 20, NULL, "bad section offset or size");
    CASE("string table", shdr(find_section(SHT_STRTAB, NULL)) + SH_TYPE, 4, 0, NULL,
         "could not find the string table in the elf file");
    CASE("symbol table", shdr(find_section(SHT_SYMTAB, NULL)) + SH_TYPE, 4, 0, NULL,
         "could not find the symbol table in the elf file");

    /* docs/elf.md, "Functions". */
    size_t entry = find_symbol("entry");
    CASE("function name", entry + ST_NAME, 4, 0xffff, NULL, "a function symbol contained a bad name");
    CASE("function section", entry + ST_SHNDX, 2, 50, NULL, "a function symbol contained a bad section index");
    CASE("non-executable", find_symbol("weigh") + ST_SHNDX, 2, find_section(SHT_SYMTAB, NULL), NULL,
         "function symbol weigh points to a non-executable section");
    expect_error("entry by name", original, original_len, "nope", "nope function not found.");
    /* Without a section named .text there is no default entry function. */
    CASE("no text section", shdr(text) + SH_NAME, 4, get(original, shdr(find_section(0, "sec1")) + SH_NAME, 4),
         NULL, "(null) function not found.");

    /* docs/elf.md, "Relocations". */
    size_t rel = find_section(SHT_REL, NULL);
    size_t first = (size_t)get(original, shdr(rel) + SH_OFFSET, 8);
    uint64_t info = get(original, first + R_INFO, 8);
    CASE("relocation symbol table", shdr(rel) + SH_LINK, 4, 99, NULL, "bad symbol table section index");
    CASE("relocation symbol index", first + R_INFO, 8, (1000ull << 32) | (info & 0xffffffffu), NULL,
         "a relocation contained a bad symbol index");
    /* Symbol 2 is a local label (not a function), so only the relocation reads its name. */
    {
        uint8_t* elf = copy();
        put(elf, first + R_INFO, 8, (2ull << 32) | (info & 0xffffffffu));
        put(elf, find_symbol("LBB1_2") + ST_NAME, 4, 0xffff);
        expect_error("relocation symbol name", elf, original_len, NULL, "a relocation's symbol contained a bad name");
        free(elf);
    }

    free(original);
    return TEST_RESULT();
}
