#!/usr/bin/env bash
# Runs logrouter's whole test suite on a fresh Debian machine with Rust: installs what the
# tests need (a Python venv with the fluent-logger client, Node's fluent-logger, openssl), then
# runs every unit and
# end-to-end test. Exits non-zero if any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."

# Python client for the end-to-end tests, in a project-local venv.
if ! .venv/bin/python -c 'import fluent.sender, msgpack' 2>/dev/null; then
    if ! python3 -m venv .venv 2>/dev/null; then
        # Debian's python3 needs the venv module from its own package.
        apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
        python3 -m venv .venv
    fi
    .venv/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
fi
export LOGROUTER_TEST_PYTHON="$PWD/.venv/bin/python"

# Node's fluent-logger (pinned in tests/node/package-lock.json), and openssl to make the TLS
# tests' certificates.
missing=()
command -v npm >/dev/null || missing+=(nodejs npm)
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ ! -d tests/node/node_modules/fluent-logger ]; then
    npm ci --prefix tests/node --no-audit --no-fund --silent
fi

cargo build --release --locked --workspace
cargo test --locked --workspace --all-targets
