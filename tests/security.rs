//! The relay review's findings (`shared/reviews/security-review.md`), each held fixed by a
//! test against the real services; the finding's number is in each test's comment.

use std::net::IpAddr;

use anyhow::Context;

use common::server::StreamEvent;
use futures_util::{SinkExt, StreamExt};
use opsdeck_tests::client::{Event, WsClient};
use opsdeck_tests::redis::TestRedis;
use opsdeck_tests::relay::{PASSWORD, TestRelay, users_toml};
use opsdeck_tests::sshd::TestSshd;
use redis::AsyncCommands;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const GRANTS: &str = r#"
[[grants]]
groups = ["ops"]
ssh = ["*"]
chat = ["*"]
jobs = true
"#;

async fn relay_with(sshd: &TestSshd, extra: &str) -> anyhow::Result<TestRelay> {
    let config = format!(
        "{extra}\n{}\n{GRANTS}\n{}",
        users_toml(),
        sshd.host_toml("box")?
    );
    TestRelay::start(&config).await
}

/// The first thing a socket gets: the session id of its `connected` frame, or the close.
async fn first_event(client: &mut WsClient) -> anyhow::Result<Result<String, (u16, String)>> {
    loop {
        match client.next_event().await? {
            Event::Frame(common::ServerFrame::Event(StreamEvent::Connected {
                session, ..
            })) => return Ok(Ok(session)),
            Event::Closed { code, reason } => return Ok(Err((code, reason))),
            _ => {}
        }
    }
}

async fn login_from(
    relay: &TestRelay,
    source: &str,
    user: &str,
    password: &str,
) -> anyhow::Result<reqwest::Response> {
    let client = reqwest::Client::builder()
        .local_address(source.parse::<IpAddr>()?)
        .build()?;
    Ok(client
        .post(relay.http_url("/api/login"))
        .json(&serde_json::json!({"username": user, "password": password}))
        .send()
        .await?)
}

// #1: a reload withdraws group memberships and users, from open sockets and new logins.
#[tokio::test]
async fn a_reload_withdraws_groups_and_users_from_open_terminals_and_logins() -> anyhow::Result<()>
{
    let sshd = TestSshd::start().await?;
    let keepalive = "[keepalive]\nping_interval = \"1s\"\npeer_timeout = \"5s\"\n";
    let relay = relay_with(&sshd, keepalive).await?;
    let mut terminal = relay.connect("alice", "/ws/ssh/box").await?;
    first_event(&mut terminal)
        .await?
        .map_err(|(code, reason)| anyhow::anyhow!("closed with {code}: {reason}"))?;

    // alice leaves the ops group (her own `groups` list): the grant no longer applies.
    let without_group = users_toml().replacen("groups = [\"ops\"]\n", "", 1);
    let config = format!(
        "{keepalive}\n{without_group}\n{GRANTS}\n{}",
        sshd.host_toml("box")?
    );
    relay
        .relay()
        .reload(relay::Config::from_toml(&config, "reloaded")?)?;
    let (code, reason, _) = terminal.read_until_closed().await?;
    assert_eq!(code, 4430, "{reason}");
    let mut again = relay.connect("alice", "/ws/ssh/box").await?;
    assert_eq!(first_event(&mut again).await?.map_err(|e| e.0), Err(4403));

    // bob is removed: his password no longer logs in, his open socket is closed.
    let bob_grant = "[[grants]]\nusers = [\"bob\"]\nssh = [\"*\"]\n";
    let with_bob = format!(
        "{keepalive}\n{}\n{bob_grant}\n{}",
        users_toml(),
        sshd.host_toml("box")?
    );
    relay
        .relay()
        .reload(relay::Config::from_toml(&with_bob, "with bob")?)?;
    let mut bobs = relay.connect("bob", "/ws/ssh/box").await?;
    first_event(&mut bobs)
        .await?
        .map_err(|(code, reason)| anyhow::anyhow!("closed with {code}: {reason}"))?;
    let before = login_from(&relay, "127.0.0.1", "bob", PASSWORD).await?;
    assert_eq!(before.status(), 200);
    let alice_only: String = users_toml()
        .split("[[auth.users]]")
        .filter(|part| !part.contains("\"bob\""))
        .collect::<Vec<_>>()
        .join("[[auth.users]]");
    let without_bob = format!(
        "{keepalive}\n{alice_only}\n{bob_grant}\n{}",
        sshd.host_toml("box")?
    );
    relay
        .relay()
        .reload(relay::Config::from_toml(&without_bob, "without bob")?)?;
    let (code, reason, _) = bobs.read_until_closed().await?;
    assert_eq!(code, 4431, "{reason}");
    assert!(reason.contains("no longer exists"), "{reason}");
    let after = login_from(&relay, "127.0.0.1", "bob", PASSWORD).await?;
    assert_eq!(after.status(), 401);
    Ok(())
}

// #2: the Redis URL's password never reaches a user, whatever fails.
#[tokio::test]
async fn the_redis_password_never_reaches_users() -> anyhow::Result<()> {
    // Nothing listens on port 1: every Redis call fails.
    let config = format!(
        "{}\n{GRANTS}\n[redis]\nurl = \"redis://:hunter2-secret@127.0.0.1:1/0\"\n[[chat_rooms]]\nid = \"ops\"\n",
        users_toml()
    );
    let relay = TestRelay::start(&config).await?;
    for path in ["/ws/chat/ops", "/ws/exec/0123456789abcdef0123"] {
        let mut client = relay.connect("alice", path).await?;
        let (code, reason) = first_event(&mut client)
            .await?
            .expect_err("Redis is down: refused");
        assert_eq!(code, 4502, "{reason}");
        assert!(!reason.contains("hunter2"), "{path}: {reason}");
    }
    let me = reqwest::Client::new()
        .get(relay.http_url("/api/me"))
        .bearer_auth(relay.token("alice"))
        .send()
        .await?;
    assert_eq!(me.status(), 502);
    let body = me.text().await?;
    assert!(body.contains("***@127.0.0.1:1"), "{body}");
    assert!(!body.contains("hunter2"), "{body}");
    Ok(())
}

// #4: a page that rebinds its own name to the relay's address is refused; probes answer.
#[tokio::test]
async fn requests_for_another_host_name_get_421_and_probes_still_answer() -> anyhow::Result<()> {
    let relay = TestRelay::start(&format!("{}\n{GRANTS}", users_toml())).await?;
    let port = relay.addr.port();
    let evil = format!("evil.example:{port}");
    let http = reqwest::Client::new();
    let login = http
        .post(relay.http_url("/api/login"))
        .header("host", &evil)
        .header("origin", format!("http://{evil}"))
        .json(&serde_json::json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await?;
    assert_eq!(login.status(), 421);
    assert!(login.text().await?.contains("public_origins"));
    let health = http
        .get(relay.http_url("/healthz"))
        .header("host", &evil)
        .send()
        .await?;
    assert_eq!(health.status(), 200);

    let mut request = relay.ws_url("/ws/ssh/box").into_client_request()?;
    request.headers_mut().insert("host", evil.parse()?);
    let refused = tokio_tungstenite::connect_async(request).await;
    assert!(
        matches!(&refused, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 421),
        "{refused:?}"
    );
    // The relay's own loopback name with another port's Origin is a foreign page.
    let foreign = http
        .post(relay.http_url("/api/login"))
        .header(
            "origin",
            format!("http://127.0.0.1:{}", port.wrapping_add(1)),
        )
        .json(&serde_json::json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await?;
    assert_eq!(foreign.status(), 403);
    Ok(())
}

// #5: guessing is throttled per source and user; the real user still gets in.
#[tokio::test]
async fn a_login_flood_is_throttled_while_the_real_user_gets_in() -> anyhow::Result<()> {
    let limits = "[auth.login_limits]\nper_source_burst = 8\nper_user_burst = 3\n";
    let config = format!("{}\n{limits}\n{GRANTS}", users_toml());
    let relay = TestRelay::start(&config).await?;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..5 {
        let response = login_from(&relay, "127.0.0.2", "alice", "guess").await?;
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            retry_after = response.headers().get("retry-after").cloned();
        }
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
    let wait: u64 = retry_after.expect("Retry-After").to_str()?.parse()?;
    assert!(wait >= 1, "{wait}");
    // alice, at her own address, is not locked out by the flood.
    let real = login_from(&relay, "127.0.0.3", "alice", PASSWORD).await?;
    assert_eq!(real.status(), 200);
    // A source spraying many names is cut at its own budget.
    let mut sprayed = Vec::new();
    for n in 0..9 {
        let response = login_from(&relay, "127.0.0.4", &format!("user{n}"), "guess").await?;
        sprayed.push(response.status().as_u16());
    }
    assert_eq!(
        sprayed.iter().filter(|s| **s == 429).count(),
        1,
        "{sprayed:?}"
    );
    Ok(())
}

// #12 (and #20): once a token's exp has passed, it neither opens nor resumes anything.
#[tokio::test]
async fn a_token_that_just_expired_resumes_nothing() -> anyhow::Result<()> {
    let sshd = TestSshd::start().await?;
    let relay = relay_with(&sshd, "").await?;
    let token = relay.relay().mint_token("alice", 3)?;
    let url = relay.ws_url("/ws/ssh/box");
    let mut client = WsClient::connect(&url, Some(&token), None).await?;
    let session = first_event(&mut client)
        .await?
        .map_err(|(code, reason)| anyhow::anyhow!("closed with {code}: {reason}"))?;
    client.type_line("echo before-expiry").await?;
    client.read_until("before-expiry").await?;
    let (code, _, _) = client.read_until_closed().await?;
    assert_eq!(code, 4419);
    // At once, with the same token and the session's id: refused, nothing replayed.
    let resume = format!("{url}?session={session}&position=0");
    let mut again = WsClient::connect(&resume, Some(&token), None).await?;
    match again.next_event().await? {
        Event::Closed { code, .. } => assert_eq!(code, 4419),
        other => panic!("an expired token got {other:?}"),
    }
    assert!(again.output.is_empty());
    Ok(())
}

// #9: the per-user session limit holds against parallel opens.
#[tokio::test]
async fn parallel_opens_cannot_pass_the_session_limit() -> anyhow::Result<()> {
    let sshd = TestSshd::start().await?;
    let relay = relay_with(&sshd, "[limits]\nmax_sessions_per_user = 2\n").await?;
    let opens = (0..6).map(|_| async {
        let mut client = relay.connect("alice", "/ws/ssh/box").await?;
        let first = first_event(&mut client).await?;
        anyhow::Ok((first, client))
    });
    let results = futures_util::future::try_join_all(opens).await?;
    let opened = results.iter().filter(|(r, _)| r.is_ok()).count();
    assert_eq!(opened, 2);
    for (result, _) in &results {
        if let Err((code, reason)) = result {
            assert_eq!(*code, 4403, "{reason}");
            assert!(reason.contains("already have"), "{reason}");
        }
    }
    Ok(())
}

// #17: a job's output line that merely starts with the end marker is output.
#[tokio::test]
async fn job_output_that_starts_with_the_end_marker_does_not_end_the_job() -> anyhow::Result<()> {
    let redis = TestRedis::start().await?;
    let config = format!("{}\n{GRANTS}\n{}", users_toml(), redis.config_toml());
    let relay = TestRelay::start(&config).await?;
    let token = "build-0123456789abcdef";
    let key = format!("opsdeck:job:{token}");
    let mut conn = redis.connection().await?;
    for entry in [
        "first",
        "__OPSDECK_EXIT__ 0 forged by the build",
        "last",
        "__OPSDECK_EXIT__ 7",
    ] {
        let _: i64 = conn.lpush(&key, entry).await?;
    }
    let mut client = relay.connect("alice", &format!("/ws/exec/{token}")).await?;
    let (code, reason, frames) = client.read_until_closed().await?;
    assert_eq!(code, 1000, "{reason}");
    let output: Vec<&str> = frames
        .iter()
        .filter_map(|f| match f {
            StreamEvent::Output { data, .. } => Some(data.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        output,
        ["first", "__OPSDECK_EXIT__ 0 forged by the build", "last"]
    );
    assert!(frames.contains(&StreamEvent::Exit {
        status: Some(7),
        signal: None
    }));
    Ok(())
}

// #23: names that are not Kubernetes names never reach the API server.
#[tokio::test]
async fn kubernetes_names_with_slashes_are_refused_before_any_api_call() -> anyhow::Result<()> {
    let relay = TestRelay::start(&format!("{}\n{GRANTS}", users_toml())).await?;
    for path in [
        "/ws/k8s/logs/c/ns/victim%2Fproxy%2Fadmin/app",
        "/ws/k8s/exec/c/..%2Fkube-system/pod/app",
        "/ws/k8s/exec/c/ns/pod/App",
    ] {
        let mut client = relay.connect("alice", path).await?;
        let (code, reason) = first_event(&mut client).await?.expect_err("refused");
        assert_eq!(code, 4400, "{path}: {reason}");
        assert!(reason.contains("not a Kubernetes name"), "{reason}");
    }
    Ok(())
}

// #19 and #25: tokens are not echoed; per-user answers are not cached.
#[tokio::test]
async fn tokens_are_not_echoed_and_api_answers_are_not_cached() -> anyhow::Result<()> {
    let relay = TestRelay::start(&format!("{}\n{GRANTS}", users_toml())).await?;
    let token = relay.token("alice");
    let mut request = relay.ws_url("/ws/ssh/box").into_client_request()?;
    request
        .headers_mut()
        .insert("sec-websocket-protocol", format!("bearer.{token}").parse()?);
    let refused = tokio_tungstenite::connect_async(request).await;
    assert!(
        matches!(&refused, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 400),
        "{refused:?}"
    );
    let me = reqwest::Client::new()
        .get(relay.http_url("/api/me"))
        .bearer_auth(&token)
        .send()
        .await?;
    assert_eq!(me.status(), 200);
    assert_eq!(
        me.headers().get("cache-control").map(|v| v.as_bytes()),
        Some(&b"no-store"[..])
    );
    Ok(())
}

// #3: a terminal whose input backs up (the program reads no stdin) still delivers its
// output and honours shutdown.
#[tokio::test]
async fn a_terminal_with_stuck_input_still_delivers_output_and_honours_shutdown()
-> anyhow::Result<()> {
    let sshd = TestSshd::start().await?;
    let mut relay = relay_with(&sshd, "").await?;
    let mut request = relay.ws_url("/ws/ssh/box").into_client_request()?;
    request.headers_mut().insert(
        "cookie",
        format!("X-Token={}", relay.token("alice")).parse()?,
    );
    let (ws, _) = tokio_tungstenite::connect_async(request).await?;
    let (mut sink, mut stream) = ws.split();
    let line = "stty -echo; (while :; do echo tick; sleep 0.1; done) & sleep 3600\r";
    sink.send(Message::text(
        serde_json::json!({ "data": line }).to_string(),
    ))
    .await?;
    // Far more input than the TTY, the SSH window and the relay's queue hold, never read
    // by `sleep`: the sender blocks once everything between is full.
    let chunk = serde_json::json!({ "data": "x".repeat(60_000) }).to_string();
    let sender = tokio::spawn(async move {
        for _ in 0..400 {
            if sink.send(Message::text(chunk.clone())).await.is_err() {
                break;
            }
        }
        sink
    });
    let mut ticks_after_stuck = 0;
    let mut text = Vec::new();
    while ticks_after_stuck < 20 {
        let message = tokio::time::timeout(opsdeck_tests::client::EVENT_TIMEOUT, stream.next())
            .await?
            .expect("the socket stays open")?;
        if let Message::Binary(bytes) = message {
            text.extend_from_slice(&bytes);
            let ticks = opsdeck_tests::client::count(&text, b"tick");
            if sender.is_finished() {
                panic!("24 MB of input went through a program that reads none");
            }
            if ticks > 0 {
                ticks_after_stuck = ticks;
            }
        }
    }
    assert!(!sender.is_finished(), "the input is stuck");
    relay.stop().await;
    let code = loop {
        match tokio::time::timeout(opsdeck_tests::client::EVENT_TIMEOUT, stream.next()).await? {
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            other => panic!("no close frame: {other:?}"),
        }
    };
    assert_eq!(code, Some(1001));
    sender.abort();
    Ok(())
}

// #6: a client that never finishes its request head is closed after the header timeout,
// and connections that are not yet WebSockets are capped (the rest wait in the backlog).
#[tokio::test]
async fn half_sent_requests_are_closed_after_the_header_timeout() -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = format!(
        "[limits]\nheader_read_timeout = \"1s\"\nmax_pending_connections = 2\n{}",
        users_toml()
    );
    let relay = TestRelay::start(&config).await?;
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut stream = tokio::net::TcpStream::connect(relay.addr).await?;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .await?;
        slow.push(stream);
    }
    // Both permits are taken: this request is accepted only once a slow one is gone.
    let healthz = reqwest::get(relay.http_url("/healthz")).await?;
    assert_eq!(healthz.status(), 200);
    let closed_before = slow
        .iter()
        .filter(|s| matches!(s.try_read(&mut [0u8; 64]), Ok(0)))
        .count();
    assert!(
        closed_before >= 1,
        "the third request was served while both slow ones held their permits"
    );
    // A guard against a hang, not a measure: the relay closes them after 1 s.
    for mut stream in slow {
        let mut rest = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(30),
            stream.read_to_end(&mut rest),
        )
        .await
        .map_err(|_| anyhow::anyhow!("a half-sent request was never closed"))??;
        assert!(!String::from_utf8_lossy(&rest).contains("200 OK"));
    }
    Ok(())
}

// #22: a drain makes /readyz answer 503 while open streams keep working; once accepting
// stops, new connections are refused and open streams still go on; the shutdown after it
// closes every socket with 1001 before `stopped` returns.
#[tokio::test]
async fn a_drain_answers_readyz_503_then_refuses_new_connections_and_open_streams_go_on()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("app.log");
    std::fs::write(&log, "")?;
    let config = format!(
        "{}\n[[grants]]\ngroups = [\"ops\"]\nfiles = [\"*\"]\n[[files]]\nid = \"app\"\npath = \"{}\"\n",
        users_toml(),
        log.display()
    );
    let mut relay = TestRelay::start(&config).await?;
    let mut viewer = relay.connect("alice", "/ws/tail/app").await?;
    viewer.connected().await?;
    assert_eq!(reqwest::get(relay.http_url("/readyz")).await?.status(), 200);

    relay.relay().drain();
    let ready = reqwest::get(relay.http_url("/readyz")).await?;
    assert_eq!(ready.status(), 503);
    assert!(ready.text().await?.contains("shutting down"));
    assert_eq!(
        reqwest::get(relay.http_url("/healthz")).await?.status(),
        200
    );
    std::fs::write(&log, "written during the drain\n")?;
    loop {
        if let StreamEvent::Lines { lines, .. } = viewer.next_frame().await?
            && lines.iter().any(|l| l.contains("written during the drain"))
        {
            break;
        }
    }

    // After `shutdown.drain_delay`: new connections are refused, open streams go on.
    relay.relay().stop_accepting();
    let refused = reqwest::get(relay.http_url("/healthz")).await;
    assert!(
        refused.is_err(),
        "a request after stop_accepting: {refused:?}"
    );
    std::fs::write(&log, "written during the drain\nafter accepting stopped\n")?;
    loop {
        if let StreamEvent::Lines { lines, .. } = viewer.next_frame().await?
            && lines.iter().any(|l| l.contains("after accepting stopped"))
        {
            break;
        }
    }

    let ((), closed) = tokio::join!(relay.stop(), viewer.read_until_closed());
    let (code, reason, _) = closed?;
    assert_eq!(code, 1001, "{reason}");
    Ok(())
}

// #21: a reload that re-points a target (here a file id to another path) closes the
// streams opened on the old one, and new opens follow the new config.
#[tokio::test]
async fn a_reload_that_re_points_a_target_closes_its_open_streams() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config_for = |file: &str| {
        format!(
            "[keepalive]\nping_interval = \"1s\"\npeer_timeout = \"5s\"\n{}\n\
             [[grants]]\ngroups = [\"ops\"]\nfiles = [\"*\"]\n[[files]]\nid = \"app\"\nlabel = \"{file}\"\npath = \"{}\"\n",
            users_toml(),
            dir.path().join(file).display()
        )
    };
    std::fs::write(dir.path().join("old.log"), "")?;
    std::fs::write(dir.path().join("new.log"), "from the new file\n")?;
    let relay = TestRelay::start(&config_for("old.log")).await?;
    let mut viewer = relay.connect("alice", "/ws/tail/app").await?;
    viewer.connected().await?;

    relay.relay().reload(relay::Config::from_toml(
        &config_for("new.log"),
        "re-pointed",
    )?)?;
    let (code, reason, _) = viewer.read_until_closed().await?;
    assert_eq!(code, 4430, "{reason}");
    assert!(
        reason.contains("configuration of file \"app\" changed"),
        "{reason}"
    );

    let mut again = relay.connect("alice", "/ws/tail/app").await?;
    again.connected().await?;
    loop {
        if let StreamEvent::Lines { lines, .. } = again.next_frame().await?
            && lines.iter().any(|l| l.contains("from the new file"))
        {
            break;
        }
    }
    Ok(())
}

// #22 and issue 11: during a drain a running command goes on and its output arrives; the
// relay stops taking connections; once the drain timeout passes, the terminal is closed
// with 1001 (reconnect).
#[tokio::test]
async fn a_drain_lets_a_running_command_finish_then_closes_with_1001() -> anyhow::Result<()> {
    let sshd = TestSshd::start().await?;
    let mut relay = relay_with(&sshd, "").await?;
    let mut terminal = relay.connect("alice", "/ws/ssh/box").await?;
    first_event(&mut terminal)
        .await?
        .map_err(|(code, reason)| anyhow::anyhow!("closed with {code}: {reason}"))?;
    terminal.type_line("sleep 1; echo done-$((2+3))").await?;
    relay.relay().drain();
    relay.relay().stop_accepting();
    let (all_ended, output) = tokio::join!(
        relay
            .relay()
            .terminals_ended(std::time::Duration::from_secs(3)),
        terminal.read_until("done-5"),
    );
    output?;
    assert!(!all_ended, "the shell is still open after its command");
    let ((), closed) = tokio::join!(relay.stop(), terminal.read_until_closed());
    let (code, reason, _) = closed?;
    assert_eq!(code, 1001, "{reason}");
    Ok(())
}

// Review #14: a logout revokes any token, one without a `jti` too, and closes this relay's
// sockets that use it at once (the keepalive here is an hour away), with the cookie
// cleared.
#[tokio::test]
async fn logout_revokes_a_token_without_jti_and_closes_its_sockets_at_once() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("app.log");
    std::fs::write(&log, "")?;
    let config = format!(
        r#"[keepalive]
ping_interval = "1h"
peer_timeout = "2h"
{users}
[[grants]]
users = ["ext:7"]
files = ["*"]
[[files]]
id = "app"
path = "{path}"
"#,
        users = users_toml(),
        path = log.display()
    );
    let relay = TestRelay::start(&config).await?;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + 600;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"sub": "7", "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(b"test-secret"),
    )?;
    let mut viewer = WsClient::connect(&relay.ws_url("/ws/tail/app"), Some(&token), None).await?;
    first_event(&mut viewer)
        .await?
        .map_err(|(code, reason)| anyhow::anyhow!("closed with {code}: {reason}"))?;

    let logout = reqwest::Client::new()
        .post(relay.http_url("/api/logout"))
        .header("cookie", format!("X-Token={token}"))
        .send()
        .await?;
    assert_eq!(logout.status(), 204);
    let cleared = logout
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");

    let (code, reason, _) = viewer.read_until_closed().await?;
    assert_eq!(code, 4431, "{reason}");
    let mut again = WsClient::connect(&relay.ws_url("/ws/tail/app"), Some(&token), None).await?;
    let (code, reason) = first_event(&mut again)
        .await?
        .expect_err("a revoked token opens nothing");
    assert_eq!(code, 4431, "{reason}");
    Ok(())
}

// Audit 5: a logout on one relay reaches the other relays through Redis: their open
// sockets using the token close with 4431 at the next keepalive re-check, and the token
// opens nothing there any more.
#[tokio::test]
async fn a_logout_is_shared_through_redis_with_the_other_relays() -> anyhow::Result<()> {
    let redis = TestRedis::start().await?;
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("app.log");
    std::fs::write(&log, "")?;
    let config = format!(
        "[keepalive]\nping_interval = \"1s\"\npeer_timeout = \"5s\"\n{users}\n{redis}\n\
         [[grants]]\ngroups = [\"ops\"]\nfiles = [\"*\"]\n[[files]]\nid = \"app\"\npath = \"{path}\"\n",
        users = users_toml(),
        redis = redis.config_toml(),
        path = log.display()
    );
    let (here, there) = (
        TestRelay::start(&config).await?,
        TestRelay::start(&config).await?,
    );
    let login = login_from(&here, "127.0.0.1", "alice", PASSWORD).await?;
    assert_eq!(login.status(), 200);
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .context("no login cookie")?
        .to_owned();
    let token = cookie.trim_start_matches("X-Token=").to_owned();
    let mut viewer = WsClient::connect(&there.ws_url("/ws/tail/app"), Some(&token), None).await?;
    first_event(&mut viewer)
        .await?
        .map_err(|(code, reason)| anyhow::anyhow!("closed with {code}: {reason}"))?;

    let logout = reqwest::Client::new()
        .post(here.http_url("/api/logout"))
        .header("cookie", &cookie)
        .send()
        .await?;
    assert_eq!(logout.status(), 204);
    let (code, reason, _) = viewer.read_until_closed().await?;
    assert_eq!(code, 4431, "{reason}");
    let mut again = WsClient::connect(&there.ws_url("/ws/tail/app"), Some(&token), None).await?;
    let (code, reason) = first_event(&mut again)
        .await?
        .expect_err("a token revoked on another relay opens nothing");
    assert_eq!(code, 4431, "{reason}");
    Ok(())
}
