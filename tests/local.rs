//! Local shells end to end: a program in a PTY on the relay's own machine, the relay, and
//! a WebSocket client — no sshd anywhere.
//!
//! The terminal contract (`opsdeck_tests::terminal_contract`, also run for SSH and pod
//! exec) and what only local shells have: the Unix user they run as, a command that does
//! not exist, a user that does not exist.

use common::api::Targets;
use common::server::StreamEvent;
use futures_util::future::BoxFuture;
use opsdeck_tests::client::WsClient;
use opsdeck_tests::relay::{TestRelay, users_toml};
use opsdeck_tests::terminal_contract as contract;

/// Alice (group `ops`) may open every local shell; bob none unless a test grants it.
const GRANTS: &str = r#"
[[grants]]
groups = ["ops"]
local = ["*"]
"#;

/// The shell every contract scenario opens: bash without start-up files, so that the
/// prompt and the environment are the same on every machine.
const SHELL: &str = r#"
[[local_shells]]
id = "sh"
label = "Test shell"
command = "/bin/bash"
args = ["--norc", "--noprofile"]
"#;

/// A relay with `extra` (tables such as `[limits]`), the grants and the shell `sh`.
async fn start(extra: &str) -> anyhow::Result<TestRelay> {
    let config = format!("{extra}\n{}\n{GRANTS}\n{SHELL}", users_toml());
    TestRelay::start(&config).await
}

/// Opens `/ws/local/sh{query}` as `user`.
fn terminal<'a>(
    relay: &'a TestRelay,
    user: &'static str,
) -> impl Fn(String) -> BoxFuture<'a, anyhow::Result<WsClient>> + 'a {
    move |query| Box::pin(async move { relay.connect(user, &format!("/ws/local/sh{query}")).await })
}

// The terminal contract.

#[tokio::test]
async fn shell_runs_commands_and_reports_the_exit_status() -> anyhow::Result<()> {
    let relay = start("").await?;
    contract::shell_runs_commands_and_reports_the_exit_status(terminal(&relay, "alice")).await
}

#[tokio::test]
async fn multibyte_text_split_across_frames_arrives_intact() -> anyhow::Result<()> {
    let relay = start("").await?;
    contract::multibyte_text_split_across_frames_arrives_intact(terminal(&relay, "alice")).await
}

#[tokio::test]
async fn initial_size_and_resize_frames_reach_the_pty() -> anyhow::Result<()> {
    let relay = start("").await?;
    contract::initial_size_and_resize_frames_reach_the_pty(terminal(&relay, "alice")).await
}

#[tokio::test]
async fn a_browser_that_does_not_read_stalls_the_shell_and_loses_nothing() -> anyhow::Result<()> {
    let relay = start(contract::SMALL_RING).await?;
    contract::a_browser_that_does_not_read_stalls_the_shell_and_loses_nothing(
        relay.relay(),
        terminal(&relay, "alice"),
    )
    .await
}

#[tokio::test]
async fn a_normal_close_ends_the_shell_and_it_cannot_be_resumed() -> anyhow::Result<()> {
    let relay = start("").await?;
    contract::a_normal_close_ends_the_shell_and_it_cannot_be_resumed(
        relay.relay(),
        terminal(&relay, "alice"),
    )
    .await
}

#[tokio::test]
async fn reconnect_within_grace_resumes_the_same_shell() -> anyhow::Result<()> {
    let relay = start("").await?;
    contract::reconnect_within_grace_resumes_the_same_shell(terminal(&relay, "alice")).await
}

#[tokio::test]
async fn another_user_cannot_resume_a_session() -> anyhow::Result<()> {
    let bob_may_open_sh = r#"
[[grants]]
users = ["bob"]
local = ["sh"]
"#;
    let relay = start(bob_may_open_sh).await?;
    contract::another_user_cannot_resume_a_session(
        terminal(&relay, "alice"),
        terminal(&relay, "bob"),
    )
    .await
}

#[tokio::test]
async fn resuming_beyond_the_end_is_refused_and_the_session_survives() -> anyhow::Result<()> {
    let relay = start("").await?;
    contract::resuming_beyond_the_end_is_refused_and_the_session_survives(terminal(&relay, "alice"))
        .await
}

#[tokio::test]
async fn a_second_connection_takes_the_session_over() -> anyhow::Result<()> {
    let relay = start("").await?;
    contract::a_second_connection_takes_the_session_over(terminal(&relay, "alice")).await
}

#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_dropped_into_the_grace_period() -> anyhow::Result<()>
{
    let relay = start(contract::FAST_PINGS).await?;
    contract::a_peer_that_stops_answering_pings_is_dropped_into_the_grace_period(terminal(
        &relay, "alice",
    ))
    .await
}

#[tokio::test]
async fn malformed_frames_get_error_frames_and_the_session_goes_on() -> anyhow::Result<()> {
    let relay = start("").await?;
    contract::malformed_frames_get_error_frames_and_the_session_goes_on(terminal(&relay, "alice"))
        .await
}

#[tokio::test]
async fn invalid_utf8_text_closes_with_a_reason_and_the_session_survives() -> anyhow::Result<()> {
    let relay = start("").await?;
    contract::invalid_utf8_text_closes_with_a_reason_and_the_session_survives(terminal(
        &relay, "alice",
    ))
    .await
}

#[tokio::test]
async fn a_frame_beyond_four_times_the_limit_closes_with_1009_and_the_session_survives()
-> anyhow::Result<()> {
    let relay = start(contract::SMALL_FRAMES).await?;
    contract::a_frame_beyond_four_times_the_limit_closes_with_1009_and_the_session_survives(
        terminal(&relay, "alice"),
    )
    .await
}

#[tokio::test]
async fn a_flow_controlled_terminal_sends_one_window_until_acknowledged() -> anyhow::Result<()> {
    let relay = start(contract::BIG_RING).await?;
    contract::a_flow_controlled_terminal_sends_one_window_until_acknowledged(
        relay.relay(),
        terminal(&relay, "alice"),
    )
    .await
}

#[tokio::test]
async fn a_bad_flow_parameter_is_refused_with_what_to_send() -> anyhow::Result<()> {
    let relay = start("").await?;
    contract::a_bad_flow_parameter_is_refused_with_what_to_send(terminal(&relay, "alice")).await
}

#[tokio::test]
async fn a_flow_controlled_resume_with_a_window_in_flight_is_byte_exact() -> anyhow::Result<()> {
    let relay = start("").await?;
    contract::flow_controlled_resume_is_byte_exact(relay.relay(), terminal(&relay, "alice")).await
}

#[tokio::test]
async fn a_classic_resume_from_a_trimmed_position_gets_a_gap_then_continues() -> anyhow::Result<()>
{
    let relay = start(contract::SMALL_RING).await?;
    contract::a_classic_resume_from_a_trimmed_position_gets_a_gap_then_continues(terminal(
        &relay, "alice",
    ))
    .await
}

#[tokio::test]
async fn a_session_left_alone_ends_after_the_grace_period() -> anyhow::Result<()> {
    let relay = start(contract::SHORT_GRACE).await?;
    contract::a_session_left_alone_ends_after_the_grace_period(
        relay.relay(),
        terminal(&relay, "alice"),
    )
    .await
}

#[tokio::test]
async fn a_session_whose_program_exited_cannot_be_resumed() -> anyhow::Result<()> {
    let relay = start("").await?;
    contract::a_session_whose_program_exited_cannot_be_resumed(terminal(&relay, "alice")).await
}

#[tokio::test]
async fn binary_frames_are_keystrokes() -> anyhow::Result<()> {
    let relay = start("").await?;
    contract::binary_frames_are_keystrokes(terminal(&relay, "alice")).await
}

#[tokio::test]
async fn a_terminal_without_a_size_is_24_by_80() -> anyhow::Result<()> {
    let relay = start("").await?;
    contract::a_terminal_without_a_size_is_24_by_80(terminal(&relay, "alice")).await
}

// Local shells only.

/// The contract's killed-shell scenario, and the close reason naming the signal.
#[tokio::test]
async fn a_program_killed_by_a_signal_reports_the_signal_by_name() -> anyhow::Result<()> {
    let relay = start("").await?;
    let (mut client, _) = contract::open_new(&terminal(&relay, "alice"), "").await?;
    client.type_line("kill -KILL $$").await?;
    let (code, reason, frames) = client.read_until_closed().await?;
    assert!(
        frames.contains(&StreamEvent::Exit {
            status: None,
            signal: Some("KILL".into())
        }),
        "{frames:?}"
    );
    assert_eq!(code, 1000, "{reason}");
    assert!(reason.contains("killed by KILL"), "{reason}");
    Ok(())
}

#[tokio::test]
async fn a_command_that_does_not_exist_closes_with_4503_naming_it() -> anyhow::Result<()> {
    let broken = r#"
[[local_shells]]
id = "broken"
command = "/no/such/program"

[[local_shells]]
id = "nowhere"
command = "/bin/sh"
working_dir = "/no/such/folder"
"#;
    let relay = start(broken).await?;
    for (shell, expected) in [
        ("broken", "/no/such/program"),
        ("nowhere", "/no/such/folder does not exist"),
    ] {
        let mut client = relay
            .connect("alice", &format!("/ws/local/{shell}"))
            .await?;
        let (code, reason, _) = client.read_until_closed().await?;
        // 4503: the browser stops and offers a retry instead of reconnecting in a loop.
        assert_eq!(code, 4503, "{shell}: {reason}");
        assert!(reason.contains(expected), "{shell}: {reason}");
    }
    assert_eq!(relay.relay().terminal_sessions(), 0);
    Ok(())
}

#[tokio::test]
async fn local_shells_are_denied_unless_granted_and_listed_only_to_those_granted()
-> anyhow::Result<()> {
    let relay = start("").await?;
    let mut bob = relay.connect("bob", "/ws/local/sh").await?;
    let (code, reason, _) = bob.read_until_closed().await?;
    assert_eq!(code, 4403, "{reason}");
    let mut unknown = relay.connect("alice", "/ws/local/nope").await?;
    let (code, reason, _) = unknown.read_until_closed().await?;
    assert_eq!(code, 4404, "{reason}");

    let targets = |user: &'static str| {
        let relay = &relay;
        async move {
            let answer = reqwest::Client::new()
                .get(relay.http_url("/api/targets"))
                .header("cookie", format!("X-Token={}", relay.token(user)))
                .send()
                .await?;
            anyhow::ensure!(answer.status() == 200, "{}", answer.status());
            Ok::<Targets, anyhow::Error>(answer.json().await?)
        }
    };
    let alice = targets("alice").await?;
    assert_eq!(alice.local.len(), 1);
    assert_eq!(alice.local[0].id, "sh");
    assert_eq!(alice.local[0].label, "Test shell");
    assert!(targets("bob").await?.local.is_empty());
    Ok(())
}

#[test]
fn a_unix_user_that_does_not_exist_is_refused_at_config_load() {
    let config = format!(
        "{}\n{GRANTS}\n[[local_shells]]\nid = \"ghost\"\nuser = \"no-such-user-opsdeck\"\n",
        users_toml()
    );
    let refused = relay::Config::from_toml(&config, "test config").unwrap_err();
    let text = refused.to_string();
    assert!(
        text.contains("the Unix user \"no-such-user-opsdeck\" does not exist"),
        "{text}"
    );
}

/// Whether these tests run as root (only root can start a program as another user).
fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// As root, this proves that the shell runs as the configured user (`nobody`: its uid,
/// its name, its home in the environment). Not as root, a relay cannot switch users, so
/// this proves the other half of the rule instead: a config naming another user is refused
/// at load, saying why. Either way the test asserts something; it never skips.
#[tokio::test]
async fn the_shell_runs_as_the_configured_user_or_the_config_is_refused_when_not_root()
-> anyhow::Result<()> {
    let as_nobody = r#"
[[local_shells]]
id = "nobody"
command = "/bin/sh"
user = "nobody"
"#;
    if !running_as_root() {
        let config = format!("{}\n{GRANTS}\n{as_nobody}", users_toml());
        let refused = relay::Config::from_toml(&config, "test config").unwrap_err();
        let text = refused.to_string();
        assert!(text.contains("not root"), "{text}");
        return Ok(());
    }
    let relay = start(as_nobody).await?;
    let mut client = relay.connect("alice", "/ws/local/nobody").await?;
    client.connected().await?;
    let nobody = std::process::Command::new("id")
        .args(["-u", "nobody"])
        .output()?;
    let uid = String::from_utf8(nobody.stdout)?.trim().to_owned();
    assert_ne!(uid, "0");
    // The marker is computed, so that the echoed command line does not contain it.
    client
        .type_line("echo \"as-$(id -u)-$(id -un)-$USER-$((6*7))\"")
        .await?;
    client
        .read_until(&format!("as-{uid}-nobody-nobody-42"))
        .await?;
    // Its working folder defaults to its home, or `/` when that is no folder.
    client.type_line("echo \"in-$(pwd)-$((6*7))\"").await?;
    let home = std::process::Command::new("sh")
        .args(["-c", "getent passwd nobody | cut -d: -f6"])
        .output()?;
    let home = String::from_utf8(home.stdout)?.trim().to_owned();
    let expected = if std::path::Path::new(&home).is_dir() {
        home
    } else {
        "/".into()
    };
    client.read_until(&format!("in-{expected}-42")).await?;
    Ok(())
}

/// `GET /api/sessions` as `user`.
async fn sessions_of(
    relay: &TestRelay,
    user: &str,
) -> anyhow::Result<Vec<common::api::TerminalSessionInfo>> {
    let answer = reqwest::Client::new()
        .get(relay.http_url("/api/sessions"))
        .header("cookie", format!("X-Token={}", relay.token(user)))
        .send()
        .await?;
    anyhow::ensure!(answer.status() == 200, "{}", answer.status());
    Ok(answer.json().await?)
}

#[tokio::test]
async fn api_sessions_lists_the_users_live_terminals_with_their_state() -> anyhow::Result<()> {
    let relay = start("").await?;
    let open = terminal(&relay, "alice");
    let (mut client, session) = contract::open_new(&open, "?rows=30&cols=90").await?;
    client
        .send(&common::ClientFrame::Resize(common::TermSize {
            rows: 40,
            cols: 100,
        }))
        .await?;
    client.type_line("echo up-$((6*7))").await?;
    client.read_until("up-42").await?;

    let listed = sessions_of(&relay, "alice").await?;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let info = &listed[0];
    assert_eq!(info.session, session);
    assert_eq!(info.target, "local:sh");
    assert!(info.attached);
    assert_eq!(
        info.size,
        common::TermSize {
            rows: 40,
            cols: 100
        }
    );
    assert!(
        info.started > 0 && info.last_active >= info.started,
        "{info:?}"
    );
    // Nobody else sees it; without a login there is no list.
    assert!(sessions_of(&relay, "bob").await?.is_empty());
    let anonymous = reqwest::get(relay.http_url("/api/sessions")).await?;
    assert_eq!(anonymous.status(), 401);

    // Dropped, it waits in its grace period: still listed, no longer attached. (The
    // relay notices the drop when the socket ends; the list is asked until it has.)
    client.drop_connection();
    let mut waiting = sessions_of(&relay, "alice").await?;
    for _ in 0..500 {
        if waiting.first().is_some_and(|s| !s.attached) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        waiting = sessions_of(&relay, "alice").await?;
    }
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert!(!waiting[0].attached, "{waiting:?}");
    assert_eq!(waiting[0].session, session);
    Ok(())
}

/// `DELETE /api/sessions/{id}` as `user`: the status.
async fn end_session(relay: &TestRelay, user: &str, id: &str) -> anyhow::Result<u16> {
    let answer = reqwest::Client::new()
        .delete(relay.http_url(&format!("/api/sessions/{id}")))
        .header("cookie", format!("X-Token={}", relay.token(user)))
        .send()
        .await?;
    Ok(answer.status().as_u16())
}

#[tokio::test]
async fn a_session_is_ended_through_the_api_by_its_owner_only() -> anyhow::Result<()> {
    let relay = start("").await?;
    let open = terminal(&relay, "alice");
    let (mut client, session) = contract::open_new(&open, "?rows=24&cols=80").await?;
    client.type_line("echo up-$((6*7))").await?;
    client.read_until("up-42").await?;

    // Another user's session is not theirs to end, nor even to know of: 404, and it lives on.
    assert_eq!(end_session(&relay, "bob", &session).await?, 404);
    assert_eq!(end_session(&relay, "alice", "no-such-session").await?, 404);
    client.type_line("echo still-$((6*7))").await?;
    client.read_until("still-42").await?;

    assert_eq!(end_session(&relay, "alice", &session).await?, 204);
    let (code, reason, _) = client.read_until_closed().await?;
    assert_eq!((code, reason.as_str()), (1000, "the session was closed"));
    assert!(sessions_of(&relay, "alice").await?.is_empty());
    // It cannot be resumed, and ending it again finds nothing.
    let mut again = open(format!("?session={session}&position=0")).await?;
    let (code, _, _) = again.read_until_closed().await?;
    assert_eq!(code, 4410);
    assert_eq!(end_session(&relay, "alice", &session).await?, 404);
    Ok(())
}
