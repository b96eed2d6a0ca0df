//! The Opsdeck chat client for JavaScript: the `OpsdeckChat` class, exported with
//! wasm-bindgen from `opsdeck-client` (feature `web`) — the same state machine, backoff and
//! transport as the Opsdeck app's own chat view, behind a small event-listener API.
//!
//! ```js
//! import init, { OpsdeckChat } from "@opsdeck/chat";
//! await init();
//! const chat = OpsdeckChat.connect("wss://ops.example.com/ws/chat/ops", { token });
//! chat.on("message", (m) => console.log(m.username, m.text));
//! chat.on("state", (s) => console.log(s.state));
//! const id = await chat.send("hello"); // once the relay stored it
//! chat.close();
//! ```
//!
//! - [`chat`]: the class (connect, send, on/off, retryNow, close).
//! - [`events`]: what listeners get, as plain objects, and their TypeScript types.
//!
//! A separate crate rather than a feature of `opsdeck-client`: it is a `cdylib` (a crate
//! type every native user of the library would otherwise build too), and its JavaScript
//! face (option parsing, plain objects, promises) is no concern of the Rust API.
//! `scripts/build-chat-js.sh` turns it into the npm package in `dist/chat/`; see
//! `docs/CHAT-CLIENT.md`. Natively the crate is empty.

#[cfg(target_arch = "wasm32")]
pub mod chat;
#[cfg(target_arch = "wasm32")]
pub mod events;

// `scripts/wasm-test.sh` runs the unit tests in headless Chromium.
#[cfg(all(test, target_arch = "wasm32"))]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);
