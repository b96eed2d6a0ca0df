#!/usr/bin/env bash
# Builds the chat client for JavaScript (crate client-js/, the OpsdeckChat class) into an
# npm package folder (default dist/chat/):
#   opsdeck_chat.js        the ES module (wasm-bindgen --target web: `init` + OpsdeckChat)
#   opsdeck_chat_bg.wasm   the client, optimised by wasm-opt (binaryen from node_modules)
#   opsdeck_chat.d.ts      its TypeScript declarations
#   package.json, README.md, and example/ (the example page, not part of the package)
# `npm pack dist/chat` makes the package. `trunk build --release` runs this as a post-build
# hook (Trunk.toml) into its staging folder, so dist/chat/ ships with the app; other
# builds skip it. Needs wasm-bindgen-cli at the version pinned in client-js/Cargo.toml and
# node_modules (scripts/install-deps.sh installs both).
#
#   scripts/build-chat-js.sh [out-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PWD/node_modules/.bin:$PATH"

if [ -n "${TRUNK_STAGING_DIR:-}" ]; then
  if [ "${TRUNK_PROFILE:-}" != "release" ]; then
    echo "build-chat-js.sh: not a release build; dist/chat/ is left out"
    exit 0
  fi
  out="$TRUNK_STAGING_DIR/chat"
else
  out="${1:-dist/chat}"
fi

cargo build -p opsdeck-chat-js --target wasm32-unknown-unknown --profile wasm-release
target_dir=$(cargo metadata --format-version 1 --no-deps |
  node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')
wasm="$target_dir/wasm32-unknown-unknown/wasm-release/opsdeck_chat.wasm"

rm -rf "$out"
mkdir -p "$out"
wasm-bindgen --target web --out-dir "$out" --out-name opsdeck_chat "$wasm"
rm -f "$out/opsdeck_chat_bg.wasm.d.ts"
# The features Rust 1.95 emits for wasm32-unknown-unknown (binaryen must not assume fewer).
wasm-opt -Oz \
  --enable-bulk-memory --enable-multivalue --enable-mutable-globals \
  --enable-nontrapping-float-to-int --enable-reference-types --enable-sign-ext \
  "$out/opsdeck_chat_bg.wasm" -o "$out/opsdeck_chat_bg.wasm"

# package.json with the workspace's version.
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
VERSION="$version" node -e '
  const fs = require("fs");
  const pkg = JSON.parse(fs.readFileSync("client-js/npm/package.json", "utf8"));
  pkg.version = process.env.VERSION;
  fs.writeFileSync(process.argv[1], JSON.stringify(pkg, null, 2) + "\n");
' "$out/package.json"
cp client-js/npm/README.md "$out/README.md"
mkdir -p "$out/example"
cp client/examples/web/* "$out/example/"
echo "build-chat-js.sh: $(du -b "$out/opsdeck_chat_bg.wasm" | cut -f1) bytes of wasm in $out"
