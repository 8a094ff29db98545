/*
 * flow_top: runs the libbpf-style eBPF program examples-c/bpf/flow_counter.o over a libpcap
 * capture and prints what its maps collected: the top talkers (hash map keyed by IPv4 source
 * address), the traffic per IP protocol (array map) and every TCP SYN event (ring buffer).
 *
 * The object is compiled by clang exactly as for the kernel; librbpf provides the kernel's
 * helpers (rbpf_register_linux_helpers), creates the maps at ubpf_load_elf, and gives the
 * host access to them through rbpf.h.
 *
 *   usage: flow_top [--interpret] [OBJECT.o CAPTURE.pcap]
 *
 * Defaults: examples-c/bpf/flow_counter.o over examples-c/data/sample.pcap (relative to the
 * repository root). examples-c/data/flows.pcap has a few busy hosts and TCP connections.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rbpf.h>
#include <ubpf.h>

#define TOP 5

struct flow_stats
{
    uint64_t packets;
    uint64_t bytes;
};

struct syn_event
{
    uint64_t timestamp_ns;
    uint32_t saddr;
    uint32_t daddr;
    uint16_t sport;
    uint16_t dport;
    uint32_t pad;
};

struct talker
{
    uint32_t addr;
    struct flow_stats stats;
};

static uint8_t*
read_file(const char* path, size_t* size)
{
    FILE* file = fopen(path, "rb");
    if (file == NULL) {
        return NULL;
    }
    uint8_t* bytes = NULL;
    long length = -1;
    if (fseek(file, 0, SEEK_END) == 0 && (length = ftell(file)) > 0 && fseek(file, 0, SEEK_SET) == 0 &&
        (bytes = malloc((size_t)length)) != NULL && fread(bytes, 1, (size_t)length, file) != (size_t)length) {
        free(bytes);
        bytes = NULL;
    }
    fclose(file);
    *size = length > 0 ? (size_t)length : 0;
    return bytes;
}

static uint32_t
le32(const uint8_t* p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int
by_bytes(const void* a, const void* b)
{
    const struct talker* x = a;
    const struct talker* y = b;
    return x->stats.bytes < y->stats.bytes ? 1 : x->stats.bytes > y->stats.bytes ? -1 : 0;
}

static int
print_syn(void* ctx, const void* data, size_t size)
{
    unsigned* count = ctx;
    struct syn_event event;
    if (size != sizeof(event)) {
        return -1;
    }
    memcpy(&event, data, sizeof(event));
    char from[INET_ADDRSTRLEN], to[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &event.saddr, from, sizeof(from));
    inet_ntop(AF_INET, &event.daddr, to, sizeof(to));
    if (*count < 10) {
        printf("  SYN %s:%u -> %s:%u\n", from, event.sport, to, event.dport);
    }
    (*count)++;
    return 0;
}

int
main(int argc, char** argv)
{
    int interpret = argc > 1 && strcmp(argv[1], "--interpret") == 0;
    int first = 1 + interpret;
    const char* object_path = argc > first + 1 ? argv[first] : "examples-c/bpf/flow_counter.o";
    const char* capture_path = argc > first + 1 ? argv[first + 1] : "examples-c/data/sample.pcap";

    size_t object_len = 0, capture_len = 0;
    uint8_t* object = read_file(object_path, &object_len);
    uint8_t* capture = read_file(capture_path, &capture_len);
    if (object == NULL || capture == NULL || capture_len < 24 || le32(capture) != 0xa1b2c3d4u) {
        fprintf(stderr, "flow_top: cannot read %s or %s (a little-endian pcap file)\n", object_path, capture_path);
        free(object);
        free(capture);
        return 1;
    }

    struct ubpf_vm* vm = ubpf_create();
    char* errmsg = NULL;
    ubpf_jit_fn jitted = NULL;
    if (vm == NULL || rbpf_register_linux_helpers(vm) != 0 || ubpf_load_elf(vm, object, object_len, &errmsg) != 0 ||
        (!interpret && (jitted = ubpf_compile(vm, &errmsg)) == NULL)) {
        fprintf(stderr, "flow_top: Failed to load code: %s\n", errmsg ? errmsg : "out of memory");
        free(errmsg);
        ubpf_destroy(vm);
        free(object);
        free(capture);
        return 1;
    }
    free(errmsg);

    unsigned packets = 0, syn_returns = 0;
    size_t at = 24;
    while (capture_len - at >= 16) {
        uint32_t caplen = le32(capture + at + 8);
        at += 16;
        if (caplen > capture_len - at) {
            break;
        }
        uint64_t ret = 0;
        if (interpret) {
            if (ubpf_exec(vm, capture + at, caplen, &ret) != 0) {
                ret = 0;
            }
        } else {
            ret = jitted(capture + at, caplen);
        }
        syn_returns += ret == 2;
        packets++;
        at += caplen;
    }

    struct rbpf_map* flows = rbpf_map_by_name(vm, "flows");
    struct rbpf_map* protocols = rbpf_map_by_name(vm, "protocols");
    struct rbpf_map* syn_events = rbpf_map_by_name(vm, "syn_events");
    uint32_t max_flows = 0;
    rbpf_map_info(flows, NULL, NULL, NULL, &max_flows);
    struct talker* talkers = calloc(max_flows ? max_flows : 1, sizeof(*talkers));
    size_t count = 0;
    uint32_t key = 0, next = 0;
    const uint32_t* prev = NULL;
    while (talkers != NULL && count < max_flows && rbpf_map_get_next_key(flows, prev, &next) == 0) {
        if (rbpf_map_lookup_elem(flows, &next, &talkers[count].stats) == 0) {
            talkers[count++].addr = next;
        }
        key = next;
        prev = &key;
    }
    qsort(talkers, count, sizeof(*talkers), by_bytes);

    printf("%u packets (%s), %zu IPv4 sources\n", packets, interpret ? "interpreter" : "jit", count);
    printf("top talkers:\n");
    for (size_t i = 0; i < count && i < TOP; i++) {
        char text[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &talkers[i].addr, text, sizeof(text));
        printf("  %-15s %6" PRIu64 " packets %9" PRIu64 " bytes\n", text, talkers[i].stats.packets,
               talkers[i].stats.bytes);
    }
    free(talkers);

    static const struct
    {
        uint32_t number;
        const char* name;
    } names[] = {{1, "icmp"}, {6, "tcp"}, {17, "udp"}};
    printf("protocols:");
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        struct flow_stats stats = {0, 0};
        rbpf_map_lookup_elem(protocols, &names[i].number, &stats);
        printf(" %s %" PRIu64, names[i].name, stats.packets);
    }
    printf("\n");

    unsigned syns = 0;
    int consumed = rbpf_ringbuf_consume(syn_events, print_syn, &syns);
    printf("%u SYN events (%d consumed, %u SYN packets)\n", syns, consumed, syn_returns);

    ubpf_destroy(vm);
    free(object);
    free(capture);
    return consumed < 0 || (unsigned)consumed != syn_returns;
}
