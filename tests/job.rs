//! Job output written into a real redis-server by "another system" (the test), as a list
//! or as a stream, watched by several viewers, late joiners and reconnecting ones; and what
//! watching costs: token length, Redis connections, memory per viewer, the stream's size
//! and lifetime (`shared/reviews/security-review.md` findings 7, 8, 13 and 17).

use anyhow::bail;
use common::server::StreamEvent;
use opsdeck_tests::client::WsClient;
use opsdeck_tests::redis::TestRedis;
use opsdeck_tests::relay::{TestRelay, users_toml};
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;

/// Job tokens of the tests: long enough for the default `jobs.min_token_length` (16).
const BUILD: &str = "build-42-5f0c9e1a7b3d";
const DEPLOY: &str = "deploy_7-8c2e4a6b0d1f";
const LONG_JOB: &str = "long-job-3a9d7e5c1b0f";
const ANY_JOB: &str = "job1-0a1b2c3d4e5f6a7b";

async fn relay(redis: Option<&TestRedis>) -> anyhow::Result<TestRelay> {
    relay_with(redis, "").await
}

/// A relay with `jobs` as the body of its `[jobs]` section.
async fn relay_with(redis: Option<&TestRedis>, jobs: &str) -> anyhow::Result<TestRelay> {
    TestRelay::start(&config(redis, jobs)).await
}

fn config(redis: Option<&TestRedis>, jobs: &str) -> String {
    format!(
        "{users}\n[[grants]]\ngroups = [\"ops\"]\njobs = true\n{redis}\n[jobs]\n{jobs}\n",
        users = users_toml(),
        redis = redis.map(TestRedis::config_toml).unwrap_or_default(),
    )
}

fn list_key(token: &str) -> String {
    format!("opsdeck:job:{token}")
}

fn stream_key(token: &str) -> String {
    format!("opsdeck:job:{token}:stream")
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

async fn open_job(relay: &TestRelay, token: &str) -> anyhow::Result<WsClient> {
    open(relay, &format!("/ws/exec/{token}")).await
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

/// The close of a socket that the relay refuses: (code, reason).
async fn refusal(relay: &TestRelay, path: &str) -> anyhow::Result<(u16, String)> {
    let mut client = relay.connect("alice", path).await?;
    let (code, reason, _) = client.read_until_closed().await?;
    Ok((code, reason))
}

/// The test's own connection to Redis, named so that it is not counted as the relay's.
async fn test_connection(redis: &TestRedis) -> anyhow::Result<MultiplexedConnection> {
    let mut conn = redis.connection().await?;
    redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg("opsdeck-test")
        .query_async::<()>(&mut conn)
        .await?;
    Ok(conn)
}

/// Connections to Redis other than the test's own: the relay's.
async fn relay_connections(conn: &mut MultiplexedConnection) -> anyhow::Result<usize> {
    let clients: String = redis::cmd("CLIENT").arg("LIST").query_async(conn).await?;
    Ok(clients
        .lines()
        .filter(|line| !line.contains(" name=opsdeck-test "))
        .count())
}

/// Bytes Redis has sent to all its clients so far.
async fn redis_bytes_sent(conn: &mut MultiplexedConnection) -> anyhow::Result<u64> {
    let info: String = redis::cmd("INFO").arg("stats").query_async(conn).await?;
    let line = info
        .lines()
        .find_map(|l| l.strip_prefix("total_net_output_bytes:"))
        .ok_or_else(|| anyhow::anyhow!("INFO stats without total_net_output_bytes"))?;
    Ok(line.trim().parse()?)
}

#[tokio::test]
async fn list_output_reaches_two_viewers_and_a_late_joiner_then_exit_and_close_1000()
-> anyhow::Result<()> {
    let redis = TestRedis::start().await?;
    let relay = relay(Some(&redis)).await?;
    let mut conn = redis.connection().await?;
    let list = list_key(BUILD);
    let one = open_job(&relay, BUILD).await?;
    let mut two = open_job(&relay, BUILD).await?;

    // The classic producer: LPUSH, oldest popped first.
    for line in ["compiling\n", "linking 日本\n"] {
        let _: i64 = conn.lpush(&list, line).await?;
    }
    // The relay moves each entry into the stream exactly once, whatever the viewers.
    let first = read_output(&mut two, 2).await?;
    assert_eq!(first[1].1, "linking 日本\n");
    let _: i64 = conn.lpush(&list, "done\n").await?;
    let _: i64 = conn.lpush(&list, "__OPSDECK_EXIT__ 3").await?;

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
    let left: i64 = conn.llen(&list).await?;
    assert_eq!(left, 0, "the list was drained");

    let late = watch_to_the_end(open_job(&relay, BUILD).await?).await?;
    assert_eq!(late.output, one.output, "a late joiner sees everything");
    assert_eq!(late.exit, Some(Some(3)));
    let ttl: i64 = conn.ttl(stream_key(BUILD)).await?;
    assert!(ttl > 0, "the ended job's stream expires");
    Ok(())
}

#[tokio::test]
async fn stream_output_reaches_two_viewers_and_a_late_joiner_and_resumes_by_id()
-> anyhow::Result<()> {
    let redis = TestRedis::start().await?;
    let relay = relay(Some(&redis)).await?;
    let mut conn = redis.connection().await?;
    let key = stream_key(DEPLOY);
    let one = open_job(&relay, DEPLOY).await?;
    let two = open_job(&relay, DEPLOY).await?;
    let mut ids = Vec::new();
    for i in 0..50 {
        let id: String = conn
            .xadd(&key, "*", &[("data", format!("step {i}\n"))])
            .await?;
        ids.push(id);
    }
    // A viewer that leaves after 10 entries resumes after the 10th.
    let mut leaving = open_job(&relay, DEPLOY).await?;
    let seen = read_output(&mut leaving, 10).await?;
    leaving.drop_connection();
    let _: String = conn.xadd(&key, "*", &[("exit", "0")]).await?;

    let expected: Vec<String> = (0..50).map(|i| format!("step {i}\n")).collect();
    for watched in [watch_to_the_end(one).await?, watch_to_the_end(two).await?] {
        assert_eq!(watched.data(), expected);
        let got_ids: Vec<&str> = watched.output.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(got_ids, ids, "positions are the stream ids");
        assert_eq!((watched.exit, watched.code), (Some(Some(0)), 1000));
    }
    let late = watch_to_the_end(open_job(&relay, DEPLOY).await?).await?;
    assert_eq!(late.data(), expected);

    let resumed = open(&relay, &format!("/ws/exec/{DEPLOY}?position={}", seen[9].0)).await?;
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
    for path in [
        "/ws/exec/a%20b0123456789abcdef",
        "/ws/exec/..%2Fx0123456789abcdef",
        "/ws/exec/job:10123456789abcdef",
    ] {
        assert_eq!(refusal(&relay, path).await?.0, 4400, "{path}");
    }
    let long = format!("/ws/exec/{}", "a".repeat(129));
    assert_eq!(refusal(&relay, &long).await?.0, 4400);
    let mut bob = relay.connect("bob", &format!("/ws/exec/{ANY_JOB}")).await?;
    assert_eq!(
        bob.read_until_closed().await?.0,
        4403,
        "bob has no jobs grant"
    );
    let mut anonymous =
        WsClient::connect(&relay.ws_url(&format!("/ws/exec/{ANY_JOB}")), None, None).await?;
    assert_eq!(anonymous.read_until_closed().await?.0, 4401);
    let bad_position = format!("/ws/exec/{ANY_JOB}?position=soon");
    let (code, reason) = refusal(&relay, &bad_position).await?;
    assert_eq!(code, 4400);
    assert!(reason.contains("position"), "{reason}");

    let without_redis = self::relay(None).await?;
    let (code, reason) = refusal(&without_redis, &format!("/ws/exec/{ANY_JOB}")).await?;
    assert_eq!(code, 4502);
    assert!(reason.contains("[redis]"), "{reason}");
    Ok(())
}

// Review #7: a job token is a bearer capability; short ones are refused, and the refusal
// says why without repeating the token.
#[tokio::test]
async fn job_tokens_shorter_than_the_minimum_are_refused_saying_the_minimum_not_the_token()
-> anyhow::Result<()> {
    let redis = TestRedis::start().await?;
    let relay = relay(Some(&redis)).await?;
    for token in ["build-42", "q", "0123456789abcde"] {
        let (code, reason) = refusal(&relay, &format!("/ws/exec/{token}")).await?;
        assert_eq!(code, 4400, "{token}: {reason}");
        assert!(reason.contains("too short"), "{reason}");
        assert!(reason.contains("at least 16 characters"), "{reason}");
        assert!(!reason.contains(token), "the token is not echoed: {reason}");
    }
    open_job(&relay, "0123456789abcdef").await?;

    // A configured minimum.
    let strict = relay_with(Some(&redis), "min_token_length = 24").await?;
    let (code, reason) = refusal(&strict, "/ws/exec/0123456789abcdef0123").await?;
    assert_eq!(code, 4400);
    assert!(reason.contains("at least 24 characters"), "{reason}");
    open_job(&strict, "0123456789abcdef01234567").await?;

    // A minimum below 8 is a config error that names the option and its floor.
    let Err(error) = relay_with(Some(&redis), "min_token_length = 4").await else {
        bail!("a relay started with jobs.min_token_length = 4");
    };
    let error = format!("{error:#}");
    assert!(error.contains("jobs.min_token_length"), "{error}");
    assert!(error.contains("between 8 and"), "{error}");
    Ok(())
}

// Review #8: viewers share the relay's Redis connections, even viewers of tokens that do
// not exist.
#[tokio::test]
async fn fifty_viewers_use_a_constant_number_of_redis_connections_and_all_get_the_output()
-> anyhow::Result<()> {
    let redis = TestRedis::start().await?;
    let relay = relay(Some(&redis)).await?;
    let mut conn = test_connection(&redis).await?;
    let mut viewers = Vec::new();
    for _ in 0..30 {
        viewers.push(open_job(&relay, BUILD).await?);
    }
    let mut idle = Vec::new();
    for i in 0..20 {
        idle.push(open_job(&relay, &format!("no-such-job-{i:08}")).await?);
    }
    assert_eq!(relay.relay().watched_jobs(), 21, "one watch per job");

    let _: i64 = conn.lpush(list_key(BUILD), "hello\n").await?;
    for viewer in &mut viewers {
        assert_eq!(read_output(viewer, 1).await?[0].1, "hello\n");
    }
    // Every viewer has read output: each would hold its own connections by now if it had
    // any. The relay has its shared connection and the jobs reader.
    let connections = relay_connections(&mut conn).await?;
    assert!(
        connections <= 3,
        "{connections} Redis connections for 50 job viewers"
    );

    let _: i64 = conn.lpush(list_key(BUILD), "__OPSDECK_EXIT__ 0").await?;
    for viewer in viewers {
        let watched = watch_to_the_end(viewer).await?;
        assert_eq!(watched.data(), Vec::<&str>::new(), "hello was read already");
        assert_eq!((watched.exit, watched.code), (Some(Some(0)), 1000));
    }
    for viewer in idle {
        viewer.close_normally().await?;
    }
    assert_eq!(
        relay.relay().watched_jobs(),
        0,
        "nothing is watched any more"
    );
    assert!(relay_connections(&mut conn).await? <= 3);
    Ok(())
}

// Review #13: an entry far larger than what is sent is cut by Redis, so a viewer never
// receives (let alone holds) all of it.
#[tokio::test]
async fn an_oversized_entry_is_cut_before_it_leaves_redis() -> anyhow::Result<()> {
    let redis = TestRedis::start().await?;
    let relay = relay(Some(&redis)).await?;
    let mut conn = test_connection(&redis).await?;
    const MIB: usize = 1024 * 1024;
    let huge = "x".repeat(6 * MIB);
    let key = stream_key(DEPLOY);
    let _: String = conn.xadd(&key, "*", &[("data", huge.as_str())]).await?;
    let _: String = conn.xadd(&key, "*", &[("data", "small\n")]).await?;
    let _: String = conn.xadd(&key, "*", &[("exit", "0")]).await?;

    let before = redis_bytes_sent(&mut conn).await?;
    const VIEWERS: u64 = 3;
    for _ in 0..VIEWERS {
        let watched = watch_to_the_end(open_job(&relay, DEPLOY).await?).await?;
        let data = watched.data();
        assert_eq!(data.len(), 2, "the cut entry and the small one");
        assert!(data[0].starts_with(&"x".repeat(MIB)));
        assert!(
            data[0].ends_with(&format!(" … [output cut: {} bytes]", 6 * MIB)),
            "{}",
            &data[0][MIB - 10..]
        );
        assert_eq!(data[1], "small\n");
        assert_eq!((watched.exit, watched.code), (Some(Some(0)), 1000));
    }
    let sent = redis_bytes_sent(&mut conn).await? - before;
    // Each viewer got its 1 MiB cut and a little more; not the 6 MiB entry.
    assert!(
        sent < VIEWERS * 2 * MIB as u64,
        "Redis sent {sent} bytes for {VIEWERS} viewers"
    );
    Ok(())
}

// Review #17: list output moved into the stream is capped (MAXLEN ~ jobs.max_entries) and
// the stream expires when idle, before the job has ended; then within `retention`.
#[tokio::test]
async fn a_jobs_stream_is_capped_and_expires_when_idle_before_the_job_ends() -> anyhow::Result<()> {
    let redis = TestRedis::start().await?;
    let relay = relay_with(
        Some(&redis),
        "max_entries = 50\nidle_ttl = \"2h\"\nretention = \"10m\"",
    )
    .await?;
    let mut conn = test_connection(&redis).await?;
    // Small stream nodes, so that approximate trimming is close to the cap.
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("stream-node-max-entries")
        .arg(10)
        .query_async::<()>(&mut conn)
        .await?;
    let list = list_key(LONG_JOB);
    let stream = stream_key(LONG_JOB);
    for i in 0..300 {
        let _: i64 = conn.lpush(&list, format!("line {i}\n")).await?;
    }
    let _: i64 = conn.lpush(&list, "last\n").await?;

    let mut viewer = open_job(&relay, LONG_JOB).await?;
    // The viewer falls behind the cap (a gap) or not, but sees the last line.
    loop {
        match viewer.next_frame().await? {
            StreamEvent::Output { data, .. } if data == "last\n" => break,
            StreamEvent::Output { .. } | StreamEvent::Gap { .. } => {}
            other => bail!("unexpected {other:?}"),
        }
    }
    let length: usize = conn.xlen(&stream).await?;
    assert!((50..=100).contains(&length), "{length} entries kept");
    let ttl: i64 = conn.ttl(&stream).await?;
    assert!(
        ttl > 3600 && ttl <= 7200,
        "an unfinished job's stream expires after idle_ttl: {ttl}"
    );

    let _: i64 = conn.lpush(&list, "__OPSDECK_EXIT__ 0").await?;
    let (code, _, frames) = viewer.read_until_closed().await?;
    assert_eq!(code, 1000);
    assert!(frames.contains(&StreamEvent::Exit {
        status: Some(0),
        signal: None
    }));
    let ttl: i64 = conn.ttl(&stream).await?;
    assert!(
        ttl > 0 && ttl <= 600,
        "kept for retention once ended: {ttl}"
    );
    Ok(())
}

// The relay reads every job on one connection: a job whose stream key holds another type
// closes its own viewers and stops no one else's.
#[tokio::test]
async fn a_job_key_of_another_type_closes_its_viewers_and_spares_the_others() -> anyhow::Result<()>
{
    let redis = TestRedis::start().await?;
    let relay = relay(Some(&redis)).await?;
    let mut conn = redis.connection().await?;
    let mut healthy = open_job(&relay, BUILD).await?;
    let mut broken = open_job(&relay, DEPLOY).await?;
    let _: () = conn.set(stream_key(DEPLOY), "not a stream").await?;
    let _: String = conn
        .xadd(stream_key(BUILD), "*", &[("data", "still here\n")])
        .await?;
    assert_eq!(read_output(&mut healthy, 1).await?[0].1, "still here\n");
    let (code, reason, _) = broken.read_until_closed().await?;
    assert_eq!(code, 4502, "{reason}");
    assert!(reason.contains("not a stream"), "{reason}");

    let _: String = conn.xadd(stream_key(BUILD), "*", &[("exit", "0")]).await?;
    let rest = watch_to_the_end(healthy).await?;
    assert_eq!((rest.exit, rest.code), (Some(Some(0)), 1000));
    Ok(())
}

#[tokio::test]
async fn a_redis_restart_is_announced_and_the_output_goes_on() -> anyhow::Result<()> {
    let mut redis = TestRedis::start().await?;
    let relay = relay(Some(&redis)).await?;
    let mut viewer = open_job(&relay, LONG_JOB).await?;
    let mut conn = redis.connection().await?;
    let list = list_key(LONG_JOB);
    let _: i64 = conn.lpush(&list, "before\n").await?;
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
    // A job stream opened while Redis is down is refused with 4502 (PROTOCOL.md).
    let (code, reason) = refusal(&relay, &format!("/ws/exec/{ANY_JOB}")).await?;
    assert_eq!(code, 4502, "{reason}");
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
    let _: i64 = conn.lpush(&list, "after\n").await?;
    let _: i64 = conn.lpush(&list, "__OPSDECK_EXIT__ 0").await?;
    let rest = watch_to_the_end(viewer).await?;
    assert_eq!(rest.data(), ["after\n"]);
    assert_eq!((rest.exit, rest.code), (Some(Some(0)), 1000));
    Ok(())
}
