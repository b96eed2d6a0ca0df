//! Kubernetes cluster access (`[[k8s_clusters]]`) and the k8s streams' limits (`[k8s]`).
//!
//! Each cluster names exactly one way to reach its API server: the relay's own service
//! account (`in_cluster = true`), a kubeconfig (a file, or `KUBECONFIG` / `~/.kube/config`,
//! with an optional context), or an explicit `api_url` with a CA and a client certificate or
//! token file. With `impersonate = true` every request carries `Impersonate-User` /
//! `Impersonate-Group` for the Opsdeck user, so the cluster's RBAC decides per user (the
//! relay's credentials then only need the `impersonate` verb).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// One Kubernetes cluster, by id.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct K8sCluster {
    /// Used in URLs (`/ws/k8s/exec/{cluster}/...`) and grants (`"cluster/namespace"`).
    pub id: String,
    /// Shown in the target picker; defaults to the id.
    #[serde(default)]
    pub label: Option<String>,
    /// Use the service account of the pod the relay runs in. Default false.
    #[serde(default)]
    pub in_cluster: bool,
    /// A kubeconfig file. When none of `in_cluster`, `kubeconfig` and `api_url` is set, the
    /// kubeconfig named by `KUBECONFIG` (or `~/.kube/config`) is used.
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use; default its `current-context`.
    #[serde(default)]
    pub context: Option<String>,
    /// The API server's URL (`https://host:6443`), for explicit credentials.
    #[serde(default)]
    pub api_url: Option<String>,
    /// PEM CA bundle the API server's certificate is checked against (with `api_url`);
    /// default: the system's trusted roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (with `api_url`; needs `client_key_file`).
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file`.
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// A file holding a bearer token (with `api_url`). Re-read as it changes, unless it
    /// ends with a newline (then it is read once, at the first request).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Send `Impersonate-User: <username>` and one `Impersonate-Group` per group of the
    /// Opsdeck user with every request. Default false (the relay's own identity is used).
    #[serde(default)]
    pub impersonate: bool,
}

/// Where a cluster's API server and credentials come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterSource<'a> {
    InCluster,
    Kubeconfig {
        /// None: `KUBECONFIG` or `~/.kube/config`.
        path: Option<&'a Path>,
        context: Option<&'a str>,
    },
    Explicit {
        api_url: &'a str,
        ca_file: Option<&'a Path>,
        credentials: ExplicitCredentials<'a>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExplicitCredentials<'a> {
    Certificate { cert: &'a Path, key: &'a Path },
    Token(&'a Path),
}

impl K8sCluster {
    /// The one source this cluster names (checked by [`K8sCluster::validate`]).
    pub fn source(&self) -> ClusterSource<'_> {
        if self.in_cluster {
            return ClusterSource::InCluster;
        }
        match &self.api_url {
            Some(api_url) => ClusterSource::Explicit {
                api_url,
                ca_file: self.ca_file.as_deref(),
                credentials: match (&self.client_cert_file, &self.client_key_file) {
                    (Some(cert), Some(key)) => ExplicitCredentials::Certificate { cert, key },
                    _ => ExplicitCredentials::Token(
                        self.token_file.as_deref().unwrap_or(Path::new("")),
                    ),
                },
            },
            None => ClusterSource::Kubeconfig {
                path: self.kubeconfig.as_deref(),
                context: self.context.as_deref(),
            },
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |what: &str| {
            Err(ConfigError::Invalid(format!(
                "k8s cluster {:?}: {what}",
                self.id
            )))
        };
        if self.id.is_empty() || self.id.contains(['/', '*']) {
            return invalid("the id must be non-empty, without '/' or '*'");
        }
        let kubeconfig = self.kubeconfig.is_some() || self.context.is_some();
        let explicit = [
            &self.ca_file,
            &self.client_cert_file,
            &self.client_key_file,
            &self.token_file,
        ]
        .iter()
        .any(|f| f.is_some());
        if self.in_cluster && (kubeconfig || explicit || self.api_url.is_some()) {
            return invalid("in_cluster = true takes no kubeconfig, context, api_url or files");
        }
        let Some(url) = &self.api_url else {
            if explicit {
                return invalid(
                    "ca_file, client_cert_file, client_key_file and token_file need api_url",
                );
            }
            return Ok(());
        };
        if kubeconfig {
            return invalid("use either api_url or kubeconfig/context, not both");
        }
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return invalid("api_url must be an https:// URL");
        }
        let certificate = (&self.client_cert_file, &self.client_key_file);
        match (certificate, &self.token_file) {
            ((Some(_), Some(_)), None) | ((None, None), Some(_)) => Ok(()),
            _ => invalid(
                "api_url needs either client_cert_file + client_key_file or token_file (exactly one)",
            ),
        }
    }
}

/// Limits and defaults of the k8s streams.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct K8sConfig {
    /// Log lines sent on connect when the client gives no `?tail_lines=`. Default 500.
    pub default_tail_lines: i64,
    /// Most lines a client may ask for with `?tail_lines=` (larger asks are cut to it).
    /// Default 50000.
    pub max_tail_lines: i64,
    /// Log lines longer than this many bytes (counting the API server's 31-byte timestamp)
    /// are cut at a character boundary, with a marker. Default 64 KiB.
    pub max_line_bytes: usize,
    /// Give up on an API request (not a stream) after this long. Default 30 s.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Exec output buffered between the API server's socket and the terminal session
    /// (kube's `max_stdout_buf_size`; its default of 1 KiB is slow). Default 64 KiB.
    pub exec_output_buffer_bytes: usize,
}

impl Default for K8sConfig {
    fn default() -> Self {
        Self {
            default_tail_lines: 500,
            max_tail_lines: 50_000,
            max_line_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(30),
            exec_output_buffer_bytes: 64 * 1024,
        }
    }
}

impl K8sConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let ok = self.default_tail_lines >= 0
            && self.default_tail_lines <= self.max_tail_lines
            && self.max_line_bytes >= 256
            && !self.request_timeout.is_zero()
            && self.exec_output_buffer_bytes >= 1024;
        if ok {
            Ok(())
        } else {
            Err(ConfigError::Invalid(
                "[k8s]: need 0 <= default_tail_lines <= max_tail_lines, max_line_bytes >= 256, \
                 request_timeout > 0 and exec_output_buffer_bytes >= 1024"
                    .into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    fn cluster(fields: &str) -> Result<Config, ConfigError> {
        Config::from_toml(&format!("[[k8s_clusters]]\nid = \"c\"\n{fields}"), "test")
    }

    #[test]
    fn each_cluster_names_exactly_one_source() {
        let c = cluster("").unwrap();
        assert_eq!(
            c.k8s_clusters[0].source(),
            ClusterSource::Kubeconfig {
                path: None,
                context: None
            }
        );
        let c = cluster("in_cluster = true\nimpersonate = true").unwrap();
        assert_eq!(c.k8s_clusters[0].source(), ClusterSource::InCluster);
        let c = cluster("api_url = \"https://k:6443\"\ntoken_file = \"/t\"").unwrap();
        assert!(matches!(
            c.k8s_clusters[0].source(),
            ClusterSource::Explicit {
                credentials: ExplicitCredentials::Token(_),
                ..
            }
        ));
        for bad in [
            "in_cluster = true\nkubeconfig = \"/k\"",
            "api_url = \"https://k\"",
            "api_url = \"https://k\"\ntoken_file = \"/t\"\nclient_cert_file = \"/c\"\nclient_key_file = \"/k\"",
            "api_url = \"https://k\"\nclient_cert_file = \"/c\"",
            "api_url = \"https://k\"\ntoken_file = \"/t\"\ncontext = \"x\"",
            "token_file = \"/t\"",
            "api_url = \"k:6443\"\ntoken_file = \"/t\"",
        ] {
            let err = cluster(bad).unwrap_err();
            assert!(
                err.to_string().contains("k8s cluster \"c\""),
                "{bad}: {err}"
            );
        }
        let err = cluster("kube_config = \"/k\"").unwrap_err();
        assert!(err.to_string().contains("kube_config"), "{err}");
    }

    #[test]
    fn cluster_ids_are_unique_and_path_safe() {
        let twice = "[[k8s_clusters]]\nid = \"a\"\n[[k8s_clusters]]\nid = \"a\"\n";
        assert!(Config::from_toml(twice, "t").is_err());
        assert!(Config::from_toml("[[k8s_clusters]]\nid = \"a/b\"\n", "t").is_err());
    }
}
