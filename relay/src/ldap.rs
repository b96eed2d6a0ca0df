//! Logins checked against an LDAP directory (`[auth.ldap]`, see `config/ldap.rs`).
//!
//! One login is one short connection, at most `max_connections` at once: connect (StartTLS
//! or ldaps, with a private CA if configured), then either a service bind and a search for
//! the user (the typed name escaped as RFC 4515 says, so it can only ever be a value) and
//! a bind as the entry found, or a direct bind as `user_dn_template` (the name escaped as
//! a DN value). The password is checked by the directory in that bind; an empty one is
//! refused first, since LDAP takes a bind with no password as an anonymous bind that
//! succeeds. The user's groups are the entry's `memberOf` or a group search, and only those
//! named in `group_map` count, as the Opsdeck groups they map to.
//!
//! The three outcomes a user can meet read differently: a wrong password is the same 401
//! as for built-in users, a directory that cannot be reached (refused, timed out, TLS
//! failing, the service account refused) is 503 saying so, and a user in none of
//! `required_groups` is 403. Nothing here logs or returns a password.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ldap3::{LdapConnAsync, LdapConnSettings, LdapResult, Scope, SearchEntry, SearchOptions};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::sync::Semaphore;

use crate::config::LdapConfig;

/// Entries a group search may return; groups beyond them are not seen (logged).
const MAX_GROUPS: i32 = 1000;

/// A directory user whose password the directory accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    /// The user entry's `username_attribute` (the directory's spelling, whatever case was
    /// typed).
    pub username: String,
    /// The Opsdeck groups the user's directory groups map to, sorted.
    pub groups: Vec<String>,
}

/// Why a directory login failed.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The same words as a built-in user's wrong password: nobody learns which names the
    /// directory knows.
    #[error("wrong username or password")]
    BadCredentials,
    /// The directory could not answer: the message says what failed (never "wrong password").
    #[error("{0}; try again later, and tell an administrator if it persists")]
    Unavailable(String),
    #[error(
        "{0} is in none of the directory groups allowed to log in here; ask an administrator to add you to one"
    )]
    NotAllowed(String),
    #[error("the relay is checking too many directory logins at once; try again in a few seconds")]
    Busy,
}

#[derive(Debug, thiserror::Error)]
#[error("auth.ldap: {0}")]
pub struct DirectorySetupError(String);

/// The service account's password, kept out of `Debug` output.
struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The configured directory, ready to check logins.
pub struct Directory {
    config: LdapConfig,
    bind_password: Option<Secret>,
    tls: Option<Arc<rustls::ClientConfig>>,
    slots: Semaphore,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("url", &self.config.url)
            .finish_non_exhaustive()
    }
}

impl Directory {
    /// Reads the service password and the CA file: a missing secret or an unreadable CA
    /// stops the start (or the reload, or `check-config`) with the reason.
    pub fn new(config: &LdapConfig) -> Result<Self, DirectorySetupError> {
        Ok(Self {
            bind_password: bind_password(config)?,
            tls: tls_config(config)?,
            slots: Semaphore::new(config.max_connections),
            config: config.clone(),
        })
    }

    /// Whether `group` is an Opsdeck group some directory group maps to (a token's
    /// directory groups are checked against the config in force with this).
    pub fn maps_to(&self, group: &str) -> bool {
        self.config.group_map.values().any(|g| g == group)
    }

    /// Whether a user with these Opsdeck groups may log in: one of `required_groups`,
    /// when it is set (checked at login, and for tokens at each keepalive).
    pub fn admits(&self, groups: &[String]) -> bool {
        let required = &self.config.required_groups;
        required.is_empty() || groups.iter().any(|g| required.contains(g))
    }

    /// Checks `password` for `username` and reads the user's groups. Waits at most
    /// `queue_timeout` for a free connection slot.
    pub async fn authenticate(
        &self,
        username: &str,
        password: &str,
        queue_timeout: Duration,
    ) -> Result<DirectoryUser, DirectoryError> {
        // An empty password would make the user bind an unauthenticated bind (RFC 4513
        // 5.1.2), which directories accept.
        if username.is_empty() || password.is_empty() {
            return Err(DirectoryError::BadCredentials);
        }
        let _slot = tokio::time::timeout(queue_timeout, self.slots.acquire())
            .await
            .map_err(|_| DirectoryError::Busy)?
            .map_err(|_| DirectoryError::Busy)?;
        let session = Session::open(self).await?;
        let result = session.login(username, password).await;
        session.close().await;
        let (username, directory_groups) = result?;
        let groups = self.map_groups(&directory_groups);
        if !self.admits(&groups) {
            return Err(DirectoryError::NotAllowed(username));
        }
        Ok(DirectoryUser { username, groups })
    }

    /// The Opsdeck groups of directory groups (each a DN and the `cn`s known for it).
    fn map_groups(&self, directory_groups: &[DirectoryGroup]) -> Vec<String> {
        let mut groups: Vec<String> = self
            .config
            .group_map
            .iter()
            .filter(|(key, _)| directory_groups.iter().any(|g| g.is_named(key)))
            .map(|(_, group)| group.clone())
            .collect();
        groups.sort();
        groups.dedup();
        groups
    }
}

/// A group the user is in: its DN, and its `cn` values when known.
#[derive(Debug, Clone)]
struct DirectoryGroup {
    dn: String,
    cns: Vec<String>,
}

impl DirectoryGroup {
    fn from_dn(dn: String) -> Self {
        // The first RDN, when it is a cn: `cn=ops,ou=groups,...` → `ops`.
        let cns = dn
            .split(',')
            .next()
            .and_then(|rdn| rdn.split_once('='))
            .filter(|(attr, _)| attr.trim().eq_ignore_ascii_case("cn"))
            .map(|(_, value)| vec![value.trim().to_owned()])
            .unwrap_or_default();
        Self { dn, cns }
    }

    /// Whether a `group_map` key names this group: its DN (without regard to case and to
    /// spaces after commas) or one of its cns (without regard to case).
    fn is_named(&self, key: &str) -> bool {
        fn normal(dn: &str) -> String {
            dn.split(',')
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(",")
                .to_lowercase()
        }
        normal(&self.dn) == normal(key) || self.cns.iter().any(|cn| cn.eq_ignore_ascii_case(key))
    }
}

/// One login's connection; its driver task ends with it.
struct Session<'a> {
    directory: &'a Directory,
    ldap: ldap3::Ldap,
    driver: tokio::task::JoinHandle<()>,
}

impl<'a> Session<'a> {
    async fn open(directory: &'a Directory) -> Result<Session<'a>, DirectoryError> {
        let config = &directory.config;
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(config.connect_timeout)
            .set_starttls(config.starttls && !config.is_ldaps());
        if let Some(tls) = &directory.tls {
            settings = settings.set_config(tls.clone());
        }
        let (conn, ldap) = LdapConnAsync::with_settings(settings, &config.url)
            .await
            .map_err(|e| {
                let e = match e {
                    ldap3::LdapError::Timeout { .. } => {
                        format!("no connection within {:?}", config.connect_timeout)
                    }
                    other => other.to_string(),
                };
                unreachable_at(config, &e)
            })?;
        let driver = tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!("LDAP connection ended: {e}");
            }
        });
        Ok(Session {
            directory,
            ldap,
            driver,
        })
    }

    async fn close(self) {
        let mut ldap = self.ldap.clone();
        let _ = tokio::time::timeout(self.directory.config.operation_timeout, ldap.unbind()).await;
        self.driver.abort();
    }

    /// One operation with the configured timeout; a failure or silence is "unreachable".
    async fn op<T>(
        &self,
        what: &str,
        operation: impl Future<Output = ldap3::result::Result<T>>,
    ) -> Result<T, DirectoryError> {
        let config = &self.directory.config;
        match tokio::time::timeout(config.operation_timeout, operation).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(unreachable_at(config, &format!("{what} failed: {e}"))),
            Err(_) => Err(unreachable_at(
                config,
                &format!("no answer to {what} within {:?}", config.operation_timeout),
            )),
        }
    }

    /// Binds as the service account; its refusal is the relay's problem, not the user's.
    async fn service_bind(&self) -> Result<(), DirectoryError> {
        let config = &self.directory.config;
        let (Some(dn), Some(password)) = (&config.bind_dn, &self.directory.bind_password) else {
            return Ok(());
        };
        let mut ldap = self.ldap.clone();
        let result = self
            .op("the service bind", ldap.simple_bind(dn, &password.0))
            .await?;
        if result.rc != 0 {
            return Err(DirectoryError::Unavailable(format!(
                "the directory (LDAP) refused the relay's service account ({}); check auth.ldap.bind_dn and its password",
                describe(&result)
            )));
        }
        Ok(())
    }

    /// Checks the password; returns the user name and the user's directory groups.
    async fn login(
        &self,
        typed: &str,
        password: &str,
    ) -> Result<(String, Vec<DirectoryGroup>), DirectoryError> {
        let config = &self.directory.config;
        let attrs = [
            config.username_attribute.as_str(),
            config.member_of_attribute.as_str(),
        ];
        let entry = if let Some(template) = &config.user_dn_template {
            let dn = template.replace("{username}", &ldap3::dn_escape(typed));
            self.user_bind(&dn, password).await?;
            self.search(&dn, Scope::Base, "(objectClass=*)", &attrs, 1)
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| {
                    DirectoryError::Unavailable(
                        "the directory (LDAP) accepted the password but the user may not read their own entry".into(),
                    )
                })?
        } else {
            self.service_bind().await?;
            let base = config.user_search_base.as_deref().unwrap_or_default();
            let filter = config
                .user_search_filter
                .replace("{username}", &ldap3::ldap_escape(typed));
            let mut found = self
                .search(base, Scope::Subtree, &filter, &attrs, 2)
                .await?;
            if found.len() > 1 {
                tracing::warn!(
                    "auth.ldap.user_search_filter matched more than one entry for a login; refused (make the filter match one user)"
                );
            }
            let entry = match (found.pop(), found.is_empty()) {
                (Some(entry), true) => entry,
                _ => {
                    // An unknown name costs the same round trips as a wrong password, so
                    // the answer's timing does not tell which names exist: bind to a name
                    // no entry has, and refuse whatever the directory says.
                    let decoy = format!("cn=opsdeck-no-such-user,{base}");
                    let _ = self.user_bind(&decoy, password).await;
                    return Err(DirectoryError::BadCredentials);
                }
            };
            self.user_bind(&entry.dn, password).await?;
            entry
        };
        let username = username_of(&entry, &config.username_attribute, typed).ok_or_else(|| {
            DirectoryError::Unavailable(format!(
                "the user's directory entry has no {:?} attribute (auth.ldap.username_attribute)",
                config.username_attribute
            ))
        })?;
        let groups = match &config.group_search_base {
            Some(base) => {
                // Back to the service account, which may read the groups the user cannot.
                self.service_bind().await?;
                let filter = config
                    .group_search_filter
                    .replace("{dn}", &ldap3::ldap_escape(entry.dn.as_str()))
                    .replace("{username}", &ldap3::ldap_escape(username.as_str()));
                self.search(base, Scope::Subtree, &filter, &["cn"], MAX_GROUPS)
                    .await?
                    .into_iter()
                    .map(|group| DirectoryGroup {
                        cns: values(&group, "cn").to_vec(),
                        dn: group.dn,
                    })
                    .collect()
            }
            None => values(&entry, &config.member_of_attribute)
                .iter()
                .cloned()
                .map(DirectoryGroup::from_dn)
                .collect(),
        };
        Ok((username, groups))
    }

    /// Binds as the user: the directory's verdict on the password.
    async fn user_bind(&self, dn: &str, password: &str) -> Result<(), DirectoryError> {
        let mut ldap = self.ldap.clone();
        let result = self
            .op("the user's bind", ldap.simple_bind(dn, password))
            .await?;
        match result.rc {
            0 => Ok(()),
            // invalidDNSyntax, noSuchObject (direct binds), inappropriateAuthentication,
            // invalidCredentials, insufficientAccessRights, unwillingToPerform (a locked or
            // expired account): the user's problem, read as a wrong password.
            34 | 32 | 48 | 49 | 50 | 53 => {
                tracing::debug!("LDAP user bind refused: {}", describe(&result));
                Err(DirectoryError::BadCredentials)
            }
            _ => Err(unreachable_at(
                &self.directory.config,
                &format!("the user's bind failed ({})", describe(&result)),
            )),
        }
    }

    /// A search; more entries than `limit` are cut there (no error).
    async fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        limit: i32,
    ) -> Result<Vec<SearchEntry>, DirectoryError> {
        let mut ldap = self.ldap.clone();
        let search = async move {
            ldap.with_search_options(SearchOptions::new().sizelimit(limit))
                .search(base, scope, filter, attrs.to_vec())
                .await
        };
        let result = self.op("the search", search).await?;
        let (entries, outcome) = (result.0, result.1);
        match outcome.rc {
            0 => {}
            // sizeLimitExceeded: the entries up to the limit came.
            4 => tracing::warn!(base, "an LDAP search returned more than {limit} entries"),
            // noSuchObject: a direct bind's entry or a base that is not there.
            32 => return Ok(Vec::new()),
            _ => {
                return Err(unreachable_at(
                    &self.directory.config,
                    &format!("the search in {base:?} failed ({})", describe(&outcome)),
                ));
            }
        }
        entries
            .into_iter()
            .map(|raw| {
                // ldap3 panics on an entry it cannot parse; a directory's reply is input.
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    SearchEntry::construct(raw)
                }))
                .map_err(|_| {
                    DirectoryError::Unavailable(
                        "the directory (LDAP) sent an entry that cannot be read".into(),
                    )
                })
            })
            .collect()
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

fn unreachable_at(config: &LdapConfig, what: &str) -> DirectoryError {
    DirectoryError::Unavailable(format!(
        "the directory (LDAP) at {} cannot be reached: {what}",
        config.url
    ))
}

fn describe(result: &LdapResult) -> String {
    let mut text = format!("result code {}", result.rc);
    if !result.text.is_empty() {
        let said: String = result.text.chars().take(200).collect();
        text.push_str(&format!(": {said}"));
    }
    text
}

/// An attribute's values, whatever case the directory spells its name in.
fn values<'e>(entry: &'e SearchEntry, attribute: &str) -> &'e [String] {
    entry
        .attrs
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(attribute))
        .map_or(&[], |(_, values)| values.as_slice())
}

/// The user name of an entry: the value of `attribute` that is the typed name (in the
/// directory's case), else its first value.
fn username_of(entry: &SearchEntry, attribute: &str, typed: &str) -> Option<String> {
    let all = values(entry, attribute);
    all.iter()
        .find(|v| v.eq_ignore_ascii_case(typed))
        .or_else(|| all.first())
        .cloned()
}

fn bind_password(config: &LdapConfig) -> Result<Option<Secret>, DirectorySetupError> {
    let password = match (&config.bind_password_env, &config.bind_password_file) {
        (Some(var), _) => std::env::var(var).map_err(|_| {
            DirectorySetupError(format!(
                "bind_password_env names {var}, which is not set (or not UTF-8)"
            ))
        })?,
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| {
                DirectorySetupError(format!(
                    "bind_password_file {} cannot be read: {e}",
                    path.display()
                ))
            })?
            .trim_end_matches(['\r', '\n'])
            .to_owned(),
        (None, None) => return Ok(None),
    };
    if password.is_empty() {
        return Err(DirectorySetupError(
            "the service account's password (bind_password_env / bind_password_file) is empty"
                .into(),
        ));
    }
    Ok(Some(Secret(password)))
}

/// The TLS settings of `ldaps://` and StartTLS: the CA file's certificates, or the
/// system's roots; ring, the relay's one crypto provider.
fn tls_config(
    config: &LdapConfig,
) -> Result<Option<Arc<rustls::ClientConfig>>, DirectorySetupError> {
    if !config.encrypted() {
        return Ok(None);
    }
    let mut roots = rustls::RootCertStore::empty();
    match &config.ca_file {
        Some(path) => {
            for cert in read_certificates(path)? {
                roots
                    .add(cert)
                    .map_err(|e| DirectorySetupError(format!("ca_file {}: {e}", path.display())))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(DirectorySetupError(
                    "no trusted CA certificates found on this system; set ca_file".into(),
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DirectorySetupError(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Some(Arc::new(tls)))
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, DirectorySetupError> {
    let unreadable = |e: &dyn std::fmt::Display| {
        DirectorySetupError(format!("ca_file {} cannot be read: {e}", path.display()))
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| unreadable(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unreadable(&e))?;
    if certs.is_empty() {
        return Err(unreadable(&"no PEM certificate in it"));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_named_by_dn_or_cn_without_regard_to_case() {
        let group = DirectoryGroup::from_dn("cn=Operators, ou=groups,dc=example,dc=org".into());
        assert!(group.is_named("CN=operators,OU=Groups,dc=example,dc=org"));
        assert!(group.is_named("operators"));
        assert!(!group.is_named("ops"));
        let group = DirectoryGroup::from_dn("ou=people,dc=example".into());
        assert!(!group.is_named("people"));
    }

    #[test]
    fn filter_metacharacters_in_names_stay_values() {
        let filter = "(uid={username})".replace("{username}", &ldap3::ldap_escape("a*)(uid=*\\"));
        assert_eq!(filter, "(uid=a\\2a\\29\\28uid=\\2a\\5c)");
    }

    #[test]
    fn the_service_password_is_not_in_debug_output() {
        assert_eq!(format!("{:?}", Secret("hunter2".into())), "Secret(..)");
    }
}
