//! `/ws/watch/{session}`: a running terminal session, read-only, for users granted `watch`
//! on its target (or `audit`). What the session's ring holds first, then its output live;
//! input gets an error frame; the owner gets a `watcher` frame at each join and leave.

use std::sync::Arc;

use async_trait::async_trait;
use common::CloseCode;

use super::opener::{Prelude, StreamOpener};
use crate::access::TargetRef;
use crate::backend::{BackendKind, Opened};
use crate::close::Close;
use crate::config::Config;
use crate::session::{SessionError, TerminalRegistry};

pub struct WatchEndpoint {
    pub session: String,
    pub terminals: Arc<TerminalRegistry>,
}

/// The grant target of a terminal session's label (`ssh:<host>`, `local:<shell>`,
/// `k8s:<cluster>/<namespace>/<pod>/<container>`).
fn watched(target: &str) -> Result<TargetRef, Close> {
    match target.split_once(':') {
        Some(("ssh", id)) => Ok(TargetRef::Ssh(id.to_owned())),
        Some(("local", id)) => Ok(TargetRef::Local(id.to_owned())),
        Some(("k8s", path)) => {
            let mut parts = path.split('/');
            match (parts.next(), parts.next()) {
                (Some(cluster), Some(namespace)) => Ok(TargetRef::K8s {
                    cluster: cluster.to_owned(),
                    namespace: namespace.to_owned(),
                }),
                _ => Err(Close::bad_request("this session cannot be watched")),
            }
        }
        _ => Err(Close::new(
            CloseCode::Forbidden,
            "sessions of this kind cannot be watched",
        )),
    }
}

#[async_trait]
impl StreamOpener for WatchEndpoint {
    type Resolved = ();
    const BACKEND: BackendKind = BackendKind::Watch;

    fn target(&self, _: &Config) -> Result<(TargetRef, ()), Close> {
        let label = self
            .terminals
            .label(&self.session)
            .ok_or_else(|| SessionError::Gone(self.session.chars().take(64).collect()))?;
        Ok((TargetRef::Watch(Box::new(watched(&label.target)?)), ()))
    }

    async fn open(&self, p: &Prelude<'_>, (): ()) -> Result<Opened, Close> {
        let attachment = p.state.terminals.watch(&self.session, &p.who.username)?;
        Ok(Opened::new(attachment.hello(), attachment))
    }
}
