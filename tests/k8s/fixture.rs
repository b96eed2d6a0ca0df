//! One emulated cluster per test and a relay pointed at it in every way a cluster can be
//! configured.
//!
//! | namespace | pod   | phase     | containers |
//! |-----------|-------|-----------|------------|
//! | dev       | web-1 | Running   | app        |
//! | dev       | multi | Running   | a, b       |
//! | dev       | done  | Succeeded | job        |
//! | prod      | db-1  | Running   | db         |
//!
//! Relay clusters: `main` (a kubeconfig for `opsdeck-relay`, cluster admin), `imp` (a
//! kubeconfig for `impersonator`, who may only impersonate; `impersonate = true`, so the
//! cluster's RBAC decides per Opsdeck user: `alice` may do anything in `dev` only),
//! `certs` (`api_url` + CA + client certificate files for `opsdeck-relay`), `badcreds`
//! (`api_url` + a token the cluster does not know) and `down` (an `api_url` where nothing
//! listens).
//!
//! Opsdeck grants: group `ops` (alice) every namespace of every cluster; bob `main/dev`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use k8s_emulator::{
    AccessRule, ContainerConfig, Emulator, EmulatorConfig, PodConfig, PodPhase, Subject,
};
use opsdeck_tests::client::{EVENT_TIMEOUT, WsClient};
use opsdeck_tests::relay::{TestRelay, users_toml};

pub struct Cluster {
    pub emulator: Emulator,
    pub relay: TestRelay,
    pub dir: tempfile::TempDir,
    /// Bound but not listening: the port of the `down` cluster, refused and kept from
    /// any other service.
    _down: tokio::net::TcpSocket,
}

fn pod(dir: &Path, ns: &str, name: &str, phase: PodPhase, containers: &[&str]) -> PodConfig {
    PodConfig {
        namespace: ns.into(),
        name: name.into(),
        phase,
        labels: Default::default(),
        containers: containers
            .iter()
            .map(|c| ContainerConfig {
                name: c.to_string(),
                image: format!("registry.local/{c}:1.0"),
                log_file: dir.join(format!("{name}-{c}.log")),
                restart_count: 0,
                working_dir: None,
                path: None,
            })
            .collect(),
    }
}

impl Cluster {
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with("").await
    }

    /// As [`Cluster::start`], with `extra` (tables such as `[limits]` or `[keepalive]`) in
    /// the relay config.
    pub async fn start_with(extra: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let p = dir.path();
        let config = EmulatorConfig {
            pods: vec![
                pod(p, "dev", "web-1", PodPhase::Running, &["app"]),
                pod(p, "dev", "multi", PodPhase::Running, &["a", "b"]),
                pod(p, "dev", "done", PodPhase::Succeeded, &["job"]),
                pod(p, "prod", "db-1", PodPhase::Running, &["db"]),
            ],
            namespaces: vec!["empty".into()],
            access: vec![
                AccessRule::cluster_admin(Subject::User("opsdeck-relay".into())),
                AccessRule::impersonator(Subject::User("impersonator".into())),
                AccessRule::namespaces(Subject::User("alice".into()), &["dev"]),
            ],
            ..Default::default()
        };
        let emulator = Emulator::start(config)
            .await
            .context("starting the emulator")?;
        let write = |name: &str, text: &str| -> anyhow::Result<PathBuf> {
            let path = p.join(name);
            std::fs::write(&path, text)?;
            Ok(path)
        };
        let relay_identity = emulator.client_identity("opsdeck-relay", &[])?;
        let main = p.join("kubeconfig-relay");
        emulator.write_kubeconfig(&main, "opsdeck-relay", &[])?;
        let imp = p.join("kubeconfig-impersonator");
        emulator.write_kubeconfig(&imp, "impersonator", &[])?;
        let ca = write("ca.pem", emulator.ca_pem())?;
        let cert = write("relay.crt", &relay_identity.cert_pem)?;
        let key = write("relay.key", &relay_identity.key_pem)?;
        let bad_token = write("bad-token", "not-a-token-the-cluster-knows\n")?;
        let url = emulator.url();
        let down = tokio::net::TcpSocket::new_v4()?;
        down.bind(([127, 0, 0, 1], 0).into())?;
        let down_url = format!("https://{}", down.local_addr()?);
        let clusters = format!(
            r#"
[[k8s_clusters]]
id = "main"
label = "Main"
kubeconfig = "{main}"

[[k8s_clusters]]
id = "imp"
kubeconfig = "{imp}"
impersonate = true

[[k8s_clusters]]
id = "certs"
api_url = "{url}"
ca_file = "{ca}"
client_cert_file = "{cert}"
client_key_file = "{key}"

[[k8s_clusters]]
id = "badcreds"
api_url = "{url}"
ca_file = "{ca}"
token_file = "{bad}"

[[k8s_clusters]]
id = "down"
api_url = "{down_url}"
ca_file = "{ca}"
token_file = "{bad}"
"#,
            main = main.display(),
            imp = imp.display(),
            ca = ca.display(),
            cert = cert.display(),
            key = key.display(),
            bad = bad_token.display(),
        );
        // Keepalive is out of the way here (unless `extra` sets its own): the contract's
        // FAST_PINGS scenario tests it. Pings would not hide a missing event either way:
        // the harness's `next_event` deadline does not restart at a ping.
        let quiet = if extra.contains("[keepalive]") {
            ""
        } else {
            r#"
[keepalive]
ping_interval = "1h"
peer_timeout = "2h"
"#
        };
        let grants = r#"
[[grants]]
groups = ["ops"]
k8s = ["*"]

[[grants]]
users = ["bob"]
k8s = ["main/dev"]
"#;
        let relay = TestRelay::start(&format!(
            "{extra}\n{quiet}\n{}\n{grants}\n{clusters}",
            users_toml()
        ))
        .await?;
        Ok(Self {
            emulator,
            relay,
            dir,
            _down: down,
        })
    }

    /// Appends lines with the timestamps given (`<RFC 3339> <text>`) straight to a
    /// container's log file, as the container runtime would.
    pub fn write_log(&self, pod: &str, container: &str, lines: &[&str]) -> anyhow::Result<()> {
        let path = self.dir.path().join(format!("{pod}-{container}.log"));
        let mut file = std::fs::OpenOptions::new().append(true).open(path)?;
        for line in lines {
            writeln!(file, "{line}")?;
        }
        Ok(())
    }

    /// Opens a WebSocket as alice.
    pub async fn open(&self, path: &str) -> anyhow::Result<WsClient> {
        self.relay.connect("alice", path).await
    }

    /// Waits (bounded) until no exec process is left in the emulator.
    pub async fn wait_for_no_processes(&self) -> anyhow::Result<()> {
        tokio::time::timeout(EVENT_TIMEOUT, self.emulator.wait_for_live_processes(0))
            .await
            .context("the remote processes did not end")
    }

    /// Waits (bounded) until exactly `count` `follow=true` log requests are open in the
    /// emulator.
    pub async fn wait_for_log_follows(&self, count: usize) -> anyhow::Result<()> {
        tokio::time::timeout(EVENT_TIMEOUT, self.emulator.wait_for_open_log_follows(count))
            .await
            .with_context(|| {
                format!(
                    "the API server still has {} log follow(s) open, not {count}, after {EVENT_TIMEOUT:?}",
                    self.emulator.open_log_follows()
                )
            })
    }
}

/// Opens a stream that must be refused; returns the close code and reason.
pub async fn refusal(cluster: &Cluster, user: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let mut client = cluster.relay.connect(user, path).await?;
    let (code, reason, frames) = client.read_until_closed().await?;
    anyhow::ensure!(
        !frames
            .iter()
            .any(|f| matches!(f, common::server::StreamEvent::Connected { .. })),
        "{path} was opened: {frames:?}"
    );
    Ok((code, reason))
}
