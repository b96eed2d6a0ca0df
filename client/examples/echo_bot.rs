//! A bot that joins a room and echoes every message of someone else.
//!
//! ```sh
//! OPSDECK_ROOM_URL=ws://127.0.0.1:8080/ws/chat/ops OPSDECK_TOKEN=<jwt> \
//!     cargo run -p opsdeck-client --features native --example echo_bot
//! ```
//!
//! It reconnects by itself (relay restarts, Redis restarts), catches up on what it missed
//! and never echoes a message twice; it stops when its token is refused.

use futures_util::StreamExt;
use opsdeck_client::{Auth, ClientConfig, ConnState, Event};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("OPSDECK_ROOM_URL").map_err(|_| {
        anyhow::anyhow!("set OPSDECK_ROOM_URL, e.g. ws://127.0.0.1:8080/ws/chat/ops")
    })?;
    let token = std::env::var("OPSDECK_TOKEN")
        .map_err(|_| anyhow::anyhow!("set OPSDECK_TOKEN to a JWT the relay accepts"))?;
    let (chat, mut events) =
        opsdeck_client::native::connect(ClientConfig::new(url, Auth::Bearer(token)));
    let mut me = None;
    while let Some(event) = events.next().await {
        match event {
            Event::Me(user) => me = Some(user.uid),
            Event::Message { message, .. } if Some(&message.uid) != me.as_ref() => {
                let reply = chat.send(format!("echo: {}", message.message));
                tokio::spawn(async move {
                    if let Err(e) = reply.await {
                        eprintln!("echo not sent: {e}");
                    }
                });
            }
            Event::State(ConnState::Reconnecting { delay, error, .. }) => {
                eprintln!("{error}; reconnecting in {delay:?}");
            }
            Event::State(ConnState::Closed(error)) => {
                anyhow::bail!("stopped: {error}");
            }
            _ => {}
        }
    }
    Ok(())
}
