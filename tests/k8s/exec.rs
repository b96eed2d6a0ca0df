//! Shells in pods: `/ws/k8s/exec/{cluster}/{namespace}/{pod}/{container}`.

use common::server::StreamEvent;
use common::{ClientFrame, Position, TermSize};
use opsdeck_tests::client::WsClient;

use crate::fixture::{Cluster, refusal};

const WEB: &str = "/ws/k8s/exec/main/dev/web-1/app";

async fn open_shell(cluster: &Cluster, path: &str) -> anyhow::Result<(WsClient, String)> {
    let mut client = cluster.open(path).await?;
    let (session, position, resumed) = client.connected().await?;
    assert_eq!(position, Position::count(0));
    assert!(!resumed);
    Ok((client, session))
}

#[tokio::test]
async fn shell_runs_commands_and_reports_the_exit_status() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let (mut client, _) = open_shell(&cluster, WEB).await?;
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
    cluster.wait_for_no_processes().await
}

#[tokio::test]
async fn multibyte_text_split_across_frames_arrives_intact() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let (mut client, _) = open_shell(&cluster, WEB).await?;
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
    // Only proves something if some frame ended inside a character.
    assert!(
        client.some_frame_split_a_character(),
        "no frame boundary fell inside a character ({} frames)",
        client.frame_sizes.len()
    );
    Ok(())
}

#[tokio::test]
async fn initial_size_and_resize_frames_reach_the_tty() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let (mut client, _) = open_shell(&cluster, &format!("{WEB}?rows=30&cols=90")).await?;
    client.type_line("stty size").await?;
    client.read_until("30 90").await?;
    // kube-rs sends keystrokes and resizes on separate channels, in no fixed order
    // between them: the shell reports the size when the resize reaches it.
    client
        .type_line("trap 'stty size' WINCH; echo armed-$((1+1)); sleep 60 & wait")
        .await?;
    client.read_until("armed-2").await?;
    client
        .send(&ClientFrame::Resize(TermSize {
            rows: 40,
            cols: 100,
        }))
        .await?;
    client.read_until("40 100").await?;
    Ok(())
}

#[tokio::test]
async fn a_browser_that_does_not_read_stalls_the_shell_and_loses_nothing() -> anyhow::Result<()> {
    let cluster = Cluster::start_with("[limits]\nterminal_buffer_bytes = 131072\n").await?;
    let (mut client, _) = open_shell(&cluster, WEB).await?;
    // 8 MiB of zeros as base64 (11 MB of output) that the client does not read for now.
    client.type_bulk_zeros().await?;
    cluster.relay.relay().wait_until_a_terminal_stalls().await;
    // Reading again drains the rest: nothing was lost to the backpressure.
    client.read_until("DONE-2").await?;
    client.assert_bulk_zeros_arrived();
    Ok(())
}

#[tokio::test]
async fn closing_the_browser_ends_the_remote_process() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let (mut client, _) = open_shell(&cluster, WEB).await?;
    client.type_line("echo ready-$((1+1))").await?;
    client.read_until("ready-2").await?;
    assert_eq!(cluster.emulator.live_processes(), 1);
    client.close_normally().await?;
    cluster.wait_for_no_processes().await?;
    assert_eq!(cluster.relay.relay().terminal_sessions(), 0);
    Ok(())
}

#[tokio::test]
async fn reconnect_within_grace_resumes_the_same_shell() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let (mut client, session) = open_shell(&cluster, WEB).await?;
    client.type_line("export MARK=kept-$((6*7))").await?;
    client.type_line("echo set").await?;
    client.read_until("set\r\n").await?;
    let position = client.received;
    client.drop_connection();
    let mut again = cluster
        .open(&format!("{WEB}?session={session}&position={position}"))
        .await?;
    let (resumed_session, at, resumed) = again.connected().await?;
    assert_eq!(
        (resumed_session, at, resumed),
        (session, Position::count(position), true)
    );
    again.type_line("echo $MARK").await?;
    again.read_until("kept-42").await?;
    assert_eq!(cluster.emulator.live_processes(), 1);
    Ok(())
}

#[tokio::test]
async fn missing_pods_containers_and_stopped_pods_are_refused_with_reasons() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    for (path, code, expected) in [
        (
            "/ws/k8s/exec/main/dev/nope/app",
            4404,
            "pod nope not found in namespace dev",
        ),
        (
            "/ws/k8s/exec/main/dev/web-1/nope",
            4404,
            "has no container nope; its containers are: app",
        ),
        ("/ws/k8s/exec/main/dev/done/job", 4400, "not running"),
        (
            "/ws/k8s/exec/nowhere/dev/web-1/app",
            4404,
            "no Kubernetes cluster \"nowhere\"",
        ),
    ] {
        let (got, reason) = refusal(&cluster, "alice", path).await?;
        assert_eq!(got, code, "{path}: {reason}");
        assert!(reason.contains(expected), "{path}: {reason}");
    }
    assert_eq!(cluster.emulator.live_processes(), 0);
    Ok(())
}

#[tokio::test]
async fn cluster_credentials_refused_is_4502_and_rbac_denial_is_4403() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let (code, reason) = refusal(&cluster, "alice", "/ws/k8s/exec/badcreds/dev/web-1/app").await?;
    assert_eq!(code, 4502, "{reason}");
    assert!(
        reason.contains("the relay's cluster credentials were refused"),
        "{reason}"
    );
    // Impersonating alice: the cluster lets her into dev only.
    let (code, reason) = refusal(&cluster, "alice", "/ws/k8s/exec/imp/prod/db-1/db").await?;
    assert_eq!(code, 4403, "{reason}");
    assert!(reason.contains(r#"User "alice" cannot"#), "{reason}");
    let (mut client, _) = open_shell(&cluster, "/ws/k8s/exec/imp/dev/web-1/app").await?;
    client.type_line("echo as-alice").await?;
    client.read_until("as-alice").await?;
    let audit = cluster.emulator.audit_log();
    assert!(
        audit
            .iter()
            .any(|e| e.user == "alice" && e.impersonated_by.as_deref() == Some("impersonator")),
        "no impersonated request in {audit:?}"
    );
    // The relay's own grants are checked first: bob may only open main/dev.
    let (code, _) = refusal(&cluster, "bob", "/ws/k8s/exec/main/prod/db-1/db").await?;
    assert_eq!(code, 4403);
    Ok(())
}

// Issue 11: a flow-controlled pod terminal dropped with a window in flight resumes
// byte-exact.
#[tokio::test]
async fn a_flow_controlled_resume_with_a_window_in_flight_is_byte_exact() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    opsdeck_tests::resume::flow_controlled_resume_is_byte_exact(cluster.relay.relay(), |query| {
        let cluster = &cluster;
        async move { cluster.open(&format!("{WEB}{query}")).await }
    })
    .await
}
