//! Login throttling: token buckets per source address and per user name at a source
//! address. Guessing one user's password from one address is slowed to the per-user rate;
//! a flood from one address is cut at the per-source rate; and because the user budget is
//! per address too, an attacker cannot lock the real user (at their own address) out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::LoginLimits;

/// Buckets tracked at most; beyond that, full (idle) ones are forgotten first.
const MAX_TRACKED: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Refills for the time passed, then takes one token, or says how long until one.
    fn take(&mut self, burst: u32, per_minute: u32, now: Instant) -> Result<(), Duration> {
        let rate = f64::from(per_minute.max(1)) / 60.0;
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(f64::from(burst.max(1)));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(((1.0 - self.tokens) / rate).ceil()))
        }
    }

    fn full(&self, burst: u32, per_minute: u32, now: Instant) -> bool {
        let rate = f64::from(per_minute.max(1)) / 60.0;
        self.tokens + now.saturating_duration_since(self.at).as_secs_f64() * rate
            >= f64::from(burst)
    }
}

#[derive(Default)]
pub struct LoginThrottle {
    sources: Mutex<HashMap<IpAddr, Bucket>>,
    users: Mutex<HashMap<(IpAddr, String), Bucket>>,
}

impl LoginThrottle {
    /// Takes one attempt from both budgets, or says how long to wait (HTTP 429).
    pub fn admit(&self, limits: &LoginLimits, source: IpAddr, user: &str) -> Result<(), Duration> {
        self.admit_at(limits, source, user, Instant::now())
    }

    fn admit_at(
        &self,
        limits: &LoginLimits,
        source: IpAddr,
        user: &str,
        now: Instant,
    ) -> Result<(), Duration> {
        let user: String = user.chars().take(256).collect();
        take(
            &self.sources,
            source,
            limits.per_source_burst,
            limits.per_source_per_minute,
            now,
        )?;
        take(
            &self.users,
            (source, user),
            limits.per_user_burst,
            limits.per_user_per_minute,
            now,
        )
    }
}

fn take<K: std::hash::Hash + Eq>(
    buckets: &Mutex<HashMap<K, Bucket>>,
    key: K,
    burst: u32,
    per_minute: u32,
    now: Instant,
) -> Result<(), Duration> {
    let mut buckets = buckets.lock().unwrap_or_else(|e| e.into_inner());
    if buckets.len() >= MAX_TRACKED {
        buckets.retain(|_, b| !b.full(burst, per_minute, now));
    }
    if buckets.len() >= MAX_TRACKED {
        // Every tracked address is mid-flood: refuse newcomers too rather than grow.
        return Err(Duration::from_secs(60));
    }
    buckets
        .entry(key)
        .or_insert(Bucket {
            tokens: f64::from(burst.max(1)),
            at: now,
        })
        .take(burst, per_minute, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> LoginLimits {
        LoginLimits {
            per_source_burst: 10,
            per_source_per_minute: 60,
            per_user_burst: 3,
            per_user_per_minute: 6,
            ..LoginLimits::default()
        }
    }

    #[test]
    fn one_user_from_one_address_gets_its_burst_then_waits_for_the_refill() {
        let throttle = LoginThrottle::default();
        let now = Instant::now();
        let attacker: IpAddr = "10.0.0.66".parse().unwrap();
        for _ in 0..3 {
            throttle
                .admit_at(&limits(), attacker, "alice", now)
                .unwrap();
        }
        let wait = throttle
            .admit_at(&limits(), attacker, "alice", now)
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(10));
        // The real user, from their own address, is not locked out.
        let owner: IpAddr = "10.0.0.7".parse().unwrap();
        throttle.admit_at(&limits(), owner, "alice", now).unwrap();
        // After the refill time the attacker gets one more try, not a new burst.
        let later = now + Duration::from_secs(10);
        throttle
            .admit_at(&limits(), attacker, "alice", later)
            .unwrap();
        assert!(
            throttle
                .admit_at(&limits(), attacker, "alice", later)
                .is_err()
        );
    }

    #[test]
    fn a_source_spraying_many_names_is_cut_at_its_own_budget() {
        let throttle = LoginThrottle::default();
        let now = Instant::now();
        let source: IpAddr = "10.0.0.66".parse().unwrap();
        for n in 0..10 {
            throttle
                .admit_at(&limits(), source, &format!("user{n}"), now)
                .unwrap();
        }
        assert!(throttle.admit_at(&limits(), source, "user99", now).is_err());
    }
}
