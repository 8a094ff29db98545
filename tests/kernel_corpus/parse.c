/* Parsers: every header is checked against data_end before it is read, as the kernel's
 * verifier demands. Results go to global .bss variables the harness reads back. */
#include "corpus.h"

char LICENSE[] SEC("license") = "GPL";

/* Frames seen per VLAN depth (0, 1 or 2 tags) and the innermost VLAN id. */
__u64 vlan_depth_seen[3];
__u16 inner_vid;

/* Up to two tags (QinQ: 802.1ad outside, 802.1Q inside); IPv4 and IPv6 pass, anything
 * else, a third tag included, is dropped. */
SEC("xdp")
int xdp_vlan_filter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 off = sizeof(*eth);
	__u32 depth = 0;
	__be16 proto;

	if ((void *)(eth + 1) > data_end)
		return XDP_ABORTED;
	proto = eth->h_proto;
#pragma unroll
	for (int i = 0; i < 2; i++) {
		struct vlan_hdr *vh;

		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		vh = data + off;
		if ((void *)(vh + 1) > data_end)
			return XDP_DROP;
		proto = vh->encap_proto;
		inner_vid = bpf_ntohs(vh->tci) & 0x0fff;
		off += sizeof(*vh);
		depth++;
	}
	vlan_depth_seen[depth]++;
	if (proto == bpf_htons(ETH_P_IP) || proto == bpf_htons(ETH_P_IPV6))
		return XDP_PASS;
	return XDP_DROP;
}

/* The UDP destination port of the last IPv4 frame, found past the options. */
__u16 last_udp_dport;

/* Drops IPv4 with source-route options (LSRR 0x83, SSRR 0x89) or malformed options;
 * walks at most 10 options. */
SEC("xdp")
int xdp_ipv4_options(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph;
	__u8 *opt, *opt_end;
	__u32 hlen;

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	iph = (void *)(eth + 1);
	if ((void *)(iph + 1) > data_end)
		return XDP_DROP;
	hlen = iph->ihl * 4;
	if (hlen < sizeof(*iph))
		return XDP_DROP;
	if ((void *)iph + hlen > data_end)
		return XDP_DROP;
	opt = (void *)(iph + 1);
	opt_end = (void *)iph + hlen;
	for (int i = 0; i < 10; i++) {
		__u8 type, len;

		if (opt >= opt_end || (void *)(opt + 2) > data_end)
			break;
		type = opt[0];
		if (type == 0)
			break;
		if (type == 1) {
			opt++;
			continue;
		}
		len = opt[1];
		if (len < 2 || opt + len > opt_end)
			return XDP_DROP;
		if (type == 0x83 || type == 0x89)
			return XDP_DROP;
		opt += len;
	}
	if (iph->protocol == IPPROTO_UDP) {
		struct udphdr *udp = (void *)iph + hlen;

		if ((void *)(udp + 1) > data_end)
			return XDP_DROP;
		last_udp_dport = bpf_ntohs(udp->dest);
	}
	return XDP_PASS;
}

/* Where the IPv6 walk ended: the upper-layer protocol and its offset in the frame. */
__u8 ipv6_l4_proto;
__u16 ipv6_l4_off;

/* Walks up to 6 IPv6 extension headers (hop-by-hop, routing, destination options,
 * fragment, AH) to the upper layer; drops TCP to port 23 and unknown chains. */
SEC("xdp")
int xdp_ipv6_exthdr(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6;
	__u32 off;
	__u8 nexthdr;

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	if (eth->h_proto != bpf_htons(ETH_P_IPV6))
		return XDP_PASS;
	ip6 = (void *)(eth + 1);
	if ((void *)(ip6 + 1) > data_end)
		return XDP_DROP;
	nexthdr = ip6->nexthdr;
	off = sizeof(*eth) + sizeof(*ip6);
#pragma unroll
	for (int i = 0; i < 6; i++) {
		struct ipv6_opt_hdr *oh = data + off;

		if (nexthdr != IPPROTO_HOPOPTS && nexthdr != IPPROTO_ROUTING &&
		    nexthdr != IPPROTO_DSTOPTS && nexthdr != IPPROTO_FRAGMENT &&
		    nexthdr != IPPROTO_AH)
			break;
		if ((void *)(oh + 1) > data_end)
			return XDP_DROP;
		if (nexthdr == IPPROTO_FRAGMENT)
			off += 8;
		else if (nexthdr == IPPROTO_AH)
			off += (oh->hdrlen + 2) * 4;
		else
			off += (oh->hdrlen + 1) * 8;
		nexthdr = oh->nexthdr;
	}
	ipv6_l4_proto = nexthdr;
	ipv6_l4_off = off;
	if (nexthdr == IPPROTO_TCP) {
		struct tcphdr *tcp = data + (off & 0xfff);

		if ((void *)(tcp + 1) > data_end)
			return XDP_DROP;
		if (tcp->dest == bpf_htons(23))
			return XDP_DROP;
		return XDP_PASS;
	}
	if (nexthdr == IPPROTO_UDP || nexthdr == IPPROTO_ICMPV6)
		return XDP_PASS;
	return XDP_DROP;
}

/* bpf_loop over a UDP payload: the callback adds one byte per iteration. */
struct payload_walk {
	void *data;
	void *data_end;
	__u32 off;
	__u32 sum;
};

__u32 payload_sum;
__u32 payload_len;

static int add_byte(__u32 index, void *arg)
{
	struct payload_walk *w = arg;
	__u8 *p = w->data + ((w->off + index) & 0xfff);

	if ((void *)(p + 1) > w->data_end)
		return 1; /* stop */
	w->sum += *p;
	return 0;
}

SEC("xdp")
int xdp_loop_payload(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	struct udphdr *udp = (void *)(iph + 1);
	struct payload_walk w = { .data = data, .data_end = data_end };
	__u32 len;

	if ((void *)(udp + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || iph->ihl != 5 ||
	    iph->protocol != IPPROTO_UDP)
		return XDP_PASS;
	len = bpf_ntohs(udp->len);
	if (len < sizeof(*udp))
		return XDP_DROP;
	len -= sizeof(*udp);
	w.off = (void *)(udp + 1) - data;
	bpf_loop(len, add_byte, &w, 0);
	payload_sum = w.sum;
	payload_len = len;
	return XDP_PASS;
}

/* bpf-to-bpf calls: noinline subprograms taking packet pointers, and an always-inline
 * helper. Returns the L4 protocol's verdict: TCP SYN to a port < 1024 → DROP. */
static __always_inline int eth_proto(void *data, void *data_end, __be16 *proto)
{
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return -1;
	*proto = eth->h_proto;
	return sizeof(*eth);
}

static __noinline int tcp_verdict(struct tcphdr *tcp, void *data_end)
{
	if ((void *)(tcp + 1) > data_end)
		return XDP_DROP;
	if (tcp->syn && !tcp->ack && bpf_ntohs(tcp->dest) < 1024)
		return XDP_DROP;
	return XDP_PASS;
}

static __noinline int ipv4_verdict(struct iphdr *iph, void *data_end)
{
	if ((void *)(iph + 1) > data_end || iph->ihl < 5)
		return XDP_DROP;
	if (iph->protocol != IPPROTO_TCP)
		return XDP_PASS;
	return tcp_verdict((void *)iph + iph->ihl * 4, data_end);
}

SEC("xdp")
int xdp_subprogs(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__be16 proto;
	int off = eth_proto(data, data_end, &proto);

	if (off < 0)
		return XDP_ABORTED;
	if (proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	return ipv4_verdict(data + off, data_end);
}
