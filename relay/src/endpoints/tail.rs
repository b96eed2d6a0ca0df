//! `/ws/tail/{file_id}?lines=N`: a live tail of a file listed in the config, by id (a path
//! never comes from the client).

use async_trait::async_trait;
use common::query::TailQuery;

use super::opener::{Prelude, StreamOpener, parse_query};
use crate::access::TargetRef;
use crate::backend::{BackendKind, Opened, tail};
use crate::close::Close;
use crate::config::{Config, FileEntry};

pub struct TailEndpoint {
    pub file_id: String,
    pub query: String,
}

#[async_trait]
impl StreamOpener for TailEndpoint {
    type Resolved = FileEntry;
    const BACKEND: BackendKind = BackendKind::Tail;

    fn target(&self, config: &Config) -> Result<(TargetRef, FileEntry), Close> {
        match config.file(&self.file_id) {
            Some(file) => Ok((TargetRef::File(file.id.clone()), file.clone())),
            None => Err(Close::not_found(format!(
                "no file {:?} is configured for tailing",
                self.file_id.chars().take(64).collect::<String>()
            ))),
        }
    }

    async fn open(&self, p: &Prelude<'_>, file: FileEntry) -> Result<Opened, Close> {
        let query: TailQuery = parse_query(&self.query)?;
        let limits = &p.config.tail;
        let lines = query
            .lines
            .unwrap_or(limits.default_lines)
            .min(limits.max_lines);
        let resume = query.resume_at()?;
        Ok(tail::attach(&p.state.tails, &file, limits, lines, resume).await?)
    }
}
