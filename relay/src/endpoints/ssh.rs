//! `/ws/ssh/{host_id}`: a login shell on a configured SSH host, as a terminal session.

use super::opener::{Prelude, StreamOpener};
use super::terminal::TerminalRequest;
use crate::access::TargetRef;
use crate::backend::{BackendKind, Opened, ssh};
use crate::close::Close;
use crate::config::{Config, SshHost};
use async_trait::async_trait;

pub struct SshEndpoint {
    pub host_id: String,
    pub query: String,
}

#[async_trait]
impl StreamOpener for SshEndpoint {
    type Resolved = SshHost;
    const BACKEND: BackendKind = BackendKind::Ssh;

    fn target(&self, config: &Config) -> Result<(TargetRef, SshHost), Close> {
        match config.ssh_host(&self.host_id) {
            Some(host) => Ok((TargetRef::Ssh(host.id.clone()), host.clone())),
            None => Err(Close::not_found(format!(
                "no SSH host {:?} is configured",
                self.host_id
            ))),
        }
    }

    async fn open(&self, p: &Prelude<'_>, host: SshHost) -> Result<Opened, Close> {
        let target = format!("ssh:{}", host.id);
        let request = TerminalRequest::read(&self.query, p.who, Self::BACKEND, target)?;
        if let Some(resumed) = request.resume(&p.state.terminals) {
            return resumed;
        }
        let connect = ssh::open(&host, request.size);
        request.start(p, connect).await
    }
}
