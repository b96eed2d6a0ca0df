//! What a close means to a chat client: the typed error for each close code, and whether
//! the client reconnects after it or stops.
//!
//! The rule is `common::CloseCode::should_reconnect` (PROTOCOL.md's close table), plus the
//! codes a socket reports without a relay close frame (1005, 1006: the network dropped or
//! the relay was killed; 1012–1014: a restart or a proxy), which reconnect too. 4410 (a
//! resumable session expired) also reconnects: a chat room has no session to lose, only the
//! last message id, which the client keeps.

use common::CloseCode;

pub use common::close::standard;

/// Why the connection to the room ended: one variant per close code the relay sends, and
/// the ways a socket ends without one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    /// 1000: the relay ended the stream normally.
    #[error("the room was closed: {reason}")]
    Ended { reason: String },
    /// 1001: the relay is shutting down (reconnects).
    #[error("the relay is restarting: {reason}")]
    GoingAway { reason: String },
    /// 1009: a frame was too large (reconnects).
    #[error("a message was too large: {reason}")]
    MessageTooBig { reason: String },
    /// 1011: the relay hit an internal error (reconnects).
    #[error("the relay hit an internal error: {reason}")]
    Internal { reason: String },
    /// 4400: the request broke the protocol.
    #[error("the request was not understood: {reason}")]
    BadRequest { reason: String },
    /// 4401: no token, or one the relay does not accept.
    #[error("not logged in: {reason}")]
    Unauthenticated { reason: String },
    /// 4403: the user may not open this room.
    #[error("not permitted to open this room: {reason}")]
    Forbidden { reason: String },
    /// 4404: no such room.
    #[error("no such room: {reason}")]
    NotFound { reason: String },
    /// 4408: the connection stopped answering pings (reconnects).
    #[error("the connection went quiet and was dropped: {reason}")]
    IdleTimeout { reason: String },
    /// 4409: another connection replaced this one.
    #[error("this connection was replaced: {reason}")]
    Replaced { reason: String },
    /// 4410: the session to resume had ended (reconnects from the last message id).
    #[error("the session expired: {reason}")]
    SessionExpired { reason: String },
    /// 4419: the token expired; get a new one and connect again.
    #[error("the token expired: {reason}")]
    TokenExpired { reason: String },
    /// 4430: the permission for this room was withdrawn.
    #[error("the permission for this room was withdrawn: {reason}")]
    PermissionRevoked { reason: String },
    /// 4431: the token was revoked (logged out).
    #[error("the token was revoked: {reason}")]
    TokenRevoked { reason: String },
    /// 4502: the relay's backend (Redis) failed (reconnects).
    #[error("the chat backend could not be reached: {reason}")]
    BackendUnavailable { reason: String },
    /// 4503: the backend refused in a way a retry cannot fix by itself (stops; `retry_now`
    /// tries again once someone has fixed it).
    #[error("the backend refused: {reason}")]
    BackendRefused { reason: String },
    /// No close frame, a restart code, or a connection that could not be opened at all
    /// (refused, reset, a proxy's 5xx) (reconnects).
    #[error("the connection was lost: {reason}")]
    ConnectionLost { code: u16, reason: String },
    /// The relay refused the upgrade over HTTP (403 foreign Origin, 421 unknown Host, 400).
    #[error("the relay refused the connection with HTTP {status}: {reason}")]
    Refused { status: u16, reason: String },
    /// The URL, a token or the Origin cannot be used to open a WebSocket at all.
    #[error("cannot connect: {reason}")]
    Invalid { reason: String },
    /// A close code this client does not know.
    #[error("closed with code {code}: {reason}")]
    Other { code: u16, reason: String },
    /// [`crate::ChatClient::close`] was called.
    #[error("the client was closed")]
    ClosedByClient,
}

impl ChatError {
    /// The error for a close with `code` and the relay's `reason`.
    pub fn from_close(code: u16, reason: &str) -> Self {
        let reason = reason.to_owned();
        match CloseCode::from_code(code) {
            Some(CloseCode::Normal) => Self::Ended { reason },
            Some(CloseCode::GoingAway) => Self::GoingAway { reason },
            Some(CloseCode::MessageTooBig) => Self::MessageTooBig { reason },
            Some(CloseCode::InternalError) => Self::Internal { reason },
            Some(CloseCode::BadRequest) => Self::BadRequest { reason },
            Some(CloseCode::Unauthenticated) => Self::Unauthenticated { reason },
            Some(CloseCode::Forbidden) => Self::Forbidden { reason },
            Some(CloseCode::NotFound) => Self::NotFound { reason },
            Some(CloseCode::IdleTimeout) => Self::IdleTimeout { reason },
            Some(CloseCode::Replaced) => Self::Replaced { reason },
            Some(CloseCode::SessionExpired) => Self::SessionExpired { reason },
            Some(CloseCode::TokenExpired) => Self::TokenExpired { reason },
            Some(CloseCode::PermissionRevoked) => Self::PermissionRevoked { reason },
            Some(CloseCode::TokenRevoked) => Self::TokenRevoked { reason },
            Some(CloseCode::BackendUnavailable) => Self::BackendUnavailable { reason },
            Some(CloseCode::BackendRefused) => Self::BackendRefused { reason },
            None => match code {
                standard::ABNORMAL
                | standard::NO_STATUS
                | standard::SERVICE_RESTART
                | standard::TRY_AGAIN_LATER
                | standard::BAD_GATEWAY => Self::ConnectionLost { code, reason },
                _ => Self::Other { code, reason },
            },
        }
    }

    /// Whether the client reconnects (with backoff) after this, or stops for good.
    pub fn should_reconnect(&self) -> bool {
        match self {
            Self::SessionExpired { .. } | Self::ConnectionLost { .. } => true,
            Self::Refused { status, .. } => *status >= 500,
            Self::Other { .. } | Self::Invalid { .. } | Self::ClosedByClient => false,
            other => other
                .close_code()
                .and_then(CloseCode::from_code)
                .is_some_and(CloseCode::should_reconnect),
        }
    }

    /// Whether the token is the problem: connect again with a fresh one.
    pub fn needs_login(&self) -> bool {
        matches!(
            self,
            Self::Unauthenticated { .. } | Self::TokenExpired { .. } | Self::TokenRevoked { .. }
        )
    }

    /// The WebSocket close code behind this error, when there was one.
    pub fn close_code(&self) -> Option<u16> {
        let code = match self {
            Self::Ended { .. } => CloseCode::Normal,
            Self::GoingAway { .. } => CloseCode::GoingAway,
            Self::MessageTooBig { .. } => CloseCode::MessageTooBig,
            Self::Internal { .. } => CloseCode::InternalError,
            Self::BadRequest { .. } => CloseCode::BadRequest,
            Self::Unauthenticated { .. } => CloseCode::Unauthenticated,
            Self::Forbidden { .. } => CloseCode::Forbidden,
            Self::NotFound { .. } => CloseCode::NotFound,
            Self::IdleTimeout { .. } => CloseCode::IdleTimeout,
            Self::Replaced { .. } => CloseCode::Replaced,
            Self::SessionExpired { .. } => CloseCode::SessionExpired,
            Self::TokenExpired { .. } => CloseCode::TokenExpired,
            Self::PermissionRevoked { .. } => CloseCode::PermissionRevoked,
            Self::TokenRevoked { .. } => CloseCode::TokenRevoked,
            Self::BackendUnavailable { .. } => CloseCode::BackendUnavailable,
            Self::BackendRefused { .. } => CloseCode::BackendRefused,
            Self::ConnectionLost { code, .. } | Self::Other { code, .. } => return Some(*code),
            Self::Refused { .. } | Self::Invalid { .. } | Self::ClosedByClient => return None,
        };
        Some(code.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn every_relay_close_code_maps_to_its_own_error_and_back() {
        for code in CloseCode::ALL {
            let error = ChatError::from_close(code.code(), "why");
            assert_eq!(error.close_code(), Some(code.code()), "{error:?}");
            assert!(error.to_string().contains("why"), "{error}");
        }
    }

    #[test]
    fn drops_restarts_and_backend_failures_reconnect() {
        for code in [
            1001, 1005, 1006, 1009, 1011, 1012, 1013, 1014, 4408, 4410, 4502,
        ] {
            assert!(ChatError::from_close(code, "").should_reconnect(), "{code}");
        }
        assert!(
            ChatError::Refused {
                status: 502,
                reason: String::new()
            }
            .should_reconnect()
        );
    }

    #[test]
    fn refusals_and_final_closes_stop() {
        for code in [
            1000, 4400, 4401, 4403, 4404, 4409, 4419, 4430, 4431, 3000, 4999,
        ] {
            assert!(
                !ChatError::from_close(code, "").should_reconnect(),
                "{code}"
            );
        }
        for status in [400, 403, 421] {
            let refused = ChatError::Refused {
                status,
                reason: String::new(),
            };
            assert!(!refused.should_reconnect(), "{status}");
        }
        assert!(!ChatError::ClosedByClient.should_reconnect());
    }

    #[test]
    fn token_problems_say_to_log_in_again() {
        for code in [4401, 4419, 4431] {
            assert!(ChatError::from_close(code, "").needs_login(), "{code}");
        }
        assert!(!ChatError::from_close(4403, "").needs_login());
    }
}
