/* Exercises every map type and kernel helper librbpf implements, libbpf style.
 * Built with: clang -target bpf -O2 -g -I/usr/include/$(gcc -dumpmachine) -c maps_suite.c
 * tests/maps.rs runs it in both engines: the host fills `struct req` and reads r0. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct req {
    __u32 op;
    __u32 key;
    __u64 value;
    __u64 flags;
    __s64 off;
};

struct pair {
    __u64 packets;
    __u64 bytes;
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, struct pair);
} array SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 8);
    __type(key, __u32);
    __type(value, __u64);
} hash SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, __u64);
} pcpu_array SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u32);
} pcpu_hash SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 3);
    __type(key, __u32);
    __type(value, __u64);
} lru SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 4096);
} events SEC(".maps");

static const char greeting[] = "hello";

SEC("xdp")
__s64 run(struct req *r)
{
    __u32 key = r->key;
    switch (r->op) {
    case 0: { /* array: add value to packets, return the new count (-1: no element) */
        struct pair *p = bpf_map_lookup_elem(&array, &key);
        if (!p)
            return -1;
        p->packets += r->value;
        p->bytes += 2 * r->value;
        return p->packets;
    }
    case 1: { /* array update from the stack */
        struct pair v = {r->value, r->value};
        return bpf_map_update_elem(&array, &key, &v, r->flags);
    }
    case 2: /* hash update */
        return bpf_map_update_elem(&hash, &key, &r->value, r->flags);
    case 3: { /* hash lookup */
        __u64 *v = bpf_map_lookup_elem(&hash, &key);
        return v ? (__s64)*v : -1;
    }
    case 4:
        return bpf_map_delete_elem(&hash, &key);
    case 5: { /* per-CPU counter */
        __u64 *v = bpf_map_lookup_elem(&pcpu_array, &key);
        if (!v)
            return -1;
        *v += 1;
        return *v;
    }
    case 6: { /* per-CPU hash: update this CPU's value */
        __u32 v = r->value;
        return bpf_map_update_elem(&pcpu_hash, &key, &v, r->flags);
    }
    case 7: /* LRU update */
        return bpf_map_update_elem(&lru, &key, &r->value, BPF_ANY);
    case 8: { /* ring buffer: reserve, fill, submit */
        __u64 *e = bpf_ringbuf_reserve(&events, 16, 0);
        if (!e)
            return -1;
        e[0] = r->key;
        e[1] = r->value;
        bpf_ringbuf_submit(e, 0);
        return 0;
    }
    case 9: /* ring buffer output from the stack */
        return bpf_ringbuf_output(&events, &r->value, 8, 0);
    case 10: { /* reserve then discard */
        void *e = bpf_ringbuf_reserve(&events, 8, 0);
        if (!e)
            return -1;
        bpf_ringbuf_discard(e, 0);
        return 0;
    }
    case 11: { /* load one byte at p + off of an array value (16 bytes) */
        __u8 *p = bpf_map_lookup_elem(&array, &key);
        if (!p)
            return -1;
        return *(volatile __u8 *)(p + r->off);
    }
    case 12: { /* store one byte at p + off */
        __u8 *p = bpf_map_lookup_elem(&array, &key);
        if (!p)
            return -1;
        *(volatile __u8 *)(p + r->off) = 0x5a;
        return 0;
    }
    case 13: { /* byte at off of a 16-byte ring buffer reservation */
        __u8 *e = bpf_ringbuf_reserve(&events, 16, 0);
        if (!e)
            return -1;
        __s64 v = *(volatile __u8 *)(e + r->off);
        bpf_ringbuf_discard(e, 0);
        return v;
    }
    case 14: { /* a forged map pointer */
        void *forged = (void *)r->value;
        return bpf_map_lookup_elem(forged, &key) != 0;
    }
    case 15: /* a forged key pointer */
        return bpf_map_lookup_elem(&hash, (void *)r->value) != 0;
    case 16:
        return bpf_ktime_get_ns() != 0 && bpf_ktime_get_boot_ns() != 0;
    case 17:
        return bpf_get_prandom_u32() != bpf_get_prandom_u32() || bpf_get_prandom_u32() != 0;
    case 18:
        return bpf_get_smp_processor_id();
    case 19:
        return bpf_printk("key %u value %llu %s", key, r->value, greeting);
    case 20: { /* strncmp against a constant */
        char buf[6] = {'h', 'e', 'l', 'l', (char)r->value, 0};
        return bpf_strncmp(buf, sizeof(buf), greeting);
    }
    case 21: { /* a map value as the key of another map */
        struct pair *p = bpf_map_lookup_elem(&array, &key);
        if (!p)
            return -1;
        return bpf_map_update_elem(&hash, p, &p->bytes, BPF_ANY);
    }
    }
    return -2;
}

char LICENSE[] SEC("license") = "GPL";
