#!/usr/bin/env bash
# Builds the browser app and runs the relay on its embedded demo configuration:
# open http://127.0.0.1:8080 and log in as demo / demo.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PWD/node_modules/.bin:$PATH"
if ! command -v trunk >/dev/null || [ ! -d node_modules ]; then
  scripts/install-deps.sh
fi
trunk build --release
exec cargo run --release -p relay --bin opsdeck-relay -- "$@"
