//! Where the relay is, decided at deploy time rather than build time.
//!
//! At start the app fetches `config.json` next to `index.html` (never cached). It may name
//! the relay: `{"relay_url": "https://relay.example.com"}`. Without the file, or with an
//! empty `relay_url`, the relay is the page's own origin — the `trunk serve` dev loop and a
//! relay that serves `dist/` itself need nothing. The same `dist/` can thus go to any static
//! host or CDN and be pointed at a relay by editing one small file.

use std::cell::RefCell;

use serde::Deserialize;

/// The contents of `config.json`; unknown fields are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Config {
    /// Base URL of the relay (`https://host[:port][/prefix]`); empty for the page's origin.
    #[serde(default)]
    pub relay_url: Option<String>,
}

/// The two bases every request is built from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoints {
    /// Prefix of HTTP API URLs: empty (same origin, relative URLs) or `https://host[/prefix]`.
    pub http: String,
    /// Prefix of WebSocket URLs: `ws://host` or `wss://host[/prefix]`.
    pub ws: String,
}

impl Endpoints {
    /// Works out both bases from the configured relay URL and the page's origin
    /// (`location.origin`, e.g. `https://ops.example.com`).
    pub fn resolve(config: &Config, page_origin: &str) -> Self {
        let relay = config
            .relay_url
            .as_deref()
            .map(|url| url.trim().trim_end_matches('/'))
            .filter(|url| !url.is_empty());
        match relay {
            Some(url) => Self {
                http: url.to_owned(),
                ws: to_ws(url),
            },
            None => Self {
                http: String::new(),
                ws: to_ws(page_origin.trim_end_matches('/')),
            },
        }
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("{}{path}", self.http)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("{}{path}", self.ws)
    }
}

/// `http://` → `ws://`, `https://` → `wss://`; anything else is kept (already `ws(s)://`).
fn to_ws(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        url.to_owned()
    }
}

thread_local! {
    static ENDPOINTS: RefCell<Endpoints> = RefCell::new(Endpoints::default());
}

/// Sets the bases for the rest of the page's life (once, at start).
pub fn set(endpoints: Endpoints) {
    ENDPOINTS.with(|e| *e.borrow_mut() = endpoints);
}

/// The URL of an HTTP API path such as `/api/me`.
pub fn http_url(path: &str) -> String {
    ENDPOINTS.with(|e| e.borrow().http_url(path))
}

/// The URL of a WebSocket path such as `/ws/ssh/web1?rows=24&cols=80`.
pub fn ws_url(path: &str) -> String {
    ENDPOINTS.with(|e| e.borrow().ws_url(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn config(json: &str) -> Config {
        serde_json::from_str(json).expect("test config")
    }

    #[test]
    fn without_a_relay_url_the_page_origin_is_used() {
        for json in ["{}", r#"{"relay_url": ""}"#, r#"{"relay_url": null}"#] {
            let e = Endpoints::resolve(&config(json), "https://ops.example.com");
            assert_eq!(e.http_url("/api/me"), "/api/me");
            assert_eq!(e.ws_url("/ws/chat/a"), "wss://ops.example.com/ws/chat/a");
        }
        let dev = Endpoints::resolve(&Config::default(), "http://127.0.0.1:8081");
        assert_eq!(dev.ws_url("/ws/x"), "ws://127.0.0.1:8081/ws/x");
    }

    #[test]
    fn a_configured_relay_is_used_for_both_http_and_websockets() {
        let c = config(r#"{"relay_url": " https://relay.example.com:8443/opsdeck/ ", "x": 1}"#);
        let e = Endpoints::resolve(&c, "https://cdn.example.net");
        assert_eq!(
            e.http_url("/api/me"),
            "https://relay.example.com:8443/opsdeck/api/me"
        );
        assert_eq!(
            e.ws_url("/ws/ssh/a"),
            "wss://relay.example.com:8443/opsdeck/ws/ssh/a"
        );
        let plain = Endpoints::resolve(&config(r#"{"relay_url":"http://10.0.0.5:8080"}"#), "");
        assert_eq!(plain.ws_url("/ws/x"), "ws://10.0.0.5:8080/ws/x");
    }
}
