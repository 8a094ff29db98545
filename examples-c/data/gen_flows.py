#!/usr/bin/env python3
"""Writes flows.pcap: a deterministic capture of TCP connections (each opened by a SYN), UDP
and ICMP traffic from a handful of IPv4 hosts with very different volumes, for
examples-c/flow_top.c (sample.pcap has no SYNs and a new source address per packet).

Usage: gen_flows.py [OUTPUT]   (default: flows.pcap next to this script)
"""

import os
import random
import struct
import sys

SEED = 20261125
PACKETS = 300

# (source address, weight): a few heavy talkers and a long tail.
HOSTS = [
    ("10.0.0.1", 40),
    ("10.0.0.2", 25),
    ("10.0.0.3", 12),
    ("10.0.1.7", 8),
    ("172.16.4.20", 6),
    ("192.168.9.9", 4),
    ("10.9.9.9", 3),
    ("10.0.0.99", 2),
]


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def addr(text):
    return bytes(int(x) for x in text.split("."))


def frame(rng, src, proto, l4):
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), rng.randrange(65536), 0, 64, proto, 0,
                     addr(src), addr("192.168.0.1"))
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    eth = bytes([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]) + struct.pack("!H", 0x0800)
    return eth + ip + l4


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "flows.pcap")
    rng = random.Random(SEED)
    hosts = [h for h, _ in HOSTS]
    weights = [w for _, w in HOSTS]
    open_ports = {}
    records = []
    ts, usec = 1_795_000_000, 0
    for _ in range(PACKETS):
        src = rng.choices(hosts, weights)[0]
        kind = rng.choices(["tcp", "udp", "icmp"], [80, 15, 5])[0]
        if kind == "tcp":
            port = open_ports.get(src)
            if port is None or rng.random() < 0.15:
                port = rng.randrange(32768, 61000)
                open_ports[src] = port
                flags, body = 0x02, b""  # SYN opens a connection
            else:
                flags, body = 0x18, bytes(rng.randrange(256) for _ in range(rng.randrange(1, 1200)))
            l4 = struct.pack("!HHIIBBHHH", port, rng.choice([80, 443]), rng.randrange(1 << 32), 0, 0x50, flags,
                             65535, 0, 0) + body
            data = frame(rng, src, 6, l4)
        elif kind == "udp":
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(20, 400)))
            data = frame(rng, src, 17, struct.pack("!HHHH", rng.randrange(32768, 61000), 53, 8 + len(body), 0) + body)
        else:
            data = frame(rng, src, 1, struct.pack("!BBHHH", 8, 0, 0, 1, rng.randrange(65536)) + bytes(32))
        usec += rng.randrange(100, 5000)
        ts, usec = ts + usec // 1_000_000, usec % 1_000_000
        records.append(struct.pack("<IIII", ts, usec, len(data), len(data)) + data)
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    with open(out, "wb") as f:
        f.write(header + b"".join(records))


if __name__ == "__main__":
    main()
