//! The Opsdeck wire: every frame that crosses a WebSocket between the browser and the relay.
//!
//! Both the relay and the frontend compile this crate, so a frame is defined once and
//! (de)serialised by the same code on both ends. `docs/PROTOCOL.md` describes each frame
//! with examples; `tests/protocol_doc.rs` reads that document and checks every example and
//! close code against these types.
//!
//! - [`client`]: what the browser sends (text JSON frames; binary frames are raw keystrokes).
//! - [`server`]: what the relay sends back as text JSON (terminal output itself travels as
//!   binary frames of raw bytes, never decoded on the way).
//! - [`chat`]: the classic chat frames, in both directions.
//! - [`resume`]: the one resume contract shared by every stream kind.
//! - [`close`]: the close codes and what each one means to the user.
//! - [`query`]: the query string of every stream endpoint, typed.
//! - [`error`]: why a frame or a query string was refused, in words for the user.
//! - [`api`]: the JSON bodies of the relay's small HTTP API.
//! - [`sso`]: single sign-on: the login page's providers, the callback's parameters, the
//!   refusal reasons.
//! - [`audit`]: the audit trail's events and `GET /api/audit`.
//! - [`recording`]: the asciicast header of session recordings and `GET /api/recordings`.
//! - [`files`]: files on SSH hosts and in pods: listings, the `/api/files` query strings,
//!   the path rules.

pub mod api;
pub mod audit;
pub mod chat;
pub mod client;
pub mod close;
pub mod error;
pub mod files;
pub mod query;
pub mod recording;
pub mod resume;
pub mod server;
pub mod sso;

pub use client::{ClientFrame, FLOW_WINDOW, ResizeOrder, TermSize};
pub use close::CloseCode;
pub use error::{FrameError, QueryError};
pub use query::EndpointQuery;
pub use resume::{Position, ResumeQuery, StreamKind};
pub use server::ServerFrame;
