//! What a stream's connection looks like to the user, and what a close means.
//!
//! [`ConnState`] is the one value every view shows (`#conn-state`: its text and its
//! `data-state`). [`on_close`] turns a WebSocket close code (see `common::close`) into what the
//! socket does next. Both are plain data so the rules are tested without a browser; the
//! words come from the catalogue (`i18n`), in the language in force.

use common::CloseCode;

use crate::locale::{Lang, Msg, Text, lang};

pub use common::close::standard;

/// The state of a stream's connection, as shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnState {
    /// Opening a socket. `attempt` is 0 for the first connection, then counts retries.
    Connecting { attempt: u32 },
    /// The relay said `connected`; `resumed` if an earlier session was picked up.
    Connected { resumed: bool },
    /// The connection dropped; the next attempt starts in `in_secs` seconds.
    Reconnecting {
        in_secs: u32,
        attempt: u32,
        reason: String,
    },
    /// The stream is over: no retry unless the user asks.
    Closed {
        code: u16,
        /// The relay's reason, as sent (English): shown as detail.
        reason: String,
        /// The user stopped the stream (not the relay).
        by_user: bool,
    },
}

impl ConnState {
    /// The `data-state` attribute: `connecting`, `connected`, `reconnecting` or `closed`.
    pub fn key(&self) -> &'static str {
        match self {
            Self::Connecting { .. } => "connecting",
            Self::Connected { .. } => "connected",
            Self::Reconnecting { .. } => "reconnecting",
            Self::Closed { .. } => "closed",
        }
    }

    /// The close code for `data-code` when closed.
    pub fn code(&self) -> Option<u16> {
        match self {
            Self::Closed { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The sentence the user reads, in the language in force.
    pub fn label(&self) -> String {
        self.label_in(lang())
    }

    /// The sentence the user reads, in `lang`.
    pub fn label_in(&self, lang: Lang) -> String {
        match self {
            Self::Connecting { attempt: 0 } => Text::Connecting.get(lang).to_owned(),
            Self::Connecting { attempt } => Msg::Reconnecting(*attempt).text(lang),
            Self::Connected { resumed: false } => Text::Connected.get(lang).to_owned(),
            Self::Connected { resumed: true } => Text::ConnectedResumed.get(lang).to_owned(),
            Self::Reconnecting {
                in_secs, reason, ..
            } => Msg::ReconnectingIn {
                reason,
                secs: *in_secs,
            }
            .text(lang),
            Self::Closed {
                code,
                reason,
                by_user,
            } => {
                let summary = if *by_user {
                    Text::Stopped.get(lang).to_owned()
                } else {
                    crate::i18n::close_summary(*code, lang)
                };
                Msg::Closed {
                    summary: &summary,
                    reason,
                }
                .text(lang)
            }
        }
    }

    /// Whether the user may ask to connect again now.
    pub fn can_retry(&self) -> bool {
        matches!(self, Self::Reconnecting { .. } | Self::Closed { .. })
    }

    /// The label of the button that connects again now: "Reconnect now" during a
    /// countdown, "Retry" once the stream has stopped (e.g. a refusal, 4503, that no
    /// reconnect loop would fix).
    pub fn retry_label(&self) -> &'static str {
        match self {
            // The session was opened elsewhere (4409): connecting again takes it back.
            Self::Closed { code, .. }
                if CloseCode::from_code(*code) == Some(CloseCode::Replaced) =>
            {
                Text::TakeItBack
            }
            Self::Closed { .. } => Text::Retry,
            _ => Text::ReconnectNow,
        }
        .get(lang())
    }
}

/// What the socket does after a close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseAction {
    /// Wait (backoff with jitter), then reconnect and resume where it left off.
    Reconnect,
    /// The session is gone (4410): open a new one right away and tell the user.
    NewSession,
    /// The login is not (or no longer) valid: go to the login page.
    Login,
    /// Stay closed and say why.
    Stop,
}

/// Decides what to do after the relay (or the network) closed a stream.
pub fn on_close(code: u16) -> CloseAction {
    use standard::*;
    match CloseCode::from_code(code) {
        Some(CloseCode::SessionExpired) => CloseAction::NewSession,
        Some(CloseCode::Unauthenticated | CloseCode::TokenExpired | CloseCode::TokenRevoked) => {
            CloseAction::Login
        }
        Some(c) if c.should_reconnect() => CloseAction::Reconnect,
        Some(_) => CloseAction::Stop,
        None => match code {
            ABNORMAL | NO_STATUS | SERVICE_RESTART | TRY_AGAIN_LATER | BAD_GATEWAY => {
                CloseAction::Reconnect
            }
            _ => CloseAction::Stop,
        },
    }
}

/// The state to show when a stream stops for good after `code`; `reason` is the relay's.
pub fn closed(code: u16, reason: &str) -> ConnState {
    ConnState::Closed {
        code,
        reason: reason.to_owned(),
        by_user: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn network_drops_relay_restarts_and_a_refused_frame_reconnect() {
        // 1009: the relay refused one oversized frame and kept the session (PROTOCOL.md).
        for code in [1001, 1006, 1005, 1009, 1011, 1012, 1013, 1014, 4408, 4502] {
            assert_eq!(on_close(code), CloseAction::Reconnect, "{code}");
        }
    }

    #[test]
    fn login_problems_go_to_the_login_page() {
        for code in [4401, 4419, 4431] {
            assert_eq!(on_close(code), CloseAction::Login, "{code}");
        }
    }

    #[test]
    fn an_expired_session_starts_a_new_one() {
        assert_eq!(on_close(4410), CloseAction::NewSession);
    }

    #[test]
    fn final_closes_stop_and_say_why() {
        for code in [1000, 4400, 4403, 4404, 4409, 4430, 4999, 3000] {
            assert_eq!(on_close(code), CloseAction::Stop, "{code}");
        }
        let forbidden = closed(4403, "host db1");
        assert_eq!(forbidden.key(), "closed");
        assert_eq!(forbidden.code(), Some(4403));
        assert!(
            forbidden.label().contains("not permitted"),
            "{}",
            forbidden.label()
        );
        assert!(forbidden.label().contains("host db1"));
    }

    // Issue 15: a refusal a retry cannot fix (unknown host key, connection refused, a
    // command that does not exist) stops, says why, and offers a retry: no 2 s loop.
    #[test]
    fn a_backend_refusal_stops_and_offers_a_retry_instead_of_a_loop() {
        assert_eq!(on_close(4503), CloseAction::Stop);
        let refused = closed(
            4503,
            "cannot reach SSH host web (127.0.0.1:22): Connection refused",
        );
        assert!(refused.can_retry());
        assert_eq!(refused.key(), "closed");
        let label = refused.label();
        assert!(label.contains("retrying will not help"), "{label}");
        assert!(label.contains("Connection refused"), "{label}");
        assert!(!label.contains("reconnecting"), "{label}");
        assert_eq!(refused.retry_label(), "Retry");
        assert_eq!(closed(4409, "").retry_label(), "Take it back");
    }

    fn forbidden_in_chinese() -> String {
        closed(4403, "host db1").label_in(Lang::Zh)
    }

    #[test]
    fn every_state_has_a_key_and_a_label() {
        let states = [
            ConnState::Connecting { attempt: 0 },
            ConnState::Connecting { attempt: 2 },
            ConnState::Connected { resumed: true },
            ConnState::Reconnecting {
                in_secs: 3,
                attempt: 1,
                reason: "the relay is restarting".into(),
            },
            closed(1000, ""),
        ];
        let keys: Vec<&str> = states.iter().map(ConnState::key).collect();
        assert_eq!(
            keys,
            [
                "connecting",
                "connecting",
                "connected",
                "reconnecting",
                "closed"
            ]
        );
        assert_eq!(states[1].label(), "Reconnecting… (attempt 2)");
        assert_eq!(
            states[3].label(),
            "Connection lost (the relay is restarting); reconnecting in 3 s"
        );
        assert_eq!(states[4].label(), "Closed: the session ended");
        assert_eq!(states[4].label_in(Lang::Zh), "已关闭：会话已结束");
        assert_eq!(
            forbidden_in_chinese(),
            "已关闭：无权限：你不能打开此目标 — host db1"
        );
        assert!(states[3].can_retry() && states[4].can_retry() && !states[2].can_retry());
    }
}
