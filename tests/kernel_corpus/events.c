/* Events and dispatch: ring-buffer records (reserve/submit/discard and output), perf
 * events, tail calls through a PROG_ARRAY, redirects by ifindex and through a DEVMAP. */
#include "corpus.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} syn_events SEC(".maps");

struct syn_event {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u32 seq;
};

/* One ring-buffer record per TCP SYN (reserve, fill, submit); a reservation made for a
 * non-SYN TCP segment is discarded. */
SEC("xdp")
int xdp_ringbuf_syn(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	struct tcphdr *tcp = (void *)(iph + 1);
	struct syn_event *e;

	if ((void *)(tcp + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || iph->ihl != 5 ||
	    iph->protocol != IPPROTO_TCP)
		return XDP_PASS;
	e = bpf_ringbuf_reserve(&syn_events, sizeof(*e), 0);
	if (!e)
		return XDP_PASS;
	if (!tcp->syn || tcp->ack) {
		bpf_ringbuf_discard(e, 0);
		return XDP_PASS;
	}
	e->saddr = iph->saddr;
	e->daddr = iph->daddr;
	e->sport = tcp->source;
	e->dport = tcp->dest;
	e->seq = bpf_ntohl(tcp->seq);
	bpf_ringbuf_submit(e, 0);
	return XDP_PASS;
}

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} drops SEC(".maps");

struct drop_event {
	__u32 len;
	__u16 ethertype;
	__u8 head[10];
};

/* Drops every frame that is not IPv4 or IPv6 and reports it with bpf_ringbuf_output
 * (length, ethertype, the first 10 bytes). */
SEC("xdp")
int xdp_ringbuf_drop(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct drop_event e = {};

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	if (eth->h_proto == bpf_htons(ETH_P_IP) || eth->h_proto == bpf_htons(ETH_P_IPV6))
		return XDP_PASS;
	e.len = data_end - data;
	e.ethertype = bpf_ntohs(eth->h_proto);
	__builtin_memcpy(e.head, data, sizeof(e.head));
	bpf_ringbuf_output(&drops, &e, sizeof(e), 0);
	return XDP_DROP;
}

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} samples SEC(".maps");

struct sample {
	__u16 ethertype;
	__u16 len;
	__u32 cpu;
};

/* Samples every frame to the current CPU's perf buffer. */
SEC("xdp")
int xdp_perf_sample(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct sample s = {};

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	s.ethertype = bpf_ntohs(eth->h_proto);
	s.len = data_end - data;
	s.cpu = bpf_get_smp_processor_id();
	if (bpf_perf_event_output(ctx, &samples, BPF_F_CURRENT_CPU, &s, sizeof(s)))
		return XDP_ABORTED;
	return XDP_PASS;
}

/* Tail-call dispatch on the ethertype: slot 0 IPv4, slot 1 IPv6 (filled by the host);
 * a missing slot falls through to XDP_PASS. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} dispatch SEC(".maps");

__u32 handled_by;

SEC("xdp")
int xdp_tail_dispatch(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		bpf_tail_call(ctx, &dispatch, 0);
	else if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		bpf_tail_call(ctx, &dispatch, 1);
	handled_by = 99;
	return XDP_PASS;
}

/* IPv4 stage: drops fragments (MF set or a non-zero offset). */
SEC("xdp")
int xdp_stage_ipv4(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct iphdr *iph = data + sizeof(struct ethhdr);

	handled_by = 4;
	if ((void *)(iph + 1) > data_end)
		return XDP_DROP;
	if (iph->frag_off & bpf_htons(0x3fff))
		return XDP_DROP;
	return XDP_PASS;
}

/* IPv6 stage: drops hop limit 0 or 1. */
SEC("xdp")
int xdp_stage_ipv6(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);

	handled_by = 6;
	if ((void *)(ip6 + 1) > data_end)
		return XDP_DROP;
	if (ip6->hop_limit <= 1)
		return XDP_DROP;
	return XDP_PASS;
}

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u32);
} ports SEC(".maps");

/* Forwarding by the low 3 bits of the destination MAC's last byte through a DEVMAP; an
 * empty slot drops (the flags' low bits give the action on a failed lookup). */
SEC("xdp")
int xdp_redirect_devmap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	return bpf_redirect_map(&ports, eth->h_dest[5] & 7, XDP_DROP);
}

const volatile __u32 mirror_ifindex = 0;

/* Sends every IPv6 frame to the host-configured interface with bpf_redirect. */
SEC("xdp")
int xdp_redirect_ifindex(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	if (eth->h_proto != bpf_htons(ETH_P_IPV6))
		return XDP_PASS;
	return bpf_redirect(mirror_ifindex, 0);
}
