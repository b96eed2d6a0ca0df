//! Pod logs: `/ws/k8s/logs/{cluster}/{namespace}/{pod}/{container}`.

use common::Position;
use common::resume::ResumeQuery;
use common::server::{StatusKind, StreamEvent};
use opsdeck_tests::client::{Connected, WsClient};

use crate::fixture::{Cluster, refusal};

const WEB: &str = "/ws/k8s/logs/main/dev/web-1/app";
const T1: &str = "2024-05-01T10:00:01.250000000Z";
const T2: &str = "2024-05-01T10:00:02.000000000Z";
const T3: &str = "2024-05-01T10:00:03.000000000Z";

/// Receives `lines` frames until `count` lines have come; returns them and the last
/// position. Any other frame fails the test, unless it is a status of `allowed` kind.
async fn lines(
    client: &mut WsClient,
    count: usize,
    allowed: Option<StatusKind>,
) -> anyhow::Result<(Vec<String>, Position)> {
    let mut got = Vec::new();
    let mut at = Position::default();
    while got.len() < count {
        match client.next_frame().await? {
            StreamEvent::Lines { position, lines } => {
                got.extend(lines);
                at = position;
            }
            StreamEvent::Status { kind, .. } if Some(kind) == allowed => {}
            other => anyhow::bail!("expected lines, got {other:?} after {got:?}"),
        }
    }
    anyhow::ensure!(got.len() == count, "more lines than expected: {got:?}");
    Ok((got, at))
}

async fn status(client: &mut WsClient) -> anyhow::Result<(StatusKind, String)> {
    match client.next_frame().await? {
        StreamEvent::Status { kind, message } => Ok((kind, message)),
        other => anyhow::bail!("expected a status frame, got {other:?}"),
    }
}

#[tokio::test]
async fn tail_lines_then_new_lines_as_they_are_written() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.write_log(
        "web-1",
        "app",
        &[
            &format!("{T1} one"),
            &format!("{T2} two 四"),
            &format!("{T3} three ✓"),
        ],
    )?;
    let mut client = cluster.open(&format!("{WEB}?tail_lines=2")).await?;
    let Connected {
        position, resumed, ..
    } = client.connected().await?;
    assert_eq!((position, resumed), (Position::default(), false));
    let (got, position) = lines(&mut client, 2, None).await?;
    assert_eq!(got, ["two 四", "three ✓"]);
    assert_eq!(position.as_str(), format!("{T3}/1"));
    cluster
        .emulator
        .append_log("dev", "web-1", "app", "appended 😀")?;
    assert_eq!(lines(&mut client, 1, None).await?.0, ["appended 😀"]);

    // With timestamps=true the lines keep them.
    let mut stamped = cluster
        .open(&format!("{WEB}?tail_lines=1&timestamps=true"))
        .await?;
    stamped.connected().await?;
    let (got, _) = lines(&mut stamped, 1, None).await?;
    assert!(got[0].ends_with("Z appended 😀"), "{got:?}");
    Ok(())
}

#[tokio::test]
async fn a_follow_ended_by_the_api_server_is_resumed_with_no_gap_or_duplicate() -> anyhow::Result<()>
{
    let cluster = Cluster::start().await?;
    // Two lines share a timestamp: the position must count them.
    cluster.write_log(
        "web-1",
        "app",
        &[&format!("{T1} a"), &format!("{T2} b"), &format!("{T2} c")],
    )?;
    let mut client = cluster.open(WEB).await?;
    client.connected().await?;
    let (got, position) = lines(&mut client, 3, None).await?;
    assert_eq!(got, ["a", "b", "c"]);
    assert_eq!(position.as_str(), format!("{T2}/2"));

    assert_eq!(cluster.emulator.end_log_follows("dev", "web-1", "app")?, 1);
    let (kind, message) = status(&mut client).await?;
    assert_eq!(kind, StatusKind::Refollowing, "{message}");
    // Another line at the same timestamp, then a later one: both come, once.
    cluster.write_log("web-1", "app", &[&format!("{T2} d"), &format!("{T3} e")])?;
    let (got, position) = lines(&mut client, 2, None).await?;
    assert_eq!(got, ["d", "e"]);
    assert_eq!(position.as_str(), format!("{T3}/1"));
    cluster.emulator.append_log("dev", "web-1", "app", "live")?;
    assert_eq!(lines(&mut client, 1, None).await?.0, ["live"]);
    Ok(())
}

#[tokio::test]
async fn a_reconnect_with_the_position_gets_exactly_the_missed_lines() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.write_log("web-1", "app", &[&format!("{T1} a"), &format!("{T1} b")])?;
    let mut client = cluster.open(&format!("{WEB}?tail_lines=10")).await?;
    client.connected().await?;
    let (got, position) = lines(&mut client, 2, None).await?;
    assert_eq!(got, ["a", "b"]);
    client.drop_connection();

    cluster.write_log("web-1", "app", &[&format!("{T1} c"), &format!("{T2} d")])?;
    let resume = ResumeQuery {
        position: Some(position.clone()),
        ..ResumeQuery::default()
    };
    let mut again = cluster
        .open(&format!("{WEB}?tail_lines=1&{}", resume.to_query()))
        .await?;
    let Connected {
        position: at,
        resumed,
        ..
    } = again.connected().await?;
    assert_eq!((at, resumed), (position, true));
    assert_eq!(lines(&mut again, 2, None).await?.0, ["c", "d"]);
    cluster.emulator.append_log("dev", "web-1", "app", "live")?;
    assert_eq!(lines(&mut again, 1, None).await?.0, ["live"]);
    Ok(())
}

#[tokio::test]
async fn a_container_restart_is_announced_and_its_new_log_followed() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let mut client = cluster.open(WEB).await?;
    client.connected().await?;
    cluster
        .emulator
        .append_log("dev", "web-1", "app", "before")?;
    assert_eq!(lines(&mut client, 1, None).await?.0, ["before"]);
    assert_eq!(
        cluster.emulator.restart_container("dev", "web-1", "app")?,
        1
    );
    let (kind, message) = status(&mut client).await?;
    assert_eq!(kind, StatusKind::ContainerRestarted, "{message}");
    assert!(message.contains("restart count 1"), "{message}");
    cluster
        .emulator
        .append_log("dev", "web-1", "app", "after")?;
    assert_eq!(lines(&mut client, 1, None).await?.0, ["after"]);

    // The instance before the restart: its whole log, then a clear end.
    let mut previous = cluster.open(&format!("{WEB}?previous=true")).await?;
    previous.connected().await?;
    assert_eq!(lines(&mut previous, 1, None).await?.0, ["before"]);
    let (code, reason, _) = previous.read_until_closed().await?;
    assert_eq!(code, 1000, "{reason}");
    assert!(reason.contains("previous instance"), "{reason}");
    Ok(())
}

#[tokio::test]
async fn a_terminated_pod_ends_the_stream_with_a_clear_reason() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let mut client = cluster.open(WEB).await?;
    client.connected().await?;
    cluster
        .emulator
        .append_log("dev", "web-1", "app", "last words")?;
    assert_eq!(lines(&mut client, 1, None).await?.0, ["last words"]);
    cluster
        .emulator
        .set_pod_phase("dev", "web-1", k8s_emulator::PodPhase::Succeeded)?;
    let (code, reason, frames) = client.read_until_closed().await?;
    assert_eq!(code, 1000, "{reason} {frames:?}");
    assert!(
        reason.contains("pod web-1 has terminated (phase Succeeded)"),
        "{reason}"
    );
    Ok(())
}

#[tokio::test]
async fn log_refusals_carry_the_reason() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    for (user, path, code, expected) in [
        (
            "alice",
            "/ws/k8s/logs/main/dev/nope/app",
            4404,
            "pod nope not found",
        ),
        (
            "alice",
            "/ws/k8s/logs/main/dev/multi/c",
            4404,
            "its containers are: a, b",
        ),
        (
            "alice",
            "/ws/k8s/logs/main/dev/web-1/app?previous=true",
            4400,
            "previous terminated container",
        ),
        (
            "alice",
            "/ws/k8s/logs/main/dev/web-1/app?position=yesterday",
            4400,
            "not a pod log position",
        ),
        (
            "alice",
            "/ws/k8s/logs/badcreds/dev/web-1/app",
            4502,
            "the relay's cluster credentials were refused",
        ),
        (
            "alice",
            "/ws/k8s/logs/imp/prod/db-1/db",
            4403,
            r#"User "alice" cannot"#,
        ),
        (
            "bob",
            "/ws/k8s/logs/main/prod/db-1/db",
            4403,
            "bob may not open",
        ),
    ] {
        let (got, reason) = refusal(&cluster, user, path).await?;
        assert_eq!(got, code, "{path}: {reason}");
        assert!(reason.contains(expected), "{path}: {reason}");
    }
    Ok(())
}

#[tokio::test]
async fn long_lines_are_cut_at_a_character_boundary_with_a_marker() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(
        r#"
[k8s]
max_line_bytes = 1024
"#,
    )
    .await?;
    // 3000 bytes of three-byte characters: the cap falls inside the 338th.
    let long = "你".repeat(1000);
    cluster.write_log(
        "web-1",
        "app",
        &[&format!("{T1} {long}"), &format!("{T2} short")],
    )?;
    let mut client = cluster.open(WEB).await?;
    client.connected().await?;
    let (got, _) = lines(&mut client, 2, None).await?;
    let (kept, marker) = got[0]
        .split_once(" … ")
        .ok_or_else(|| anyhow::anyhow!("no cut marker in {:?}", &got[0][..64]))?;
    assert!(kept.chars().all(|c| c == '你'), "altered text");
    // The cap counts the line as the API server sent it, with its 31-byte timestamp.
    assert!(
        kept.len() <= 1024 - 31 && kept.len() > 1024 - 31 - 3,
        "{} bytes kept",
        kept.len()
    );
    assert!(marker.contains("line cut"), "{marker}");
    assert_eq!(got[1], "short");
    Ok(())
}

#[tokio::test]
async fn a_refollow_before_any_line_came_does_not_replay_the_old_log() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.write_log(
        "web-1",
        "app",
        &[&format!("{T1} old"), &format!("{T2} older")],
    )?;
    let mut client = cluster.open(&format!("{WEB}?tail_lines=0")).await?;
    client.connected().await?;
    assert_eq!(cluster.emulator.end_log_follows("dev", "web-1", "app")?, 1);
    assert_eq!(status(&mut client).await?.0, StatusKind::Refollowing);
    cluster.emulator.append_log("dev", "web-1", "app", "new")?;
    assert_eq!(lines(&mut client, 1, None).await?.0, ["new"]);
    Ok(())
}

#[tokio::test]
async fn closing_the_log_socket_cancels_the_api_log_request() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.write_log("web-1", "app", &[&format!("{T1} first")])?;
    let mut client = cluster.open(WEB).await?;
    client.connected().await?;
    assert_eq!(lines(&mut client, 1, None).await?.0, ["first"]);
    cluster.wait_for_log_follows(1).await?;

    client.close_with_code(1000).await?;
    cluster.wait_for_log_follows(0).await
}

#[tokio::test]
async fn a_dropped_connection_cancels_the_api_log_request_too() -> anyhow::Result<()> {
    // Pod logs have no session kept for a reconnect (the client resumes by position), so
    // nothing should keep following for a viewer that went without a close frame.
    let cluster = Cluster::start().await?;
    cluster.write_log("web-1", "app", &[&format!("{T1} first")])?;
    let mut client = cluster.open(WEB).await?;
    client.connected().await?;
    assert_eq!(lines(&mut client, 1, None).await?.0, ["first"]);
    cluster.wait_for_log_follows(1).await?;

    client.drop_connection();
    cluster.wait_for_log_follows(0).await
}

// Issue 11: a viewer away while the container restarted resumes with the rest of the
// earlier instance's log, then the new instance's, every line once.
#[tokio::test]
async fn a_resume_across_a_restart_gets_the_rest_of_the_earlier_log_then_the_new_one()
-> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let mut client = cluster.open(WEB).await?;
    client.connected().await?;
    let log = |text: &str| cluster.emulator.append_log("dev", "web-1", "app", text);
    log("a")?;
    log("b")?;
    let (got, position) = lines(&mut client, 2, None).await?;
    assert_eq!(got, ["a", "b"]);
    client.drop_connection();

    log("c, written while away")?;
    assert_eq!(
        cluster.emulator.restart_container("dev", "web-1", "app")?,
        1
    );
    log("d, in the new instance")?;
    let resume = ResumeQuery {
        position: Some(position.clone()),
        ..ResumeQuery::default()
    };
    let mut again = cluster
        .open(&format!("{WEB}?{}", resume.to_query()))
        .await?;
    again.connected().await?;
    let (kind, message) = status(&mut again).await?;
    assert_eq!(kind, StatusKind::ContainerRestarted, "{message}");
    assert_eq!(
        lines(&mut again, 2, None).await?.0,
        ["c, written while away", "d, in the new instance"]
    );
    log("e, live")?;
    assert_eq!(lines(&mut again, 1, None).await?.0, ["e, live"]);
    Ok(())
}
