//! `OpsdeckChat`: one room, over `opsdeck_client::web` (the browser's WebSocket). The client
//! runs on the page's event loop; its events go to the listeners added with `on`, in order.

use std::cell::RefCell;
use std::rc::Rc;

use futures_util::StreamExt;
use opsdeck_client::{Auth, ChatClient, ClientConfig, SendError};
use serde::Deserialize;
use wasm_bindgen::prelude::*;

use crate::events::{self, ErrorDetail, EventName};

/// `OpsdeckChat.connect`'s options (`OpsdeckChatOptions` in TypeScript). An unknown key is
/// refused ([`OPTION_KEYS`]; serde-wasm-bindgen reads only the fields it knows), so a
/// misspelt `token` does not silently connect without one.
#[derive(Debug, Default, Deserialize)]
struct ConnectOptions {
    token: Option<String>,
    since: Option<String>,
}

/// The keys of [`ConnectOptions`].
const OPTION_KEYS: [&str; 2] = ["token", "since"];

impl ConnectOptions {
    fn read(options: Option<js_sys::Object>) -> Result<Self, JsError> {
        let Some(options) = options else {
            return Ok(Self::default());
        };
        for key in js_sys::Object::keys(&options).iter() {
            let key = key.as_string().unwrap_or_default();
            if !OPTION_KEYS.contains(&key.as_str()) {
                return Err(JsError::new(&format!(
                    "OpsdeckChat.connect: no option {key:?}; the options are {}",
                    OPTION_KEYS.join(", ")
                )));
            }
        }
        serde_wasm_bindgen::from_value(options.into())
            .map_err(|e| JsError::new(&format!("OpsdeckChat.connect: options: {e}")))
    }
}

type Listeners = Rc<RefCell<Vec<(EventName, js_sys::Function)>>>;

/// A reconnecting connection to one chat room.
#[wasm_bindgen]
pub struct OpsdeckChat {
    client: ChatClient,
    listeners: Listeners,
}

#[wasm_bindgen]
impl OpsdeckChat {
    /// Connects to the room at `url` (`ws://` or `wss://…/ws/chat/<room>`) and keeps
    /// connecting: after a drop it reconnects with backoff and catches up from the last
    /// message it handed over. Listeners added with `on` right after this call get every
    /// event, the first `state` included. Throws on options it does not know.
    pub fn connect(
        url: String,
        #[wasm_bindgen(unchecked_optional_param_type = "OpsdeckChatOptions")] options: Option<
            js_sys::Object,
        >,
    ) -> Result<OpsdeckChat, JsError> {
        let options = ConnectOptions::read(options)?;
        if !(url.starts_with("ws://") || url.starts_with("wss://")) {
            return Err(JsError::new(
                "OpsdeckChat.connect: the room URL must start with ws:// or wss://",
            ));
        }
        let auth = match options.token {
            Some(token) if !token.is_empty() => Auth::Bearer(token),
            _ => Auth::Ambient,
        };
        let mut config = ClientConfig::new(url, auth);
        config.since = options.since;
        let (client, mut events) = opsdeck_client::web::connect(config);
        let listeners = Listeners::default();
        let to_call = listeners.clone();
        wasm_bindgen_futures::spawn_local(async move {
            while let Some(event) = events.next().await {
                for (name, detail) in events::details(event) {
                    call(&to_call, name, &detail);
                }
            }
        });
        Ok(Self { client, listeners })
    }

    /// Sends `text`; resolves with the message's id once the relay has stored it. While
    /// disconnected it waits and goes on the next connection (resent after a drop with the
    /// same client id: stored once). Rejects with an `OpsdeckSendError`.
    #[wasm_bindgen(unchecked_return_type = "Promise<string>")]
    pub fn send(&self, text: String) -> js_sys::Promise {
        let reply = self.client.send(text);
        wasm_bindgen_futures::future_to_promise(async move {
            match reply.await {
                Ok(id) => Ok(JsValue::from_str(&id)),
                Err(error) => Err(send_error(&error)),
            }
        })
    }

    /// Typed in TypeScript by the `OpsdeckChat` interface in `events.rs`.
    #[wasm_bindgen(skip_typescript)]
    pub fn on(&self, event: &str, listener: JsValue) -> Result<(), JsError> {
        let (name, listener) = listener_args("on", event, listener)?;
        self.listeners.borrow_mut().push((name, listener));
        Ok(())
    }

    #[wasm_bindgen(skip_typescript)]
    pub fn off(&self, event: &str, listener: JsValue) -> Result<(), JsError> {
        let (name, listener) = listener_args("off", event, listener)?;
        let mut listeners = self.listeners.borrow_mut();
        if let Some(at) = listeners
            .iter()
            .position(|(n, f)| *n == name && *f == listener)
        {
            listeners.remove(at);
        }
        Ok(())
    }

    /// Connects again now: cuts a reconnect wait short, or starts again after the client
    /// stopped (`state` `closed`, e.g. once the user logged in again).
    #[wasm_bindgen(js_name = retryNow)]
    pub fn retry_now(&self) {
        self.client.retry_now();
    }

    /// Closes the connection for good; pending sends reject, the last `state` is `closed`.
    pub fn close(&self) {
        self.client.close();
    }
}

fn listener_args(
    method: &str,
    event: &str,
    listener: JsValue,
) -> Result<(EventName, js_sys::Function), JsError> {
    let name = EventName::parse(event).ok_or_else(|| {
        let known: Vec<&str> = EventName::ALL.iter().map(|e| e.as_str()).collect();
        JsError::new(&format!(
            "OpsdeckChat.{method}: no event {event:?}; the events are {}",
            known.join(", ")
        ))
    })?;
    let listener = listener.dyn_into::<js_sys::Function>().map_err(|_| {
        JsError::new(&format!(
            "OpsdeckChat.{method}: the listener must be a function"
        ))
    })?;
    Ok((name, listener))
}

/// Calls `name`'s listeners with `detail`; one that throws is reported on the console and
/// the others still run.
fn call(listeners: &Listeners, name: EventName, detail: &JsValue) {
    // Collected first: a listener may add or remove listeners.
    let targets: Vec<js_sys::Function> = listeners
        .borrow()
        .iter()
        .filter(|(n, _)| *n == name)
        .map(|(_, f)| f.clone())
        .collect();
    for listener in targets {
        if let Err(thrown) = listener.call1(&JsValue::UNDEFINED, detail) {
            let what = format!("OpsdeckChat: a {:?} listener threw", name.as_str());
            web_sys::console::error_2(&JsValue::from_str(&what), &thrown);
        }
    }
}

/// An `Error` named `OpsdeckSendError` with `refused`, `code` and `error`.
fn send_error(error: &SendError) -> JsValue {
    let js = js_sys::Error::new(&error.to_string());
    js.set_name("OpsdeckSendError");
    let (refused, code, stopped) = match error {
        SendError::Refused { code, .. } => (true, events::to_js(code), JsValue::NULL),
        SendError::Stopped(why) => (
            false,
            JsValue::NULL,
            events::to_js(&ErrorDetail::of(why, true)),
        ),
    };
    for (key, value) in [
        ("refused", JsValue::from_bool(refused)),
        ("code", code),
        ("error", stopped),
    ] {
        // Setting a property on a new Error object cannot fail.
        let _ = js_sys::Reflect::set(&js, &JsValue::from_str(key), &value);
    }
    js.into()
}

#[cfg(test)]
mod tests {
    use wasm_bindgen_test::wasm_bindgen_test;

    use super::*;

    fn options(key: &str, value: &str) -> js_sys::Object {
        let object = js_sys::Object::new();
        js_sys::Reflect::set(&object, &key.into(), &value.into()).expect("an object");
        object
    }

    #[wasm_bindgen_test]
    fn a_misspelt_option_or_a_url_that_is_no_websocket_is_refused_before_connecting() {
        let url = "ws://127.0.0.1:9/ws/chat/ops".to_owned();
        assert!(OpsdeckChat::connect(url, Some(options("tokn", "jwt"))).is_err());
        let http = "http://127.0.0.1:9/ws/chat/ops".to_owned();
        assert!(OpsdeckChat::connect(http, Some(options("token", "jwt"))).is_err());
        let not_a_string = js_sys::Object::new();
        js_sys::Reflect::set(&not_a_string, &"token".into(), &42.into()).expect("an object");
        let url = "ws://127.0.0.1:9/ws/chat/ops".to_owned();
        assert!(OpsdeckChat::connect(url, Some(not_a_string)).is_err());
    }
}
