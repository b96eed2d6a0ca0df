//! File transfers (`[file_transfers]`, and `file_access` in `[[grants]]`): SFTP on SSH
//! hosts and `tar` through an exec in pods (`backend/sftp.rs`, `backend/k8s/files.rs`).
//!
//! A transfer copies in chunks of at most 32 KiB on a tokio task, awaiting between chunks,
//! so it never holds a worker thread; on top of that the relay runs at most
//! `max_transfers` at once (`max_transfers_per_user` per user) and each may be held to
//! `bytes_per_second`, so transfers cannot take the CPU or the network from terminals.

use serde::Deserialize;

/// What a grant lets its users do with files on its `ssh` hosts and in its `k8s`
/// namespaces' pods (the wire's type: the listing and the targets say it to the app).
pub use common::files::FileAccess;

/// Bounds on file transfers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransfersConfig {
    /// Largest file one upload may write, in bytes. An upload whose `Content-Length` is
    /// larger is refused (413) before its body is read; one without is cut off (413) at
    /// this size and its temporary file removed. Default 1 GiB.
    pub max_upload_bytes: u64,
    /// Transfers (uploads and downloads) running at once on this relay; more get 503.
    /// Default 16.
    pub max_transfers: usize,
    /// Transfers one user may run at once; more get 429. Default 4.
    pub max_transfers_per_user: usize,
    /// Each transfer's rate bound, in bytes per second; 0 for none. Default 0.
    pub bytes_per_second: u64,
}

impl Default for TransfersConfig {
    fn default() -> Self {
        Self {
            max_upload_bytes: 1024 * 1024 * 1024,
            max_transfers: 16,
            max_transfers_per_user: 4,
            bytes_per_second: 0,
        }
    }
}
