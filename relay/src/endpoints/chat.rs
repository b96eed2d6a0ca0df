//! `/ws/chat/{room}?since=<id>`: a configured chat room; who speaks is the token's user.

use async_trait::async_trait;
use common::chat::ChatUser;
use common::query::ChatQuery;

use super::opener::{Prelude, StreamOpener, parse_query};
use crate::access::TargetRef;
use crate::backend::stream_id::StreamId;
use crate::backend::{BackendKind, Opened, chat};
use crate::close::Close;
use crate::config::Config;

pub struct ChatEndpoint {
    pub room: String,
    pub query: String,
}

#[async_trait]
impl StreamOpener for ChatEndpoint {
    type Resolved = ();
    const BACKEND: BackendKind = BackendKind::Chat;

    fn target(&self, config: &Config) -> Result<(TargetRef, ()), Close> {
        match config.chat_room(&self.room) {
            Some(room) => Ok((TargetRef::Chat(room.id.clone()), ())),
            None => Err(Close::not_found(format!(
                "no chat room {:?} is configured",
                self.room.chars().take(64).collect::<String>()
            ))),
        }
    }

    async fn open(&self, p: &Prelude<'_>, (): ()) -> Result<Opened, Close> {
        let query: ChatQuery = parse_query(&self.query)?;
        let since = query
            .since()
            .map(|s| {
                s.as_str()
                    .parse::<StreamId>()
                    .map_err(|e| Close::bad_request(format!("since: {e}")))
            })
            .transpose()?;
        let user = ChatUser {
            uid: p.who.uid.clone(),
            username: p.who.username.clone(),
        };
        Ok(chat::join(&p.state.chat, &self.room, user, since).await?)
    }
}
