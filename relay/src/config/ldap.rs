//! LDAP logins (`[auth.ldap]`): where the directory is, how users are found and checked,
//! where their groups come from, and how those groups map onto Opsdeck groups.
//!
//! Two ways to find a user: a service bind (`bind_dn` with its password from an
//! environment variable or a file, never inline) and a search (`user_search_base`,
//! `user_search_filter`), or a direct bind as `user_dn_template`. Either way the password
//! is then checked by binding as the user. Groups come from the user entry's `memberOf`
//! or from a group search; only groups named in `group_map` count, each as the Opsdeck
//! group it maps to, so `[[grants]]` stay the one place that says who may open what.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// The `[auth.ldap]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// `ldap://host[:port]` (StartTLS unless `starttls = false`) or `ldaps://host[:port]`.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS before anything is sent. Default
    /// true; false sends passwords in clear (loopback development only).
    #[serde(default = "defaults::yes")]
    pub starttls: bool,
    /// PEM bundle of the CA(s) the directory's certificate is checked against (a private
    /// CA). Default: the system's trusted roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Give up reaching the directory (TCP, StartTLS, TLS) after this long. Default 5s.
    #[serde(default = "defaults::timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Give up on any one LDAP operation (bind, search) after this long. Default 5s.
    #[serde(default = "defaults::timeout", with = "humantime_serde")]
    pub operation_timeout: Duration,
    /// Directory logins checked at once (each holds one connection while it runs); more
    /// wait up to `auth.login_limits.queue_timeout`, then get 503. Default 8.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: usize,
    /// The service account the user search binds as, e.g.
    /// `cn=opsdeck,ou=services,dc=example,dc=org`.
    #[serde(default)]
    pub bind_dn: Option<String>,
    /// Name of an environment variable holding the service account's password.
    #[serde(default)]
    pub bind_password_env: Option<String>,
    /// A file holding the service account's password (e.g. a mounted secret); a trailing
    /// newline is ignored.
    #[serde(default)]
    pub bind_password_file: Option<PathBuf>,
    /// Where users are searched (whole subtree), e.g. `ou=people,dc=example,dc=org`.
    #[serde(default)]
    pub user_search_base: Option<String>,
    /// The search filter; `{username}` is replaced by the name typed at login, escaped as
    /// RFC 4515 says (`*`, `(`, `)`, `\` and NUL cannot change the filter). It must match
    /// exactly one entry. Default `(&(objectClass=person)(uid={username}))`.
    #[serde(default = "defaults::user_search_filter")]
    pub user_search_filter: String,
    /// Instead of a service bind and search: bind directly as this DN, `{username}`
    /// replaced by the name typed at login, escaped as a DN value (RFC 4514), e.g.
    /// `uid={username},ou=people,dc=example,dc=org`.
    #[serde(default)]
    pub user_dn_template: Option<String>,
    /// The attribute of the user entry that is the Opsdeck user name (what grants,
    /// `[groups]` and sessions use). Default `uid`.
    #[serde(default = "defaults::username_attribute")]
    pub username_attribute: String,
    /// The attribute of the user entry that lists its groups' DNs, used when
    /// `group_search_base` is not set. Default `memberOf`.
    #[serde(default = "defaults::member_of_attribute")]
    pub member_of_attribute: String,
    /// Search groups here instead of reading `memberOf` (e.g. `ou=groups,dc=example,dc=org`).
    #[serde(default)]
    pub group_search_base: Option<String>,
    /// The group search filter; `{dn}` is the user's DN and `{username}` the user name,
    /// both escaped. Default `(member={dn})`.
    #[serde(default = "defaults::group_search_filter")]
    pub group_search_filter: String,
    /// Directory group → Opsdeck group. A key is a group's full DN or its `cn`, matched
    /// without regard to case; groups not named here are ignored.
    #[serde(default)]
    pub group_map: BTreeMap<String, String>,
    /// Opsdeck groups (values of `group_map`) of which a directory user must have at least
    /// one to log in; others get 403. Default empty: anyone the directory knows may log in
    /// (with only the grants naming them or their mapped groups).
    #[serde(default)]
    pub required_groups: Vec<String>,
}

mod defaults {
    use std::time::Duration;

    pub fn yes() -> bool {
        true
    }
    pub fn timeout() -> Duration {
        Duration::from_secs(5)
    }
    pub fn max_connections() -> usize {
        8
    }
    pub fn user_search_filter() -> String {
        "(&(objectClass=person)(uid={username}))".into()
    }
    pub fn username_attribute() -> String {
        "uid".into()
    }
    pub fn member_of_attribute() -> String {
        "memberOf".into()
    }
    pub fn group_search_filter() -> String {
        "(member={dn})".into()
    }
}

impl LdapConfig {
    /// Whether the URL is `ldaps://`.
    pub fn is_ldaps(&self) -> bool {
        self.url.starts_with("ldaps://")
    }

    /// Whether passwords travel encrypted: `ldaps://`, or `ldap://` with StartTLS.
    pub fn encrypted(&self) -> bool {
        self.is_ldaps() || self.starttls
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |msg: String| Err(ConfigError::Invalid(format!("auth.ldap: {msg}")));
        match url::Url::parse(&self.url) {
            Ok(url) if matches!(url.scheme(), "ldap" | "ldaps") && url.host().is_some() => {}
            _ => {
                return invalid(format!(
                    "url {:?} is not ldap://host[:port] or ldaps://host[:port]",
                    self.url
                ));
            }
        }
        if self.is_ldaps() && self.starttls {
            return invalid(
                "starttls applies to ldap:// only; with ldaps:// set starttls = false".into(),
            );
        }
        if self.connect_timeout.is_zero() || self.operation_timeout.is_zero() {
            return invalid("connect_timeout and operation_timeout must be > 0".into());
        }
        if self.max_connections == 0 {
            return invalid("max_connections must be at least 1".into());
        }
        match (
            &self.user_dn_template,
            &self.bind_dn,
            &self.user_search_base,
        ) {
            (Some(template), None, None) => {
                if !template.contains("{username}") {
                    return invalid("user_dn_template must contain {username}".into());
                }
            }
            (None, Some(_), Some(_)) => {
                let secrets = [
                    self.bind_password_env.is_some(),
                    self.bind_password_file.is_some(),
                ];
                if secrets.iter().filter(|s| **s).count() != 1 {
                    return invalid(
                        "bind_dn needs exactly one of bind_password_env or bind_password_file"
                            .into(),
                    );
                }
                if !self.user_search_filter.contains("{username}") {
                    return invalid("user_search_filter must contain {username}".into());
                }
            }
            _ => {
                return invalid(
                    "set either user_dn_template (direct bind), or bind_dn and user_search_base (service bind and search)"
                        .into(),
                );
            }
        }
        if self.username_attribute.is_empty() || self.member_of_attribute.is_empty() {
            return invalid("username_attribute and member_of_attribute must not be empty".into());
        }
        if self.group_search_base.is_some()
            && !(self.group_search_filter.contains("{dn}")
                || self.group_search_filter.contains("{username}"))
        {
            return invalid("group_search_filter must contain {dn} or {username}".into());
        }
        if let Some((key, _)) = self
            .group_map
            .iter()
            .find(|(k, v)| k.trim().is_empty() || v.trim().is_empty())
        {
            return invalid(format!(
                "group_map entry {key:?} needs a directory group and an Opsdeck group"
            ));
        }
        if let Some(group) = self
            .required_groups
            .iter()
            .find(|g| !self.group_map.values().any(|v| v == *g))
        {
            return invalid(format!(
                "required group {group:?} is not an Opsdeck group of group_map, so nobody could log in"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;

    const SEARCH: &str = "[auth.ldap]\nurl = \"ldap://dir.example\"\n\
        bind_dn = \"cn=svc,dc=example\"\nbind_password_env = \"LDAP_PW\"\n\
        user_search_base = \"ou=people,dc=example\"\n";

    fn refusal(extra: &str) -> String {
        Config::from_toml(&format!("{SEARCH}{extra}"), "test")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_search_setup_is_valid_with_secure_defaults() {
        let config = Config::from_toml(SEARCH, "test").unwrap();
        let ldap = config.auth.ldap.unwrap();
        assert!(ldap.starttls && ldap.encrypted());
        assert_eq!(
            ldap.user_search_filter,
            "(&(objectClass=person)(uid={username}))"
        );
    }

    /// The commented-out `[auth.ldap]` of `config.example.toml`, its option lines
    /// uncommented, is valid.
    #[test]
    fn the_example_section_is_valid() {
        let example = include_str!("../../../config.example.toml");
        let start = example.find("# [auth.ldap]\n").unwrap();
        let section: String = example[start..]
            .lines()
            .take_while(|line| line.starts_with('#'))
            .filter_map(|line| line.strip_prefix("# "))
            .map(|line| format!("{line}\n"))
            .collect();
        let config = Config::from_toml(&section, "example [auth.ldap]").unwrap();
        let ldap = config.auth.ldap.unwrap();
        assert_eq!(ldap.group_map.len(), 2);
        assert_eq!(ldap.required_groups, ["ops"]);
    }

    #[test]
    fn bad_sections_are_refused_with_the_reason() {
        let text =
            "[auth.ldap]\nurl = \"http://dir.example\"\nuser_dn_template = \"uid={username}\"";
        let err = Config::from_toml(text, "test").unwrap_err().to_string();
        assert!(err.contains("is not ldap://"), "{err}");
        let text = "[auth.ldap]\nurl = \"ldaps://dir\"\nuser_dn_template = \"uid={username}\"";
        let err = Config::from_toml(text, "test").unwrap_err().to_string();
        assert!(err.contains("starttls applies to ldap://"), "{err}");
        let text = "[auth.ldap]\nurl = \"ldap://dir\"\nuser_dn_template = \"uid=x\"";
        let err = Config::from_toml(text, "test").unwrap_err().to_string();
        assert!(err.contains("{username}"), "{err}");
        assert!(refusal("bind_password_file = \"/x\"").contains("exactly one of"));
        assert!(refusal("user_dn_template = \"uid={username}\"").contains("set either"));
        assert!(refusal("user_search_filter = \"(uid=x)\"").contains("{username}"));
        assert!(refusal("required_groups = [\"ops\"]").contains("nobody could log in"));
        assert!(refusal("bind_password = \"inline\"").contains("bind_password"));
    }
}
