//! The `terminals` workload: many terminals streaming at once through one relay, each a
//! steady trickle, as a team's terminals tailing logs and running builds are: what the
//! relay spends per MB relayed, whether every terminal gets its share (none starved), and
//! the relay's memory.
//!
//! Each terminal is an SSH session through the relay to the harness's sshd (one SSH
//! connection per terminal, as the relay opens them), where bash prints a line every
//! [`INTERVAL`] on a clock of its own (builtins only: no process is started per line, so
//! the producers stay cheap enough for a thousand on two cores).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use opsdeck_tests::load::{self, RelayTerminal, Terminal};
use opsdeck_tests::sshd::TestSshd;
use tokio::task::JoinHandle;

use crate::relay_process::RelayProcess;
use crate::report::{Report, Workload, number};
use crate::workloads::{Settings, progress, relay_config};

/// Terminal counts measured (the largest only in full mode).
const COUNTS: [usize; 3] = [10, 100, 1_000];
/// Bytes each line of the trickle takes on the terminal (998 characters, CR LF).
const LINE_BYTES: u64 = 1_000;
/// The trickle's pace: one line per interval, 2 KB/s per terminal (10 KB/s, a line every
/// 100 ms, saturated this 2-core machine at 1,000 terminals: 4.3 MB/s of the 10 written
/// arrived, 2.4 to 7.5 KB/s per terminal, with the shells and sshd starved of CPU).
const INTERVAL: Duration = Duration::from_millis(500);
/// SSH logins at a time while opening terminals (sshd's default MaxStartups starts dropping
/// unauthenticated connections beyond 10).
const SSH_HANDSHAKES: usize = 8;
/// From the last terminal typing its trickle to the window opening: every loop has started.
const WARM_UP: Duration = Duration::from_secs(3);

/// The trickle, typed at a prompt: a line of `LINE_BYTES` on the terminal every `INTERVAL`,
/// paced against the clock (`EPOCHREALTIME`, in µs) so a late line does not slow the rate,
/// sleeping in bash's `read -t` on a pipe that never has data (no `sleep` process).
fn trickle_command() -> String {
    let chars = LINE_BYTES - 2;
    let step_us = INTERVAL.as_micros();
    format!(
        "exec {{z}}<> <(:); printf -v l '%*s' {chars} ''; l=${{l// /x}}; \
         t=${{EPOCHREALTIME//[!0-9]/}}; while :; do printf '%s\\n' \"$l\"; t=$((t+{step_us})); \
         d=$((t-${{EPOCHREALTIME//[!0-9]/}})); if ((d>0)); then printf -v s '%d.%06d' \
         $((d/1000000)) $((d%1000000)); read -t $s -u $z; fi; done\r"
    )
}

/// Bytes per second each terminal's producer writes.
fn producer_rate() -> f64 {
    LINE_BYTES as f64 / INTERVAL.as_secs_f64()
}

fn counts(settings: &Settings) -> &'static [usize] {
    if settings.quick {
        &COUNTS[..2]
    } else {
        &COUNTS
    }
}

fn window(settings: &Settings) -> Duration {
    Duration::from_secs(if settings.quick { 10 } else { 20 })
}

/// Terminals streaming, each read by a task that counts its bytes.
struct Streaming {
    received: Vec<Arc<AtomicU64>>,
    readers: Vec<JoinHandle<()>>,
}

impl Streaming {
    fn snapshot(&self) -> Vec<u64> {
        self.received
            .iter()
            .map(|r| r.load(Ordering::Relaxed))
            .collect()
    }

    /// Terminals whose output ended (the session closed or failed).
    fn ended(&self) -> usize {
        self.readers.iter().filter(|t| t.is_finished()).count()
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        for reader in &self.readers {
            reader.abort();
        }
    }
}

/// What one count measured over its window.
struct Window {
    /// MB/s delivered to all clients together.
    delivered_mb_s: f64,
    /// The relay's CPU seconds per MB delivered, in ms.
    relay_ms_per_mb: f64,
    /// Per-terminal KB/s: slowest, median, fastest.
    spread_kb_s: [f64; 3],
    relay_rss_mib: f64,
    /// The machine's CPUs busy (all work, not only the bench's), % of all of them.
    machine_busy_pct: f64,
}

pub async fn measure(settings: &Settings) -> anyhow::Result<Report> {
    let sshd = TestSshd::start().await?;
    let config = relay_config(&sshd.host_toml("box")?);
    let window = window(settings);
    let per_terminal_kb_s = producer_rate() / 1e3;
    let mut report = Report::new(Workload::Terminals);
    report.limit = Some(format!(
        "what the producers write: {} KB/s per terminal (one {LINE_BYTES}-byte line every {} \
         ms), times the terminals",
        number(per_terminal_kb_s),
        INTERVAL.as_millis()
    ));
    for run in 0..settings.runs {
        for &count in counts(settings) {
            // A fresh relay per count: its memory and CPU are this count's alone.
            let mut relay = RelayProcess::start(
                settings.relay_bin.as_ref().context("no relay binary")?,
                &config,
            )
            .await?;
            let token = relay.login("alice").await?;
            let endpoint = relay.endpoint("/ws/ssh/box", &token);
            let opened = Instant::now();
            let terminals = load::open_many(count, SSH_HANDSHAKES, |_| async {
                let mut term = RelayTerminal::open(&endpoint).await?;
                load::prepare(&mut term).await?;
                Ok(term)
            })
            .await?;
            let opened = opened.elapsed();
            let streaming = start_trickles(terminals).await?;
            tokio::time::sleep(WARM_UP).await;
            let measured = measure_window(&streaming, &relay, window).await?;
            relay.check_running()?;
            if streaming.ended() > 0 {
                bail!(
                    "{} of the {count} terminals ended during the window",
                    streaming.ended()
                );
            }
            drop(streaming);
            let limit_mb_s = count as f64 * producer_rate() / 1e6;
            let [slowest, median, fastest] = measured.spread_kb_s;
            progress(
                Workload::Terminals,
                run,
                settings,
                format!(
                    "{count} terminals (opened in {:.1} s): {:.2} MB/s of {:.2} written, relay \
                     {:.1} ms CPU per MB, per terminal {slowest:.2} / {median:.2} / \
                     {fastest:.2} KB/s, relay RSS {:.1} MiB, machine {:.0}% busy",
                    opened.as_secs_f64(),
                    measured.delivered_mb_s,
                    limit_mb_s,
                    measured.relay_ms_per_mb,
                    measured.relay_rss_mib,
                    measured.machine_busy_pct
                ),
            );
            let row = |what: &str| format!("{what}, {count} terminals");
            report.record(
                &row("delivered"),
                "MB/s",
                measured.delivered_mb_s,
                Some(limit_mb_s),
                None,
            );
            report.record(
                &row("relay CPU per MB relayed"),
                "ms",
                measured.relay_ms_per_mb,
                None,
                None,
            );
            for (what, value) in [
                ("slowest terminal", slowest),
                ("median terminal", median),
                ("fastest terminal", fastest),
            ] {
                report.record(&row(what), "KB/s", value, Some(per_terminal_kb_s), None);
            }
            report.record(&row("relay RSS"), "MiB", measured.relay_rss_mib, None, None);
            report.record(
                &row("machine CPUs busy"),
                "%",
                measured.machine_busy_pct,
                None,
                None,
            );
        }
        report.runs += 1;
    }
    report.note(format!(
        "each terminal: an SSH session through the relay (one SSH connection each) to the \
         bench's sshd, where bash prints a {LINE_BYTES}-byte line every {} ms, paced by its \
         clock, with builtins only: `{}`",
        INTERVAL.as_millis(),
        trickle_command().trim_end()
    ));
    report.note(format!(
        "over a {} s window opened {} s after the last terminal started its trickle: bytes \
         each client received ÷ the window; relay CPU = utime + stime of the relay process \
         from /proc/<pid>/stat over the window ÷ MB delivered; RSS = VmRSS at the window's \
         end (each terminal keeps up to 2 MiB of its output for resuming, so the RSS grows \
         with the window until those fill); machine CPUs busy = all work on the machine \
         (sshd, the shells, the load client, others' work) from /proc/stat",
        window.as_secs(),
        WARM_UP.as_secs()
    ));
    let tick_ms_per_mb: Vec<String> = counts(settings)
        .iter()
        .map(|&n| {
            let mb = n as f64 * producer_rate() * window.as_secs_f64() / 1e6;
            format!("{} ms per MB with {n}", number(10.0 / mb))
        })
        .collect();
    report.note(format!(
        "CPU time is counted in clock ticks of 10 ms: over this window one tick is {}",
        tick_ms_per_mb.join(", ")
    ));
    report.note(
        "the clients (one WebSocket each, in the bench process), sshd (a process per \
         session) and the shells share the machine's CPUs with the relay",
    );
    Ok(report)
}

/// Types the trickle into each terminal and hands each to a task that counts what arrives.
async fn start_trickles(terminals: Vec<RelayTerminal>) -> anyhow::Result<Streaming> {
    let command = trickle_command();
    let mut received = Vec::with_capacity(terminals.len());
    let mut readers = Vec::with_capacity(terminals.len());
    for mut term in terminals {
        term.type_keys(&command).await?;
        let counter = Arc::new(AtomicU64::new(0));
        received.push(counter.clone());
        readers.push(tokio::spawn(async move {
            while let Ok(bytes) = term.output().await {
                counter.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            }
        }));
    }
    Ok(Streaming { received, readers })
}

async fn measure_window(
    streaming: &Streaming,
    relay: &RelayProcess,
    window: Duration,
) -> anyhow::Result<Window> {
    let before = streaming.snapshot();
    let cpu_before = relay.cpu_seconds()?;
    let machine_before = machine_ticks()?;
    let start = Instant::now();
    tokio::time::sleep(window).await;
    let after = streaming.snapshot();
    let cpu_after = relay.cpu_seconds()?;
    let machine_after = machine_ticks()?;
    let seconds = start.elapsed().as_secs_f64();
    let mut rates: Vec<f64> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| (a - b) as f64 / seconds / 1e3)
        .collect();
    rates.sort_by(f64::total_cmp);
    let bytes: u64 = before.iter().zip(&after).map(|(b, a)| a - b).sum();
    let mb = bytes as f64 / 1e6;
    if mb <= 0.0 {
        bail!("no terminal output arrived during the window");
    }
    let busy = machine_after.0 - machine_before.0;
    let total = machine_after.1 - machine_before.1;
    Ok(Window {
        delivered_mb_s: mb / seconds,
        relay_ms_per_mb: (cpu_after - cpu_before) * 1e3 / mb,
        spread_kb_s: [
            rates[0],
            crate::report::median(&rates).context("no terminals")?,
            rates[rates.len() - 1],
        ],
        relay_rss_mib: relay.rss_kib()? as f64 / 1024.0,
        machine_busy_pct: if total > 0 {
            busy as f64 / total as f64 * 100.0
        } else {
            0.0
        },
    })
}

/// The machine's CPU ticks (all CPUs): busy (everything but idle and iowait), and total.
fn machine_ticks() -> anyhow::Result<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .context("no cpu line in /proc/stat")?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let total: u64 = ticks.iter().sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    Ok((total - idle, total))
}
