//! What every terminal endpoint (SSH, pod exec, local shell) does with its request: read the query
//! (size, flow control, resume token), then either resume the session a reconnect names or
//! start a new one once the user has room for it.

use std::future::Future;
use std::sync::Arc;

use common::query::TerminalQuery;
use common::server::{ServerFrame, StatusKind, StreamEvent};
use common::{ResizeOrder, TermSize};

use super::opener::{Prelude, parse_query};
use crate::access::{self, TargetRef};
use crate::auth::Principal;
use crate::backend::{BackendKind, Opened, TerminalStreams};
use crate::close::Close;
use crate::recording::{RecordingMeta, RecordingStart};
use crate::session::{SessionLabel, TerminalAttachment, TerminalRegistry};

/// A terminal endpoint's request, read.
pub struct TerminalRequest {
    /// The size a new session starts with.
    pub size: TermSize,
    flow_control: bool,
    resize_order: ResizeOrder,
    label: SessionLabel,
    resume: Option<(String, u64)>,
}

impl TerminalRequest {
    /// Reads the query of a request by `who` for the terminal `target` (e.g. `ssh:web-1`).
    pub fn read(
        raw_query: &str,
        who: &Principal,
        backend: BackendKind,
        target: String,
    ) -> Result<Self, Close> {
        let query: TerminalQuery = parse_query(raw_query)?;
        Ok(Self {
            size: query.size()?,
            flow_control: query.flow,
            resize_order: query.resize_order,
            resume: query
                .resume_at()?
                .map(|(session, position)| (session.to_owned(), position)),
            label: SessionLabel {
                owner_uid: who.uid.clone(),
                backend,
                target,
            },
        })
    }

    /// Re-attaches to the session the request names, if it names one (4410 when it has
    /// ended, 4403 when it is another user's, 4400 when it is another target's or the
    /// position is beyond its end).
    pub fn resume(&self, registry: &Arc<TerminalRegistry>) -> Option<Result<Opened, Close>> {
        let (session, position) = self.resume.as_ref()?;
        Some(
            registry
                .resume(session, *position, &self.label)
                .map(|attachment| opened(attachment, self.flow_control, self.resize_order))
                .map_err(Close::from),
        )
    }

    /// Starts a new session on what `connect` opens; the user's session limit is checked
    /// before connecting, so a refused user costs no handshake. When the config records
    /// the target, the recording starts once connected (a recording that cannot start
    /// under `on_failure = "refuse"` refuses the session).
    pub async fn start<E>(
        self,
        p: &Prelude<'_>,
        connect: impl Future<Output = Result<TerminalStreams, E>>,
    ) -> Result<Opened, Close>
    where
        Close: From<E>,
    {
        let registry = &p.state.terminals;
        let reservation = registry.reserve(&self.label.owner_uid)?;
        let streams = connect.await?;
        let grant_says = TargetRef::terminal(&self.label.target)
            .and_then(|target| access::record_override(p.config, p.who, &target));
        let meta = RecordingMeta {
            user: &p.who.username,
            target: &self.label.target,
            grant_says,
            backend: self.label.backend,
            size: self.size,
        };
        let (recording, unrecorded) = match p
            .state
            .recorder
            .start(p.config.recording.as_ref(), meta)
            .await?
        {
            RecordingStart::NotRecorded => (None, None),
            RecordingStart::Recording(recording) => (Some(recording), None),
            RecordingStart::Unrecorded(why) => (None, Some(why)),
        };
        let attachment =
            registry.start_recorded(self.label, self.size, streams, reservation, recording);
        let mut opened = opened(attachment, self.flow_control, self.resize_order);
        opened.notices.extend(unrecorded.map(|message| {
            ServerFrame::Event(StreamEvent::Status {
                kind: StatusKind::NotRecorded,
                message,
            })
        }));
        Ok(opened)
    }
}

fn opened(attachment: TerminalAttachment, flow_control: bool, order: ResizeOrder) -> Opened {
    let attachment = attachment.with_resize_order(order);
    let attachment = if flow_control {
        attachment.with_flow_control()
    } else {
        attachment
    };
    let recording = attachment.recording();
    let mut opened = Opened::new(attachment.hello(), attachment);
    opened.recording = recording;
    opened
}
