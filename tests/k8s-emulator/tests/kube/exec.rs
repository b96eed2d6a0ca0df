//! Exec through kube-rs `Api::exec` / `AttachedProcess`: real processes,
//! real PTYs, exit statuses on the status channel.

use futures::SinkExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, AttachedProcess, TerminalSize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::fixture::{self, PATIENCE, api_error};

async fn read_all(mut reader: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(PATIENCE, reader.read_to_end(&mut out))
        .await
        .expect("output ends")
        .expect("output reads");
    out
}

async fn status_of(
    attached: &mut AttachedProcess,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Status {
    let status = attached.take_status().expect("status future");
    tokio::time::timeout(PATIENCE, status)
        .await
        .expect("status arrives")
        .expect("status sent")
}

#[tokio::test]
async fn tty_exec_relays_utf8_bytes_and_reports_the_exit_code() {
    let cluster = fixture::start().await;
    let pods: Api<Pod> = Api::namespaced(fixture::client_for(&cluster, "alice", &[]).await, "dev");

    let mut attached = pods
        .exec(
            "web-1",
            ["sh", "-c", "echo 你好 😀; exit 3"],
            &AttachParams::interactive_tty(),
        )
        .await
        .expect("exec starts");
    let stdout = attached.stdout().expect("stdout");
    let output = read_all(stdout).await;
    let status = status_of(&mut attached).await;

    // A terminal turns "\n" into "\r\n".
    assert_eq!(output, "你好 😀\r\n".as_bytes());
    assert_eq!(status.status.as_deref(), Some("Failure"));
    assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
    let causes = status.details.and_then(|d| d.causes).expect("causes");
    assert_eq!(causes[0].reason.as_deref(), Some("ExitCode"));
    assert_eq!(causes[0].message.as_deref(), Some("3"));
}

#[tokio::test]
async fn resize_reaches_the_pty_as_stty_size() {
    let cluster = fixture::start().await;
    let pods: Api<Pod> = Api::namespaced(fixture::client_for(&cluster, "alice", &[]).await, "dev");
    // Resizing a PTY sends SIGWINCH to its foreground process group; the
    // trap answers with the size the terminal now has. `wait` returns as
    // soon as a trapped signal arrives (POSIX).
    let script = "trap 'stty size; exit 0' WINCH; echo ready; sleep 600 & wait";

    let mut attached = pods
        .exec(
            "web-1",
            ["sh", "-c", script],
            &AttachParams::interactive_tty(),
        )
        .await
        .expect("exec starts");
    let mut resize = attached.terminal_size().expect("tty has a resize channel");
    let mut stdout = attached.stdout().expect("stdout");
    let mut ready = [0u8; 7];
    tokio::time::timeout(PATIENCE, stdout.read_exact(&mut ready))
        .await
        .expect("trap installed")
        .expect("ready read");
    assert_eq!(&ready, b"ready\r\n");

    resize
        .send(TerminalSize {
            width: 123,
            height: 45,
        })
        .await
        .expect("resize sent");
    let output = String::from_utf8(read_all(stdout).await).expect("utf-8");
    let status = status_of(&mut attached).await;

    assert_eq!(output, "45 123\r\n");
    assert_eq!(status.status.as_deref(), Some("Success"));
}

#[tokio::test]
async fn pipes_keep_stdout_and_stderr_apart_and_stdin_eof_is_delivered() {
    let cluster = fixture::start().await;
    let pods: Api<Pod> = Api::namespaced(fixture::client_for(&cluster, "alice", &[]).await, "dev");

    let mut attached = pods
        .exec(
            "web-1",
            ["sh", "-c", "cat; echo done; echo oops >&2"],
            &AttachParams::default().stdin(true),
        )
        .await
        .expect("exec starts");
    let mut stdin = attached.stdin().expect("stdin");
    let stdout = attached.stdout().expect("stdout");
    let stderr = attached.stderr().expect("stderr");
    stdin.write_all(b"line one\n").await.expect("written");
    // Closing stdin: kube-rs sends the v5 close signal [255, 0].
    stdin.shutdown().await.expect("stdin closed");
    drop(stdin);

    let (out, err) = tokio::join!(read_all(stdout), read_all(stderr));
    let status = status_of(&mut attached).await;

    assert_eq!(out, b"line one\ndone\n");
    assert_eq!(err, b"oops\n");
    assert_eq!(status.status.as_deref(), Some("Success"));
}

#[tokio::test]
async fn closing_the_websocket_kills_the_process_group() {
    let cluster = fixture::start().await;
    let pods: Api<Pod> = Api::namespaced(fixture::client_for(&cluster, "alice", &[]).await, "dev");
    // Every process of the group keeps the FIFO's write end open; the read
    // end reports end-of-file exactly when the last of them is dead.
    let fifo = cluster.dir.path().join("alive.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let mut alive = tokio::net::unix::pipe::OpenOptions::new()
        .open_receiver(&fifo)
        .expect("fifo opens");
    let script = format!(
        "exec 3>'{}'; echo ready; sleep 600 & sleep 600",
        fifo.display()
    );

    let mut attached = pods
        .exec(
            "web-1",
            ["sh", "-c", script.as_str()],
            &AttachParams::default(),
        )
        .await
        .expect("exec starts");
    let mut stdout = attached.stdout().expect("stdout");
    let mut ready = [0u8; 6];
    tokio::time::timeout(PATIENCE, stdout.read_exact(&mut ready))
        .await
        .expect("script starts")
        .expect("ready read");
    assert_eq!(&ready, b"ready\n");
    assert_eq!(cluster.emulator.live_processes(), 1);

    // Dropping the AttachedProcess aborts kube-rs's task and drops the socket.
    drop(stdout);
    drop(attached);

    let mut rest = Vec::new();
    tokio::time::timeout(PATIENCE, alive.read_to_end(&mut rest))
        .await
        .expect("every process of the group died")
        .expect("fifo reads");
    tokio::time::timeout(PATIENCE, cluster.emulator.wait_for_live_processes(0))
        .await
        .expect("the emulator forgot the group");
}

#[tokio::test]
async fn unknown_container_and_completed_pod_are_400() {
    let cluster = fixture::start().await;
    let pods: Api<Pod> = Api::namespaced(fixture::client_for(&cluster, "alice", &[]).await, "dev");

    let status = api_error(
        pods.exec(
            "web-1",
            ["true"],
            &AttachParams::default().container("nope"),
        )
        .await,
    );
    assert_eq!(status.code, 400);
    assert_eq!(status.message, "container nope is not valid for pod web-1");

    let status = api_error(pods.exec("multi", ["true"], &AttachParams::default()).await);
    assert_eq!(
        status.message,
        "a container name must be specified for pod multi, choose one of: [a b]"
    );

    let status = api_error(pods.exec("done", ["true"], &AttachParams::default()).await);
    assert_eq!(status.code, 400);
    assert_eq!(
        status.message,
        "cannot exec into a container in a completed pod; current phase is Succeeded"
    );
}

#[tokio::test]
async fn exec_in_a_forbidden_namespace_is_403() {
    let cluster = fixture::start().await;
    let pods: Api<Pod> = Api::namespaced(fixture::client_for(&cluster, "alice", &[]).await, "prod");

    let status = api_error(pods.exec("db-1", ["true"], &AttachParams::default()).await);

    assert_eq!(status.code, 403);
    assert_eq!(
        status.message,
        r#"pods "db-1" is forbidden: User "alice" cannot create resource "pods/exec" in API group "" in the namespace "prod""#
    );
}

#[tokio::test]
async fn missing_executable_is_an_internal_error_status() {
    let cluster = fixture::start().await;
    let pods: Api<Pod> = Api::namespaced(fixture::client_for(&cluster, "alice", &[]).await, "dev");

    let mut attached = pods
        .exec("web-1", ["no-such-binary-here"], &AttachParams::default())
        .await
        .expect("the upgrade succeeds; the failure comes on the status channel");
    let status = status_of(&mut attached).await;

    assert_eq!(status.status.as_deref(), Some("Failure"));
    assert_eq!(status.reason.as_deref(), Some("InternalError"));
    assert!(
        status
            .message
            .as_deref()
            .is_some_and(|m| m
                .contains(r#"exec: "no-such-binary-here": executable file not found in $PATH"#)),
        "{status:?}"
    );
}

#[tokio::test]
async fn dropping_the_emulator_kills_running_exec_processes() {
    let cluster = fixture::start().await;
    let pods: Api<Pod> = Api::namespaced(fixture::client_for(&cluster, "alice", &[]).await, "dev");
    let fifo = cluster.dir.path().join("alive.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let mut alive = tokio::net::unix::pipe::OpenOptions::new()
        .open_receiver(&fifo)
        .expect("fifo opens");
    let script = format!("exec 3>'{}'; echo ready; sleep 600", fifo.display());
    let mut attached = pods
        .exec(
            "web-1",
            ["sh", "-c", script.as_str()],
            &AttachParams::interactive_tty(),
        )
        .await
        .expect("exec starts");
    let mut stdout = attached.stdout().expect("stdout");
    let mut ready = [0u8; 7];
    tokio::time::timeout(PATIENCE, stdout.read_exact(&mut ready))
        .await
        .expect("script starts")
        .expect("ready read");

    let fixture::Cluster { emulator, dir } = cluster;
    drop(emulator);

    let mut rest = Vec::new();
    tokio::time::timeout(PATIENCE, alive.read_to_end(&mut rest))
        .await
        .expect("the process died with the emulator")
        .expect("fifo reads");
    drop(dir);
}
