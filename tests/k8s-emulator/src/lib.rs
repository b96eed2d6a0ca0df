//! A small Kubernetes API server emulator for Opsdeck's tests.
//!
//! No real API server can run on the test machines, so this crate serves the
//! parts of the Kubernetes API the relay's k8s backend uses, speaking the
//! real wire protocols byte for byte, with real local processes behind exec:
//!
//! - HTTPS with a generated CA; client certificates (CN = user, O = groups)
//!   and bearer tokens; 401/403/404 as `metav1.Status` ([`status`], [`auth`]);
//! - impersonation headers and a tiny RBAC table ([`config::AccessRule`]);
//! - namespaces and pods as JSON k8s-openapi reads, with label/field
//!   selectors and watches for `kube::runtime::watcher` ([`pods`],
//!   [`selector`], [`listwatch`]);
//! - `pods/exec` over the `v5.channel.k8s.io` / `v4.channel.k8s.io`
//!   WebSocket protocol, running the requested command on a PTY or pipes
//!   ([`exec`], [`process`]);
//! - `pods/log` with `follow`, `tailLines`, `timestamps`, `sinceTime`,
//!   `sinceSeconds`, `limitBytes`, `previous` over a log file on disk
//!   ([`logs`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use k8s_emulator::{AccessRule, ContainerConfig, Emulator, EmulatorConfig, PodConfig, Subject};
//! let config = EmulatorConfig {
//!     pods: vec![PodConfig {
//!         namespace: "dev".into(),
//!         name: "web-1".into(),
//!         phase: Default::default(),
//!         labels: Default::default(),
//!         containers: vec![ContainerConfig {
//!             name: "app".into(),
//!             image: "nginx".into(),
//!             log_file: "/tmp/web-1-app.log".into(),
//!             restart_count: 0,
//!             working_dir: None,
//!             path: None,
//!         }],
//!     }],
//!     access: vec![AccessRule::namespaces(Subject::User("alice".into()), &["dev"])],
//!     ..Default::default()
//! };
//! let emulator = Emulator::start(config).await?;
//! emulator.write_kubeconfig("/tmp/kubeconfig", "alice", &[])?;
//! emulator.append_log("dev", "web-1", "app", "hello")?;
//! # Ok(()) }
//! ```
//!
//! See the crate's README for the protocol facts encoded and their sources.

pub mod auth;
pub mod config;
pub mod discovery;
pub mod exec;
pub mod kubeconfig;
pub mod listwatch;
pub mod logs;
mod logwatch;
pub mod pods;
pub mod process;
pub mod query;
pub mod selector;
pub mod server;
pub mod status;
pub mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

pub use config::{
    AccessRule, ContainerConfig, EmulatorConfig, PodConfig, PodPhase, Subject, TokenConfig,
};
pub use server::AuditEvent;
pub use status::Status;
pub use tls::ClientIdentity;

use crate::pods::Cluster;
use crate::process::ProcessRegistry;
use crate::server::AppState;
use crate::tls::Authority;

/// Errors from starting or driving the emulator.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// File or socket error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Certificate or TLS setup error.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// A hook named something the cluster does not have.
    #[error("{}", .0.message)]
    Api(Status),
}

impl From<Status> for EmulatorError {
    fn from(status: Status) -> Self {
        EmulatorError::Api(status)
    }
}

/// A running emulator. Dropping it stops the server and kills every process
/// exec started.
pub struct Emulator {
    state: Arc<AppState>,
    authority: Authority,
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

impl Emulator {
    /// Starts serving HTTPS on `127.0.0.1:<config.port>` (0 = any free port)
    /// on the current Tokio runtime.
    pub async fn start(config: EmulatorConfig) -> Result<Self, EmulatorError> {
        let authority = Authority::generate()?;
        let acceptor = TlsAcceptor::from(Arc::new(authority.server_config()?));
        let listener = TcpListener::bind(("127.0.0.1", config.port)).await?;
        let addr = listener.local_addr()?;
        let cluster = Arc::new(Cluster::new(&config)?);
        let (shutdown, shutdown_rx) = watch::channel(false);
        logwatch::spawn(cluster.log_files(), shutdown_rx.clone());
        let state = Arc::new(AppState {
            cluster,
            tokens: RwLock::new(config.tokens),
            rules: RwLock::new(config.access),
            processes: ProcessRegistry::new(),
            open_follows: Default::default(),
            audit: Mutex::new(Default::default()),
            shutdown: shutdown_rx.clone(),
            address: addr.to_string(),
        });
        let server = tokio::spawn(server::serve(
            listener,
            acceptor,
            state.clone(),
            shutdown_rx,
        ));
        tracing::info!(%addr, "Kubernetes emulator listening");
        Ok(Emulator {
            state,
            authority,
            addr,
            shutdown,
            server,
        })
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CA certificate (PEM) that signed the serving and client
    /// certificates.
    pub fn ca_pem(&self) -> &str {
        self.authority.ca_pem()
    }

    /// The CA certificate, DER.
    pub fn ca_der(&self) -> &[u8] {
        self.authority.ca_der()
    }

    /// Issues a client certificate for `user` with `groups` as O fields.
    pub fn client_identity(
        &self,
        user: &str,
        groups: &[&str],
    ) -> Result<ClientIdentity, EmulatorError> {
        Ok(self.authority.client_identity(user, groups)?)
    }

    /// A kubeconfig (YAML) authenticating `user` (with `groups`) by client
    /// certificate, with the CA embedded.
    pub fn kubeconfig(&self, user: &str, groups: &[&str]) -> Result<String, EmulatorError> {
        let identity = self.client_identity(user, groups)?;
        Ok(kubeconfig::render(
            &self.url(),
            self.ca_pem(),
            user,
            kubeconfig::Credentials::Certificate(&identity),
        ))
    }

    /// Writes [`Emulator::kubeconfig`] to `path`.
    pub fn write_kubeconfig(
        &self,
        path: impl AsRef<Path>,
        user: &str,
        groups: &[&str],
    ) -> Result<(), EmulatorError> {
        std::fs::write(path, self.kubeconfig(user, groups)?)?;
        Ok(())
    }

    /// Writes a kubeconfig that authenticates with a bearer token.
    pub fn write_token_kubeconfig(
        &self,
        path: impl AsRef<Path>,
        token: &str,
    ) -> Result<(), EmulatorError> {
        let text = kubeconfig::render(
            &self.url(),
            self.ca_pem(),
            "token-user",
            kubeconfig::Credentials::Token(token),
        );
        std::fs::write(path, text)?;
        Ok(())
    }

    /// The log file of a container.
    pub fn log_path(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Result<PathBuf, EmulatorError> {
        Ok(self
            .state
            .cluster
            .container(namespace, pod, Some(container))?
            .log_file)
    }

    /// Appends a line (or several, split on `\n`) to a container's log,
    /// stamped with the current time, and wakes follow streams at once.
    pub fn append_log(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        text: impl AsRef<[u8]>,
    ) -> Result<(), EmulatorError> {
        let target = self
            .state
            .cluster
            .container(namespace, pod, Some(container))?;
        logs::append_line(&target.log_file, text.as_ref())?;
        target.signals.notify_changed();
        Ok(())
    }

    /// Ends every open `follow=true` log stream of a container, as an API
    /// server timeout or a log rotation would. Returns how many streams were
    /// listening.
    pub fn end_log_follows(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Result<usize, EmulatorError> {
        Ok(self
            .state
            .cluster
            .signals(namespace, pod, container)?
            .cut_follows())
    }

    /// Restarts a container: `restartCount` + 1, the current log becomes the
    /// `previous=true` log, a new empty log starts, follow streams end.
    /// Returns the new restart count.
    pub fn restart_container(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Result<u32, EmulatorError> {
        Ok(self.state.cluster.restart(namespace, pod, container)?)
    }

    /// Changes a pod's phase (a non-Running pod refuses exec and ends log
    /// follows once their file is drained).
    pub fn set_pod_phase(
        &self,
        namespace: &str,
        pod: &str,
        phase: PodPhase,
    ) -> Result<(), EmulatorError> {
        Ok(self.state.cluster.set_phase(namespace, pod, phase)?)
    }

    /// Replaces the authorization rules.
    pub fn set_access(&self, rules: Vec<AccessRule>) {
        *self.state.rules.write().unwrap_or_else(|e| e.into_inner()) = rules;
    }

    /// Adds a bearer token.
    pub fn add_token(&self, token: TokenConfig) {
        self.state
            .tokens
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(token);
    }

    /// Number of exec process groups still alive.
    pub fn live_processes(&self) -> usize {
        self.state.processes.live()
    }

    /// Waits until exactly `count` exec process groups are alive.
    pub async fn wait_for_live_processes(&self, count: usize) {
        let mut live = self.state.processes.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = live.wait_for(|n| *n == count).await;
    }

    /// Number of `follow=true` log requests still open: the response is
    /// streaming to a connected client. Drops when the stream ends or the
    /// client goes (closing the connection cancels the request).
    pub fn open_log_follows(&self) -> usize {
        self.state.open_follows.count()
    }

    /// Waits until exactly `count` `follow=true` log requests are open.
    pub async fn wait_for_open_log_follows(&self, count: usize) {
        let mut open = self.state.open_follows.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = open.wait_for(|n| *n == count).await;
    }

    /// The requests handled so far, oldest first (the most recent
    /// [`server::AUDIT_LIMIT`]).
    pub fn audit_log(&self) -> Vec<AuditEvent> {
        self.state
            .audit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Stops the emulator (same as dropping it).
    pub fn stop(self) {}
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        self.server.abort();
        self.state.processes.kill_all();
    }
}
