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
    valid_name("namespace", &path.namespace, 63, false)?;
    valid_name("pod", &path.pod, 253, true)?;
    valid_name("container", &path.container, 63, false)?;
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

/// Kubernetes names are DNS-1123 labels (namespaces, containers) or subdomains (pods):
/// checked before any API call, so nothing else (`%2F`, `..`) reaches the API server's
/// URL.
pub(super) fn valid_name(what: &str, name: &str, max: usize, dots: bool) -> Result<(), Close> {
    let allowed =
        |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || (dots && b == b'.');
    let bytes = name.as_bytes();
    let ok = (1..=max).contains(&bytes.len())
        && bytes.iter().all(|b| allowed(*b))
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric);
    if ok {
        Ok(())
    } else {
        Err(Close::bad_request(format!(
            "{what} {:?} is not a Kubernetes name: lowercase letters, digits and '-'{}, at most {max} characters, starting and ending with a letter or digit",
            name.chars().take(64).collect::<String>(),
            if dots { " or '.'" } else { "" }
        )))
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
        request.start(p, connect).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_names_are_checked_before_any_api_call() {
        assert!(valid_name("pod", "web-7d9f.x1", 253, true).is_ok());
        assert!(valid_name("namespace", "prod", 63, false).is_ok());
        for bad in ["victim/proxy/admin", "..", "Web", "-a", "a-", "", "a.b"] {
            let refused = valid_name("namespace", bad, 63, false).unwrap_err();
            assert_eq!(refused.code, common::CloseCode::BadRequest, "{bad}");
        }
        assert!(valid_name("container", &"a".repeat(64), 63, false).is_err());
    }
}
