/* The kernel map types and helpers beyond hash/array from C (docs/maps.md): queue push/pop/peek
 * from the host and the program, perf event records consumed through rbpf_perf_buffer_consume,
 * map-in-map inner maps by id (rbpf_map_id, rbpf_map_inner), the probe-read opt-in
 * (rbpf_set_probe_read) and bpf_get_stack's host-supplied stack (rbpf_set_stack_provider).
 * tests/bpf/kernel_maps.o is written by tests/kernel_helpers.rs (legacy maps section). */
#include <errno.h>
#include <inttypes.h>

#include "capi_test.h"
#include <rbpf.h>

static ubpf_jit_fn jitted;

static int64_t
run(struct ubpf_vm* vm, int jit, uint64_t* mem, size_t len)
{
    if (jit) {
        return (int64_t)jitted(mem, len);
    }
    uint64_t ret = 0;
    if (ubpf_exec(vm, mem, len, &ret) != 0) {
        return -1000;
    }
    return (int64_t)ret;
}

struct records
{
    int count;
    uint64_t last;
    uint64_t lost;
};

static int
sample(void* ctx, uint32_t slot, const void* data, size_t size)
{
    struct records* r = ctx;
    (void)slot;
    r->count++;
    if (size == 8) {
        memcpy(&r->last, data, 8);
    }
    return 0;
}

static void
lost(void* ctx, uint32_t slot, uint64_t count)
{
    (void)slot;
    ((struct records*)ctx)->lost += count;
}

static void
object_maps(const uint8_t* object, size_t len, int jit)
{
    struct ubpf_vm* vm = ubpf_create();
    CHECK_EQ(rbpf_register_linux_helpers(vm), 0);
    char* errmsg = NULL;
    CHECK_EQ(ubpf_load_elf(vm, object, len, &errmsg), 0);
    free(errmsg);
    if (jit) {
        errmsg = NULL;
        jitted = ubpf_compile(vm, &errmsg);
        CHECK(jitted != NULL);
        free(errmsg);
    }
    struct rbpf_map* queue = rbpf_map_by_name(vm, "queue");
    struct rbpf_map* events = rbpf_map_by_name(vm, "events");
    struct rbpf_map* outer = rbpf_map_by_name(vm, "outer");
    struct rbpf_map* inner = rbpf_map_by_name(vm, "inner");
    CHECK(queue != NULL && events != NULL && outer != NULL && inner != NULL);

    /* Queue: the host pushes, the program pops (op 3), the host pops and peeks. */
    uint64_t v = 11;
    CHECK_EQ(rbpf_map_push_elem(queue, &v, 0), 0);
    v = 12;
    CHECK_EQ(rbpf_map_push_elem(queue, &v, 0), 0);
    CHECK_EQ(rbpf_map_push_elem(queue, &v, 1), -EINVAL);
    uint64_t mem[2] = {3, 0};
    CHECK_EQ(run(vm, jit, mem, sizeof(mem)), 0);
    CHECK_EQ(mem[1], 11);
    uint64_t out = 0;
    CHECK_EQ(rbpf_map_peek_elem(queue, &out), 0);
    CHECK_EQ(out, 12);
    CHECK_EQ(rbpf_map_pop_elem(queue, &out), 0);
    CHECK_EQ(rbpf_map_pop_elem(queue, &out), -ENOENT);
    mem[0] = 0, mem[1] = 5;
    CHECK_EQ(run(vm, jit, mem, sizeof(mem)), 0);
    /* libbpf's spelling of peek on a keyless map: lookup with a NULL key. */
    CHECK_EQ(rbpf_map_lookup_elem(queue, NULL, &out), 0);
    CHECK_EQ(out, 5);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(rbpf_map_push_elem(queue, &v, 0), 0);
    }
    CHECK_EQ(rbpf_map_push_elem(queue, &v, 0), -E2BIG);
    CHECK_EQ(rbpf_map_push_elem(queue, &v, 2), 0);
    CHECK_EQ(rbpf_map_pop_elem(NULL, &out), -EINVAL);
    CHECK_EQ(rbpf_map_pop_elem(events, &out), -EINVAL);

    /* Perf events: the program outputs 77 at its CPU slot (op 1). */
    mem[0] = 1, mem[1] = 77;
    CHECK_EQ(run(vm, jit, mem, sizeof(mem)), 0);
    struct records r = {0, 0, 0};
    CHECK_EQ(rbpf_perf_buffer_consume(events, sample, lost, &r), 1);
    CHECK_EQ(r.count, 1);
    CHECK_EQ(r.last, 77);
    CHECK_EQ(r.lost, 0);
    CHECK_EQ(rbpf_perf_buffer_consume(events, sample, NULL, &r), 0);
    CHECK_EQ(rbpf_perf_buffer_consume(queue, sample, NULL, &r), -EINVAL);
    CHECK_EQ(rbpf_perf_buffer_consume(events, NULL, NULL, &r), -EINVAL);

    /* Map in map: outer[0] = inner, by id. */
    uint32_t key = 0;
    mem[0] = 2, mem[1] = 3;
    CHECK_EQ(run(vm, jit, mem, sizeof(mem)), -1);
    uint32_t id = rbpf_map_id(inner);
    CHECK(id != 0);
    CHECK_EQ(rbpf_map_id(NULL), 0);
    CHECK_EQ(rbpf_map_update_elem(outer, &key, &id, 0), 0);
    CHECK_EQ(run(vm, jit, mem, sizeof(mem)), 3);
    CHECK(rbpf_map_inner(vm, outer, &key) == inner);
    uint32_t got = 0;
    CHECK_EQ(rbpf_map_lookup_elem(outer, &key, &got), 0);
    CHECK_EQ(got, id);
    key = 1;
    CHECK(rbpf_map_inner(vm, outer, &key) == NULL);
    CHECK(rbpf_map_inner(vm, inner, &key) == NULL);
    CHECK(rbpf_map_inner(NULL, outer, &key) == NULL);
    ubpf_destroy(vm);
}

static const char host_bytes[16] = "host memory!";

static bool
allow(void* ctx, uint64_t addr, uint64_t len)
{
    (*(int*)ctx)++;
    return addr >= (uintptr_t)host_bytes && addr + len <= (uintptr_t)host_bytes + sizeof(host_bytes);
}

static size_t
stack(void* ctx, int user, uint64_t* ips, size_t max)
{
    (void)ctx;
    CHECK(max >= 2);
    ips[0] = user ? 0x7000 : 0x1000;
    ips[1] = 0x2000;
    return 2;
}

static struct ubpf_vm*
assembled(const char* text, int jit)
{
    struct ubpf_vm* vm = ubpf_create();
    CHECK_EQ(rbpf_register_linux_helpers(vm), 0);
    uint8_t* code = NULL;
    size_t len = 0;
    char* errmsg = NULL;
    CHECK_EQ(rbpf_assemble(text, &code, &len, &errmsg), 0);
    free(errmsg);
    errmsg = NULL;
    CHECK_EQ(ubpf_load(vm, code, (uint32_t)len, &errmsg), 0);
    free(errmsg);
    free(code);
    if (jit) {
        errmsg = NULL;
        jitted = ubpf_compile(vm, &errmsg);
        CHECK(jitted != NULL);
        free(errmsg);
    }
    return vm;
}

static void
probe_and_stack(int jit)
{
    char text[256];
    snprintf(
        text, sizeof(text),
        "mov %%r2, 8\nlddw %%r3, 0x%" PRIxPTR "\ncall 113\nexit",
        (uintptr_t)host_bytes);
    struct ubpf_vm* vm = assembled(text, jit);
    uint64_t mem[2] = {0, 0};
    CHECK_EQ(run(vm, jit, mem, sizeof(mem)), -EFAULT);
    int asked = 0;
    CHECK_EQ(rbpf_set_probe_read(vm, allow, &asked), 0);
    CHECK_EQ(rbpf_set_probe_read(NULL, allow, &asked), -1);
    CHECK_EQ(run(vm, jit, mem, sizeof(mem)), 0);
    CHECK(asked > 0);
    CHECK(memcmp(mem, host_bytes, 8) == 0);
    CHECK_EQ(rbpf_set_probe_read(vm, NULL, NULL), 0);
    CHECK_EQ(run(vm, jit, mem, sizeof(mem)), -EFAULT);
    CHECK_EQ(mem[0], 0);
    ubpf_destroy(vm);

    vm = assembled("mov %r2, %r1\nmov %r3, 16\nlddw %r4, 0x100\ncall 67\nexit", jit);
    CHECK_EQ(run(vm, jit, mem, sizeof(mem)), 0);
    CHECK_EQ(rbpf_set_stack_provider(vm, stack, NULL), 0);
    CHECK_EQ(run(vm, jit, mem, sizeof(mem)), 16);
    CHECK_EQ(mem[0], 0x7000);
    CHECK_EQ(mem[1], 0x2000);
    ubpf_destroy(vm);
}

int
main(void)
{
    size_t len = 0;
    uint8_t* object = read_file("tests/bpf/kernel_maps.o", &len);
    CHECK(object != NULL);
    if (object == NULL) {
        return TEST_RESULT();
    }
    for (int jit = 0; jit < 2; jit++) {
        object_maps(object, len, jit);
        probe_and_stack(jit);
    }
    free(object);
    return TEST_RESULT();
}
