// Starts the Opsdeck app without any inline script, so the page can run under a strict
// Content-Security-Policy. Trunk puts the (hashed) names of the wasm-bindgen module and of
// the wasm file in <meta name="opsdeck-app"> (`pattern_script` in Trunk.toml); this module
// loads them. If that fails, the page says so instead of staying blank.
const boot = document.getElementById("boot");
// Where the relay is, asked at once beside the app's download and compile instead of after
// them (the app reads it first thing: `api::deploy_config`). Never cached: a deploy changes it.
window.__opsdeckConfig = fetch("config.json", { cache: "no-store" })
  .then((r) => (r.ok ? r.text() : null))
  .catch(() => null);
try {
  const meta = document.querySelector('meta[name="opsdeck-app"]');
  if (!meta) throw new Error('<meta name="opsdeck-app"> is missing');
  const { default: init } = await import(meta.dataset.js);
  // Marks for the bench's page-load breakdown (docs/BENCHMARKS.md, `browser`).
  performance.mark("opsdeck:app-module");
  await init({ module_or_path: meta.dataset.wasm });
  performance.mark("opsdeck:app-started");
} catch (e) {
  console.error("Opsdeck failed to start", e);
  if (boot) {
    boot.textContent = `Opsdeck failed to start: ${e && e.message ? e.message : e}`;
    boot.classList.add("boot-failed");
  }
}
