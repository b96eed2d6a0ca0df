//! Which console tokens each provider login minted, so that a back-channel logout (which
//! names the provider's user `sub` and perhaps its session `sid`) can revoke exactly them.
//!
//! Kept in this process (bounded, expired entries pruned) and, when `[redis]` is
//! configured, in Redis sets (`opsdeck:oidc:sub:<provider>:<sha256(sub)>`,
//! `opsdeck:oidc:sid:<provider>:<sha256(sid)>`, members `<token id> <expiry>`, expiring
//! with the tokens), so a logout that reaches one relay finds tokens minted by any.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::auth::unix_now;
use crate::redis_link::RedisLink;

/// Tokens remembered in this process; beyond this, expired ones are pruned and then new
/// logins are not remembered here (Redis, when configured, still has them).
const MAX_ENTRIES: usize = 100_000;

/// A console token: its id and expiry (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MintedToken {
    pub token_id: String,
    pub expires_at: u64,
}

#[derive(Default)]
struct Index {
    /// (provider, kind, value digest) → tokens.
    sets: HashMap<String, Vec<MintedToken>>,
    entries: usize,
}

pub struct SessionIndex {
    local: Mutex<Index>,
    redis: Option<Arc<RedisLink>>,
}

fn key(provider: &str, kind: &str, value: &str) -> String {
    format!(
        "opsdeck:oidc:{kind}:{provider}:{}",
        hex::encode(Sha256::digest(value.as_bytes()))
    )
}

impl SessionIndex {
    pub fn new(redis: Option<Arc<RedisLink>>) -> Self {
        Self {
            local: Mutex::new(Index::default()),
            redis,
        }
    }

    /// Remembers `token` under the provider's `sub`, and `sid` when there is one.
    pub async fn record(
        &self,
        provider: &str,
        subject: &str,
        session: Option<&str>,
        token: MintedToken,
    ) {
        let mut keys = vec![key(provider, "sub", subject)];
        if let Some(sid) = session {
            keys.push(key(provider, "sid", sid));
        }
        {
            let mut index = self.local.lock().unwrap_or_else(|e| e.into_inner());
            if index.entries + keys.len() > MAX_ENTRIES {
                let now = unix_now();
                let mut entries = 0;
                index.sets.retain(|_, tokens| {
                    tokens.retain(|t| t.expires_at > now);
                    entries += tokens.len();
                    !tokens.is_empty()
                });
                index.entries = entries;
            }
            if index.entries + keys.len() <= MAX_ENTRIES {
                for k in &keys {
                    index.sets.entry(k.clone()).or_default().push(token.clone());
                }
                index.entries += keys.len();
            } else {
                tracing::warn!(
                    "the single sign-on session index is full; this login is not remembered in this process"
                );
            }
        }
        if let Some(redis) = &self.redis
            && let Err(e) = Self::record_in_redis(redis, &keys, &token).await
        {
            tracing::warn!(
                "could not remember a single sign-on session in Redis ({e}); a back-channel logout reaching another relay will not find it"
            );
        }
    }

    async fn record_in_redis(
        redis: &RedisLink,
        keys: &[String],
        token: &MintedToken,
    ) -> Result<(), String> {
        let ttl = token.expires_at.saturating_sub(unix_now()).max(1);
        let member = format!("{} {}", token.token_id, token.expires_at);
        let mut conn = redis.connection().await.map_err(|e| e.to_string())?;
        let mut pipe = redis::pipe();
        for k in keys {
            pipe.cmd("SADD").arg(k).arg(&member).ignore();
            pipe.cmd("EXPIRE").arg(k).arg(ttl).ignore();
        }
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|e| e.to_string())
    }

    /// The unexpired tokens minted for the provider's session `sid` when it is given and
    /// known, else for its user `sub`.
    pub async fn tokens(
        &self,
        provider: &str,
        subject: Option<&str>,
        session: Option<&str>,
    ) -> Result<Vec<MintedToken>, String> {
        if let Some(sid) = session {
            let found = self.lookup(&key(provider, "sid", sid)).await?;
            if !found.is_empty() || subject.is_none() {
                return Ok(found);
            }
        }
        match subject {
            Some(sub) => self.lookup(&key(provider, "sub", sub)).await,
            None => Ok(Vec::new()),
        }
    }

    async fn lookup(&self, key: &str) -> Result<Vec<MintedToken>, String> {
        let now = unix_now();
        let mut found: Vec<MintedToken> = self
            .local
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sets
            .get(key)
            .cloned()
            .unwrap_or_default();
        if let Some(redis) = &self.redis {
            let mut conn = redis.connection().await.map_err(|e| e.to_string())?;
            let members: Vec<String> = redis::cmd("SMEMBERS")
                .arg(key)
                .query_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            found.extend(members.iter().filter_map(|m| {
                let (id, exp) = m.split_once(' ')?;
                Some(MintedToken {
                    token_id: id.to_owned(),
                    expires_at: exp.parse().ok()?,
                })
            }));
        }
        found.retain(|t| t.expires_at > now);
        found.sort_by(|a, b| a.token_id.cmp(&b.token_id));
        found.dedup();
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_session_id_finds_its_tokens_and_a_subject_finds_all() {
        let index = SessionIndex::new(None);
        let exp = unix_now() + 60;
        let t = |id: &str| MintedToken {
            token_id: id.into(),
            expires_at: exp,
        };
        index.record("corp", "alice", Some("s1"), t("a")).await;
        index.record("corp", "alice", Some("s2"), t("b")).await;
        index.record("other", "alice", None, t("c")).await;
        let ids = |v: Vec<MintedToken>| v.into_iter().map(|t| t.token_id).collect::<Vec<_>>();
        assert_eq!(
            ids(index
                .tokens("corp", Some("alice"), Some("s1"))
                .await
                .unwrap()),
            ["a"]
        );
        assert_eq!(
            ids(index.tokens("corp", Some("alice"), None).await.unwrap()),
            ["a", "b"]
        );
        assert_eq!(
            ids(index
                .tokens("corp", Some("alice"), Some("unknown"))
                .await
                .unwrap()),
            ["a", "b"]
        );
        assert!(
            index
                .tokens("corp", None, Some("unknown"))
                .await
                .unwrap()
                .is_empty()
        );
    }
}
