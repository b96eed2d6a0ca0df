//! The browser app in real headless Chromium, against the release relay (serving `dist/`)
//! and a real sshd: how long a page load takes to give an interactive terminal, and how
//! long the browser takes to show 50 MB of terminal output — with the page's long tasks
//! meanwhile, which say whether it stayed responsive.
//!
//! Everything is timed inside the page by `browser_probe.js` (installed before the page's
//! own scripts through the DevTools protocol), so no WebDriver round trip is in a figure.
//! The limit of the 50 MB figure is the same output through the same relay to the bench's
//! plain WebSocket client, in the same run: what the relay delivers, without a browser.
//!
//! The peer is WeTTY (see `wetty.rs`), in the same headless Chromium with the same probe,
//! against the same sshd, in the same runs: its first and repeat visits to a prompt and the
//! same command's output on its screen.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use fantoccini::Client;
use fantoccini::wd::{TimeoutConfiguration, WebDriverCompatibleCommand};
use opsdeck_tests::browser::Chromedriver;
use opsdeck_tests::load::{self, Bulk, Endpoint, RelayTerminal, Terminal};
use opsdeck_tests::sshd::TestSshd;
use serde::Deserialize;
use serde_json::json;

use crate::openssh::SshLogin;
use crate::relay_process::RelayProcess;
use crate::report::{Peer, Report, Target, Workload};
use crate::wetty::{self, Wetty};
use crate::workloads::{Settings, alternate, progress, relay_config};

/// The page-side probe (see its opening comment).
const PROBE: &str = include_str!("browser_probe.js");
/// The browsers this workload drives (the harness's paths: Debian's packages).
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The browser window, as in the browser tests.
const WINDOW: (u32, u32) = (1200, 800);
/// The SSH host's id in the relay's config.
const HOST: &str = "box";
/// The renderers measured, by the names the app's settings store.
const RENDERERS: [&str; 2] = ["dom", "webgl"];
/// The marker after the bulk output (the shell computes it, so the echoed command line
/// never matches).
const MARKER: &str = "SHOWN-42-DONE";
/// Main-thread tasks longer than this are counted apart (a visible freeze).
const LONGEST_TASK_MS: f64 = 200.0;
/// No single main-thread task may take longer than this while output streams.
const TASK_TARGET_MS: f64 = 100.0;
/// The long-task threshold of the Long Tasks API.
const LONG_TASK_MS: f64 = 50.0;
/// The longest the page may take to show the bulk output.
const DISPLAY_TIMEOUT: Duration = Duration::from_secs(600);
/// Withholds WebGL2 from a page, as a browser without it does: WeTTY then draws with
/// xterm.js's DOM renderer (it loads the WebGL addon, which throws, and goes on without).
const WITHOUT_WEBGL2: &str = "{
  const getContext = HTMLCanvasElement.prototype.getContext;
  HTMLCanvasElement.prototype.getContext = function (kind, ...rest) {
    return kind === 'webgl2' ? null : getContext.call(this, kind, ...rest);
  };
}";

/// Random bytes the bulk command prints as base64: 50 MB of output (10 MB in `--quick`).
fn random_bytes(settings: &Settings) -> u64 {
    if settings.quick {
        7_500_000
    } else {
        37_500_000
    }
}

/// Printable, varied output in 200-character lines, then the marker.
fn bulk_command(random_bytes: u64) -> String {
    format!("head -c {random_bytes} /dev/urandom | base64 -w 200; echo SHOWN-$((6*7))-DONE\r")
}

/// Why this workload cannot run here, if it cannot.
fn missing(dist: &Path) -> Option<String> {
    for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
        if !Path::new(path).exists() {
            return Some(format!(
                "{path} is missing; this workload drives headless Chromium (install Debian's \
                 `{package}`, as scripts/install-deps.sh does)"
            ));
        }
    }
    if !dist.join("index.html").exists() {
        return Some(format!(
            "{} has no built app; run `trunk build --release` first",
            dist.display()
        ));
    }
    None
}

pub async fn measure(settings: &Settings) -> anyhow::Result<Report> {
    if let Some(why) = missing(&settings.dist) {
        return Ok(Report::unavailable(Workload::Browser, why));
    }
    let dist = settings.dist.canonicalize()?;
    let sshd = TestSshd::start().await?;
    let relay_bin = settings.relay_bin.as_ref().context("no relay binary")?;
    let relay =
        RelayProcess::start_serving(relay_bin, &relay_config(&sshd.host_toml(HOST)?), &dist)
            .await?;
    let token = relay.login("alice").await?;
    let base = format!("http://{}", relay.addr);
    let endpoint = relay.endpoint(&format!("/ws/ssh/{HOST}"), &token);
    let command = bulk_command(random_bytes(settings));
    let bulk = BulkCommand {
        command: &command,
        profile: settings.profile_page,
    };
    // base64 makes 4 bytes of 3 (and each line ends in \r\n on the terminal).
    let mb = format!("{:.0} MB", random_bytes(settings) as f64 * 4.0 / 3.0 / 1e6);
    let wetty = if settings.no_peer {
        Err("not run (--no-peer)".to_owned())
    } else {
        match Wetty::start(&SshLogin::of(&sshd)?).await {
            Ok(wetty) => Ok(wetty),
            Err(e) => {
                eprintln!("WeTTY skipped: {e:#}");
                Err(format!("{e:#}"))
            }
        }
    };
    let mut driver = Chromedriver::start().await?;

    let mut report = Report::new(Workload::Browser);
    report.peer = Some(Peer {
        name: wetty::NAME.to_owned(),
        skipped: wetty.as_ref().err().cloned(),
    });
    report.limit = Some(
        "the bench's plain WebSocket client (no page, no rendering) on the same relay, in the \
         same run: for the prompt, opening the same terminal (connect → first output); for the \
         bulk output, the same command's output"
            .into(),
    );
    let renderers: Vec<&str> = RENDERERS
        .into_iter()
        .filter(|r| settings.renderer.as_deref().is_none_or(|only| only == *r))
        .collect();
    for &renderer in &renderers {
        for run in 0..settings.runs {
            // The peer in its own browser, before Opsdeck's on odd runs and after on even ones.
            let mut peer = None;
            if let (Ok(wetty), false) = (&wetty, run.is_multiple_of(2)) {
                peer = peer_run(&mut driver, wetty, &bulk, renderer, &mut report).await?;
            }
            // A new Chromium with an empty profile each run: the first visit is a cold one.
            let client = driver.browser(WINDOW.0, WINDOW.1).await?;
            let result = browser_run(&client, &base, &token, &endpoint, &bulk, renderer, run).await;
            let _ = client.close().await;
            let BrowserRun {
                first,
                repeat,
                shown,
                alone,
                plain,
                session,
            } = result?;
            if let (Ok(wetty), true) = (&wetty, run.is_multiple_of(2)) {
                peer = peer_run(&mut driver, wetty, &bulk, renderer, &mut report).await?;
            }
            // The peer's output is the same command's: as many bytes as the plain client
            // read (what WeTTY's socket.io carries is that text, JSON-escaped and framed).
            let peer_mb_per_s = peer.as_ref().map(|p| {
                plain.bytes as f64 / 1e6 / ((p.shown.done - p.shown.start) / 1e3).max(1e-9)
            });
            let seconds = (shown.done - shown.start) / 1e3;
            let mb_per_s = shown.bytes / 1e6 / seconds.max(1e-9);
            let longest = shown.longest();
            let over = |ms: f64| shown.tasks.iter().filter(|t| **t > ms).count() as f64;
            progress(
                Workload::Browser,
                run,
                settings,
                format!(
                    "{renderer}: first visit: prompt {:.0} ms, command output {:.0} ms; repeat visit: prompt \
                 {:.0} ms, command output {:.0} ms; {:.1} MB shown in {seconds:.1} s ({mb_per_s:.1} \
                 MB/s, {:.0} messages of {:.1} KiB on average; plain client {:.1} MB/s), longest task {longest:.0} ms, {} > 50 ms, {} > \
                 200 ms",
                    first.prompt,
                    first.ready,
                    repeat.prompt,
                    repeat.ready,
                    shown.bytes / 1e6,
                    shown.messages,
                    shown.bytes / 1024.0 / shown.messages.max(1.0),
                    plain.mb_per_s(),
                    over(LONG_TASK_MS),
                    over(LONGEST_TASK_MS),
                ),
            );
            let profiles = [
                ("Opsdeck's page while shown", shown.main_thread.as_ref()),
                ("the same written from memory", alone.main_thread.as_ref()),
                (
                    "WeTTY's page while shown",
                    peer.as_ref().and_then(|p| p.shown.main_thread.as_ref()),
                ),
            ];
            for (what, main_thread) in profiles {
                if let Some(main_thread) = main_thread {
                    progress(
                        Workload::Browser,
                        run,
                        settings,
                        format!("{renderer}: {what}: {main_thread}"),
                    );
                }
            }
            if let Some(p) = &peer {
                progress(
                    Workload::Browser,
                    run,
                    settings,
                    format!(
                        "{renderer}: WeTTY (drew with {}): first visit: prompt {:.0} ms, command \
                         output {:.0} ms; repeat visit: prompt {:.0} ms; shown in {:.1} s \
                         ({:.1} MB/s), longest task {:.0} ms",
                        p.first.renderer.as_deref().unwrap_or("?"),
                        p.first.prompt,
                        p.first.ready,
                        p.repeat.prompt,
                        (p.shown.done - p.shown.start) / 1e3,
                        peer_mb_per_s.unwrap_or_default(),
                        p.shown.longest(),
                    ),
                );
                let drawn = p.first.renderer.as_deref().unwrap_or("not seen");
                if drawn != renderer {
                    report.note(format!("in a `{renderer}` run WeTTY drew with `{drawn}`"));
                }
            }
            let session_ms = session.as_secs_f64() * 1e3;
            let peer_visits = peer.as_ref().map(|p| [&p.first, &p.repeat]);
            for (i, (label, visit)) in [("first visit", &first), ("repeat visit", &repeat)]
                .into_iter()
                .enumerate()
            {
                let peer_visit = peer_visits.map(|v| v[i]);
                let mut row = |what: &str, ms: f64, limit: Option<f64>| {
                    report.record(
                        &format!("{renderer}: {label}: {what}"),
                        "ms",
                        ms,
                        limit,
                        None,
                    );
                };
                for (what, at) in [
                    (
                        "terminal socket created by the page (repeat visit)",
                        visit.early_socket,
                    ),
                    ("DOMContentLoaded", visit.dom_content_loaded),
                    ("config.json in", visit.config_json),
                    ("xterm.mjs in", visit.xterm_js),
                    ("app wasm in", visit.wasm),
                    ("app module and its imports evaluated", visit.app_module),
                    ("app wasm compiled and started", visit.app_started),
                    ("app mounted", visit.app_mount),
                    ("terminal view mounting", visit.terminal_mount),
                    ("terminal view's xterm.js opened", visit.terminal_opened),
                    ("/api/me asked", visit.api_me_start),
                    ("/api/me answered", visit.api_me),
                    ("terminal socket created", visit.created),
                    ("first output received", visit.first_output),
                ] {
                    if let Some(at) = at {
                        row(&format!("breakdown: {what}"), at, None);
                    }
                }
                // Issue 18: to the prompt in at most 2× the plain client's session open on
                // a first visit, 1.5× on a repeat one.
                let prompt_target =
                    Target::RatioAtMost(if label == "first visit" { 2.0 } else { 1.5 });
                let mut both = |what: &str, ms: f64, limit: Option<f64>, peer: Option<f64>| {
                    let target = (what == "shell prompt on screen").then_some(prompt_target);
                    report.record_with_peer(
                        &format!("{renderer}: {label}: {what}"),
                        "ms",
                        ms,
                        limit,
                        peer,
                        target,
                    );
                };
                let rows: [VisitRow; 5] = [
                    ("page loaded (load event)", |v| v.load, None),
                    ("terminal WebSocket open", |v| v.opened, None),
                    ("shell prompt on screen", |v| v.prompt, Some(session_ms)),
                    ("typed command's output on screen", |v| v.ready, None),
                    ("longest task until then", Visit::longest, None),
                ];
                for (what, of, limit) in rows {
                    both(what, of(visit), limit, peer_visit.map(of));
                }
            }
            let peer_shown = peer.as_ref().map(|p| &p.shown);
            report.record_with_peer(
                &format!("{renderer}: {mb}: all received by the page"),
                "s",
                (shown.last_message - shown.start) / 1e3,
                Some(plain.elapsed.as_secs_f64()),
                peer_shown.map(|p| (p.last_message - p.start) / 1e3),
                None,
            );
            report.record_with_peer(
                &format!("{renderer}: {mb}: all on screen"),
                "s",
                seconds,
                Some(plain.elapsed.as_secs_f64()),
                peer_shown.map(|p| (p.done - p.start) / 1e3),
                None,
            );
            report.record_with_peer(
                &format!("{renderer}: {mb}: on screen, throughput"),
                "MB/s",
                mb_per_s,
                Some(plain.mb_per_s()),
                peer_mb_per_s,
                (renderer == "dom").then_some(Target::RatioAtLeastAndOverPeer {
                    limit: 0.5,
                    peer: 3.0,
                }),
            );
            // The limit here is xterm.js itself: the same amount written into the page's
            // terminal from memory (no network, no app), after the bulk output.
            report.record(
                &format!("{renderer}: {mb}: on screen vs written from memory"),
                "MB/s",
                mb_per_s,
                Some(alone.mb_per_s()),
                None,
            );
            report.record_with_peer(
                &format!("{renderer}: {mb}: longest task while shown"),
                "ms",
                longest,
                None,
                peer_shown.map(Shown::longest),
                Some(Target::Below(TASK_TARGET_MS)),
            );
            report.record_with_peer(
                &format!("{renderer}: {mb}: tasks > 200 ms"),
                "count",
                over(LONGEST_TASK_MS),
                None,
                peer_shown.map(|p| p.over(LONGEST_TASK_MS)),
                None,
            );
            report.record_with_peer(
                &format!("{renderer}: {mb}: tasks > 50 ms"),
                "count",
                over(LONG_TASK_MS),
                None,
                peer_shown.map(|p| p.over(LONG_TASK_MS)),
                None,
            );
            report.record_with_peer(
                &format!("{renderer}: {mb}: total blocking time"),
                "ms",
                shown.blocking(),
                None,
                peer_shown.map(Shown::blocking),
                None,
            );
            let drawn = first.renderer.as_deref().unwrap_or("not marked");
            if drawn != renderer {
                report.note(format!(
                    "in a `{renderer}` run the app drew with `{drawn}` (it falls back to the DOM \
                 when WebGL is missing or its context is lost)"
                ));
            }
            if (shown.bytes - plain.bytes as f64).abs() > 4096.0 {
                report.note(format!(
                    "in a run the page received {:.0} bytes and the plain client {} for the same \
                 command",
                    shown.bytes, plain.bytes
                ));
            }
            // Runs of each renderer: the first renderer's count them.
            if renderer == renderers[0] {
                report.runs += 1;
            }
        }
    }
    report.note(
        "each renderer measured in its own runs, chosen as a user does in the settings \
         (`localStorage[\"opsdeck.renderer\"]`): `dom` is xterm.js's DOM renderer, `webgl` its \
         WebGL addon. This headless Chromium has no GPU: its WebGL is SwiftShader, drawn by \
         the CPU, so the `webgl` rows say what a machine without a GPU gets, not a GPU's speed"
            .to_owned(),
    );
    report.note(format!(
        "headless Chromium ({}×{} window; the terminal's font is 14 px) through chromedriver, a \
         new browser with an empty profile per run; the page is `/#/ssh/{HOST}` with the login \
         cookie already set. First visit: empty cache; repeat visit: the same browser goes to \
         about:blank and back (HTTP and code caches warm)",
        WINDOW.0, WINDOW.1
    ));
    report.note(
        "page-load times are milliseconds from the start of the navigation \
         (performance.timeOrigin), taken in the page by a probe Chromium runs before the app's \
         scripts: the load event; the terminal's WebSocket opening; the first text in the \
         terminal's rows (the shell's prompt) seen by a MutationObserver; then `echo \
         READY-$((6*7))` typed at once (an input event at xterm.js's textarea, as a keystroke \
         makes) and its output seen the same way. Long tasks: those starting before that output"
            .to_owned(),
    );
    report.note(format!(
        "bulk output: `{}` typed at the prompt, timed in the page from that keystroke until the \
         marker is in the terminal's rows; bytes are those of the binary WebSocket messages the \
         page received meanwhile (counted by a listener the probe adds to each socket; the \
         app's sockets receive in a worker, `socket-worker.js`, and the probe counts the \
         messages in the batches it hands the page). Long tasks (main-thread tasks over 50 \
         ms) from a buffered PerformanceObserver, those overlapping that interval; total blocking time is the sum \
         of each one's time over 50 ms; a longest task of 0 means none over 50 ms",
        command.trim_end()
    ));
    if wetty.is_ok() {
        report.note(
            "peer: WeTTY in its own new Chromium per run (before Opsdeck's on odd runs, after on \
             even ones), with the same probe and window, at its page `/` (no login): the same \
             visits and the same command, its terminal found as `window.wetty_term`. It draws \
             with WebGL whenever the page has WebGL2; in `dom` runs the bench withholds WebGL2 \
             from its page (`getContext(\"webgl2\")` answers null) and it falls back to the \
             DOM renderer. Its MB/s is the plain client's byte count of the same output over \
             its time on screen (socket.io carries it as JSON-escaped text)"
                .to_owned(),
        );
    }
    Ok(report)
}

/// What one run measured.
struct BrowserRun {
    first: Visit,
    repeat: Visit,
    shown: Shown,
    /// The same amount written into the page's terminal from memory, after the bulk output.
    alone: Alone,
    plain: Bulk,
    /// The plain client opening the same terminal: connect → first output.
    session: Duration,
}

/// One run: a first and a repeat visit, then the bulk output in the browser and to the
/// plain client (alternating which goes first).
async fn browser_run(
    client: &Client,
    base: &str,
    token: &str,
    endpoint: &Endpoint,
    bulk: &BulkCommand<'_>,
    renderer: &str,
    run: usize,
) -> anyhow::Result<BrowserRun> {
    // The renderer, chosen before the app reads it (about:blank has no storage: skipped).
    let choose = format!(
        "try {{ localStorage.setItem('opsdeck.renderer', {}); }} catch (e) {{}}",
        json!(renderer)
    );
    prepare(client, &[choose.as_str(), PROBE]).await?;
    // The cookie a login sets, set without loading any page of the relay first.
    cdp(
        client,
        "Network.setCookie",
        json!({
            "name": "X-Token",
            "value": token,
            "url": format!("{base}/"),
            "httpOnly": true,
            "sameSite": "Strict",
        }),
    )
    .await?;
    let page = format!("{base}/#/ssh/{HOST}");
    let first = visit(client, &page).await.context("first visit")?;
    client.goto("about:blank").await?;
    let repeat = visit(client, &page).await.context("repeat visit")?;
    let in_browser = async {
        show(client, bulk)
            .await
            .context("bulk output in the browser")
    };
    let plain = async {
        let opening = std::time::Instant::now();
        let mut term = RelayTerminal::open(endpoint).await?;
        term.output().await?;
        let session = opening.elapsed();
        load::prepare(&mut term).await?;
        let start = std::time::Instant::now();
        term.type_keys(bulk.command).await?;
        let bytes = load::read_until(&mut term, MARKER.as_bytes()).await?;
        let elapsed = start.elapsed();
        term.close().await?;
        Ok((Bulk { bytes, elapsed }, session))
    };
    let (shown, (plain, session)) = alternate(run, in_browser, plain).await?;
    let alone = xterm_alone(client, shown.bytes, bulk.profile)
        .await
        .context("the same output written from memory")?;
    Ok(BrowserRun {
        first,
        repeat,
        shown,
        alone,
        plain,
        session,
    })
}

/// Readies a new browser for a run: script timeouts long enough for the bulk output, and
/// `scripts` run at the start of every document, before the page's own (the probe last).
async fn prepare(client: &Client, scripts: &[&str]) -> anyhow::Result<()> {
    client
        .update_timeouts(TimeoutConfiguration::new(
            Some(DISPLAY_TIMEOUT + Duration::from_secs(60)),
            None,
            None,
        ))
        .await?;
    for source in scripts {
        cdp(
            client,
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": source }),
        )
        .await?;
    }
    Ok(())
}

/// What one run measured of the peer.
struct PeerRun {
    first: Visit,
    repeat: Visit,
    shown: Shown,
}

/// The peer's run for `renderer`, in a new Chromium: a first and a repeat visit to its page,
/// then the bulk output on its screen. `None` (and a note saying why) when it failed: the
/// peer's failure is not the bench's.
async fn peer_run(
    driver: &mut Chromedriver,
    wetty: &Wetty,
    bulk: &BulkCommand<'_>,
    renderer: &str,
    report: &mut Report,
) -> anyhow::Result<Option<PeerRun>> {
    let client = driver.browser(WINDOW.0, WINDOW.1).await?;
    let result = async {
        let page = wetty.url();
        // The probe knows the peer's page by its address (it has no `#/ssh/` route).
        let name_page = format!("window.__opsdeckPeerPage = {};", json!(page));
        let mut scripts = vec![name_page.as_str()];
        if renderer == "dom" {
            scripts.push(WITHOUT_WEBGL2);
        }
        scripts.push(PROBE);
        prepare(&client, &scripts).await?;
        let first = visit(&client, &page).await.context("first visit")?;
        client.goto("about:blank").await?;
        let repeat = visit(&client, &page).await.context("repeat visit")?;
        let shown = show(&client, bulk).await.context("bulk output")?;
        anyhow::Ok(PeerRun {
            first,
            repeat,
            shown,
        })
    }
    .await;
    let _ = client.close().await;
    Ok(match result {
        Ok(run) => Some(run),
        Err(e) => {
            eprintln!("WeTTY run failed: {e:#}");
            report.note(format!("a `{renderer}` run of WeTTY failed: {e:#}"));
            None
        }
    })
}

/// A page-load row: its name, the milestone it reads from a visit, and the limit's value.
type VisitRow = (&'static str, fn(&Visit) -> f64, Option<f64>);

/// A page load's milestones, in ms since the navigation started.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Visit {
    load: f64,
    /// The terminal's WebSocket opened.
    opened: f64,
    prompt: f64,
    ready: f64,
    /// The long tasks that started before the output was on screen.
    #[serde(default)]
    tasks: Vec<f64>,
    /// Where the time before the terminal's socket went (Resource and Navigation Timing):
    /// when each was in (ms since the navigation started), `None` when not seen (a cached
    /// response may not be listed).
    dom_content_loaded: Option<f64>,
    config_json: Option<f64>,
    wasm: Option<f64>,
    xterm_js: Option<f64>,
    /// boot.js's marks: the app's JS module imported (with xterm.js), then its wasm
    /// compiled, instantiated and its `main` run.
    app_module: Option<f64>,
    app_started: Option<f64>,
    app_mount: Option<f64>,
    /// `early-socket.js` opened the terminal's socket (a repeat visit of the page).
    early_socket: Option<f64>,
    terminal_mount: Option<f64>,
    terminal_opened: Option<f64>,
    api_me_start: Option<f64>,
    api_me: Option<f64>,
    /// The page's first WebSocket was created (by the page's script or the app), and the
    /// first binary message (terminal output: the shell's prompt) arrived on it.
    created: Option<f64>,
    first_output: Option<f64>,
    /// The renderer drawing the terminal (`webgl` or `dom`, as the app marks it; on
    /// WeTTY's page, `webgl` when its terminal has a canvas, as only the WebGL addon adds).
    renderer: Option<String>,
}

impl Visit {
    fn longest(&self) -> f64 {
        self.tasks.iter().copied().fold(0.0, f64::max)
    }
}

/// Loads `page` (WebDriver returns after the load event) and waits in the page for the
/// probe's `interactive` milestones.
async fn visit(client: &Client, page: &str) -> anyhow::Result<Visit> {
    client.goto(page).await?;
    let value = client
        .execute(
            "const probe = window.__opsdeckProbe;
             if (!probe || !probe.interactive) throw new Error('no probe on ' + location.href);
             return probe.interactive.then(async (milestones) => {
               // Long-task entries reach the observer after their task; let the last arrive.
               await new Promise((resolve) => setTimeout(resolve, 300));
               const tasks = probe.longTasks
                 .filter((t) => t.start < milestones.ready)
                 .map((t) => t.duration);
               // Where the time before the socket went, from Resource Timing.
               const resources = performance.getEntriesByType('resource');
               const find = (re) => resources.find((e) => re.test(e.name));
               const end = (re) => find(re)?.responseEnd ?? null;
               // The app's own marks (boot.js, early-socket.js, the wasm), `opsdeck:<name>`.
               const mark = (name) =>
                 performance.getEntriesByName(`opsdeck:${name}`)[0]?.startTime ?? null;
               const nav = performance.getEntriesByType('navigation')[0];
               const term = document.querySelector('.terminal-host');
               return {
                 ...milestones,
                 tasks,
                 domContentLoaded: nav ? nav.domContentLoadedEventEnd : null,
                 configJson: end(/config[.]json/),
                 wasm: end(/[.]wasm([?]|$)/),
                 xtermJs: end(/xterm[.]mjs/),
                 appModule: mark('app-module'),
                 appStarted: mark('app-started'),
                 earlySocket: mark('early-socket'),
                 appMount: mark('mount'),
                 terminalMount: mark('terminal-mount'),
                 terminalOpened: mark('terminal-opened'),
                 apiMeStart: find(/[/]api[/]me/)?.startTime ?? null,
                 apiMe: end(/[/]api[/]me/),
                 renderer: term?.__opsdeckRenderer
                   ?? (window.wetty_term
                     ? (document.querySelector('#terminal .xterm-screen canvas') ? 'webgl' : 'dom')
                     : null),
               };
             });",
            vec![],
        )
        .await
        .with_context(|| format!("waiting for an interactive terminal at {page}"))?;
    serde_json::from_value(value.clone()).with_context(|| format!("the probe said {value}"))
}

/// The bulk output in the page: when it was typed and shown, the bytes received, and the
/// durations of the long tasks in between.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Shown {
    start: f64,
    done: f64,
    /// The last WebSocket message before the marker was on screen.
    last_message: f64,
    bytes: f64,
    /// The binary messages that carried `bytes`.
    messages: f64,
    /// Filled in after the timed interval (long-task entries arrive late).
    #[serde(default)]
    tasks: Vec<f64>,
    #[serde(skip)]
    main_thread: Option<MainThread>,
}

impl Shown {
    fn longest(&self) -> f64 {
        self.tasks.iter().copied().fold(0.0, f64::max)
    }

    /// How many tasks took longer than `ms`.
    fn over(&self, ms: f64) -> f64 {
        self.tasks.iter().filter(|t| **t > ms).count() as f64
    }

    /// Total blocking time: each long task's time over 50 ms, summed.
    fn blocking(&self) -> f64 {
        self.tasks
            .iter()
            .fold(0.0, |sum, t| sum + (t - LONG_TASK_MS))
    }
}

/// The bulk command, and whether to profile the page while it shows its output.
struct BulkCommand<'a> {
    command: &'a str,
    profile: bool,
}

/// Types the bulk command into the page's terminal and waits, in the page, for the marker;
/// with `profile`, V8's sampling profiler runs from the keystroke until the marker is on
/// screen.
async fn show(client: &Client, bulk: &BulkCommand<'_>) -> anyhow::Result<Shown> {
    let showing = client.execute(
        "const [keys, marker, ms] = arguments;
             const probe = window.__opsdeckProbe;
             return (async () => {
               const before = probe.received;
               const messagesBefore = probe.messages;
               const start = probe.type(keys);
               const done = await probe.when(probe.shows(marker), ms);
               const bytes = probe.received - before;
               const messages = probe.messages - messagesBefore;
               const lastMessage = probe.lastMessage;
               return { start, done, bytes, messages, lastMessage };
             })();",
        vec![
            json!(bulk.command),
            json!(MARKER),
            json!(DISPLAY_TIMEOUT.as_millis() as u64),
        ],
    );
    let (value, main_thread) = profiled(client, bulk.profile, showing).await?;
    let mut shown: Shown =
        serde_json::from_value(value.clone()).with_context(|| format!("the probe said {value}"))?;
    shown.main_thread = main_thread;
    // Long-task entries reach the observer after their task; let the last arrive.
    let tasks = client
        .execute(
            "const [start, done] = arguments;
             return new Promise((resolve) => setTimeout(resolve, 500)).then(() =>
               window.__opsdeckProbe.longTasks
                 .filter((t) => t.start + t.duration > start && t.start < done)
                 .map((t) => t.duration));",
            vec![json!(shown.start), json!(shown.done)],
        )
        .await?;
    shown.tasks = serde_json::from_value(tasks.clone())
        .with_context(|| format!("the probe's long tasks were {tasks}"))?;
    Ok(shown)
}

/// Where the page's main thread spent a bulk output, from V8's sampling profiler
/// (`--profile-page`): shares of the samples.
#[derive(Debug)]
struct MainThread {
    idle: f64,
    /// The browser's own code (Blink: events, DOM, style, layout), outside JavaScript.
    native: f64,
    gc: f64,
    /// The functions with the most samples of their own, as `name file`.
    top: Vec<(String, f64)>,
}

impl MainThread {
    fn from_profile(profile: &serde_json::Value) -> Self {
        let mut by_function: std::collections::HashMap<String, u64> = Default::default();
        let mut total = 0;
        for node in profile["nodes"].as_array().into_iter().flatten() {
            let hits = node["hitCount"].as_u64().unwrap_or(0);
            total += hits;
            let frame = &node["callFrame"];
            let file = frame["url"]
                .as_str()
                .unwrap_or("")
                .rsplit('/')
                .next()
                .unwrap_or("");
            let name = frame["functionName"].as_str().unwrap_or("");
            *by_function
                .entry(format!("{name} {file}").trim().to_owned())
                .or_default() += hits;
        }
        let share = |hits: u64| hits as f64 * 100.0 / total.max(1) as f64;
        let mut functions: Vec<_> = by_function.into_iter().collect();
        functions.sort_by_key(|(_, hits)| std::cmp::Reverse(*hits));
        let take = |name: &str| {
            functions
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0.0, |(_, h)| share(*h))
        };
        Self {
            idle: take("(idle)"),
            native: take("(program)"),
            gc: take("(garbage collector)"),
            top: functions
                .iter()
                .filter(|(name, _)| !name.starts_with('('))
                .take(5)
                .map(|(name, hits)| (name.clone(), share(*hits)))
                .collect(),
        }
    }
}

impl std::fmt::Display for MainThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "main thread idle {:.0}%, browser code {:.0}%, GC {:.1}%; most of its own:",
            self.idle, self.native, self.gc
        )?;
        for (name, share) in &self.top {
            write!(f, " {name} {share:.1}%,")?;
        }
        Ok(())
    }
}

/// The same shape of output written into the page's terminal from memory.
#[derive(Debug, Deserialize)]
struct Alone {
    start: f64,
    done: f64,
    bytes: f64,
    #[serde(skip)]
    main_thread: Option<MainThread>,
}

impl Alone {
    fn mb_per_s(&self) -> f64 {
        self.bytes / 1e6 / ((self.done - self.start) / 1e3).max(1e-9)
    }
}

/// `bytes` of output like the bulk command's, written straight into the page's terminal
/// (the probe's `alone`): what xterm.js in this browser shows at best, with no network.
async fn xterm_alone(client: &Client, bytes: f64, profile: bool) -> anyhow::Result<Alone> {
    client
        .execute(
            "const [bytes, marker] = arguments;
             window.__opsdeckProbe.prepareAlone(bytes, marker);",
            vec![json!(bytes as u64), json!("ALONE-42-DONE")],
        )
        .await?;
    let writing = client.execute(
        "const [ms] = arguments;
         return window.__opsdeckProbe.alone(ms);",
        vec![json!(DISPLAY_TIMEOUT.as_millis() as u64)],
    );
    let (value, main_thread) = profiled(client, profile, writing).await?;
    let mut alone: Alone =
        serde_json::from_value(value.clone()).with_context(|| format!("the probe said {value}"))?;
    alone.main_thread = main_thread;
    Ok(alone)
}

/// Runs `work` in the page, with V8's sampling profiler (every 200 µs) running over
/// exactly that when `profile`, and says where the main thread's time went meanwhile.
async fn profiled<T, E>(
    client: &Client,
    profile: bool,
    work: impl std::future::Future<Output = Result<T, E>>,
) -> anyhow::Result<(T, Option<MainThread>)>
where
    anyhow::Error: From<E>,
{
    if !profile {
        return Ok((work.await?, None));
    }
    cdp(client, "Profiler.enable", json!({})).await?;
    cdp(
        client,
        "Profiler.setSamplingInterval",
        json!({ "interval": 200 }),
    )
    .await?;
    cdp(client, "Profiler.start", json!({})).await?;
    let done = work.await?;
    let stopped = cdp(client, "Profiler.stop", json!({})).await?;
    Ok((done, Some(MainThread::from_profile(&stopped["profile"]))))
}

/// A Chrome DevTools Protocol command, through chromedriver's `goog/cdp/execute`.
#[derive(Debug)]
struct Cdp {
    method: &'static str,
    params: serde_json::Value,
}

/// `url::ParseError`, named through reqwest's re-export of `url::Url`.
type UrlError = <reqwest::Url as FromStr>::Err;

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &reqwest::Url,
        session_id: Option<&str>,
    ) -> Result<reqwest::Url, UrlError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &reqwest::Url) -> (reqwest::Method, Option<String>) {
        let body = json!({ "cmd": self.method, "params": self.params });
        (reqwest::Method::POST, Some(body.to_string()))
    }
}

async fn cdp(
    client: &Client,
    method: &'static str,
    params: serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    client
        .issue_cmd(Cdp { method, params })
        .await
        .with_context(|| format!("DevTools command {method}"))
}
