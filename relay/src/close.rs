//! How a stream ends, as one value: [`Close`] is both the close frame the browser gets and
//! the error that caused it, from a refused open to a session that ended.
//!
//! Every error type a user can meet implements [`CloseCause`]: its close code, once; its
//! `Display` is the reason. HTTP answers derive their status from the same code
//! ([`http_status`]), so a refusal reads the same on a WebSocket and on the API.

use std::fmt;

use common::close::truncate_reason;
use common::{CloseCode, QueryError};
use warp::http::StatusCode;

/// A close code and the reason the user reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    pub code: CloseCode,
    pub reason: String,
}

impl Close {
    pub fn new(code: CloseCode, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }

    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(CloseCode::BadRequest, reason)
    }

    pub fn not_found(reason: impl Into<String>) -> Self {
        Self::new(CloseCode::NotFound, reason)
    }

    pub fn unavailable(reason: impl Into<String>) -> Self {
        Self::new(CloseCode::BackendUnavailable, reason)
    }

    /// The reason as a close frame can carry it (at most 123 bytes).
    pub fn frame_reason(&self) -> &str {
        truncate_reason(&self.reason)
    }

    /// The HTTP status of the same refusal.
    pub fn http_status(&self) -> StatusCode {
        http_status(self.code)
    }
}

impl fmt::Display for Close {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code.code(), self.reason)
    }
}

/// An error that ends (or refuses) a stream: the code it closes with; its `Display` is the
/// reason.
pub trait CloseCause: fmt::Display {
    fn close_code(&self) -> CloseCode;
}

impl<E: CloseCause> From<E> for Close {
    fn from(e: E) -> Self {
        Self::new(e.close_code(), e.to_string())
    }
}

impl CloseCause for QueryError {
    fn close_code(&self) -> CloseCode {
        CloseCode::BadRequest
    }
}

/// The HTTP status that mirrors a close code (4401 ~ 401, 4502 ~ 502: see
/// `common::close`).
pub fn http_status(code: CloseCode) -> StatusCode {
    match code {
        CloseCode::Normal => StatusCode::OK,
        CloseCode::GoingAway => StatusCode::SERVICE_UNAVAILABLE,
        CloseCode::MessageTooBig => StatusCode::PAYLOAD_TOO_LARGE,
        CloseCode::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        CloseCode::BadRequest => StatusCode::BAD_REQUEST,
        CloseCode::Unauthenticated | CloseCode::TokenExpired | CloseCode::TokenRevoked => {
            StatusCode::UNAUTHORIZED
        }
        CloseCode::Forbidden | CloseCode::PermissionRevoked => StatusCode::FORBIDDEN,
        CloseCode::NotFound => StatusCode::NOT_FOUND,
        CloseCode::IdleTimeout => StatusCode::REQUEST_TIMEOUT,
        CloseCode::Replaced => StatusCode::CONFLICT,
        CloseCode::SessionExpired => StatusCode::GONE,
        // Like 4502, a failure of the backend behind the relay (a gateway's error).
        CloseCode::BackendUnavailable | CloseCode::BackendRefused => StatusCode::BAD_GATEWAY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opsdeck_codes_mirror_their_http_status() {
        for code in CloseCode::ALL {
            let number = code.code();
            if (4400..4600).contains(&number)
                && !matches!(
                    code,
                    CloseCode::TokenExpired
                        | CloseCode::PermissionRevoked
                        | CloseCode::TokenRevoked
                        | CloseCode::BackendRefused
                )
            {
                assert_eq!(http_status(code).as_u16(), number - 4000, "{code:?}");
            }
        }
    }

    #[test]
    fn errors_become_closes_with_their_own_words() {
        let close = Close::from(QueryError::PositionWithoutSession);
        assert_eq!(close.code, CloseCode::BadRequest);
        assert_eq!(close.reason, "position needs a session");
        let long = Close::bad_request("é".repeat(100));
        assert!(long.frame_reason().len() <= 123);
    }
}
