/* The object API from C (multi.o and chain.o of tests/bpf/object/): open (from a file and from memory), find
 * maps, size one with rbpf_map_set_max_entries, set .rodata before load, register a host
 * helper for every program, load (one program fails alone), find and iterate programs, their
 * load errors, types, VMs and fds; tail calls through rbpf_program_exec with PROG_ARRAY
 * values from BTF and from the host; NULL arguments; errmsg freed with free(). */
#include <errno.h>

#include "capi_test.h"
#include <rbpf.h>

static uint64_t
host_value_helper(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e)
{
    (void)a, (void)b, (void)c, (void)d, (void)e;
    return 0xbeef;
}

static void
test_multi(int with_helper, int jit)
{
    char* errmsg = NULL;
    struct rbpf_object* obj = rbpf_object_open("tests/bpf/object/multi.o", &errmsg);
    CHECK(obj != NULL);
    CHECK(errmsg == NULL);
    if (!obj) {
        free(errmsg);
        return;
    }
    struct rbpf_map* seen = rbpf_object_find_map(obj, "seen");
    CHECK(seen != NULL);
    CHECK_EQ(rbpf_map_set_max_entries(seen, 16), 0);
    CHECK_EQ(rbpf_map_set_max_entries(NULL, 16), -EINVAL);
    struct rbpf_map* rodata = rbpf_object_find_map(obj, "multi.rodata");
    CHECK(rodata != NULL);
    CHECK(rodata == rbpf_object_find_map(obj, ".rodata"));
    CHECK_EQ(rbpf_map_set_max_entries(rodata, 2), -EINVAL);
    uint32_t zero = 0;
    uint64_t factor = 0;
    CHECK_EQ(rbpf_map_lookup_elem(rodata, &zero, &factor), 0);
    CHECK_EQ(factor, 3);
    factor = 5;
    CHECK_EQ(rbpf_map_update_elem(rodata, &zero, &factor, 0), 0);
    CHECK(rbpf_object_find_map(obj, "nope") == NULL);
    if (with_helper) {
        CHECK_EQ(rbpf_object_register(obj, 240, "host_value", host_value_helper), 0);
    }
    CHECK_EQ(rbpf_object_register(obj, 256, "x", host_value_helper), -1);

    struct rbpf_program* kp = rbpf_object_find_program(obj, "count_kprobe");
    CHECK(kp != NULL);
    CHECK_EQ(rbpf_program_type(kp), 2); /* BPF_PROG_TYPE_KPROBE */
    CHECK(rbpf_program_vm(kp) == NULL); /* not loaded yet */
    CHECK_EQ(rbpf_program_fd(kp), -EINVAL);
    CHECK_EQ(rbpf_program_set_type(kp, 9999), -EINVAL);
    CHECK_EQ(rbpf_program_set_type(kp, 2), 0);

    int loaded = rbpf_object_load(obj, &errmsg);
    struct rbpf_program* pid = rbpf_object_find_program(obj, "uses_pid");
    if (with_helper) {
        CHECK_EQ(loaded, 0);
        CHECK(errmsg == NULL);
        CHECK(rbpf_program_load_error(pid) == NULL);
    } else {
        CHECK_EQ(loaded, -1);
        CHECK(errmsg != NULL && strstr(errmsg, "program 'uses_pid': ") != NULL);
        CHECK(rbpf_program_load_error(pid) != NULL);
        CHECK(rbpf_program_vm(pid) == NULL);
    }
    free(errmsg);
    errmsg = NULL;
    CHECK_EQ(rbpf_map_set_max_entries(seen, 4), -EBUSY);
    CHECK_EQ(rbpf_program_set_type(kp, 3), -EBUSY);

    struct rbpf_program* tc = rbpf_object_find_program(obj, "tracepoint/sys/count");
    CHECK(tc != NULL && strcmp(rbpf_program_name(tc), "count_tp") == 0);
    CHECK_EQ(rbpf_program_type(tc), 5); /* BPF_PROG_TYPE_TRACEPOINT */
    CHECK(rbpf_program_load_error(kp) == NULL);
    CHECK(rbpf_program_vm(kp) != NULL);
    CHECK(rbpf_program_fd(kp) >= 0);

    int count = 0;
    for (struct rbpf_program* p = rbpf_object_next_program(obj, NULL); p;
         p = rbpf_object_next_program(obj, p)) {
        count++;
    }
    CHECK_EQ(count, 3);

    if (jit) {
        for (struct rbpf_program* p = rbpf_object_next_program(obj, NULL); p;
             p = rbpf_object_next_program(obj, p)) {
            if (rbpf_program_vm(p)) {
                CHECK(ubpf_compile(rbpf_program_vm(p), &errmsg) != NULL);
                free(errmsg);
                errmsg = NULL;
            }
        }
    }
    uint64_t mem[2] = {7, 0};
    uint64_t ret = 0;
    CHECK_EQ(rbpf_program_exec(kp, mem, sizeof(mem), &ret), 0);
    CHECK_EQ(ret, 2);
    CHECK_EQ(mem[1], 35);
    /* The uBPF API on the program's VM. */
    mem[0] = 1;
    CHECK_EQ(ubpf_exec(rbpf_program_vm(kp), mem, sizeof(mem), &ret), 0);
    CHECK_EQ(mem[1], 40);
    struct rbpf_map* counters = rbpf_map_by_name(rbpf_program_vm(kp), "counters");
    CHECK(counters == rbpf_object_find_map(obj, "counters"));
    uint64_t value = 0;
    CHECK_EQ(rbpf_map_lookup_elem(counters, &zero, &value), 0);
    CHECK_EQ(value, 40);
    if (with_helper) {
        CHECK_EQ(rbpf_program_exec(pid, mem, sizeof(mem), &ret), 0);
        CHECK_EQ(mem[1], 0xbeef);
    }
    rbpf_object_close(obj);
}

static void
test_tail_calls(int jit)
{
    size_t len = 0;
    uint8_t* bytes = read_file("tests/bpf/object/chain.o", &len);
    CHECK(bytes != NULL);
    char* errmsg = NULL;
    struct rbpf_object* obj = rbpf_object_open_mem(bytes, len, &errmsg);
    free(bytes);
    CHECK(obj != NULL);
    if (!obj) {
        free(errmsg);
        return;
    }
    CHECK_EQ(rbpf_object_load(obj, &errmsg), 0);
    CHECK(errmsg == NULL);
    if (jit) {
        for (struct rbpf_program* p = rbpf_object_next_program(obj, NULL); p;
             p = rbpf_object_next_program(obj, p)) {
            CHECK(ubpf_compile(rbpf_program_vm(p), &errmsg) != NULL);
            free(errmsg);
            errmsg = NULL;
        }
    }
    uint64_t mem[2] = {0, 0};
    uint64_t ret = 0;
    struct rbpf_program* p0 = rbpf_object_find_program(obj, "p0");
    CHECK_EQ(rbpf_program_exec(p0, mem, sizeof(mem), &ret), 0);
    CHECK_EQ(ret, 1033);
    CHECK_EQ(mem[0], 34);
    CHECK_EQ((int64_t)mem[1], -E2BIG);

    /* The host fills `jumps` with p39's fd: sub_caller's subprogram tail-calls it. */
    struct rbpf_map* jumps = rbpf_object_find_map(obj, "jumps");
    uint32_t zero = 0;
    uint32_t fd = (uint32_t)rbpf_program_fd(rbpf_object_find_program(obj, "p39"));
    CHECK_EQ(rbpf_map_update_elem(jumps, &zero, &fd, 0), 0);
    mem[0] = mem[1] = 0;
    CHECK_EQ(rbpf_program_exec(rbpf_object_find_program(obj, "sub_caller"), mem, sizeof(mem), &ret), 0);
    CHECK_EQ(ret, 1039);
    CHECK_EQ(mem[0], 1);
    CHECK_EQ(rbpf_program_exec(p0, NULL, 8, &ret), -1);
    CHECK_EQ(rbpf_program_exec(p0, mem, sizeof(mem), NULL), -1);
    rbpf_object_close(obj);
}

static void
test_errors(void)
{
    char* errmsg = NULL;
    CHECK(rbpf_object_open("tests/bpf/object/missing.o", &errmsg) == NULL);
    CHECK(errmsg != NULL && strstr(errmsg, "cannot read") != NULL);
    free(errmsg);
    errmsg = NULL;
    CHECK(rbpf_object_open(NULL, &errmsg) == NULL);
    CHECK(errmsg != NULL);
    free(errmsg);
    errmsg = NULL;
    static const char junk[] = "not an ELF file at all, but long enough to be read as one......";
    CHECK(rbpf_object_open_mem(junk, sizeof(junk), &errmsg) == NULL);
    CHECK(errmsg != NULL && strstr(errmsg, "malformed ELF file") != NULL);
    free(errmsg);
    CHECK(rbpf_object_open_mem(NULL, 10, NULL) == NULL);
    CHECK(rbpf_object_open("tests/bpf/object/missing.o", NULL) == NULL);

    rbpf_object_close(NULL);
    CHECK(rbpf_object_find_map(NULL, "x") == NULL);
    CHECK(rbpf_object_find_program(NULL, "x") == NULL);
    CHECK(rbpf_object_next_program(NULL, NULL) == NULL);
    CHECK_EQ(rbpf_object_register(NULL, 1, "x", host_value_helper), -1);
    CHECK_EQ(rbpf_object_load(NULL, NULL), -1);
    CHECK(rbpf_program_load_error(NULL) == NULL);
    CHECK(rbpf_program_name(NULL) == NULL);
    CHECK_EQ(rbpf_program_type(NULL), -1);
    CHECK_EQ(rbpf_program_set_type(NULL, 1), -EINVAL);
    CHECK(rbpf_program_vm(NULL) == NULL);
    CHECK_EQ(rbpf_program_fd(NULL), -EINVAL);
    uint64_t ret;
    CHECK_EQ(rbpf_program_exec(NULL, NULL, 0, &ret), -1);

    /* A map that is no object's: rbpf_map_set_max_entries refuses it. */
    struct rbpf_object* obj = rbpf_object_open("tests/bpf/object/multi.o", NULL);
    CHECK(obj != NULL);
    CHECK(rbpf_object_find_map(obj, NULL) == NULL);
    CHECK(rbpf_object_find_program(obj, NULL) == NULL);
    CHECK_EQ(rbpf_object_register(obj, 1, "x", NULL), -1);
    struct rbpf_map* counters = rbpf_object_find_map(obj, "counters");
    rbpf_object_close(obj);
    (void)counters;
}

int
main(void)
{
    test_multi(0, 0);
    test_multi(1, 0);
    test_multi(0, 1);
    test_tail_calls(0);
    test_tail_calls(1);
    test_errors();
    return test_failures != 0;
}
