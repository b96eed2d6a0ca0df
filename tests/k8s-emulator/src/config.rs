//! What the emulated cluster contains: pods and their containers, bearer
//! tokens, and the small authorization table.
//!
//! Everything here is plain data (serde), so the binary can read it from a
//! JSON or TOML file and the test harness can build it in code.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The whole emulated cluster.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmulatorConfig {
    /// TCP port on 127.0.0.1; 0 (the default) picks a free one.
    #[serde(default)]
    pub port: u16,
    /// Pods, in the order lists return them.
    #[serde(default)]
    pub pods: Vec<PodConfig>,
    /// Namespaces that exist even without pods (namespaces of pods always exist).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Bearer tokens accepted in `Authorization: Bearer <token>`.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// Authorization rules; a request is allowed when any rule matches.
    #[serde(default)]
    pub access: Vec<AccessRule>,
}

/// A pod.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodConfig {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Phase reported in `status.phase` and used for exec/log decisions.
    #[serde(default)]
    pub phase: PodPhase,
    /// Labels.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Containers (at least one for exec and logs to work).
    pub containers: Vec<ContainerConfig>,
}

/// A container of a pod.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerConfig {
    /// Container name.
    pub name: String,
    /// Image shown in the spec and status (purely informational).
    #[serde(default = "default_image")]
    pub image: String,
    /// The container's log file on disk. Each line is
    /// `<RFC3339 timestamp> <text>`; see the logs module. Created (empty) at
    /// start when missing.
    pub log_file: PathBuf,
    /// `status.containerStatuses[].restartCount` at start.
    #[serde(default)]
    pub restart_count: u32,
    /// Working directory for exec'd processes (default: the emulator's).
    #[serde(default)]
    pub working_dir: Option<PathBuf>,
    /// `PATH` of exec'd processes, where their programs are looked up (default: the
    /// emulator's): a folder without `tar` makes a container "without tar".
    #[serde(default)]
    pub path: Option<String>,
}

fn default_image() -> String {
    "registry.local/opsdeck/emulated:latest".into()
}

/// `status.phase` of a pod.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PodPhase {
    /// Scheduled, containers still being created.
    Pending,
    /// Containers running: exec works and log follows stay open.
    #[default]
    Running,
    /// All containers exited 0.
    Succeeded,
    /// A container exited non-zero.
    Failed,
}

impl PodPhase {
    /// The API spelling (`Running`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            PodPhase::Pending => "Pending",
            PodPhase::Running => "Running",
            PodPhase::Succeeded => "Succeeded",
            PodPhase::Failed => "Failed",
        }
    }
}

/// A bearer token and the identity it authenticates as.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// The token string.
    pub token: String,
    /// User name.
    pub user: String,
    /// Groups (`system:authenticated` is added automatically).
    #[serde(default)]
    pub groups: Vec<String>,
}

/// Who a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Subject {
    /// A user name (`{"user": "alice"}`).
    User(String),
    /// A group name (`{"group": "ops"}`).
    Group(String),
}

/// One RBAC-like rule: `subject` may do `verbs` on `resources` in
/// `namespaces`.
///
/// Names follow RBAC: verbs `get`, `list`, `watch`, `create`, `impersonate`,
/// or `*`; resources `pods`, `pods/log`, `pods/exec`, `namespaces`, `users`,
/// `groups`, or `*` (which also covers subresources). Cluster-scoped requests
/// (listing namespaces, impersonation) match only rules whose namespaces
/// contain `*`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRule {
    /// Who.
    pub subject: Subject,
    /// Namespaces, or `*` for every namespace and the cluster scope.
    pub namespaces: Vec<String>,
    /// Verbs (default `*`).
    #[serde(default = "star")]
    pub verbs: Vec<String>,
    /// Resources (default `*`).
    #[serde(default = "star")]
    pub resources: Vec<String>,
}

fn star() -> Vec<String> {
    vec!["*".into()]
}

impl AccessRule {
    /// Everything in the given namespaces.
    pub fn namespaces(subject: Subject, namespaces: &[&str]) -> Self {
        AccessRule {
            subject,
            namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
            verbs: star(),
            resources: star(),
        }
    }

    /// Everything everywhere (a `cluster-admin` binding).
    pub fn cluster_admin(subject: Subject) -> Self {
        Self::namespaces(subject, &["*"])
    }

    /// May impersonate any user and group.
    pub fn impersonator(subject: Subject) -> Self {
        AccessRule {
            subject,
            namespaces: vec!["*".into()],
            verbs: vec!["impersonate".into()],
            resources: vec!["users".into(), "groups".into()],
        }
    }

    /// Restrict the verbs of this rule.
    pub fn with_verbs(mut self, verbs: &[&str]) -> Self {
        self.verbs = verbs.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Restrict the resources of this rule.
    pub fn with_resources(mut self, resources: &[&str]) -> Self {
        self.resources = resources.iter().map(|s| s.to_string()).collect();
        self
    }
}

/// Errors reading a config file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// JSON syntax or shape error.
    #[error("invalid JSON in {path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// TOML syntax or shape error.
    #[error("invalid TOML in {path}: {source}")]
    Toml {
        /// The file.
        path: PathBuf,
        /// Why.
        source: toml::de::Error,
    },
}

impl EmulatorConfig {
    /// Reads a config from a `.json` or `.toml` file (decided by extension;
    /// anything else is tried as JSON first, then TOML).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let is_toml = path.extension().is_some_and(|e| e == "toml");
        if is_toml {
            return toml::from_str(&text).map_err(|source| ConfigError::Toml {
                path: path.to_owned(),
                source,
            });
        }
        match serde_json::from_str(&text) {
            Ok(config) => Ok(config),
            Err(json_error) if path.extension().is_some_and(|e| e == "json") => {
                Err(ConfigError::Json {
                    path: path.to_owned(),
                    source: json_error,
                })
            }
            Err(_) => toml::from_str(&text).map_err(|source| ConfigError::Toml {
                path: path.to_owned(),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_config_parses_with_defaults() {
        let config: EmulatorConfig = toml::from_str(
            r#"
            [[pods]]
            namespace = "prod"
            name = "web-1"
            [[pods.containers]]
            name = "app"
            log_file = "/tmp/app.log"

            [[tokens]]
            token = "t0k"
            user = "bob"

            [[access]]
            subject = { user = "bob" }
            namespaces = ["prod"]
            "#,
        )
        .unwrap();
        assert_eq!(config.pods[0].phase, PodPhase::Running);
        assert_eq!(config.pods[0].containers[0].restart_count, 0);
        assert_eq!(config.access[0].subject, Subject::User("bob".into()));
        assert_eq!(config.access[0].verbs, vec!["*".to_string()]);
    }
}
