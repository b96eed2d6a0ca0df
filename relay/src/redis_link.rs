//! One shared, self-healing Redis connection for the whole relay.
//!
//! The connection is made on first use (so a relay starts even while Redis is down) and
//! `redis`'s `ConnectionManager` reconnects it after a failure; callers see an error for the
//! commands that failed meanwhile and decide what that means for their users.

use std::time::Duration;

use common::CloseCode;
use redis::AsyncConnectionConfig;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::close::CloseCause;

/// First wait before reconnecting after Redis failed; doubled on each failure up to
/// [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between two reconnection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long connecting to Redis may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a command on the shared connection may wait for its reply.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Reconnection attempts the shared connection makes for one failed command. Kept low so a
/// command fails within about a second while Redis is down (a chat message is then
/// reported as not sent at once, instead of after the default ~6 s of retries); the next
/// command tries again.
const SHARED_RETRIES: usize = 2;
/// Beyond its blocking time, how long a blocking read may wait for its reply before the
/// connection is taken for dead.
const BLOCKING_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
#[error("Redis at {url} is unavailable: {source}")]
pub struct RedisUnavailable {
    url: String,
    source: redis::RedisError,
}

impl CloseCause for RedisUnavailable {
    fn close_code(&self) -> CloseCode {
        CloseCode::BackendUnavailable
    }
}

pub struct RedisLink {
    /// The URL without its credentials (see [`redacted`]).
    url: String,
    client: redis::Client,
    manager: Mutex<Slot>,
}

/// The shared connection, or why the last try to make it failed and when.
#[derive(Default)]
struct Slot {
    manager: Option<ConnectionManager>,
    failed: Option<(Instant, redis::RedisError)>,
}

/// After a failed connect, callers within this long get that failure at once instead of
/// each waiting for a connect of their own behind the lock (while Redis is down, every
/// auth check and keepalive would otherwise queue up one after another).
const FAILED_CONNECT_HOLD: Duration = Duration::from_secs(1);

/// The URL as users and logs may see it: a user name or password in it becomes `***`.
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(the configured URL)".to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

impl RedisLink {
    pub fn new(url: &str) -> Result<Self, redis::RedisError> {
        Ok(Self {
            url: redacted(url),
            client: redis::Client::open(url)?,
            manager: Mutex::new(Slot::default()),
        })
    }

    /// A connection handle (cheap to clone); connects on first use.
    pub async fn connection(&self) -> Result<ConnectionManager, RedisUnavailable> {
        let mut slot = self.manager.lock().await;
        if let Some(manager) = slot.manager.as_ref() {
            return Ok(manager.clone());
        }
        if let Some((at, error)) = &slot.failed
            && at.elapsed() < FAILED_CONNECT_HOLD
        {
            return Err(self.unavailable(error.clone()));
        }
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(SHARED_RETRIES)
            .set_max_delay(Duration::from_millis(500))
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        match ConnectionManager::new_with_config(self.client.clone(), config).await {
            Ok(manager) => {
                slot.manager = Some(manager.clone());
                slot.failed = None;
                Ok(manager)
            }
            Err(error) => {
                slot.failed = Some((Instant::now(), error.clone()));
                Err(self.unavailable(error))
            }
        }
    }

    /// A connection of its own for a blocking read (`XREAD BLOCK`, `BLMOVE`) that may hold
    /// the reply for up to `block`: blocking reads on the shared connection would stall
    /// every other command behind them.
    pub async fn blocking_connection(
        &self,
        block: Duration,
    ) -> Result<MultiplexedConnection, RedisUnavailable> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(block + BLOCKING_GRACE));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| self.unavailable(e))
    }

    pub fn unavailable(&self, source: redis::RedisError) -> RedisUnavailable {
        RedisUnavailable {
            url: self.url.clone(),
            source,
        }
    }
}

/// Waits between reconnection attempts: doubling from [`MIN_BACKOFF`] up to
/// [`MAX_BACKOFF`], with jitter so that many relays do not reconnect in step.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    pub fn new() -> Self {
        Self { next: MIN_BACKOFF }
    }

    /// The wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        delay.mul_f64(rand::random::<f64>().mul_add(0.5, 0.75))
    }

    /// Redis answered: start again from the shortest wait next time.
    pub fn reset(&mut self) {
        self.next = MIN_BACKOFF;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_leave_the_url() {
        assert_eq!(
            redacted("redis://:hunter2@redis:6379/0"),
            "redis://***@redis:6379/0"
        );
        assert_eq!(
            redacted("rediss://user:p%40ss@10.0.0.1/2"),
            "rediss://***@10.0.0.1/2"
        );
        assert_eq!(
            redacted("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        let error = RedisLink::new("redis://:hunter2@127.0.0.1:1/0")
            .unwrap()
            .unavailable(redis::RedisError::from((redis::ErrorKind::Io, "refused")));
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }

    #[test]
    fn backoff_doubles_up_to_a_cap_and_resets() {
        let mut backoff = Backoff::new();
        let mut expected = MIN_BACKOFF;
        for _ in 0..12 {
            assert_eq!(backoff.next, expected);
            let delay = backoff.next_delay();
            assert!(
                delay >= expected.mul_f64(0.75) && delay <= expected.mul_f64(1.25),
                "{delay:?} is not {expected:?} ± 25 %"
            );
            expected = (expected * 2).min(MAX_BACKOFF);
        }
        assert_eq!(backoff.next, MAX_BACKOFF, "the cap was never reached");
        backoff.reset();
        assert_eq!(backoff.next, MIN_BACKOFF);
    }
}
