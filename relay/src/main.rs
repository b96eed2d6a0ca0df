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
    /// Check the config and exit.
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
            load(cli.config.as_ref())?;
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
        relay::demo::prepare(&config);
        tracing::info!("running on the embedded demo configuration: log in as demo / demo");
    }
    let relay = Relay::start(config).await.context("starting the relay")?;
    wait_for_signals(&relay, cli.config.as_ref()).await;
    tracing::info!("shutting down");
    relay.shutdown();
    relay.stopped().await;
    Ok(())
}

/// Returns on SIGTERM or Ctrl-C; reloads the config on SIGHUP.
async fn wait_for_signals(relay: &Relay, config_path: Option<&PathBuf>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return,
            _ = term.recv() => return,
            _ = hup.recv() => match load(config_path).and_then(|config| Ok(relay.reload(config)?)) {
                Ok(()) => tracing::info!("config reloaded"),
                Err(e) => tracing::error!("config not reloaded: {e:#}"),
            },
        }
    }
}
