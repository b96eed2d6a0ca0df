//! Who is calling: built-in users with argon2 hashes, JWT tokens (minted here with HS256,
//! or by an existing app with HS256/RS256, e.g. djangorestframework-simplejwt access
//! tokens), and token revocation on logout (shared through Redis when configured).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use argon2::{Argon2, Params, PasswordHash, PasswordVerifier};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{Semaphore, broadcast};

use common::CloseCode;

use crate::close::CloseCause;
use crate::config::{AuthConfig, Config, ExternalTokens, LoginLimits, User};
use crate::ldap::{Directory, DirectoryError};
use crate::redis_link::RedisLink;
use crate::throttle::LoginThrottle;

/// The name of the login cookie, as the classic front-ends used it.
pub const TOKEN_COOKIE: &str = "X-Token";
/// Prefix of a token carried in `Sec-WebSocket-Protocol`.
pub const BEARER_PROTOCOL_PREFIX: &str = "bearer.";

/// The longest user name and password a login may send (400 beyond): every name is
/// also a throttle key and, for the directory, a search filter value.
pub const MAX_USERNAME_BYTES: usize = 256;
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// The `idp` claim of tokens minted for a user the LDAP directory checked.
const LDAP_IDP: &str = "ldap";

/// Argon2 is deliberately slow (and single-threaded per check): at most half the cores
/// check passwords at once, so a login flood cannot starve the terminals.
fn concurrent_logins() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(
        "no token: log in first, or send the token as a cookie, a Bearer header or a bearer.<token> subprotocol"
    )]
    Missing,
    #[error("the token is not valid: {0}; log in again")]
    Invalid(String),
    #[error("the token has expired; log in again")]
    Expired,
    #[error("the token was revoked (logged out); log in again")]
    Revoked,
    #[error("wrong username or password")]
    BadCredentials,
    #[error("cannot check whether the token was revoked: {0}")]
    RevocationUnavailable(String),
}

impl CloseCause for AuthError {
    fn close_code(&self) -> CloseCode {
        match self {
            Self::Expired => CloseCode::TokenExpired,
            Self::Revoked => CloseCode::TokenRevoked,
            Self::RevocationUnavailable(_) => CloseCode::BackendUnavailable,
            Self::Missing | Self::Invalid(_) | Self::BadCredentials => CloseCode::Unauthenticated,
        }
    }
}

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Stable user id: the token's `user_id` or `sub`.
    pub uid: String,
    /// Name used by permissions and shown to others.
    pub username: String,
    /// The groups in force when the token was checked.
    pub groups: Vec<String>,
    /// The groups the token itself names.
    pub claimed_groups: Vec<String>,
    /// Minted by this relay (`iss` = opsdeck) for a configured user.
    pub minted_here: bool,
    /// Who checked the password of a token minted here: `None` for a built-in user,
    /// `Some("ldap")` for the LDAP directory (`[auth.ldap]`).
    pub idp: Option<String>,
    /// Unix seconds.
    pub expires_at: u64,
    /// What a logout revokes: the token's `jti`, or for a token without one, a digest
    /// of the token itself (review #14: every token can be revoked).
    pub token_id: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_id: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_type: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    groups: Vec<String>,
    /// In tokens minted here: who checked the password (`"ldap"`); absent for built-in users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    idp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    /// A string or a list of strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aud: Option<serde_json::Value>,
}

impl Claims {
    fn has_audience(&self, wanted: &str) -> bool {
        match &self.aud {
            Some(serde_json::Value::String(aud)) => aud == wanted,
            Some(serde_json::Value::Array(auds)) => auds.iter().any(|a| a == wanted),
            _ => false,
        }
    }
}

/// Revocations queued for sockets that have not yet looked.
const REVOKED_QUEUE: usize = 64;

/// The `iss` and `aud` of tokens this relay mints.
const RELAY_ISSUER: &str = "opsdeck";

/// What names a user of a token minted elsewhere: apart from the configured users.
pub const EXTERNAL_PREFIX: &str = "ext:";

struct UserRecord {
    password_hash: String,
}

/// What a reload replaces: the users, their groups, and the keys tokens are checked with.
struct Settings {
    users: HashMap<String, UserRecord>,
    /// user name (or external user id) → groups (from `[groups]` and each user's own list).
    memberships: HashMap<String, Vec<String>>,
    /// The configured HS256 secret (`None`: a random one made at start, kept by reloads).
    secret: Option<Vec<u8>>,
    hs_encoding: EncodingKey,
    hs_decoding: DecodingKey,
    rs_decoding: Option<DecodingKey>,
    ttl_secs: u64,
    /// A valid hash to verify against for unknown users, with the parameters of the most
    /// expensive configured hash, so timing does not reveal which user names exist.
    decoy_hash: String,
    limits: LoginLimits,
    external: ExternalTokens,
    /// `auth.local_users`: whether the built-in users may log in (`users` is empty if not).
    local_users: bool,
    /// The LDAP directory logins are checked against, when `[auth.ldap]` is set.
    directory: Option<Arc<Directory>>,
}

impl Settings {
    fn new(config: &Config, previous: Option<&Settings>) -> Result<Self, AuthSetupError> {
        let auth = &config.auth;
        let secret = configured_secret(auth);
        let key_bytes = match (&secret, previous) {
            (Some(secret), _) => secret.clone(),
            // Without a configured secret, a reload keeps the one made at start: a new
            // random one would log everybody out.
            (None, Some(previous)) if previous.secret.is_none() => {
                return Ok(Self {
                    hs_encoding: previous.hs_encoding.clone(),
                    hs_decoding: previous.hs_decoding.clone(),
                    ..Self::without_keys(config, None, Vec::new())?
                });
            }
            (None, _) => {
                tracing::warn!(
                    "no auth.jwt_secret or OPSDECK_JWT_SECRET: using a random secret; logins will not survive a restart nor work across relays"
                );
                rand::random::<[u8; 32]>().to_vec()
            }
        };
        Self::without_keys(config, secret, key_bytes)
    }

    fn without_keys(
        config: &Config,
        secret: Option<Vec<u8>>,
        key_bytes: Vec<u8>,
    ) -> Result<Self, AuthSetupError> {
        let auth = &config.auth;
        let rs_decoding = match &auth.jwt_public_key_file {
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| AuthSetupError(format!("cannot read {}: {e}", path.display())))?;
                Some(DecodingKey::from_rsa_pem(&pem).map_err(|e| {
                    AuthSetupError(format!("{} is not an RSA public key: {e}", path.display()))
                })?)
            }
            None => None,
        };
        let mut users = HashMap::new();
        let mut costliest: Option<Params> = None;
        let local_users = if auth.local_users {
            auth.users.as_slice()
        } else {
            &[]
        };
        for user in local_users {
            let parsed = PasswordHash::new(&user.password_hash).map_err(|e| {
                AuthSetupError(format!(
                    "user {:?}: password_hash is not an argon2 PHC string: {e}",
                    user.username
                ))
            })?;
            if let Ok(params) = Params::try_from(&parsed)
                && costliest.as_ref().is_none_or(|c| cost(&params) > cost(c))
            {
                costliest = Some(params);
            }
            users.insert(
                user.username.clone(),
                UserRecord {
                    password_hash: user.password_hash.clone(),
                },
            );
        }
        let decoy_hash = decoy_hash(costliest.unwrap_or_default())?;
        let directory = match &auth.ldap {
            Some(ldap) => Some(Arc::new(
                Directory::new(ldap).map_err(|e| AuthSetupError(e.to_string()))?,
            )),
            None => None,
        };
        Ok(Self {
            users,
            memberships: memberships(&config.groups, auth),
            hs_encoding: EncodingKey::from_secret(&key_bytes),
            hs_decoding: DecodingKey::from_secret(&key_bytes),
            secret,
            rs_decoding,
            ttl_secs: auth.token_ttl.as_secs().max(1),
            decoy_hash,
            limits: auth.login_limits.clone(),
            external: auth.external_tokens.clone(),
            local_users: auth.local_users,
            directory,
        })
    }

    /// The groups of `username`/`uid` now: the token's own (`claimed`) and the config's.
    fn groups_of(&self, username: &str, uid: &str, claimed: &[String]) -> Vec<String> {
        let mut groups = claimed.to_vec();
        groups.extend(self.memberships.get(username).cloned().unwrap_or_default());
        if uid != username {
            groups.extend(self.memberships.get(uid).cloned().unwrap_or_default());
        }
        groups.sort();
        groups.dedup();
        groups
    }

    /// Whether the user of a token is still one that may use the relay: a built-in user
    /// still configured (and built-in users on), or a directory user while the directory
    /// is configured, admits the user's groups (`required_groups`), and the name is not
    /// (now) a built-in user's.
    fn in_standing(&self, principal: &Principal) -> bool {
        if !principal.minted_here {
            return true;
        }
        match principal.idp.as_deref() {
            Some(LDAP_IDP) => {
                self.directory
                    .as_ref()
                    .is_some_and(|d| d.admits(&principal.claimed_groups))
                    && !self.users.contains_key(&principal.username)
            }
            // Another identity provider's tokens are its own to check.
            Some(_) => true,
            None => self.users.contains_key(&principal.username),
        }
    }
}

fn cost(params: &Params) -> u64 {
    u64::from(params.m_cost()) * u64::from(params.t_cost()) * u64::from(params.p_cost())
}

fn decoy_hash(params: Params) -> Result<String, AuthSetupError> {
    use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    let salt = SaltString::generate(&mut OsRng);
    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(b"decoy-password-for-timing", &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthSetupError(e.to_string()))
}

pub struct Authenticator {
    settings: RwLock<Arc<Settings>>,
    revocations: Revocations,
    login_slots: Semaphore,
    throttle: LoginThrottle,
    /// Token ids revoked on this relay, for its open sockets.
    revoked: broadcast::Sender<String>,
}

/// Why a login was not even checked.
#[derive(Debug, thiserror::Error)]
pub enum LoginRefused {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("too many login attempts; try again in {} s", .retry_after.as_secs().max(1))]
    Throttled { retry_after: Duration },
    #[error("the relay is checking too many logins at once; try again in a few seconds")]
    Busy,
    /// Not even looked at: a user name or password beyond the limits.
    #[error("{0}")]
    BadRequest(String),
    /// The LDAP directory's answer other than a wrong password (those are `Auth`).
    #[error(transparent)]
    Directory(DirectoryError),
}

impl From<DirectoryError> for LoginRefused {
    fn from(e: DirectoryError) -> Self {
        match e {
            DirectoryError::BadCredentials => AuthError::BadCredentials.into(),
            DirectoryError::Busy => Self::Busy,
            other => Self::Directory(other),
        }
    }
}

impl Authenticator {
    pub fn new(config: &Config, redis: Option<Arc<RedisLink>>) -> Result<Self, AuthSetupError> {
        Ok(Self {
            settings: RwLock::new(Arc::new(Settings::new(config, None)?)),
            revocations: Revocations::new(redis),
            login_slots: Semaphore::new(concurrent_logins()),
            throttle: LoginThrottle::default(),
            revoked: broadcast::channel(REVOKED_QUEUE).0,
        })
    }

    /// Token ids as they are revoked here (a lagging receiver should recheck).
    pub fn revocations(&self) -> broadcast::Receiver<String> {
        self.revoked.subscribe()
    }

    fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Puts the users, groups and keys of `config` in force (SIGHUP). Tokens already
    /// issued keep working; their groups are read anew at each check.
    pub fn reload(&self, config: &Config) -> Result<(), AuthSetupError> {
        let next = Settings::new(config, Some(&self.settings()))?;
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
        Ok(())
    }

    /// Checks a user's password and mints a token for them. `source` is the caller's
    /// address, for the throttle. A built-in user's name is checked against its argon2
    /// hash only; any other name, against the LDAP directory when one is configured.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        source: IpAddr,
    ) -> Result<(String, Principal), LoginRefused> {
        let settings = self.settings();
        self.throttle
            .admit(&settings.limits, source, username)
            .map_err(|retry_after| LoginRefused::Throttled { retry_after })?;
        if username.len() > MAX_USERNAME_BYTES || password.len() > MAX_PASSWORD_BYTES {
            return Err(LoginRefused::BadRequest(format!(
                "the user name or password is too long: at most {MAX_USERNAME_BYTES} and {MAX_PASSWORD_BYTES} bytes"
            )));
        }
        if let Some(directory) = &settings.directory
            && !settings.users.contains_key(username)
        {
            let user = directory
                .authenticate(username, password, settings.limits.queue_timeout)
                .await?;
            // "Alice" typed, the directory's "alice" a built-in user: not the same person.
            if settings.users.contains_key(&user.username) {
                return Err(AuthError::BadCredentials.into());
            }
            let token = self.mint_with(
                &settings,
                &user.username,
                settings.ttl_secs,
                Some(LDAP_IDP),
                user.groups,
            )?;
            let principal = self.decode(&token)?;
            return Ok((token, principal));
        }
        let hash = settings
            .users
            .get(username)
            .map(|u| u.password_hash.clone())
            .unwrap_or_else(|| settings.decoy_hash.clone());
        let known = settings.users.contains_key(username);
        let password = password.to_owned();
        let _slot = tokio::time::timeout(settings.limits.queue_timeout, self.login_slots.acquire())
            .await
            .map_err(|_| LoginRefused::Busy)?
            .map_err(|_| LoginRefused::Busy)?;
        let verified = tokio::task::spawn_blocking(move || verify_password(&hash, &password))
            .await
            .unwrap_or(false);
        if !(known && verified) {
            return Err(AuthError::BadCredentials.into());
        }
        let token = self.mint_with(&settings, username, settings.ttl_secs, None, Vec::new())?;
        let principal = self.decode(&token)?;
        Ok((token, principal))
    }

    /// Mints a token without a password, for tests and tools that act for a known user.
    pub fn mint(&self, username: &str, ttl_secs: u64) -> Result<String, AuthError> {
        self.mint_with(&self.settings(), username, ttl_secs, None, Vec::new())
    }

    /// A token minted here; `idp` and `groups` (the directory's, already mapped) for a
    /// user checked elsewhere than `[[auth.users]]`.
    fn mint_with(
        &self,
        settings: &Settings,
        username: &str,
        ttl_secs: u64,
        idp: Option<&str>,
        groups: Vec<String>,
    ) -> Result<String, AuthError> {
        let now = unix_now();
        let claims = Claims {
            sub: Some(username.to_owned()),
            user_id: None,
            username: Some(username.to_owned()),
            exp: now.saturating_add(ttl_secs),
            iat: Some(now),
            jti: Some(hex::encode(rand::random::<[u8; 16]>())),
            token_type: Some("access".into()),
            groups,
            idp: idp.map(str::to_owned),
            iss: Some(RELAY_ISSUER.into()),
            aud: Some(RELAY_ISSUER.into()),
        };
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &settings.hs_encoding,
        )
        .map_err(|e| AuthError::Invalid(e.to_string()))
    }

    /// Checks a token's signature, expiry, type and revocation.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let principal = self.decode(token)?;
        self.check_not_revoked(&principal).await?;
        Ok(principal)
    }

    /// Checks a token's signature, expiry and type (everything but revocation).
    pub fn decode(&self, token: &str) -> Result<Principal, AuthError> {
        let settings = self.settings();
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let key = match header.alg {
            Algorithm::HS256 => &settings.hs_decoding,
            Algorithm::RS256 => settings
                .rs_decoding
                .as_ref()
                .ok_or_else(|| AuthError::Invalid("RS256 tokens are not configured".into()))?,
            other => {
                return Err(AuthError::Invalid(format!(
                    "algorithm {other:?} is not accepted"
                )));
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp"]);
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid(e.to_string()),
            })?
            .claims;
        // jsonwebtoken counts whole seconds and accepts a token during its `exp` second;
        // the pump closes sockets at `exp` to the millisecond. Refuse from that instant
        // too, so an expired token never opens (or resumes) anything.
        if unix_now_ms() >= claims.exp.saturating_mul(1000) {
            return Err(AuthError::Expired);
        }
        if let Some(kind) = &claims.token_type
            && kind != "access"
        {
            return Err(AuthError::Invalid(format!(
                "a {kind} token cannot open sessions; use an access token"
            )));
        }
        if claims.iss.as_deref() == Some(RELAY_ISSUER) {
            // Only this relay's own secret mints its tokens: an RS256 key of another
            // system cannot speak for a configured user.
            if header.alg != Algorithm::HS256 || !claims.has_audience(RELAY_ISSUER) {
                return Err(AuthError::Invalid(
                    "a token that claims to be this relay's was not minted by it".into(),
                ));
            }
        } else {
            let external = &settings.external;
            if let Some(issuer) = &external.issuer
                && claims.iss.as_deref() != Some(issuer.as_str())
            {
                return Err(AuthError::Invalid(format!(
                    "the token's issuer is not {issuer:?} (auth.external_tokens.issuer)"
                )));
            }
            if let Some(audience) = &external.audience
                && !claims.has_audience(audience)
            {
                return Err(AuthError::Invalid(format!(
                    "the token is not meant for {audience:?} (auth.external_tokens.audience)"
                )));
            }
        }
        let principal = principal(&settings, claims, token);
        if principal.uid.is_empty() {
            return Err(AuthError::Invalid(
                "the token names no user (sub or user_id)".into(),
            ));
        }
        if (principal.idp.is_some() || !settings.local_users) && !settings.in_standing(&principal) {
            return Err(AuthError::Invalid(format!(
                "the user {:?} may no longer log in here",
                principal.username
            )));
        }
        Ok(principal)
    }

    pub async fn check_not_revoked(&self, principal: &Principal) -> Result<(), AuthError> {
        if self.revocations.is_revoked(&principal.token_id).await? {
            return Err(AuthError::Revoked);
        }
        Ok(())
    }

    /// Revokes the principal's token until it would have expired anyway.
    pub async fn revoke(&self, principal: &Principal) -> Result<(), AuthError> {
        // Sockets on this relay that use the token close at once, not at their next
        // keepalive; other relays see the revocation in Redis at theirs.
        let _ = self.revoked.send(principal.token_id.clone());
        self.revocations
            .revoke(&principal.token_id, principal.expires_at)
            .await
    }

    /// The principal's groups and standing under the config in force: `None` when it
    /// was minted here for a user who is no longer configured.
    pub fn current(&self, principal: &Principal) -> Option<Vec<String>> {
        let settings = self.settings();
        if !settings.in_standing(principal) {
            return None;
        }
        // A directory user keeps a group only while the config still maps onto it.
        let claimed: Vec<String> = match (principal.idp.as_deref(), &settings.directory) {
            (Some(LDAP_IDP), Some(directory)) => principal
                .claimed_groups
                .iter()
                .filter(|g| directory.maps_to(g))
                .cloned()
                .collect(),
            _ => principal.claimed_groups.clone(),
        };
        Some(settings.groups_of(&principal.username, &principal.uid, &claimed))
    }
}

fn principal(settings: &Settings, claims: Claims, token: &str) -> Principal {
    let minted_here = claims.iss.as_deref() == Some(RELAY_ISSUER);
    let idp = claims.idp.filter(|_| minted_here);
    let uid = claims
        .user_id
        .map(|v| match v {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        })
        .or(claims.sub.clone())
        .unwrap_or_default();
    let username = claims
        .username
        .or(claims.sub)
        .unwrap_or_else(|| uid.clone());
    // An empty uid is refused by the caller; it gets no prefix so that stays visible.
    let (uid, username, claimed_groups) = if minted_here || uid.is_empty() {
        // A directory user's groups, as mapped at login, while the config in force still
        // maps some directory group onto each.
        let groups = match (idp.as_deref(), &settings.directory) {
            (Some(LDAP_IDP), Some(directory)) => claims
                .groups
                .into_iter()
                .filter(|g| directory.maps_to(g))
                .collect(),
            _ => Vec::new(),
        };
        (uid, username, groups)
    } else {
        let trusted = &settings.external.trusted_group_claims;
        let claimed = claims
            .groups
            .into_iter()
            .filter(|g| trusted.contains(g))
            .collect();
        (
            format!("{EXTERNAL_PREFIX}{uid}"),
            format!("{EXTERNAL_PREFIX}{username}"),
            claimed,
        )
    };
    let groups = settings.groups_of(&username, &uid, &claimed_groups);
    Principal {
        minted_here,
        idp,
        uid,
        username,
        groups,
        claimed_groups,
        expires_at: claims.exp,
        token_id: claims
            .jti
            .unwrap_or_else(|| format!("sha256:{}", hex::encode(Sha256::digest(token)))),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("auth configuration: {0}")]
pub struct AuthSetupError(String);

/// The HS256 secret from the config or `OPSDECK_JWT_SECRET`, if one is set.
fn configured_secret(auth: &AuthConfig) -> Option<Vec<u8>> {
    if !auth.jwt_secret.is_empty() {
        return Some(auth.jwt_secret.as_bytes().to_vec());
    }
    std::env::var("OPSDECK_JWT_SECRET")
        .ok()
        .filter(|s| !s.is_empty())
        .map(String::into_bytes)
}

fn memberships(
    groups: &BTreeMap<String, Vec<String>>,
    auth: &AuthConfig,
) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for (group, members) in groups {
        for member in members {
            out.entry(member.clone()).or_default().push(group.clone());
        }
    }
    // Switched-off built-in users lend their groups to nobody (a directory user of the
    // same name included).
    let users: &[User] = if auth.local_users { &auth.users } else { &[] };
    for user in users {
        out.entry(user.username.clone())
            .or_default()
            .extend(user.groups.iter().cloned());
    }
    out
}

fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// An argon2id PHC string for `password`, for config files.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch.
pub fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Revoked token ids until their expiry: in this process, and in Redis when configured so
/// that a logout on one relay holds on all of them.
struct Revocations {
    local: Mutex<HashMap<String, u64>>,
    redis: Option<Arc<RedisLink>>,
}

impl Revocations {
    fn new(redis: Option<Arc<RedisLink>>) -> Self {
        Self {
            local: Mutex::new(HashMap::new()),
            redis,
        }
    }

    fn key(jti: &str) -> String {
        format!("opsdeck:revoked:{jti}")
    }

    async fn revoke(&self, jti: &str, expires_at: u64) -> Result<(), AuthError> {
        {
            let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
            let now = unix_now();
            local.retain(|_, exp| *exp > now);
            local.insert(jti.to_owned(), expires_at);
        }
        if let Some(redis) = &self.redis {
            let ttl = expires_at.saturating_sub(unix_now()).max(1);
            let mut conn = redis
                .connection()
                .await
                .map_err(|e| AuthError::RevocationUnavailable(e.to_string()))?;
            redis::cmd("SET")
                .arg(Self::key(jti))
                .arg(1)
                .arg("EX")
                .arg(ttl)
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| AuthError::RevocationUnavailable(e.to_string()))?;
        }
        Ok(())
    }

    async fn is_revoked(&self, jti: &str) -> Result<bool, AuthError> {
        let locally = self
            .local
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(jti);
        if locally {
            return Ok(true);
        }
        let Some(redis) = &self.redis else {
            return Ok(false);
        };
        let mut conn = redis
            .connection()
            .await
            .map_err(|e| AuthError::RevocationUnavailable(e.to_string()))?;
        redis::cmd("EXISTS")
            .arg(Self::key(jti))
            .query_async::<bool>(&mut conn)
            .await
            .map_err(|e| AuthError::RevocationUnavailable(e.to_string()))
    }
}

/// Finds the token in a request: `Authorization: Bearer`, then a `bearer.<token>`
/// WebSocket subprotocol, then the `X-Token` cookie.
pub fn token_from_headers(headers: &warp::http::HeaderMap) -> Option<String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(token) = header("authorization").and_then(|v| v.strip_prefix("Bearer ")) {
        return Some(token.trim().to_owned());
    }
    if let Some(token) = header("sec-websocket-protocol").and_then(|v| {
        v.split(',')
            .map(str::trim)
            .find_map(|p| p.strip_prefix(BEARER_PROTOCOL_PREFIX))
    }) {
        return Some(token.to_owned());
    }
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == TOKEN_COOKIE)
        .map(|(_, value)| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn authenticator(extra: &str) -> Authenticator {
        let hash = hash_password("pw").unwrap();
        let text = format!(
            "[auth]\njwt_secret = \"s3cret\"\n{extra}\n[[auth.users]]\nusername = \"alice\"\npassword_hash = \"{hash}\"\ngroups = [\"ops\"]\n"
        );
        let config = Config::from_toml(&text, "test").unwrap();
        Authenticator::new(&config, None).unwrap()
    }

    #[tokio::test]
    async fn login_mints_a_token_that_verifies() {
        let auth = authenticator("");
        let (token, principal) = auth.login("alice", "pw", LOCAL).await.unwrap();
        assert_eq!(principal.username, "alice");
        assert_eq!(principal.groups, vec!["ops".to_string()]);
        assert_eq!(auth.verify(&token).await.unwrap(), principal);
    }

    #[tokio::test]
    async fn wrong_password_and_unknown_user_read_the_same() {
        let auth = authenticator("");
        let a = auth
            .login("alice", "nope", LOCAL)
            .await
            .unwrap_err()
            .to_string();
        let b = auth
            .login("mallory", "pw", LOCAL)
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(a, b);
    }

    #[tokio::test]
    async fn simplejwt_access_tokens_are_accepted_and_refresh_tokens_are_not() {
        let auth = authenticator("");
        let key = EncodingKey::from_secret(b"s3cret");
        let exp = unix_now() + 60;
        let access =
            serde_json::json!({"token_type": "access", "exp": exp, "jti": "j1", "user_id": 42});
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &access, &key).unwrap();
        let principal = auth.verify(&token).await.unwrap();
        assert_eq!(principal.uid, "ext:42");
        assert_eq!(principal.username, "ext:42");
        let refresh =
            serde_json::json!({"token_type": "refresh", "exp": exp, "jti": "j2", "user_id": 42});
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &refresh, &key).unwrap();
        assert!(matches!(
            auth.verify(&token).await,
            Err(AuthError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn expired_forged_and_revoked_tokens_are_refused() {
        let auth = authenticator("");
        let past = serde_json::json!({"sub": "alice", "exp": unix_now() - 1});
        let key = EncodingKey::from_secret(b"s3cret");
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &past, &key).unwrap();
        assert!(matches!(auth.verify(&token).await, Err(AuthError::Expired)));

        let forged_key = EncodingKey::from_secret(b"guess");
        let claims = serde_json::json!({"sub": "alice", "exp": unix_now() + 60});
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &forged_key).unwrap();
        assert!(matches!(
            auth.verify(&token).await,
            Err(AuthError::Invalid(_))
        ));

        let (token, principal) = auth.login("alice", "pw", LOCAL).await.unwrap();
        auth.revoke(&principal).await.unwrap();
        assert!(matches!(auth.verify(&token).await, Err(AuthError::Revoked)));
    }

    fn external(claims: serde_json::Value) -> String {
        let key = EncodingKey::from_secret(b"s3cret");
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
    }

    // Review #9 (b), (c): an outside token named like a local user gets neither that
    // user's groups nor a group its claim names, unless that group is trusted.
    #[tokio::test]
    async fn external_tokens_live_apart_from_local_users_and_their_group_claims_are_not_trusted() {
        let auth = authenticator("");
        let exp = unix_now() + 60;
        let token = external(serde_json::json!({
            "username": "alice", "sub": "7", "exp": exp, "groups": ["ops", "admins"]
        }));
        let principal = auth.verify(&token).await.unwrap();
        assert_eq!(principal.username, "ext:alice");
        assert_eq!(principal.uid, "ext:7");
        assert!(principal.groups.is_empty(), "{:?}", principal.groups);

        let auth = authenticator(
            "[auth.external_tokens]\ntrusted_group_claims = [\"admins\"]\n[groups]\nops = [\"ext:alice\"]",
        );
        let principal = auth.verify(&token).await.unwrap();
        assert_eq!(principal.groups, ["admins", "ops"]);
    }

    // Review #9 (a), (d): issuer and audience are required when configured, and a token
    // that claims this relay's issuer must carry its audience and signature.
    #[tokio::test]
    async fn issuer_audience_and_not_before_are_checked() {
        let auth = authenticator(
            "[auth.external_tokens]\nissuer = \"https://idp.example\"\naudience = \"opsdeck-prod\"",
        );
        let exp = unix_now() + 60;
        let good = serde_json::json!({
            "sub": "7", "exp": exp, "iss": "https://idp.example", "aud": ["x", "opsdeck-prod"]
        });
        assert!(auth.verify(&external(good.clone())).await.is_ok());
        for (field, value) in [
            ("iss", serde_json::json!("https://other.example")),
            ("aud", serde_json::json!("someone-else")),
            ("nbf", serde_json::json!(exp)),
        ] {
            let mut claims = good.clone();
            claims[field] = value;
            let refused = auth.verify(&external(claims)).await;
            assert!(
                matches!(refused, Err(AuthError::Invalid(_))),
                "{field}: {refused:?}"
            );
        }
        let posing = serde_json::json!({"sub": "alice", "exp": exp, "iss": "opsdeck"});
        assert!(matches!(
            auth.verify(&external(posing)).await,
            Err(AuthError::Invalid(_))
        ));
        let (minted, _) = auth.login("alice", "pw", LOCAL).await.unwrap();
        assert_eq!(auth.verify(&minted).await.unwrap().username, "alice");
    }

    // Review #29: the decoy checked for unknown users costs what the costliest configured
    // hash costs, so timing does not tell which user names exist.
    #[test]
    fn the_decoy_hash_has_the_costliest_configured_parameters() {
        use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
        let params = Params::new(32768, 3, 2, None).unwrap();
        let costly = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password(b"pw", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        let cheap = hash_password("pw").unwrap();
        let text = format!(
            "[[auth.users]]\nusername = \"a\"\npassword_hash = \"{cheap}\"\n\
             [[auth.users]]\nusername = \"b\"\npassword_hash = \"{costly}\"\n"
        );
        let config = Config::from_toml(&text, "test").unwrap();
        let settings = Settings::new(&config, None).unwrap();
        let decoy = PasswordHash::new(&settings.decoy_hash).unwrap();
        let decoy = Params::try_from(&decoy).unwrap();
        assert_eq!(
            (decoy.m_cost(), decoy.t_cost(), decoy.p_cost()),
            (32768, 3, 2)
        );
    }

    const DIRECTORY: &str = "[auth.ldap]\nurl = \"ldap://127.0.0.1:1\"\nstarttls = false\n\
        user_dn_template = \"uid={username},dc=example\"\n\
        [auth.ldap.group_map]\noperators = \"ops\"\nstaff = \"staff\"\n";

    fn config(extra: &str) -> Config {
        let hash = hash_password("pw").unwrap();
        let text = format!(
            "[auth]\njwt_secret = \"s3cret\"\n{extra}\n[[auth.users]]\nusername = \"alice\"\npassword_hash = \"{hash}\"\ngroups = [\"local-admins\"]\n{DIRECTORY}"
        );
        Config::from_toml(&text, "test").unwrap()
    }

    /// A token as a directory login mints it for `username` with mapped `groups`.
    fn directory_token(auth: &Authenticator, username: &str, groups: &[&str]) -> String {
        let groups = groups.iter().map(|g| g.to_string()).collect();
        auth.mint_with(&auth.settings(), username, 60, Some(LDAP_IDP), groups)
            .unwrap()
    }

    // A directory user's groups are the token's, while the config in force maps onto
    // them; without [auth.ldap] (or once the name is a built-in user's) the token is void.
    #[tokio::test]
    async fn directory_tokens_follow_the_mapping_and_the_directory_in_force() {
        let auth = Authenticator::new(&config(""), None).unwrap();
        let token = directory_token(&auth, "dave", &["ops", "staff", "forged"]);
        let principal = auth.verify(&token).await.unwrap();
        assert_eq!(principal.groups, ["ops", "staff"]);
        assert_eq!(principal.idp.as_deref(), Some("ldap"));

        let fewer = config("").auth.clone();
        let mut next = config("");
        next.auth.ldap = fewer.ldap.map(|mut l| {
            l.group_map.remove("staff");
            l
        });
        auth.reload(&next).unwrap();
        assert_eq!(auth.current(&principal).unwrap(), ["ops"]);

        auth.reload(&config("")).unwrap();
        let erin = directory_token(&auth, "erin", &["staff"]);
        let erin = auth.verify(&erin).await.unwrap();
        let mut stricter = config("");
        if let Some(ldap) = &mut stricter.auth.ldap {
            ldap.required_groups = vec!["ops".into()];
        }
        auth.reload(&stricter).unwrap();
        assert_eq!(auth.current(&erin), None, "in no required group any more");
        assert_eq!(auth.current(&principal).unwrap(), ["ops", "staff"]);

        let mut without = config("");
        without.auth.ldap = None;
        auth.reload(&without).unwrap();
        assert_eq!(auth.current(&principal), None);
        assert!(matches!(
            auth.verify(&token).await,
            Err(AuthError::Invalid(_))
        ));

        auth.reload(&config("")).unwrap();
        let posing = directory_token(&auth, "alice", &["ops"]);
        assert!(matches!(
            auth.verify(&posing).await,
            Err(AuthError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn switching_local_users_off_voids_their_logins_and_tokens() {
        let auth = Authenticator::new(&config(""), None).unwrap();
        let (token, _) = auth.login("alice", "pw", LOCAL).await.unwrap();
        auth.reload(&config("local_users = false")).unwrap();
        assert!(matches!(
            auth.verify(&token).await,
            Err(AuthError::Invalid(_))
        ));
        // A directory alice gets none of the switched-off built-in alice's groups.
        let directory_alice = directory_token(&auth, "alice", &["ops"]);
        assert_eq!(auth.verify(&directory_alice).await.unwrap().groups, ["ops"]);
        // The name now goes to the directory, which is not there: 503, not 401.
        let refused = auth.login("alice", "pw", LOCAL).await.unwrap_err();
        assert!(
            matches!(
                refused,
                LoginRefused::Directory(DirectoryError::Unavailable(_))
            ),
            "{refused}"
        );
    }

    #[test]
    fn token_is_found_in_header_subprotocol_or_cookie() {
        use warp::http::{HeaderMap, HeaderValue};
        let mut h = HeaderMap::new();
        h.insert("cookie", HeaderValue::from_static("a=b; X-Token=tok3"));
        assert_eq!(token_from_headers(&h).as_deref(), Some("tok3"));
        h.insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("opsdeck, bearer.tok2"),
        );
        assert_eq!(token_from_headers(&h).as_deref(), Some("tok2"));
        h.insert("authorization", HeaderValue::from_static("Bearer tok1"));
        assert_eq!(token_from_headers(&h).as_deref(), Some("tok1"));
    }
}
