//! Shells in pods: `/ws/k8s/exec/{cluster}/{namespace}/{pod}/{container}`.
//!
//! The terminal contract (`opsdeck_tests::terminal_contract`, also run for SSH) and what
//! only pods have: missing pods and containers, cluster credentials and RBAC.

use common::server::StreamEvent;
use futures_util::future::BoxFuture;
use opsdeck_tests::client::WsClient;
use opsdeck_tests::terminal_contract as contract;

use crate::fixture::{Cluster, refusal};

const WEB: &str = "/ws/k8s/exec/main/dev/web-1/app";

/// Opens `{WEB}{query}` as `user`.
fn shell<'a>(
    cluster: &'a Cluster,
    user: &'static str,
) -> impl Fn(String) -> BoxFuture<'a, anyhow::Result<WsClient>> + 'a {
    exec(cluster, user, WEB)
}

/// Opens `{path}{query}` as `user`.
fn exec<'a>(
    cluster: &'a Cluster,
    user: &'static str,
    path: &'static str,
) -> impl Fn(String) -> BoxFuture<'a, anyhow::Result<WsClient>> + 'a {
    move |query| {
        Box::pin(async move { cluster.relay.connect(user, &format!("{path}{query}")).await })
    }
}

// The terminal contract.

#[tokio::test]
async fn shell_runs_commands_and_reports_the_exit_status() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    contract::shell_runs_commands_and_reports_the_exit_status(shell(&cluster, "alice")).await?;
    cluster.wait_for_no_processes().await
}

#[tokio::test]
async fn multibyte_text_split_across_frames_arrives_intact() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    contract::multibyte_text_split_across_frames_arrives_intact(shell(&cluster, "alice")).await
}

#[tokio::test]
async fn initial_size_and_resize_frames_reach_the_tty() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    contract::initial_size_and_resize_frames_reach_the_pty(shell(&cluster, "alice")).await
}

#[tokio::test]
async fn a_browser_that_does_not_read_stalls_the_shell_and_loses_nothing() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(contract::SMALL_RING).await?;
    contract::a_browser_that_does_not_read_stalls_the_shell_and_loses_nothing(
        cluster.relay.relay(),
        shell(&cluster, "alice"),
    )
    .await
}

#[tokio::test]
async fn closing_the_browser_ends_the_remote_process() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    contract::a_normal_close_ends_the_shell_and_it_cannot_be_resumed(
        cluster.relay.relay(),
        shell(&cluster, "alice"),
    )
    .await?;
    cluster.wait_for_no_processes().await
}

#[tokio::test]
async fn reconnect_within_grace_resumes_the_same_shell() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    contract::reconnect_within_grace_resumes_the_same_shell(shell(&cluster, "alice")).await?;
    // Dropped, the connection leaves the shell running for its grace period.
    assert_eq!(cluster.emulator.live_processes(), 1);
    Ok(())
}

#[tokio::test]
async fn another_user_cannot_resume_a_session() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    contract::another_user_cannot_resume_a_session(shell(&cluster, "alice"), shell(&cluster, "bob"))
        .await
}

#[tokio::test]
async fn resuming_beyond_the_end_is_refused_and_the_session_survives() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    contract::resuming_beyond_the_end_is_refused_and_the_session_survives(shell(&cluster, "alice"))
        .await
}

#[tokio::test]
async fn a_second_connection_takes_the_session_over() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    contract::a_second_connection_takes_the_session_over(shell(&cluster, "alice")).await
}

#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_dropped_into_the_grace_period() -> anyhow::Result<()>
{
    let cluster = Cluster::start_with(contract::FAST_PINGS).await?;
    contract::a_peer_that_stops_answering_pings_is_dropped_into_the_grace_period(shell(
        &cluster, "alice",
    ))
    .await
}

#[tokio::test]
async fn malformed_frames_get_error_frames_and_the_session_goes_on() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    contract::malformed_frames_get_error_frames_and_the_session_goes_on(shell(&cluster, "alice"))
        .await
}

#[tokio::test]
async fn invalid_utf8_text_closes_with_a_reason_and_the_session_survives() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    contract::invalid_utf8_text_closes_with_a_reason_and_the_session_survives(shell(
        &cluster, "alice",
    ))
    .await
}

#[tokio::test]
async fn a_frame_beyond_four_times_the_limit_closes_with_1009_and_the_session_survives()
-> anyhow::Result<()> {
    let cluster = Cluster::start_with(contract::SMALL_FRAMES).await?;
    contract::a_frame_beyond_four_times_the_limit_closes_with_1009_and_the_session_survives(shell(
        &cluster, "alice",
    ))
    .await
}

#[tokio::test]
async fn a_flow_controlled_terminal_sends_one_window_until_acknowledged() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(contract::BIG_RING).await?;
    contract::a_flow_controlled_terminal_sends_one_window_until_acknowledged(
        cluster.relay.relay(),
        shell(&cluster, "alice"),
    )
    .await
}

#[tokio::test]
async fn a_bad_flow_parameter_is_refused_with_what_to_send() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    contract::a_bad_flow_parameter_is_refused_with_what_to_send(shell(&cluster, "alice")).await
}

// Issue 11: a flow-controlled pod terminal dropped with a window in flight resumes
// byte-exact.
#[tokio::test]
async fn a_flow_controlled_resume_with_a_window_in_flight_is_byte_exact() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    contract::flow_controlled_resume_is_byte_exact(cluster.relay.relay(), shell(&cluster, "alice"))
        .await
}

#[tokio::test]
async fn a_classic_resume_from_a_trimmed_position_gets_a_gap_then_continues() -> anyhow::Result<()>
{
    let cluster = Cluster::start_with(contract::SMALL_RING).await?;
    contract::a_classic_resume_from_a_trimmed_position_gets_a_gap_then_continues(shell(
        &cluster, "alice",
    ))
    .await
}

#[tokio::test]
async fn a_session_left_alone_ends_after_the_grace_period() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(contract::SHORT_GRACE).await?;
    contract::a_session_left_alone_ends_after_the_grace_period(
        cluster.relay.relay(),
        shell(&cluster, "alice"),
    )
    .await?;
    cluster.wait_for_no_processes().await
}

#[tokio::test]
async fn a_session_whose_program_exited_cannot_be_resumed() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    contract::a_session_whose_program_exited_cannot_be_resumed(shell(&cluster, "alice")).await
}

/// The exec status has no signal: the kubelet (and the emulator) report 128 + its number.
#[tokio::test]
async fn a_killed_shell_reports_exit_code_137() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let killed = StreamEvent::Exit {
        status: Some(137),
        signal: None,
    };
    contract::a_killed_shell_reports_how_it_ended(shell(&cluster, "alice"), killed).await
}

#[tokio::test]
async fn binary_frames_are_keystrokes() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    contract::binary_frames_are_keystrokes(shell(&cluster, "alice")).await
}

#[tokio::test]
async fn a_terminal_without_a_size_is_24_by_80() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    contract::a_terminal_without_a_size_is_24_by_80(shell(&cluster, "alice")).await
}

// Pods only.

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
async fn cluster_credentials_refused_or_an_unreachable_api_server_is_4502_and_rbac_denial_is_4403()
-> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let (code, reason) = refusal(&cluster, "alice", "/ws/k8s/exec/badcreds/dev/web-1/app").await?;
    assert_eq!(code, 4502, "{reason}");
    assert!(
        reason.contains("the relay's cluster credentials were refused"),
        "{reason}"
    );
    let (code, reason) = refusal(&cluster, "alice", "/ws/k8s/exec/down/dev/web-1/app").await?;
    assert_eq!(code, 4502, "an API server nobody answers for: {reason}");
    // Impersonating alice: the cluster lets her into dev only.
    let (code, reason) = refusal(&cluster, "alice", "/ws/k8s/exec/imp/prod/db-1/db").await?;
    assert_eq!(code, 4403, "{reason}");
    assert!(reason.contains(r#"User "alice" cannot"#), "{reason}");
    let imp = exec(&cluster, "alice", "/ws/k8s/exec/imp/dev/web-1/app");
    let (mut client, _) = contract::open_new(&imp, "").await?;
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
