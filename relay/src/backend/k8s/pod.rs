//! Reading a pod's state: does it exist, does it have the container, is it running, how
//! often has the container restarted.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::Api;

use super::ContainerPath;
use super::error::{K8sError, timed};

/// What a stream needs to know about its container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    /// The pod's phase (`Running`, `Succeeded`, ...).
    pub phase: String,
    pub restart_count: i32,
    /// Why the container is not running, or None when it is.
    pub not_running: Option<String>,
    /// When the current instance started (running or terminated).
    pub started_at: Option<Timestamp>,
    /// When the instance before it started (`lastState.terminated`), if one is known.
    pub previous_started_at: Option<Timestamp>,
}

impl ContainerState {
    /// Whether the pod has ended for good (its containers will not run again).
    pub fn pod_finished(&self) -> bool {
        matches!(self.phase.as_str(), "Succeeded" | "Failed")
    }
}

/// Gets the pod; a missing pod is `NotFound` in the user's words.
pub async fn get(api: &Api<Pod>, path: &ContainerPath, limit: Duration) -> Result<Pod, K8sError> {
    match timed(&path.cluster, limit, api.get(&path.pod)).await {
        Err(K8sError::NotFound(_)) => Err(K8sError::NotFound(format!(
            "pod {} not found in namespace {} of cluster {}",
            path.pod, path.namespace, path.cluster
        ))),
        other => other,
    }
}

/// The container's state, or `NotFound` naming the containers the pod has.
pub fn container(pod: &Pod, path: &ContainerPath) -> Result<ContainerState, K8sError> {
    let names = container_names(pod);
    if !names.contains(&path.container) {
        return Err(K8sError::NotFound(format!(
            "pod {} has no container {}; its containers are: {}",
            path.pod,
            path.container,
            names.join(", ")
        )));
    }
    let status = pod.status.as_ref();
    let phase = status
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Unknown".to_owned());
    let container = status
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|all| all.iter().find(|c| c.name == path.container));
    let restart_count = container.map_or(0, |c| c.restart_count);
    let state = container.and_then(|c| c.state.as_ref());
    let not_running = match state {
        Some(state) if state.running.is_some() => None,
        Some(state) => Some(
            state
                .waiting
                .as_ref()
                .and_then(|w| w.reason.clone())
                .or_else(|| {
                    state.terminated.as_ref().map(|t| {
                        format!(
                            "terminated with exit code {}{}",
                            t.exit_code,
                            t.reason
                                .as_ref()
                                .map(|r| format!(" ({r})"))
                                .unwrap_or_default()
                        )
                    })
                })
                .unwrap_or_else(|| "not running".to_owned()),
        ),
        // No status for the container yet: trust the pod's phase.
        None if phase == "Running" => None,
        None => Some(format!("the pod is {phase}")),
    };
    let started_at = state.and_then(|state| {
        state
            .running
            .as_ref()
            .and_then(|r| r.started_at.as_ref())
            .or_else(|| {
                state
                    .terminated
                    .as_ref()
                    .and_then(|t| t.started_at.as_ref())
            })
            .map(|t| t.0)
    });
    let previous_started_at = container
        .and_then(|c| c.last_state.as_ref())
        .and_then(|last| last.terminated.as_ref())
        .and_then(|t| t.started_at.as_ref())
        .map(|t| t.0);
    Ok(ContainerState {
        phase,
        restart_count,
        not_running,
        started_at,
        previous_started_at,
    })
}

/// The names of the pod's (regular) containers, in spec order.
pub fn container_names(pod: &Pod) -> Vec<String> {
    pod.spec
        .as_ref()
        .map(|spec| spec.containers.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default()
}
