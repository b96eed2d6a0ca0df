//! OpenID Connect providers (`[[auth.oidc]]`): single sign-on through the company's
//! identity provider (`oidc.rs` runs the flow).
//!
//! A provider user is named `<provider id>:<username claim>` (e.g. `corp:alice`), apart from
//! the configured users, and gets the Opsdeck groups its IdP groups map to in
//! `group_mapping` — never an IdP group by its own name — plus those `[groups]` gives that
//! name. `[[grants]]` stay the one place that says who may open what.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// Longest provider id (it is part of user names and URLs).
pub const MAX_PROVIDER_ID: usize = 32;

/// One OpenID Connect provider.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProvider {
    /// Used in URLs (`/api/auth/oidc/{id}/...`) and as the prefix of its users' names
    /// (`<id>:<name>`): letters, digits, `-` and `_`, at most 32.
    pub id: String,
    /// The login button's text. Default "Sign in with <id>".
    #[serde(default)]
    pub label: Option<String>,
    /// The issuer URL; its `/.well-known/openid-configuration` is read (discovery). Must be
    /// `https://`, except on a loopback address.
    pub issuer: String,
    pub client_id: String,
    /// Name of the environment variable holding the client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// A file holding the client secret (e.g. a mounted secret); surrounding whitespace is
    /// trimmed. Exactly one of `client_secret_env` and `client_secret_file` is set: secrets
    /// never sit in the config file itself.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// Scopes asked for. Default `["openid", "email", "profile"]` (`openid` is always sent).
    #[serde(default = "defaults::scopes")]
    pub scopes: Vec<String>,
    /// The ID token claim that names the user. Default `preferred_username`.
    #[serde(default = "defaults::username_claim")]
    pub username_claim: String,
    /// The ID token claim that lists the user's groups (a list of strings, or one string).
    /// Default `groups`.
    #[serde(default = "defaults::groups_claim")]
    pub groups_claim: String,
    /// User names (the `username_claim`'s values) admitted.
    #[serde(default)]
    pub allowed_users: Vec<String>,
    /// E-mail domains admitted (`example.com` admits `alice@example.com`; an `email_verified`
    /// of false is never admitted by its domain).
    #[serde(default)]
    pub allowed_email_domains: Vec<String>,
    /// IdP groups of which the user must be in at least one (on top of `allowed_users` /
    /// `allowed_email_domains` when those are set). At least one of these three lists is
    /// set: nobody is admitted merely for having an account at the provider.
    #[serde(default)]
    pub required_groups: Vec<String>,
    /// IdP group → Opsdeck groups. IdP groups not listed give nothing.
    #[serde(default)]
    pub group_mapping: BTreeMap<String, Vec<String>>,
    /// The callback URL registered at the provider. Default
    /// `<first public_origins>/api/auth/oidc/<id>/callback` (or the request's loopback
    /// host when `public_origins` is empty).
    #[serde(default)]
    pub redirect_url: Option<String>,
    /// Where the provider sends the browser after an RP-initiated logout (registered at the
    /// provider as a post-logout redirect URI). Default none: the provider's own page.
    #[serde(default)]
    pub post_logout_redirect_url: Option<String>,
    /// Longest wait for the provider (discovery, keys, code exchange). Default 10 s.
    #[serde(default = "defaults::http_timeout", with = "humantime_serde")]
    pub http_timeout: Duration,
}

impl OidcProvider {
    /// The button text.
    pub fn label(&self) -> String {
        self.label
            .clone()
            .unwrap_or_else(|| format!("Sign in with {}", self.id))
    }

    /// Reads the client secret from its environment variable or file.
    pub fn client_secret(&self) -> Result<String, ConfigError> {
        let invalid = |msg: String| ConfigError::Invalid(msg);
        let secret = match (&self.client_secret_env, &self.client_secret_file) {
            (Some(var), None) => std::env::var(var).map_err(|_| {
                invalid(format!(
                    "auth.oidc {:?}: the environment variable {var} (client_secret_env) is not set",
                    self.id
                ))
            })?,
            (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| {
                invalid(format!(
                    "auth.oidc {:?}: cannot read client_secret_file {}: {e}",
                    self.id,
                    path.display()
                ))
            })?,
            _ => {
                return Err(invalid(format!(
                    "auth.oidc {:?} needs exactly one of client_secret_env and client_secret_file",
                    self.id
                )));
            }
        };
        let secret = secret.trim().to_owned();
        if secret.is_empty() {
            return Err(invalid(format!(
                "auth.oidc {:?}: the client secret is empty",
                self.id
            )));
        }
        Ok(secret)
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |msg: String| Err(ConfigError::Invalid(msg));
        let id = &self.id;
        if id.is_empty()
            || id.len() > MAX_PROVIDER_ID
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return invalid(format!(
                "auth.oidc id {id:?}: use 1 to {MAX_PROVIDER_ID} letters, digits, - or _"
            ));
        }
        if !issuer_is_acceptable(&self.issuer) {
            return invalid(format!(
                "auth.oidc {id:?}: issuer {:?} must be an https:// URL (http:// only on a loopback address)",
                self.issuer
            ));
        }
        if self.client_id.is_empty() {
            return invalid(format!("auth.oidc {id:?}: client_id is empty"));
        }
        if self.client_secret_env.is_some() == self.client_secret_file.is_some() {
            return invalid(format!(
                "auth.oidc {id:?} needs exactly one of client_secret_env and client_secret_file"
            ));
        }
        if self.username_claim.is_empty() || self.groups_claim.is_empty() {
            return invalid(format!(
                "auth.oidc {id:?}: username_claim and groups_claim must be set"
            ));
        }
        if self.allowed_users.is_empty()
            && self.allowed_email_domains.is_empty()
            && self.required_groups.is_empty()
        {
            return invalid(format!(
                "auth.oidc {id:?} admits nobody: set allowed_users, allowed_email_domains or required_groups"
            ));
        }
        for url in [&self.redirect_url, &self.post_logout_redirect_url]
            .into_iter()
            .flatten()
        {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return invalid(format!(
                    "auth.oidc {id:?}: {url:?} is not an absolute http(s) URL"
                ));
            }
        }
        if self.http_timeout.is_zero() {
            return invalid(format!("auth.oidc {id:?}: http_timeout must be > 0"));
        }
        Ok(())
    }
}

/// `https://...`, or `http://` to a loopback host (a provider on the same machine, tests).
pub fn issuer_is_acceptable(issuer: &str) -> bool {
    if let Some(rest) = issuer.strip_prefix("https://") {
        return !rest.is_empty();
    }
    let Some(rest) = issuer.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

mod defaults {
    use super::*;

    pub fn scopes() -> Vec<String> {
        ["openid", "email", "profile"].map(String::from).to_vec()
    }
    pub fn username_claim() -> String {
        "preferred_username".into()
    }
    pub fn groups_claim() -> String {
        "groups".into()
    }
    pub fn http_timeout() -> Duration {
        Duration::from_secs(10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROVIDER: &str = "[[auth.oidc]]\nid = \"corp\"\nissuer = \"https://idp.example\"\n\
        client_id = \"c\"\nclient_secret_env = \"X\"\nallowed_users = [\"a\"]\n";

    fn refused(text: &str) -> String {
        crate::config::Config::from_toml(text, "test")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn providers_need_a_secret_source_a_rule_and_a_safe_issuer() {
        assert!(crate::config::Config::from_toml(PROVIDER, "test").is_ok());
        let inline = PROVIDER.replace("client_secret_env = \"X\"", "client_secret = \"s\"");
        assert!(refused(&inline).contains("client_secret"));
        let both = format!("{PROVIDER}client_secret_file = \"/s\"\n");
        assert!(refused(&both).contains("exactly one"));
        let open = PROVIDER.replace("allowed_users = [\"a\"]", "");
        assert!(refused(&open).contains("admits nobody"));
        let plain = PROVIDER.replace("https://idp.example", "http://idp.example");
        assert!(refused(&plain).contains("https://"));
        let long = PROVIDER.replace("\"corp\"", &format!("\"{}\"", "x".repeat(40)));
        assert!(refused(&long).contains("letters, digits"));
        assert!(refused(&format!("{PROVIDER}{PROVIDER}")).contains("twice"));
    }

    #[test]
    fn local_users_cannot_pose_as_provider_users_and_someone_can_log_in() {
        let posing =
            format!("[[auth.users]]\nusername = \"corp:alice\"\npassword_hash = \"x\"\n{PROVIDER}");
        assert!(refused(&posing).contains("named like a user of the provider"));
        let sso_only = format!("[auth]\nlocal_users = false\n{PROVIDER}");
        assert!(crate::config::Config::from_toml(&sso_only, "test").is_ok());
    }

    #[test]
    fn issuers_are_https_or_loopback() {
        assert!(issuer_is_acceptable("https://idp.example.com/realms/x"));
        assert!(issuer_is_acceptable("http://127.0.0.1:4000"));
        assert!(issuer_is_acceptable("http://localhost:4000/"));
        assert!(issuer_is_acceptable("http://[::1]:4000"));
        assert!(!issuer_is_acceptable("http://idp.example.com"));
        assert!(!issuer_is_acceptable("http://127.0.0.1.evil.example"));
        assert!(!issuer_is_acceptable("ftp://idp"));
        assert!(!issuer_is_acceptable("https://"));
    }
}
