#!/bin/sh
# Builds librbpf (release) and examples-c/pcap_filter.c against it, then runs the bundled
# packet filter (examples-c/bpf/packet_filter.o: TCP to port 80) over the bundled capture
# (examples-c/data/sample.pcap), once with the JIT and once with the interpreter.
# Usage (from anywhere): ./examples-c/run-pcap-filter.sh [--repeat N]   Compiler: $CC (cc).
set -eu
cd "$(dirname "$0")/.."
cargo build --release -p librbpf-capi
lib="$PWD/target/release"
# Programs link against the SONAME, librbpf.so.0 (capi/artifact/build.rs also creates this link).
ln -sf librbpf.so "$lib/librbpf.so.0"
"${CC:-cc}" -std=c11 -Wall -Wextra -Werror -O2 -Iinclude examples-c/pcap_filter.c \
    -L"$lib" -Wl,-rpath,"$lib" -lrbpf -o "$lib/pcap_filter"
"$lib/pcap_filter" "$@" examples-c/bpf/packet_filter.o examples-c/data/sample.pcap
"$lib/pcap_filter" --interpret "$@" examples-c/bpf/packet_filter.o examples-c/data/sample.pcap
