//! Resume bookkeeping: how far this browser has got in a stream, so a reconnect picks up
//! exactly after it — nothing lost, nothing shown twice.
//!
//! The contract is `common::resume`: the relay announces `session` and `position` in its
//! `connected` frame; the client counts what it receives (terminal bytes) or takes the
//! position the relay stamps on each batch (lines, chat message ids, job entries), and
//! presents `?session=..&position=..` when it reconnects. When the relay starts sending from
//! an earlier position than the client reached, the overlap is skipped here; when it starts
//! later, the jump is reported as lost output.

use common::{Position, ResumeQuery};

/// What a `connected` frame meant, for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connected {
    /// The first connection of this view.
    First,
    /// The earlier session was picked up; `lost` counts bytes or lines that could not be
    /// replayed (0 when nothing was lost).
    Resumed { lost: u64 },
    /// The relay started a new session although this view had one: its earlier output is
    /// not coming back.
    NewSession,
}

/// The resume state of one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    session: Option<String>,
    position: Option<Position>,
    /// Bytes or lines the relay is about to send again that were already shown.
    skip: u64,
}

impl Progress {
    pub fn new() -> Self {
        Self::default()
    }

    /// Progress that resumes `session` from its start (a view opened afresh, e.g. after a
    /// page reload, asks for everything the relay still keeps: the scrollback).
    pub fn resuming(session: String) -> Self {
        Self {
            session: Some(session),
            position: Some(Position::count(0)),
            skip: 0,
        }
    }

    #[cfg(test)]
    pub fn session(&self) -> Option<&str> {
        self.session.as_deref()
    }

    #[cfg(test)]
    pub fn position(&self) -> Option<&Position> {
        self.position.as_ref()
    }

    /// Bytes received so far, for byte-counted streams (terminals).
    pub fn received_bytes(&self) -> u64 {
        self.position
            .as_ref()
            .and_then(Position::as_count)
            .unwrap_or(0)
    }

    /// The resume token for the next connection: `session=..&position=..`, or `None` on
    /// the first connection (and after [`Progress::forget_session`]).
    pub fn query(&self) -> Option<String> {
        if self.session.is_none() && self.position.is_none() {
            return None;
        }
        let query = ResumeQuery {
            session: self.session.clone(),
            position: self.position.clone(),
            since: None,
        };
        Some(query.to_query())
    }

    /// Drops the session (the relay said it expired): the next connection starts afresh.
    pub fn forget_session(&mut self) {
        self.session = None;
        self.position = None;
        self.skip = 0;
    }

    /// Takes in the relay's `connected` frame.
    pub fn on_connected(&mut self, session: &str, position: &Position, resumed: bool) -> Connected {
        let had = self.session.is_some() || self.position.is_some();
        let before = self.position.take();
        self.session = (!session.is_empty()).then(|| session.to_owned());
        self.position = (!position.is_empty()).then(|| position.clone());
        self.skip = 0;
        if !had {
            return Connected::First;
        }
        if !resumed {
            return Connected::NewSession;
        }
        // Resumed: compare where the relay starts with where we were, when both are counts.
        let (Some(ours), Some(theirs)) = (
            before.as_ref().and_then(Position::as_count),
            position.as_count(),
        ) else {
            return Connected::Resumed { lost: 0 };
        };
        if theirs < ours {
            // Keep our position; the first `ours - theirs` bytes or lines are repeats.
            self.position = before;
            self.skip = ours - theirs;
            Connected::Resumed { lost: 0 }
        } else {
            Connected::Resumed {
                lost: theirs - ours,
            }
        }
    }

    /// Counts `len` terminal bytes; returns how many leading bytes were already shown and
    /// must be skipped.
    pub fn on_bytes(&mut self, len: u64) -> u64 {
        let skip = self.skip.min(len);
        self.skip -= skip;
        let now = self.received_bytes();
        self.position = Some(Position::count(now.saturating_add(len - skip)));
        skip
    }

    /// Takes in a batch of `count` lines ending at `end`; returns how many leading lines
    /// were already shown and must be skipped.
    pub fn on_lines(&mut self, end: &Position, count: usize) -> usize {
        let count_u64 = count as u64;
        let ours = self.position.as_ref().and_then(Position::as_count);
        let skip = match (ours, end.as_count()) {
            (Some(ours), Some(end)) => {
                let start = end.saturating_sub(count_u64);
                ours.saturating_sub(start).min(count_u64)
            }
            _ => 0,
        };
        let keep_ours = matches!((ours, end.as_count()), (Some(o), Some(e)) if o > e);
        if !keep_ours {
            self.position = Some(end.clone());
        }
        self.skip = 0;
        usize::try_from(skip).unwrap_or(count)
    }

    /// Takes in an entry with its own id (a chat message or a job output entry); returns
    /// whether it is new (false: it was already shown).
    pub fn on_entry(&mut self, id: &Position) -> bool {
        if let (Some(ours), Some(new)) = (
            self.position.as_ref().and_then(Position::entry_id),
            id.entry_id(),
        ) && new <= ours
        {
            return false;
        }
        self.position = Some(id.clone());
        true
    }

    /// The relay skipped ahead (`gap`): continue from `position`.
    pub fn on_gap(&mut self, position: &Position) {
        self.position = Some(position.clone());
        self.skip = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn terminal_at(session: &str, at: u64) -> Progress {
        let mut p = Progress::new();
        p.on_connected(session, &Position::count(0), false);
        p.on_bytes(at);
        p
    }

    #[test]
    fn first_connection_has_no_resume_token() {
        let p = Progress::new();
        assert_eq!(p.query(), None);
    }

    #[test]
    fn terminal_bytes_are_counted_into_the_resume_token() {
        let mut p = Progress::new();
        assert_eq!(
            p.on_connected("9f86", &Position::count(0), false),
            Connected::First
        );
        assert_eq!(p.on_bytes(10), 0);
        assert_eq!(p.on_bytes(5), 0);
        assert_eq!(p.query().as_deref(), Some("session=9f86&position=15"));
    }

    #[test]
    fn a_view_opened_on_a_known_session_asks_for_all_of_it() {
        let mut p = Progress::resuming("9f86".into());
        assert_eq!(p.query().as_deref(), Some("session=9f86&position=0"));
        assert_eq!(
            p.on_connected("9f86", &Position::count(0), true),
            Connected::Resumed { lost: 0 }
        );
        assert_eq!(p.on_bytes(5), 0);
        assert_eq!(p.query().as_deref(), Some("session=9f86&position=5"));
    }

    #[test]
    fn counting_starts_where_the_relay_starts_sending() {
        let mut p = Progress::new();
        p.on_connected("s", &Position::count(4096), false);
        p.on_bytes(4);
        assert_eq!(p.position(), Some(&Position::count(4100)));
    }

    #[test]
    fn reconnect_within_grace_replays_missed_bytes_once() {
        let mut p = terminal_at("s", 100);
        assert_eq!(
            p.on_connected("s", &Position::count(100), true),
            Connected::Resumed { lost: 0 }
        );
        assert_eq!(p.on_bytes(20), 0);
        assert_eq!(p.query().as_deref(), Some("session=s&position=120"));
    }

    #[test]
    fn bytes_resent_from_before_our_position_are_skipped() {
        let mut p = terminal_at("s", 100);
        p.on_connected("s", &Position::count(90), true);
        // 10 bytes overlap, spread over two frames.
        assert_eq!(p.on_bytes(6), 6);
        assert_eq!(p.on_bytes(8), 4);
        assert_eq!(p.on_bytes(8), 0);
        assert_eq!(p.position(), Some(&Position::count(112)));
    }

    #[test]
    fn bytes_no_longer_kept_are_reported_lost() {
        let mut p = terminal_at("s", 100);
        assert_eq!(
            p.on_connected("s", &Position::count(160), true),
            Connected::Resumed { lost: 60 }
        );
        p.on_bytes(1);
        assert_eq!(p.position(), Some(&Position::count(161)));
    }

    #[test]
    fn a_fresh_session_after_a_reconnect_is_reported() {
        let mut p = terminal_at("old", 100);
        assert_eq!(
            p.on_connected("new", &Position::count(0), false),
            Connected::NewSession
        );
        assert_eq!(p.session(), Some("new"));
        assert_eq!(p.position(), Some(&Position::count(0)));
    }

    #[test]
    fn an_expired_session_is_forgotten() {
        let mut p = terminal_at("old", 100);
        p.forget_session();
        assert_eq!(p.query(), None);
        // The next connection is a first one again, from the browser's point of view.
        assert_eq!(
            p.on_connected("new", &Position::count(0), false),
            Connected::First
        );
    }

    #[test]
    fn tail_lines_take_the_relays_position() {
        let mut p = Progress::new();
        p.on_connected("t1", &Position::count(0), false);
        assert_eq!(p.on_lines(&Position::count(3), 3), 0);
        assert_eq!(p.on_lines(&Position::count(5), 2), 0);
        assert_eq!(p.query().as_deref(), Some("session=t1&position=5"));
    }

    #[test]
    fn tail_lines_already_shown_are_skipped_after_a_resume() {
        let mut p = Progress::new();
        p.on_connected("t1", &Position::count(0), false);
        p.on_lines(&Position::count(5), 5);
        p.on_connected("t1", &Position::count(3), true);
        // Lines 3..7 arrive again: 3 and 4 were shown.
        assert_eq!(p.on_lines(&Position::count(7), 4), 2);
        assert_eq!(p.position(), Some(&Position::count(7)));
        // A batch entirely before our position is skipped whole, and keeps our position.
        assert_eq!(p.on_lines(&Position::count(6), 2), 2);
        assert_eq!(p.position(), Some(&Position::count(7)));
    }

    #[test]
    fn pod_log_positions_are_timestamps_and_taken_as_they_come() {
        let mut p = Progress::new();
        p.on_connected("", &Position::default(), false);
        let at = Position::from("2026-01-02T03:04:05.123456789Z/2");
        assert_eq!(p.on_lines(&at, 2), 0);
        assert_eq!(p.session(), None);
        assert_eq!(
            p.query().as_deref(),
            Some("position=2026-01-02T03:04:05.123456789Z%2F2")
        );
    }

    #[test]
    fn chat_messages_seen_before_are_dropped() {
        let mut p = Progress::new();
        p.on_connected("ops", &Position::default(), false);
        assert!(p.on_entry(&Position::from("1700000000000-0")));
        assert!(p.on_entry(&Position::from("1700000000000-1")));
        assert!(!p.on_entry(&Position::from("1700000000000-1")));
        assert!(!p.on_entry(&Position::from("1699999999999-5")));
        assert!(p.on_entry(&Position::from("1700000000001-0")));
        assert_eq!(
            p.query().as_deref(),
            Some("session=ops&position=1700000000001-0")
        );
    }

    #[test]
    fn a_gap_moves_the_position_forward() {
        let mut p = terminal_at("s", 10);
        p.on_gap(&Position::count(4096));
        assert_eq!(p.query().as_deref(), Some("session=s&position=4096"));
    }
}
