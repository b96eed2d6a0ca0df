//! The Opsdeck chat client, for apps that embed a room: one implementation of the chat
//! protocol's client side (PROTOCOL.md, "Chat"), used natively on tokio and in the browser.
//!
//! - [`machine`]: the protocol as a state machine without I/O — catch-up from the last
//!   message id exactly once, acknowledged sends with a `client_id` (resent after every
//!   reconnect), presence, and what each close code means.
//! - [`backoff`]: when to reconnect (exponential, with jitter).
//! - [`close`]: [`ChatError`], the typed error for each close code, and reconnect-or-stop.
//! - [`transport`]: the two traits a platform implements (open a socket, sleep, random).
//! - [`client`]: [`ChatClient`] (send, close) and [`Events`], driving the machine over a
//!   transport.
//! - `native` (feature `native`): tokio + tokio-tungstenite; `web` (feature `web`, wasm32):
//!   gloo-net.
//!
//! The wire types stay in `common`; this crate only builds and reads them.
//!
//! ```no_run
//! # #[cfg(feature = "native")]
//! # async fn demo() {
//! use futures_util::StreamExt;
//! use opsdeck_client::{Auth, ClientConfig, Event};
//!
//! let config = ClientConfig::new("ws://127.0.0.1:8080/ws/chat/ops", Auth::Bearer("<jwt>".into()));
//! let (chat, mut events) = opsdeck_client::native::connect(config);
//! let id = chat.send("hello").await; // Ok(message id) once the relay stored it
//! while let Some(event) = events.next().await {
//!     if let Event::Message { message, .. } = event {
//!         println!("{}: {}", message.username, message.message);
//!     }
//! }
//! # }
//! ```

pub mod backoff;
pub mod client;
pub mod close;
pub mod machine;
pub mod transport;

#[cfg(feature = "native")]
pub mod native;
// Built natively too (web-sys compiles as stubs there), so the frontend's native checks build;
// it works only in a browser.
#[cfg(feature = "web")]
pub mod web;

pub use client::{ChatClient, Events, SendError};
pub use close::ChatError;
pub use machine::{Auth, ClientConfig, ConnState, Event, Machine};
pub use transport::{Socket, SocketEvent, Transport};

// `scripts/wasm-test.sh` runs the unit tests in headless Chromium too.
#[cfg(all(test, target_arch = "wasm32"))]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);
