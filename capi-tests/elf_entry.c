/*
 * The ELF loader through ubpf_load_elf / ubpf_load_elf_ex (capi-tests/elf.c has the ELF
 * team's full coverage): uBPF's header-check texts, the entry function chosen by name, and
 * a clang-built object with local calls (examples-c/bpf/calls.o, read from the repository
 * root) run by both engines.
 */
#include "capi_test.h"


static void
expect_elf_error(const void* elf, size_t len, const char* entry, const char* expected)
{
    struct ubpf_vm* vm = ubpf_create();
    char* errmsg = NULL;
    int rc = entry ? ubpf_load_elf_ex(vm, elf, len, entry, &errmsg) : ubpf_load_elf(vm, elf, len, &errmsg);
    CHECK_EQ(rc, -1);
    CHECK_STR(errmsg, expected);
    free(errmsg);
    ubpf_destroy(vm);
}

int
main(void)
{
    size_t len = 0;
    uint8_t* elf = read_file("examples-c/bpf/calls.o", &len);
    CHECK(elf != NULL);
    if (elf == NULL) {
        fprintf(stderr, "cannot read examples-c/bpf/calls.o (run from the repository root)\n");
        return 1;
    }

    /* Header checks, in uBPF's order. */
    expect_elf_error(elf, 10, NULL, "not enough data for ELF header");
    uint8_t* broken = malloc(len);
    CHECK(broken != NULL);
    if (broken != NULL) {
        memcpy(broken, elf, len);
        broken[0] = 0;
        expect_elf_error(broken, len, NULL, "wrong magic");
        memcpy(broken, elf, len);
        broken[4] = 1; /* ELFCLASS32 */
        expect_elf_error(broken, len, NULL, "wrong class");
        free(broken);
    }
    expect_elf_error(elf, len, "nope", "nope function not found.");

    /* calls.o: mem = {a = 12, b = 18}; combine = gcd * 1000 + (a ^ b) = 6030,
       fib(12) = 144, weigh(18) = 55. */
    uint32_t mem[2] = {12, 18};
    const uint64_t expected = 6030 + 144 + 55;
    for (int by_name = 0; by_name < 2; by_name++) {
        struct ubpf_vm* vm = ubpf_create();
        char* errmsg = (char*)"untouched";
        int rc = by_name ? ubpf_load_elf_ex(vm, elf, len, "entry", &errmsg) : ubpf_load_elf(vm, elf, len, &errmsg);
        CHECK_EQ(rc, 0);
        CHECK(errmsg == NULL);
        uint64_t ret = 0;
        CHECK_EQ(ubpf_exec(vm, mem, sizeof(mem), &ret), 0);
        CHECK_EQ(ret, expected);
        ubpf_jit_fn fn = ubpf_compile(vm, &errmsg);
        CHECK(fn != NULL);
        if (fn != NULL) {
            CHECK_EQ(fn(mem, sizeof(mem)), expected);
        }
        free(errmsg);
        /* The VM holds one program. */
        errmsg = NULL;
        CHECK_EQ(ubpf_load_elf(vm, elf, len, &errmsg), -1);
        CHECK_STR(
            errmsg, "code has already been loaded into this VM. Use ubpf_unload_code() if you need to reuse this VM");
        free(errmsg);
        ubpf_destroy(vm);
    }

    free(elf);
    return TEST_RESULT();
}
