//! What can go wrong talking to a cluster, in words for the user, and the close code or
//! HTTP status each failure reaches the browser with.
//!
//! | failure | WebSocket close | HTTP |
//! |---|---|---|
//! | no such cluster in the config | 4404 | 404 |
//! | the API server refused the relay's credentials (401) | 4502 | 502 |
//! | the cluster's RBAC forbids it (403), with the API server's message | 4403 | 403 |
//! | pod or container not found (404 or not in the pod's spec) | 4404 | 404 |
//! | pod or container not running, or another 400/422 | 4400 | 400 |
//! | API server unreachable, timed out, failed (5xx), credentials not loadable | 4502 | 502 |

use std::time::Duration;

use common::CloseCode;

use crate::close::CloseCause;

#[derive(Debug, Clone, thiserror::Error)]
pub enum K8sError {
    #[error("no Kubernetes cluster {0:?} is configured")]
    UnknownCluster(String),
    #[error(
        "cannot load the credentials of cluster {cluster}: {reason}; fix its [[k8s_clusters]] entry in the relay config"
    )]
    Credentials { cluster: String, reason: String },
    #[error(
        "the relay's cluster credentials were refused by the API server of cluster {cluster} (401 Unauthorized); an operator must renew them in the relay config"
    )]
    CredentialsRefused { cluster: String },
    /// The cluster's RBAC said no; the message is the API server's.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The request does not fit the pod's state (not running, ...) or was invalid.
    #[error("{0}")]
    Invalid(String),
    #[error(
        "cannot reach the API server of cluster {cluster}: {reason}; check that it is up and reachable from the relay"
    )]
    Unreachable { cluster: String, reason: String },
    #[error(
        "the API server of cluster {cluster} did not answer within {} s; try again",
        .after.as_secs()
    )]
    Timeout { cluster: String, after: Duration },
    #[error("the API server of cluster {cluster} failed: {message}")]
    Failed { cluster: String, message: String },
}

impl K8sError {
    /// Classifies an error of a kube-rs call to `cluster`.
    pub fn from_kube(cluster: &str, error: kube::Error) -> Self {
        let cluster = cluster.to_owned();
        match error {
            kube::Error::Api(status) => match status.code {
                401 => Self::CredentialsRefused { cluster },
                403 => Self::Forbidden(status.message),
                404 => Self::NotFound(status.message),
                400 | 422 => Self::Invalid(status.message),
                code => Self::Failed {
                    cluster,
                    message: format!("{} ({code} {})", status.message, status.reason),
                },
            },
            kube::Error::InferKubeconfig(e) => Self::Credentials {
                cluster,
                reason: e.to_string(),
            },
            other => Self::Unreachable {
                cluster,
                reason: with_sources(&other),
            },
        }
    }
}

impl CloseCause for K8sError {
    fn close_code(&self) -> CloseCode {
        match self {
            Self::UnknownCluster(_) | Self::NotFound(_) => CloseCode::NotFound,
            Self::Forbidden(_) => CloseCode::Forbidden,
            Self::Invalid(_) => CloseCode::BadRequest,
            Self::Credentials { .. }
            | Self::CredentialsRefused { .. }
            | Self::Unreachable { .. }
            | Self::Timeout { .. }
            | Self::Failed { .. } => CloseCode::BackendUnavailable,
        }
    }
}

/// An error and its causes on one line ("client error (Connect): tcp connect error: ...").
pub fn with_sources(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// Runs an API request with the configured time limit.
pub async fn timed<T>(
    cluster: &str,
    limit: Duration,
    request: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, K8sError> {
    match tokio::time::timeout(limit, request).await {
        Ok(result) => result.map_err(|e| K8sError::from_kube(cluster, e)),
        Err(_) => Err(K8sError::Timeout {
            cluster: cluster.to_owned(),
            after: limit,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            message: message.into(),
            ..Default::default()
        }))
    }

    #[test]
    fn api_statuses_map_to_close_codes_with_the_api_servers_words() {
        let forbidden = K8sError::from_kube("c", api(403, "pods is forbidden: User \"a\""));
        assert_eq!(forbidden.close_code(), CloseCode::Forbidden);
        assert_eq!(forbidden.to_string(), "pods is forbidden: User \"a\"");
        let refused = K8sError::from_kube("c", api(401, "Unauthorized"));
        assert_eq!(refused.close_code(), CloseCode::BackendUnavailable);
        assert!(
            refused
                .to_string()
                .contains("the relay's cluster credentials were refused")
        );
        assert_eq!(
            K8sError::from_kube("c", api(404, "x")).close_code(),
            CloseCode::NotFound
        );
        assert_eq!(
            K8sError::from_kube("c", api(400, "x")).close_code(),
            CloseCode::BadRequest
        );
        assert_eq!(
            K8sError::from_kube("c", api(500, "x")).close_code(),
            CloseCode::BackendUnavailable
        );
    }
}
