//! When to try again after a connection drops: exponential backoff with jitter.
//!
//! A relay restart drops every browser at once; if they all came back on the same schedule
//! they would hammer the new relay in lock-step. Each wait is therefore "equal jitter":
//! half of the exponential step, plus a random share of the other half. The random number
//! is passed in so the schedule is plain arithmetic, testable without a browser or a clock.

use std::time::Duration;

/// The first wait, before jitter.
pub const BASE: Duration = Duration::from_millis(500);
/// No wait is ever longer than this.
pub const CAP: Duration = Duration::from_secs(30);
/// A connection that stayed up this long counts as healthy: the next drop starts the
/// schedule from the beginning again.
pub const STABLE_AFTER: Duration = Duration::from_secs(5);

/// The reconnect schedule of one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backoff {
    /// Failed attempts since the last healthy connection.
    attempt: u32,
}

impl Backoff {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many waits were handed out since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The wait before the next attempt. `random` is a number in `[0, 1)` (anything outside
    /// is clamped), e.g. `Math.random()`.
    pub fn next_delay(&mut self, random: f64) -> Duration {
        let step = Self::step(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        let half = step / 2;
        let random = if random.is_finite() {
            random.clamp(0.0, 1.0)
        } else {
            0.0
        };
        half + half.mul_f64(random)
    }

    /// The exponential step for `attempt`, before jitter: BASE * 2^attempt, capped.
    pub fn step(attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(16));
        BASE.saturating_mul(factor).min(CAP)
    }

    /// Starts the schedule again (after a healthy connection, or when the user asks).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Resets the schedule if the connection that just ended had been up for `open_for`.
    pub fn connection_ended(&mut self, open_for: Option<Duration>) {
        if open_for.is_some_and(|d| d >= STABLE_AFTER) {
            self.reset();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn steps_double_from_half_a_second_up_to_the_cap() {
        let steps: Vec<u64> = (0..8)
            .map(|a| Backoff::step(a).as_millis() as u64)
            .collect();
        assert_eq!(steps, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
        assert_eq!(Backoff::step(u32::MAX), CAP);
    }

    #[test]
    fn jitter_stays_between_half_and_the_whole_step() {
        for attempt in 0..10 {
            let step = Backoff::step(attempt);
            for random in [0.0, 0.25, 0.5, 0.999_999] {
                let mut b = Backoff { attempt };
                let d = b.next_delay(random);
                assert!(d >= step / 2 && d <= step, "{attempt} {random} {d:?}");
            }
        }
    }

    #[test]
    fn different_random_numbers_give_different_waits() {
        let low = Backoff::new().next_delay(0.0);
        let high = Backoff::new().next_delay(0.9);
        assert_eq!(low, Duration::from_millis(250));
        assert_eq!(high, Duration::from_millis(475));
    }

    #[test]
    fn odd_random_numbers_are_clamped() {
        assert_eq!(
            Backoff::new().next_delay(f64::NAN),
            Duration::from_millis(250)
        );
        assert_eq!(Backoff::new().next_delay(-3.0), Duration::from_millis(250));
        assert_eq!(Backoff::new().next_delay(7.0), Duration::from_millis(500));
    }

    #[test]
    fn each_wait_advances_the_schedule() {
        let mut b = Backoff::new();
        let waits: Vec<u128> = (0..4).map(|_| b.next_delay(0.0).as_millis()).collect();
        assert_eq!(waits, [250, 500, 1000, 2000]);
        assert_eq!(b.attempt(), 4);
    }

    #[test]
    fn a_healthy_connection_resets_the_schedule_and_a_short_one_does_not() {
        let mut b = Backoff::new();
        b.next_delay(0.0);
        b.next_delay(0.0);
        b.connection_ended(Some(Duration::from_secs(1)));
        assert_eq!(b.attempt(), 2);
        b.connection_ended(None);
        assert_eq!(b.attempt(), 2);
        b.connection_ended(Some(STABLE_AFTER));
        assert_eq!(b.attempt(), 0);
    }
}
