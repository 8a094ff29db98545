/* __sk_buff programs: a TC classifier on skb fields and cb[], and socket filters using
 * LD_ABS/LD_IND (the load_byte/load_half builtins) and bpf_skb_load_bytes. */
#include <stddef.h>
#include "corpus.h"

char LICENSE[] SEC("license") = "GPL";

unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_half(void *skb, unsigned long long off) asm("llvm.bpf.load.half");
unsigned long long load_word(void *skb, unsigned long long off) asm("llvm.bpf.load.word");

/* A classifier: IPv6 gets priority 3, large frames (len > 1000) mark 0x200, frames that
 * arrive with mark 0xdead are dropped; cb[0] counts the rules that matched. */
SEC("tc")
int tc_classify(struct __sk_buff *skb)
{
	__u32 hits = 0;

	if (skb->mark == 0xdead)
		return TC_ACT_SHOT;
	if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		skb->priority = 3;
		hits++;
	}
	if (skb->len > 1000) {
		skb->mark = 0x200;
		hits++;
	}
	skb->cb[0] = hits;
	skb->tc_index = skb->ifindex;
	return TC_ACT_OK;
}

/* cb[] as scratch: cb[1] += cb[0] * len, cb[4] = ingress_ifindex; returns cb[1]'s low
 * byte as a classid-style verdict (TC_ACT_UNSPEC when 0). */
SEC("tc")
int tc_cb_accumulate(struct __sk_buff *skb)
{
	skb->cb[1] += skb->cb[0] * skb->len;
	skb->cb[4] = skb->ingress_ifindex;
	if (skb->cb[1] & 0xff)
		return skb->cb[1] & 0xff;
	return TC_ACT_UNSPEC;
}

/* Classic tcpdump-style filter with LD_ABS: IPv4 TCP to port 80 or 443 is kept whole
 * (returns the length to keep), anything else is cut to 0. */
SEC("socket")
int sock_http(struct __sk_buff *skb)
{
	__u32 ihl, dport;

	if (load_half(skb, offsetof(struct ethhdr, h_proto)) != ETH_P_IP)
		return 0;
	if (load_byte(skb, ETH_HLEN + offsetof(struct iphdr, protocol)) != IPPROTO_TCP)
		return 0;
	if (load_half(skb, ETH_HLEN + offsetof(struct iphdr, frag_off)) & 0x1fff)
		return 0;
	ihl = (load_byte(skb, ETH_HLEN) & 0x0f) * 4;
	dport = load_half(skb, ETH_HLEN + ihl + offsetof(struct tcphdr, dest));
	if (dport == 80 || dport == 443)
		return skb->len;
	return 0;
}

/* DNS snooping with LD_IND past IPv4 options: keeps 128 bytes of UDP frames from port 53
 * whose first IPv4 address word is 10.0.0.0/8. */
SEC("socket")
int sock_dns(struct __sk_buff *skb)
{
	__u32 ihl;

	if (load_half(skb, 12) != ETH_P_IP || load_byte(skb, 23) != IPPROTO_UDP)
		return 0;
	if ((load_word(skb, 26) >> 24) != 10)
		return 0;
	ihl = (load_byte(skb, ETH_HLEN) & 0x0f) << 2;
	if (load_half(skb, ETH_HLEN + ihl) != 53)
		return 0;
	return 128;
}

/* IPv6 filter with bpf_skb_load_bytes: keeps ICMPv6 and UDP frames, reporting their
 * payload length in cb[0] (writable for socket filters). */
SEC("socket")
int sock_ipv6(struct __sk_buff *skb)
{
	struct ipv6hdr ip6;

	if (skb->protocol != bpf_htons(ETH_P_IPV6))
		return 0;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip6, sizeof(ip6)))
		return 0;
	if (ip6.nexthdr != IPPROTO_ICMPV6 && ip6.nexthdr != IPPROTO_UDP)
		return 0;
	skb->cb[0] = bpf_ntohs(ip6.payload_len);
	return -1;
}
