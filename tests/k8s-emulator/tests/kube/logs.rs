//! Container logs through kube-rs `Api::logs` / `Api::log_stream`.

use std::io::Write;

use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};

use crate::fixture::{self, PATIENCE, api_error};

fn write_stored_lines(path: &std::path::Path, lines: &[&str]) {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("log file exists");
    for line in lines {
        writeln!(file, "{line}").expect("line written");
    }
}

/// `<RFC3339NanoFixed> ` is 31 bytes for a UTC timestamp.
fn split_timestamp(line: &str) -> (&str, &str) {
    let (stamp, text) = line.split_once(' ').expect("timestamp prefix");
    assert_eq!(stamp.len(), 30, "fixed-width nanos: {stamp}");
    assert!(stamp.ends_with('Z'));
    (stamp, text)
}

#[tokio::test]
async fn follow_with_tail_and_timestamps_streams_new_lines_until_ended() {
    let cluster = fixture::start().await;
    let pods: Api<Pod> = Api::namespaced(fixture::client_for(&cluster, "alice", &[]).await, "dev");
    let log = cluster.log_file("web-1", "app");
    write_stored_lines(
        &log,
        &[
            "2024-01-01T00:00:01Z one",
            "2024-01-01T00:00:02Z two",
            "2024-01-01T00:00:03.5Z three",
            "2024-01-01T00:00:04Z 四 ✓",
        ],
    );

    let params = LogParams {
        follow: true,
        tail_lines: Some(2),
        timestamps: true,
        ..LogParams::default()
    };
    let mut lines = pods
        .log_stream("web-1", &params)
        .await
        .expect("log stream opens")
        .lines();
    let mut next = async || {
        tokio::time::timeout(PATIENCE, lines.next())
            .await
            .expect("a line arrives")
    };

    assert_eq!(
        next().await.expect("line").expect("utf-8"),
        "2024-01-01T00:00:03.500000000Z three"
    );
    assert_eq!(
        next().await.expect("line").expect("utf-8"),
        "2024-01-01T00:00:04.000000000Z 四 ✓"
    );

    // Through the hook: stamped with the current time.
    cluster
        .emulator
        .append_log("dev", "web-1", "app", "appended by the hook")
        .expect("appended");
    let line = next().await.expect("line").expect("utf-8");
    assert_eq!(split_timestamp(&line).1, "appended by the hook");

    // Written straight to the file, as a process would: seen through inotify.
    write_stored_lines(&log, &["2030-06-01T12:00:00.000000001Z from outside"]);
    assert_eq!(
        next().await.expect("line").expect("utf-8"),
        "2030-06-01T12:00:00.000000001Z from outside"
    );

    // Emulate the API server ending the stream.
    assert_eq!(
        cluster
            .emulator
            .end_log_follows("dev", "web-1", "app")
            .unwrap(),
        1
    );
    assert!(next().await.is_none(), "the stream ends");
    assert_eq!(cluster.emulator.open_log_follows(), 0);
}

#[tokio::test]
async fn dropping_a_follow_stream_ends_its_request_on_the_server() {
    let cluster = fixture::start().await;
    let pods: Api<Pod> = Api::namespaced(fixture::client_for(&cluster, "alice", &[]).await, "dev");
    let follow = LogParams {
        follow: true,
        ..LogParams::default()
    };
    let mut kept = pods
        .log_stream("web-1", &follow)
        .await
        .expect("log stream opens")
        .lines();
    let dropped = pods
        .log_stream("web-1", &follow)
        .await
        .expect("log stream opens");
    // A plain read is not a follow.
    pods.logs("web-1", &LogParams::default())
        .await
        .expect("plain log");
    assert_eq!(cluster.emulator.open_log_follows(), 2);

    drop(dropped);
    tokio::time::timeout(PATIENCE, cluster.emulator.wait_for_open_log_follows(1))
        .await
        .expect("dropping the response ends the request on the server");
    // The other one still streams.
    cluster
        .emulator
        .append_log("dev", "web-1", "app", "still here")
        .expect("appended");
    let line = tokio::time::timeout(PATIENCE, kept.next())
        .await
        .expect("a line arrives")
        .expect("line")
        .expect("utf-8");
    assert_eq!(line, "still here");

    drop(kept);
    tokio::time::timeout(PATIENCE, cluster.emulator.wait_for_open_log_follows(0))
        .await
        .expect("dropping the response ends the request on the server");
}

#[tokio::test]
async fn plain_logs_honour_since_seconds_and_limit_bytes() {
    let cluster = fixture::start().await;
    let pods: Api<Pod> = Api::namespaced(fixture::client_for(&cluster, "alice", &[]).await, "dev");
    write_stored_lines(
        &cluster.log_file("web-1", "app"),
        &["2020-01-01T00:00:00Z ancient", "2020-01-01T00:00:01Z older"],
    );
    cluster
        .emulator
        .append_log("dev", "web-1", "app", "fresh\nfresher")
        .expect("appended");

    let all = pods
        .logs("web-1", &LogParams::default())
        .await
        .expect("logs");
    assert_eq!(all, "ancient\nolder\nfresh\nfresher\n");

    let recent = LogParams {
        since_seconds: Some(3600),
        ..LogParams::default()
    };
    assert_eq!(
        pods.logs("web-1", &recent).await.expect("logs"),
        "fresh\nfresher\n"
    );

    let limited = LogParams {
        limit_bytes: Some(10),
        ..LogParams::default()
    };
    assert_eq!(
        pods.logs("web-1", &limited).await.expect("logs"),
        "ancient\nol"
    );
}

#[tokio::test]
async fn restart_moves_the_log_to_previous() {
    let cluster = fixture::start().await;
    let pods: Api<Pod> = Api::namespaced(fixture::client_for(&cluster, "alice", &[]).await, "dev");
    let no_previous = LogParams {
        previous: true,
        ..LogParams::default()
    };
    let status = api_error(pods.logs("web-1", &no_previous).await);
    assert_eq!(status.code, 400);
    assert_eq!(
        status.message,
        r#"previous terminated container "app" in pod "web-1" not found"#
    );

    cluster
        .emulator
        .append_log("dev", "web-1", "app", "before")
        .unwrap();
    let follow = LogParams {
        follow: true,
        ..LogParams::default()
    };
    let mut stream = pods
        .log_stream("web-1", &follow)
        .await
        .expect("follow")
        .lines();
    assert_eq!(stream.next().await.expect("line").expect("utf-8"), "before");

    cluster
        .emulator
        .restart_container("dev", "web-1", "app")
        .unwrap();
    let ended = tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("stream ends");
    assert!(ended.is_none(), "a restart ends the old instance's follow");

    cluster
        .emulator
        .append_log("dev", "web-1", "app", "after")
        .unwrap();
    assert_eq!(
        pods.logs("web-1", &no_previous).await.expect("previous"),
        "before\n"
    );
    assert_eq!(
        pods.logs("web-1", &LogParams::default())
            .await
            .expect("current"),
        "after\n"
    );
}

#[tokio::test]
async fn follow_ends_when_the_pod_stops_running() {
    let cluster = fixture::start().await;
    let pods: Api<Pod> = Api::namespaced(fixture::client_for(&cluster, "alice", &[]).await, "dev");
    let follow = LogParams {
        follow: true,
        ..LogParams::default()
    };
    let mut stream = pods
        .log_stream("web-1", &follow)
        .await
        .expect("follow")
        .lines();
    cluster
        .emulator
        .append_log("dev", "web-1", "app", "last words")
        .unwrap();
    assert_eq!(
        stream.next().await.expect("line").expect("utf-8"),
        "last words"
    );

    cluster
        .emulator
        .set_pod_phase("dev", "web-1", k8s_emulator::PodPhase::Succeeded)
        .unwrap();

    let ended = tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("stream ends");
    assert!(ended.is_none());
}

#[tokio::test]
async fn log_errors_are_statuses() {
    let cluster = fixture::start().await;
    let alice = fixture::client_for(&cluster, "alice", &[]).await;
    let pods: Api<Pod> = Api::namespaced(alice.clone(), "dev");

    let waiting = api_error(pods.logs("starting", &LogParams::default()).await);
    assert_eq!(waiting.code, 400);
    assert_eq!(
        waiting.message,
        r#"container "app" in pod "starting" is waiting to start: ContainerCreating"#
    );

    let invalid = api_error(
        pods.logs(
            "web-1",
            &LogParams {
                tail_lines: Some(-1),
                ..LogParams::default()
            },
        )
        .await,
    );
    assert_eq!(invalid.code, 422);
    assert_eq!(invalid.reason, "Invalid");

    let prod: Api<Pod> = Api::namespaced(alice, "prod");
    let forbidden = api_error(prod.logs("db-1", &LogParams::default()).await);
    assert_eq!(
        forbidden.message,
        r#"pods "db-1" is forbidden: User "alice" cannot get resource "pods/log" in API group "" in the namespace "prod""#
    );

    write_stored_lines(
        &cluster.log_file("web-1", "app"),
        &["2024-01-01T00:00:01Z for the viewer"],
    );
    let viewer: Api<Pod> = Api::namespaced(fixture::token_client(&cluster, "viewer-token"), "dev");
    let seen = viewer
        .logs("web-1", &LogParams::default())
        .await
        .expect("viewer reads logs");
    let all = pods
        .logs("web-1", &LogParams::default())
        .await
        .expect("alice reads logs");
    assert_eq!(seen, "for the viewer\n");
    assert_eq!(seen, all);
}
