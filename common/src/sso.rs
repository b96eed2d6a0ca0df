//! Single sign-on through OpenID Connect providers: what the login page shows, the
//! parameters a provider sends back to the relay, and the reasons a sign-in is refused.
//!
//! | endpoint | type |
//! |---|---|
//! | `GET /api/auth/providers` | [`AuthProviders`] |
//! | `GET /api/auth/oidc/{id}/callback?code=&state=&iss=` | [`CallbackQuery`] |
//! | `POST /api/auth/oidc/{id}/backchannel-logout` (form) | [`BackchannelLogoutForm`] |
//! | `POST /api/logout` when the login came from a provider with an end-session endpoint | [`LogoutAnswer`] |
//! | the app's `#/login?sso_error=<code>` after a refused sign-in | [`SsoRefusal`] |

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::QueryError;

/// `GET /api/auth/providers`: how the login page offers to sign in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthProviders {
    /// Whether the user name and password form is offered (`auth.local_login`).
    pub local_login: bool,
    /// One button per configured OpenID Connect provider, in the config's order.
    pub providers: Vec<ProviderButton>,
}

/// One provider's button on the login page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderButton {
    pub id: String,
    /// The button's text.
    pub label: String,
    /// Where the button goes (relative to the relay): `/api/auth/oidc/{id}/login`.
    pub login_path: String,
}

impl ProviderButton {
    /// The relay path that starts a sign-in with provider `id`.
    pub fn login_path_of(id: &str) -> String {
        format!("/api/auth/oidc/{}/login", crate::resume::encode(id))
    }
}

/// `POST /api/logout`, answered with 200 and this body (instead of 204) when the login came
/// from a provider that has an end-session endpoint: the app goes there next, so the user
/// is logged out of the provider too (RP-initiated logout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogoutAnswer {
    pub end_session_url: String,
}

/// Longest callback query string the relay reads (providers send a code, a state, an
/// issuer and perhaps an error description: a few hundred bytes).
pub const MAX_CALLBACK_QUERY: usize = 8 * 1024;

/// Longest single callback parameter.
pub const MAX_CALLBACK_PARAM: usize = 2048;

/// What a provider sends to `GET /api/auth/oidc/{id}/callback` (the authorization
/// response, RFC 6749 §4.1.2 and RFC 9207's `iss`). Other parameters (`session_state`,
/// `scope`) are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    /// The issuer that answered (RFC 9207), checked against the provider's when present.
    pub iss: Option<String>,
    /// The provider's refusal (`access_denied`, `login_required`, ...).
    pub error: Option<String>,
    pub error_description: Option<String>,
}

impl CallbackQuery {
    /// Parses the raw query string, refusing oversized ones and oversized parameters.
    pub fn parse(raw: &str) -> Result<Self, QueryError> {
        if raw.len() > MAX_CALLBACK_QUERY {
            return Err(QueryError::Malformed(format!(
                "the callback query is {} bytes; at most {MAX_CALLBACK_QUERY} are read",
                raw.len()
            )));
        }
        let query: Self =
            serde_urlencoded::from_str(raw).map_err(|e| QueryError::Malformed(e.to_string()))?;
        for (name, value) in [
            ("code", &query.code),
            ("state", &query.state),
            ("iss", &query.iss),
            ("error", &query.error),
            ("error_description", &query.error_description),
        ] {
            if value.as_ref().is_some_and(|v| v.len() > MAX_CALLBACK_PARAM) {
                return Err(QueryError::Malformed(format!(
                    "the callback parameter {name} is longer than {MAX_CALLBACK_PARAM} bytes"
                )));
            }
        }
        Ok(query)
    }
}

/// The form a provider POSTs to `/api/auth/oidc/{id}/backchannel-logout`
/// (OpenID Connect Back-Channel Logout 1.0 §2.5).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BackchannelLogoutForm {
    pub logout_token: String,
}

/// The answer body of a refused back-channel logout (its §2.8: HTTP 400 with an OAuth
/// error).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackchannelLogoutError {
    pub error: String,
    pub error_description: String,
}

/// Why a single sign-on did not log the user in: the relay sends the browser to the app's
/// `#/login?sso_error=<code>` and the login page says [`SsoRefusal::message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SsoRefusal {
    /// The user signed in at the provider but the relay's rules do not admit them.
    NotAllowed,
    /// The provider could not be reached, or answered something unusable.
    ProviderUnreachable,
    /// The provider refused the sign-in (the user cancelled, or the provider said no).
    ProviderRefused,
    /// The callback's `state` is not the one this browser's sign-in started with.
    StateMismatch,
    /// No sign-in was started in this browser, or it took too long.
    LoginExpired,
    /// The provider's answer did not verify (signature, issuer, audience, expiry, nonce),
    /// or the authorization code was refused (e.g. used twice).
    TokenInvalid,
    /// The ID token lacks the claim that names the user.
    ClaimsMissing,
    /// No provider of that id is configured.
    UnknownProvider,
    /// The callback's parameters are missing, oversized or malformed.
    BadCallback,
    /// The relay could not mint its own token.
    Internal,
}

impl SsoRefusal {
    /// Every refusal, for tests and documentation.
    pub const ALL: [Self; 10] = [
        Self::NotAllowed,
        Self::ProviderUnreachable,
        Self::ProviderRefused,
        Self::StateMismatch,
        Self::LoginExpired,
        Self::TokenInvalid,
        Self::ClaimsMissing,
        Self::UnknownProvider,
        Self::BadCallback,
        Self::Internal,
    ];

    /// The code in `sso_error=`.
    pub fn code(self) -> &'static str {
        match self {
            Self::NotAllowed => "not_allowed",
            Self::ProviderUnreachable => "provider_unreachable",
            Self::ProviderRefused => "provider_refused",
            Self::StateMismatch => "state_mismatch",
            Self::LoginExpired => "login_expired",
            Self::TokenInvalid => "token_invalid",
            Self::ClaimsMissing => "claims_missing",
            Self::UnknownProvider => "unknown_provider",
            Self::BadCallback => "bad_callback",
            Self::Internal => "internal",
        }
    }

    /// Reads a code; `None` for one this build does not know.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// What the login page tells the user.
    pub fn message(self) -> &'static str {
        match self {
            Self::NotAllowed => {
                "You signed in, but your account is not allowed to use this console. Ask an administrator to add you to an allowed group."
            }
            Self::ProviderUnreachable => {
                "The sign-in provider could not be reached. Try again in a moment."
            }
            Self::ProviderRefused => "The sign-in provider did not sign you in.",
            Self::StateMismatch => {
                "The sign-in answer does not belong to this browser's sign-in. Start again from this page."
            }
            Self::LoginExpired => {
                "The sign-in took too long or was started elsewhere. Start again from this page."
            }
            Self::TokenInvalid => {
                "The sign-in provider's answer could not be verified. Start again from this page."
            }
            Self::ClaimsMissing => {
                "The sign-in provider did not say who you are (the configured user name claim is missing)."
            }
            Self::UnknownProvider => "That sign-in provider is not configured.",
            Self::BadCallback => "The sign-in answer was malformed.",
            Self::Internal => "The console could not complete the sign-in. Try again.",
        }
    }
}

impl fmt::Display for SsoRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_codes_read_back() {
        for refusal in SsoRefusal::ALL {
            assert_eq!(SsoRefusal::from_code(refusal.code()), Some(refusal));
            let json = serde_json::to_string(&refusal).unwrap();
            assert_eq!(json, format!("\"{}\"", refusal.code()));
        }
        assert_eq!(SsoRefusal::from_code("<script>"), None);
    }

    #[test]
    fn callback_queries_are_bounded() {
        let query = CallbackQuery::parse("code=abc&state=xyz&iss=https%3A%2F%2Fidp").unwrap();
        assert_eq!(query.code.as_deref(), Some("abc"));
        assert_eq!(query.iss.as_deref(), Some("https://idp"));
        let long = format!("code={}", "a".repeat(MAX_CALLBACK_PARAM + 1));
        assert!(CallbackQuery::parse(&long).is_err());
        let huge = "x".repeat(MAX_CALLBACK_QUERY + 1);
        assert!(CallbackQuery::parse(&huge).is_err());
        assert!(CallbackQuery::parse("code=a&code=b").is_err());
    }

    #[test]
    fn login_paths_escape_the_id() {
        assert_eq!(
            ProviderButton::login_path_of("corp sso"),
            "/api/auth/oidc/corp%20sso/login"
        );
    }
}
