//! The Opsdeck relay: authenticates browsers and pipes WebSocket frames to SSH hosts,
//! Kubernetes pods, log files, chat rooms and job output. `docs/ARCHITECTURE.md` maps it.
//!
//! Layers, each importing only those below it (`relay/tests/layering.rs` holds them):
//! `server` (routes) → `endpoints/`, `api` → `pump` → `state` → `session`, `backend/` →
//! `auth`, `access`, `ldap` → `config`, `close`, `metrics`, `redis_link`, `websocket`.

mod access;
mod api;
mod audit;
mod auth;
mod backend;
mod close;
mod config;
#[doc(hidden)]
pub mod decoders;
pub mod demo;
mod endpoints;
mod http;
mod ldap;
mod metrics;
mod oidc;
mod origin;
mod pump;
mod recording;
mod redis_link;
mod server;
mod session;
mod state;
mod throttle;
mod websocket;

pub use auth::{AuthSetupError, hash_password};
pub use backend::k8s::exec::shell_command;
pub use config::{Config, ConfigError};
pub use oidc::check_discovery;
pub use server::Relay;
pub use state::StartError;

/// What `check-config` checks beyond the file itself: that the users' hashes, the RSA key
/// file, and the LDAP directory's secret and CA file (`[auth.ldap]`) load as at start.
pub fn check_credentials(config: &Config) -> Result<(), AuthSetupError> {
    auth::Authenticator::new(config, None).map(|_| ())
}
