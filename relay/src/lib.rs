//! The Opsdeck relay: authenticates browsers and pipes WebSocket frames to SSH hosts,
//! Kubernetes pods, log files, chat rooms and job output. `docs/ARCHITECTURE.md` maps it.

pub mod access;
pub mod api;
pub mod auth;
pub mod backend;
pub mod config;
pub mod demo;
pub mod endpoints;
pub mod metrics;
pub mod pump;
pub mod redis_link;
pub mod server;
pub mod session;
pub mod websocket;

pub use config::Config;
pub use server::{AppState, Relay};
