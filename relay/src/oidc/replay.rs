//! The `jti`s of the logout tokens already taken, so that one replayed is refused
//! (Back-Channel Logout 1.0 §2.6 step 6: a replayed token could otherwise end sessions
//! the user opened after the logout it was sent for).
//!
//! Each `jti` is kept until its token expires (a token past its `exp` is refused anyway):
//! in this process (at most [`MAX_SEEN`]; when full of unexpired tokens new logout tokens
//! are refused with a 503 rather than taken untracked), and, when `[redis]` is configured,
//! in Redis (`SET opsdeck:oidc:jti:<provider>:<sha256(jti)> NX EX`), so a token replayed to
//! another relay is refused too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::auth::unix_now;
use crate::redis_link::RedisLink;

/// Logout tokens remembered in this process.
pub const MAX_SEEN: usize = 10_000;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("this logout token was already used (its jti was seen before)")]
    Replayed,
    #[error("{0}")]
    Unavailable(String),
}

fn key(provider: &str, jti: &str) -> String {
    format!(
        "opsdeck:oidc:jti:{provider}:{}",
        hex::encode(Sha256::digest(jti.as_bytes()))
    )
}

pub struct SeenTokens {
    /// Key → expiry (unix seconds).
    local: Mutex<HashMap<String, u64>>,
    redis: Option<Arc<RedisLink>>,
    capacity: usize,
}

impl SeenTokens {
    pub fn new(redis: Option<Arc<RedisLink>>) -> Self {
        Self::with_capacity(redis, MAX_SEEN)
    }

    fn with_capacity(redis: Option<Arc<RedisLink>>, capacity: usize) -> Self {
        Self {
            local: Mutex::new(HashMap::new()),
            redis,
            capacity,
        }
    }

    /// Records provider `provider`'s token `jti`, valid until `exp`; refused when it was
    /// recorded before.
    pub async fn first_use(&self, provider: &str, jti: &str, exp: u64) -> Result<(), ReplayError> {
        let key = key(provider, jti);
        let result = self.record(&key, exp).await;
        if matches!(result, Err(ReplayError::Unavailable(_))) {
            self.forget_key(&key).await;
        }
        result
    }

    /// Forgets a `jti` recorded by [`SeenTokens::first_use`] whose logout could not be
    /// applied, so that the provider's retry is taken.
    pub async fn forget(&self, provider: &str, jti: &str) {
        self.forget_key(&key(provider, jti)).await;
    }

    async fn forget_key(&self, key: &str) {
        self.local
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        if let Some(redis) = &self.redis
            && let Ok(mut conn) = redis.connection().await
        {
            let _: Result<(), _> = redis::cmd("DEL").arg(key).query_async(&mut conn).await;
        }
    }

    async fn record(&self, key: &str, exp: u64) -> Result<(), ReplayError> {
        let now = unix_now();
        {
            let mut seen = self.local.lock().unwrap_or_else(|e| e.into_inner());
            if seen.get(key).is_some_and(|until| *until > now) {
                return Err(ReplayError::Replayed);
            }
            if seen.len() >= self.capacity {
                seen.retain(|_, until| *until > now);
            }
            if seen.len() >= self.capacity {
                return Err(ReplayError::Unavailable(format!(
                    "{} unexpired logout tokens are remembered already",
                    self.capacity
                )));
            }
            seen.insert(key.to_owned(), exp);
        }
        if let Some(redis) = &self.redis {
            let ttl = exp.saturating_sub(now).max(1);
            let mut conn = redis
                .connection()
                .await
                .map_err(|e| ReplayError::Unavailable(e.to_string()))?;
            let first: Option<String> = redis::cmd("SET")
                .arg(key)
                .arg(1)
                .arg("NX")
                .arg("EX")
                .arg(ttl)
                .query_async(&mut conn)
                .await
                .map_err(|e| ReplayError::Unavailable(e.to_string()))?;
            if first.is_none() {
                return Err(ReplayError::Replayed);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_jti_is_taken_once_per_provider_and_the_cache_is_bounded() {
        let seen = SeenTokens::with_capacity(None, 2);
        let exp = unix_now() + 60;
        assert_eq!(seen.first_use("corp", "a", exp).await, Ok(()));
        assert_eq!(
            seen.first_use("corp", "a", exp).await,
            Err(ReplayError::Replayed)
        );
        assert_eq!(seen.first_use("other", "a", exp).await, Ok(()));
        seen.forget("other", "a").await;
        assert_eq!(seen.first_use("other", "a", exp).await, Ok(()));
        // Full of unexpired tokens: refused, not taken untracked.
        assert!(matches!(
            seen.first_use("corp", "b", exp).await,
            Err(ReplayError::Unavailable(_))
        ));
        // Expired entries make room.
        let seen = SeenTokens::with_capacity(None, 1);
        assert_eq!(seen.first_use("corp", "old", unix_now() - 1).await, Ok(()));
        assert_eq!(seen.first_use("corp", "new", exp).await, Ok(()));
    }
}
