//! `/ws/local/{shell_id}`: a configured program in a PTY on the relay's own machine, as a
//! terminal session (like ttyd, behind Opsdeck's login and grants).

use async_trait::async_trait;

use super::opener::{Prelude, StreamOpener};
use super::terminal::TerminalRequest;
use crate::access::TargetRef;
use crate::backend::{BackendKind, Opened, local};
use crate::close::Close;
use crate::config::{Config, LocalShell};

pub struct LocalShellEndpoint {
    pub shell_id: String,
    pub query: String,
}

#[async_trait]
impl StreamOpener for LocalShellEndpoint {
    type Resolved = LocalShell;
    const BACKEND: BackendKind = BackendKind::Local;

    fn target(&self, config: &Config) -> Result<(TargetRef, LocalShell), Close> {
        match config.local_shell(&self.shell_id) {
            Some(shell) => Ok((TargetRef::Local(shell.id.clone()), shell.clone())),
            None => Err(Close::not_found(format!(
                "no local shell {:?} is configured",
                self.shell_id.chars().take(64).collect::<String>()
            ))),
        }
    }

    async fn open(&self, p: &Prelude<'_>, shell: LocalShell) -> Result<Opened, Close> {
        let target = format!("local:{}", shell.id);
        let request = TerminalRequest::read(&self.query, p.who, Self::BACKEND, target)?;
        if let Some(resumed) = request.resume(&p.state.terminals) {
            return resumed;
        }
        let start = local::open(&shell, request.size);
        request.start(p, start).await
    }
}
