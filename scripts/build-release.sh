#!/usr/bin/env bash
# Builds the router as it ships (the container image and the benchmarks use this build): a
# release build for this machine's target, statically linked against glibc and not
# position-independent. No dynamic loader, no shared libc to map and no load-time relocations
# make an idle router about 1.8 MB smaller in resident memory (BENCHMARKS.md). Name resolution
# keeps working: glibc 2.34+ has its `files` and `dns` NSS modules built in.
#
#   scripts/build-release.sh [cargo build options...]   # prints the binary's path last
set -euo pipefail
cd "$(dirname "$0")/.."
host=$(rustc -vV | sed -n 's/^host: //p')
# The flags apply to the target only because --target is given: build scripts and proc
# macros stay ordinary host builds.
export RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static -C relocation-model=static"
cargo build --release --target "$host" "$@" >&2
echo "target/$host/release/logrouter"
