//! JSON bodies of the relay's HTTP API (`/api/...`).

use serde::{Deserialize, Serialize};

use crate::TermSize;
use crate::files::FileAccess;

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
    /// For an SSH host: what the user may do with its files (absent: nothing, so no files
    /// pane is offered).
    #[serde(default, skip_serializing_if = "FileAccess::is_none")]
    pub file_access: FileAccess,
}

/// A Kubernetes cluster and the namespaces the user may open in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterTarget {
    pub id: String,
    pub label: String,
    /// The namespaces granted by name; `["*"]` when every namespace is granted (then
    /// `GET /api/k8s/{cluster}/namespaces` lists the cluster's own).
    pub namespaces: Vec<String>,
    /// The most any of the user's grants on this cluster gives for files in its pods
    /// (absent: nothing, so no files pane is offered). A namespace may give less: the
    /// listing's `access` says what the user may do there.
    #[serde(default, skip_serializing_if = "FileAccess::is_none")]
    pub file_access: FileAccess,
}

/// `GET /api/k8s/{cluster}/namespaces/{ns}/pods`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodInfo {
    pub name: String,
    pub phase: String,
    pub containers: Vec<String>,
}

/// `GET /api/sessions`: one of the user's live terminal sessions (attached to a browser,
/// or waiting in its grace period for a reconnect).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalSessionInfo {
    /// The session id (what `?session=` resumes).
    pub session: String,
    /// `<kind>:<target>`: `ssh:<host>`, `local:<shell>` or
    /// `k8s:<cluster>/<namespace>/<pod>/<container>`.
    pub target: String,
    /// Unix seconds when the session started.
    pub started: u64,
    /// Unix seconds of its last output or input.
    pub last_active: u64,
    /// Whether a browser is attached (else it waits for a reconnect).
    pub attached: bool,
    /// Its terminal size, as last asked for.
    pub size: TermSize,
}
