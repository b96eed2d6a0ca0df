//! JSON bodies of the relay's HTTP API (`/api/...`).

use serde::{Deserialize, Serialize};

/// `POST /api/login`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// Who is logged in. Returned by `POST /api/login` and `GET /api/me`; the token itself
/// only travels in the HttpOnly `X-Token` cookie.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    pub username: String,
    pub groups: Vec<String>,
    /// Unix seconds when the login expires.
    pub expires_at: u64,
}

/// Any API error: an HTTP status with this body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
}

/// `GET /api/targets`: everything the current user may open.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Targets {
    pub ssh: Vec<Target>,
    /// Shells on the relay's own machine (`/ws/local/{id}`).
    #[serde(default)]
    pub local: Vec<Target>,
    pub k8s: Vec<ClusterTarget>,
    pub files: Vec<Target>,
    pub chat: Vec<Target>,
    /// Whether the user may watch job output (`/ws/exec/{token}`).
    pub jobs: bool,
}

/// A target by id, with a label for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub id: String,
    pub label: String,
}

/// A Kubernetes cluster and the namespaces the user may open in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterTarget {
    pub id: String,
    pub label: String,
    /// The namespaces granted by name; `["*"]` when every namespace is granted (then
    /// `GET /api/k8s/{cluster}/namespaces` lists the cluster's own).
    pub namespaces: Vec<String>,
}

/// `GET /api/k8s/{cluster}/namespaces/{ns}/pods`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodInfo {
    pub name: String,
    pub phase: String,
    pub containers: Vec<String>,
}
