//! Pod log positions: `<RFC 3339 timestamp of the last line>/<lines received at that
//! timestamp>` (the resume contract of `common::resume`).
//!
//! The API server can only be asked for lines since a time (`sinceTime`, whole seconds),
//! and several lines can share a timestamp. So a stream that starts again — after the API
//! server ended a follow, a container restart, or a browser reconnect — asks for lines
//! since the second of the last delivered line, and [`LineClock`] drops what is older than
//! that line, and the first `count` lines stamped exactly like it: no gap, no duplicate.

use common::Position;
use k8s_openapi::jiff::Timestamp;

/// Where a log stream stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPosition {
    /// The timestamp as the API server wrote it.
    pub stamp: String,
    pub at: Timestamp,
    /// Lines delivered with exactly this timestamp.
    pub count: u64,
}

impl LogPosition {
    /// Reads a position a client presents (`?position=`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            format!("position={text:?} is not a pod log position (<RFC 3339 timestamp>/<count>)")
        };
        let (stamp, count) = text.rsplit_once('/').ok_or_else(bad)?;
        Ok(Self {
            stamp: stamp.to_owned(),
            at: stamp.parse().map_err(|_| bad())?,
            count: count.parse().map_err(|_| bad())?,
        })
    }

    pub fn to_position(&self) -> Position {
        Position(format!("{}/{}", self.stamp, self.count))
    }

    /// `sinceTime` for a request that must include this line: its whole second (kube
    /// rounds `sinceTime` to the nearest second, which could round past the line).
    pub fn since_time(&self) -> Timestamp {
        whole_second(self.at)
    }
}

/// `at` without its fraction of a second (towards the past).
pub fn whole_second(at: Timestamp) -> Timestamp {
    let mut second = at.as_second();
    if at.subsec_nanosecond() < 0 {
        second -= 1;
    }
    Timestamp::from_second(second).unwrap_or(at)
}

/// Splits `<timestamp> <text>`; None when the line does not start with a timestamp.
pub fn split_stamp(line: &str) -> Option<(&str, Timestamp, &str)> {
    let (stamp, text) = line.split_once(' ').unwrap_or((line, ""));
    let at = stamp.parse().ok()?;
    Some((stamp, at, text))
}

/// Tracks the position of the lines delivered, and drops lines a restarted stream sends
/// again.
#[derive(Debug, Clone, Default)]
pub struct LineClock {
    last: Option<LogPosition>,
    /// While set: lines up to this position were delivered already.
    skip: Option<(Timestamp, u64)>,
}

impl LineClock {
    /// A clock that starts after `from` (a client's resume position), if any.
    pub fn new(from: Option<LogPosition>) -> Self {
        let mut clock = Self {
            last: from,
            skip: None,
        };
        clock.rewind();
        clock
    }

    /// The position after the last line delivered.
    #[cfg(test)]
    pub fn last(&self) -> Option<&LogPosition> {
        self.last.as_ref()
    }

    /// The position to announce: empty before the first line.
    pub fn position(&self) -> Position {
        self.last
            .as_ref()
            .map(LogPosition::to_position)
            .unwrap_or_default()
    }

    /// `sinceTime` for the next request, when a line was delivered.
    pub fn since_time(&self) -> Option<Timestamp> {
        self.last.as_ref().map(LogPosition::since_time)
    }

    /// A new request starts at [`LineClock::since_time`]: drop what it sends again.
    pub fn rewind(&mut self) {
        self.skip = self.last.as_ref().map(|p| (p.at, p.count));
    }

    /// Takes one line as the API server sent it (`<timestamp> <text>`); returns it when it
    /// is new, None when it was delivered before. A line without a timestamp is delivered
    /// and leaves the position as it is.
    pub fn take<'a>(&mut self, line: &'a str) -> Option<&'a str> {
        let Some((stamp, at, _)) = split_stamp(line) else {
            return Some(line);
        };
        if let Some((skip_at, left)) = &mut self.skip {
            if at < *skip_at {
                return None;
            }
            if at == *skip_at && *left > 0 {
                *left -= 1;
                return None;
            }
            self.skip = None;
        }
        match &mut self.last {
            Some(last) if last.at == at => last.count += 1,
            _ => {
                self.last = Some(LogPosition {
                    stamp: stamp.to_owned(),
                    at,
                    count: 1,
                })
            }
        }
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "2024-01-01T00:00:01.500000000Z";
    const B: &str = "2024-01-01T00:00:02.000000000Z";

    fn take_all(clock: &mut LineClock, lines: &[String]) -> Vec<String> {
        lines
            .iter()
            .filter_map(|l| clock.take(l).map(str::to_owned))
            .collect()
    }

    #[test]
    fn positions_count_lines_sharing_a_timestamp_and_round_trip() {
        let mut clock = LineClock::new(None);
        assert_eq!(clock.position(), Position::default());
        let lines = [format!("{A} a"), format!("{A} b"), format!("{B} c")];
        assert_eq!(take_all(&mut clock, &lines[..2]).len(), 2);
        assert_eq!(clock.position().as_str(), format!("{A}/2"));
        let parsed = LogPosition::parse(clock.position().as_str()).unwrap();
        assert_eq!(Some(&parsed), clock.last());
        assert_eq!(
            parsed.since_time().to_string(),
            "2024-01-01T00:00:01Z",
            "floored, never rounded up past the line"
        );
        assert!(LogPosition::parse("yesterday/3").is_err());
        assert!(LogPosition::parse(&format!("{A}/x")).is_err());
    }

    #[test]
    fn a_restarted_stream_skips_exactly_what_was_delivered() {
        let sent_again = [
            "2024-01-01T00:00:01.000000000Z older".to_owned(),
            format!("{A} a"),
            format!("{A} b"),
            format!("{A} b2"),
            format!("{B} c"),
        ];
        let mut clock = LineClock::new(Some(LogPosition::parse(&format!("{A}/2")).unwrap()));
        assert_eq!(
            take_all(&mut clock, &sent_again),
            [format!("{A} b2"), format!("{B} c")]
        );
        assert_eq!(clock.position().as_str(), format!("{B}/1"));
        clock.rewind();
        assert!(take_all(&mut clock, &sent_again).is_empty());
        assert_eq!(take_all(&mut clock, &[format!("{B} d")]).len(), 1);
        assert_eq!(clock.position().as_str(), format!("{B}/2"));
    }

    #[test]
    fn lines_without_a_timestamp_pass_and_keep_the_position() {
        let mut clock = LineClock::new(None);
        assert_eq!(clock.take("no stamp here"), Some("no stamp here"));
        assert_eq!(clock.position(), Position::default());
    }
}
