//! The Opsdeck relay: authenticates browsers and pipes WebSocket frames to SSH hosts,
//! Kubernetes pods, log files, chat rooms and job output. `docs/ARCHITECTURE.md` maps it.
//!
//! Layers, each importing only those below it (`relay/tests/layering.rs` holds them):
//! `server` (routes) → `endpoints/`, `api` → `pump` → `state` → `session`, `backend/` →
//! `auth`, `access` → `config`, `close`, `metrics`, `redis_link`, `websocket`.

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
mod metrics;
mod origin;
mod pump;
mod recording;
mod redis_link;
mod server;
mod session;
mod state;
mod throttle;
mod websocket;

pub use auth::hash_password;
pub use backend::k8s::exec::SHELL_SCRIPT;
pub use config::{Config, ConfigError};
pub use server::Relay;
pub use state::StartError;
