#!/usr/bin/env bash
# Builds and runs one fuzz target for a while: `fuzz/run.sh TARGET SECONDS [libFuzzer options…]`.
#
# Seeds are regenerated into fuzz/target/seeds/TARGET (from the conformance suite and the
# example objects, see src/seeds.rs); the corpus grows in fuzz/corpus/TARGET; a crash, a
# timeout (a hang) or an out-of-memory input lands in fuzz/artifacts/TARGET/. libFuzzer's
# output goes to fuzz/target/logs/TARGET.log; the script ends with one summary line, and on a
# finding prints the end of the log (the report and the input's file name).
#
# Environment: RBPF_FUZZ_TIMEOUT (seconds per input, default 10), RBPF_FUZZ_RSS_MB (default
# 2048), RBPF_FUZZ_TOLERATE (see README.md), RBPF_CONFORMANCE_DIR, RBPF_FUZZ_TARGET_DIR.
set -euo pipefail
export RUST_BACKTRACE=0 # libFuzzer prints the stack; keep the report short
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -lt 2 ]; then
    echo "usage: $0 TARGET SECONDS [libFuzzer options…]   (targets: diff elf asm safe nobounds object ctx)" >&2
    exit 2
fi
target=$1
seconds=$2
shift 2

"$here/build.sh" "$target"

out=${RBPF_FUZZ_TARGET_DIR:-$here/target}
bin=$out/bin/$target
seeds=$out/seeds/$target
corpus=$here/corpus/$target
artifacts=$here/artifacts/$target
log=$out/logs/$target.log
rm -rf "$seeds"
mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
RBPF_FUZZ_WRITE_SEEDS=$seeds "$bin"

case $target in
elf) max_len=16384 ;;
object) max_len=65536 ;; # the largest seed object is 57 KiB
nobounds) max_len=1200 ;;
*) max_len=4096 ;;
esac

status=0
"$bin" -max_total_time="$seconds" -timeout="${RBPF_FUZZ_TIMEOUT:-10}" \
    -rss_limit_mb="${RBPF_FUZZ_RSS_MB:-2048}" -max_len="$max_len" \
    -artifact_prefix="$artifacts/" -print_final_stats=1 "$@" \
    "$corpus" "$seeds" >"$log" 2>&1 || status=$?

# The last status line (`#N DONE cov: C ft: F corp: …`) and the final statistics.
last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
field() { sed -n "s/.*$1: *\([0-9][0-9]*\).*/\1/p" <<<"$last"; }
stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -n 1; }
execs=$(stat number_of_executed_units)
rate=$(stat average_exec_per_sec)
if [ "$status" -ne 0 ]; then
    # The finding (the harness's report, a sanitizer or libFuzzer error) and the input's file.
    echo "---- from $log ----"
    { grep -m1 -A40 -E "panicked at|ERROR: |DEADLYSIGNAL" "$log" || true; } |
        { grep -v -E "^ +#[0-9]+ 0x" || true; } | head -n 40
    grep -E "Test unit written|^Base64" "$log" || true
    echo "----"
fi
cov=$(field cov)
ft=$(field ft)
corp=$(field corp)
echo "fuzz $target: ${seconds}s, ${execs:-?} executions (${rate:-?}/s), cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?} inputs, exit status $status$( [ "$status" -ne 0 ] && echo ", artifacts in $artifacts")"
exit "$status"
