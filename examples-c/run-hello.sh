#!/bin/sh
# Builds librbpf (release) and the C example examples-c/hello.c against it, then runs it.
# Usage (from anywhere): ./examples-c/run-hello.sh     Compiler: $CC (default: cc).
set -eu
cd "$(dirname "$0")/.."
cargo build --release -p librbpf-capi
lib="$PWD/target/release"
# Programs link against the SONAME, librbpf.so.0 (capi/artifact/build.rs also creates this link).
ln -sf librbpf.so "$lib/librbpf.so.0"
"${CC:-cc}" -std=c11 -Wall -Wextra -Werror -Iinclude examples-c/hello.c \
    -L"$lib" -Wl,-rpath,"$lib" -lrbpf -o "$lib/hello"
exec "$lib/hello"
