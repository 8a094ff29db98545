/*
 * pcap_filter: runs an eBPF packet filter, loaded from an ELF object, over every packet of a
 * classic libpcap capture file, and reports how many packets it accepted and how fast.
 *
 * It uses nothing but uBPF's public API (ubpf.h), so it builds unchanged against uBPF or
 * librbpf (-lrbpf). The capture file is parsed here (24-byte global header, 16-byte record
 * headers, either byte order, microsecond or nanosecond timestamps); libpcap is not needed.
 *
 * The filter is called like a uBPF program: r1 = the packet's captured bytes, r2 = their
 * length. A non-zero return value accepts the packet.
 *
 *   usage: pcap_filter [--interpret] [--entry NAME] [--repeat N] [FILTER.o CAPTURE.pcap]
 *
 * Without the two paths it runs the bundled example, examples-c/bpf/packet_filter.o over
 * examples-c/data/sample.pcap (relative to the current directory, i.e. the repository root).
 *
 * By default the filter is JIT-compiled (ubpf_compile); --interpret runs it with ubpf_exec.
 * --entry picks the filter function by symbol name (ubpf_load_elf_ex). --repeat runs the
 * whole capture N times for a steadier throughput figure (the match count is per pass).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ubpf.h>

#define PCAP_GLOBAL_HEADER_LEN 24
#define PCAP_RECORD_HEADER_LEN 16
#define PCAP_MAGIC_USEC 0xa1b2c3d4u
#define PCAP_MAGIC_NSEC 0xa1b23c4du
#define PCAP_MAX_RECORD (256u * 1024u)

struct packet {
    uint8_t* data;
    uint32_t len;
};

struct capture {
    uint8_t* bytes; /* the whole file; packets point into it */
    size_t size;
    struct packet* packets;
    size_t count;
    uint32_t linktype;
};

static void
usage(const char* argv0)
{
    fprintf(stderr, "usage: %s [--interpret] [--entry NAME] [--repeat N] [FILTER.o CAPTURE.pcap]\n", argv0);
}

/* Reads a whole file into a malloc'd buffer. Returns NULL (after printing why) on failure. */
static uint8_t*
read_file(const char* path, size_t* size)
{
    FILE* file = fopen(path, "rb");
    if (file == NULL) {
        fprintf(stderr, "pcap_filter: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t capacity = 65536;
    size_t used = 0;
    uint8_t* buffer = malloc(capacity);
    while (buffer != NULL) {
        used += fread(buffer + used, 1, capacity - used, file);
        if (used < capacity) {
            break;
        }
        uint8_t* bigger = capacity <= SIZE_MAX / 2 ? realloc(buffer, capacity * 2) : NULL;
        if (bigger == NULL) {
            free(buffer);
            buffer = NULL;
            break;
        }
        buffer = bigger;
        capacity *= 2;
    }
    if (buffer == NULL) {
        fprintf(stderr, "pcap_filter: out of memory reading %s\n", path);
    } else if (ferror(file)) {
        fprintf(stderr, "pcap_filter: cannot read %s\n", path);
        free(buffer);
        buffer = NULL;
    }
    fclose(file);
    *size = used;
    return buffer;
}

static uint32_t
read_u32(const uint8_t* p, bool swapped)
{
    uint32_t value = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    if (swapped) {
        value = (value >> 24) | ((value >> 8) & 0xff00u) | ((value << 8) & 0xff0000u) | (value << 24);
    }
    return value;
}

/* Parses the capture in cap->bytes into cap->packets. Returns false (after printing why) if
 * the file is not a classic pcap file or a record runs past its end. */
static bool
parse_capture(struct capture* cap, const char* path)
{
    if (cap->size < PCAP_GLOBAL_HEADER_LEN) {
        fprintf(stderr, "pcap_filter: %s: too short for a pcap header\n", path);
        return false;
    }
    uint32_t magic = read_u32(cap->bytes, false);
    bool swapped;
    if (magic == PCAP_MAGIC_USEC || magic == PCAP_MAGIC_NSEC) {
        swapped = false;
    } else if (read_u32(cap->bytes, true) == PCAP_MAGIC_USEC || read_u32(cap->bytes, true) == PCAP_MAGIC_NSEC) {
        swapped = true;
    } else {
        fprintf(stderr, "pcap_filter: %s: not a pcap file (magic 0x%08" PRIx32 ")\n", path, magic);
        return false;
    }
    uint32_t version = read_u32(cap->bytes + 4, swapped);
    uint32_t major = swapped ? version >> 16 : version & 0xffffu;
    if (major != 2) {
        fprintf(stderr, "pcap_filter: %s: unsupported pcap version %" PRIu32 "\n", path, major);
        return false;
    }
    cap->linktype = read_u32(cap->bytes + 20, swapped) & 0x0fffffffu;

    /* Every record needs at least its header, which bounds the packet count. */
    size_t most = (cap->size - PCAP_GLOBAL_HEADER_LEN) / PCAP_RECORD_HEADER_LEN;
    cap->packets = calloc(most > 0 ? most : 1, sizeof(*cap->packets));
    if (cap->packets == NULL) {
        fprintf(stderr, "pcap_filter: out of memory\n");
        return false;
    }
    size_t offset = PCAP_GLOBAL_HEADER_LEN;
    while (offset < cap->size) {
        if (cap->size - offset < PCAP_RECORD_HEADER_LEN) {
            fprintf(stderr, "pcap_filter: %s: truncated record header at offset %zu\n", path, offset);
            return false;
        }
        uint32_t caplen = read_u32(cap->bytes + offset + 8, swapped);
        offset += PCAP_RECORD_HEADER_LEN;
        if (caplen > PCAP_MAX_RECORD || caplen > cap->size - offset) {
            fprintf(
                stderr,
                "pcap_filter: %s: record %zu claims %" PRIu32 " bytes, more than the file holds\n",
                path,
                cap->count + 1,
                caplen);
            return false;
        }
        cap->packets[cap->count].data = cap->bytes + offset;
        cap->packets[cap->count].len = caplen;
        cap->count++;
        offset += caplen;
    }
    return true;
}

static double
now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char** argv)
{
    bool interpret = false;
    const char* entry = NULL;
    unsigned long repeat = 1;
    int arg = 1;
    for (; arg < argc && strncmp(argv[arg], "--", 2) == 0; arg++) {
        if (strcmp(argv[arg], "--interpret") == 0) {
            interpret = true;
        } else if (strcmp(argv[arg], "--entry") == 0 && arg + 1 < argc) {
            entry = argv[++arg];
        } else if (strcmp(argv[arg], "--repeat") == 0 && arg + 1 < argc) {
            char* end = NULL;
            repeat = strtoul(argv[++arg], &end, 10);
            if (end == argv[arg] || *end != '\0' || repeat == 0) {
                fprintf(stderr, "pcap_filter: --repeat needs a positive number\n");
                return 2;
            }
        } else {
            usage(argv[0]);
            return 2;
        }
    }
    const char* filter_path = "examples-c/bpf/packet_filter.o";
    const char* capture_path = "examples-c/data/sample.pcap";
    if (argc - arg == 2) {
        filter_path = argv[arg];
        capture_path = argv[arg + 1];
    } else if (argc != arg) {
        usage(argv[0]);
        return 2;
    }

    int status = 1;
    struct ubpf_vm* vm = NULL;
    size_t elf_size = 0;
    uint8_t* elf = NULL;
    struct capture cap = {0};

    elf = read_file(filter_path, &elf_size);
    cap.bytes = read_file(capture_path, &cap.size);
    if (elf == NULL || cap.bytes == NULL || !parse_capture(&cap, capture_path)) {
        goto out;
    }
    if (cap.linktype != 1) {
        fprintf(stderr, "pcap_filter: warning: link type %" PRIu32 " is not Ethernet\n", cap.linktype);
    }

    vm = ubpf_create();
    if (vm == NULL) {
        fprintf(stderr, "pcap_filter: ubpf_create failed\n");
        goto out;
    }
    char* errmsg = NULL;
    if (ubpf_load_elf_ex(vm, elf, elf_size, entry, &errmsg) < 0) {
        fprintf(stderr, "pcap_filter: cannot load %s: %s\n", filter_path, errmsg ? errmsg : "(no message)");
        free(errmsg);
        goto out;
    }
    ubpf_jit_fn jitted = NULL;
    if (!interpret) {
        jitted = ubpf_compile(vm, &errmsg);
        if (jitted == NULL) {
            fprintf(stderr, "pcap_filter: cannot JIT-compile %s: %s\n", filter_path, errmsg ? errmsg : "(no message)");
            free(errmsg);
            goto out;
        }
    }

    size_t matched = 0;
    double start = now_seconds();
    for (unsigned long pass = 0; pass < repeat; pass++) {
        size_t pass_matched = 0;
        for (size_t i = 0; i < cap.count; i++) {
            struct packet* p = &cap.packets[i];
            uint64_t verdict = 0;
            if (jitted != NULL) {
                verdict = jitted(p->data, p->len);
            } else if (ubpf_exec(vm, p->data, p->len, &verdict) < 0) {
                fprintf(stderr, "pcap_filter: the filter failed on packet %zu\n", i + 1);
                goto out;
            }
            pass_matched += verdict != 0;
        }
        matched = pass_matched;
    }
    double elapsed = now_seconds() - start;
    double runs = (double)cap.count * (double)repeat;

    printf("%zu packets, %zu matched\n", cap.count, matched);
    printf(
        "%s: %.0f packets/s (%lu pass%s in %.6f s)\n",
        interpret ? "interpreter" : "jit",
        elapsed > 0 ? runs / elapsed : 0.0,
        repeat,
        repeat == 1 ? "" : "es",
        elapsed);
    status = 0;

out:
    if (vm != NULL) {
        ubpf_destroy(vm);
    }
    free(cap.packets);
    free(cap.bytes);
    free(elf);
    return status;
}
