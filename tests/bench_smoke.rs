//! The benchmarks still work: tiny runs of the load functions the bench uses
//! (`opsdeck_tests::load`), against the harness's relay. Nothing here is timed; each test
//! checks that a workload produced a figure at all.

use std::time::Duration;

use opsdeck_tests::load::{
    self, ChatPublisher, ChatSubscriber, Endpoint, FanoutPlan, FileAppender, RelayTerminal,
    TailViewer,
};
use opsdeck_tests::relay::{TestRelay, users_toml};
use opsdeck_tests::sshd::TestSshd;

const GRANTS: &str =
    "[[grants]]\ngroups = [\"ops\"]\nssh = [\"*\"]\nfiles = [\"*\"]\nchat = [\"*\"]\n";

#[tokio::test]
async fn terminal_bulk_and_echo_through_the_relay_give_figures() -> anyhow::Result<()> {
    let sshd = TestSshd::start().await?;
    let relay = TestRelay::start(&format!(
        "{}\n{GRANTS}\n{}",
        users_toml(),
        sshd.host_toml("box")?
    ))
    .await?;
    let endpoint = Endpoint::new(relay.ws_url("/ws/ssh/box"), Some(relay.token("alice")));
    let mut term = RelayTerminal::open(&endpoint).await?;
    load::prepare(&mut term).await?;

    let bulk = load::terminal_bulk(&mut term, 64 * 1024).await?;
    // base64 makes 4 bytes of 3, and each 76-character line ends in \r\n.
    assert!(bulk.bytes > 64 * 1024 * 4 / 3, "{bulk:?}");

    let echoes = load::terminal_echo(&mut term, 5).await?;
    assert_eq!(echoes.len(), 5);
    term.close().await
}

#[tokio::test]
async fn chat_and_tail_fanout_deliver_every_message() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("app.log");
    std::fs::write(&log, "")?;
    let relay = TestRelay::start(&format!(
        "[chat]\nrate_burst = 1000\n{}\n{GRANTS}\n[[chat_rooms]]\nid = \"bench\"\n\
         [[files]]\nid = \"app\"\npath = \"{}\"\n",
        users_toml(),
        log.display()
    ))
    .await?;
    let token = relay.token("alice");
    let plan = FanoutPlan {
        paced: 3,
        interval: Duration::from_millis(10),
        burst: 20,
        drain: Duration::from_secs(30),
    };

    let room = Endpoint::new(relay.ws_url("/ws/chat/bench"), Some(token.clone()));
    let subscribers = load::open_many(3, 3, |_| ChatSubscriber::open(&room)).await?;
    let mut publisher = ChatPublisher::open(&room).await?;
    let chat = load::fanout(&mut publisher, subscribers, &plan).await?;
    assert_eq!(publisher.refusals().0, 0, "{:?}", publisher.refusals());
    assert_eq!((chat.expected, chat.lost()), (69, 0), "{chat:?}");
    assert_eq!(chat.latencies.len(), 9);

    let file = Endpoint::new(relay.ws_url("/ws/tail/app"), Some(token));
    let viewers = load::open_many(2, 2, |_| TailViewer::open(&file)).await?;
    let mut appender = FileAppender::open(&log)?;
    let tail = load::fanout(&mut appender, viewers, &plan).await?;
    assert_eq!((tail.expected, tail.lost()), (46, 0), "{tail:?}");
    Ok(())
}
