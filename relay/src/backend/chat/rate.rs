//! Per-user rate limit on chat messages: a token bucket of `chat.rate_burst` messages,
//! refilled by one every `chat.rate_interval`. Kept per relay (a user spreading connections
//! over several relays gets the allowance on each).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets kept before full (idle) ones are forgotten.
const MAX_TRACKED_USERS: usize = 10_000;

pub struct RateLimiter {
    burst: f64,
    interval: Duration,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    pub fn new(burst: u32, interval: Duration) -> Self {
        Self {
            burst: f64::from(burst.max(1)),
            interval: interval.max(Duration::from_millis(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one message from `uid`'s allowance; `Err(wait)` says how long until the next
    /// one is allowed.
    pub fn take(&self, uid: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_TRACKED_USERS && !buckets.contains_key(uid) {
            let (burst, interval) = (self.burst, self.interval);
            buckets.retain(|_, b| refilled(*b, now, burst, interval) < burst);
        }
        let bucket = buckets.entry(uid.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let tokens = refilled(*bucket, now, self.burst, self.interval);
        if tokens >= 1.0 {
            *bucket = Bucket {
                tokens: tokens - 1.0,
                at: now,
            };
            Ok(())
        } else {
            *bucket = Bucket { tokens, at: now };
            Err(self.interval.mul_f64(1.0 - tokens))
        }
    }
}

fn refilled(bucket: Bucket, now: Instant, burst: f64, interval: Duration) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.at);
    (bucket.tokens + elapsed.as_secs_f64() / interval.as_secs_f64()).min(burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_one_per_interval_and_users_are_separate() {
        let limiter = RateLimiter::new(3, Duration::from_secs(1));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take("a", t0).is_ok());
        }
        let wait = limiter.take("a", t0).unwrap_err();
        assert!(wait <= Duration::from_secs(1) && wait > Duration::ZERO);
        assert!(limiter.take("b", t0).is_ok(), "another user is not limited");
        assert!(limiter.take("a", t0 + Duration::from_millis(500)).is_err());
        assert!(limiter.take("a", t0 + Duration::from_millis(1600)).is_ok());
        assert!(limiter.take("a", t0 + Duration::from_millis(1700)).is_err());
    }
}
