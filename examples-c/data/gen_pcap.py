#!/usr/bin/env python3
"""Writes sample.pcap: a deterministic capture of a few hundred Ethernet frames for
examples-c/pcap_filter.c and the ELF tests.

The mix exercises every branch of examples-c/bpf/packet_filter.c: TCP to port 80 (plain,
inside an 802.1Q tag, with IPv4 options), TCP to other ports and from port 80, UDP (also to
port 80), ICMP, ARP, IPv6, later IPv4 fragments, and frames truncated by the snap length in
the middle of their headers. The output depends only on SEED, so re-running this script
reproduces the checked-in file byte for byte.

Usage: gen_pcap.py [OUTPUT]   (default: sample.pcap next to this script)
"""

import os
import random
import struct
import sys

SEED = 20260611
PACKETS = 400
SNAPLEN = 65535
LINKTYPE_ETHERNET = 1

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ethernet(rng, ethertype, payload, vlan=None):
    dst = bytes(rng.randrange(256) for _ in range(6))
    src = bytes(rng.randrange(256) for _ in range(6))
    if vlan is not None:
        return dst + src + struct.pack("!HHH", ETH_P_8021Q, vlan, ethertype) + payload
    return dst + src + struct.pack("!H", ethertype) + payload


def ipv4(rng, proto, payload, options=b"", frag_offset=0, more_fragments=False):
    options += b"\x01" * (-len(options) % 4)  # pad with NOPs to whole words
    ihl = 5 + len(options) // 4
    flags_frag = (0x2000 if more_fragments else 0) | frag_offset
    src = bytes([10, rng.randrange(256), rng.randrange(256), rng.randrange(1, 255)])
    dst = bytes([192, 168, rng.randrange(256), rng.randrange(1, 255)])
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x40 | ihl,
        0,
        4 * ihl + len(payload),
        rng.randrange(65536),
        flags_frag,
        64,
        proto,
        0,
        src,
        dst,
    ) + options
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + payload


def tcp(rng, sport, dport, body):
    return struct.pack(
        "!HHIIBBHHH", sport, dport, rng.randrange(1 << 32), 0, 0x50, 0x18, 65535, 0, 0
    ) + body


def udp(sport, dport, body):
    return struct.pack("!HHHH", sport, dport, 8 + len(body), 0) + body


def body(rng, longest=600):
    return bytes(rng.randrange(256) for _ in range(rng.randrange(longest)))


def ephemeral(rng):
    return rng.randrange(32768, 61000)


def frame(rng, kind):
    """One frame of the given kind; returns (bytes, captured length or None for all)."""
    if kind == "http":
        return ethernet(rng, ETH_P_IP, ipv4(rng, 6, tcp(rng, ephemeral(rng), 80, body(rng)))), None
    if kind == "http_vlan":
        seg = tcp(rng, ephemeral(rng), 80, body(rng))
        return ethernet(rng, ETH_P_IP, ipv4(rng, 6, seg), vlan=rng.randrange(1, 4095)), None
    if kind == "http_options":
        opts = bytes([0x44, 4 * rng.randrange(1, 4), 5, 0]) * rng.randrange(1, 3)
        seg = tcp(rng, ephemeral(rng), 80, body(rng))
        return ethernet(rng, ETH_P_IP, ipv4(rng, 6, seg, options=opts)), None
    if kind == "http_reply":
        return ethernet(rng, ETH_P_IP, ipv4(rng, 6, tcp(rng, 80, ephemeral(rng), body(rng)))), None
    if kind == "tcp_other":
        port = rng.choice([22, 443, 8080, 25, 81, 79, 20480])  # 20480 = 80 byte-swapped
        return ethernet(rng, ETH_P_IP, ipv4(rng, 6, tcp(rng, ephemeral(rng), port, body(rng)))), None
    if kind == "udp":
        port = rng.choice([53, 123, 80, 5353])
        return ethernet(rng, ETH_P_IP, ipv4(rng, 17, udp(ephemeral(rng), port, body(rng, 300)))), None
    if kind == "icmp":
        echo = struct.pack("!BBHHH", 8, 0, 0, rng.randrange(65536), rng.randrange(65536))
        return ethernet(rng, ETH_P_IP, ipv4(rng, 1, echo + body(rng, 64))), None
    if kind == "arp":
        arp = struct.pack("!HHBBH", 1, ETH_P_IP, 6, 4, 1) + bytes(rng.randrange(256) for _ in range(20))
        return ethernet(rng, ETH_P_ARP, arp), None
    if kind == "ipv6_http":
        seg = tcp(rng, ephemeral(rng), 80, body(rng))
        ip6 = struct.pack("!IHBB", 0x60000000, len(seg), 6, 64) + bytes(rng.randrange(256) for _ in range(32))
        return ethernet(rng, ETH_P_IPV6, ip6 + seg), None
    if kind == "fragment":
        # A later fragment whose payload starts with bytes that look like a port-80 header.
        fake = struct.pack("!HH", ephemeral(rng), 80) + body(rng, 200)
        off = rng.randrange(1, 100)
        return ethernet(rng, ETH_P_IP, ipv4(rng, 6, fake, frag_offset=off)), None
    if kind == "truncated_http":
        whole = ethernet(rng, ETH_P_IP, ipv4(rng, 6, tcp(rng, ephemeral(rng), 80, body(rng))))
        # Cut somewhere before the destination port is complete (Ethernet 14 + IPv4 20 + 4).
        return whole, rng.randrange(0, 14 + 20 + 4)
    if kind == "snapped_http":
        # Captured through the ports but not the whole segment: still a match.
        whole = ethernet(rng, ETH_P_IP, ipv4(rng, 6, tcp(rng, ephemeral(rng), 80, body(rng))))
        return whole, rng.randrange(14 + 20 + 4, 14 + 20 + 20)
    raise ValueError(kind)


KINDS = [
    ("http", 14),
    ("http_vlan", 4),
    ("http_options", 4),
    ("http_reply", 6),
    ("tcp_other", 18),
    ("udp", 16),
    ("icmp", 6),
    ("arp", 5),
    ("ipv6_http", 5),
    ("fragment", 4),
    ("truncated_http", 4),
    ("snapped_http", 3),
]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "sample.pcap")
    rng = random.Random(SEED)
    kinds = [k for k, _ in KINDS]
    weights = [w for _, w in KINDS]
    records = []
    ts = 1_781_136_000  # 2026-06-11 00:00:00 UTC
    usec = 0
    for _ in range(PACKETS):
        data, caplen = frame(rng, rng.choices(kinds, weights)[0])
        if caplen is None:
            caplen = len(data)
        usec += rng.randrange(50, 20000)
        ts, usec = ts + usec // 1_000_000, usec % 1_000_000
        records.append(struct.pack("<IIII", ts, usec, caplen, len(data)) + data[:caplen])
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET)
    with open(out, "wb") as f:
        f.write(header + b"".join(records))


if __name__ == "__main__":
    main()
