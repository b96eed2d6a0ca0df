//! `bench`: Opsdeck's benchmarks, every workload beside its physical limit measured in the
//! same run, in one command:
//!
//! ```text
//! cargo run --release -p opsdeck-tests --bin bench -- [--quick] [--only <workload>]
//!     [--url ws://... --token ...] [--write-docs]
//! ```
//!
//! It starts what it needs with the test harness (a real sshd, redis-server, the release
//! relay binary as a separate process so `/proc` shows its own CPU and memory), runs each
//! workload `--runs` times, prints a table of median (min–max), and with `--write-docs`
//! rewrites the results section of `docs/BENCHMARKS.md`, which also explains each workload.
//!
//! - `workloads`: what each workload starts and records; the load itself is
//!   `opsdeck_tests::load`, shared with the smoke test (`tests/bench_smoke.rs`);
//! - the limits: `openssh` (`ssh -tt`), `kube_exec` (kube-rs to the Kubernetes emulator),
//!   `redis_pubsub` (PUBLISH/SUBSCRIBE), `tail_follow` (`tail -F`), `floor` (a bare
//!   WebSocket server);
//! - the peers, the systems Opsdeck replaces, installed by the bench into a Python venv in
//!   the target folder (`python_venv`): `webssh` (tornado + paramiko) for the terminal,
//!   `channels` (Django Channels + channels_redis under daphne) for the chat fan-out;
//! - `relay_process` and `procfs`: the relay as a process, and reading `/proc`;
//! - `report`, `machine`, `frontend`: figures, machine facts, shipped bytes;
//! - `browser`: the app in headless Chromium (page load, 50 MB shown, long tasks);
//! - `terminals`: many terminals streaming at once through one relay (CPU per MB, each
//!   terminal's share, memory).

mod browser;
mod channels;
mod floor;
mod frontend;
mod kube_exec;
mod machine;
mod openssh;
mod procfs;
mod python_venv;
mod redis_pubsub;
mod relay_process;
mod report;
mod tail_follow;
mod terminals;
mod webssh;
mod wetty;
mod workloads;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::Parser;
use opsdeck_tests::load::Endpoint;

use crate::machine::Machine;
use crate::report::{Report, Workload};
use crate::workloads::Settings;

#[derive(Parser)]
#[command(
    name = "bench",
    about = "Opsdeck benchmarks: every workload beside its physical limit (docs/BENCHMARKS.md)"
)]
struct Cli {
    /// Fewer and shorter runs: 2 runs, a 10 s idle window, 16 MiB transfers, fewer samples,
    /// at most 60 s of waiting for a quiet machine before each workload.
    #[arg(long)]
    quick: bool,
    /// Run only these workloads (repeat the flag or separate them with commas).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Workload>,
    /// Runs per figure [default: 5, or 2 with --quick].
    #[arg(long)]
    runs: Option<usize>,
    /// Measure this WebSocket URL instead of a relay the bench starts, without a limit:
    /// a terminal URL (ws://host:port/ws/ssh/<host>, or a /ws/k8s/exec/... pod shell) for
    /// ssh-bulk or ssh-echo, a room URL (ws://host:port/ws/chat/<room>) for chat. Needs
    /// --only with one of those.
    #[arg(long, requires = "only")]
    url: Option<String>,
    /// The token for --url, sent as the X-Token cookie (as a logged-in browser does).
    #[arg(long, requires = "url")]
    token: Option<String>,
    /// Rewrite the results section of docs/BENCHMARKS.md with what this run measured.
    #[arg(long, conflicts_with = "url")]
    write_docs: bool,
    /// Before each workload, wait up to this many seconds for the 1-minute load average to
    /// fall below 1 (0: do not wait) [default: 300, or 60 with --quick].
    #[arg(long, value_name = "SECS")]
    max_quiet_wait: Option<u64>,
    /// Use this opsdeck-relay binary instead of building target/release/opsdeck-relay.
    #[arg(long)]
    relay_bin: Option<PathBuf>,
    /// `browser`: also sample each page's main thread (V8's profiler, every 200 µs) from the
    /// bulk command's keystroke until its marker is on screen, and print where the time went
    /// (idle, the browser's own code, GC, the busiest functions). Off by default: sampling
    /// costs the page a little, so figures from such a run are not written to the docs.
    #[arg(long, conflicts_with = "write_docs")]
    profile_page: bool,
    /// `browser`: only this renderer's runs [default: both]. For quick A/B comparisons, so
    /// not with --write-docs.
    #[arg(long, value_parser = ["dom", "webgl"], conflicts_with = "write_docs")]
    renderer: Option<String>,
    /// `browser`: without the peer (WeTTY). For quick A/B comparisons, so not with
    /// --write-docs.
    #[arg(long, conflicts_with = "write_docs")]
    no_peer: bool,
    /// Internal: serve as the bare WebSocket server of the idle-rss limit.
    #[arg(long, hide = true)]
    floor_server: bool,
    /// Internal: the floor server's read buffer in bytes.
    #[arg(long, hide = true, requires = "floor_server")]
    floor_read_buffer: Option<usize>,
}

/// The workspace this bench was built from (docs and dist/ are found from here).
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.floor_server {
        return match floor::serve(cli.floor_read_buffer).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("floor server: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    match run(cli).await {
        Ok(all_ran) if all_ran => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the chosen workloads; false when one of them failed.
async fn run(cli: Cli) -> anyhow::Result<bool> {
    let workloads: Vec<Workload> = if cli.only.is_empty() {
        Workload::ALL.to_vec()
    } else {
        let mut only = cli.only.clone();
        only.sort();
        only.dedup();
        only
    };
    let external = cli
        .url
        .as_ref()
        .map(|url| Endpoint::new(url.clone(), cli.token.clone()));
    if external.is_some()
        && !matches!(
            workloads.as_slice(),
            [Workload::SshBulk | Workload::SshEcho | Workload::Chat]
        )
    {
        bail!("--url measures one of ssh-bulk, ssh-echo or chat: pass exactly one with --only");
    }
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: this bench is a debug build; the load client's own speed then limits the \
             figures. Run it with --release."
        );
    }
    // Both ends of the largest idle-socket count in this process (the bare servers of the
    // idle-rss limit are children too, and inherit it).
    let wanted = 2 * workloads::MAX_IDLE_SOCKETS as u64 + 1_000;
    let open_files = procfs::raise_open_files_limit(wanted)?;
    if open_files < wanted && workloads.contains(&Workload::IdleRss) {
        eprintln!(
            "warning: the open-files limit is {open_files} (the hard limit, which this process \
             may not raise); {} idle connections need about {wanted} in this process (and half \
             as many in the relay, which inherits the limit): the largest count will fail",
            workloads::MAX_IDLE_SOCKETS
        );
    }

    let mut machine = Machine::probe();
    machine.quiet_wait =
        Duration::from_secs(
            cli.max_quiet_wait
                .unwrap_or(if cli.quick { 60 } else { 300 }),
        );
    println!("{}", machine.to_text());
    let needs_relay =
        external.is_none() && workloads.iter().any(|w| !matches!(w, Workload::Frontend));
    let relay_bin = match (&cli.relay_bin, needs_relay) {
        (Some(path), _) => Some(path.clone()),
        (None, true) => Some(relay_process::build_relay_binary()?),
        (None, false) => None,
    };
    let runs = cli.runs.unwrap_or(if cli.quick { 2 } else { 5 }).max(1);
    let settings = Settings {
        quick: cli.quick,
        runs,
        relay_bin,
        dist: workspace_root().join("dist"),
        open_files,
        profile_page: cli.profile_page,
        renderer: cli.renderer.clone(),
        no_peer: cli.no_peer,
    };
    let mode = match (cli.quick, cli.runs) {
        (true, None) => "quick mode".to_owned(),
        (false, None) => "full mode".to_owned(),
        (quick, Some(_)) => format!(
            "{} mode, --runs {runs}",
            if quick { "quick" } else { "full" }
        ),
    };

    let mut all_ran = true;
    let mut blocks = Vec::new();
    let docs = workspace_root().join("docs").join("BENCHMARKS.md");
    for workload in workloads {
        eprintln!("\n[{}] {}", workload.name(), workload.title());
        let start = machine::wait_for_quiet(workload.name(), machine.quiet_wait).await;
        let report = match workloads::run(workload, &settings, external.as_ref()).await {
            Ok(report) => report,
            Err(e) => {
                all_ran = false;
                eprintln!("[{}] failed: {e:#}", workload.name());
                Report::unavailable(workload, format!("the run failed: {e:#}"))
            }
        };
        let context = format!(
            "Measured {} in {mode}, {}, {:.1} after it",
            machine::today(),
            start.describe(),
            machine::load_average()
        );
        print!("{}", report.to_text());
        let failed = report
            .unavailable
            .as_deref()
            .is_some_and(|why| why.starts_with("the run failed"));
        if !failed {
            blocks.push((workload, report.to_markdown(&context)));
            // After each workload, so a long run that is stopped keeps what it measured.
            if cli.write_docs {
                report::rewrite_docs(&docs, &machine.to_markdown(), &blocks)?;
            }
        }
    }

    if cli.write_docs {
        println!(
            "\nwrote the results of {} workloads into {}",
            blocks.len(),
            docs.display()
        );
    }
    Ok(all_ran)
}
