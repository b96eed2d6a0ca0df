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

    fn target(&self, _config: &Config) -> Result<(TargetRef, ()), Close> {
        if job::valid_token(&self.token) {
            Ok((TargetRef::Job, ()))
        } else {
            Err(Close::bad_request(job::token_rule()))
        }
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
        let Some(link) = &p.state.redis else {
            return Err(Close::unavailable(
                "job output needs Redis: configure [redis] url",
            ));
        };
        Ok(job::follow_job(link, &p.config.jobs, &self.token, after).await?)
    }
}
