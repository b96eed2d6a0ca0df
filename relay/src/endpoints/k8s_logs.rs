//! `/ws/k8s/logs/{cluster}/{namespace}/{pod}/{container}`: a container's live log.
//!
//! Query (`common::query::PodLogQuery`): `tail_lines` (default `k8s.default_tail_lines`, at
//! most `k8s.max_tail_lines`), `timestamps`, `previous`, and the resume `position`.

use async_trait::async_trait;
use common::query::PodLogQuery;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;

use super::k8s_exec::container_target;
use super::opener::{Prelude, StreamOpener, parse_query};
use crate::access::TargetRef;
use crate::backend::k8s::ContainerPath;
use crate::backend::k8s::logs::{self, LogOptions};
use crate::backend::k8s::position::LogPosition;
use crate::backend::{BackendKind, Opened};
use crate::close::Close;
use crate::config::{Config, K8sCluster, K8sConfig};

pub struct PodLogsEndpoint {
    pub path: ContainerPath,
    pub query: String,
}

/// What the viewer asked for, within the configured limits.
fn options(raw: &str, limits: &K8sConfig) -> Result<LogOptions, Close> {
    let query: PodLogQuery = parse_query(raw)?;
    let from = query
        .position()
        .map(|p| LogPosition::parse(p.as_str()).map_err(Close::bad_request))
        .transpose()?;
    Ok(LogOptions {
        tail_lines: query
            .tail_lines
            .unwrap_or(limits.default_tail_lines)
            .min(limits.max_tail_lines),
        timestamps: query.timestamps,
        previous: query.previous,
        from,
    })
}

#[async_trait]
impl StreamOpener for PodLogsEndpoint {
    type Resolved = K8sCluster;
    const BACKEND: BackendKind = BackendKind::K8s;

    fn target(&self, config: &Config) -> Result<(TargetRef, K8sCluster), Close> {
        container_target(&self.path, config)
    }

    async fn open(&self, p: &Prelude<'_>, cluster: K8sCluster) -> Result<Opened, Close> {
        let options = options(&self.query, &p.config.k8s)?;
        let client = p.state.k8s.client(&cluster, p.who).await?;
        let api: Api<Pod> = Api::namespaced(client, &self.path.namespace);
        Ok(logs::follow(api, &self.path, &p.config.k8s, options).await?)
    }
}

#[cfg(test)]
mod tests {
    use common::CloseCode;

    use super::*;

    #[test]
    fn query_options_are_parsed_capped_and_checked() {
        let limits = K8sConfig::default();
        let o = options("", &limits).unwrap();
        assert_eq!(o.tail_lines, 500);
        assert!(!o.timestamps && !o.previous && o.from.is_none());
        let o = options("tail_lines=99999999&timestamps=true&previous=1", &limits).unwrap();
        assert_eq!(o.tail_lines, 50_000);
        assert!(o.timestamps && o.previous);
        let o = options("position=2024-01-01T00%3A00%3A01.000000000Z%2F3", &limits).unwrap();
        assert_eq!(o.from.unwrap().count, 3);
        for bad in ["tail_lines=-1", "timestamps=maybe", "position=3"] {
            let refusal = options(bad, &limits).unwrap_err();
            assert_eq!(refusal.code, CloseCode::BadRequest, "{bad}");
        }
    }
}
