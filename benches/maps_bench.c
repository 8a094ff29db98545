/*
 * maps_bench: the cost of one hash-map lookup and update per packet, in eBPF through librbpf
 * (benches/bpf/hash_count.o: bpf_map_lookup_elem, then the counters updated in place, or
 * bpf_map_update_elem for a new source) in the JIT and the interpreter, against the same
 * logic in C over a plain open-addressing hash table (single-threaded, no locks: the fastest
 * a native host could do). Checks that all three end with the same counts, then prints
 * nanoseconds per packet (best of 5 timed passes over the packet set).
 *
 *   usage: maps_bench [PASSES|check]   (default 200 passes over 65536 packets; `check` only
 *                                      runs the comparison, for tests)
 *
 * Build and run: benches/run-maps-bench.sh
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rbpf.h>
#include <ubpf.h>

#define PACKETS 65536
#define FRAME 64
#define SOURCES 1024
#define TABLE 8192 /* native table slots: a power of two, twice the eBPF map's capacity */

struct counters
{
    uint64_t packets;
    uint64_t bytes;
};

struct slot
{
    uint32_t key;
    uint32_t used;
    struct counters value;
};

static struct slot table[TABLE];

/* The native twin of hash_count.c. */
static uint64_t
native_count(const uint8_t* packet, size_t len)
{
    if (len < 34) {
        return 0;
    }
    uint32_t key;
    memcpy(&key, packet + 26, sizeof(key));
    uint32_t i = (key * 2654435761u) & (TABLE - 1);
    while (table[i].used && table[i].key != key) {
        i = (i + 1) & (TABLE - 1);
    }
    if (table[i].used) {
        table[i].value.packets += 1;
        table[i].value.bytes += len;
        return 1;
    }
    table[i].used = 1;
    table[i].key = key;
    table[i].value.packets = 1;
    table[i].value.bytes = len;
    return 2;
}

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint8_t frames[PACKETS][FRAME];

enum engine
{
    JIT,
    INTERPRETER,
    NATIVE
};

static ubpf_jit_fn jitted;
static struct ubpf_vm* vms[2];

static uint64_t
pass(enum engine engine)
{
    uint64_t sum = 0;
    for (size_t p = 0; p < PACKETS; p++) {
        uint64_t r = 0;
        switch (engine) {
        case JIT:
            r = jitted(frames[p], FRAME);
            break;
        case INTERPRETER:
            ubpf_exec(vms[1], frames[p], FRAME, &r);
            break;
        case NATIVE:
            r = native_count(frames[p], FRAME);
            break;
        }
        sum += r;
    }
    return sum;
}

/* Best of five timings of `passes` passes, in ns per packet. */
static double
measure(enum engine engine, int passes)
{
    double best = 1e30;
    for (int round = 0; round < 5; round++) {
        double start = now();
        for (int i = 0; i < passes; i++) {
            pass(engine);
        }
        double ns = (now() - start) * 1e9 / ((double)passes * PACKETS);
        best = ns < best ? ns : best;
    }
    return best;
}

static uint8_t*
read_file(const char* path, size_t* len)
{
    FILE* f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    uint8_t* bytes = NULL;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (bytes = malloc((size_t)size)) != NULL && fread(bytes, 1, (size_t)size, f) != (size_t)size) {
        free(bytes);
        bytes = NULL;
    }
    fclose(f);
    *len = size > 0 ? (size_t)size : 0;
    return bytes;
}

int
main(int argc, char** argv)
{
    int check_only = argc > 1 && strcmp(argv[1], "check") == 0;
    int passes = argc > 1 && !check_only ? atoi(argv[1]) : 200;
    if (passes < 1) {
        passes = 1;
    }
    size_t len = 0;
    uint8_t* object = read_file("benches/bpf/hash_count.o", &len);
    if (object == NULL) {
        fprintf(stderr, "maps_bench: cannot read benches/bpf/hash_count.o (run from the repository root)\n");
        return 1;
    }
    /* IPv4 frames from SOURCES addresses, in a fixed pseudo-random order. */
    uint32_t x = 12345;
    for (size_t p = 0; p < PACKETS; p++) {
        x = x * 1103515245u + 12345u;
        uint32_t source = 0x0a000000u | ((x >> 8) % SOURCES);
        memset(frames[p], 0, FRAME);
        frames[p][12] = 0x08;
        frames[p][14] = 0x45;
        memcpy(frames[p] + 26, &source, 4);
    }
    for (int i = 0; i < 2; i++) {
        char* errmsg = NULL;
        vms[i] = ubpf_create();
        if (rbpf_register_linux_helpers(vms[i]) != 0 || ubpf_load_elf(vms[i], object, len, &errmsg) != 0) {
            fprintf(stderr, "maps_bench: Failed to load code: %s\n", errmsg ? errmsg : "?");
            return 1;
        }
        free(errmsg);
    }
    char* errmsg = NULL;
    jitted = ubpf_compile(vms[0], &errmsg);
    if (jitted == NULL) {
        fprintf(stderr, "maps_bench: Failed to compile: %s\n", errmsg ? errmsg : "?");
        return 1;
    }

    /* One pass each from empty maps: the same return values and the same final counts. */
    uint64_t sums[3] = {pass(JIT), pass(INTERPRETER), pass(NATIVE)};
    int agree = sums[0] == sums[1] && sums[1] == sums[2];
    struct rbpf_map* maps[2] = {rbpf_map_by_name(vms[0], "flows"), rbpf_map_by_name(vms[1], "flows")};
    size_t entries = 0;
    for (size_t i = 0; i < TABLE; i++) {
        if (!table[i].used) {
            continue;
        }
        entries++;
        for (int m = 0; m < 2; m++) {
            struct counters c = {0, 0};
            agree &= rbpf_map_lookup_elem(maps[m], &table[i].key, &c) == 0 &&
                     c.packets == table[i].value.packets && c.bytes == table[i].value.bytes;
        }
    }
    if (!agree || entries != SOURCES) {
        fprintf(stderr, "maps_bench: engines disagree (%zu entries)\n", entries);
        return 1;
    }
    printf("results agree: %zu sources, %d packets\n", entries, PACKETS);
    if (check_only) {
        ubpf_destroy(vms[0]);
        ubpf_destroy(vms[1]);
        free(object);
        return 0;
    }

    double jit = measure(JIT, passes);
    double interp = measure(INTERPRETER, passes / 10 > 0 ? passes / 10 : 1);
    double native = measure(NATIVE, passes);
    printf("hash lookup+update per packet (%d sources, 4096-entry map):\n", SOURCES);
    printf("  jit          %8.1f ns/op\n", jit);
    printf("  interpreter  %8.1f ns/op\n", interp);
    printf("  native C     %8.1f ns/op\n", native);
    printf("  jit/native   %8.2fx\n", jit / native);

    ubpf_destroy(vms[0]);
    ubpf_destroy(vms[1]);
    free(object);
    return 0;
}
