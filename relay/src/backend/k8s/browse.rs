//! What the target picker shows of a cluster: `GET /api/k8s/{cluster}/namespaces` and
//! `GET /api/k8s/{cluster}/namespaces/{ns}/pods`.
//!
//! Namespaces are those the grants allow intersected with those the cluster lists (with
//! the user's identity when the cluster impersonates). When the cluster does not let the
//! user list namespaces (403), the namespaces named in the grants are returned unchecked;
//! a `cluster/*` grant alone then has nothing to show, and the API server's refusal is
//! returned instead.

use std::sync::Arc;

use common::api::PodInfo;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ListParams};
use warp::http::HeaderMap;
use warp::reply::{Reply, Response};

use super::error::{K8sError, timed};
use super::pod;
use crate::access::{self, TargetRef};
use crate::api;
use crate::auth::Principal;
use crate::server::AppState;

/// `GET /api/k8s/{cluster}/namespaces`: the namespaces `who` may open, sorted.
pub async fn namespaces(cluster: String, state: Arc<AppState>, headers: HeaderMap) -> Response {
    let who = match api::principal(&state, &headers).await {
        Ok(who) => who,
        Err(response) => return response,
    };
    match list_namespaces(&state, &who, &cluster).await {
        Ok(names) => warp::reply::json(&names).into_response(),
        Err(e) => api::error(e.http_status(), e.to_string()),
    }
}

async fn list_namespaces(
    state: &AppState,
    who: &Principal,
    cluster: &str,
) -> Result<Vec<String>, K8sError> {
    let config = state.config();
    let granted = access::k8s_grants(&config, who, cluster);
    if config.k8s_cluster(cluster).is_none() {
        return Err(K8sError::UnknownCluster(cluster.chars().take(64).collect()));
    }
    if !granted.all && granted.namespaces.is_empty() {
        return Err(K8sError::Forbidden(format!(
            "{} may not open any namespace of cluster {cluster}",
            who.username
        )));
    }
    let client = state.k8s.client(&config, cluster, who).await?;
    let listed = timed(
        cluster,
        config.k8s.request_timeout,
        Api::<Namespace>::all(client).list(&ListParams::default()),
    )
    .await;
    match listed {
        Ok(list) => {
            let mut names: Vec<String> = list
                .items
                .into_iter()
                .filter_map(|ns| ns.metadata.name)
                .filter(|ns| {
                    let target = TargetRef::K8s {
                        cluster: cluster.to_owned(),
                        namespace: ns.clone(),
                    };
                    access::permits(&config, who, &target)
                })
                .collect();
            names.sort();
            Ok(names)
        }
        Err(K8sError::Forbidden(_)) if !granted.namespaces.is_empty() => Ok(granted.namespaces),
        Err(e) => Err(e),
    }
}

/// `GET /api/k8s/{cluster}/namespaces/{ns}/pods`: the namespace's pods, in the cluster's
/// order.
pub async fn pods(
    cluster: String,
    namespace: String,
    state: Arc<AppState>,
    headers: HeaderMap,
) -> Response {
    let who = match api::principal(&state, &headers).await {
        Ok(who) => who,
        Err(response) => return response,
    };
    match list_pods(&state, &who, &cluster, &namespace).await {
        Ok(pods) => warp::reply::json(&pods).into_response(),
        Err(e) => api::error(e.http_status(), e.to_string()),
    }
}

async fn list_pods(
    state: &AppState,
    who: &Principal,
    cluster: &str,
    namespace: &str,
) -> Result<Vec<PodInfo>, K8sError> {
    let config = state.config();
    if config.k8s_cluster(cluster).is_none() {
        return Err(K8sError::UnknownCluster(cluster.chars().take(64).collect()));
    }
    let target = TargetRef::K8s {
        cluster: cluster.to_owned(),
        namespace: namespace.to_owned(),
    };
    if !access::permits(&config, who, &target) {
        return Err(K8sError::Forbidden(format!(
            "{} may not open {target}",
            who.username
        )));
    }
    let client = state.k8s.client(&config, cluster, who).await?;
    let list = timed(
        cluster,
        config.k8s.request_timeout,
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
