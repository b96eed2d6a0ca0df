//! Verifying a Back-Channel Logout 1.0 logout token (§2.6) with `jsonwebtoken` and the
//! provider's key set. Not through `openidconnect`'s ID token verifier: a logout token may
//! name only the provider's session (`sid`) and no user (`sub`), which an ID token never
//! may, so that verifier refuses it.
//!
//! Checked: the signature, by the provider key the header names (asymmetric algorithms
//! only: no `none`, no HMAC with the client secret); `iss` is the configured issuer; `aud`
//! is our client id and names no one else; `iat` and `exp` are there and `exp` has not
//! passed (no leeway, as for ID tokens); the `typ` header, when present, is a JWT's or a
//! logout token's; the `events` claim holds the back-channel logout event; there is no
//! `nonce`; there is a `jti`; there is a `sub` or a `sid`.

use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use openidconnect::core::CoreJsonWebKeySet;
use serde::Deserialize;

/// The event a logout token must carry (Back-Channel Logout 1.0 §2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Longest `jti`, `sub` or `sid` taken from a logout token.
const MAX_CLAIM_BYTES: usize = 1024;

/// Signature algorithms a logout token may use.
const ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Why a logout token was refused.
#[derive(Debug, thiserror::Error)]
pub enum LogoutTokenError {
    /// The token names a key the provider's key set lacks (perhaps rotated in since the
    /// set was read: read it again and retry).
    #[error("the logout token is signed with a key the provider does not publish")]
    NoMatchingKey,
    #[error("{0}")]
    Invalid(String),
}

/// What a verified logout token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutClaims {
    pub jti: String,
    /// Unix seconds.
    pub exp: u64,
    pub sub: Option<String>,
    pub sid: Option<String>,
}

#[derive(Deserialize)]
struct Raw {
    aud: serde_json::Value,
    /// Required: a token without it does not deserialize (`Validation` checks only the
    /// presence of `exp`, `iss` and `aud`).
    #[allow(dead_code)]
    iat: u64,
    exp: u64,
    jti: Option<String>,
    sub: Option<String>,
    sid: Option<String>,
    nonce: Option<serde_json::Value>,
    events: Option<serde_json::Map<String, serde_json::Value>>,
}

fn invalid(why: impl Into<String>) -> LogoutTokenError {
    LogoutTokenError::Invalid(why.into())
}

/// The key of `keys` the token's header names (by `kid`, else the only one that fits).
fn key_for<'k>(
    keys: &'k JwkSet,
    kid: Option<&str>,
    alg: Algorithm,
) -> Result<&'k Jwk, LogoutTokenError> {
    let fits = |jwk: &&Jwk| {
        jwk.common
            .public_key_use
            .as_ref()
            .is_none_or(|u| *u == PublicKeyUse::Signature)
            && jwk
                .common
                .key_algorithm
                .is_none_or(|a| a.to_string() == format!("{alg:?}"))
    };
    let mut candidates = keys
        .keys
        .iter()
        .filter(|jwk| kid.is_none() || jwk.common.key_id.as_deref() == kid)
        .filter(fits);
    match (candidates.next(), candidates.next(), kid) {
        (Some(jwk), None, _) | (Some(jwk), Some(_), Some(_)) => Ok(jwk),
        (None, _, _) => Err(LogoutTokenError::NoMatchingKey),
        (Some(_), Some(_), None) => Err(invalid(
            "the logout token names no key (kid) and the provider publishes several",
        )),
    }
}

/// Verifies `token` as a logout token of `issuer` for `client_id`, signed by one of `keys`.
pub fn verify(
    token: &str,
    keys: &CoreJsonWebKeySet,
    issuer: &str,
    client_id: &str,
) -> Result<LogoutClaims, LogoutTokenError> {
    let header = jsonwebtoken::decode_header(token)
        .map_err(|e| invalid(format!("not a signed JWT: {e}")))?;
    if !ALGORITHMS.contains(&header.alg) {
        return Err(invalid(format!(
            "the logout token is signed with {:?}, which is not accepted (asymmetric algorithms only)",
            header.alg
        )));
    }
    if let Some(typ) = &header.typ {
        let typ = typ.to_ascii_lowercase();
        let typ = typ.strip_prefix("application/").unwrap_or(&typ);
        if !["logout+jwt", "jwt", "jose"].contains(&typ) {
            return Err(invalid("the logout token's typ header is not a JWT's"));
        }
    }
    let keys: JwkSet = serde_json::to_value(keys)
        .and_then(serde_json::from_value)
        .map_err(|e| invalid(format!("the provider's key set is unreadable: {e}")))?;
    let jwk = key_for(&keys, header.kid.as_deref(), header.alg)?;
    let key = DecodingKey::from_jwk(jwk)
        .map_err(|e| invalid(format!("the provider's key is unusable: {e}")))?;
    let mut validation = Validation::new(header.alg);
    validation.leeway = 0;
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[client_id]);
    validation.set_required_spec_claims(&["iss", "aud", "iat", "exp"]);
    let raw = jsonwebtoken::decode::<Raw>(token, &key, &validation)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                invalid("the logout token's signature does not verify with the key it names")
            }
            _ => invalid(format!("the logout token does not verify: {e}")),
        })?
        .claims;
    if let serde_json::Value::Array(all) = &raw.aud
        && all.iter().any(|a| a.as_str() != Some(client_id))
    {
        return Err(invalid(
            "the logout token is also meant for other audiences",
        ));
    }
    if !raw
        .events
        .as_ref()
        .and_then(|events| events.get(BACKCHANNEL_LOGOUT_EVENT))
        .is_some_and(serde_json::Value::is_object)
    {
        return Err(invalid(format!(
            "the logout token's events claim lacks {BACKCHANNEL_LOGOUT_EVENT}"
        )));
    }
    if raw.nonce.is_some() {
        return Err(invalid("a logout token must not carry a nonce"));
    }
    let bounded = |what: &str, value: Option<String>| match value {
        Some(v) if v.is_empty() || v.len() > MAX_CLAIM_BYTES => Err(invalid(format!(
            "the logout token's {what} is empty or longer than {MAX_CLAIM_BYTES} bytes"
        ))),
        other => Ok(other),
    };
    let jti = bounded("jti", raw.jti)?.ok_or_else(|| invalid("the logout token has no jti"))?;
    let sub = bounded("sub", raw.sub)?;
    let sid = bounded("sid", raw.sid)?;
    if sub.is_none() && sid.is_none() {
        return Err(invalid("the logout token names neither a sub nor a sid"));
    }
    Ok(LogoutClaims {
        jti,
        exp: raw.exp,
        sub,
        sid,
    })
}
