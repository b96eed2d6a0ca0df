//! `k8s-emulator`: run the Kubernetes API emulator by hand.
//!
//! ```text
//! k8s-emulator --pods pods.toml --port 6443 --kubeconfig /tmp/kubeconfig --user alice --group dev
//! kubectl --kubeconfig /tmp/kubeconfig get pods -n dev
//! ```

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use k8s_emulator::{Emulator, EmulatorConfig};

/// A small Kubernetes API server emulator (test support).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one; overrides the file's `port`).
    #[arg(long)]
    port: Option<u16>,
    /// Cluster file (JSON or TOML): pods, namespaces, tokens, access rules.
    #[arg(long)]
    pods: Option<PathBuf>,
    /// Write a kubeconfig here for `--user`.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// User name (certificate CN) for the kubeconfig.
    #[arg(long, default_value = "admin")]
    user: String,
    /// Groups (certificate O fields) for the kubeconfig; repeatable.
    #[arg(long = "group")]
    groups: Vec<String>,
    /// Write the CA certificate (PEM) here.
    #[arg(long)]
    ca_out: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let mut config = match &args.pods {
        Some(path) => EmulatorConfig::from_file(path)?,
        None => EmulatorConfig::default(),
    };
    if let Some(port) = args.port {
        config.port = port;
    }
    let emulator = Emulator::start(config).await?;
    println!("Kubernetes emulator at {}", emulator.url());
    if let Some(path) = &args.ca_out {
        std::fs::write(path, emulator.ca_pem())
            .with_context(|| format!("writing {}", path.display()))?;
        println!("CA certificate written to {}", path.display());
    }
    if let Some(path) = &args.kubeconfig {
        let groups: Vec<&str> = args.groups.iter().map(String::as_str).collect();
        emulator
            .write_kubeconfig(path, &args.user, &groups)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("kubeconfig for {} written to {}", args.user, path.display());
    }
    tokio::signal::ctrl_c().await?;
    drop(emulator);
    Ok(())
}
