#!/usr/bin/env bash
# Installs what is missing, then runs every check and test: formatting, clippy (native and
# wasm32), the unit and end-to-end tests (real sshd, redis-server, Chromium, the Kubernetes
# emulator), and the browser app's wasm tests. This is the command CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PWD/node_modules/.bin:$PATH"
# A one-shot build gains nothing from incremental caches, which cost gigabytes of disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

step() { printf '\n==> %s\n' "$*"; }

step "installing what is missing"
scripts/install-deps.sh

step "formatting"
cargo fmt --all --check

step "clippy (native)"
cargo clippy --workspace --all-targets -- -D warnings

step "clippy (wasm32)"
cargo clippy -p common -p frontend --target wasm32-unknown-unknown --all-targets -- -D warnings
cargo clippy -p opsdeck-client --features web --target wasm32-unknown-unknown --all-targets -- -D warnings
cargo clippy -p opsdeck-chat-js --target wasm32-unknown-unknown --all-targets -- -D warnings

step "building the browser app (dist/)"
trunk build --release

step "browser app unit tests (wasm, headless Chromium)"
scripts/wasm-test.sh

step "unit and end-to-end tests"
# --no-fail-fast: one run reports every failing test binary, not only the first.
cargo test --workspace --exclude frontend --no-fail-fast
