//! `opsdeck-relay`: runs the relay, or helps write its config.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use relay::{Config, Relay};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    version,
    about = "Opsdeck relay: terminals, logs and chat for the browser"
)]
struct Cli {
    /// TOML config file; without it the embedded demo configuration is used.
    #[arg(long, env = "OPSDECK_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Override the listen address (e.g. 0.0.0.0:8080).
    #[arg(long, env = "OPSDECK_LISTEN")]
    listen: Option<std::net::SocketAddr>,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Print an argon2 hash of a password read from standard input, for `auth.users`.
    HashPassword,
    /// Check the config (and that the secrets and files it names load) and exit.
    CheckConfig,
}

fn load(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    Ok(match path {
        Some(path) => Config::load(path)?,
        None => Config::embedded_default(),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if cli.log_json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    match cli.command {
        Some(Command::HashPassword) => {
            let mut password = String::new();
            std::io::stdin().read_to_string(&mut password)?;
            let hash = relay::hash_password(password.trim_end_matches(['\r', '\n']))
                .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))?;
            println!("{hash}");
            return Ok(());
        }
        Some(Command::CheckConfig) => {
            let config = load(cli.config.as_ref())?;
            relay::check_credentials(&config)?;
            for warning in config.warnings() {
                println!("warning: {warning}");
            }
            println!("config is valid");
            return Ok(());
        }
        None => {}
    }
    let mut config = load(cli.config.as_ref())?;
    if let Some(listen) = cli.listen {
        config.listen = listen;
    }
    if cli.config.is_none() {
        relay::demo::prepare(&mut config);
        tracing::info!("running on the embedded demo configuration: log in as demo / demo");
    }
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    raise_open_files_limit(&config);
    let drain = config.shutdown.clone();
    let relay = Relay::start(config).await.context("starting the relay")?;
    if wait_for_signals(&relay, cli.config.as_ref()).await == Stop::Drain {
        tracing::info!(?drain, "draining: /readyz answers 503");
        relay.drain();
        let draining = async {
            tokio::time::sleep(drain.drain_delay).await;
            relay.stop_accepting();
            if !relay.terminals_ended(drain.drain_timeout).await {
                tracing::info!("terminal sessions still open after shutdown.drain_timeout");
            }
        };
        tokio::select! {
            () = draining => {}
            () = second_signal() => tracing::info!("second signal: stopping at once"),
        }
    }
    tracing::info!("shutting down");
    relay.shutdown();
    relay.stopped().await;
    Ok(())
}

/// How the relay was asked to stop.
#[derive(PartialEq)]
enum Stop {
    /// SIGTERM (an orchestrator): drain first.
    Drain,
    /// Ctrl-C (a person at a terminal): at once.
    Now,
}

/// Returns on SIGTERM or Ctrl-C; reloads the config on SIGHUP.
async fn wait_for_signals(relay: &Relay, config_path: Option<&PathBuf>) -> Stop {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return Stop::Now;
    };
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Stop::Now,
            _ = term.recv() => return Stop::Drain,
            _ = hup.recv() => match load(config_path).and_then(|config| Ok(relay.reload(config)?)) {
                Ok(()) => tracing::info!("config reloaded"),
                Err(e) => tracing::error!("config not reloaded: {e:#}"),
            },
        }
    }
}

/// A second SIGTERM, or Ctrl-C, during a drain.
async fn second_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Every WebSocket and every pending connection is a file descriptor, and so is each
/// backend's socket: the usual soft limit of 1024 would refuse connections long before
/// `limits.max_connections`. The soft limit is raised to the hard one.
fn raise_open_files_limit(config: &Config) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        if limit.rlim_cur < limit.rlim_max {
            let wanted = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0 {
                limit = wanted;
            }
        }
    }
    // Each terminal holds a browser socket and a backend socket.
    let needed = (config.limits.max_connections + config.limits.max_pending_connections) * 2;
    if (limit.rlim_cur as u128) < needed as u128 {
        tracing::warn!(
            open_files = limit.rlim_cur,
            needed,
            "the open-files limit is below what limits.max_connections needs; raise it (ulimit -n, LimitNOFILE=) or lower the limit"
        );
    }
}
