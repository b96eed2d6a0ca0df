//! SSH terminals end to end: a real sshd, the relay, and a WebSocket client.
//!
//! The terminal contract (`opsdeck_tests::terminal_contract`, also run for pod exec) and
//! what only SSH has: host keys, credentials, unreachable hosts.

use common::server::{ServerFrame, StreamEvent};
use futures_util::future::BoxFuture;
use opsdeck_tests::client::{Event, WsClient};
use opsdeck_tests::relay::{TestRelay, users_toml};
use opsdeck_tests::sshd::TestSshd;
use opsdeck_tests::terminal_contract as contract;

/// Alice (group `ops`) may open every host.
const GRANTS: &str = r#"
[[grants]]
groups = ["ops"]
ssh = ["*"]
"#;

/// A fresh sshd and a relay with `extra` (tables such as `[limits]`) and the host `box`.
async fn start(extra: &str) -> anyhow::Result<(TestSshd, TestRelay)> {
    let sshd = TestSshd::start().await?;
    let config = format!(
        "{extra}\n{}\n{GRANTS}\n{}",
        users_toml(),
        sshd.host_toml("box")?
    );
    let relay = TestRelay::start(&config).await?;
    Ok((sshd, relay))
}

/// Opens `/ws/ssh/box{query}` as `user`.
fn terminal<'a>(
    relay: &'a TestRelay,
    user: &'static str,
) -> impl Fn(String) -> BoxFuture<'a, anyhow::Result<WsClient>> + 'a {
    move |query| Box::pin(async move { relay.connect(user, &format!("/ws/ssh/box{query}")).await })
}

// The terminal contract.

#[tokio::test]
async fn shell_runs_commands_and_reports_the_exit_status() -> anyhow::Result<()> {
    let (_sshd, relay) = start("").await?;
    contract::shell_runs_commands_and_reports_the_exit_status(terminal(&relay, "alice")).await
}

#[tokio::test]
async fn multibyte_text_split_across_frames_arrives_intact() -> anyhow::Result<()> {
    let (_sshd, relay) = start("").await?;
    contract::multibyte_text_split_across_frames_arrives_intact(terminal(&relay, "alice")).await
}

#[tokio::test]
async fn initial_size_and_resize_frames_reach_the_pty() -> anyhow::Result<()> {
    let (_sshd, relay) = start("").await?;
    contract::initial_size_and_resize_frames_reach_the_pty(terminal(&relay, "alice")).await
}

#[tokio::test]
async fn a_browser_that_does_not_read_stalls_the_shell_and_loses_nothing() -> anyhow::Result<()> {
    let (_sshd, relay) = start(contract::SMALL_RING).await?;
    contract::a_browser_that_does_not_read_stalls_the_shell_and_loses_nothing(
        relay.relay(),
        terminal(&relay, "alice"),
    )
    .await
}

#[tokio::test]
async fn a_normal_close_ends_the_shell_and_it_cannot_be_resumed() -> anyhow::Result<()> {
    let (_sshd, relay) = start("").await?;
    contract::a_normal_close_ends_the_shell_and_it_cannot_be_resumed(
        relay.relay(),
        terminal(&relay, "alice"),
    )
    .await
}

#[tokio::test]
async fn reconnect_within_grace_resumes_the_same_shell() -> anyhow::Result<()> {
    let (_sshd, relay) = start("").await?;
    contract::reconnect_within_grace_resumes_the_same_shell(terminal(&relay, "alice")).await
}

#[tokio::test]
async fn another_user_cannot_resume_a_session() -> anyhow::Result<()> {
    let bob_may_open_box = r#"
[[grants]]
users = ["bob"]
ssh = ["box"]
"#;
    let (_sshd, relay) = start(bob_may_open_box).await?;
    contract::another_user_cannot_resume_a_session(
        terminal(&relay, "alice"),
        terminal(&relay, "bob"),
    )
    .await
}

#[tokio::test]
async fn resuming_beyond_the_end_is_refused_and_the_session_survives() -> anyhow::Result<()> {
    let (_sshd, relay) = start("").await?;
    contract::resuming_beyond_the_end_is_refused_and_the_session_survives(terminal(&relay, "alice"))
        .await
}

#[tokio::test]
async fn a_second_connection_takes_the_session_over() -> anyhow::Result<()> {
    let (_sshd, relay) = start("").await?;
    contract::a_second_connection_takes_the_session_over(terminal(&relay, "alice")).await
}

#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_dropped_into_the_grace_period() -> anyhow::Result<()>
{
    let (_sshd, relay) = start(contract::FAST_PINGS).await?;
    contract::a_peer_that_stops_answering_pings_is_dropped_into_the_grace_period(terminal(
        &relay, "alice",
    ))
    .await
}

#[tokio::test]
async fn malformed_frames_get_error_frames_and_the_session_goes_on() -> anyhow::Result<()> {
    let (_sshd, relay) = start("").await?;
    contract::malformed_frames_get_error_frames_and_the_session_goes_on(terminal(&relay, "alice"))
        .await
}

#[tokio::test]
async fn invalid_utf8_text_closes_with_a_reason_and_the_session_survives() -> anyhow::Result<()> {
    let (_sshd, relay) = start("").await?;
    contract::invalid_utf8_text_closes_with_a_reason_and_the_session_survives(terminal(
        &relay, "alice",
    ))
    .await
}

#[tokio::test]
async fn a_frame_beyond_four_times_the_limit_closes_with_1009_and_the_session_survives()
-> anyhow::Result<()> {
    let (_sshd, relay) = start(contract::SMALL_FRAMES).await?;
    contract::a_frame_beyond_four_times_the_limit_closes_with_1009_and_the_session_survives(
        terminal(&relay, "alice"),
    )
    .await
}

#[tokio::test]
async fn a_flow_controlled_terminal_sends_one_window_until_acknowledged() -> anyhow::Result<()> {
    let (_sshd, relay) = start(contract::BIG_RING).await?;
    contract::a_flow_controlled_terminal_sends_one_window_until_acknowledged(
        relay.relay(),
        terminal(&relay, "alice"),
    )
    .await
}

#[tokio::test]
async fn a_bad_flow_parameter_is_refused_with_what_to_send() -> anyhow::Result<()> {
    let (_sshd, relay) = start("").await?;
    contract::a_bad_flow_parameter_is_refused_with_what_to_send(terminal(&relay, "alice")).await
}

// Issue 11: a flow-controlled terminal dropped with a window in flight resumes byte-exact.
#[tokio::test]
async fn a_flow_controlled_resume_with_a_window_in_flight_is_byte_exact() -> anyhow::Result<()> {
    let (_sshd, relay) = start("").await?;
    contract::flow_controlled_resume_is_byte_exact(relay.relay(), terminal(&relay, "alice")).await
}

#[tokio::test]
async fn a_classic_resume_from_a_trimmed_position_gets_a_gap_then_continues() -> anyhow::Result<()>
{
    let (_sshd, relay) = start(contract::SMALL_RING).await?;
    contract::a_classic_resume_from_a_trimmed_position_gets_a_gap_then_continues(terminal(
        &relay, "alice",
    ))
    .await
}

#[tokio::test]
async fn a_session_left_alone_ends_after_the_grace_period() -> anyhow::Result<()> {
    let (_sshd, relay) = start(contract::SHORT_GRACE).await?;
    contract::a_session_left_alone_ends_after_the_grace_period(
        relay.relay(),
        terminal(&relay, "alice"),
    )
    .await
}

#[tokio::test]
async fn a_session_whose_program_exited_cannot_be_resumed() -> anyhow::Result<()> {
    let (_sshd, relay) = start("").await?;
    contract::a_session_whose_program_exited_cannot_be_resumed(terminal(&relay, "alice")).await
}

#[tokio::test]
async fn a_killed_shell_reports_the_signal() -> anyhow::Result<()> {
    let (_sshd, relay) = start("").await?;
    let killed = StreamEvent::Exit {
        status: None,
        signal: Some("KILL".into()),
    };
    contract::a_killed_shell_reports_how_it_ended(terminal(&relay, "alice"), killed).await
}

#[tokio::test]
async fn binary_frames_are_keystrokes() -> anyhow::Result<()> {
    let (_sshd, relay) = start("").await?;
    contract::binary_frames_are_keystrokes(terminal(&relay, "alice")).await
}

#[tokio::test]
async fn a_terminal_without_a_size_is_24_by_80() -> anyhow::Result<()> {
    let (_sshd, relay) = start("").await?;
    contract::a_terminal_without_a_size_is_24_by_80(terminal(&relay, "alice")).await
}

// SSH only.

#[tokio::test]
async fn failures_to_connect_close_with_clear_reasons() -> anyhow::Result<()> {
    let sshd = TestSshd::start().await?;
    let password = sshd.write_file("wrong-password", "not-the-password\n")?;
    let empty_known_hosts = sshd.write_file("empty_known_hosts", "")?;
    // A port bound but not listening: connecting is refused, and while the socket is held
    // no other service can take the port.
    let closed = tokio::net::TcpSocket::new_v4()?;
    closed.bind(([127, 0, 0, 1], 0).into())?;
    let closed_port = closed.local_addr()?.port();
    let hosts = format!(
        r#"
[[ssh_hosts]]
id = "badpw"
address = "127.0.0.1"
port = {p}
username = "{u}"
password_file = "{pw}"
known_hosts_file = "{kh}"

[[ssh_hosts]]
id = "down"
address = "127.0.0.1"
port = {closed_port}
username = "{u}"
private_key_file = "{key}"
known_hosts_file = "{kh}"

[[ssh_hosts]]
id = "mitm"
address = "127.0.0.1"
port = {p}
username = "{u}"
private_key_file = "{key}"
known_hosts_file = "{wrong}"

[[ssh_hosts]]
id = "unknown"
address = "127.0.0.1"
port = {p}
username = "{u}"
private_key_file = "{key}"
known_hosts_file = "{empty}"
"#,
        p = sshd.port,
        u = sshd.user,
        pw = password.display(),
        kh = sshd.known_hosts()?.display(),
        key = sshd.client_key().display(),
        wrong = sshd.wrong_known_hosts()?.display(),
        empty = empty_known_hosts.display(),
    );
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
async fn a_token_that_expires_during_the_session_ends_it_with_4419() -> anyhow::Result<()> {
    let (_sshd, relay) = start("").await?;
    // The token must outlive the SSH handshake and expire during the session. On a machine
    // too slow for the first lifetime the token expires before `connected` (the open is
    // refused), and a longer one is tried.
    for ttl in [2, 4, 8, 16] {
        let token = relay.token_for("alice", ttl);
        let mut client =
            WsClient::connect(&relay.ws_url("/ws/ssh/box"), Some(&token), None).await?;
        match client.next_event().await? {
            Event::Frame(ServerFrame::Event(StreamEvent::Connected { .. })) => {
                let (code, reason, _) = client.read_until_closed().await?;
                assert_eq!(code, 4419, "{reason}");
                return Ok(());
            }
            Event::Closed {
                code: 4401 | 4419, ..
            } => {}
            other => anyhow::bail!("expected connected, got {other:?}"),
        }
    }
    anyhow::bail!("no token lived until `connected`")
}

#[tokio::test]
async fn withdrawing_the_grant_closes_open_sessions_with_4430() -> anyhow::Result<()> {
    let keepalive = r#"
[keepalive]
ping_interval = "1s"
peer_timeout = "5s"
"#;
    let (sshd, relay) = start(keepalive).await?;
    let (mut client, _) = contract::open_new(&terminal(&relay, "alice"), "").await?;
    // The new config keeps the host but grants it to nobody (what SIGHUP would load).
    let without_grant = format!("{keepalive}\n{}\n{}", users_toml(), sshd.host_toml("box")?);
    relay
        .relay()
        .reload(relay::Config::from_toml(&without_grant, "reloaded")?)?;
    let (code, reason, _) = client.read_until_closed().await?;
    assert_eq!(code, 4430, "{reason}");
    Ok(())
}
