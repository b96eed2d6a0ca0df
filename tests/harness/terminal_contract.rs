//! The terminal contract: scenarios every terminal backend must pass, run by each
//! backend's test file (`tests/ssh.rs`, `tests/k8s/exec.rs`) with its own way of opening
//! a terminal.
//!
//! Each scenario takes the running [`Relay`] (for its probes) and `open(query)`, which
//! opens the backend's terminal as `alice` with `query` (`""` or `"?rows=30&..."`)
//! appended to its path. Scenarios that need a config say so; the caller starts the relay
//! with it.

use std::future::Future;
use std::time::Duration;

use common::server::{ErrorCode, ServerFrame, StreamEvent};
use common::{ClientFrame, FLOW_WINDOW, Position, TermSize};
use relay::Relay;

use crate::client::{Connected, EVENT_TIMEOUT, Event, WsClient, contains, count};

/// `[limits]` for [`a_browser_that_does_not_read_stalls_the_shell_and_loses_nothing`] and
/// [`a_classic_resume_from_a_trimmed_position_gets_a_gap_then_continues`]: a ring small
/// enough that 11 MB of output stalls the shell (and 400 KB overflow it).
pub const SMALL_RING: &str = r#"
[limits]
terminal_buffer_bytes = 131072
"#;

/// The ring size [`SMALL_RING`] sets.
const SMALL_RING_BYTES: u64 = 131072;

/// `[limits]` for [`a_frame_beyond_four_times_the_limit_closes_with_1009_and_the_session_survives`].
pub const SMALL_FRAMES: &str = r#"
[limits]
max_frame_bytes = 1024
"#;

/// `[limits]` for [`a_flow_controlled_terminal_sends_one_window_until_acknowledged`]: a
/// ring that holds more than a window.
pub const BIG_RING: &str = r#"
[limits]
terminal_buffer_bytes = 4194304
"#;

/// `[sessions]` for [`a_session_left_alone_ends_after_the_grace_period`].
pub const SHORT_GRACE: &str = r#"
[sessions]
grace_period = "1s"
"#;

/// `[keepalive]` for [`a_peer_that_stops_answering_pings_is_dropped_into_the_grace_period`].
pub const FAST_PINGS: &str = r#"
[keepalive]
ping_interval = "1s"
peer_timeout = "2s"
"#;

/// Opens a new terminal and checks its `connected` frame; returns the session id.
pub async fn open_new<F, Fut>(open: &F, query: &str) -> anyhow::Result<(WsClient, String)>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = anyhow::Result<WsClient>>,
{
    let mut client = open(query.to_owned()).await?;
    let connected = client.connected().await?;
    assert_eq!(connected.position, Position::count(0));
    assert!(!connected.resumed);
    Ok((client, connected.session))
}

/// Resumes `session` at `position` and checks that it was resumed there.
async fn resume<F, Fut>(open: &F, session: &str, position: u64) -> anyhow::Result<WsClient>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = anyhow::Result<WsClient>>,
{
    let mut client = open(format!("?session={session}&position={position}")).await?;
    let connected = client.connected().await?;
    assert_eq!(
        connected,
        Connected {
            session: session.to_owned(),
            position: Position::count(position),
            resumed: true,
        },
        "the session was not resumed"
    );
    Ok(client)
}

pub async fn shell_runs_commands_and_reports_the_exit_status<F, Fut>(open: F) -> anyhow::Result<()>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = anyhow::Result<WsClient>>,
{
    let (mut client, _) = open_new(&open, "").await?;
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

pub async fn multibyte_text_split_across_frames_arrives_intact<F, Fut>(
    open: F,
) -> anyhow::Result<()>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = anyhow::Result<WsClient>>,
{
    let (mut client, _) = open_new(&open, "").await?;
    let unit = "你好😀";
    let repeat = 40_000;
    client
        .type_line(&format!(
            "python3 -c \"import sys; sys.stdout.write('{unit}'*{repeat}); print(); print('END'+'-MARK')\""
        ))
        .await?;
    client.read_until("END-MARK").await?;
    let text = String::from_utf8(client.output.clone())?;
    assert!(
        text.contains(&unit.repeat(repeat)),
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

/// Asks the shell for its size until it is `rows cols`. Pod exec sends keystrokes and
/// resizes on separate channels, in no fixed order between them, so a `stty size` typed
/// right after a resize may run before the resize reaches the pty.
async fn wait_for_size(client: &mut WsClient, rows: u16, cols: u16) -> anyhow::Result<()> {
    let expected = format!("{rows} {cols}\r\n");
    for attempt in 1..=100 {
        // The marker is computed, so that the echoed command line does not contain it.
        client
            .type_line(&format!("stty size; echo size-$((0+{attempt}))"))
            .await?;
        let output = client.read_until(&format!("size-{attempt}\r\n")).await?;
        if output.contains(&expected) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the pty never became {rows}x{cols}")
}

pub async fn initial_size_and_resize_frames_reach_the_pty<F, Fut>(open: F) -> anyhow::Result<()>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = anyhow::Result<WsClient>>,
{
    let (mut client, _) = open_new(&open, "?rows=30&cols=90").await?;
    wait_for_size(&mut client, 30, 90).await?;
    client
        .send(&ClientFrame::Resize(TermSize {
            rows: 40,
            cols: 100,
        }))
        .await?;
    wait_for_size(&mut client, 40, 100).await?;
    // The classic named form works too.
    client
        .send_text(r#"{"resize": {"rows": 12, "cols": 34}}"#)
        .await?;
    wait_for_size(&mut client, 12, 34).await?;

    // A literal classic SSH front end sends [cols, rows]; resize_order=cols_rows reads it
    // so, and the named form stays unambiguous.
    let (mut classic, _) = open_new(&open, "?rows=30&cols=90&resize_order=cols_rows").await?;
    wait_for_size(&mut classic, 30, 90).await?;
    classic.send_text(r#"{"resize": [110, 33]}"#).await?;
    wait_for_size(&mut classic, 33, 110).await?;
    classic
        .send_text(r#"{"resize": {"rows": 21, "cols": 43}}"#)
        .await?;
    wait_for_size(&mut classic, 21, 43).await?;
    Ok(())
}

/// Needs [`SMALL_RING`] in the relay's config.
pub async fn a_browser_that_does_not_read_stalls_the_shell_and_loses_nothing<F, Fut>(
    relay: &Relay,
    open: F,
) -> anyhow::Result<()>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = anyhow::Result<WsClient>>,
{
    let (mut client, _) = open_new(&open, "").await?;
    // 8 MiB of zeros as base64 (11 MB of output) that the client does not read for now.
    client.type_bulk_zeros().await?;
    relay.wait_until_a_terminal_stalls().await;
    // Reading again drains the rest: nothing was lost to the backpressure.
    client.read_until("DONE-2").await?;
    client.assert_bulk_zeros_arrived();
    Ok(())
}

/// Whether process `pid` of this machine has ended (gone, or a zombie left to reap).
fn process_ended(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

/// A normal close (the browser closed the tab) ends the remote shell (its process, on
/// this machine for both test backends, goes away) and the session: resuming it is
/// refused with 4410.
pub async fn a_normal_close_ends_the_shell_and_it_cannot_be_resumed<F, Fut>(
    relay: &Relay,
    open: F,
) -> anyhow::Result<()>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = anyhow::Result<WsClient>>,
{
    let (mut client, session) = open_new(&open, "").await?;
    let pid = shell_pid(&mut client).await?;
    client.close_normally().await?;
    assert_eq!(relay.terminal_sessions(), 0);
    wait_until_ended(pid, "the closed browser").await?;
    assert_expired(&open, &session).await
}

/// The process id of the shell at the other end of `client` (a process of this machine
/// for both test backends); checks that it runs.
async fn shell_pid(client: &mut WsClient) -> anyhow::Result<u32> {
    // Quoted so that the echoed command line does not end like its output.
    client.type_line("echo pid-$$-en''d").await?;
    let output = client.read_until("-end\r\n").await?;
    let pid: u32 = output
        .rsplit_once("pid-")
        .and_then(|(_, rest)| rest.split_once("-end"))
        .map(|(pid, _)| pid)
        .unwrap_or_default()
        .parse()?;
    assert!(!process_ended(pid), "the shell {pid} is not running");
    Ok(pid)
}

/// Waits (bounded) until process `pid` has ended; the kernel offers no event for another
/// process's exit, so this polls.
async fn wait_until_ended(pid: u32, after: &str) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
    while !process_ended(pid) {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the shell {pid} outlived {after}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Resuming `session` is refused with 4410.
async fn assert_expired<F, Fut>(open: &F, session: &str) -> anyhow::Result<()>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = anyhow::Result<WsClient>>,
{
    let mut client = open(format!("?session={session}&position=0")).await?;
    let (code, reason, frames) = client.read_until_closed().await?;
    assert_eq!(code, 4410, "{reason}");
    assert!(
        !frames
            .iter()
            .any(|f| matches!(f, StreamEvent::Connected { .. })),
        "{frames:?}"
    );
    Ok(())
}

/// Needs [`SHORT_GRACE`] in the relay's config. A session nobody reconnects to ends when
/// its grace period is over: the remote program is hung up, and a late resume gets 4410.
pub async fn a_session_left_alone_ends_after_the_grace_period<F, Fut>(
    relay: &Relay,
    open: F,
) -> anyhow::Result<()>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = anyhow::Result<WsClient>>,
{
    let (mut client, session) = open_new(&open, "").await?;
    let pid = shell_pid(&mut client).await?;
    client.drop_connection();
    anyhow::ensure!(
        relay.terminals_ended(EVENT_TIMEOUT).await,
        "the session outlived its grace period by {EVENT_TIMEOUT:?}"
    );
    wait_until_ended(pid, "the grace period").await?;
    assert_expired(&open, &session).await
}

/// A session whose program exited (`exit` frame, close 1000) cannot be resumed: 4410.
pub async fn a_session_whose_program_exited_cannot_be_resumed<F, Fut>(open: F) -> anyhow::Result<()>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = anyhow::Result<WsClient>>,
{
    let (mut client, session) = open_new(&open, "").await?;
    client.type_line("exit 5").await?;
    let (code, reason, frames) = client.read_until_closed().await?;
    assert_eq!(code, 1000, "{reason}");
    assert!(
        frames.contains(&StreamEvent::Exit {
            status: Some(5),
            signal: None
        }),
        "{frames:?}"
    );
    assert_expired(&open, &session).await
}

/// A shell killed by a signal ends the stream with `killed`, its `exit` frame, and 1000.
/// SSH reports the signal (`"signal":"KILL"`); Kubernetes reports none, only the exit code
/// 128 + its number (137), as the kubelet does.
pub async fn a_killed_shell_reports_how_it_ended<F, Fut>(
    open: F,
    killed: StreamEvent,
) -> anyhow::Result<()>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = anyhow::Result<WsClient>>,
{
    let (mut client, _) = open_new(&open, "").await?;
    client.type_line("kill -KILL $$").await?;
    let (code, reason, frames) = client.read_until_closed().await?;
    assert!(frames.contains(&killed), "{frames:?}");
    assert_eq!(code, 1000, "{reason}");
    Ok(())
}

/// Binary frames from the browser are raw keystrokes (PROTOCOL.md, Browser → relay).
pub async fn binary_frames_are_keystrokes<F, Fut>(open: F) -> anyhow::Result<()>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = anyhow::Result<WsClient>>,
{
    let (mut client, _) = open_new(&open, "").await?;
    client
        .send_binary(b"echo binary-$((6*7)) \xe4\xbd\xa0\r".to_vec())
        .await?;
    client.read_until("binary-42 你\r\n").await?;
    Ok(())
}

/// A terminal opened without `rows` and `cols` is 24×80.
pub async fn a_terminal_without_a_size_is_24_by_80<F, Fut>(open: F) -> anyhow::Result<()>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = anyhow::Result<WsClient>>,
{
    let (mut client, _) = open_new(&open, "").await?;
    client.type_line("stty size; echo size-$((6*7))").await?;
    let output = client.read_until("size-42\r\n").await?;
    assert!(output.contains("24 80\r\nsize-42"), "{output:?}");
    Ok(())
}

/// Needs [`SMALL_RING`] in the relay's config. A classic client (no `flow=1`) resuming at
/// a position the ring no longer holds gets a `gap` frame saying where it continues, then
/// exactly the output from there on, then the live stream.
pub async fn a_classic_resume_from_a_trimmed_position_gets_a_gap_then_continues<F, Fut>(
    open: F,
) -> anyhow::Result<()>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = anyhow::Result<WsClient>>,
{
    let (mut client, session) = open_new(&open, "").await?;
    // About 400 KB of output, three times the ring, all received.
    client
        .type_line("head -c 300000 /dev/zero | base64 -w 1000; echo FILLED-$((1+1))")
        .await?;
    client.read_until("FILLED-2").await?;
    let seen = client.output.clone();
    client.drop_connection();

    let mut client = open(format!("?session={session}&position=1000")).await?;
    let connected = client.connected().await?;
    assert!(connected.resumed);
    // The ring keeps its last 128 KiB (the shell's prompt may have come after `seen`).
    let kept_from = connected.position.as_count().unwrap_or_default();
    assert!(
        kept_from > 1000 && kept_from + SMALL_RING_BYTES >= seen.len() as u64,
        "resumed at {kept_from} of {} bytes",
        seen.len()
    );
    match client.next_frame().await? {
        StreamEvent::Gap { message, position } => {
            assert_eq!(position, Position::count(kept_from), "{message}");
            assert!(
                message.contains(&format!("{} bytes", kept_from - 1000)),
                "{message}"
            );
        }
        other => anyhow::bail!("expected a gap frame first, got {other:?}"),
    }
    client.type_line("echo after-$((2+1))").await?;
    client.read_until("after-3").await?;
    let kept = usize::try_from(kept_from)
        .ok()
        .and_then(|from| seen.get(from..))
        .unwrap_or_default();
    assert!(
        !kept.is_empty() && client.output.starts_with(kept),
        "the replay after the gap is not the output from its position"
    );
    Ok(())
}

/// A dropped connection leaves the shell running; reconnecting within the grace period
/// resumes it (its state kept) and replays what was missed exactly once.
pub async fn reconnect_within_grace_resumes_the_same_shell<F, Fut>(open: F) -> anyhow::Result<()>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = anyhow::Result<WsClient>>,
{
    let (mut client, session) = open_new(&open, "").await?;
    client.type_line("export MARK=kept-$((6*7))").await?;
    client.type_line("echo before-$((1+1))").await?;
    client.read_until("before-2").await?;
    let mut seen = client.output.clone();
    // The command runs while nobody is connected.
    client.type_line("echo missed-$((40+2))").await?;
    let position = client.received;
    client.drop_connection();

    let mut client = resume(&open, &session, position).await?;
    client.read_until("missed-42").await?;
    client.type_line("echo after-$((2+1)) $MARK").await?;
    client.read_until("after-3 kept-42").await?;
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

/// `open_bob` opens the same terminal as `bob`, whom the relay grants it too.
pub async fn another_user_cannot_resume_a_session<F, Fut, B, BFut>(
    open: F,
    open_bob: B,
) -> anyhow::Result<()>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = anyhow::Result<WsClient>>,
    B: Fn(String) -> BFut,
    BFut: Future<Output = anyhow::Result<WsClient>>,
{
    let (_alice, session) = open_new(&open, "").await?;
    let mut bob = open_bob(format!("?session={session}&position=0")).await?;
    let (code, reason, _) = bob.read_until_closed().await?;
    assert_eq!(code, 4403, "{reason}");
    Ok(())
}

pub async fn resuming_beyond_the_end_is_refused_and_the_session_survives<F, Fut>(
    open: F,
) -> anyhow::Result<()>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = anyhow::Result<WsClient>>,
{
    let (mut client, session) = open_new(&open, "").await?;
    client.type_line("echo ready-$((1+1))").await?;
    client.read_until("ready-2").await?;
    let position = client.received;
    client.drop_connection();
    let beyond = position + 1_000_000;
    let mut refused = open(format!("?session={session}&position={beyond}")).await?;
    let (code, reason, _) = refused.read_until_closed().await?;
    assert_eq!(code, 4400, "{reason}");
    assert!(reason.contains("beyond"), "{reason}");
    let mut client = resume(&open, &session, position).await?;
    client.type_line("echo alive-$((1+1))").await?;
    client.read_until("alive-2").await?;
    Ok(())
}

pub async fn a_second_connection_takes_the_session_over<F, Fut>(open: F) -> anyhow::Result<()>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = anyhow::Result<WsClient>>,
{
    let (mut first, session) = open_new(&open, "").await?;
    let mut second = resume(&open, &session, 0).await?;
    let (code, _, _) = first.read_until_closed().await?;
    assert_eq!(code, 4409);
    second.type_line("echo mine-$((1+1))").await?;
    second.read_until("mine-2").await?;
    Ok(())
}

/// Needs [`FAST_PINGS`] in the relay's config.
pub async fn a_peer_that_stops_answering_pings_is_dropped_into_the_grace_period<F, Fut>(
    open: F,
) -> anyhow::Result<()>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = anyhow::Result<WsClient>>,
{
    let (mut client, session) = open_new(&open, "").await?;
    let position = client.received;
    let (code, reason) = client.play_dead_until_closed().await?;
    assert_eq!(code, 4408, "{reason}");
    let mut client = resume(&open, &session, position).await?;
    client.type_line("echo back-$((1+1))").await?;
    client.read_until("back-2").await?;
    Ok(())
}

pub async fn malformed_frames_get_error_frames_and_the_session_goes_on<F, Fut>(
    open: F,
) -> anyhow::Result<()>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = anyhow::Result<WsClient>>,
{
    let (mut client, _) = open_new(&open, "").await?;
    let oversized = format!("{{\"data\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let bad: [(&str, ErrorCode); 7] = [
        ("{not json", ErrorCode::BadFrame),
        (r#"{"launch": "missiles"}"#, ErrorCode::BadFrame),
        (r#"{"resize": [0, 80]}"#, ErrorCode::BadFrame),
        (r#"{"resize": [24, 1001]}"#, ErrorCode::BadFrame),
        (r#"{"data": "x", "resize": [1, 1]}"#, ErrorCode::BadFrame),
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

pub async fn invalid_utf8_text_closes_with_a_reason_and_the_session_survives<F, Fut>(
    open: F,
) -> anyhow::Result<()>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = anyhow::Result<WsClient>>,
{
    let (mut client, session) = open_new(&open, "").await?;
    client.type_line("echo ready-$((1+1))").await?;
    client.read_until("ready-2").await?;
    let position = client.received;
    client.send_invalid_utf8_text().await?;
    let (code, reason, _) = client.read_until_closed().await?;
    assert_eq!(code, 4400, "{reason}");
    assert!(reason.contains("UTF-8"), "{reason}");
    let mut client = resume(&open, &session, position).await?;
    client.type_line("echo alive-$((1+1))").await?;
    client.read_until("alive-2").await?;
    Ok(())
}

/// Needs [`SMALL_FRAMES`] in the relay's config.
pub async fn a_frame_beyond_four_times_the_limit_closes_with_1009_and_the_session_survives<F, Fut>(
    open: F,
) -> anyhow::Result<()>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = anyhow::Result<WsClient>>,
{
    let (mut client, session) = open_new(&open, "").await?;
    client.type_line("echo ready-$((1+1))").await?;
    client.read_until("ready-2").await?;
    let position = client.received;
    client
        .send_text(&format!("{{\"data\": \"{}\"}}", "x".repeat(8 * 1024)))
        .await?;
    let (code, reason, _) = client.read_until_closed().await?;
    assert_eq!(code, 1009, "{reason}");
    assert!(reason.contains("refused"), "{reason}");
    let mut client = resume(&open, &session, position).await?;
    client.type_line("echo alive-$((1+1))").await?;
    client.read_until("alive-2").await?;
    Ok(())
}

/// Needs [`BIG_RING`] in the relay's config.
pub async fn a_flow_controlled_terminal_sends_one_window_until_acknowledged<F, Fut>(
    relay: &Relay,
    open: F,
) -> anyhow::Result<()>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = anyhow::Result<WsClient>>,
{
    const ACK_EVERY: u64 = FLOW_WINDOW / 4;
    let (mut client, _) = open_new(&open, "?flow=1").await?;
    client.type_bulk_zeros().await?;
    // The relay holds more than the window: only the missing acks hold it back.
    relay.wait_until_a_terminal_stalls().await;
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

pub async fn a_bad_flow_parameter_is_refused_with_what_to_send<F, Fut>(
    open: F,
) -> anyhow::Result<()>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = anyhow::Result<WsClient>>,
{
    let mut client = open("?flow=yes".to_owned()).await?;
    let (code, reason, _) = client.read_until_closed().await?;
    assert_eq!(code, 4400, "{reason}");
    assert!(reason.contains("flow=1"), "{reason}");
    Ok(())
}

/// Reads frames until `until` is in the output, acknowledging every one as the browser
/// app does (positions count from `base`, where this connection started).
pub async fn read_acking(client: &mut WsClient, base: u64, until: &str) -> anyhow::Result<()> {
    let mut searched: usize = 0;
    loop {
        // Only the new bytes (and a needle's length before them) can hold a new match.
        let from = searched.saturating_sub(until.len());
        if contains(&client.output[from..], until.as_bytes()) {
            return Ok(());
        }
        searched = client.output.len();
        match client.next_event().await? {
            Event::Binary(_) => {
                client
                    .send(&ClientFrame::Ack(base + client.received))
                    .await?
            }
            Event::Frame(ServerFrame::Event(StreamEvent::Gap { message, .. })) => {
                anyhow::bail!("gap: {message}")
            }
            Event::Closed { code, reason } => anyhow::bail!("closed ({code}: {reason})"),
            _ => {}
        }
    }
}

// Issue 11: a flow-controlled terminal dropped while a whole window is in flight (the
// browser stopped reading and the socket buffers hold what the relay sent) resumes from
// the bytes the browser received, byte-exact, drop after drop.
pub async fn flow_controlled_resume_is_byte_exact<F, Fut>(
    relay: &Relay,
    open: F,
) -> anyhow::Result<()>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = anyhow::Result<WsClient>>,
{
    // About 15 MB of output: each drop has a window (1 MiB) in flight.
    const LAST: u32 = 2_000_000;
    let mut client = open("?flow=1".to_owned()).await?;
    let session = client.connected().await?.session;
    let mut all: Vec<u8> = Vec::new();
    client
        .type_line(&format!("seq 1 {LAST}; echo SEQ-$((6*7))"))
        .await?;
    read_acking(&mut client, 0, "\r\n1000\r\n").await?;
    for drop in 0..5 {
        // The browser stops reading: the relay sends a window beyond the last ack into
        // the socket buffers, then stops reading the shell.
        relay.wait_until_a_terminal_stalls().await;
        all.extend_from_slice(&client.output);
        client.drop_connection();
        let position = all.len();
        client = open(format!("?flow=1&session={session}&position={position}")).await?;
        let connected = client.connected().await?;
        assert!(connected.resumed, "drop {drop}");
        assert_eq!(
            connected.position,
            Position::count(position as u64),
            "drop {drop}"
        );
        let marker = format!("\r\n{}\r\n", 300_000 * (drop + 1));
        let result = read_acking(&mut client, position as u64, &marker).await;
        if drop == 4 || result.is_err() {
            result?;
            break;
        }
    }
    let base = all.len() as u64;
    read_acking(&mut client, base, "SEQ-42").await?;
    all.extend_from_slice(&client.output);

    let expected: String = (1..=LAST).map(|n| format!("{n}\r\n")).collect();
    let text = String::from_utf8_lossy(&all);
    let start = text
        .find("\r1\r\n2\r\n3\r\n")
        .unwrap_or_else(|| panic!("no sequence in {:?}", &text[..text.len().min(300)]))
        + 1;
    assert!(
        text[start..].starts_with(&expected),
        "the output after the drops is not the exact sequence"
    );
    Ok(())
}
