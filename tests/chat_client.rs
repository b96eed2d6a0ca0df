//! The embeddable chat client against real relays and a real redis-server: two clients on
//! two relays sharing a room through Redis keep talking while one relay is restarted and
//! then Redis is killed and restarted; every acknowledged message arrives exactly once, in
//! order, on the other side. Once with two native clients (`opsdeck-client` on tokio), once
//! with the JavaScript package's example page (`dist/chat/example/`, served from a second
//! origin listed in `allowed_origins`) in headless Chromium against a native client.

use std::pin::pin;

use anyhow::{Context, bail};
use common::server::StatusKind;
use fantoccini::Locator;
use futures_util::StreamExt;
use opsdeck_client::{Auth, ChatClient, ClientConfig, ConnState, Event, Events, SendError};
use opsdeck_tests::browser::{Chromedriver, screenshot, wait_for_js, wait_for_state};
use opsdeck_tests::client::EVENT_TIMEOUT;
use opsdeck_tests::redis::TestRedis;
use opsdeck_tests::relay::{TestRelay, users_toml};
use opsdeck_tests::static_site::StaticSite;

/// A relay with room `ops` for alice (through her group) and bob (by name), on `redis`,
/// taking pages from `allowed_origins` besides its own.
async fn relay(redis: &TestRedis, allowed_origins: &[String]) -> anyhow::Result<TestRelay> {
    let config = format!(
        r#"allowed_origins = {origins}
{users}
[chat]
rate_burst = 1000

[[grants]]
groups = ["ops"]
chat = ["ops"]

[[grants]]
users = ["bob"]
chat = ["ops"]

[[chat_rooms]]
id = "ops"
label = "Ops"
{redis}"#,
        origins = serde_json::to_string(allowed_origins)?,
        users = users_toml(),
        redis = redis.config_toml(),
    );
    TestRelay::start(&config).await
}

/// One person's client and what it has handed over so far.
struct Side {
    client: ChatClient,
    events: Events,
    /// Messages in the order the client handed them over: (id, username, text).
    received: Vec<(String, String, String)>,
    /// The connection states it went through (`connecting`, `live`, `reconnecting`).
    states: Vec<&'static str>,
}

impl Side {
    fn connect(relay: &TestRelay, user: &str) -> Self {
        let config = ClientConfig::new(
            relay.ws_url("/ws/chat/ops"),
            Auth::Bearer(relay.token(user)),
        );
        let (client, events) = opsdeck_client::native::connect(config);
        Self {
            client,
            events,
            received: Vec::new(),
            states: Vec::new(),
        }
    }

    fn record(&mut self, event: &Event) -> anyhow::Result<()> {
        match event {
            Event::Message { id, message } => {
                let id = id.clone().context("a message without an id")?;
                self.received
                    .push((id, message.username.clone(), message.message.clone()));
            }
            Event::State(ConnState::Connecting { .. }) => self.states.push("connecting"),
            Event::State(ConnState::Live) => self.states.push("live"),
            Event::State(ConnState::Reconnecting { .. }) => self.states.push("reconnecting"),
            Event::State(ConnState::Closed(error)) => bail!("the client stopped: {error}"),
            _ => {}
        }
        Ok(())
    }

    /// Reads events until one satisfies `done`.
    async fn until(&mut self, what: &str, done: impl Fn(&Event) -> bool) -> anyhow::Result<()> {
        loop {
            let event = tokio::time::timeout(EVENT_TIMEOUT, self.events.next())
                .await
                .with_context(|| format!("waiting for {what}"))?
                .context("the client's events ended")?;
            self.record(&event)?;
            if done(&event) {
                return Ok(());
            }
        }
    }

    /// Sends `text` and waits for its acknowledgement (reading events meanwhile); the
    /// message id.
    async fn send(&mut self, text: &str) -> anyhow::Result<String> {
        let reply = self.client.send(text);
        self.acked(reply, text).await
    }

    /// Waits for a send's acknowledgement (reading events meanwhile).
    async fn acked(
        &mut self,
        reply: impl Future<Output = Result<String, SendError>>,
        text: &str,
    ) -> anyhow::Result<String> {
        let mut reply = pin!(reply);
        loop {
            tokio::select! {
                answer = &mut reply => {
                    return answer.with_context(|| format!("sending {text:?}"));
                }
                event = tokio::time::timeout(EVENT_TIMEOUT, self.events.next()) => {
                    let event = event
                        .with_context(|| format!("waiting for {text:?} to be acknowledged"))?
                        .context("the client's events ended")?;
                    self.record(&event)?;
                }
            }
        }
    }

    /// The ids of `user`'s messages received so far, in order.
    fn from(&self, user: &str) -> Vec<String> {
        self.received
            .iter()
            .filter(|(_, name, _)| name == user)
            .map(|(id, _, _)| id.clone())
            .collect()
    }

    /// Reads events until every message of `user` in `acked` has arrived, then checks that
    /// exactly those arrived, once each, in order.
    async fn has_exactly(&mut self, user: &str, acked: &[String]) -> anyhow::Result<()> {
        while self.from(user).len() < acked.len() {
            self.until("the other side's messages", |e| {
                matches!(e, Event::Message { .. })
            })
            .await?;
        }
        assert_eq!(self.from(user), acked, "{user}'s messages, as received");
        Ok(())
    }
}

#[tokio::test]
async fn acknowledged_messages_arrive_once_in_order_across_relay_and_redis_restarts()
-> anyhow::Result<()> {
    let mut redis = TestRedis::start().await?;
    let mut one = relay(&redis, &[]).await?;
    let two = relay(&redis, &[]).await?;
    let mut alice = Side::connect(&one, "alice");
    let mut bob = Side::connect(&two, "bob");
    alice
        .until(
            "bob in the room",
            |e| matches!(e, Event::Presence(users) if users.iter().any(|u| u.username == "bob")),
        )
        .await?;
    bob.until("live", |e| matches!(e, Event::State(ConnState::Live)))
        .await?;

    let (mut from_alice, mut from_bob) = (Vec::new(), Vec::new());
    for round in 0..3 {
        for i in 0..3 {
            from_alice.push(alice.send(&format!("alice {round}.{i}")).await?);
            from_bob.push(bob.send(&format!("bob {round}.{i}")).await?);
        }
        match round {
            // Alice's relay goes away: her next sends wait and go on the reconnect, and
            // bob's meanwhile reach her through the catch-up.
            0 => {
                let live_before = alice.states.iter().filter(|s| **s == "live").count();
                one.restart().await?;
                alice
                    .until("reconnecting", |e| {
                        matches!(e, Event::State(ConnState::Reconnecting { .. }))
                    })
                    .await?;
                assert_eq!(
                    alice.states.iter().filter(|s| **s == "live").count(),
                    live_before
                );
            }
            // Redis keeps nothing across its restart: both sides have everything first.
            // A send while it is down is refused, kept, and sent again once it is back.
            1 => {
                alice.has_exactly("bob", &from_bob).await?;
                bob.has_exactly("alice", &from_alice).await?;
                redis.stop().await?;
                alice
                    .until("Redis reported down", |e| {
                        matches!(
                            e,
                            Event::Status {
                                kind: StatusKind::BackendReconnecting,
                                ..
                            }
                        )
                    })
                    .await?;
                let during = alice.client.send("alice during the outage");
                alice
                    .until("the refusal", |e| {
                        matches!(e, Event::Refused { retrying: true, .. })
                    })
                    .await?;
                redis.restart().await?;
                from_alice.push(alice.acked(during, "alice during the outage").await?);
            }
            _ => {}
        }
    }
    alice.has_exactly("bob", &from_bob).await?;
    bob.has_exactly("alice", &from_alice).await?;

    // Sent one after another, acknowledged in that order.
    for ids in [&from_alice, &from_bob] {
        let mut sorted = ids.clone();
        sorted.sort_by_key(|id| {
            let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
            (
                ms.parse::<u64>().unwrap_or(0),
                seq.parse::<u64>().unwrap_or(0),
            )
        });
        sorted.dedup();
        assert_eq!(&sorted, ids, "ids in send order, none twice");
    }
    let restart = alice
        .states
        .iter()
        .position(|s| *s == "reconnecting")
        .context("alice reconnected")?;
    assert!(
        alice.states[restart..].contains(&"live"),
        "{:?}",
        alice.states
    );
    alice.client.close();
    bob.client.close();
    Ok(())
}

/// The built JavaScript package (`dist/chat/`, with its example page in `example/`).
fn chat_package() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dist/chat");
    anyhow::ensure!(
        dir.join("opsdeck_chat.js").exists() && dir.join("example/index.html").exists(),
        "{} has no built chat package: run `trunk build --release` (or scripts/build-chat-js.sh) first",
        dir.display()
    );
    Ok(dir.canonicalize()?)
}

/// The example page (`client/examples/web/`) in Chromium, driven through its DOM.
struct Page {
    client: fantoccini::Client,
}

impl Page {
    /// Opens the page at `url`, waits until the client is loaded, and connects to `room`
    /// with `token`.
    async fn connect(
        client: fantoccini::Client,
        url: &str,
        room: &str,
        token: &str,
    ) -> anyhow::Result<Self> {
        client.goto(url).await?;
        wait_for_js(
            &client,
            "the chat client loaded",
            "document.querySelector('#connect') && !document.querySelector('#connect').disabled",
        )
        .await?;
        client
            .find(Locator::Id("room-url"))
            .await?
            .send_keys(room)
            .await?;
        client
            .find(Locator::Id("token"))
            .await?
            .send_keys(token)
            .await?;
        client.find(Locator::Id("connect")).await?.click().await?;
        Ok(Self { client })
    }

    /// Types `text` into the send box and sends it, without waiting.
    async fn type_and_send(&self, text: &str) -> anyhow::Result<()> {
        self.client
            .find(Locator::Id("message"))
            .await?
            .send_keys(text)
            .await?;
        self.client.find(Locator::Id("send")).await?.click().await?;
        Ok(())
    }

    /// Waits until the page shows `text` (sent by it) as acknowledged; its message id.
    async fn acked(&self, text: &str) -> anyhow::Result<String> {
        let script = format!(
            "(() => {{
                const li = [...document.querySelectorAll('#outbox li')]
                    .find(li => li.textContent === {text});
                if (!li) return null;
                if (li.dataset.state === 'failed') return 'failed: ' + li.title;
                return li.dataset.state === 'acked' && 'acked ' + li.dataset.id;
            }})()",
            text = serde_json::to_string(text)?
        );
        let answer = wait_for_js(&self.client, &format!("{text:?} acknowledged"), &script).await?;
        let answer = answer.as_str().unwrap_or_default();
        match answer.strip_prefix("acked ") {
            Some(id) if !id.is_empty() => Ok(id.to_owned()),
            _ => bail!("sending {text:?} from the page: {answer}"),
        }
    }

    /// Sends `text` and waits for its acknowledgement; the message id.
    async fn send(&self, text: &str) -> anyhow::Result<String> {
        self.type_and_send(text).await?;
        self.acked(text).await
    }

    /// The ids of `user`'s messages on the page, in order, once there are at least `count`.
    async fn ids_from(&self, user: &str, count: usize) -> anyhow::Result<Vec<String>> {
        let ids = format!(
            "[...document.querySelectorAll('#messages li')]
                .filter(li => li.dataset.user === {user}).map(li => li.dataset.id)",
            user = serde_json::to_string(user)?
        );
        wait_for_js(
            &self.client,
            &format!("{count} messages from {user} on the page"),
            &format!("{ids}.length >= {count}"),
        )
        .await?;
        let ids = self
            .client
            .execute(&format!("return {ids};"), vec![])
            .await?;
        Ok(serde_json::from_value(ids)?)
    }

    /// How many states the page's log holds.
    async fn states_so_far(&self) -> anyhow::Result<u64> {
        let count = self
            .client
            .execute(
                "return document.querySelectorAll('#state-log li').length;",
                vec![],
            )
            .await?;
        count.as_u64().context("a count of states")
    }

    /// Waits until the state log, after its first `skip` entries, shows `reconnecting`
    /// and then `live`.
    async fn reconnected_after(&self, skip: u64) -> anyhow::Result<()> {
        let script = format!(
            "(() => {{
                const states = [...document.querySelectorAll('#state-log li')]
                    .map(li => li.dataset.state).slice({skip});
                const at = states.indexOf('reconnecting');
                return at >= 0 && states.indexOf('live', at) > at;
            }})()"
        );
        wait_for_js(&self.client, "reconnecting, then live", &script).await?;
        wait_for_state(&self.client, "live").await
    }
}

#[tokio::test]
async fn the_example_page_on_another_origin_chats_with_a_native_client_across_restarts()
-> anyhow::Result<()> {
    let site = StaticSite::start(&chat_package()?).await?;
    let mut redis = TestRedis::start().await?;
    let origins = [site.origin()];
    let mut one = relay(&redis, &origins).await?;
    let two = relay(&redis, &origins).await?;
    let mut driver = Chromedriver::start().await?;
    let page = Page::connect(
        driver.browser(1000, 800).await?,
        &format!("{}/example/index.html", site.origin()),
        &one.ws_url("/ws/chat/ops"),
        &one.token("alice"),
    )
    .await?;
    wait_for_state(&page.client, "live").await?;
    let mut bob = Side::connect(&two, "bob");
    bob.until(
        "alice (the page) in the room",
        |e| matches!(e, Event::Presence(users) if users.iter().any(|u| u.username == "alice")),
    )
    .await?;

    let (mut from_page, mut from_bob) = (Vec::new(), Vec::new());
    for round in 0..3 {
        for i in 0..2 {
            from_page.push(page.send(&format!("page {round}.{i}")).await?);
            from_bob.push(bob.send(&format!("bob {round}.{i}")).await?);
        }
        match round {
            // The page's relay goes away: the page shows reconnecting, then live again; what
            // bob says meanwhile reaches it through the catch-up, and what it sends while
            // disconnected goes on the reconnect.
            0 => {
                let before = page.states_so_far().await?;
                one.restart().await?;
                from_bob.push(bob.send("bob while the page's relay restarts").await?);
                from_page.push(page.send("page after its relay restarted").await?);
                page.reconnected_after(before).await?;
            }
            // Redis keeps nothing across its restart: both sides have everything first.
            // A send while it is down waits on each side and is stored once it is back.
            1 => {
                assert_eq!(page.ids_from("bob", from_bob.len()).await?, from_bob);
                bob.has_exactly("alice", &from_page).await?;
                redis.stop().await?;
                bob.until("Redis reported down", |e| {
                    matches!(
                        e,
                        Event::Status {
                            kind: StatusKind::BackendReconnecting,
                            ..
                        }
                    )
                })
                .await?;
                wait_for_js(
                    &page.client,
                    "the page told Redis is down",
                    "document.querySelector('#notice').dataset.kind === 'backend_reconnecting'",
                )
                .await?;
                page.type_and_send("page during the outage").await?;
                let during = bob.client.send("bob during the outage");
                bob.until("the refusal", |e| {
                    matches!(e, Event::Refused { retrying: true, .. })
                })
                .await?;
                redis.restart().await?;
                from_bob.push(bob.acked(during, "bob during the outage").await?);
                from_page.push(page.acked("page during the outage").await?);
            }
            _ => {}
        }
    }

    // Every acknowledged message arrived once, in order, on the other side.
    assert_eq!(
        page.ids_from("bob", from_bob.len()).await?,
        from_bob,
        "bob's messages, as the page shows them"
    );
    bob.has_exactly("alice", &from_page).await?;
    let failed = page
        .client
        .execute(
            "return document.querySelectorAll('#outbox li[data-state=\"failed\"]').length;",
            vec![],
        )
        .await?;
    assert_eq!(failed, serde_json::json!(0), "no send failed on the page");
    screenshot(&page.client, "chat-js-example").await?;
    page.client.close().await?;
    bob.client.close();
    Ok(())
}
