//! Single sign-on through OpenID Connect providers (`[[auth.oidc]]`), with the
//! `openidconnect` crate: the authorization code flow with PKCE, the ID token checked in
//! full (signature through the provider's JWKS, refetched when a token names an unknown
//! key, `iss`, `aud`, `exp`, `nonce`), the provider's admission rules, RP-initiated logout
//! and Back-Channel Logout 1.0.
//!
//! A sign-in in progress lives in the browser, not in the relay: its state, nonce, PKCE
//! verifier and redirect URL travel in a short-lived HttpOnly cookie signed with the relay's
//! secret ([`FLOW_COOKIE`], `SameSite=Lax` so it comes back with the provider's redirect).
//! So any relay sharing the secret can finish a sign-in another one started, and starting
//! sign-ins costs the relay no memory. The provider makes the code single-use.
//!
//! Each login's console token is remembered under the provider's `sub` and `sid`
//! ([`sessions`]) so that a back-channel logout revokes exactly those tokens (open sockets
//! close with 4431 at once on this relay, at their next keepalive on others).

mod admission;
mod http;
mod logout_token;
mod replay;
mod sessions;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use common::sso::{CallbackQuery, SsoRefusal};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet,
    CoreJwsSigningAlgorithm,
};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    LogoutRequest, Nonce, PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl,
    ProviderMetadataWithLogout, RedirectUrl, RequestTokenError, Scope, SignatureVerificationError,
    TokenResponse,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::{Authenticator, OIDC_IDP_PREFIX, Principal};
use crate::config::{Config, OidcProvider};
use crate::redis_link::RedisLink;

use self::http::IdpHttp;
use self::logout_token::LogoutTokenError;
use self::replay::{ReplayError, SeenTokens};
use self::sessions::{MintedToken, SessionIndex};

/// The cookie holding a sign-in in progress.
pub const FLOW_COOKIE: &str = "opsdeck-sso";
/// The path it is sent to.
pub const FLOW_COOKIE_PATH: &str = "/api/auth/oidc/";
/// How long a sign-in may take, from the button to the callback.
pub const FLOW_TTL_SECS: u64 = 600;
/// The audience of the flow cookie's signed value.
const FLOW_PURPOSE: &str = "opsdeck:sso-flow";

/// How long discovered provider metadata is used before it is read again.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// After a failed discovery, sign-ins fail at once for this long instead of each waiting
/// for the provider again.
const DISCOVERY_RETRY: Duration = Duration::from_secs(5);
/// A token naming an unknown key makes the relay read the provider's keys again, at most
/// this often (a flood of forged `kid`s cannot make it hammer the provider).
const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(30);

/// Signature algorithms accepted on ID and logout tokens: asymmetric ones only (no
/// `none`, no HMAC with the client secret).
const ALGORITHMS: [CoreJwsSigningAlgorithm; 10] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EcdsaP521Sha512,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// Why a sign-in or a back-channel logout was refused. The message is for the log: it
/// never holds a code, a token, a state or a secret.
#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    #[error("no such provider")]
    UnknownProvider,
    #[error("the provider refused: {0}")]
    ProviderRefused(String),
    #[error("no sign-in in progress in this browser, or it expired")]
    LoginExpired,
    #[error("the state does not match this browser's sign-in")]
    StateMismatch,
    #[error("bad callback: {0}")]
    BadCallback(String),
    #[error("the provider is unreachable: {0}")]
    Unreachable(String),
    #[error("the provider's answer does not verify: {0}")]
    TokenInvalid(String),
    #[error("{0}")]
    ClaimsMissing(String),
    #[error("not allowed: {0}")]
    NotAllowed(String),
    #[error("{0}")]
    Internal(String),
}

impl SsoError {
    /// The reason code the login page shows.
    pub fn refusal(&self) -> SsoRefusal {
        match self {
            Self::UnknownProvider => SsoRefusal::UnknownProvider,
            Self::ProviderRefused(_) => SsoRefusal::ProviderRefused,
            Self::LoginExpired => SsoRefusal::LoginExpired,
            Self::StateMismatch => SsoRefusal::StateMismatch,
            Self::BadCallback(_) => SsoRefusal::BadCallback,
            Self::Unreachable(_) => SsoRefusal::ProviderUnreachable,
            Self::TokenInvalid(_) => SsoRefusal::TokenInvalid,
            Self::ClaimsMissing(_) => SsoRefusal::ClaimsMissing,
            Self::NotAllowed(_) => SsoRefusal::NotAllowed,
            Self::Internal(_) => SsoRefusal::Internal,
        }
    }
}

/// A sign-in in progress, sealed into [`FLOW_COOKIE`].
#[derive(Debug, Serialize, Deserialize)]
struct Flow {
    /// Provider id.
    p: String,
    /// State.
    s: String,
    /// Nonce.
    n: String,
    /// PKCE verifier.
    v: String,
    /// Redirect URL sent with the authorization request (the token request repeats it).
    r: String,
}

/// What discovery found, and when.
#[derive(Clone)]
struct Discovered {
    metadata: ProviderMetadataWithLogout,
    at: Instant,
    keys_at: Instant,
}

/// One configured provider and what the relay learned of it.
struct ProviderLink {
    config: OidcProvider,
    secret: ClientSecret,
    http: IdpHttp,
    discovered: tokio::sync::Mutex<Option<Discovered>>,
    /// When discovery last failed, and why.
    failed: std::sync::Mutex<Option<(Instant, String)>>,
}

impl ProviderLink {
    fn new(config: &OidcProvider) -> Result<Self, String> {
        let secret = config.client_secret().map_err(|e| e.to_string())?;
        Ok(Self {
            secret: ClientSecret::new(secret),
            http: IdpHttp::new(config.http_timeout).map_err(|e| e.to_string())?,
            config: config.clone(),
            discovered: tokio::sync::Mutex::new(None),
            failed: std::sync::Mutex::new(None),
        })
    }

    fn issuer(&self) -> Result<IssuerUrl, SsoError> {
        IssuerUrl::new(self.config.issuer.clone()).map_err(|e| SsoError::Internal(e.to_string()))
    }

    /// The provider's metadata (with its keys), discovered at first use and again after
    /// [`METADATA_TTL`] (while the provider does not answer, the metadata it gave last is
    /// used).
    async fn metadata(&self) -> Result<Discovered, SsoError> {
        let mut cached = self.discovered.lock().await;
        if let Some(found) = cached.as_ref()
            && found.at.elapsed() < METADATA_TTL
        {
            return Ok(found.clone());
        }
        if let Some((at, why)) = self
            .failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            && at.elapsed() < DISCOVERY_RETRY
        {
            return match cached.as_ref() {
                Some(stale) => Ok(stale.clone()),
                None => Err(SsoError::Unreachable(why.clone())),
            };
        }
        let metadata =
            match ProviderMetadataWithLogout::discover_async(self.issuer()?, &self.http).await {
                Ok(metadata) => metadata,
                Err(e) => {
                    let why = format!("discovery failed: {e}");
                    *self.failed.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some((Instant::now(), why.clone()));
                    return match cached.as_ref() {
                        Some(stale) => Ok(stale.clone()),
                        None => Err(SsoError::Unreachable(why)),
                    };
                }
            };
        let now = Instant::now();
        let found = Discovered {
            metadata,
            at: now,
            keys_at: now,
        };
        *cached = Some(found.clone());
        Ok(found)
    }

    /// Reads the provider's keys again, unless that was done less than
    /// [`JWKS_REFETCH_INTERVAL`] ago; the keys now in force.
    async fn refetch_keys(&self) -> Option<CoreJsonWebKeySet> {
        let mut cached = self.discovered.lock().await;
        let found = cached.as_mut()?;
        if found.keys_at.elapsed() < JWKS_REFETCH_INTERVAL {
            return None;
        }
        found.keys_at = Instant::now();
        match CoreJsonWebKeySet::fetch_async(found.metadata.jwks_uri(), &self.http).await {
            Ok(keys) => {
                found.metadata = found.metadata.clone().set_jwks(keys.clone());
                tracing::info!(provider = %self.config.id, "provider keys read again (a token named an unknown key)");
                Some(keys)
            }
            Err(e) => {
                tracing::warn!(provider = %self.config.id, "could not read the provider's keys: {e}");
                None
            }
        }
    }

    fn verifier(&self, keys: CoreJsonWebKeySet) -> Result<CoreIdTokenVerifier<'static>, SsoError> {
        Ok(CoreIdTokenVerifier::new_public_client(
            ClientId::new(self.config.client_id.clone()),
            self.issuer()?,
            keys,
        )
        .set_allowed_algs(ALGORITHMS))
    }

    /// Verifies a token with the provider's keys, reading them again once when it names a
    /// key they lack (key rotation).
    async fn verified<R>(
        &self,
        keys: CoreJsonWebKeySet,
        check: impl Fn(CoreIdTokenVerifier<'static>) -> Result<R, ClaimsVerificationError>,
    ) -> Result<R, SsoError> {
        match check(self.verifier(keys)?) {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => match self.refetch_keys().await {
                Some(fresh) => {
                    check(self.verifier(fresh)?).map_err(|e| SsoError::TokenInvalid(e.to_string()))
                }
                None => Err(SsoError::TokenInvalid(
                    "the token is signed with a key the provider does not publish".into(),
                )),
            },
            other => other.map_err(|e| SsoError::TokenInvalid(e.to_string())),
        }
    }

    fn redirect_url(&self, public_origins: &[String], host: Option<&str>) -> Option<String> {
        if let Some(url) = &self.config.redirect_url {
            return Some(url.clone());
        }
        let base = match public_origins.first() {
            Some(origin) => origin.trim_end_matches('/').to_owned(),
            // Without public_origins only loopback hosts reach the relay (server.rs).
            None => format!("http://{}", host?),
        };
        Some(format!(
            "{base}{}callback",
            common::sso::ProviderButton::login_path_of(&self.config.id).trim_end_matches("login")
        ))
    }
}

/// Tries every provider of `config`: its secret, discovery and keys (`check-config
/// --discover`). One line per provider: its id, and what went wrong if anything did.
pub async fn check_discovery(config: &Config) -> Vec<(String, Result<(), String>)> {
    let mut out = Vec::new();
    for provider in &config.auth.oidc {
        let result = match ProviderLink::new(provider) {
            Ok(link) => link.metadata().await.map(drop).map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        out.push((provider.id.clone(), result));
    }
    out
}

/// Providers ready to be put in force (a reload reads every secret before anything
/// changes).
pub struct Providers(Arc<HashMap<String, Arc<ProviderLink>>>);

/// The configured providers, the sign-in flows and the session index.
pub struct OidcHub {
    providers: RwLock<Arc<HashMap<String, Arc<ProviderLink>>>>,
    sessions: SessionIndex,
    seen: SeenTokens,
}

/// Where to send the browser to sign in, and the flow cookie's value.
pub struct LoginStart {
    pub authorize_url: String,
    pub flow_cookie: String,
}

impl OidcHub {
    pub fn new(config: &Config, redis: Option<Arc<RedisLink>>) -> Result<Self, String> {
        let hub = Self {
            providers: RwLock::new(Arc::new(HashMap::new())),
            sessions: SessionIndex::new(redis.clone()),
            seen: SeenTokens::new(redis),
        };
        hub.reload(config)?;
        Ok(hub)
    }

    /// Puts the providers of `config` in force.
    pub fn reload(&self, config: &Config) -> Result<(), String> {
        let next = self.prepare(config)?;
        self.install(next);
        Ok(())
    }

    /// The providers of `config`, their secrets read; an unchanged provider keeps what
    /// discovery learned. Nothing changes until [`OidcHub::install`].
    pub fn prepare(&self, config: &Config) -> Result<Providers, String> {
        let current = self.providers();
        let mut next = HashMap::new();
        for provider in &config.auth.oidc {
            let link = match current.get(&provider.id) {
                Some(link) if link.config == *provider => link.clone(),
                _ => Arc::new(ProviderLink::new(provider)?),
            };
            next.insert(provider.id.clone(), link);
        }
        Ok(Providers(Arc::new(next)))
    }

    pub fn install(&self, providers: Providers) {
        *self.providers.write().unwrap_or_else(|e| e.into_inner()) = providers.0;
    }

    fn providers(&self) -> Arc<HashMap<String, Arc<ProviderLink>>> {
        self.providers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn provider(&self, id: &str) -> Result<Arc<ProviderLink>, SsoError> {
        self.providers()
            .get(id)
            .cloned()
            .ok_or(SsoError::UnknownProvider)
    }

    /// Starts a sign-in with provider `id`: the provider's authorization URL (code flow,
    /// PKCE S256, state and nonce) and the sealed flow for the cookie.
    pub async fn begin(
        &self,
        auth: &Authenticator,
        id: &str,
        public_origins: &[String],
        host: Option<&str>,
    ) -> Result<LoginStart, SsoError> {
        let provider = self.provider(id)?;
        let redirect = provider
            .redirect_url(public_origins, host)
            .ok_or_else(|| SsoError::BadCallback("the request names no Host".into()))?;
        let found = provider.metadata().await?;
        let client = CoreClient::from_provider_metadata(
            found.metadata,
            ClientId::new(provider.config.client_id.clone()),
            Some(provider.secret.clone()),
        )
        .set_redirect_uri(
            RedirectUrl::new(redirect.clone()).map_err(|e| SsoError::Internal(e.to_string()))?,
        );
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for scope in provider.config.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.url();
        let flow = Flow {
            p: id.to_owned(),
            s: state.secret().clone(),
            n: nonce.secret().clone(),
            v: verifier.secret().clone(),
            r: redirect,
        };
        let flow_cookie = auth
            .seal(FLOW_PURPOSE, &flow, FLOW_TTL_SECS)
            .ok_or_else(|| SsoError::Internal("cannot sign the sign-in state".into()))?;
        Ok(LoginStart {
            authorize_url: url.to_string(),
            flow_cookie,
        })
    }

    /// Finishes a sign-in: checks the callback against the flow cookie, exchanges the code,
    /// verifies the ID token, applies the provider's rules and mints the console token.
    pub async fn finish(
        &self,
        auth: &Authenticator,
        id: &str,
        query: &CallbackQuery,
        flow_cookie: Option<&str>,
    ) -> Result<(String, Principal), SsoError> {
        let provider = self.provider(id)?;
        if let Some(error) = &query.error {
            let error: String = error.chars().take(64).collect();
            return Err(SsoError::ProviderRefused(format!("{error:?}")));
        }
        let flow: Flow = flow_cookie
            .and_then(|c| auth.unseal(FLOW_PURPOSE, c))
            .ok_or(SsoError::LoginExpired)?;
        let state = query
            .state
            .as_deref()
            .ok_or_else(|| SsoError::BadCallback("no state".into()))?;
        if flow.p != id || Sha256::digest(state.as_bytes()) != Sha256::digest(flow.s.as_bytes()) {
            return Err(SsoError::StateMismatch);
        }
        if let Some(iss) = &query.iss
            && iss.trim_end_matches('/') != provider.config.issuer.trim_end_matches('/')
        {
            return Err(SsoError::TokenInvalid(
                "the answer comes from another issuer (iss)".into(),
            ));
        }
        let code = query
            .code
            .clone()
            .ok_or_else(|| SsoError::BadCallback("no code".into()))?;
        let found = provider.metadata().await?;
        let keys = found.metadata.jwks().clone();
        let client = CoreClient::from_provider_metadata(
            found.metadata,
            ClientId::new(provider.config.client_id.clone()),
            Some(provider.secret.clone()),
        )
        .set_redirect_uri(
            RedirectUrl::new(flow.r.clone()).map_err(|e| SsoError::Internal(e.to_string()))?,
        );
        let response = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| SsoError::Unreachable(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(flow.v.clone()))
            .request_async(&provider.http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(answer) => SsoError::TokenInvalid(format!(
                    "the provider refused the code: {}",
                    answer.error()
                )),
                RequestTokenError::Request(e) => SsoError::Unreachable(e.to_string()),
                RequestTokenError::Parse(e, _) => {
                    SsoError::Unreachable(format!("unreadable token answer: {e}"))
                }
                RequestTokenError::Other(e) => SsoError::Unreachable(e),
            })?;
        let id_token: CoreIdToken = response
            .id_token()
            .cloned()
            .ok_or_else(|| SsoError::TokenInvalid("the answer has no ID token".into()))?;
        let nonce = Nonce::new(flow.n.clone());
        let claims = provider
            .verified(keys, |verifier| id_token.claims(&verifier, &nonce).cloned())
            .await?;
        let payload = payload_of(&id_token.to_string())?;
        let session = payload
            .get("sid")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned);
        let subject = claims.subject().as_str();
        let identity = admission::admit(&provider.config, &payload)?;
        let (token, principal) = auth
            .mint_sso(&identity)
            .map_err(|e| SsoError::Internal(e.to_string()))?;
        self.sessions
            .record(
                id,
                subject,
                session.as_deref(),
                MintedToken {
                    token_id: principal.token_id.clone(),
                    expires_at: principal.expires_at,
                },
            )
            .await;
        Ok((token, principal))
    }

    /// Where to send a browser that logs out of a provider login: the provider's
    /// end-session endpoint (RP-initiated logout), when it has one.
    pub async fn end_session_url(&self, principal: &Principal) -> Option<String> {
        let id = principal.idp.as_deref()?.strip_prefix(OIDC_IDP_PREFIX)?;
        let provider = self.provider(id).ok()?;
        let found = provider.metadata().await.ok()?;
        let endpoint = found
            .metadata
            .additional_metadata()
            .end_session_endpoint
            .clone()?;
        let mut request = LogoutRequest::from(endpoint)
            .set_client_id(ClientId::new(provider.config.client_id.clone()));
        if let Some(url) = &provider.config.post_logout_redirect_url
            && let Ok(url) = PostLogoutRedirectUrl::new(url.clone())
        {
            request = request.set_post_logout_redirect_uri(url);
        }
        Some(request.http_get_url().to_string())
    }

    /// A back-channel logout from provider `id`: verifies the logout token
    /// ([`logout_token`]), refuses one already used ([`replay`]) and revokes the console
    /// tokens of the session (`sid`) or user (`sub`) it names. The number revoked.
    pub async fn backchannel_logout(
        &self,
        auth: &Authenticator,
        id: &str,
        logout_token: &str,
    ) -> Result<usize, SsoError> {
        let provider = self.provider(id)?;
        let found = provider.metadata().await?;
        let verify = |keys: &CoreJsonWebKeySet| {
            logout_token::verify(
                logout_token,
                keys,
                &provider.config.issuer,
                &provider.config.client_id,
            )
        };
        let claims = match verify(found.metadata.jwks()) {
            Err(LogoutTokenError::NoMatchingKey) => match provider.refetch_keys().await {
                Some(fresh) => verify(&fresh),
                None => Err(LogoutTokenError::NoMatchingKey),
            },
            other => other,
        }
        .map_err(|e| SsoError::TokenInvalid(e.to_string()))?;
        self.seen
            .first_use(id, &claims.jti, claims.exp)
            .await
            .map_err(|e| match e {
                ReplayError::Replayed => SsoError::TokenInvalid(e.to_string()),
                ReplayError::Unavailable(why) => SsoError::Unreachable(why),
            })?;
        match self.revoke(auth, id, &claims).await {
            Ok(revoked) => Ok(revoked),
            Err(e) => {
                // Not applied: the provider's retry of this token is to be taken.
                self.seen.forget(id, &claims.jti).await;
                Err(e)
            }
        }
    }

    async fn revoke(
        &self,
        auth: &Authenticator,
        id: &str,
        claims: &logout_token::LogoutClaims,
    ) -> Result<usize, SsoError> {
        let tokens = self
            .sessions
            .tokens(id, claims.sub.as_deref(), claims.sid.as_deref())
            .await
            .map_err(SsoError::Unreachable)?;
        for token in &tokens {
            auth.revoke_token_id(&token.token_id, token.expires_at)
                .await
                .map_err(|e| SsoError::Unreachable(e.to_string()))?;
        }
        Ok(tokens.len())
    }
}

/// The payload of a JWT whose signature was verified, as a JSON object.
fn payload_of(jwt: &str) -> Result<serde_json::Map<String, serde_json::Value>, SsoError> {
    let part = jwt
        .split('.')
        .nth(1)
        .ok_or_else(|| SsoError::TokenInvalid("not a JWT".into()))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|e| SsoError::TokenInvalid(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| SsoError::TokenInvalid(e.to_string()))
}
