#!/usr/bin/env bash
# Coverage-guided fuzzing on the stable toolchain: libFuzzer (through libfuzzer-sys) with
# LLVM's SanitizerCoverage turned on by plain codegen flags (what cargo-fuzz passes, minus
# the nightly-only -Zsanitizer). Runs every target in fuzz/ for SECONDS each (default 60),
# starting from and adding to its corpus in fuzz/corpus/<target>; exits non-zero on any
# crash, timeout or out-of-memory, leaving the input in fuzz/artifacts/<target>/.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-60}"
shift || true

if ! command -v c++ >/dev/null; then
    # libfuzzer-sys compiles libFuzzer's C++ sources.
    apt-get update -qq && apt-get install -y -qq g++ >/dev/null
fi

export RUSTFLAGS="-C passes=sancov-module \
-C llvm-args=-sanitizer-coverage-level=4 \
-C llvm-args=-sanitizer-coverage-inline-8bit-counters \
-C llvm-args=-sanitizer-coverage-pc-table \
-C llvm-args=-sanitizer-coverage-trace-compares \
-C debug-assertions -C overflow-checks --cfg fuzzing"
target=x86_64-unknown-linux-gnu
cargo build --locked --release --target "$target" --bins

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^logrouter-fuzz$')
fi
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    echo "== fuzz $t for ${seconds}s"
    "target/$target/release/$t" "corpus/$t" \
        -max_total_time="$seconds" -rss_limit_mb=512 -timeout=5 -max_len=262144 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 2>&1 | tail -n 12
    # libFuzzer's status is lost in the pipe: a finding leaves a file in artifacts/.
    if [ -n "$(ls -A "artifacts/$t")" ]; then
        echo "fuzz target $t found a problem: $(ls "artifacts/$t")" >&2
        exit 1
    fi
done
