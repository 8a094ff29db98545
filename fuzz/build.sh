#!/usr/bin/env bash
# Builds fuzz targets: `fuzz/build.sh [TARGET…]` (default: all) → fuzz/target/bin/TARGET.
#
# The harness crate (and librbpf, by path) is compiled with sanitizer coverage by the
# `sancov-rustc` wrapper, on the stable toolchain, into its own target directory
# (RBPF_FUZZ_TARGET_DIR, default fuzz/target: reused between builds, so only changed crates
# rebuild), then linked with clang's libFuzzer (`-fsanitize=fuzzer`).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
all_targets=(diff elf asm safe nobounds object ctx)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

export CARGO_TARGET_DIR=${RBPF_FUZZ_TARGET_DIR:-$here/target}
RUSTC_WRAPPER="$here/sancov-rustc" cargo build --release --quiet --manifest-path "$here/Cargo.toml"

lib=$CARGO_TARGET_DIR/release/librbpf_fuzz.a
mkdir -p "$CARGO_TARGET_DIR/bin"
for t in "${targets[@]}"; do
    case " ${all_targets[*]} " in
    *" $t "*) ;;
    *)
        echo "unknown fuzz target '$t' (known: ${all_targets[*]})" >&2
        exit 2
        ;;
    esac
    # The system libraries Rust's std needs in a static link (`--print native-static-libs`).
    clang -fsanitize=fuzzer -g -O1 -Wall -Wextra -Werror -DRBPF_FUZZ_TARGET="\"$t\"" \
        "$here/shim.c" "$lib" -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc \
        -o "$CARGO_TARGET_DIR/bin/$t"
done
