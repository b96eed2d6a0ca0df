//! Job output written into a real redis-server by "another system" (the test), as a list
//! or as a stream, watched by several viewers, late joiners and reconnecting ones.

use anyhow::bail;
use common::server::StreamEvent;
use opsdeck_tests::client::WsClient;
use opsdeck_tests::redis::TestRedis;
use opsdeck_tests::relay::{TestRelay, users_toml};
use redis::AsyncCommands;

async fn relay(redis: Option<&TestRedis>) -> anyhow::Result<TestRelay> {
    let config = format!(
        "{users}\n[[grants]]\ngroups = [\"ops\"]\njobs = true\n{redis}",
        users = users_toml(),
        redis = redis.map(TestRedis::config_toml).unwrap_or_default(),
    );
    TestRelay::start(&config).await
}

/// Everything a viewer received until the stream closed.
#[derive(Debug)]
struct Watched {
    /// (id, data) of each output entry.
    output: Vec<(String, String)>,
    exit: Option<Option<i32>>,
    code: u16,
}

impl Watched {
    fn data(&self) -> Vec<&str> {
        self.output.iter().map(|(_, d)| d.as_str()).collect()
    }
}

async fn open(relay: &TestRelay, path: &str) -> anyhow::Result<WsClient> {
    let mut client = relay.connect("alice", path).await?;
    client.connected().await?;
    Ok(client)
}

/// Reads `count` output entries.
async fn read_output(client: &mut WsClient, count: usize) -> anyhow::Result<Vec<(String, String)>> {
    let mut output = Vec::new();
    while output.len() < count {
        match client.next_frame().await? {
            StreamEvent::Output { position, data } => output.push((position.0, data)),
            other => bail!("unexpected {other:?}"),
        }
    }
    Ok(output)
}

async fn watch_to_the_end(mut client: WsClient) -> anyhow::Result<Watched> {
    let (code, _reason, frames) = client.read_until_closed().await?;
    let mut watched = Watched {
        output: Vec::new(),
        exit: None,
        code,
    };
    for frame in frames {
        match frame {
            StreamEvent::Output { position, data } => watched.output.push((position.0, data)),
            StreamEvent::Exit { status, .. } => watched.exit = Some(status),
            other => bail!("unexpected {other:?}"),
        }
    }
    Ok(watched)
}

#[tokio::test]
async fn list_output_reaches_two_viewers_and_a_late_joiner_then_exit_and_close_1000()
-> anyhow::Result<()> {
    let redis = TestRedis::start().await?;
    let relay = relay(Some(&redis)).await?;
    let mut conn = redis.connection().await?;
    let one = open(&relay, "/ws/exec/build-42").await?;
    let mut two = open(&relay, "/ws/exec/build-42").await?;

    // The classic producer: LPUSH, oldest popped first.
    for line in ["compiling\n", "linking 日本\n"] {
        let _: i64 = conn.lpush("opsdeck:job:build-42", line).await?;
    }
    // Both viewers' list movers race for the entries; each is moved exactly once.
    let first = read_output(&mut two, 2).await?;
    assert_eq!(first[1].1, "linking 日本\n");
    let _: i64 = conn.lpush("opsdeck:job:build-42", "done\n").await?;
    let _: i64 = conn
        .lpush("opsdeck:job:build-42", "__OPSDECK_EXIT__ 3")
        .await?;

    let expected = ["compiling\n", "linking 日本\n", "done\n"];
    let one = watch_to_the_end(one).await?;
    let mut two_rest = watch_to_the_end(two).await?;
    two_rest.output.splice(0..0, first);
    for watched in [&one, &two_rest] {
        assert_eq!(watched.data(), expected, "every entry once, in order");
        assert_eq!(watched.exit, Some(Some(3)));
        assert_eq!(watched.code, 1000);
    }
    assert_eq!(one.output, two_rest.output, "the same ids for everyone");
    let left: i64 = conn.llen("opsdeck:job:build-42").await?;
    assert_eq!(left, 0, "the list was drained");

    let late = watch_to_the_end(open(&relay, "/ws/exec/build-42").await?).await?;
    assert_eq!(late.output, one.output, "a late joiner sees everything");
    assert_eq!(late.exit, Some(Some(3)));
    let ttl: i64 = conn.ttl("opsdeck:job:build-42:stream").await?;
    assert!(ttl > 0, "the ended job's stream expires");
    Ok(())
}

#[tokio::test]
async fn stream_output_reaches_two_viewers_and_a_late_joiner_and_resumes_by_id()
-> anyhow::Result<()> {
    let redis = TestRedis::start().await?;
    let relay = relay(Some(&redis)).await?;
    let mut conn = redis.connection().await?;
    let key = "opsdeck:job:deploy_7:stream";
    let one = open(&relay, "/ws/exec/deploy_7").await?;
    let two = open(&relay, "/ws/exec/deploy_7").await?;
    let mut ids = Vec::new();
    for i in 0..50 {
        let id: String = conn
            .xadd(key, "*", &[("data", format!("step {i}\n"))])
            .await?;
        ids.push(id);
    }
    // A viewer that leaves after 10 entries resumes after the 10th.
    let mut leaving = open(&relay, "/ws/exec/deploy_7").await?;
    let seen = read_output(&mut leaving, 10).await?;
    leaving.drop_connection();
    let _: String = conn.xadd(key, "*", &[("exit", "0")]).await?;

    let expected: Vec<String> = (0..50).map(|i| format!("step {i}\n")).collect();
    for watched in [watch_to_the_end(one).await?, watch_to_the_end(two).await?] {
        assert_eq!(watched.data(), expected);
        let got_ids: Vec<&str> = watched.output.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(got_ids, ids, "positions are the stream ids");
        assert_eq!((watched.exit, watched.code), (Some(Some(0)), 1000));
    }
    let late = watch_to_the_end(open(&relay, "/ws/exec/deploy_7").await?).await?;
    assert_eq!(late.data(), expected);

    let resumed = open(&relay, &format!("/ws/exec/deploy_7?position={}", seen[9].0)).await?;
    let resumed = watch_to_the_end(resumed).await?;
    assert_eq!(
        resumed.data(),
        expected[10..],
        "exactly what came after the position"
    );
    assert_eq!(resumed.exit, Some(Some(0)));
    Ok(())
}

#[tokio::test]
async fn bad_tokens_missing_grants_and_missing_redis_are_refused_with_their_codes()
-> anyhow::Result<()> {
    let redis = TestRedis::start().await?;
    let relay = relay(Some(&redis)).await?;
    for path in ["/ws/exec/a%20b", "/ws/exec/..%2Fx", "/ws/exec/job:1"] {
        let mut client = relay.connect("alice", path).await?;
        assert_eq!(client.read_until_closed().await?.0, 4400, "{path}");
    }
    let long = format!("/ws/exec/{}", "a".repeat(129));
    assert_eq!(
        relay
            .connect("alice", &long)
            .await?
            .read_until_closed()
            .await?
            .0,
        4400
    );
    let mut bob = relay.connect("bob", "/ws/exec/job1").await?;
    assert_eq!(
        bob.read_until_closed().await?.0,
        4403,
        "bob has no jobs grant"
    );
    let mut anonymous = WsClient::connect(&relay.ws_url("/ws/exec/job1"), None, None).await?;
    assert_eq!(anonymous.read_until_closed().await?.0, 4401);
    let mut bad_position = relay
        .connect("alice", "/ws/exec/job1?position=soon")
        .await?;
    assert_eq!(bad_position.read_until_closed().await?.0, 4400);

    let without_redis = self::relay(None).await?;
    let mut client = without_redis.connect("alice", "/ws/exec/job1").await?;
    let (code, reason, _) = client.read_until_closed().await?;
    assert_eq!(code, 4502);
    assert!(reason.contains("[redis]"), "{reason}");
    Ok(())
}

#[tokio::test]
async fn a_redis_restart_is_announced_and_the_output_goes_on() -> anyhow::Result<()> {
    let mut redis = TestRedis::start().await?;
    let relay = relay(Some(&redis)).await?;
    let mut viewer = open(&relay, "/ws/exec/long-job").await?;
    let mut conn = redis.connection().await?;
    let _: i64 = conn.lpush("opsdeck:job:long-job", "before\n").await?;
    assert_eq!(read_output(&mut viewer, 1).await?[0].1, "before\n");

    redis.stop().await?;
    let status = viewer.next_frame().await?;
    assert!(
        matches!(
            status,
            StreamEvent::Status {
                kind: common::server::StatusKind::BackendReconnecting,
                ..
            }
        ),
        "{status:?}"
    );
    redis.restart().await?;
    let status = viewer.next_frame().await?;
    assert!(
        matches!(
            status,
            StreamEvent::Status {
                kind: common::server::StatusKind::BackendRestored,
                ..
            }
        ),
        "{status:?}"
    );
    let mut conn = redis.connection().await?;
    let _: i64 = conn.lpush("opsdeck:job:long-job", "after\n").await?;
    let _: i64 = conn
        .lpush("opsdeck:job:long-job", "__OPSDECK_EXIT__ 0")
        .await?;
    let rest = watch_to_the_end(viewer).await?;
    assert_eq!(rest.data(), ["after\n"]);
    assert_eq!((rest.exit, rest.code), (Some(Some(0)), 1000));
    Ok(())
}
