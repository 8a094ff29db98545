/* Moving the packet: decapsulation and encapsulation with bpf_xdp_adjust_head, truncation
 * with bpf_xdp_adjust_tail, metadata with bpf_xdp_adjust_meta, and a TC program reading
 * the metadata area. */
#include "corpus.h"

char LICENSE[] SEC("license") = "GPL";

/* IPIP decapsulation: the outer IPv4 header (no options) is removed and the Ethernet
 * header moved forward over it. */
SEC("xdp")
int xdp_decap_ipip(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data, *new_eth;
	struct iphdr *outer = (void *)(eth + 1);
	struct ethhdr copy;

	if ((void *)(outer + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || outer->protocol != IPPROTO_IPIP ||
	    outer->ihl != 5)
		return XDP_PASS;
	__builtin_memcpy(&copy, eth, sizeof(copy));
	if (bpf_xdp_adjust_head(ctx, (int)sizeof(struct iphdr)))
		return XDP_ABORTED;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	new_eth = data;
	if ((void *)(new_eth + 1) > data_end)
		return XDP_ABORTED;
	__builtin_memcpy(new_eth, &copy, sizeof(copy));
	return XDP_PASS;
}

const volatile __u16 push_vid = 100;

/* Pushes an 802.1Q tag with the configured VLAN id in front of the ethertype. */
SEC("xdp")
int xdp_push_vlan(struct xdp_md *ctx)
{
	void *data, *data_end;
	struct ethhdr *eth, old;
	struct vlan_hdr *vh;

	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	if (eth->h_proto == bpf_htons(ETH_P_8021Q))
		return XDP_PASS;
	__builtin_memcpy(&old, eth, sizeof(old));
	if (bpf_xdp_adjust_head(ctx, -(int)sizeof(struct vlan_hdr)))
		return XDP_ABORTED;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	vh = (void *)(eth + 1);
	if ((void *)(vh + 1) > data_end)
		return XDP_ABORTED;
	__builtin_memcpy(eth->h_dest, old.h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_source, old.h_source, ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_8021Q);
	vh->tci = bpf_htons(push_vid & 0x0fff);
	vh->encap_proto = old.h_proto;
	return XDP_PASS;
}

/* Packet sampling: frames longer than 64 bytes are cut to 64 with bpf_xdp_adjust_tail. */
SEC("xdp")
int xdp_truncate(struct xdp_md *ctx)
{
	__u32 len = ctx->data_end - ctx->data;

	if (len <= 64)
		return XDP_PASS;
	if (bpf_xdp_adjust_tail(ctx, 64 - (int)len))
		return XDP_ABORTED;
	return XDP_PASS;
}

/* Writes a 4-byte mark (the IPv4 DSCP | 0xab000000) into the metadata area, for a TC
 * program down the path to read. */
SEC("xdp")
int xdp_meta_mark(struct xdp_md *ctx)
{
	void *data, *data_end, *meta;
	struct iphdr *iph;
	__u32 *mark;
	__u8 tos = 0;

	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(__u32)))
		return XDP_ABORTED;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	meta = (void *)(long)ctx->data_meta;
	mark = meta;
	if ((void *)(mark + 1) > data)
		return XDP_ABORTED;
	iph = data + sizeof(struct ethhdr);
	if ((void *)(iph + 1) <= data_end)
		tos = iph->tos;
	*mark = 0xab000000 | (tos >> 2);
	return XDP_PASS;
}

/* Reads the mark left by xdp_meta_mark, when there is one, into skb->mark; without
 * metadata the mark is 1. */
SEC("tc")
int tc_meta_read(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *meta = (void *)(long)skb->data_meta;
	__u32 *mark = meta;

	if ((void *)(mark + 1) > data) {
		skb->mark = 1;
		return TC_ACT_OK;
	}
	skb->mark = *mark;
	return TC_ACT_OK;
}
