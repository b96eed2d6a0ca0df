//! kube clients, built once per cluster and kept in `AppState`.
//!
//! A cluster's base `kube::Config` is loaded on first use (a missing kubeconfig or service
//! account then refuses that request with the reason, and the next request tries again)
//! and kept until a config reload changes the cluster's entry. Without impersonation one
//! client serves everyone; with it, each user (name and groups) gets a client whose
//! requests carry their `Impersonate-User` / `Impersonate-Group` headers, kept in a small
//! bounded cache.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::sync::OnceCell;

use super::error::{K8sError, with_sources};
use crate::auth::Principal;
use crate::config::{ClusterSource, ExplicitCredentials, K8sCluster};

/// Impersonating clients kept per cluster; the least recently used goes first.
const MAX_USER_CLIENTS: usize = 256;

/// Every configured cluster's clients.
pub struct K8sClusters {
    clusters: Mutex<HashMap<String, Arc<ClusterClients>>>,
}

struct ClusterClients {
    settings: K8sCluster,
    base: OnceCell<kube::Config>,
    shared: OnceCell<kube::Client>,
    users: Mutex<UserClients>,
}

#[derive(Default)]
struct UserClients {
    clients: HashMap<(String, Vec<String>), (kube::Client, u64)>,
    clock: u64,
}

impl Default for K8sClusters {
    fn default() -> Self {
        Self::new()
    }
}

impl K8sClusters {
    pub fn new() -> Self {
        // kube builds its TLS config from the process-wide rustls provider; another part
        // of the process may have installed one already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self {
            clusters: Mutex::new(HashMap::new()),
        }
    }

    fn clusters(&self) -> MutexGuard<'_, HashMap<String, Arc<ClusterClients>>> {
        self.clusters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A client for `who` on the cluster `settings` describes (its config entry in force;
    /// a changed entry gets new clients).
    pub async fn client(
        &self,
        settings: &K8sCluster,
        who: &Principal,
    ) -> Result<kube::Client, K8sError> {
        let cluster = settings.id.as_str();
        let entry = {
            let mut clusters = self.clusters();
            match clusters.get(cluster) {
                Some(entry) if entry.settings == *settings => entry.clone(),
                _ => {
                    let entry = Arc::new(ClusterClients {
                        settings: settings.clone(),
                        base: OnceCell::new(),
                        shared: OnceCell::new(),
                        users: Mutex::default(),
                    });
                    clusters.insert(cluster.to_owned(), entry.clone());
                    entry
                }
            }
        };
        entry.client(who).await
    }
}

impl ClusterClients {
    async fn client(&self, who: &Principal) -> Result<kube::Client, K8sError> {
        let base = self.base.get_or_try_init(|| load(&self.settings)).await?;
        if !self.settings.impersonate {
            let client = self
                .shared
                .get_or_try_init(|| async { build(&self.settings.id, base.clone()) })
                .await?;
            return Ok(client.clone());
        }
        // Kubernetes' own groups (system:masters, system:nodes, ...) are never asserted on
        // a user's behalf, whatever a config or token names.
        let mut groups: Vec<String> = who
            .groups
            .iter()
            .filter(|g| !g.starts_with("system:"))
            .cloned()
            .collect();
        groups.sort();
        let key = (who.username.clone(), groups);
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        users.clock += 1;
        let now = users.clock;
        if let Some((client, used)) = users.clients.get_mut(&key) {
            *used = now;
            return Ok(client.clone());
        }
        let mut config = base.clone();
        config.auth_info.impersonate = Some(key.0.clone());
        config.auth_info.impersonate_groups = (!key.1.is_empty()).then(|| key.1.clone());
        let client = build(&self.settings.id, config)?;
        if users.clients.len() >= MAX_USER_CLIENTS {
            let oldest = users
                .clients
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(key, _)| key.clone());
            if let Some(oldest) = oldest {
                users.clients.remove(&oldest);
            }
        }
        users.clients.insert(key, (client.clone(), now));
        Ok(client)
    }
}

fn build(cluster: &str, config: kube::Config) -> Result<kube::Client, K8sError> {
    kube::Client::try_from(config).map_err(|e| K8sError::Credentials {
        cluster: cluster.to_owned(),
        reason: with_sources(&e),
    })
}

/// Loads the cluster's API server address and the relay's credentials for it.
async fn load(settings: &K8sCluster) -> Result<kube::Config, K8sError> {
    let fail = |reason: String| K8sError::Credentials {
        cluster: settings.id.clone(),
        reason,
    };
    let mut config = match settings.source() {
        ClusterSource::InCluster => kube::Config::incluster()
            .map_err(|e| fail(format!("the in-cluster service account is not usable: {e}")))?,
        ClusterSource::Kubeconfig { path, context } => {
            let options = KubeConfigOptions {
                context: context.map(str::to_owned),
                ..KubeConfigOptions::default()
            };
            let described = |e: &dyn std::error::Error| {
                let file = path.map_or_else(
                    || "the kubeconfig from KUBECONFIG or ~/.kube/config".to_owned(),
                    |p| format!("kubeconfig {}", p.display()),
                );
                fail(format!("{file}: {}", with_sources(e)))
            };
            match path {
                Some(path) => {
                    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| described(&e))?;
                    kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                        .await
                        .map_err(|e| described(&e))?
                }
                None => kube::Config::from_kubeconfig(&options)
                    .await
                    .map_err(|e| described(&e))?,
            }
        }
        ClusterSource::Explicit {
            api_url,
            ca_file,
            credentials,
        } => {
            let url = api_url
                .parse()
                .map_err(|e| fail(format!("api_url {api_url:?} is not a URL: {e}")))?;
            let mut config = kube::Config::new(url);
            config.root_cert_file = ca_file.map(Path::to_owned);
            let text = |path: &Path| Some(path.display().to_string());
            match credentials {
                ExplicitCredentials::Certificate { cert, key } => {
                    config.auth_info.client_certificate = text(cert);
                    config.auth_info.client_key = text(key);
                }
                ExplicitCredentials::Token(file) => {
                    let token = tokio::fs::read_to_string(file).await.map_err(|e| {
                        fail(format!("cannot read token_file {}: {e}", file.display()))
                    })?;
                    if token.trim() == token {
                        // kube re-reads it, so a rotated token is picked up.
                        config.auth_info.token_file = text(file);
                    } else {
                        // kube would send the newline too; this token is read once.
                        config.auth_info.token = Some(token.trim().to_owned().into());
                    }
                }
            }
            config
        }
    };
    // Exec sessions and log follows are long-lived and may be silent for hours.
    config.read_timeout = None;
    Ok(config)
}
