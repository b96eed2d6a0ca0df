//! Files on SSH hosts: `/api/files/ssh/{host}/...` (list, download, upload, mkdir, rename,
//! delete), through `backend::sftp`; the steps are `files.rs`'.
//!
//! Each request is checked against one config snapshot: the host must exist, and the
//! grants that open it must give `file_access = "read"` (list, download) or `"write"`
//! (the rest); otherwise 403 saying which. The query is read after that.

use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;

use super::files::{Admitted, Place, failed, require};
use crate::access::{self, TargetRef};
use crate::api;
use crate::backend::sftp::SftpHost;
use crate::config::FileAccess;
use crate::state::AppState;

/// An SSH host, by its id in the request's path.
pub struct SshHostFiles(pub String);

impl Place for SshHostFiles {
    type Store = SftpHost;

    const BACKEND: &'static str = "sftp";
    const NOT_UTF8: &'static str =
        "SFTP paths must be UTF-8 here: this relay's SFTP client cannot name other bytes";
    const QUERY_FIRST: bool = false;

    async fn admit(
        &self,
        state: &AppState,
        headers: &HeaderMap,
        need: FileAccess,
    ) -> Result<Admitted<SftpHost>, Response> {
        let who = api::principal(state, headers).await?;
        let config = state.config();
        let shown: String = self.0.chars().take(64).collect();
        let Some(host) = config.ssh_hosts.iter().find(|h| h.id == self.0).cloned() else {
            return Err(api::error(
                StatusCode::NOT_FOUND,
                format!("there is no SSH host {shown:?}"),
            ));
        };
        let target = TargetRef::Ssh(host.id.clone());
        let granted = access::file_access(&config, &who, &target);
        require(
            &who,
            granted,
            need,
            &format!("SSH host {shown}"),
            "the host",
        )
        .map_err(|e| failed(&e))?;
        Ok(Admitted {
            who,
            files: SftpHost(host),
            granted,
        })
    }

    fn audit_target(&self) -> String {
        TargetRef::Ssh(self.0.clone()).id()
    }
}
