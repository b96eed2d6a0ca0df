//! Files in pods: `/api/files/k8s/{cluster}/{namespace}/{pod}/{container}/...` (list,
//! download a file or a folder as a tar, upload, mkdir, rename, delete), through
//! `backend::k8s::files` (programs run by exec in the container, like `kubectl cp`); the
//! steps are `files.rs`'.
//!
//! Each request's query is read first; then it is checked against one config snapshot as
//! a pod terminal is: the names must be Kubernetes names and the cluster configured, and
//! the grants that open the namespace must give `file_access = "read"` (list, download) or
//! `"write"` (the rest); otherwise 403 saying which. The exec runs as the relay's cluster
//! identity, or as the user with `impersonate = true`. An upload needs `Content-Length`
//! (411 without): the file goes in as a tar entry, whose header holds its size.

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use warp::http::HeaderMap;
use warp::reply::Response;

use super::files::{Admitted, Place, failed, require};
use super::k8s_exec::container_target;
use crate::access;
use crate::api;
use crate::backend::k8s::ContainerPath;
use crate::backend::k8s::files::PodFiles;
use crate::close::Close;
use crate::config::FileAccess;
use crate::state::AppState;

fn refused(close: Close) -> Response {
    api::error(close.http_status(), close.reason)
}

impl Place for ContainerPath {
    type Store = PodFiles;

    const BACKEND: &'static str = "k8s";
    /// Paths reach the container as argv text: the exec API carries the command as strings.
    const NOT_UTF8: &'static str =
        "paths in pods must be UTF-8: the exec API carries a command's arguments as text";
    const QUERY_FIRST: bool = true;
    const LENGTH_REQUIRED: Option<&'static str> = Some(
        "an upload into a pod needs Content-Length: the file goes into the container as a tar entry, whose header holds its size",
    );

    async fn admit(
        &self,
        state: &AppState,
        headers: &HeaderMap,
        need: FileAccess,
    ) -> Result<Admitted<PodFiles>, Response> {
        let who = api::principal(state, headers).await?;
        let config = state.config();
        let (target, cluster) = container_target(self, &config).map_err(refused)?;
        let granted = access::file_access(&config, &who, &target);
        require(&who, granted, need, &target.to_string(), "the namespace")
            .map_err(|e| failed(&e))?;
        let client = state
            .k8s
            .client(&cluster, &who)
            .await
            .map_err(|e| refused(e.into()))?;
        let api: Api<Pod> = Api::namespaced(client, &self.namespace);
        let files = PodFiles::new(api, self.clone(), config.k8s.request_timeout);
        Ok(Admitted {
            who,
            files,
            granted,
        })
    }

    fn audit_target(&self) -> String {
        format!("k8s:{self}")
    }
}
