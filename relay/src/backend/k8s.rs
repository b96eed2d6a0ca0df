//! Kubernetes pods through kube-rs: exec terminals and live container logs.
//!
//! - `/ws/k8s/exec/{cluster}/{namespace}/{pod}/{container}?rows=&cols=` (`exec`): a shell in
//!   the container on a TTY. It only adapts kube's `AttachedProcess` to the terminal traits;
//!   the session registry gives it resume, the grace period and backpressure, as for SSH.
//! - `/ws/k8s/logs/{cluster}/{namespace}/{pod}/{container}?tail_lines=&timestamps=&previous=`
//!   (`logs`, `follow`): the container's log as `lines` frames, positioned by timestamp so a
//!   reconnect (or a follow the API server ended) resumes with no gap and no duplicate.
//! - `GET /api/k8s/{cluster}/namespaces[/{ns}/pods]` (`browse`): what the picker shows.
//! - `/api/files/k8s/{cluster}/{namespace}/{pod}/{container}/...` (`files`): list, download
//!   (a file, or a folder as a tar), upload, mkdir, rename, delete, like `kubectl cp`:
//!   `find`, `tar`, `mv` ... run through exec with each path one argv element.
//!
//! `clusters` builds one kube client per cluster (and, with impersonation, per user);
//! `error` turns API failures into close codes; `pod` reads a pod's state.

pub mod browse;
pub mod clusters;
pub mod error;
pub mod exec;
pub mod files;
mod follow;
pub mod logs;
mod pod;
pub mod position;

use std::fmt;

pub use error::K8sError;

/// A container, as named in a k8s endpoint's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPath {
    pub cluster: String,
    pub namespace: String,
    pub pod: String,
    pub container: String,
}

impl fmt::Display for ContainerPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.cluster, self.namespace, self.pod, self.container
        )
    }
}
