//! What every stream endpoint implements, and the one way its query string is read.

use std::sync::Arc;

use async_trait::async_trait;
use common::EndpointQuery;

use crate::access::TargetRef;
use crate::auth::Principal;
use crate::backend::{BackendKind, Opened};
use crate::close::Close;
use crate::config::Config;
use crate::state::AppState;

/// What an endpoint's `open` may use: the shared hubs, the config snapshot its `target`
/// was resolved against, and the user.
pub struct Prelude<'a> {
    pub state: &'a AppState,
    pub config: &'a Arc<Config>,
    pub who: &'a Principal,
}

/// One kind of stream endpoint.
#[async_trait]
pub trait StreamOpener: Send + Sync + 'static {
    /// What `target` found in the config (the target's entry), for `open`.
    type Resolved: Send + 'static;

    const BACKEND: BackendKind;

    /// The target asked for and its config entry; 4404 when the config has none.
    fn target(&self, config: &Config) -> Result<(TargetRef, Self::Resolved), Close>;

    /// Opens (or resumes) the stream for a user already permitted to.
    async fn open(&self, prelude: &Prelude<'_>, resolved: Self::Resolved) -> Result<Opened, Close>;
}

/// Parses an endpoint's query string (4400 with what was wrong).
pub fn parse_query<Q: EndpointQuery>(raw: &str) -> Result<Q, Close> {
    Q::parse(raw).map_err(Close::from)
}
