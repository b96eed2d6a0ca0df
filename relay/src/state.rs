//! What every request handler shares: the configuration in force, the authenticator, and
//! one hub per backend (terminal sessions, file tails, chat rooms, watched jobs, Kubernetes
//! clients; the ones that use Redis share one link). Built once at start; routes
//! (`server.rs`) and endpoints (`endpoints/`) read it, backends never see it.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use std::sync::atomic::AtomicBool;

use common::audit::{AuditEvent, AuditKind};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::audit::AuditLog;
use crate::auth::Authenticator;
use crate::backend::chat::hub::ChatHub;
use crate::backend::files::TransferSlots;
use crate::backend::job::hub::JobHub;
use crate::backend::k8s::clusters::K8sClusters;
use crate::backend::tail::reader::TailHub;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::oidc::OidcHub;
use crate::recording::Recorder;
use crate::redis_link::RedisLink;
use crate::session::TerminalRegistry;

/// What every request handler shares.
pub struct AppState {
    config: RwLock<Arc<Config>>,
    pub auth: Authenticator,
    /// OpenID Connect providers: sign-ins, RP-initiated and back-channel logouts.
    pub oidc: OidcHub,
    pub terminals: Arc<TerminalRegistry>,
    /// The audit trail (`[audit]`).
    pub audit: Arc<AuditLog>,
    /// Session recordings (`[recording]`).
    pub recorder: Arc<Recorder>,
    pub metrics: Arc<Metrics>,
    /// File tail readers, one per file.
    pub tails: Arc<TailHub>,
    /// Chat rooms.
    pub chat: Arc<ChatHub>,
    /// Watched jobs (with Redis only).
    pub jobs: Option<Arc<JobHub>>,
    /// kube clients of the configured clusters.
    pub k8s: Arc<K8sClusters>,
    /// Running file transfers (`file_transfers.max_transfers`, fixed at start).
    pub transfers: Arc<TransferSlots>,
    /// Cancelled when the relay shuts down; every pump watches it.
    pub shutdown: CancellationToken,
    /// One permit per open WebSocket (`limits.max_connections`).
    pub connections: Arc<Semaphore>,
    /// Set when a drain starts: `/readyz` answers 503 while everything else still works.
    pub draining: AtomicBool,
}

impl AppState {
    pub fn new(config: Config) -> Result<Arc<Self>, StartError> {
        let metrics = Arc::new(Metrics::new());
        let redis = match &config.redis {
            Some(r) => {
                Some(Arc::new(RedisLink::new(&r.url).map_err(|e| {
                    StartError::Config(format!("redis.url: {e}"))
                })?))
            }
            None => None,
        };
        let audit = AuditLog::new(&config.audit, redis.clone(), metrics.clone());
        let auth = Authenticator::new(&config, redis.clone())
            .map_err(|e| StartError::Config(e.to_string()))?;
        let oidc = OidcHub::new(&config, redis.clone()).map_err(StartError::Config)?;
        let terminals = TerminalRegistry::new(
            config.sessions.grace_period,
            config.limits.terminal_buffer_bytes,
            config.limits.max_sessions_per_user,
            metrics.clone(),
        );
        let recorder = Recorder::new(metrics.clone());
        let tails = TailHub::new(metrics.clone());
        let chat = ChatHub::new(&config.chat, redis.clone(), metrics.clone());
        let jobs = redis.map(|link| JobHub::new(link, &config.jobs, metrics.clone()));
        let connections = Arc::new(Semaphore::new(config.limits.max_connections));
        let transfers = TransferSlots::new(config.file_transfers.max_transfers);
        Ok(Arc::new(Self {
            config: RwLock::new(Arc::new(config)),
            auth,
            oidc,
            terminals,
            audit,
            recorder,
            metrics,
            tails,
            chat,
            jobs,
            k8s: Arc::new(K8sClusters::new()),
            transfers,
            shutdown: CancellationToken::new(),
            connections,
            draining: AtomicBool::new(false),
        }))
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Puts a new configuration in force (SIGHUP): grants, targets, users, passwords and
    /// groups. Open streams are checked against it at their next keepalive. A config whose
    /// users or keys do not load changes nothing.
    pub fn reload(&self, config: Config) -> Result<(), StartError> {
        let providers = self.oidc.prepare(&config).map_err(StartError::Config)?;
        self.auth
            .reload(&config)
            .map_err(|e| StartError::Config(e.to_string()))?;
        self.oidc.install(providers);
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
        self.audit
            .record(AuditEvent::new(AuditKind::ConfigReloaded, 0));
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}; is another relay running there?")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}
