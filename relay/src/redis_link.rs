//! One shared, self-healing Redis connection for the whole relay.
//!
//! The connection is made on first use (so a relay starts even while Redis is down) and
//! `redis`'s `ConnectionManager` reconnects it after a failure; callers see an error for the
//! commands that failed meanwhile and decide what that means for their users.

use redis::aio::ConnectionManager;
use tokio::sync::Mutex;

#[derive(Debug, thiserror::Error)]
#[error("Redis at {url} is unavailable: {source}")]
pub struct RedisUnavailable {
    url: String,
    source: redis::RedisError,
}

pub struct RedisLink {
    url: String,
    client: redis::Client,
    manager: Mutex<Option<ConnectionManager>>,
}

impl RedisLink {
    pub fn new(url: &str) -> Result<Self, redis::RedisError> {
        Ok(Self {
            url: url.to_owned(),
            client: redis::Client::open(url)?,
            manager: Mutex::new(None),
        })
    }

    /// A connection handle (cheap to clone); connects on first use.
    pub async fn connection(&self) -> Result<ConnectionManager, RedisUnavailable> {
        let mut slot = self.manager.lock().await;
        if let Some(manager) = slot.as_ref() {
            return Ok(manager.clone());
        }
        let manager = ConnectionManager::new(self.client.clone())
            .await
            .map_err(|e| self.unavailable(e))?;
        *slot = Some(manager.clone());
        Ok(manager)
    }

    /// The client, for connections that must be their own (pub/sub, blocking reads).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    pub fn unavailable(&self, source: redis::RedisError) -> RedisUnavailable {
        RedisUnavailable {
            url: self.url.clone(),
            source,
        }
    }
}
