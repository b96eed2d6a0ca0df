//! The embeddable chat client (`opsdeck-client`, native transport) against real relays and
//! a real redis-server: two clients on two relays sharing a room through Redis keep
//! talking while one relay is restarted and then Redis is killed and restarted; every
//! acknowledged message arrives exactly once, in order, on the other side.

use std::pin::pin;

use anyhow::{Context, bail};
use common::server::StatusKind;
use futures_util::StreamExt;
use opsdeck_client::{Auth, ChatClient, ClientConfig, ConnState, Event, Events, SendError};
use opsdeck_tests::client::EVENT_TIMEOUT;
use opsdeck_tests::redis::TestRedis;
use opsdeck_tests::relay::{TestRelay, users_toml};

/// A relay with room `ops` for alice (through her group) and bob (by name), on `redis`.
async fn relay(redis: &TestRedis) -> anyhow::Result<TestRelay> {
    let config = format!(
        r#"{users}
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
    let mut one = relay(&redis).await?;
    let two = relay(&redis).await?;
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
