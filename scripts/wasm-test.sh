#!/usr/bin/env bash
# Runs the frontend's wasm-bindgen tests in headless Chromium through chromedriver.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PWD/node_modules/.bin:$PATH"
export CHROMEDRIVER=/usr/bin/chromedriver
export WASM_BINDGEN_TEST_TIMEOUT=120
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
# Chromium runs as root here: it needs --no-sandbox, passed as WebDriver capabilities.
export WASM_BINDGEN_TEST_WEBDRIVER_JSON="$PWD/frontend/webdriver.json"
cargo test -p frontend --target wasm32-unknown-unknown
# The chat client's state machine, backoff and close codes, in the browser as well.
cargo test -p opsdeck-client --features web --target wasm32-unknown-unknown
# The JavaScript face of the chat client (client-js/): events as JS objects, option checks.
cargo test -p opsdeck-chat-js --target wasm32-unknown-unknown
