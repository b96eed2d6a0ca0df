//! SSH terminals end to end: a real sshd, the relay, and a WebSocket client.

use common::server::{ErrorCode, ServerFrame, StreamEvent};
use common::{ClientFrame, FLOW_WINDOW, Position, TermSize};
use opsdeck_tests::client::{Event, WsClient, contains, count};
use opsdeck_tests::relay::{TestRelay, users_toml};
use opsdeck_tests::sshd::TestSshd;

const GRANTS: &str = "[[grants]]\ngroups = [\"ops\"]\nssh = [\"*\"]\n";

async fn relay_with(sshd: &TestSshd, extra: &str) -> anyhow::Result<TestRelay> {
    let config = format!(
        "{extra}\n{}\n{GRANTS}\n{}",
        users_toml(),
        sshd.host_toml("box")?
    );
    TestRelay::start(&config).await
}

/// Opens a shell and waits for the connected frame.
async fn open_shell(relay: &TestRelay, query: &str) -> anyhow::Result<(WsClient, String)> {
    let mut client = relay
        .connect("alice", &format!("/ws/ssh/box{query}"))
        .await?;
    let (session, position, resumed) = client.connected().await?;
    assert_eq!(position, Position::count(0));
    assert!(!resumed);
    Ok((client, session))
}

#[tokio::test]
async fn shell_runs_commands_and_reports_the_exit_status() -> anyhow::Result<()> {
    let sshd = TestSshd::start().await?;
    let relay = relay_with(&sshd, "").await?;
    let (mut client, _) = open_shell(&relay, "").await?;
    client.type_line("echo hello-$((40+2)) $TERM").await?;
    client.read_until("hello-42 xterm-256color").await?;
    client.type_line("exit 3").await?;
    let (code, reason, frames) = client.read_until_closed().await?;
    assert!(
        frames.contains(&StreamEvent::Exit {
            status: Some(3),
            signal: None
        }),
        "{frames:?}"
    );
    assert_eq!(code, 1000);
    assert!(reason.contains("status 3"), "{reason}");
    Ok(())
}

#[tokio::test]
async fn multibyte_text_split_across_frames_arrives_intact() -> anyhow::Result<()> {
    let sshd = TestSshd::start().await?;
    let relay = relay_with(&sshd, "").await?;
    let (mut client, _) = open_shell(&relay, "").await?;
    let unit = "你好😀";
    let repeat = 40_000;
    client
        .type_line(&format!(
            "python3 -c \"import sys; sys.stdout.write('{unit}'*{repeat}); print(); print('END'+'-MARK')\""
        ))
        .await?;
    client.read_until("END-MARK").await?;
    let expected = unit.repeat(repeat);
    let text = String::from_utf8(client.output.clone())?;
    assert!(
        text.contains(&expected),
        "the multi-byte text was altered on the way"
    );
    // The test only proves something if some frame ended inside a character.
    assert!(
        client.some_frame_split_a_character(),
        "no frame boundary fell inside a character ({} frames)",
        client.frame_sizes.len()
    );
    Ok(())
}

#[tokio::test]
async fn initial_size_and_resize_frames_reach_the_pty() -> anyhow::Result<()> {
    let sshd = TestSshd::start().await?;
    let relay = relay_with(&sshd, "").await?;
    let (mut client, _) = open_shell(&relay, "?rows=30&cols=90").await?;
    client.type_line("stty size").await?;
    client.read_until("30 90").await?;
    client
        .send(&ClientFrame::Resize(TermSize {
            rows: 40,
            cols: 100,
        }))
        .await?;
    client.type_line("stty size").await?;
    client.read_until("40 100").await?;
    // The classic named form works too.
    client
        .send_text(r#"{"resize": {"rows": 12, "cols": 34}}"#)
        .await?;
    client.type_line("stty size").await?;
    client.read_until("12 34").await?;

    // A literal classic SSH front end sends [cols, rows]; resize_order=cols_rows reads it
    // so, and the named form stays unambiguous.
    let (mut classic, _) = open_shell(&relay, "?rows=30&cols=90&resize_order=cols_rows").await?;
    classic.send_text(r#"{"resize": [110, 33]}"#).await?;
    classic.type_line("stty size").await?;
    classic.read_until("33 110").await?;
    classic
        .send_text(r#"{"resize": {"rows": 21, "cols": 43}}"#)
        .await?;
    classic.type_line("stty size").await?;
    classic.read_until("21 43").await?;
    Ok(())
}

#[tokio::test]
async fn failures_to_connect_close_with_clear_reasons() -> anyhow::Result<()> {
    let sshd = TestSshd::start().await?;
    let password = sshd.write_file("wrong-password", "not-the-password\n")?;
    let empty_known_hosts = sshd.write_file("empty_known_hosts", "")?;
    let closed_port = opsdeck_tests::net::free_port()?;
    let hosts = format!(
        "[[ssh_hosts]]\nid = \"badpw\"\naddress = \"127.0.0.1\"\nport = {p}\nusername = \"{u}\"\npassword_file = \"{pw}\"\nknown_hosts_file = \"{kh}\"\n\
         [[ssh_hosts]]\nid = \"down\"\naddress = \"127.0.0.1\"\nport = {closed_port}\nusername = \"{u}\"\nprivate_key_file = \"{key}\"\nknown_hosts_file = \"{kh}\"\n\
         [[ssh_hosts]]\nid = \"mitm\"\naddress = \"127.0.0.1\"\nport = {p}\nusername = \"{u}\"\nprivate_key_file = \"{key}\"\nknown_hosts_file = \"{wrong}\"\n\
         [[ssh_hosts]]\nid = \"unknown\"\naddress = \"127.0.0.1\"\nport = {p}\nusername = \"{u}\"\nprivate_key_file = \"{key}\"\nknown_hosts_file = \"{empty}\"\n",
        p = sshd.port,
        u = sshd.user,
        pw = password.display(),
        kh = sshd.known_hosts()?.display(),
        key = sshd.client_key().display(),
        wrong = sshd.wrong_known_hosts()?.display(),
        empty = empty_known_hosts.display(),
    );
    let relay = relay_with(&sshd, "").await?;
    drop(relay);
    let config = format!("{}\n{GRANTS}\n{hosts}", users_toml());
    let relay = TestRelay::start(&config).await?;
    for (host, expected) in [
        ("badpw", "refused the credentials"),
        ("down", "cannot reach"),
        ("mitm", "HOST KEY MISMATCH"),
        ("unknown", "is not in"),
    ] {
        let mut client = relay.connect("alice", &format!("/ws/ssh/{host}")).await?;
        let (code, reason, _) = client.read_until_closed().await?;
        assert_eq!(code, 4502, "{host}: {reason}");
        assert!(reason.contains(expected), "{host}: {reason}");
    }
    Ok(())
}

#[tokio::test]
async fn reconnect_within_grace_replays_missed_output_exactly_once() -> anyhow::Result<()> {
    let sshd = TestSshd::start().await?;
    let relay = relay_with(&sshd, "").await?;
    let (mut client, session) = open_shell(&relay, "").await?;
    client.type_line("echo before-$((1+1))").await?;
    client.read_until("before-2").await?;
    let mut seen = client.output.clone();
    // The command runs while nobody is connected.
    client.type_line("echo missed-$((40+2))").await?;
    let position = client.received;
    client.drop_connection();

    let path = format!("/ws/ssh/box?session={session}&position={position}");
    let mut client = relay.connect("alice", &path).await?;
    let (resumed_session, resumed_at, resumed) = client.connected().await?;
    assert_eq!(resumed_session, session);
    assert_eq!(resumed_at, Position::count(position));
    assert!(resumed);
    client.read_until("missed-42").await?;
    client.type_line("echo after-$((2+1))").await?;
    client.read_until("after-3").await?;
    seen.extend_from_slice(&client.output);
    assert_eq!(count(&seen, b"before-2"), 1, "output was replayed twice");
    assert_eq!(
        count(&seen, b"missed-42"),
        1,
        "missed output was not replayed exactly once"
    );
    assert_eq!(count(&seen, b"after-3"), 1);
    Ok(())
}

#[tokio::test]
async fn malformed_frames_get_error_frames_and_the_session_goes_on() -> anyhow::Result<()> {
    let sshd = TestSshd::start().await?;
    let relay = relay_with(&sshd, "").await?;
    let (mut client, _) = open_shell(&relay, "").await?;
    let oversized = format!("{{\"data\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let bad: [(&str, ErrorCode); 6] = [
        ("{not json", ErrorCode::BadFrame),
        (r#"{"launch": "missiles"}"#, ErrorCode::BadFrame),
        (r#"{"resize": [0, 80]}"#, ErrorCode::BadFrame),
        (r#"{"resize": [24, 1001]}"#, ErrorCode::BadFrame),
        (
            r#"{"action": "message", "data": {"message": "hi"}}"#,
            ErrorCode::NotAccepted,
        ),
        (&oversized, ErrorCode::TooLarge),
    ];
    for (frame, expected) in bad {
        client.send_text(frame).await?;
        match client.next_frame().await? {
            StreamEvent::Error { code, message, .. } => {
                assert_eq!(code, expected, "{message}");
                assert!(!message.is_empty());
            }
            other => panic!("expected an error frame for {:.40}, got {other:?}", frame),
        }
    }
    client.type_line("echo still-$((1+1))").await?;
    client.read_until("still-2").await?;
    Ok(())
}

#[tokio::test]
async fn invalid_utf8_text_closes_with_a_reason_and_the_session_survives() -> anyhow::Result<()> {
    let sshd = TestSshd::start().await?;
    let relay = relay_with(&sshd, "").await?;
    let (mut client, session) = open_shell(&relay, "").await?;
    client.type_line("echo ready-$((1+1))").await?;
    client.read_until("ready-2").await?;
    let position = client.received;
    client.send_invalid_utf8_text().await?;
    let (code, reason, _) = client.read_until_closed().await?;
    assert_eq!(code, 4400, "{reason}");
    assert!(reason.contains("UTF-8"), "{reason}");
    let path = format!("/ws/ssh/box?session={session}&position={position}");
    let mut client = relay.connect("alice", &path).await?;
    assert!(client.connected().await?.2, "the session did not survive");
    client.type_line("echo alive-$((1+1))").await?;
    client.read_until("alive-2").await?;
    Ok(())
}

#[tokio::test]
async fn a_frame_beyond_four_times_the_limit_closes_with_1009_and_the_session_survives()
-> anyhow::Result<()> {
    let sshd = TestSshd::start().await?;
    let relay = relay_with(&sshd, "[limits]\nmax_frame_bytes = 1024\n").await?;
    let (mut client, session) = open_shell(&relay, "").await?;
    client.type_line("echo ready-$((1+1))").await?;
    client.read_until("ready-2").await?;
    let position = client.received;
    client
        .send_text(&format!("{{\"data\": \"{}\"}}", "x".repeat(8 * 1024)))
        .await?;
    let (code, reason, _) = client.read_until_closed().await?;
    assert_eq!(code, 1009, "{reason}");
    assert!(reason.contains("refused"), "{reason}");
    let path = format!("/ws/ssh/box?session={session}&position={position}");
    let mut client = relay.connect("alice", &path).await?;
    assert!(client.connected().await?.2, "the session did not survive");
    client.type_line("echo alive-$((1+1))").await?;
    client.read_until("alive-2").await?;
    Ok(())
}

#[tokio::test]
async fn a_token_that_expires_during_the_session_ends_it_with_4419() -> anyhow::Result<()> {
    let sshd = TestSshd::start().await?;
    let relay = relay_with(&sshd, "").await?;
    let token = relay.token_for("alice", 2);
    let mut client = WsClient::connect(&relay.ws_url("/ws/ssh/box"), Some(&token), None).await?;
    client.connected().await?;
    let (code, reason, _) = client.read_until_closed().await?;
    assert_eq!(code, 4419, "{reason}");
    Ok(())
}

#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_dropped_into_the_grace_period() -> anyhow::Result<()>
{
    let sshd = TestSshd::start().await?;
    let relay = relay_with(
        &sshd,
        "[keepalive]\nping_interval = \"1s\"\npeer_timeout = \"2s\"\n",
    )
    .await?;
    let (mut client, session) = open_shell(&relay, "").await?;
    let position = client.received;
    let (code, reason) = client.play_dead_until_closed().await?;
    assert_eq!(code, 4408, "{reason}");
    let path = format!("/ws/ssh/box?session={session}&position={position}");
    let mut client = relay.connect("alice", &path).await?;
    let (_, _, resumed) = client.connected().await?;
    assert!(resumed, "the session did not enter its grace period");
    client.type_line("echo back-$((1+1))").await?;
    client.read_until("back-2").await?;
    Ok(())
}

#[tokio::test]
async fn a_normal_close_ends_the_session_and_it_cannot_be_resumed() -> anyhow::Result<()> {
    let sshd = TestSshd::start().await?;
    let relay = relay_with(&sshd, "").await?;
    let (client, session) = open_shell(&relay, "").await?;
    client.close_normally().await?;
    assert_eq!(relay.relay().terminal_sessions(), 0);
    let mut client = relay
        .connect(
            "alice",
            &format!("/ws/ssh/box?session={session}&position=0"),
        )
        .await?;
    let (code, reason, _) = client.read_until_closed().await?;
    assert_eq!(code, 4410, "{reason}");
    Ok(())
}

#[tokio::test]
async fn another_user_cannot_resume_a_session() -> anyhow::Result<()> {
    let sshd = TestSshd::start().await?;
    let relay = relay_with(&sshd, "[[grants]]\nusers = [\"bob\"]\nssh = [\"box\"]\n").await?;
    let (_alice, session) = open_shell(&relay, "").await?;
    let mut bob = relay
        .connect("bob", &format!("/ws/ssh/box?session={session}&position=0"))
        .await?;
    let (code, reason, _) = bob.read_until_closed().await?;
    assert_eq!(code, 4403, "{reason}");
    Ok(())
}

#[tokio::test]
async fn a_second_connection_takes_the_session_over() -> anyhow::Result<()> {
    let sshd = TestSshd::start().await?;
    let relay = relay_with(&sshd, "").await?;
    let (mut first, session) = open_shell(&relay, "").await?;
    let mut second = relay
        .connect(
            "alice",
            &format!("/ws/ssh/box?session={session}&position=0"),
        )
        .await?;
    assert!(second.connected().await?.2);
    let (code, _, _) = first.read_until_closed().await?;
    assert_eq!(code, 4409);
    second.type_line("echo mine-$((1+1))").await?;
    second.read_until("mine-2").await?;
    Ok(())
}

#[tokio::test]
async fn a_browser_that_does_not_read_stalls_the_shell_and_loses_nothing() -> anyhow::Result<()> {
    let sshd = TestSshd::start().await?;
    let relay = relay_with(&sshd, "[limits]\nterminal_buffer_bytes = 131072\n").await?;
    let (mut client, _) = open_shell(&relay, "").await?;
    // 8 MiB of zeros as base64 (11 MB of output) that the client does not read for now.
    client.type_bulk_zeros().await?;
    relay.relay().wait_until_a_terminal_stalls().await;
    // Reading again drains the rest: nothing was lost to the backpressure.
    client.read_until("DONE-2").await?;
    client.assert_bulk_zeros_arrived();
    Ok(())
}

#[tokio::test]
async fn withdrawing_the_grant_closes_open_sessions_with_4430() -> anyhow::Result<()> {
    let sshd = TestSshd::start().await?;
    let keepalive = "[keepalive]\nping_interval = \"1s\"\npeer_timeout = \"5s\"\n";
    let relay = relay_with(&sshd, keepalive).await?;
    let (mut client, _) = open_shell(&relay, "").await?;
    // The new config keeps the host but grants it to nobody (what SIGHUP would load).
    let without_grant = format!("{keepalive}\n{}\n{}", users_toml(), sshd.host_toml("box")?);
    relay
        .relay()
        .reload(relay::Config::from_toml(&without_grant, "reloaded")?)?;
    let (code, reason, _) = client.read_until_closed().await?;
    assert_eq!(code, 4430, "{reason}");
    Ok(())
}

#[tokio::test]
async fn a_flow_controlled_terminal_sends_one_window_until_acknowledged() -> anyhow::Result<()> {
    const ACK_EVERY: u64 = FLOW_WINDOW / 4;
    let sshd = TestSshd::start().await?;
    let relay = relay_with(&sshd, "[limits]\nterminal_buffer_bytes = 4194304\n").await?;
    let (mut client, _) = open_shell(&relay, "?flow=1").await?;
    client.type_bulk_zeros().await?;
    // The relay holds more than the window: only the missing acks hold it back.
    relay.relay().wait_until_a_terminal_stalls().await;
    while client.received < FLOW_WINDOW {
        if let Event::Closed { code, reason } = client.next_event().await? {
            anyhow::bail!("closed ({code}: {reason}) within the first window");
        }
    }
    assert_eq!(client.received, FLOW_WINDOW, "output beyond the window");
    // The pump answers a bad frame at once; with the window full, no output comes first.
    client.send_text("{}").await?;
    match client.next_event().await? {
        Event::Frame(ServerFrame::Event(StreamEvent::Error { code, .. })) => {
            assert_eq!(code, ErrorCode::BadFrame);
        }
        other => anyhow::bail!("expected the error frame, got {other:?}"),
    }
    assert_eq!(client.received, FLOW_WINDOW);

    // Acknowledging as it displays, the client gets everything.
    let mut acked = 0;
    while !contains(
        &client.output[client.output.len().saturating_sub(64)..],
        b"DONE-2",
    ) {
        if client.received - acked >= ACK_EVERY {
            acked = client.received;
            client.send(&ClientFrame::Ack(acked)).await?;
        }
        if let Event::Closed { code, reason } = client.next_event().await? {
            anyhow::bail!("closed ({code}: {reason}) after {acked} acknowledged bytes");
        }
    }
    client.assert_bulk_zeros_arrived();
    Ok(())
}

#[tokio::test]
async fn a_bad_flow_parameter_is_refused_with_what_to_send() -> anyhow::Result<()> {
    let sshd = TestSshd::start().await?;
    let relay = relay_with(&sshd, "").await?;
    let mut client = relay.connect("alice", "/ws/ssh/box?flow=yes").await?;
    let (code, reason, _) = client.read_until_closed().await?;
    assert_eq!(code, 4400, "{reason}");
    assert!(reason.contains("flow=1"), "{reason}");
    Ok(())
}

// Issue 11: a flow-controlled terminal dropped with a window in flight resumes byte-exact.
#[tokio::test]
async fn a_flow_controlled_resume_with_a_window_in_flight_is_byte_exact() -> anyhow::Result<()> {
    let sshd = TestSshd::start().await?;
    let relay = relay_with(&sshd, "").await?;
    opsdeck_tests::resume::flow_controlled_resume_is_byte_exact(relay.relay(), |query| {
        let relay = &relay;
        async move { relay.connect("alice", &format!("/ws/ssh/box{query}")).await }
    })
    .await
}
