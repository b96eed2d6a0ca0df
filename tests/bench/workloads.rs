//! Each workload's runs: start what it needs (sshd, redis-server, relay processes, the
//! peers), run the load functions of `opsdeck_tests::load` through the relay and beside it on
//! the limit and the peer, in the same run, and record the figures.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use opsdeck_tests::load::{
    self, Bulk, ChatPublisher, ChatSubscriber, Endpoint, Fanout, FanoutPlan, FileAppender,
    IdleConnections, RelayTerminal, TailViewer, Terminal,
};
use opsdeck_tests::redis::TestRedis;
use opsdeck_tests::relay::users_toml;
use opsdeck_tests::sshd::TestSshd;

use crate::channels::{self, ChannelsChat, ChannelsPublisher, ChannelsSubscriber};
use crate::floor::FloorServer;
use crate::kube_exec::{K8sCluster, KubeExecTerminal};
use crate::openssh::{self, OpenSshTerminal, SshLogin};
use crate::redis_pubsub::{RedisPublisher, RedisSubscriber};
use crate::relay_process::RelayProcess;
use crate::report::{self, Report, Target, Workload};
use crate::tail_follow::TailFollower;
use crate::webssh::{self, WebSsh};
use crate::{browser, frontend, procfs};

/// How much each workload does.
#[derive(Debug, Clone)]
pub struct Settings {
    pub quick: bool,
    pub runs: usize,
    /// The release `opsdeck-relay`; `None` when only an external `--url` is measured.
    pub relay_bin: Option<PathBuf>,
    pub dist: PathBuf,
    /// This process's open-files limit (the relay inherits it).
    pub open_files: u64,
    /// `browser`: sample the page's main thread during each bulk output (`--profile-page`).
    pub profile_page: bool,
    /// `browser`: only this renderer (`--renderer`), and whether to skip the peer
    /// (`--no-peer`).
    pub renderer: Option<String>,
    pub no_peer: bool,
}

impl Settings {
    fn relay_bin(&self) -> anyhow::Result<&PathBuf> {
        self.relay_bin.as_ref().context("no relay binary")
    }

    /// Bytes of zeros the bulk command prints as base64.
    fn bulk_bytes(&self) -> u64 {
        if self.quick { 16 << 20 } else { 64 << 20 }
    }

    fn echo_samples(&self) -> usize {
        if self.quick { 100 } else { 500 }
    }

    /// Sessions opened per run on each side for the session-open figure (its median).
    fn session_opens(&self) -> usize {
        if self.quick { 3 } else { 9 }
    }

    fn idle_window(&self) -> Duration {
        Duration::from_secs(if self.quick { 10 } else { 60 })
    }

    /// One publisher, `subscribers` receivers: paced messages for latency, then a burst
    /// sized so each run makes about the same number of deliveries.
    fn chat_plan(&self, subscribers: usize) -> FanoutPlan {
        if subscribers >= 1_000 {
            // Latency at the target rate: 500 messages a second to 1,000 subscribers is
            // 500,000 deliveries a second; then a burst that lasts a second or more at that rate.
            return FanoutPlan {
                paced: if self.quick { 500 } else { 2_000 },
                interval: CHAT_TARGET_INTERVAL,
                burst: if self.quick { 300 } else { 1_000 },
                drain: Duration::from_secs(30),
            };
        }
        let deliveries = if self.quick { 20_000 } else { 100_000 };
        FanoutPlan {
            paced: if self.quick { 20 } else { 100 },
            // At most about 10,000 deliveries a second while pacing: latency, not queueing.
            interval: Duration::from_millis(20)
                .max(Duration::from_micros(100) * subscribers as u32),
            burst: (deliveries / subscribers).clamp(50, 5_000) as u32,
            drain: Duration::from_secs(30),
        }
    }

    /// The idle-socket counts this machine allows: the largest is cut to what the
    /// open-files limit leaves room for (1,000 descriptors spare), in thousands.
    fn idle_sockets(&self) -> Vec<usize> {
        let room = (self.open_files.saturating_sub(1_000) / 1_000 * 1_000) as usize;
        let mut counts: Vec<usize> = IDLE_SOCKETS.iter().map(|&n| n.min(room)).collect();
        counts.dedup();
        counts
    }

    /// Bytes of each upload and download timed in the files workload.
    fn transfer_bytes(&self) -> u64 {
        if self.quick { 64 << 20 } else { 256 << 20 }
    }

    /// Bytes of the download during which the relay's memory is watched.
    fn large_download_bytes(&self) -> u64 {
        if self.quick { 256 << 20 } else { 1 << 30 }
    }

    fn tail_plan(&self) -> FanoutPlan {
        FanoutPlan {
            paced: if self.quick { 50 } else { 200 },
            interval: Duration::from_millis(20),
            burst: 0,
            drain: Duration::from_secs(10),
        }
    }
}

/// Terminal sessions open in the idle-CPU workload.
const IDLE_SESSIONS: usize = 100;
/// Idle WebSockets in the memory workload.
const IDLE_SOCKETS: [usize; 3] = [1_000, 10_000, MAX_IDLE_SOCKETS];
/// The largest count: the density target (issue 18), ≤ 10 KiB each on one relay process.
pub const MAX_IDLE_SOCKETS: usize = 100_000;
/// The relay's keepalive ping interval (its default): the CPU window at the largest count
/// spans at least one round of pings.
const PING_INTERVAL: Duration = Duration::from_secs(25);
/// The small read buffer of the second memory floor.
const SMALL_READ_BUFFER: usize = 4 * 1024;
/// The pace of messages into a room of 1,000 subscribers while latency is measured: 500
/// a second, the 500,000 deliveries a second of the fan-out target.
const CHAT_TARGET_INTERVAL: Duration = Duration::from_millis(2);
/// Chat room sizes.
const CHAT_SUBSCRIBERS: [usize; 3] = [10, 100, 1_000];
/// The largest room the chat peer is measured with: Channels delivers a few thousand
/// messages a second, so 1,000 subscribers would take minutes per run.
const CHAT_PEER_MAX_SUBSCRIBERS: usize = 100;
/// File tail viewer counts.
const TAIL_VIEWERS: [usize; 2] = [1, 100];
/// Concurrent SSH handshakes (sshd's default MaxStartups drops some beyond 10).
const SSH_HANDSHAKES: usize = 4;
/// Concurrent WebSocket handshakes when opening many.
const WS_HANDSHAKES: usize = 64;

/// Everything the relay processes of the bench are configured with: the harness users,
/// one grant for all, limits raised for many sessions, chat's rate limit out of the way.
pub(crate) fn relay_config(sections: &str) -> String {
    format!(
        "[limits]\nmax_sessions_per_user = 1000\n\
         [chat]\nrate_burst = 1000000000\nrate_interval = \"1ms\"\n\
         {users}\n\
         [[grants]]\ngroups = [\"ops\"]\nssh = [\"*\"]\nfiles = [\"*\"]\nchat = [\"*\"]\nk8s = [\"*\"]\n\
         [[chat_rooms]]\nid = \"bench\"\n\
         {sections}\n",
        users = users_toml()
    )
}

/// Runs one workload. `external` is the `--url` target, measured without a limit.
pub async fn run(
    workload: Workload,
    settings: &Settings,
    external: Option<&Endpoint>,
) -> anyhow::Result<Report> {
    match workload {
        Workload::SshBulk => ssh_bulk(settings, external).await,
        Workload::SshEcho => ssh_echo(settings, external).await,
        Workload::IdleCpu => idle_cpu(settings).await,
        Workload::IdleRss => idle_rss(settings).await,
        Workload::K8sExec => k8s_exec(settings).await,
        Workload::Chat => chat(settings, external).await,
        Workload::Tail => tail(settings).await,
        Workload::Files => files(settings).await,
        Workload::Frontend => frontend::measure(&settings.dist),
        Workload::Browser => browser::measure(settings).await,
        Workload::Terminals => crate::terminals::measure(settings).await,
    }
}

pub(crate) fn progress(workload: Workload, run: usize, settings: &Settings, what: String) {
    eprintln!(
        "[{}] run {}/{}: {what}",
        workload.name(),
        run + 1,
        settings.runs
    );
}

/// Runs `a` then `b` on even runs, `b` then `a` on odd ones, so that neither side always
/// goes first (on a warm or a cold machine).
pub(crate) async fn alternate<A, B>(
    run: usize,
    a: impl Future<Output = anyhow::Result<A>>,
    b: impl Future<Output = anyhow::Result<B>>,
) -> anyhow::Result<(A, B)> {
    if run.is_multiple_of(2) {
        let a = a.await?;
        Ok((a, b.await?))
    } else {
        let b = b.await?;
        Ok((a.await?, b))
    }
}

/// An sshd and a relay process with it as host `box`, and webssh to the same sshd, or the
/// external terminal URL; with `recorded`, a second relay process that records every
/// session (into a temp folder).
struct TerminalSetup {
    sshd: Option<(TestSshd, SshLogin)>,
    _relay: Option<RelayProcess>,
    endpoint: Endpoint,
    recorded: Option<(RelayProcess, Endpoint, tempfile::TempDir)>,
    /// The peer: `None` for an external URL, why not when it could not be installed or
    /// started.
    webssh: Option<Result<WebSsh, String>>,
}

impl TerminalSetup {
    async fn start(
        settings: &Settings,
        external: Option<&Endpoint>,
        recorded: bool,
    ) -> anyhow::Result<Self> {
        if let Some(endpoint) = external {
            return Ok(Self {
                sshd: None,
                _relay: None,
                endpoint: endpoint.clone(),
                recorded: None,
                webssh: None,
            });
        }
        let sshd = TestSshd::start().await?;
        let host = sshd.host_toml("box")?;
        let relay = RelayProcess::start(settings.relay_bin()?, &relay_config(&host)).await?;
        let token = relay.login("alice").await?;
        let login = SshLogin::of(&sshd)?;
        let recorded = if recorded {
            let dir = tempfile::tempdir()?;
            let sections = format!(
                "{host}\n[recording]\ndirectory = \"{}\"\n",
                dir.path().display()
            );
            let relay =
                RelayProcess::start(settings.relay_bin()?, &relay_config(&sections)).await?;
            let token = relay.login("alice").await?;
            let endpoint = relay.endpoint("/ws/ssh/box", &token);
            Some((relay, endpoint, dir))
        } else {
            None
        };
        let webssh = WebSsh::start(&login).await.map_err(|e| {
            eprintln!("webssh skipped: {e:#}");
            format!("{e:#}")
        });
        Ok(Self {
            endpoint: relay.endpoint("/ws/ssh/box", &token),
            sshd: Some((sshd, login)),
            _relay: Some(relay),
            recorded,
            webssh: Some(webssh),
        })
    }

    /// The peer column of this setup's tables (none for an external URL).
    fn peer(&self) -> Option<report::Peer> {
        self.webssh.as_ref().map(|webssh| report::Peer {
            name: webssh::NAME.to_owned(),
            skipped: webssh.as_ref().err().cloned(),
        })
    }

    /// The running webssh, if any.
    fn webssh(&self) -> Option<&WebSsh> {
        self.webssh.as_ref()?.as_ref().ok()
    }

    /// A fresh webssh session at a prompt; `None` without webssh.
    async fn webssh_terminal(&self) -> anyhow::Result<Option<webssh::WebSshTerminal>> {
        let Some(webssh) = self.webssh() else {
            return Ok(None);
        };
        let mut term = webssh.open().await.context("webssh: opening a session")?;
        load::prepare(&mut term)
            .await
            .context("webssh: at the prompt")?;
        Ok(Some(term))
    }

    /// A fresh terminal through the relay, at a prompt.
    async fn relay_terminal(&self) -> anyhow::Result<RelayTerminal> {
        let mut term = RelayTerminal::open(&self.endpoint).await?;
        load::prepare(&mut term).await?;
        Ok(term)
    }

    /// A fresh `ssh -tt` to our sshd, at a prompt; `None` for an external URL.
    async fn ssh_terminal(&self) -> anyhow::Result<Option<OpenSshTerminal>> {
        let Some((_, login)) = &self.sshd else {
            return Ok(None);
        };
        let mut term = OpenSshTerminal::open(login).await?;
        load::prepare(&mut term).await?;
        Ok(Some(term))
    }
}

/// `bytes` of bulk output through a freshly opened relay terminal, timed from a prompt;
/// then the session is ended.
async fn bulk_then_close(mut term: RelayTerminal, bytes: u64) -> anyhow::Result<Bulk> {
    load::prepare(&mut term).await?;
    let bulk = load::terminal_bulk(&mut term, bytes).await?;
    term.close().await?;
    Ok(bulk)
}

async fn ssh_bulk(settings: &Settings, external: Option<&Endpoint>) -> anyhow::Result<Report> {
    let setup = TerminalSetup::start(settings, external, true).await?;
    let bytes = settings.bulk_bytes();
    let mut report = Report::new(Workload::SshBulk);
    if setup.sshd.is_some() {
        report.limit = Some(
            "the OpenSSH client to the same sshd, same command: `ssh -tt` (a PTY, like the \
             relay's terminals) and, second row, `ssh -T` (no PTY: the SSH transport alone)"
                .into(),
        );
    }
    report.peer = setup.peer();
    for run in 0..settings.runs {
        let via_relay = async {
            bulk_then_close(RelayTerminal::open(&setup.endpoint).await?, bytes)
                .await
                .context("through the relay")
        };
        let via_ssh = async {
            match setup.ssh_terminal().await.context("ssh -tt")? {
                Some(mut term) => Ok(Some(
                    load::terminal_bulk(&mut term, bytes)
                        .await
                        .context("ssh -tt")?,
                )),
                None => Ok(None),
            }
        };
        // The browser app's mode: the relay keeps every unacknowledged byte and pauses the
        // program when a window's worth is unacknowledged. Measured against the classic mode
        // in the same run, it is what exact resume costs.
        let via_flow = async {
            bulk_then_close(RelayTerminal::open_with_flow(&setup.endpoint).await?, bytes).await
        };
        let relay_modes = alternate(run / 2, via_relay, via_flow);
        let ((relay, flow), ssh): ((Bulk, Bulk), Option<Bulk>) =
            alternate(run, relay_modes, via_ssh).await?;
        let raw = match &setup.sshd {
            Some((_, login)) => {
                let mut term = OpenSshTerminal::open_without_pty(login).await?;
                load::prepare(&mut term).await?;
                Some(load::terminal_bulk(&mut term, bytes).await?)
            }
            None => None,
        };
        let peer = match setup.webssh_terminal().await? {
            Some(mut term) => {
                let bulk = load::terminal_bulk(&mut term, bytes)
                    .await
                    .context("webssh: bulk output")?;
                term.close().await?;
                Some(bulk)
            }
            None => None,
        };
        progress(
            Workload::SshBulk,
            run,
            settings,
            format!(
                "relay {:.1} MB/s, with flow=1 {:.1} MB/s, ssh -tt {}, ssh -T (no PTY) {}, \
                 webssh {}",
                relay.mb_per_s(),
                flow.mb_per_s(),
                ssh.map(|s| format!("{:.1} MB/s", s.mb_per_s()))
                    .unwrap_or_else(|| "—".into()),
                raw.map(|s| format!("{:.1} MB/s", s.mb_per_s()))
                    .unwrap_or_else(|| "—".into()),
                peer.map(|s| format!("{:.1} MB/s", s.mb_per_s()))
                    .unwrap_or_else(|| "—".into())
            ),
        );
        report.record_with_peer(
            "throughput",
            "MB/s",
            relay.mb_per_s(),
            ssh.map(|s| s.mb_per_s()),
            peer.map(|s| s.mb_per_s()),
            Some(Target::RatioAtLeast(0.8)),
        );
        report.record(
            "throughput with flow=1 vs without",
            "MB/s",
            flow.mb_per_s(),
            Some(relay.mb_per_s()),
            Some(Target::RatioAtLeast(0.95)),
        );
        if let Some(raw) = raw {
            report.record(
                "throughput vs ssh -T, no PTY",
                "MB/s",
                relay.mb_per_s(),
                Some(raw.mb_per_s()),
                None,
            );
        }
        // Issue 14: recording costs at most 10% of the throughput.
        if let Some((_, endpoint, _)) = &setup.recorded {
            let recorded = bulk_then_close(RelayTerminal::open(endpoint).await?, bytes).await?;
            progress(
                Workload::SshBulk,
                run,
                settings,
                format!(
                    "relay recording the session {:.1} MB/s",
                    recorded.mb_per_s()
                ),
            );
            report.record(
                "throughput with [recording] vs without",
                "MB/s",
                recorded.mb_per_s(),
                Some(relay.mb_per_s()),
                Some(Target::RatioAtLeast(0.9)),
            );
        }
        report.note(format!(
            "each measurement: `{}` typed at a shell prompt, timed from the keystroke to the \
             marker after the last line ({:.0} MB of terminal output)",
            load::bulk_command(bytes).trim_end(),
            relay.bytes as f64 / 1e6
        ));
        report.runs += 1;
    }
    Ok(report)
}

async fn k8s_exec(settings: &Settings) -> anyhow::Result<Report> {
    let cluster = K8sCluster::start().await?;
    let mut relay_process =
        RelayProcess::start(settings.relay_bin()?, &relay_config(&cluster.relay_toml())).await?;
    let token = relay_process.login("alice").await?;
    let endpoint = relay_process.endpoint(&cluster.relay_path(), &token);
    let client = cluster.client().await?;
    let bytes = settings.bulk_bytes();
    let mut report = Report::new(Workload::K8sExec);
    report.limit = Some(
        "a direct kube-rs client (`Api::<Pod>::exec`, interactive TTY, the relay's shell \
         command and 64 KiB output buffer) to the same emulated API server"
            .into(),
    );
    for run in 0..settings.runs {
        let via_relay =
            async { bulk_then_close(RelayTerminal::open(&endpoint).await?, bytes).await };
        let direct = async {
            let mut term = KubeExecTerminal::open(&client).await?;
            load::prepare(&mut term).await?;
            load::terminal_bulk(&mut term, bytes).await
        };
        let (relay, direct): (Bulk, Bulk) = alternate(run, via_relay, direct).await?;
        progress(
            Workload::K8sExec,
            run,
            settings,
            format!(
                "relay {:.1} MB/s, kube-rs {:.1} MB/s",
                relay.mb_per_s(),
                direct.mb_per_s()
            ),
        );
        report.record(
            "throughput",
            "MB/s",
            relay.mb_per_s(),
            Some(direct.mb_per_s()),
            Some(Target::RatioAtLeast(0.8)),
        );
        let idle_pct = idle_exec_cpu(&mut relay_process, &endpoint, settings.idle_window()).await?;
        progress(
            Workload::K8sExec,
            run,
            settings,
            format!("relay {idle_pct:.3}% of a core with {IDLE_SESSIONS} idle exec sessions"),
        );
        report.record(
            &format!("CPU, {IDLE_SESSIONS} idle exec sessions"),
            "% of one core",
            idle_pct,
            None,
            Some(Target::Below(1.0)),
        );
        report.runs += 1;
    }
    report.note(format!(
        "each measurement: `{}` typed at the pod shell's prompt, timed from the keystroke to the \
         marker after the last line; the emulator (in the bench process) runs the shell on a \
         real PTY on this machine",
        load::bulk_command(bytes).trim_end()
    ));
    report.note(format!(
        "idle CPU: {IDLE_SESSIONS} exec sessions opened through the relay to a shell prompt, \
         then the relay process's utime + stime over a {} s window (as in idle-cpu); the \
         sessions are closed after each run",
        settings.idle_window().as_secs()
    ));
    Ok(report)
}

/// The relay's CPU, in % of one core, while `IDLE_SESSIONS` pod shells sit at a prompt.
async fn idle_exec_cpu(
    relay: &mut RelayProcess,
    endpoint: &Endpoint,
    window: Duration,
) -> anyhow::Result<f64> {
    let terminals = load::open_many(IDLE_SESSIONS, SSH_HANDSHAKES, |_| async {
        let mut term = RelayTerminal::open(endpoint).await?;
        load::prepare(&mut term).await?;
        Ok(term.into_socket())
    })
    .await?;
    let sessions = IdleConnections::hold(terminals);
    let [relay_pct] = cpu_percent_over(window, || Ok([relay.cpu_seconds()?])).await?;
    relay.check_running()?;
    if sessions.closed() > 0 {
        bail!(
            "{} of the {IDLE_SESSIONS} exec sessions closed during the window",
            sessions.closed()
        );
    }
    Ok(relay_pct)
}

/// What `cpu_seconds` (CPU seconds of some processes) grew by over `window`, as % of one
/// core each; the window opens 3 s from now so that the sessions' logins have finished.
async fn cpu_percent_over<const N: usize>(
    window: Duration,
    cpu_seconds: impl Fn() -> anyhow::Result<[f64; N]>,
) -> anyhow::Result<[f64; N]> {
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = cpu_seconds()?;
    let start = Instant::now();
    tokio::time::sleep(window).await;
    let after = cpu_seconds()?;
    let seconds = start.elapsed().as_secs_f64();
    Ok(std::array::from_fn(|i| {
        (after[i] - before[i]) / seconds * 100.0
    }))
}

async fn ssh_echo(settings: &Settings, external: Option<&Endpoint>) -> anyhow::Result<Report> {
    let setup = TerminalSetup::start(settings, external, false).await?;
    let samples = settings.echo_samples();
    let mut report = Report::new(Workload::SshEcho);
    if setup.sshd.is_some() {
        report.limit = Some(
            "the OpenSSH client (`ssh -tt`) to the same sshd, driven over its stdin/stdout pipes"
                .into(),
        );
    }
    report.peer = setup.peer();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for run in 0..settings.runs {
        let via_relay = async {
            let mut term = setup.relay_terminal().await?;
            let times = load::terminal_echo(&mut term, samples).await?;
            term.close().await?;
            Ok(times)
        };
        let via_ssh = async {
            match setup.ssh_terminal().await? {
                Some(mut term) => Ok(Some(load::terminal_echo(&mut term, samples).await?)),
                None => Ok(None),
            }
        };
        let (relay, ssh) = alternate(run, via_relay, via_ssh).await?;
        let peer = match setup.webssh_terminal().await? {
            Some(mut term) => {
                let times = load::terminal_echo(&mut term, samples).await?;
                term.close().await?;
                Some(times)
            }
            None => None,
        };
        let q = |times: &[Duration], q: f64| load::percentile(times, q).map(ms).unwrap_or(0.0);
        let quantiles = |times: &Option<Vec<Duration>>| {
            times
                .as_ref()
                .map(|s| format!("p50 {:.3} ms p99 {:.3} ms", q(s, 0.5), q(s, 0.99)))
                .unwrap_or_else(|| "—".into())
        };
        progress(
            Workload::SshEcho,
            run,
            settings,
            format!(
                "relay p50 {:.3} ms p99 {:.3} ms; ssh {}; webssh {}",
                q(&relay, 0.5),
                q(&relay, 0.99),
                quantiles(&ssh),
                quantiles(&peer)
            ),
        );
        report.record_with_peer(
            "echo p50",
            "ms",
            q(&relay, 0.5),
            ssh.as_ref().map(|s| q(s, 0.5)),
            peer.as_ref().map(|s| q(s, 0.5)),
            None,
        );
        report.record_with_peer(
            "echo p99",
            "ms",
            q(&relay, 0.99),
            ssh.as_ref().map(|s| q(s, 0.99)),
            peer.as_ref().map(|s| q(s, 0.99)),
            Some(Target::AboveLimitAtMost(1.0)),
        );

        // Session open: connect → first output, the median of a few sessions on each side.
        let opens = settings.session_opens();
        let relay_open = session_open(opens, || async {
            let mut term = RelayTerminal::open(&setup.endpoint).await?;
            term.output().await?;
            let at = Instant::now();
            load::prepare(&mut term).await?;
            term.close().await?;
            Ok(at)
        });
        let ssh_open = async {
            match &setup.sshd {
                Some((_, login)) => Ok(Some(
                    session_open(opens, || async {
                        let mut term = OpenSshTerminal::open(login).await?;
                        term.output().await?;
                        let at = Instant::now();
                        load::prepare(&mut term).await?;
                        // Dropped: the ssh process is killed.
                        Ok(at)
                    })
                    .await?,
                )),
                None => Ok(None),
            }
        };
        let (relay_open, ssh_open) = alternate(run, relay_open, ssh_open).await?;
        let peer_open = match setup.webssh() {
            Some(webssh) => Some(
                session_open(opens, || async {
                    let mut term = webssh.open().await?;
                    term.output().await?;
                    let at = Instant::now();
                    load::prepare(&mut term).await?;
                    term.close().await?;
                    Ok(at)
                })
                .await?,
            ),
            None => None,
        };
        let shown = |d: Option<Duration>| {
            d.map(|d| format!("{:.1} ms", ms(d)))
                .unwrap_or_else(|| "—".into())
        };
        progress(
            Workload::SshEcho,
            run,
            settings,
            format!(
                "session open: relay {}, ssh -tt {}, webssh {}",
                shown(Some(relay_open)),
                shown(ssh_open),
                shown(peer_open)
            ),
        );
        report.record_with_peer(
            "session open",
            "ms",
            ms(relay_open),
            ssh_open.map(ms),
            peer_open.map(ms),
            None,
        );
        report.runs += 1;
    }
    report.note(format!(
        "session open: from connecting (the relay's WebSocket; `ssh -tt` started; webssh's \
         login form posted, then its WebSocket) to the first output (the shell's prompt), the \
         median of {} sessions per run on each side",
        settings.session_opens()
    ));
    report.note(format!(
        "{samples} keystrokes per run, one at a time, each timed from sending it to its echo \
         arriving; the remote side runs `cat >/dev/null` after `stty -icanon`, so the PTY \
         echoes each key as it arrives"
    ));
    Ok(report)
}

/// The median over `n` sessions of connect → first output: `open_first_output` opens a
/// session, reads its first output, says when that arrived, and ends the session once its
/// shell has run a command ([`load::prepare`]): a shell killed while its startup files run
/// can leave their locks behind (pyenv's rehash lock made every later shell wait).
async fn session_open<F, Fut>(n: usize, open_first_output: F) -> anyhow::Result<Duration>
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<Instant>>,
{
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let first_output = open_first_output().await?;
        times.push(first_output - start);
    }
    times.sort();
    times
        .get(times.len() / 2)
        .copied()
        .context("no session opened")
}

async fn idle_cpu(settings: &Settings) -> anyhow::Result<Report> {
    let sshd = TestSshd::start().await?;
    let login = SshLogin::of(&sshd)?;
    let config = relay_config(&sshd.host_toml("box")?);
    let window = settings.idle_window();
    let mut report = Report::new(Workload::IdleCpu);
    report.limit = Some(format!(
        "{IDLE_SESSIONS} idle OpenSSH clients (`ssh -tt`, one process each) to the same sshd, \
         their CPU summed over the same window"
    ));
    for run in 0..settings.runs {
        // A fresh relay each run: nothing left over from an earlier one.
        let mut relay = RelayProcess::start(settings.relay_bin()?, &config).await?;
        let token = relay.login("alice").await?;
        // Each session is opened up to its shell's prompt before the next handshakes start:
        // sshd drops connections beyond 10 unauthenticated ones (MaxStartups).
        let endpoint = relay.endpoint("/ws/ssh/box", &token);
        let terminals = load::open_many(IDLE_SESSIONS, SSH_HANDSHAKES, |_| async {
            let mut term = RelayTerminal::open(&endpoint).await?;
            load::prepare(&mut term).await?;
            Ok(term.into_socket())
        })
        .await?;
        let sessions = IdleConnections::hold(terminals);
        let clients = load::open_many(IDLE_SESSIONS, SSH_HANDSHAKES, |_| async {
            let mut term = OpenSshTerminal::open(&login).await?;
            load::prepare(&mut term).await?;
            Ok(term)
        })
        .await?;
        let clients_cpu = || -> anyhow::Result<f64> {
            clients.iter().map(|c| procfs::cpu_seconds(c.pid())).sum()
        };
        let [relay_pct, clients_pct] =
            cpu_percent_over(window, || Ok([relay.cpu_seconds()?, clients_cpu()?])).await?;
        relay.check_running()?;
        if sessions.closed() > 0 {
            bail!(
                "{} of the {IDLE_SESSIONS} terminal sessions closed during the window",
                sessions.closed()
            );
        }
        let rss_mib = relay.rss_kib()? as f64 / 1024.0;
        progress(
            Workload::IdleCpu,
            run,
            settings,
            format!(
                "relay {relay_pct:.3}% of a core, ssh clients {clients_pct:.3}%, relay RSS \
                 {rss_mib:.1} MiB"
            ),
        );
        report.record(
            &format!("CPU, {IDLE_SESSIONS} idle sessions"),
            "% of one core",
            relay_pct,
            Some(clients_pct),
            Some(Target::Below(1.0)),
        );
        report.record(
            &format!("relay RSS with {IDLE_SESSIONS} sessions"),
            "MiB",
            rss_mib,
            None,
            None,
        );
        report.runs += 1;
    }
    report.note(format!(
        "CPU = utime + stime from /proc/<pid>/stat over a {} s window, opened 3 s after the \
         last session was ready; the relay runs as its own process (release build) and pings \
         each WebSocket every 25 s",
        window.as_secs()
    ));
    report.note(format!(
        "CPU time is counted in clock ticks of 10 ms: over this window one tick is {}% of a core",
        crate::report::number(1.0 / window.as_secs_f64())
    ));
    Ok(report)
}

async fn idle_rss(settings: &Settings) -> anyhow::Result<Report> {
    let config = relay_config("");
    let mut report = Report::new(Workload::IdleRss);
    report.limit = Some(format!(
        "a bare tokio + tokio-tungstenite server in its own process holding the same number of \
         idle connections: with the library's default buffers (what warp's own upgrade gives), \
         and with the {} KiB read buffer the relay uses (what an idle WebSocket needs)",
        SMALL_READ_BUFFER / 1024
    ));
    let counts = settings.idle_sockets();
    if counts.last() != Some(&MAX_IDLE_SOCKETS) {
        report.note(format!(
            "{MAX_IDLE_SOCKETS} sockets were not measured: the open-files limit here is {} (a \
             hard limit this process may not raise: it lacks CAP_SYS_RESOURCE), and the relay \
             needs one descriptor per socket; the largest count is {}",
            settings.open_files,
            counts.last().copied().unwrap_or(0)
        ));
    }
    for run in 0..settings.runs {
        for &n in &counts {
            let relay = RelayProcess::start(settings.relay_bin()?, &config).await?;
            let token = relay.login("alice").await?;
            let room = relay.endpoint("/ws/chat/bench", &token);
            let cpu_before = relay.cpu_seconds()?;
            let (relay_per, idle) = per_connection(&room, n, true, || relay.rss_kib()).await?;
            let accept_us = (relay.cpu_seconds()? - cpu_before) * 1e6 / n as f64;
            let idle_cpu = if Some(&n) == counts.last() {
                let window = settings
                    .idle_window()
                    .max(PING_INTERVAL + Duration::from_secs(5));
                let [percent] = cpu_percent_over(window, || Ok([relay.cpu_seconds()?])).await?;
                if idle.closed() > 0 {
                    bail!("{} of {n} connections closed while idle", idle.closed());
                }
                Some((percent, window))
            } else {
                None
            };
            drop(idle);
            drop(relay);
            let mut floors = Vec::new();
            for read_buffer in [None, Some(SMALL_READ_BUFFER)] {
                let floor = FloorServer::start(read_buffer).await?;
                let endpoint = Endpoint::new(floor.url(), None);
                floors.push(
                    per_connection(&endpoint, n, false, || floor.rss_kib())
                        .await?
                        .0,
                );
            }
            progress(
                Workload::IdleRss,
                run,
                settings,
                format!(
                    "{n} connections: relay {relay_per:.1} KiB each, bare server {:.1} KiB \
                     each (default buffers), {:.1} KiB each ({} KiB read buffer)",
                    floors[0],
                    floors[1],
                    SMALL_READ_BUFFER / 1024
                ),
            );
            report.record(
                &format!("{n} idle WebSockets"),
                "KiB each",
                relay_per,
                Some(floors[0]),
                Some(Target::Below(if n == MAX_IDLE_SOCKETS {
                    10.0
                } else {
                    16.0
                })),
            );
            report.record(
                &format!("{n} idle: relay CPU per accepted socket"),
                "µs",
                accept_us,
                None,
                None,
            );
            if let Some((percent, window)) = idle_cpu {
                report.record(
                    &format!("{n} idle: relay CPU while idle (pings, checks)"),
                    "% of a core",
                    percent,
                    None,
                    None,
                );
                report.note(format!(
                    "CPU while idle over {} s with {n} sockets (keepalive pings every {} s, each \
                     with its token and permission re-check)",
                    window.as_secs(),
                    PING_INTERVAL.as_secs()
                ));
            }
            report.record(
                &format!(
                    "{n} idle, limit with a {} KiB read buffer",
                    SMALL_READ_BUFFER / 1024
                ),
                "KiB each",
                relay_per,
                Some(floors[1]),
                None,
            );
        }
        report.runs += 1;
    }
    report.note(
        "each connection is an authenticated member of one in-memory chat room (/ws/chat/bench), \
         which stays open while idle and is answered with its connected and presence frames; a \
         fresh relay process per measurement; (VmRSS after − before) ÷ N, read 2 s after the \
         last connection opened, one connection already open before; the client binds each \
         connection to a source address spread over 127.1.0.0/16 (1,000 per address) so \
         ephemeral ports never run out; CPU per accepted socket: the relay's CPU while the N \
         were opened (handshake, token, join) ÷ N",
    );
    Ok(report)
}

/// Opens one connection, reads resident memory, opens `n` more, reads it again: KiB each,
/// and the `n` connections, still open.
async fn per_connection(
    endpoint: &Endpoint,
    n: usize,
    until_connected: bool,
    rss_kib: impl Fn() -> anyhow::Result<u64>,
) -> anyhow::Result<(f64, IdleConnections)> {
    let _first = load::open_idle(endpoint, 1, 1, until_connected).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib()?;
    let idle = load::open_idle(endpoint, n, WS_HANDSHAKES, until_connected).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib()?;
    if idle.closed() > 0 {
        bail!("{} of {n} connections closed while idle", idle.closed());
    }
    Ok((after.saturating_sub(before) as f64 / n as f64, idle))
}

async fn chat(settings: &Settings, external: Option<&Endpoint>) -> anyhow::Result<Report> {
    let mut report = Report::new(Workload::Chat);
    if let Some(endpoint) = external {
        for run in 0..settings.runs {
            for n in CHAT_SUBSCRIBERS {
                let plan = settings.chat_plan(n);
                let result = chat_fanout(endpoint, None, n, &plan, &mut report).await?;
                record_fanout(
                    &mut report,
                    &format!("{n} subscribers"),
                    &result,
                    None,
                    None,
                    None,
                );
                progress(
                    Workload::Chat,
                    run,
                    settings,
                    format!("{n} subscribers: {}", brief(&result)),
                );
            }
            report.runs += 1;
        }
        report.note("measured against the --url room (its relay's chat rate limit applies)");
        return Ok(report);
    }
    let redis = TestRedis::start().await?;
    let memory_relay = RelayProcess::start(settings.relay_bin()?, &relay_config("")).await?;
    let redis_relay =
        RelayProcess::start(settings.relay_bin()?, &relay_config(&redis.config_toml())).await?;
    let memory_room = memory_relay.endpoint("/ws/chat/bench", &memory_relay.login("alice").await?);
    let redis_room = redis_relay.endpoint("/ws/chat/bench", &redis_relay.login("alice").await?);
    report.limit = Some(
        "raw Redis PUBLISH/SUBSCRIBE (redis crate): one publisher connection awaiting each \
         PUBLISH, one connection per subscriber, same redis-server"
            .into(),
    );
    // The peer, beside the relay's Redis-backed rows: Channels on the same redis-server.
    let peer = ChannelsChat::start(&redis.url()).await.map_err(|e| {
        eprintln!("Django Channels skipped: {e:#}");
        format!("{e:#}")
    });
    report.peer = Some(report::Peer {
        name: channels::NAME.to_owned(),
        skipped: peer.as_ref().err().cloned(),
    });
    for run in 0..settings.runs {
        for n in CHAT_SUBSCRIBERS {
            let plan = settings.chat_plan(n);
            let raw = {
                let url = redis.url();
                let subscribers = load::open_many(n, WS_HANDSHAKES, |_| {
                    RedisSubscriber::open(&url, "opsdeck-bench")
                })
                .await?;
                let mut publisher = RedisPublisher::open(&url, "opsdeck-bench").await?;
                load::fanout(&mut publisher, subscribers, &plan).await?
            };
            let memory =
                chat_fanout(&memory_room, Some(&memory_relay), n, &plan, &mut report).await?;
            let shared =
                chat_fanout(&redis_room, Some(&redis_relay), n, &plan, &mut report).await?;
            let channels = match &peer {
                Ok(peer) if n <= CHAT_PEER_MAX_SUBSCRIBERS => {
                    let url = peer.room_url("bench");
                    let subscribers =
                        load::open_many(n, WS_HANDSHAKES, |_| ChannelsSubscriber::open(&url))
                            .await?;
                    let mut publisher = ChannelsPublisher::open(&url).await?;
                    let result = load::fanout(&mut publisher, subscribers, &plan).await?;
                    if result.lost() > 0 {
                        report.note(format!(
                            "Django Channels lost {} of {} deliveries with {n} subscribers in a \
                             run (not arrived within {} s{})",
                            result.lost(),
                            result.expected,
                            plan.drain.as_secs(),
                            result
                                .failure
                                .as_deref()
                                .map(|f| format!(": {f}"))
                                .unwrap_or_default()
                        ));
                    }
                    Some(result)
                }
                _ => None,
            };
            progress(
                Workload::Chat,
                run,
                settings,
                format!(
                    "{n} subscribers: memory {}; Redis {}; raw Redis {}; Django Channels {}",
                    brief(&memory),
                    brief(&shared),
                    brief(&raw),
                    channels
                        .as_ref()
                        .map(brief)
                        .unwrap_or_else(|| "—".to_owned())
                ),
            );
            for (label, result) in [("in-memory", &memory), ("Redis", &shared)] {
                let targets = match (n, label) {
                    (1_000, "in-memory") => FanoutTargets::IN_MEMORY_AT_1000,
                    (1_000, _) => FanoutTargets::REDIS_AT_1000,
                    _ => FanoutTargets::NONE,
                };
                // The peer's rows: the Redis backend, in the room sizes it is measured at.
                let peer = (label == "Redis" && n <= CHAT_PEER_MAX_SUBSCRIBERS)
                    .then_some(channels.as_ref());
                record_fanout(
                    &mut report,
                    &format!("{n} subs, {label}"),
                    result,
                    Some(&raw),
                    peer,
                    Some(targets),
                );
            }
            if raw.lost() > 0 {
                report.note(format!(
                    "raw Redis lost {} of {} deliveries with {n} subscribers in a run",
                    raw.lost(),
                    raw.expected
                ));
            }
        }
        report.runs += 1;
    }
    let plan = settings.chat_plan(CHAT_SUBSCRIBERS[0]);
    let big = settings.chat_plan(1_000);
    report.note(format!(
        "per room size and run: {} messages one every {} ms ({} every {} ms with 100 \
         subscribers; latency: from publishing to each subscriber's receipt), then a burst of \
         {} (10 subscribers) or {} (100) messages back to back (throughput: deliveries ÷ time \
         from the first burst message to the last delivery); with 1,000 subscribers {} \
         messages one every {} ms (500,000 deliveries a second: the latency target is met at \
         the target rate), then a burst of {}",
        plan.paced,
        plan.interval.as_millis(),
        settings.chat_plan(100).paced,
        settings.chat_plan(100).interval.as_millis(),
        plan.burst,
        settings.chat_plan(100).burst,
        big.paced,
        big.interval.as_millis(),
        big.burst,
    ));
    report.note(
        "lost: deliveries that never arrived; relay CPU per delivery: the relay process's user \
         + system CPU over the whole run (paced and burst) ÷ deliveries; load client CPU per \
         delivery: the same for the bench process (publisher and subscribers), which shares \
         the machine's cores with the relay",
    );
    if peer.is_ok() {
        report.note(format!(
            "peer: the same plan through daphne to a Channels consumer per subscriber, each \
             message sent by one more member of the room and broadcast with group_send over \
             channels_redis (its default settings: 100 messages per channel, then dropped), on \
             the same redis-server; beside the relay's Redis rows, up to \
             {CHAT_PEER_MAX_SUBSCRIBERS} subscribers"
        ));
    }
    Ok(report)
}

/// Subscribers and a publisher in a relay's chat room, then [`load::fanout`].
async fn chat_fanout(
    room: &Endpoint,
    relay: Option<&RelayProcess>,
    n: usize,
    plan: &FanoutPlan,
    report: &mut Report,
) -> anyhow::Result<ChatRun> {
    let subscribers = load::open_many(n, WS_HANDSHAKES, |_| ChatSubscriber::open(room)).await?;
    let mut publisher = ChatPublisher::open(room).await?;
    let cpu_before = relay.map(RelayProcess::cpu_seconds).transpose()?;
    let client_before = procfs::cpu_seconds(std::process::id())?;
    let result = load::fanout(&mut publisher, subscribers, plan).await?;
    let client_cpu = procfs::cpu_seconds(std::process::id())? - client_before;
    let per_delivery_us = |cpu: f64| cpu * 1e6 / result.delivered.max(1) as f64;
    let cpu_per_delivery_us = match (relay, cpu_before) {
        (Some(relay), Some(before)) if result.delivered > 0 => {
            Some(per_delivery_us(relay.cpu_seconds()? - before))
        }
        _ => None,
    };
    let client_cpu_per_delivery_us = (result.delivered > 0).then(|| per_delivery_us(client_cpu));
    let (refused, reason) = publisher.refusals();
    if refused > 0 {
        report.note(format!(
            "the relay refused {refused} messages: {}",
            reason.unwrap_or_default()
        ));
    }
    if result.lost() > 0 {
        report.note(format!(
            "{} of {} deliveries did not arrive within {} s in a run with {n} subscribers{}",
            result.lost(),
            result.expected,
            plan.drain.as_secs(),
            result
                .failure
                .as_deref()
                .map(|f| format!(" ({f})"))
                .unwrap_or_default()
        ));
    }
    Ok(ChatRun {
        fanout: result,
        cpu_per_delivery_us,
        client_cpu_per_delivery_us,
    })
}

/// A fan-out through a relay, and the relay's CPU per delivery (when it was measured) and
/// the load client's (this process: the publisher and every subscriber).
struct ChatRun {
    fanout: Fanout,
    cpu_per_delivery_us: Option<f64>,
    client_cpu_per_delivery_us: Option<f64>,
}

impl std::ops::Deref for ChatRun {
    type Target = Fanout;
    fn deref(&self) -> &Fanout {
        &self.fanout
    }
}

/// The targets of a room size's figures (issue 18: one room × 1,000 subscribers).
#[derive(Clone, Copy)]
struct FanoutTargets {
    delivered: Option<Target>,
    p99_ms: Option<Target>,
    lost: Option<Target>,
}

impl FanoutTargets {
    const NONE: Self = Self {
        delivered: None,
        p99_ms: None,
        lost: None,
    };
    const IN_MEMORY_AT_1000: Self = Self {
        delivered: Some(Target::AtLeast(500_000.0)),
        p99_ms: Some(Target::Below(50.0)),
        lost: Some(Target::AtMost(0.0)),
    };
    const REDIS_AT_1000: Self = Self {
        delivered: Some(Target::RatioAtLeast(1.5)),
        p99_ms: None,
        lost: Some(Target::AtMost(0.0)),
    };
}

fn record_fanout(
    report: &mut Report,
    label: &str,
    result: &ChatRun,
    limit: Option<&Fanout>,
    peer: Option<Option<&Fanout>>,
    targets: Option<FanoutTargets>,
) {
    let targets = targets.unwrap_or(FanoutTargets::NONE);
    // On the peer's rows (`peer` is `Some`: its run, or `None` when it was not measured),
    // each measure it does too is recorded with its value.
    let peer_row = peer.is_some();
    let peer = peer.flatten();
    let record = |report: &mut Report,
                  measure: String,
                  unit: &'static str,
                  opsdeck: f64,
                  limit: Option<f64>,
                  peer: Option<f64>,
                  target: Option<Target>| {
        if peer_row {
            report.record_with_peer(&measure, unit, opsdeck, limit, peer, target);
        } else {
            report.record(&measure, unit, opsdeck, limit, target);
        }
    };
    let ms = |r: &Fanout, q: f64| {
        load::percentile(&r.latencies, q)
            .map(|d| d.as_secs_f64() * 1e3)
            .unwrap_or(0.0)
    };
    record(
        report,
        format!("{label}: delivered"),
        "msg/s",
        result.delivered_per_s(),
        limit.map(Fanout::delivered_per_s),
        peer.map(Fanout::delivered_per_s),
        targets.delivered,
    );
    record(
        report,
        format!("{label}: lost"),
        "msgs",
        result.lost() as f64,
        limit.map(|l| l.lost() as f64),
        peer.map(|p| p.lost() as f64),
        targets.lost,
    );
    if let Some(us) = result.cpu_per_delivery_us {
        report.record(
            &format!("{label}: relay CPU per delivery"),
            "µs",
            us,
            None,
            None,
        );
    }
    if let Some(us) = result.client_cpu_per_delivery_us {
        report.record(
            &format!("{label}: load client CPU per delivery"),
            "µs",
            us,
            None,
            None,
        );
    }
    record(
        report,
        format!("{label}: latency p50"),
        "ms",
        ms(result, 0.5),
        limit.map(|l| ms(l, 0.5)),
        peer.map(|p| ms(p, 0.5)),
        None,
    );
    record(
        report,
        format!("{label}: latency p99"),
        "ms",
        ms(result, 0.99),
        limit.map(|l| ms(l, 0.99)),
        peer.map(|p| ms(p, 0.99)),
        targets.p99_ms,
    );
}

fn brief(result: &Fanout) -> String {
    let ms = |q: f64| {
        load::percentile(&result.latencies, q)
            .map(|d| d.as_secs_f64() * 1e3)
            .unwrap_or(0.0)
    };
    let rate = if result.burst_delivered > 0 {
        format!("{:.0} msg/s, ", result.delivered_per_s())
    } else {
        String::new()
    };
    format!(
        "{rate}p50 {:.2} ms, p99 {:.2} ms{}",
        ms(0.5),
        ms(0.99),
        if result.lost() > 0 {
            format!(", {} lost", result.lost())
        } else {
            String::new()
        }
    )
}

async fn tail(settings: &Settings) -> anyhow::Result<Report> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench.log");
    std::fs::write(&path, "")?;
    let relay = RelayProcess::start(
        settings.relay_bin()?,
        &relay_config(&format!(
            "[[files]]\nid = \"bench\"\npath = \"{}\"\n",
            path.display()
        )),
    )
    .await?;
    let endpoint = relay.endpoint("/ws/tail/bench", &relay.login("alice").await?);
    let plan = settings.tail_plan();
    let mut report = Report::new(Workload::Tail);
    report.limit = Some(
        "GNU `tail -n0 -F` (inotify) on the same file, one process per viewer, lines timed as \
         they leave its stdout"
            .into(),
    );
    let ms = |r: &Fanout, q: f64| {
        load::percentile(&r.latencies, q)
            .map(|d| d.as_secs_f64() * 1e3)
            .unwrap_or(0.0)
    };
    for run in 0..settings.runs {
        for n in TAIL_VIEWERS {
            let mut appender = FileAppender::open(&path)?;
            let via_relay = async {
                let viewers =
                    load::open_many(n, WS_HANDSHAKES, |_| TailViewer::open(&endpoint)).await?;
                load::fanout(&mut appender, viewers, &plan).await
            };
            let relay_result = via_relay.await?;
            let followers = (0..n)
                .map(|_| TailFollower::spawn(&path))
                .collect::<anyhow::Result<Vec<_>>>()?;
            // tail opens the file and sets its inotify watch right after it starts.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let limit_result = load::fanout(&mut appender, followers, &plan).await?;
            progress(
                Workload::Tail,
                run,
                settings,
                format!(
                    "{n} viewer(s): relay {}; tail -F {}",
                    brief(&relay_result),
                    brief(&limit_result)
                ),
            );
            let label = if n == 1 {
                "1 viewer".to_owned()
            } else {
                format!("{n} viewers")
            };
            for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
                report.record(
                    &format!("{label}: latency {name}"),
                    "ms",
                    ms(&relay_result, q),
                    Some(ms(&limit_result, q)),
                    None,
                );
            }
            for (who, r) in [("relay", &relay_result), ("tail -F", &limit_result)] {
                if r.lost() > 0 {
                    report.note(format!(
                        "{who} lost {} of {} lines with {n} viewer(s) in a run",
                        r.lost(),
                        r.expected
                    ));
                }
            }
        }
        report.runs += 1;
    }
    report.note(format!(
        "{} lines per run, one every {} ms, each one write(2) of the line; latency from the \
         write to each viewer receiving the line",
        plan.paced,
        plan.interval.as_millis()
    ));
    Ok(report)
}

/// Files (issue 16): upload and download through the relay's SFTP endpoints beside
/// OpenSSH's `sftp` to the same sshd, alternating which goes first; then the relay's
/// memory while one large file streams through it.
async fn files(settings: &Settings) -> anyhow::Result<Report> {
    let sshd = TestSshd::start().await?;
    let login = SshLogin::of(&sshd)?;
    let sections = format!(
        "{}
[[grants]]
groups = [\"ops\"]
ssh = [\"box\"]
file_access = \"write\"
\
         [file_transfers]
max_upload_bytes = {}
",
        sshd.host_toml("box")?,
        1u64 << 40
    );
    let relay = RelayProcess::start(settings.relay_bin()?, &relay_config(&sections)).await?;
    let token = relay.login("alice").await?;
    let base = format!("http://{}/api/files/ssh/box", relay.addr);
    let http = reqwest::Client::new();
    let url = |what: &str, path: &std::path::Path| {
        let query = common::files::PathQuery::new(path.as_os_str().as_encoded_bytes().to_vec());
        format!("{base}/{what}?{}", query.to_query())
    };
    let dir = tempfile::tempdir()?;
    let bytes = settings.transfer_bytes();
    let source = dir.path().join("source.bin");
    // Incompressible bytes (SSH may compress), written once.
    let block: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    {
        let mut file = std::fs::File::create(&source)?;
        for _ in 0..bytes >> 20 {
            std::io::Write::write_all(&mut file, &block)?;
        }
    }
    let mb_per_s = |elapsed: Duration| bytes as f64 / 1e6 / elapsed.as_secs_f64();
    let received = |path: &std::path::Path| -> anyhow::Result<()> {
        let got = std::fs::metadata(path)?.len();
        anyhow::ensure!(
            got == bytes,
            "{} holds {got} bytes of {bytes}",
            path.display()
        );
        Ok(())
    };

    // One `sftp` transfer (`put` or `get`) from `from` to `to`, as MB/s once `to` is whole.
    let sftp_rate = |verb: &'static str, from: &std::path::Path, to: &std::path::Path| {
        let (login, from, to) = (&login, from.to_owned(), to.to_owned());
        async move {
            let start = Instant::now();
            openssh::sftp(
                login,
                &format!("{verb} {} {}\n", from.display(), to.display()),
            )
            .await?;
            let elapsed = start.elapsed();
            received(&to)?;
            Ok(mb_per_s(elapsed))
        }
    };
    let mut report = Report::new(Workload::Files);
    report.limit = Some(
        "OpenSSH's `sftp` client to the same sshd, the same file, one `put` or `get` per \
         transfer (its login included, as the relay's request includes its own)"
            .into(),
    );
    for run in 0..settings.runs {
        let body = std::fs::read(&source)?;
        let up_relay = dir.path().join(format!("up-relay-{run}.bin"));
        let up_sftp = dir.path().join(format!("up-sftp-{run}.bin"));
        let via_relay = async {
            let start = Instant::now();
            let answer = http
                .put(url("file", &up_relay))
                .bearer_auth(&token)
                .body(body)
                .send()
                .await?;
            anyhow::ensure!(answer.status().is_success(), "upload: {}", answer.status());
            let elapsed = start.elapsed();
            received(&up_relay)?;
            Ok(mb_per_s(elapsed))
        };
        let via_sftp = sftp_rate("put", &source, &up_sftp);
        let (up, up_limit) = alternate(run, via_relay, via_sftp).await?;
        std::fs::remove_file(&up_relay)?;
        std::fs::remove_file(&up_sftp)?;

        let down_sftp = dir.path().join(format!("down-sftp-{run}.bin"));
        let via_relay = async {
            let start = Instant::now();
            let got = download(&http, &url("file", &source), &token, || Ok(())).await?;
            let elapsed = start.elapsed();
            anyhow::ensure!(got == bytes, "downloaded {got} bytes of {bytes}");
            Ok(mb_per_s(elapsed))
        };
        let via_sftp = sftp_rate("get", &source, &down_sftp);
        let (down, down_limit) = alternate(run, via_relay, via_sftp).await?;
        std::fs::remove_file(&down_sftp)?;

        // A large file through the relay while its memory is read every 50 ms.
        let large = settings.large_download_bytes();
        let large_path = dir.path().join("large.bin");
        std::fs::File::create(&large_path)?.set_len(large)?;
        let before = relay.rss_kib()?;
        let mut peak = before;
        let got = download(&http, &url("file", &large_path), &token, || {
            peak = peak.max(relay.rss_kib()?);
            Ok(())
        })
        .await?;
        anyhow::ensure!(got == large, "downloaded {got} bytes of {large}");
        std::fs::remove_file(&large_path)?;
        let growth = (peak.saturating_sub(before)) as f64 / 1024.0;

        progress(
            Workload::Files,
            run,
            settings,
            format!(
                "upload relay {up:.0} MB/s, sftp {up_limit:.0} MB/s; download relay {down:.0} MB/s, \
                 sftp {down_limit:.0} MB/s; relay RSS +{growth:.1} MiB during {} MiB",
                large >> 20
            ),
        );
        report.record(
            "upload",
            "MB/s",
            up,
            Some(up_limit),
            Some(Target::RatioAtLeast(0.5)),
        );
        report.record(
            "download",
            "MB/s",
            down,
            Some(down_limit),
            Some(Target::RatioAtLeast(0.5)),
        );
        report.record(
            &format!("relay RSS growth during a {} MiB download", large >> 20),
            "MiB",
            growth,
            None,
            Some(Target::AtMost(64.0)),
        );
        report.runs += 1;
    }
    report.note(format!(
        "uploads and downloads of {} MiB; the relay streams each in 32 KiB chunks with no \
         rate bound (`file_transfers.bytes_per_second = 0`); the large download's file is \
         sparse (zeros on the wire, as fast as the relay can move them)",
        bytes >> 20
    ));
    Ok(report)
}

/// GETs `url`, counting the body's bytes; `each_chunk` runs after every chunk (the memory
/// sampler). Returns the bytes received.
async fn download(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    mut each_chunk: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let mut response = http.get(url).bearer_auth(token).send().await?;
    anyhow::ensure!(
        response.status().is_success(),
        "download: {}",
        response.status()
    );
    let mut got = 0u64;
    let mut sampled = Instant::now();
    while let Some(chunk) = response.chunk().await? {
        got += chunk.len() as u64;
        if sampled.elapsed() >= Duration::from_millis(50) {
            each_chunk()?;
            sampled = Instant::now();
        }
    }
    Ok(got)
}
