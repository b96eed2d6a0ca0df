//! WebSocket close codes: every close carries one of these and a reason the user can read.
//!
//! Codes below 4000 are the standard ones; 4xxx are Opsdeck's, mirroring HTTP statuses
//! where one fits (4401 ~ 401) so they are easy to remember.

use serde::{Deserialize, Serialize};

/// Why the relay closed a WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CloseCode {
    /// 1000: the stream ended normally (a shell exited; its status came in an `exit` frame).
    Normal,
    /// 1001: the relay is shutting down; reconnecting later will find it (or a sibling).
    GoingAway,
    /// 1009: a frame was larger than the relay's hard limit; the session stays resumable.
    MessageTooBig,
    /// 1011: the relay hit an unexpected error.
    InternalError,
    /// 4400: the request or a frame broke the protocol (bad query parameters).
    BadRequest,
    /// 4401: no token, or a token that is not valid: log in.
    Unauthenticated,
    /// 4403: the user may not open this target.
    Forbidden,
    /// 4404: no such target (host, file, pod, room, job).
    NotFound,
    /// 4408: the browser stopped answering pings.
    IdleTimeout,
    /// 4409: another connection resumed this session.
    Replaced,
    /// 4410: the session to resume has ended or expired; open a new one.
    SessionExpired,
    /// 4419: the login token expired during the session.
    TokenExpired,
    /// 4430: the user's permission for this target was withdrawn.
    PermissionRevoked,
    /// 4431: the login token was revoked (logged out).
    TokenRevoked,
    /// 4502: the backend (sshd, API server, Redis, file) could not be reached or failed.
    BackendUnavailable,
    /// 4503: the backend refused to open the target for a reason a retry cannot fix by
    /// itself (an unknown or changed SSH host key, credentials refused, nothing listening
    /// on a configured host's port, a local shell's command that does not exist): the
    /// browser stops and offers a retry instead of reconnecting in a loop.
    BackendRefused,
}

impl CloseCode {
    pub const ALL: [CloseCode; 16] = [
        Self::Normal,
        Self::GoingAway,
        Self::MessageTooBig,
        Self::InternalError,
        Self::BadRequest,
        Self::Unauthenticated,
        Self::Forbidden,
        Self::NotFound,
        Self::IdleTimeout,
        Self::Replaced,
        Self::SessionExpired,
        Self::TokenExpired,
        Self::PermissionRevoked,
        Self::TokenRevoked,
        Self::BackendUnavailable,
        Self::BackendRefused,
    ];

    pub fn code(self) -> u16 {
        match self {
            Self::Normal => 1000,
            Self::GoingAway => 1001,
            Self::MessageTooBig => 1009,
            Self::InternalError => 1011,
            Self::BadRequest => 4400,
            Self::Unauthenticated => 4401,
            Self::Forbidden => 4403,
            Self::NotFound => 4404,
            Self::IdleTimeout => 4408,
            Self::Replaced => 4409,
            Self::SessionExpired => 4410,
            Self::TokenExpired => 4419,
            Self::PermissionRevoked => 4430,
            Self::TokenRevoked => 4431,
            Self::BackendUnavailable => 4502,
            Self::BackendRefused => 4503,
        }
    }

    pub fn from_code(code: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    /// Whether a client should try to reconnect (and resume) after this close. 1009 is one
    /// of them: the relay refused one frame and kept the session for a resume.
    pub fn should_reconnect(self) -> bool {
        matches!(
            self,
            Self::GoingAway
                | Self::MessageTooBig
                | Self::IdleTimeout
                | Self::InternalError
                | Self::BackendUnavailable
        )
    }

    /// What the browser tells the user, beside the relay's own reason.
    pub fn summary(self) -> &'static str {
        match self {
            Self::Normal => "the session ended",
            Self::GoingAway => "the relay is restarting",
            Self::MessageTooBig => "a message was too large",
            Self::InternalError => "the relay hit an internal error",
            Self::BadRequest => "the request was not understood",
            Self::Unauthenticated => "please log in",
            Self::Forbidden => "you are not permitted to open this",
            Self::NotFound => "no such target",
            Self::IdleTimeout => "the connection went quiet and was dropped",
            Self::Replaced => "this session was opened elsewhere",
            Self::SessionExpired => "the session expired; a new one is needed",
            Self::TokenExpired => "your login expired",
            Self::PermissionRevoked => "your permission was withdrawn",
            Self::TokenRevoked => "you were logged out",
            Self::BackendUnavailable => "the backend could not be reached",
            Self::BackendRefused => "the backend refused; retrying will not help until it is fixed",
        }
    }
}

/// WebSocket close reasons are limited to 123 bytes; cut on a character boundary.
pub fn truncate_reason(reason: &str) -> &str {
    const MAX: usize = 123;
    if reason.len() <= MAX {
        return reason;
    }
    let mut end = MAX;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// Standard WebSocket close codes a client sees that are not in [`CloseCode`] (the relay
/// never sends them; a socket, a browser or a proxy reports them).
pub mod standard {
    /// The socket dropped without a close frame (network lost, relay killed).
    pub const ABNORMAL: u16 = 1006;
    /// A close frame without a code.
    pub const NO_STATUS: u16 = 1005;
    /// The server is restarting.
    pub const SERVICE_RESTART: u16 = 1012;
    /// The server is overloaded; try later.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// A proxy in front of the relay could not reach it.
    pub const BAD_GATEWAY: u16 = 1014;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_round_trip() {
        for code in CloseCode::ALL {
            assert_eq!(CloseCode::from_code(code.code()), Some(code));
        }
        let mut numbers: Vec<u16> = CloseCode::ALL.iter().map(|c| c.code()).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), CloseCode::ALL.len());
    }

    #[test]
    fn reasons_are_cut_on_character_boundaries() {
        let long = "主机".repeat(40);
        let cut = truncate_reason(&long);
        assert!(cut.len() <= 123);
        assert!(long.starts_with(cut));
    }
}
