//! The end-to-end test harness: real services on random loopback ports in temporary
//! folders, each a guard that stops its process when dropped.
//!
//! - [`sshd::TestSshd`]: Debian's openssh-server with a fresh host key and client key.
//! - [`redis::TestRedis`]: redis-server, which can be killed and restarted on its port.
//! - [`net`]: ports for the services that cannot pick their own, without a race.
//! - [`ldap::TestSlapd`]: Debian's OpenLDAP slapd, seeded with people and groups, with a
//!   test CA for StartTLS and ldaps when asked.
//! - [`relay::TestRelay`]: the relay, in this process, on 127.0.0.1:0.
//! - [`client::WsClient`]: a WebSocket client that speaks the `common` wire.
//! - [`load`]: the load client of the benchmarks (`tests/bench/`): workloads and timings.
//! - [`oidc::TestOidcProvider`]: npm's oidc-provider, and [`oidc::SsoBrowser`] that signs
//!   in through it.
//! - [`browser::Chromedriver`]: Debian's headless Chromium through chromedriver.
//! - [`proxy::CuttableProxy`]: a TCP proxy that cuts connections like a network blip.
//! - [`static_site::StaticSite`]: a static file server, the second origin of embedding pages.
//! - [`terminal_contract`]: the scenarios every terminal backend passes, run by
//!   `tests/ssh.rs` and `tests/k8s/exec.rs`.

pub mod browser;
pub mod client;
pub mod ldap;
pub mod load;
pub mod net;
pub mod oidc;
pub mod proxy;
pub mod redis;
pub mod relay;
pub mod sshd;
pub mod static_site;
pub mod terminal_contract;

/// Logs for failing tests: `RUST_LOG=debug cargo test`.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}
