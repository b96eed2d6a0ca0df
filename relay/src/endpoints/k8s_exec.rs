//! `/ws/k8s/exec/{cluster}/{namespace}/{pod}/{container}`: a shell in a container, as a
//! terminal session (like `kubectl exec -it`).

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;

use super::opener::{Prelude, StreamOpener};
use super::terminal::TerminalRequest;
use crate::access::TargetRef;
use crate::backend::k8s::{ContainerPath, K8sError, exec};
use crate::backend::{BackendKind, Opened};
use crate::close::Close;
use crate::config::{Config, K8sCluster};

pub struct PodExecEndpoint {
    pub path: ContainerPath,
    pub query: String,
}

/// The grant a container path needs and its cluster's config entry (4404 when the cluster
/// is not configured).
pub(super) fn container_target(
    path: &ContainerPath,
    config: &Config,
) -> Result<(TargetRef, K8sCluster), Close> {
    match config.k8s_cluster(&path.cluster) {
        Some(cluster) => Ok((
            TargetRef::K8s {
                cluster: path.cluster.clone(),
                namespace: path.namespace.clone(),
            },
            cluster.clone(),
        )),
        None => Err(K8sError::UnknownCluster(path.cluster.chars().take(64).collect()).into()),
    }
}

#[async_trait]
impl StreamOpener for PodExecEndpoint {
    type Resolved = K8sCluster;
    const BACKEND: BackendKind = BackendKind::K8s;

    fn target(&self, config: &Config) -> Result<(TargetRef, K8sCluster), Close> {
        container_target(&self.path, config)
    }

    async fn open(&self, p: &Prelude<'_>, cluster: K8sCluster) -> Result<Opened, Close> {
        let target = format!("k8s:{}", self.path);
        let request = TerminalRequest::read(&self.query, p.who, Self::BACKEND, target)?;
        if let Some(resumed) = request.resume(&p.state.terminals) {
            return resumed;
        }
        let limits = &p.config.k8s;
        let client = p.state.k8s.client(&cluster, p.who).await?;
        let api: Api<Pod> = Api::namespaced(client, &self.path.namespace);
        exec::check(&api, &self.path, limits).await?;
        let connect = exec::open(&api, &self.path, limits, request.size);
        request.start(&p.state.terminals, connect).await
    }
}
