/* Per-flow state: a hash keyed by the 5-tuple, per-CPU counters, an LRU table, a rate
 * limiter on bpf_ktime_get_ns, .rodata configuration and .data/.bss globals. */
#include "corpus.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct flow_key);
	__type(value, struct flow_stats);
} flows SEC(".maps");

/* Fills `key` from an IPv4 TCP/UDP frame; 0 on success. */
static __always_inline int flow_of(void *data, void *data_end, struct flow_key *key)
{
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	struct udphdr *ports; /* TCP and UDP both start with the two ports */

	if ((void *)(iph + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return -1;
	if (iph->protocol != IPPROTO_TCP && iph->protocol != IPPROTO_UDP)
		return -1;
	ports = (void *)iph + iph->ihl * 4;
	if ((void *)(ports + 1) > data_end)
		return -1;
	key->saddr = iph->saddr;
	key->daddr = iph->daddr;
	key->sport = ports->source;
	key->dport = ports->dest;
	key->proto = iph->protocol;
	return 0;
}

/* Counts packets and bytes per 5-tuple (atomic adds on an existing entry). */
SEC("xdp")
int xdp_flow_count(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct flow_key key = {};
	struct flow_stats *stats;
	__u64 len = data_end - data;

	if (flow_of(data, data_end, &key))
		return XDP_PASS;
	stats = bpf_map_lookup_elem(&flows, &key);
	if (stats) {
		__sync_fetch_and_add(&stats->packets, 1);
		__sync_fetch_and_add(&stats->bytes, len);
	} else {
		struct flow_stats init = { .packets = 1, .bytes = len };

		bpf_map_update_elem(&flows, &key, &init, BPF_NOEXIST);
	}
	return XDP_PASS;
}

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u64);
} proto_count SEC(".maps");

/* Per-CPU packet counts per IP protocol number (IPv4 and IPv6); no atomics needed. */
SEC("xdp")
int xdp_percpu_proto(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 proto;
	__u64 *count;

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = (void *)(eth + 1);

		if ((void *)(iph + 1) > data_end)
			return XDP_DROP;
		proto = iph->protocol;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end)
			return XDP_DROP;
		proto = ip6->nexthdr;
	} else {
		return XDP_PASS;
	}
	count = bpf_map_lookup_elem(&proto_count, &proto);
	if (count)
		*count += 1;
	return XDP_PASS;
}

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 2);
	__type(key, struct flow_key);
	__type(value, __u64);
} recent SEC(".maps");

/* Remembers the last-seen time of the two most recent flows (LRU eviction); returns
 * XDP_PASS for a flow already known and XDP_DROP for a new one (first packet dropped, as
 * some SYN-proxy-like filters do). */
SEC("xdp")
int xdp_lru_flows(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct flow_key key = {};
	__u64 now = bpf_ktime_get_ns();
	__u64 *seen;

	if (flow_of(data, data_end, &key))
		return XDP_PASS;
	seen = bpf_map_lookup_elem(&recent, &key);
	if (seen) {
		*seen = now;
		return XDP_PASS;
	}
	bpf_map_update_elem(&recent, &key, &now, BPF_ANY);
	return XDP_DROP;
}

/* Rate limiting: at most `burst` packets per source address per window. */
const volatile __u64 window_ns = 1000000000;
const volatile __u32 burst = 5;

struct bucket {
	__u64 start;
	__u32 count;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __be32);
	__type(value, struct bucket);
} buckets SEC(".maps");

__u64 rate_dropped;

SEC("xdp")
int xdp_rate_limit(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	__u64 now = bpf_ktime_get_ns();
	struct bucket *b;
	__be32 src;

	if ((void *)(iph + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	src = iph->saddr;
	b = bpf_map_lookup_elem(&buckets, &src);
	if (!b || now - b->start > window_ns) {
		struct bucket fresh = { .start = now, .count = 1 };

		bpf_map_update_elem(&buckets, &src, &fresh, BPF_ANY);
		return XDP_PASS;
	}
	if (b->count >= burst) {
		__sync_fetch_and_add(&rate_dropped, 1);
		return XDP_DROP;
	}
	b->count++;
	return XDP_PASS;
}

/* Ports blocked by the host's configuration (.rodata, set before load), with hit counts in
 * .bss and a version in .data. */
const volatile __u16 blocked_ports[4] = {};
const volatile __u32 blocked_count = 0;
__u64 blocked_hits[4];
__u32 config_version = 7;
__u32 seen_version;

SEC("xdp")
int xdp_port_blocklist(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct flow_key key = {};
	__u16 dport;

	seen_version = config_version;
	if (flow_of(data, data_end, &key))
		return XDP_PASS;
	dport = bpf_ntohs(key.dport);
#pragma unroll
	for (int i = 0; i < 4; i++) {
		if (i >= blocked_count)
			break;
		if (blocked_ports[i] == dport) {
			blocked_hits[i]++;
			return XDP_DROP;
		}
	}
	return XDP_PASS;
}
