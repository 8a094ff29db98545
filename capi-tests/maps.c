/* Maps from C: a libbpf-style object (tests/bpf/maps_suite.o) loaded with ubpf_load_elf after
 * rbpf_register_linux_helpers, run through ubpf_exec and the compiled function, its maps read
 * and written through rbpf.h (errno codes as libbpf's), its ring buffer consumed, and 8
 * threads running the JIT while the host iterates the hash map. */
#include <errno.h>
#include <pthread.h>

#include "capi_test.h"
#include <rbpf.h>

struct req
{
    uint32_t op;
    uint32_t key;
    uint64_t value;
    uint64_t flags;
    int64_t off;
};

static ubpf_jit_fn jitted;

static int64_t
run(struct ubpf_vm* vm, int jit, uint32_t op, uint32_t key, uint64_t value, uint64_t flags)
{
    struct req r = {op, key, value, flags, 0};
    if (jit) {
        return (int64_t)jitted(&r, sizeof(r));
    }
    uint64_t ret = 0;
    if (ubpf_exec(vm, &r, sizeof(r), &ret) != 0) {
        return -1000;
    }
    return (int64_t)ret;
}

static int
collect(void* ctx, const void* data, size_t size)
{
    uint64_t* sum = ctx;
    const uint64_t* words = data;
    if (size == 16) {
        *sum += words[0] * 1000 + words[1];
    }
    return 0;
}

static int
stop_at_first(void* ctx, const void* data, size_t size)
{
    (void)data, (void)size;
    (*(int*)ctx)++;
    return -42;
}

static struct ubpf_vm* shared_vm;
static volatile int stop_threads;

static void*
worker(void* arg)
{
    uint32_t t = (uint32_t)(uintptr_t)arg;
    for (uint32_t i = 0; i < 3000; i++) {
        uint32_t key = (i * 5 + t) % 12;
        int64_t rc = run(shared_vm, 1, 2, key, i, 0);
        if (rc != 0 && rc != -E2BIG) {
            fprintf(stderr, "update returned %lld\n", (long long)rc);
            test_failures++;
        }
        if (i % 4 == 0) {
            run(shared_vm, 1, 4, key, 0, 0);
        }
    }
    return NULL;
}

int
main(void)
{
    size_t len = 0;
    uint8_t* object = read_file("tests/bpf/maps_suite.o", &len);
    CHECK(object != NULL);
    if (object == NULL) {
        return TEST_RESULT();
    }
    for (int jit = 0; jit < 2; jit++) {
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

        struct rbpf_map* hash = rbpf_map_by_name(vm, "hash");
        struct rbpf_map* array = rbpf_map_by_name(vm, "array");
        struct rbpf_map* pcpu = rbpf_map_by_name(vm, "pcpu_array");
        struct rbpf_map* events = rbpf_map_by_name(vm, "events");
        CHECK(hash != NULL && array != NULL && pcpu != NULL && events != NULL);
        CHECK(rbpf_map_by_name(vm, "nope") == NULL);
        CHECK(rbpf_map_by_name(vm, NULL) == NULL);
        CHECK(rbpf_map_by_name(NULL, "hash") == NULL);

        uint32_t type, key_size, value_size, max_entries;
        CHECK_EQ(rbpf_map_info(hash, &type, &key_size, &value_size, &max_entries), 0);
        CHECK_EQ(type, 1);
        CHECK_EQ(key_size, 4);
        CHECK_EQ(value_size, 8);
        CHECK_EQ(max_entries, 8);
        CHECK_EQ(rbpf_map_info(events, &type, NULL, NULL, &max_entries), 0);
        CHECK_EQ(type, 27);
        CHECK_EQ(max_entries, 4096);
        CHECK_EQ(rbpf_map_info(NULL, &type, NULL, NULL, NULL), -EINVAL);

        /* Program writes, host reads; host writes, program reads. */
        CHECK_EQ(run(vm, jit, 2, 7, 700, 0), 0);
        uint32_t key = 7;
        uint64_t value = 0;
        CHECK_EQ(rbpf_map_lookup_elem(hash, &key, &value), 0);
        CHECK_EQ(value, 700);
        value = 701;
        CHECK_EQ(rbpf_map_update_elem(hash, &key, &value, 2 /* BPF_EXIST */), 0);
        CHECK_EQ(run(vm, jit, 3, 7, 0, 0), 701);
        CHECK_EQ(rbpf_map_update_elem(hash, &key, &value, 1 /* BPF_NOEXIST */), -EEXIST);
        CHECK_EQ(rbpf_map_update_elem(hash, &key, &value, 9), -EINVAL);
        key = 8;
        CHECK_EQ(rbpf_map_update_elem(hash, &key, &value, 2), -ENOENT);
        CHECK_EQ(rbpf_map_lookup_elem(hash, &key, &value), -ENOENT);
        CHECK_EQ(rbpf_map_delete_elem(hash, &key), -ENOENT);
        for (key = 100; key < 107; key++) {
            CHECK_EQ(rbpf_map_update_elem(hash, &key, &value, 0), 0);
        }
        CHECK_EQ(rbpf_map_update_elem(hash, &key, &value, 0), -E2BIG);
        int count = 0;
        uint32_t next = 0, *prev = NULL;
        while (rbpf_map_get_next_key(hash, prev, &next) == 0) {
            count++;
            key = next;
            prev = &key;
        }
        CHECK_EQ(count, 8);
        CHECK_EQ(rbpf_map_get_next_key(hash, NULL, NULL), -EINVAL);
        key = 7;
        CHECK_EQ(rbpf_map_delete_elem(hash, &key), 0);
        CHECK_EQ(run(vm, jit, 3, 7, 0, 0), -1);
        for (key = 100; key < 107; key++) {
            CHECK_EQ(rbpf_map_delete_elem(hash, &key), 0);
        }

        /* Arrays: every element exists; no delete; index past the end. */
        key = 2;
        uint64_t pair[2] = {0, 0};
        CHECK_EQ(run(vm, jit, 0, 2, 3, 0), 3);
        CHECK_EQ(rbpf_map_lookup_elem(array, &key, pair), 0);
        CHECK_EQ(pair[0], 3);
        CHECK_EQ(pair[1], 6);
        CHECK_EQ(rbpf_map_delete_elem(array, &key), -EINVAL);
        key = 4;
        CHECK_EQ(rbpf_map_update_elem(array, &key, pair, 0), -E2BIG);
        CHECK_EQ(rbpf_map_lookup_elem(array, &key, pair), -ENOENT);
        CHECK_EQ(rbpf_map_get_next_key(array, NULL, &next), 0);
        CHECK_EQ(next, 0);
        key = 3;
        CHECK_EQ(rbpf_map_get_next_key(array, &key, &next), -ENOENT);

        /* Per-CPU: one value per slot, 8 bytes apart. */
        int slots = rbpf_map_value_slots(pcpu);
        CHECK(slots >= 1);
        CHECK_EQ(rbpf_map_value_slots(hash), 1);
        CHECK_EQ(run(vm, jit, 5, 1, 0, 0), 1);
        CHECK_EQ(run(vm, jit, 5, 1, 0, 0), 2);
        uint64_t* all = calloc((size_t)slots, 8);
        key = 1;
        CHECK_EQ(rbpf_map_lookup_elem(pcpu, &key, all), 0);
        uint64_t sum = 0;
        for (int i = 0; i < slots; i++) {
            sum += all[i];
        }
        CHECK_EQ(sum, 2);
        free(all);

        /* Ring buffer. */
        CHECK_EQ(run(vm, jit, 8, 1, 11, 0), 0);
        CHECK_EQ(run(vm, jit, 8, 2, 22, 0), 0);
        uint64_t total = 0;
        CHECK_EQ(rbpf_ringbuf_consume(events, collect, &total), 2);
        CHECK_EQ(total, 1011 + 2022);
        CHECK_EQ(rbpf_ringbuf_consume(events, collect, &total), 0);
        CHECK_EQ(run(vm, jit, 8, 3, 33, 0), 0);
        CHECK_EQ(run(vm, jit, 8, 4, 44, 0), 0);
        int seen = 0;
        CHECK_EQ(rbpf_ringbuf_consume(events, stop_at_first, &seen), -42);
        CHECK_EQ(seen, 1);
        CHECK_EQ(rbpf_ringbuf_consume(events, collect, &total), 1);
        CHECK_EQ(rbpf_ringbuf_consume(hash, collect, &total), -EINVAL);
        CHECK_EQ(rbpf_ringbuf_consume(events, NULL, &total), -EINVAL);

        /* NULL arguments. */
        CHECK_EQ(rbpf_map_lookup_elem(NULL, &key, &value), -EINVAL);
        CHECK_EQ(rbpf_map_lookup_elem(hash, NULL, &value), -EINVAL);
        CHECK_EQ(rbpf_map_update_elem(hash, &key, NULL, 0), -EINVAL);
        CHECK_EQ(rbpf_map_delete_elem(NULL, &key), -EINVAL);
        CHECK_EQ(rbpf_register_linux_helpers(NULL), -1);

        /* 8 threads on the JIT while the host iterates and reads. */
        if (jit) {
            shared_vm = vm;
            pthread_t threads[8];
            for (uintptr_t i = 0; i < 8; i++) {
                CHECK_EQ(pthread_create(&threads[i], NULL, worker, (void*)i), 0);
            }
            for (int round = 0; round < 300; round++) {
                prev = NULL;
                count = 0;
                int walk = 0;
                while ((walk = rbpf_map_get_next_key(hash, prev, &next)) == 0 && count < 100) {
                    CHECK(next < 12);
                    int rc = rbpf_map_lookup_elem(hash, &next, &value);
                    CHECK(rc == 0 || rc == -ENOENT);
                    key = next;
                    prev = &key;
                    count++;
                }
                /* A key deleted under the walk restarts it from the first key, as in the
                 * kernel, so a walk may be long; it only ever ends at the map's end. */
                CHECK(walk == 0 || walk == -ENOENT);
            }
            for (int i = 0; i < 8; i++) {
                CHECK_EQ(pthread_join(threads[i], NULL), 0);
            }
            /* Quiet again: one walk meets each present key once. */
            uint32_t met = 0;
            prev = NULL;
            count = 0;
            while (rbpf_map_get_next_key(hash, prev, &next) == 0 && count < 100) {
                CHECK(next < 12 && (met & (1u << next)) == 0);
                met |= next < 12 ? 1u << next : 0;
                CHECK_EQ(rbpf_map_lookup_elem(hash, &next, &value), 0);
                key = next;
                prev = &key;
                count++;
            }
            CHECK(count <= 12);
        }

        ubpf_unload_code(vm);
        CHECK(rbpf_map_by_name(vm, "hash") == NULL);
        ubpf_destroy(vm);
    }
    free(object);

    /* A map the loader cannot create fails the load with a clear message. */
    object = read_file("tests/bpf/bad_map_type.o", &len);
    CHECK(object != NULL);
    struct ubpf_vm* vm = ubpf_create();
    CHECK_EQ(rbpf_register_linux_helpers(vm), 0);
    char* errmsg = NULL;
    CHECK_EQ(ubpf_load_elf(vm, object, len, &errmsg), -1);
    CHECK_STR(errmsg, "map 'weird': unsupported map type 99");
    free(errmsg);
    ubpf_destroy(vm);
    free(object);

    /* Tail calls: program numbers from C, a PROG_ARRAY filled by the host, the JIT's function. */
    object = read_file("tests/bpf/tail.o", &len);
    CHECK(object != NULL);
    vm = ubpf_create();
    CHECK_EQ(rbpf_register_linux_helpers(vm), 0);
    errmsg = NULL;
    CHECK_EQ(ubpf_load_elf(vm, object, len, &errmsg), 0);
    free(errmsg);
    int second = rbpf_program_number(vm, "second");
    CHECK(second > 0);
    CHECK_EQ(rbpf_program_number(vm, "entry"), 0);
    CHECK_EQ(rbpf_program_number(vm, "nope"), -ENOENT);
    CHECK_EQ(rbpf_program_number(vm, NULL), -EINVAL);
    struct rbpf_map* jumps = rbpf_map_by_name(vm, "jumps");
    uint32_t slot = 1, number = (uint32_t)second;
    CHECK_EQ(rbpf_map_update_elem(jumps, &slot, &number, 0), 0);
    errmsg = NULL;
    ubpf_jit_fn tail = ubpf_compile(vm, &errmsg);
    CHECK(tail != NULL);
    free(errmsg);
    uint64_t mem[2] = {1, 0};
    CHECK_EQ(tail != NULL ? tail(mem, sizeof(mem)) : 0, 2001);
    mem[0] = 0;
    CHECK_EQ((int64_t)(tail != NULL ? tail(mem, sizeof(mem)) : 0), -ENOENT * 10);
    ubpf_destroy(vm);
    free(object);
    return TEST_RESULT();
}
