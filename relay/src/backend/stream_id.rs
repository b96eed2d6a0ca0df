//! Positions in chat rooms and job output: Redis stream entry ids (`<ms>-<seq>`).
//!
//! Redis makes them for rooms and jobs kept in Redis; the in-memory chat store makes ids of
//! the same shape with [`StreamId::next_after`], so a client cannot tell the two apart and
//! `?since=<id>` works the same against either.

use std::fmt;
use std::str::FromStr;

/// A stream entry id; ordered as Redis orders them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a message id: expected <milliseconds>-<sequence>, e.g. 1700000000000-0")]
pub struct BadStreamId(String);

impl StreamId {
    /// Before every entry (`0-0`).
    pub const ZERO: Self = Self { ms: 0, seq: 0 };

    /// The id for an entry added at `now_ms` after `self`: always greater than `self`, even
    /// when the clock stands still or goes back.
    pub fn next_after(self, now_ms: u64) -> Self {
        if now_ms > self.ms {
            Self { ms: now_ms, seq: 0 }
        } else {
            match self.seq.checked_add(1) {
                Some(seq) => Self { ms: self.ms, seq },
                None => Self {
                    ms: self.ms.saturating_add(1),
                    seq: 0,
                },
            }
        }
    }

    /// The greatest id below `self` (`0-0` stays `0-0`): reading after it starts at `self`.
    pub fn before(self) -> Self {
        match (self.ms, self.seq) {
            (0, 0) => Self::ZERO,
            (ms, 0) => Self {
                ms: ms - 1,
                seq: u64::MAX,
            },
            (ms, seq) => Self { ms, seq: seq - 1 },
        }
    }
}

impl FromStr for StreamId {
    type Err = BadStreamId;

    fn from_str(text: &str) -> Result<Self, BadStreamId> {
        let bad = || BadStreamId(text.chars().take(64).collect());
        if text == "0" {
            return Ok(Self::ZERO);
        }
        let (ms, seq) = text.split_once('-').ok_or_else(bad)?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(ms) || !digits(seq) {
            return Err(bad());
        }
        Ok(Self {
            ms: ms.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_print_and_order_like_redis() {
        let a: StreamId = "1700000000000-9".parse().unwrap();
        let b: StreamId = "1700000000000-10".parse().unwrap();
        let c: StreamId = "1700000000001-0".parse().unwrap();
        assert!(a < b && b < c, "numeric, not lexical, order");
        assert_eq!(b.to_string(), "1700000000000-10");
        assert_eq!("0".parse::<StreamId>().unwrap(), StreamId::ZERO);
        for bad in [
            "",
            "-",
            "1-",
            "-1",
            "1-2-3",
            "a-1",
            "1700000000000",
            "+1-0",
            " 1-0",
        ] {
            assert!(bad.parse::<StreamId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn next_ids_increase_even_when_the_clock_does_not() {
        let first = StreamId::ZERO.next_after(1000);
        assert_eq!(first, StreamId { ms: 1000, seq: 0 });
        let same_ms = first.next_after(1000);
        assert_eq!(same_ms, StreamId { ms: 1000, seq: 1 });
        let clock_went_back = same_ms.next_after(999);
        assert!(clock_went_back > same_ms);
        let full = StreamId {
            ms: 5,
            seq: u64::MAX,
        };
        assert!(full.next_after(5) > full);
    }

    #[test]
    fn the_id_before_is_just_below() {
        let id = StreamId { ms: 7, seq: 0 };
        assert_eq!(
            id.before(),
            StreamId {
                ms: 6,
                seq: u64::MAX
            }
        );
        assert!(id.before() < id);
        assert_eq!(
            StreamId { ms: 7, seq: 3 }.before(),
            StreamId { ms: 7, seq: 2 }
        );
        assert_eq!(StreamId::ZERO.before(), StreamId::ZERO);
    }
}
