#!/bin/sh
# Builds librbpf (release) and benches/maps_bench.c, then runs the map benchmark.
set -eu
cd "$(dirname "$0")/.."
cargo build --release --lib
cc -O2 -Wall -Wextra -Werror -Iinclude benches/maps_bench.c -Ltarget/release -lrbpf \
    -Wl,-rpath,"$PWD/target/release" -o target/release/maps_bench
exec target/release/maps_bench "$@"
