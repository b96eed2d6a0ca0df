//! Chat rooms: identity from the token, presence, limits, and no message lost on reconnect,
//! on one relay in memory and across relays through a real redis-server (which is also
//! killed and restarted mid-conversation); sends with a `client_id` acknowledged and stored
//! exactly once across reconnects, relays, relay restarts and Redis outages.

use std::collections::VecDeque;

use anyhow::bail;
use common::ClientFrame;
use common::chat::{ChatBody, ChatEvent, ChatMessage, ChatRequest, ChatUser, ClientId};
use common::server::{ErrorCode, ServerFrame, StatusKind, StreamEvent};
use opsdeck_tests::client::{Connected, Event, WsClient};
use opsdeck_tests::proxy::CuttableProxy;
use opsdeck_tests::redis::TestRedis;
use opsdeck_tests::relay::{TestRelay, users_toml};

/// A `[chat]` section keeping 10 messages, with no rate limit in the way.
const HISTORY_OF_10: &str = r#"
rate_burst = 1000
history = 10
"#;

/// A relay with rooms `ops` (alice through her group, bob by name) and `secret` (nobody).
async fn relay(chat_section: &str, redis: Option<&TestRedis>) -> anyhow::Result<TestRelay> {
    let config = format!(
        r#"{users}
[chat]
{chat_section}

[[grants]]
groups = ["ops"]
chat = ["ops"]

[[grants]]
users = ["bob"]
chat = ["ops"]

[[chat_rooms]]
id = "ops"
label = "Ops"

[[chat_rooms]]
id = "secret"
{redis}"#,
        users = users_toml(),
        redis = redis.map(TestRedis::config_toml).unwrap_or_default(),
    );
    TestRelay::start(&config).await
}

/// A chat connection and what arrived on it.
struct Chatter {
    client: WsClient,
    /// Position announced on connect.
    position: String,
    resumed: bool,
    statuses: Vec<StatusKind>,
    gaps: usize,
    /// Chat events read while waiting for an acknowledgement, for `next_chat`.
    backlog: VecDeque<ChatEvent>,
}

/// What the relay answered to a send with a client id.
#[derive(Debug, PartialEq)]
enum Outcome {
    Sent(String),
    Refused(ErrorCode, String),
}

impl Chatter {
    async fn open(relay: &TestRelay, user: &str, query: &str) -> anyhow::Result<Self> {
        let mut client = relay.connect(user, &format!("/ws/chat/ops{query}")).await?;
        let Connected {
            position, resumed, ..
        } = client.connected().await?;
        Ok(Self {
            client,
            position: position.0,
            resumed,
            statuses: Vec::new(),
            gaps: 0,
            backlog: VecDeque::new(),
        })
    }

    async fn say(&mut self, text: &str) -> anyhow::Result<()> {
        self.client
            .send(&ClientFrame::Chat(ChatRequest::Message {
                message: text.into(),
                client_id: None,
            }))
            .await
    }

    /// Sends `text` with the client id `id`.
    async fn say_with_id(&mut self, text: &str, id: &str) -> anyhow::Result<()> {
        self.client
            .send(&ClientFrame::Chat(ChatRequest::Message {
                message: text.into(),
                client_id: Some(ClientId::new(id)?),
            }))
            .await
    }

    /// Reads until the relay answers the send with client id `id` (chat events read
    /// meanwhile are kept for `next_chat`; answers about other ids are an error).
    async fn outcome(&mut self, id: &str) -> anyhow::Result<Outcome> {
        loop {
            match self.client.next_event().await? {
                Event::Frame(ServerFrame::Chat(event)) => self.backlog.push_back(event),
                Event::Frame(ServerFrame::Event(StreamEvent::Sent {
                    client_id,
                    id: sent,
                })) => {
                    if client_id.as_str() != id {
                        bail!("an acknowledgement for {client_id} while waiting for {id}");
                    }
                    return Ok(Outcome::Sent(sent));
                }
                Event::Frame(ServerFrame::Event(StreamEvent::Error {
                    code,
                    message,
                    client_id,
                })) => {
                    if client_id.as_ref().map(ClientId::as_str) != Some(id) {
                        bail!("an error about {client_id:?} while waiting for {id}: {message}");
                    }
                    return Ok(Outcome::Refused(code, message));
                }
                Event::Frame(ServerFrame::Event(StreamEvent::Status { kind, .. })) => {
                    self.statuses.push(kind)
                }
                Event::Frame(ServerFrame::Event(StreamEvent::Gap { .. })) => self.gaps += 1,
                other => bail!("unexpected {other:?}"),
            }
        }
    }

    /// Sends `text` with client id `id` and returns the id it was stored as.
    async fn send_acked(&mut self, text: &str, id: &str) -> anyhow::Result<String> {
        self.say_with_id(text, id).await?;
        match self.outcome(id).await? {
            Outcome::Sent(stored) => Ok(stored),
            refused => bail!("{id} not acknowledged: {refused:?}"),
        }
    }

    /// The next chat event; stream events are noted (statuses, gaps) or, for errors, returned
    /// as an error.
    async fn next_chat(&mut self) -> anyhow::Result<ChatEvent> {
        if let Some(event) = self.backlog.pop_front() {
            return Ok(event);
        }
        loop {
            match self.client.next_event().await? {
                Event::Frame(ServerFrame::Chat(event)) => return Ok(event),
                Event::Frame(ServerFrame::Event(StreamEvent::Status { kind, .. })) => {
                    self.statuses.push(kind)
                }
                Event::Frame(ServerFrame::Event(StreamEvent::Gap { .. })) => self.gaps += 1,
                Event::Frame(ServerFrame::Event(StreamEvent::Error { code, message, .. })) => {
                    bail!("error frame {code:?}: {message}")
                }
                other => bail!("unexpected {other:?}"),
            }
        }
    }

    /// The next message (skipping presence), with its id.
    async fn next_message(&mut self) -> anyhow::Result<(String, ChatMessage)> {
        loop {
            let event = self.next_chat().await?;
            if let ChatBody::Message(message) = event.body {
                let Some(id) = event.id else {
                    bail!("a message without an id")
                };
                return Ok((id, message));
            }
        }
    }

    /// Reads until an error frame arrives; returns its code.
    async fn next_error(&mut self) -> anyhow::Result<(ErrorCode, String)> {
        loop {
            match self.client.next_frame().await? {
                StreamEvent::Error { code, message, .. } => return Ok((code, message)),
                StreamEvent::Status { kind, .. } => self.statuses.push(kind),
                _ => {}
            }
        }
    }

    async fn until_status(&mut self, kind: StatusKind) -> anyhow::Result<()> {
        while !self.statuses.contains(&kind) {
            match self.client.next_frame().await? {
                StreamEvent::Status { kind, .. } => self.statuses.push(kind),
                StreamEvent::Error { code, message, .. } => bail!("error {code:?}: {message}"),
                _ => {}
            }
        }
        Ok(())
    }

    /// Reads until a presence list naming exactly `names` arrives.
    async fn until_presence(&mut self, names: &[&str]) -> anyhow::Result<()> {
        loop {
            if let ChatBody::Presence { users } = self.next_chat().await?.body {
                let got: Vec<&str> = users.iter().map(|u| u.username.as_str()).collect();
                if got == names {
                    return Ok(());
                }
            }
        }
    }
}

fn user(name: &str) -> ChatUser {
    ChatUser {
        uid: name.into(),
        username: name.into(),
    }
}

#[tokio::test]
async fn two_clients_chat_and_identity_comes_from_the_token() -> anyhow::Result<()> {
    let relay = relay("", None).await?;
    let mut alice = Chatter::open(&relay, "alice", "").await?;
    let mut bob = Chatter::open(&relay, "bob", "").await?;

    alice.say("hello bob").await?;
    let (id_a, at_alice) = alice.next_message().await?;
    let (id_b, at_bob) = bob.next_message().await?;
    assert_eq!(id_a, id_b);
    assert_eq!(
        (at_bob.uid.as_str(), at_bob.username.as_str()),
        ("alice", "alice")
    );
    assert_eq!(at_alice, at_bob);

    // A client naming someone else is ignored: the token says who speaks.
    bob.client
        .send_text(r#"{"action":"message","data":{"message":"I am alice","username":"alice","uid":"alice"}}"#)
        .await?;
    let (_, spoofed) = alice.next_message().await?;
    assert_eq!(
        (spoofed.uid.as_str(), spoofed.username.as_str()),
        ("bob", "bob")
    );
    assert_eq!(spoofed.message, "I am alice");

    bob.client
        .send(&ClientFrame::Chat(ChatRequest::UserInfo))
        .await?;
    loop {
        if let ChatBody::UserInfo(me) = bob.next_chat().await?.body {
            assert_eq!(me, user("bob"));
            break;
        }
    }
    Ok(())
}

#[tokio::test]
async fn presence_lists_the_room_and_joins_and_leaves_are_announced() -> anyhow::Result<()> {
    let relay = relay("", None).await?;
    let mut alice = Chatter::open(&relay, "alice", "").await?;
    alice.until_presence(&["alice"]).await?;
    let bob = Chatter::open(&relay, "bob", "").await?;
    let mut saw_join = false;
    loop {
        match alice.next_chat().await?.body {
            ChatBody::Join(who) => saw_join = who == user("bob"),
            ChatBody::Presence { users } if users.len() == 2 => break,
            _ => {}
        }
    }
    assert!(saw_join);
    bob.client.close_normally().await?;
    loop {
        if let ChatBody::Leave(who) = alice.next_chat().await?.body {
            assert_eq!(who, user("bob"));
            break;
        }
    }
    alice.until_presence(&["alice"]).await?;
    Ok(())
}

#[tokio::test]
async fn unauthenticated_forbidden_and_unknown_rooms_are_closed_with_their_codes()
-> anyhow::Result<()> {
    let relay = relay("", None).await?;
    let mut anonymous = WsClient::connect(&relay.ws_url("/ws/chat/ops"), None, None).await?;
    assert_eq!(anonymous.read_until_closed().await?.0, 4401);
    let mut forged =
        WsClient::connect(&relay.ws_url("/ws/chat/ops"), Some("not.a.token"), None).await?;
    assert_eq!(forged.read_until_closed().await?.0, 4401);
    let mut secret = relay.connect("alice", "/ws/chat/secret").await?;
    assert_eq!(secret.read_until_closed().await?.0, 4403);
    let mut carol = relay.connect("carol", "/ws/chat/ops").await?;
    assert_eq!(
        carol.read_until_closed().await?.0,
        4403,
        "no grant names carol"
    );
    let mut nowhere = relay.connect("alice", "/ws/chat/lobby").await?;
    assert_eq!(nowhere.read_until_closed().await?.0, 4404);
    let mut bad_since = relay
        .connect("alice", "/ws/chat/ops?since=yesterday")
        .await?;
    assert_eq!(bad_since.read_until_closed().await?.0, 4400);
    Ok(())
}

#[tokio::test]
async fn rate_limit_and_size_limit_refuse_with_error_frames_and_the_stream_goes_on()
-> anyhow::Result<()> {
    let relay = relay(
        r#"
rate_burst = 3
rate_interval = "1h"
max_message_bytes = 100
"#,
        None,
    )
    .await?;
    let mut alice = Chatter::open(&relay, "alice", "").await?;
    let mut bob = Chatter::open(&relay, "bob", "").await?;

    alice.say(&"x".repeat(101)).await?;
    let (code, message) = alice.next_error().await?;
    assert_eq!(code, ErrorCode::TooLarge, "{message}");
    for i in 0..3 {
        alice.say(&format!("allowed {i}")).await?;
    }
    alice.say("one too many").await?;
    let (code, message) = alice.next_error().await?;
    assert_eq!(code, ErrorCode::RateLimited, "{message}");
    assert!(message.contains("too fast"), "{message}");

    // Bob saw exactly the accepted ones; he is not limited by alice's allowance; and
    // alice's stream goes on.
    bob.say("still here").await?;
    let mut texts = Vec::new();
    while texts.last().map(String::as_str) != Some("still here") {
        texts.push(bob.next_message().await?.1.message);
    }
    assert_eq!(texts, ["allowed 0", "allowed 1", "allowed 2", "still here"]);
    while alice.next_message().await?.1.message != "still here" {}
    Ok(())
}

/// Bob sees one message, drops off, misses 100, and comes back with `since`.
async fn reconnect_with_since_gets_exactly_what_was_missed(
    relay_a: &TestRelay,
    relay_b: &TestRelay,
) -> anyhow::Result<()> {
    let mut alice = Chatter::open(relay_a, "alice", "").await?;
    let mut bob = Chatter::open(relay_b, "bob", "").await?;
    alice.say("before").await?;
    let (last_seen, _) = bob.next_message().await?;
    bob.client.drop_connection();

    for i in 0..100 {
        alice.say(&format!("missed {i}")).await?;
    }
    // Alice's own copies prove all 100 were accepted before bob returns.
    let mut ids = Vec::new();
    while ids.len() < 101 {
        ids.push(alice.next_message().await?.0);
    }

    let mut bob = Chatter::open(relay_b, "bob", &format!("?since={last_seen}")).await?;
    assert!(bob.resumed);
    assert_eq!(bob.position, last_seen);
    alice.say("live again").await?;
    let mut got = Vec::new();
    loop {
        let (id, message) = bob.next_message().await?;
        if message.message == "live again" {
            break;
        }
        got.push((id, message.message));
    }
    let expected: Vec<String> = (0..100).map(|i| format!("missed {i}")).collect();
    let texts: Vec<String> = got.iter().map(|(_, t)| t.clone()).collect();
    assert_eq!(
        texts, expected,
        "exactly the missed messages, once, in order"
    );
    let got_ids: Vec<String> = got.into_iter().map(|(id, _)| id).collect();
    assert_eq!(got_ids, ids[1..], "with the ids everyone else saw");
    assert_eq!(bob.gaps, 0);
    Ok(())
}

#[tokio::test]
async fn in_memory_reconnect_with_since_gets_exactly_the_missed_messages() -> anyhow::Result<()> {
    let relay = relay("rate_burst = 1000", None).await?;
    reconnect_with_since_gets_exactly_what_was_missed(&relay, &relay).await
}

#[tokio::test]
async fn through_redis_reconnect_with_since_gets_exactly_the_missed_messages() -> anyhow::Result<()>
{
    let redis = TestRedis::start().await?;
    let relay = relay("rate_burst = 1000", Some(&redis)).await?;
    reconnect_with_since_gets_exactly_what_was_missed(&relay, &relay).await
}

#[tokio::test]
async fn two_relays_share_a_room_through_redis() -> anyhow::Result<()> {
    let redis = TestRedis::start().await?;
    let one = relay("rate_burst = 1000", Some(&redis)).await?;
    let two = relay("rate_burst = 1000", Some(&redis)).await?;
    let mut alice = Chatter::open(&one, "alice", "").await?;
    let mut bob = Chatter::open(&two, "bob", "").await?;
    // Each sees the other in the room's presence, whichever relay they are on.
    bob.until_presence(&["alice", "bob"]).await?;
    alice.until_presence(&["alice", "bob"]).await?;

    alice.say("from relay one").await?;
    assert_eq!(bob.next_message().await?.1.message, "from relay one");
    bob.say("from relay two").await?;
    let mut heard = Vec::new();
    while heard.len() < 2 {
        heard.push(alice.next_message().await?.1.message);
    }
    assert_eq!(heard, ["from relay one", "from relay two"]);

    // A client that drops off relay two and comes back on relay one misses nothing.
    reconnect_with_since_gets_exactly_what_was_missed(&one, &two).await?;
    reconnect_with_since_gets_exactly_what_was_missed(&two, &one).await
}

#[tokio::test]
async fn redis_killed_and_restarted_mid_conversation_the_room_works_again() -> anyhow::Result<()> {
    let mut redis = TestRedis::start().await?;
    let relay = relay("rate_burst = 1000", Some(&redis)).await?;
    let mut alice = Chatter::open(&relay, "alice", "").await?;
    let mut bob = Chatter::open(&relay, "bob", "").await?;
    alice.say("before the crash").await?;
    assert_eq!(bob.next_message().await?.1.message, "before the crash");

    redis.stop().await?;
    alice.until_status(StatusKind::BackendReconnecting).await?;
    bob.until_status(StatusKind::BackendReconnecting).await?;
    alice.say("while redis is down").await?;
    let (code, message) = alice.next_error().await?;
    assert_eq!(code, ErrorCode::Backend);
    assert!(message.contains("NOT sent"), "{message}");

    redis.restart().await?;
    alice.until_status(StatusKind::BackendRestored).await?;
    bob.until_status(StatusKind::BackendRestored).await?;
    alice.say("after the restart").await?;
    assert_eq!(bob.next_message().await?.1.message, "after the restart");
    assert_eq!(alice.next_message().await?.1.message, "after the restart");
    Ok(())
}

#[tokio::test]
async fn trimmed_history_is_reported_as_a_gap() -> anyhow::Result<()> {
    let relay = relay(HISTORY_OF_10, None).await?;
    let mut alice = Chatter::open(&relay, "alice", "").await?;
    alice.say("seen").await?;
    let (seen, _) = alice.next_message().await?;
    for i in 0..30 {
        alice.say(&format!("m{i}")).await?;
    }
    let mut last = String::new();
    while last != "m29" {
        last = alice.next_message().await?.1.message;
    }
    let mut back = Chatter::open(&relay, "alice", &format!("?since={seen}")).await?;
    let mut texts = Vec::new();
    while texts.last().map(String::as_str) != Some("m29") {
        texts.push(back.next_message().await?.1.message);
    }
    assert_eq!(back.gaps, 1, "told plainly that some were trimmed");
    let expected: Vec<String> = (20..30).map(|i| format!("m{i}")).collect();
    assert_eq!(texts, expected, "the ten still kept");
    Ok(())
}

#[tokio::test]
async fn history_trimmed_in_redis_is_reported_as_a_gap_then_the_rest_follows() -> anyhow::Result<()>
{
    let redis = TestRedis::start().await?;
    // MAXLEN ~ 10: Redis trims whole nodes of 100 entries, so 250 messages lose some.
    let relay = relay(HISTORY_OF_10, Some(&redis)).await?;
    let mut alice = Chatter::open(&relay, "alice", "").await?;
    alice.say("seen").await?;
    let (seen, _) = alice.next_message().await?;
    for i in 0..250 {
        alice.say(&format!("m{i}")).await?;
    }
    while alice.next_message().await?.1.message != "m249" {}

    let mut back = Chatter::open(&relay, "alice", &format!("?since={seen}")).await?;
    let mut texts = Vec::new();
    while texts.last().map(String::as_str) != Some("m249") {
        texts.push(back.next_message().await?.1.message);
    }
    assert_eq!(back.gaps, 1, "told plainly that some were trimmed");
    assert!(texts.len() < 250, "some were trimmed");
    let first: usize = texts[0].trim_start_matches('m').parse()?;
    let expected: Vec<String> = (first..250).map(|i| format!("m{i}")).collect();
    assert_eq!(texts, expected, "the kept ones, in order, once");
    Ok(())
}

#[tokio::test]
async fn a_since_from_before_a_relay_restart_gets_a_gap_then_live_messages() -> anyhow::Result<()> {
    let mut first = relay("", None).await?;
    let mut alice = Chatter::open(&first, "alice", "").await?;
    alice.say("said before the restart").await?;
    let (seen, _) = alice.next_message().await?;
    first.stop().await;

    // The rooms of a relay without Redis live in its memory: they are gone.
    let second = relay("", None).await?;
    let mut back = Chatter::open(&second, "alice", &format!("?since={seen}")).await?;
    back.say("said after").await?;
    let (_, message) = back.next_message().await?;
    assert_eq!(message.message, "said after");
    assert_eq!(back.gaps, 1, "told plainly that history was lost");
    Ok(())
}

#[tokio::test]
async fn the_target_picker_lists_only_the_rooms_a_user_may_open() -> anyhow::Result<()> {
    let relay = relay("", None).await?;
    let targets = |user: &str| {
        let request = reqwest::Client::new()
            .get(relay.http_url("/api/targets"))
            .bearer_auth(relay.token(user));
        async move {
            let targets: common::api::Targets = request.send().await?.json().await?;
            anyhow::Ok(targets.chat)
        }
    };
    let alice = targets("alice").await?;
    assert_eq!(alice.len(), 1);
    assert_eq!(
        (alice[0].id.as_str(), alice[0].label.as_str()),
        ("ops", "Ops")
    );
    assert!(targets("carol").await?.is_empty());
    Ok(())
}

// Review #18: the connection to Redis breaks after XADD ran and before its reply came
// back. The relay retries, and the message is still stored (and delivered) once.
#[tokio::test]
async fn a_message_whose_reply_from_redis_is_lost_is_stored_once() -> anyhow::Result<()> {
    let redis = TestRedis::start().await?;
    let proxy = CuttableProxy::start(([127, 0, 0, 1], redis.port).into()).await?;
    let config = format!(
        r#"{users}
[[grants]]
groups = ["ops"]
chat = ["ops"]

[[chat_rooms]]
id = "ops"

[redis]
url = "redis://{proxy}/"
"#,
        users = users_toml(),
        proxy = proxy.addr,
    );
    let relay = TestRelay::start(&config).await?;
    let mut alice = Chatter::open(&relay, "alice", "").await?;
    proxy.cut_after_request(b"stored exactly once");
    alice.say("stored exactly once").await?;
    let (_, message) = alice.next_message().await?;
    assert_eq!(message.message, "stored exactly once");
    alice.say("and the next one").await?;
    let (_, next) = alice.next_message().await?;
    assert_eq!(
        next.message, "and the next one",
        "the first was delivered twice"
    );

    let mut conn = redis.connection().await?;
    let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg("opsdeck:chat:ops")
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await?;
    let stored = entries
        .ids
        .iter()
        .filter(|e| e.get::<String>("message").as_deref() == Some("stored exactly once"))
        .count();
    assert_eq!(stored, 1);
    Ok(())
}

// Issue 11: a relay that dies stops refreshing its people's presence entries; the other
// relays announce them leaving once the entries expire (presence_ttl plus a refresh tick),
// to every open socket.
#[tokio::test]
async fn people_of_a_relay_that_died_leave_the_room_for_everyone_else() -> anyhow::Result<()> {
    let redis = TestRedis::start().await?;
    let relay = relay("presence_ttl = \"3s\"\n", Some(&redis)).await?;
    let mut bob = Chatter::open(&relay, "bob", "").await?;
    // What a relay that was killed leaves behind: an entry nobody refreshes.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let mut conn = redis.connection().await?;
    redis::cmd("ZADD")
        .arg("opsdeck:chat:ops:presence")
        .arg(now_ms + 500)
        .arg(r#"["a-relay-that-died","u9","ghost"]"#)
        .query_async::<()>(&mut conn)
        .await?;
    loop {
        if let ChatBody::Leave(who) = bob.next_chat().await?.body
            && who.uid == "u9"
        {
            assert_eq!(who.username, "ghost");
            break;
        }
    }
    Ok(())
}

/// How many messages with this text the room's Redis stream holds.
async fn stored_in_redis(redis: &TestRedis, text: &str) -> anyhow::Result<usize> {
    let mut conn = redis.connection().await?;
    let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg("opsdeck:chat:ops")
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await?;
    Ok(entries
        .ids
        .iter()
        .filter(|e| e.get::<String>("message").as_deref() == Some(text))
        .count())
}

/// The texts of the messages after `since`, up to and including `last`, read by a new
/// connection (so each stored message is counted once).
async fn history(relay: &TestRelay, since: &str, last: &str) -> anyhow::Result<Vec<String>> {
    let mut reader = Chatter::open(relay, "bob", &format!("?since={since}")).await?;
    let mut texts = Vec::new();
    while texts.last().map(String::as_str) != Some(last) {
        texts.push(reader.next_message().await?.1.message);
    }
    Ok(texts)
}

/// A send with a client id is acknowledged with the id every viewer sees; sent again after
/// a reconnect it is acknowledged with the same id and stored once; another user's message
/// with the same client id is theirs.
async fn acknowledged_once_across_a_reconnect(relay: &TestRelay) -> anyhow::Result<()> {
    let mut alice = Chatter::open(relay, "alice", "").await?;
    let start = alice.position.clone();
    let mut bob = Chatter::open(relay, "bob", "").await?;

    // A classic send gets no acknowledgement: the first one to arrive is for m-1.
    alice.say("classic").await?;
    let acked = alice.send_acked("with an id", "m-1").await?;
    let (_, classic) = alice.next_message().await?;
    assert_eq!(classic.message, "classic");
    let (seen, message) = alice.next_message().await?;
    assert_eq!(
        (seen.as_str(), message.message.as_str()),
        (acked.as_str(), "with an id")
    );
    assert_eq!(bob.next_message().await?.1.message, "classic");
    assert_eq!(
        bob.next_message().await?.0,
        acked,
        "everyone sees the acknowledged id"
    );

    // The connection drops before the client trusts the ack; it sends again, same id.
    alice.client.drop_connection();
    let mut alice = Chatter::open(relay, "alice", &format!("?since={acked}")).await?;
    assert_eq!(alice.send_acked("with an id", "m-1").await?, acked);
    assert_eq!(alice.send_acked("with an id", "m-1").await?, acked);
    // Bob's m-1 is his own message.
    let bobs = bob.send_acked("bob's own", "m-1").await?;
    assert_ne!(bobs, acked);

    assert_eq!(
        history(relay, &start, "bob's own").await?,
        ["classic", "with an id", "bob's own"],
        "stored once"
    );
    Ok(())
}

#[tokio::test]
async fn in_memory_a_send_with_a_client_id_is_acknowledged_and_stored_once_across_a_reconnect()
-> anyhow::Result<()> {
    let relay = relay("rate_burst = 1000", None).await?;
    acknowledged_once_across_a_reconnect(&relay).await
}

#[tokio::test]
async fn through_redis_a_send_with_a_client_id_is_acknowledged_and_stored_once_across_a_reconnect()
-> anyhow::Result<()> {
    let redis = TestRedis::start().await?;
    let relay = relay("rate_burst = 1000", Some(&redis)).await?;
    acknowledged_once_across_a_reconnect(&relay).await?;
    assert_eq!(stored_in_redis(&redis, "with an id").await?, 1);
    Ok(())
}

#[tokio::test]
async fn the_same_client_id_through_two_relays_and_after_a_relay_restart_is_stored_once()
-> anyhow::Result<()> {
    let redis = TestRedis::start().await?;
    let one = relay("", Some(&redis)).await?;
    let mut two = relay("", Some(&redis)).await?;
    let mut on_one = Chatter::open(&one, "alice", "").await?;
    let mut on_two = Chatter::open(&two, "alice", "").await?;
    let first = on_one.send_acked("said once", "retry-7").await?;
    assert_eq!(on_two.send_acked("said once", "retry-7").await?, first);

    two.stop().await;
    let three = relay("", Some(&redis)).await?;
    let mut on_three = Chatter::open(&three, "alice", "").await?;
    assert_eq!(on_three.send_acked("said once", "retry-7").await?, first);
    assert_eq!(stored_in_redis(&redis, "said once").await?, 1);
    Ok(())
}

// The connection to Redis breaks after the script ran and before its reply came back: the
// relay asks again, and the message is acknowledged with its id, stored once.
#[tokio::test]
async fn a_send_with_a_client_id_whose_reply_from_redis_is_lost_is_acknowledged_once()
-> anyhow::Result<()> {
    let redis = TestRedis::start().await?;
    let proxy = CuttableProxy::start(([127, 0, 0, 1], redis.port).into()).await?;
    let config = format!(
        "{users}\n[[grants]]\ngroups = [\"ops\"]\nchat = [\"ops\"]\n\
         [[chat_rooms]]\nid = \"ops\"\n[redis]\nurl = \"redis://{proxy}/\"\n",
        users = users_toml(),
        proxy = proxy.addr,
    );
    let relay = TestRelay::start(&config).await?;
    let mut alice = Chatter::open(&relay, "alice", "").await?;
    proxy.cut_after_request(b"its reply was lost");
    let acked = alice.send_acked("its reply was lost", "lost-1").await?;
    let (id, message) = alice.next_message().await?;
    assert_eq!(
        (id, message.message.as_str()),
        (acked, "its reply was lost")
    );
    assert_eq!(stored_in_redis(&redis, "its reply was lost").await?, 1);
    Ok(())
}

async fn bad_client_ids_are_refused_and_nothing_is_stored(relay: &TestRelay) -> anyhow::Result<()> {
    let mut alice = Chatter::open(relay, "alice", "").await?;
    let long = "a".repeat(65);
    let bad = [
        (format!(r#""{long}""#), "65 characters"),
        ("42".to_owned(), "not a string"),
        (r#""no spaces""#.to_owned(), "' '"),
        (r#""""#.to_owned(), "empty"),
    ];
    for (id, why) in bad {
        alice
            .client
            .send_text(&format!(
                r#"{{"action":"message","data":{{"message":"refused"}},"client_id":{id}}}"#
            ))
            .await?;
        let (code, message) = alice.next_error().await?;
        assert_eq!(code, ErrorCode::BadFrame, "{message}");
        assert!(
            message.contains("client_id") && message.contains(why),
            "{message}"
        );
    }
    // Nothing was stored: the next message anyone sees is the one after.
    alice.send_acked("accepted", "ok-1").await?;
    assert_eq!(alice.next_message().await?.1.message, "accepted");
    Ok(())
}

#[tokio::test]
async fn in_memory_a_bad_client_id_gets_an_error_frame_and_nothing_is_stored() -> anyhow::Result<()>
{
    let relay = relay("", None).await?;
    bad_client_ids_are_refused_and_nothing_is_stored(&relay).await
}

#[tokio::test]
async fn through_redis_a_bad_client_id_gets_an_error_frame_and_nothing_is_stored()
-> anyhow::Result<()> {
    let redis = TestRedis::start().await?;
    let relay = relay("", Some(&redis)).await?;
    bad_client_ids_are_refused_and_nothing_is_stored(&relay).await?;
    assert_eq!(stored_in_redis(&redis, "refused").await?, 0);
    Ok(())
}

// While Redis is down a send is refused at once (never queued), and the error names the
// client id; sent again with that id once Redis is back, it is stored once.
#[tokio::test]
async fn a_send_while_redis_is_down_is_refused_naming_its_client_id_then_stored_once()
-> anyhow::Result<()> {
    let mut redis = TestRedis::start().await?;
    let relay = relay("", Some(&redis)).await?;
    let mut alice = Chatter::open(&relay, "alice", "").await?;
    redis.stop().await?;
    alice.until_status(StatusKind::BackendReconnecting).await?;
    alice.say_with_id("while down", "down-1").await?;
    match alice.outcome("down-1").await? {
        Outcome::Refused(code, message) => {
            assert_eq!(code, ErrorCode::Backend, "{message}");
            assert!(message.contains("\"down-1\" was NOT sent"), "{message}");
        }
        sent => bail!("sent while Redis was down: {sent:?}"),
    }

    redis.restart().await?;
    alice.until_status(StatusKind::BackendRestored).await?;
    let acked = alice.send_acked("while down", "down-1").await?;
    assert_eq!(alice.send_acked("while down", "down-1").await?, acked);
    assert_eq!(stored_in_redis(&redis, "while down").await?, 1);
    Ok(())
}
