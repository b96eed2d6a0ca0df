//! `/ws/exec/{token}?position=<id>`: the output another system writes into Redis under a
//! job token.

use async_trait::async_trait;
use common::query::JobQuery;

use super::opener::{Prelude, StreamOpener, parse_query};
use crate::access::TargetRef;
use crate::backend::stream_id::StreamId;
use crate::backend::{BackendKind, Opened, job};
use crate::close::Close;
use crate::config::Config;

pub struct JobEndpoint {
    pub token: String,
    pub query: String,
}

#[async_trait]
impl StreamOpener for JobEndpoint {
    type Resolved = ();
    const BACKEND: BackendKind = BackendKind::Job;

    fn target(&self, config: &Config) -> Result<(TargetRef, ()), Close> {
        // The token is a bearer capability: the refusal never repeats it, the log shows
        // only its first characters.
        job::check_token(&self.token, config.jobs.min_token_length).map_err(|e| {
            tracing::debug!(token = %job::token_prefix(&self.token), "job token refused: {e}");
            Close::from(e)
        })?;
        Ok((TargetRef::Job, ()))
    }

    async fn open(&self, p: &Prelude<'_>, (): ()) -> Result<Opened, Close> {
        let query: JobQuery = parse_query(&self.query)?;
        let after = match query.after() {
            None => StreamId::ZERO,
            Some(text) => text
                .as_str()
                .parse()
                .map_err(|e| Close::bad_request(format!("position: {e}")))?,
        };
        let Some(hub) = &p.state.jobs else {
            return Err(Close::unavailable(
                "job output needs Redis: configure [redis] url",
            ));
        };
        Ok(job::follow_job(hub, &p.config.jobs, &self.token, after).await?)
    }
}
