//! What a cluster lists for the target picker: its namespaces, and a namespace's pods with
//! their phase and containers. Which of them a user may see is the endpoint's business
//! (`crate::endpoints::k8s_browse`).

use std::time::Duration;

use common::api::PodInfo;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Client;
use kube::api::{Api, ListParams};

use super::error::{K8sError, timed};
use super::pod;

/// Every namespace `client` may list in `cluster`, in the cluster's order.
pub async fn namespaces(
    client: Client,
    cluster: &str,
    limit: Duration,
) -> Result<Vec<String>, K8sError> {
    let list = timed(
        cluster,
        limit,
        Api::<Namespace>::all(client).list(&ListParams::default()),
    )
    .await?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|ns| ns.metadata.name)
        .collect())
}

/// The pods of `namespace`, in the cluster's order.
pub async fn pods(
    client: Client,
    cluster: &str,
    namespace: &str,
    limit: Duration,
) -> Result<Vec<PodInfo>, K8sError> {
    let list = timed(
        cluster,
        limit,
        Api::<Pod>::namespaced(client, namespace).list(&ListParams::default()),
    )
    .await?;
    Ok(list
        .items
        .iter()
        .map(|p| PodInfo {
            name: p.metadata.name.clone().unwrap_or_default(),
            phase: p
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_else(|| "Unknown".to_owned()),
            containers: pod::container_names(p),
        })
        .collect())
}
