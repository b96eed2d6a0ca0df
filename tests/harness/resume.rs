//! Scenarios every terminal backend must pass, run by each backend's test file with its
//! own way of opening a terminal.

use std::future::Future;

use common::server::{ServerFrame, StreamEvent};
use common::{ClientFrame, Position};
use relay::Relay;

use crate::client::{Event, WsClient, contains};

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
    let (session, _, _) = client.connected().await?;
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
        let (_, at, resumed) = client.connected().await?;
        assert!(resumed, "drop {drop}");
        assert_eq!(at, Position::count(position as u64), "drop {drop}");
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
