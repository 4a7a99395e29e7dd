#!/usr/bin/env bash
# Builds the fuzz targets (stable toolchain: SanitizerCoverage through LLVM passes, no
# -Zsanitizer) and runs each for a bounded time, one at a time. Non-zero exit on any crash,
# timeout or OOM. Usage: scripts/fuzz.sh [seconds-per-target] [target...]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-60}"
shift || true
host="$(rustc -vV | sed -n 's/^host: //p')"
export RUSTFLAGS="-C passes=sancov-module -C llvm-args=-sanitizer-coverage-level=4 \
 -C llvm-args=-sanitizer-coverage-inline-8bit-counters -C llvm-args=-sanitizer-coverage-pc-table \
 -C llvm-args=-sanitizer-coverage-trace-compares -C debug-assertions -C overflow-checks"
# --target keeps RUSTFLAGS off build scripts and proc macros (they cannot link libFuzzer).
flock /tmp/logrouter-cargo.lock cargo build --release --target "$host" --target-dir target
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(scanner frame gzip config parser_regex parser_json parser_logfmt parser_ltsv)
fi
mkdir -p artifacts
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    echo "== $t: ${secs}s"
    "target/$host/release/$t" "corpus/$t" -jobs=1 -max_total_time="$secs" -rss_limit_mb=512 \
        -timeout=5 -artifact_prefix="artifacts/$t-" -print_final_stats=1 2>&1 | tail -n 12
    rc=${PIPESTATUS[0]}
    if [ "$rc" -ne 0 ]; then
        echo "fuzz target $t failed (exit $rc); see fuzz/artifacts/" >&2
        exit "$rc"
    fi
done
