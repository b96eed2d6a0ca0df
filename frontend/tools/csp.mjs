// Trunk post-build hook: writes csp.txt next to index.html with the Content-Security-Policy
// the page is built for. The only inline script is the import map, allowed by its sha256;
// everything else is a file from the same origin. See frontend/README.md ("CSP").
//
//   connect-src: 'self' covers a relay on the page's origin (http and ws). When config.json
//   names another relay, add its origin in both schemes, e.g.
//   "connect-src 'self' https://relay.example.com wss://relay.example.com".
//   style-src 'unsafe-inline': xterm.js 6 sizes and colours its DOM renderer through <style>
//   elements it creates at run time; scripts stay strict.
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const dir = process.env.TRUNK_STAGING_DIR;
if (!dir) {
  console.error("csp.mjs: TRUNK_STAGING_DIR is not set (run it as a Trunk hook)");
  process.exit(1);
}
const html = readFileSync(join(dir, "index.html"), "utf8");
const inline = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)].filter(
  ([, attrs]) => !/\bsrc\s*=/.test(attrs),
);
const release = process.env.TRUNK_PROFILE === "release";
const hashes = [];
for (const [, attrs, body] of inline) {
  if (!/type\s*=\s*"?importmap/.test(attrs)) {
    // `trunk serve` injects its live-reload script; only a release build must be clean.
    if (!release) continue;
    console.error(`csp.mjs: unexpected inline script <script${attrs}>; strict CSP would block it`);
    process.exit(1);
  }
  hashes.push(`'sha256-${createHash("sha256").update(body, "utf8").digest("base64")}'`);
}
const policy = [
  "default-src 'none'",
  `script-src 'self' 'wasm-unsafe-eval' ${hashes.join(" ")}`.trim(),
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "object-src 'none'",
].join("; ");
writeFileSync(join(dir, "csp.txt"), policy + "\n");
console.log(`csp.mjs: wrote csp.txt (${hashes.length} inline script hash)`);
