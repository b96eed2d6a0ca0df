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
use warp::http::HeaderMap;
use warp::reply::{Reply, Response};

use super::k8s_exec::valid_name;
use crate::access::{self, TargetRef};
use crate::api;
use crate::auth::Principal;
use crate::backend::k8s::{K8sError, browse};
use crate::close::Close;
use crate::config::{Config, K8sCluster};
use crate::state::AppState;

/// `GET /api/k8s/{cluster}/namespaces`: the namespaces `who` may open, sorted.
pub async fn namespaces(cluster: String, state: Arc<AppState>, headers: HeaderMap) -> Response {
    let who = match api::principal(&state, &headers).await {
        Ok(who) => who,
        Err(response) => return response,
    };
    reply(list_namespaces(&state, &who, &cluster).await)
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
    if let Err(refusal) = valid_name("namespace", &namespace, 63, false) {
        return api::refusal(&refusal);
    }
    reply(list_pods(&state, &who, &cluster, &namespace).await)
}

fn reply<T: serde::Serialize>(result: Result<T, K8sError>) -> Response {
    match result {
        Ok(body) => warp::reply::json(&body).into_response(),
        Err(e) => api::refusal(&Close::from(e)),
    }
}

fn cluster_entry(config: &Config, cluster: &str) -> Result<K8sCluster, K8sError> {
    config
        .k8s_cluster(cluster)
        .cloned()
        .ok_or_else(|| K8sError::UnknownCluster(cluster.chars().take(64).collect()))
}

async fn list_namespaces(
    state: &AppState,
    who: &Principal,
    cluster: &str,
) -> Result<Vec<String>, K8sError> {
    let config = state.config();
    let granted = access::k8s_grants(&config, who, cluster);
    let entry = cluster_entry(&config, cluster)?;
    if !granted.all && granted.namespaces.is_empty() {
        return Err(K8sError::Forbidden(format!(
            "{} may not open any namespace of cluster {cluster}",
            who.username
        )));
    }
    let client = state.k8s.client(&entry, who).await?;
    match browse::namespaces(client, cluster, config.k8s.request_timeout).await {
        Ok(listed) => {
            let mut names: Vec<String> = listed
                .into_iter()
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

async fn list_pods(
    state: &AppState,
    who: &Principal,
    cluster: &str,
    namespace: &str,
) -> Result<Vec<PodInfo>, K8sError> {
    let config = state.config();
    let entry = cluster_entry(&config, cluster)?;
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
    let client = state.k8s.client(&entry, who).await?;
    browse::pods(client, cluster, namespace, config.k8s.request_timeout).await
}
