/* Header rewrites with checksum updates: by hand (RFC 1624), with bpf_l3_csum_replace /
 * bpf_l4_csum_replace, and with bpf_csum_diff. */
#include <stddef.h>
#include "corpus.h"

char LICENSE[] SEC("license") = "GPL";

static __always_inline void swap_macs(struct ethhdr *eth)
{
	__u8 tmp[ETH_ALEN];

	__builtin_memcpy(tmp, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, tmp, ETH_ALEN);
}

/* Answers ICMP echo requests in place: MACs and addresses swapped, type 8 → 0, the ICMP
 * checksum updated incrementally by hand; XDP_TX. Everything else passes. */
SEC("xdp")
int xdp_icmp_echo(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	struct icmp_echo *icmp;
	__be32 addr;
	__u16 old;

	if ((void *)(iph + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || iph->protocol != IPPROTO_ICMP)
		return XDP_PASS;
	icmp = (void *)iph + iph->ihl * 4;
	if ((void *)(icmp + 1) > data_end)
		return XDP_PASS;
	if (icmp->type != ICMP_ECHO || icmp->code != 0)
		return XDP_PASS;
	swap_macs(eth);
	addr = iph->saddr;
	iph->saddr = iph->daddr;
	iph->daddr = addr;
	old = *(__u16 *)icmp;
	icmp->type = ICMP_ECHOREPLY;
	icmp->checksum = csum_replace16(icmp->checksum, old, *(__u16 *)icmp);
	return XDP_TX;
}

/* A UDP echo reflector on port 7: MACs, addresses and ports swapped (checksums stay valid:
 * a one's-complement sum does not depend on the order of its words); XDP_TX. */
SEC("xdp")
int xdp_udp_reflect(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	struct udphdr *udp;
	__be32 addr;
	__be16 port;

	if ((void *)(iph + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || iph->protocol != IPPROTO_UDP)
		return XDP_PASS;
	udp = (void *)iph + iph->ihl * 4;
	if ((void *)(udp + 1) > data_end)
		return XDP_PASS;
	if (udp->dest != bpf_htons(7))
		return XDP_PASS;
	swap_macs(eth);
	addr = iph->saddr;
	iph->saddr = iph->daddr;
	iph->daddr = addr;
	port = udp->source;
	udp->source = udp->dest;
	udp->dest = port;
	return XDP_TX;
}

/* A router's TTL decrement with direct packet access in TC: TTL expiring → TC_ACT_SHOT,
 * otherwise the IPv4 checksum is updated by hand for the TTL/protocol word. */
SEC("tc")
int tc_ttl_decrement(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	__u16 old, new;

	if ((void *)(iph + 1) > data_end)
		return TC_ACT_OK;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	if (iph->ttl <= 1)
		return TC_ACT_SHOT;
	old = *(__u16 *)&iph->ttl;
	iph->ttl--;
	new = *(__u16 *)&iph->ttl;
	iph->check = csum_replace16(iph->check, old, new);
	return TC_ACT_OK;
}

#define IP_OFF (sizeof(struct ethhdr))
#define IP_CSUM_OFF (IP_OFF + offsetof(struct iphdr, check))
#define IP_DST_OFF (IP_OFF + offsetof(struct iphdr, daddr))
#define TCP_CSUM_OFF (IP_OFF + sizeof(struct iphdr) + offsetof(struct tcphdr, check))
#define UDP_CSUM_OFF (IP_OFF + sizeof(struct iphdr) + offsetof(struct udphdr, check))
#define UDP_DPORT_OFF (IP_OFF + sizeof(struct iphdr) + offsetof(struct udphdr, dest))

/* Destination NAT set by the host before load. */
const volatile __be32 dnat_from = 0;
const volatile __be32 dnat_to = 0;

/* Destination NAT of TCP: the address rewritten with bpf_skb_store_bytes, the IPv4
 * checksum with bpf_l3_csum_replace, the TCP checksum (pseudo-header) with
 * bpf_l4_csum_replace(BPF_F_PSEUDO_HDR). */
SEC("tc")
int tc_dnat(struct __sk_buff *skb)
{
	__be32 to = dnat_to;
	__be32 daddr;
	__u8 proto;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	if (bpf_skb_load_bytes(skb, IP_OFF + offsetof(struct iphdr, protocol), &proto, 1))
		return TC_ACT_SHOT;
	if (proto != IPPROTO_TCP)
		return TC_ACT_OK;
	if (bpf_skb_load_bytes(skb, IP_DST_OFF, &daddr, 4))
		return TC_ACT_SHOT;
	if (daddr != dnat_from)
		return TC_ACT_OK;
	if (bpf_l4_csum_replace(skb, TCP_CSUM_OFF, daddr, to, BPF_F_PSEUDO_HDR | 4))
		return TC_ACT_SHOT;
	if (bpf_l3_csum_replace(skb, IP_CSUM_OFF, daddr, to, 4))
		return TC_ACT_SHOT;
	if (bpf_skb_store_bytes(skb, IP_DST_OFF, &to, 4, 0))
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

/* Rewrites the DSCP of every IPv4 frame to EF (46): the first 4 header bytes before and
 * after go through bpf_csum_diff, and bpf_l3_csum_replace applies the difference. */
SEC("tc")
int tc_set_dscp(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	union {
		__be32 word;
		__u8 bytes[4];
	} before, after;
	__s64 diff;

	if ((void *)(iph + 1) > data_end)
		return TC_ACT_OK;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	before.word = *(__be32 *)iph;
	after.word = before.word;
	after.bytes[1] = (46 << 2) | (before.bytes[1] & 3);
	diff = bpf_csum_diff(&before.word, 4, &after.word, 4, 0);
	if (diff < 0)
		return TC_ACT_SHOT;
	if (bpf_skb_store_bytes(skb, IP_OFF, &after.word, 4, 0))
		return TC_ACT_SHOT;
	if (bpf_l3_csum_replace(skb, IP_CSUM_OFF, 0, diff, 0))
		return TC_ACT_SHOT;
	skb->priority = 6;
	return TC_ACT_OK;
}

/* Port redirect for UDP: destination port 5353 → 53, the UDP checksum updated with
 * bpf_l4_csum_replace on 2 bytes (BPF_F_MARK_MANGLED_0: a zero checksum stays zero). */
SEC("tc")
int tc_udp_port(struct __sk_buff *skb)
{
	__be16 from = bpf_htons(5353), to = bpf_htons(53), dport;
	__u8 ver_ihl, proto;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	if (bpf_skb_load_bytes(skb, IP_OFF, &ver_ihl, 1) ||
	    bpf_skb_load_bytes(skb, IP_OFF + offsetof(struct iphdr, protocol), &proto, 1))
		return TC_ACT_SHOT;
	if (ver_ihl != 0x45 || proto != IPPROTO_UDP)
		return TC_ACT_OK;
	if (bpf_skb_load_bytes(skb, UDP_DPORT_OFF, &dport, 2))
		return TC_ACT_SHOT;
	if (dport != from)
		return TC_ACT_OK;
	if (bpf_l4_csum_replace(skb, UDP_CSUM_OFF, from, to, BPF_F_MARK_MANGLED_0 | 2))
		return TC_ACT_SHOT;
	if (bpf_skb_store_bytes(skb, UDP_DPORT_OFF, &to, 2, 0))
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}
