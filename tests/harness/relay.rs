//! The relay under test, started in this process on a random loopback port.

use std::net::SocketAddr;
use std::sync::OnceLock;

use anyhow::Context;
use relay::{Config, Relay};

use crate::client::WsClient;

/// The password of every test user.
pub const PASSWORD: &str = "correct horse battery staple";

fn password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| relay::hash_password(PASSWORD).expect("argon2 hashes a password"))
}

/// Test users: `alice` (group `ops`), `bob` (no groups). Put this after any top-level keys.
pub fn users_toml() -> String {
    format!(
        "[auth]\njwt_secret = \"test-secret\"\ncookie_secure = false\n\
         [[auth.users]]\nusername = \"alice\"\npassword_hash = \"{h}\"\ngroups = [\"ops\"]\n\
         [[auth.users]]\nusername = \"bob\"\npassword_hash = \"{h}\"\n",
        h = password_hash()
    )
}

pub struct TestRelay {
    relay: Option<Relay>,
    pub addr: SocketAddr,
    /// The TOML it was started with, for [`TestRelay::restart`].
    config: String,
}

impl TestRelay {
    /// Starts a relay on `config` (a whole TOML file; its `listen` is ignored).
    pub async fn start(config: &str) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        Self::start_on(listener, config)
    }

    /// Starts a relay on a listener the test bound first (when its address must be known
    /// before the config is written, e.g. for an identity provider's redirect URLs).
    pub fn start_on(listener: tokio::net::TcpListener, config: &str) -> anyhow::Result<Self> {
        crate::init_logs();
        let text = config;
        let config = Config::from_toml(text, "test config")?;
        let relay = Relay::start_on(listener, config).context("starting the relay")?;
        Ok(Self {
            addr: relay.addr,
            relay: Some(relay),
            config: text.to_owned(),
        })
    }

    /// Stops the relay (every WebSocket gets its close frame) and starts a new one with the
    /// same config on the same address, as a restarted process would be.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await;
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .with_context(|| format!("listening on {} again", self.addr))?;
        let config = Config::from_toml(&self.config, "test config")?;
        let relay = Relay::start_on(listener, config).context("restarting the relay")?;
        self.relay = Some(relay);
        Ok(())
    }

    /// The running relay, for its probes (sessions, tails, reload).
    pub fn relay(&self) -> &Relay {
        self.relay.as_ref().expect("relay running")
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// A valid token for `user`, as if they had logged in.
    pub fn token(&self, user: &str) -> String {
        self.token_for(user, 3600)
    }

    pub fn token_for(&self, user: &str, ttl_secs: u64) -> String {
        self.relay()
            .mint_token(user, ttl_secs)
            .expect("minting a token")
    }

    /// Opens a WebSocket as `user`.
    pub async fn connect(&self, user: &str, path: &str) -> anyhow::Result<WsClient> {
        WsClient::connect(&self.ws_url(path), Some(&self.token(user)), None).await
    }

    /// Shuts the relay down and waits until it has stopped.
    pub async fn stop(&mut self) {
        if let Some(relay) = self.relay.take() {
            relay.shutdown();
            relay.stopped().await;
        }
    }
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        if let Some(relay) = &self.relay {
            relay.shutdown();
        }
    }
}
