//! Reading pods and namespaces with typed kube-rs APIs.

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ListParams};
use kube::discovery::Discovery;
use kube::runtime::watcher::{self, watcher};

use crate::fixture::{self, api_error};

#[tokio::test]
async fn lists_pods_of_a_namespace_as_k8s_openapi_pods() {
    let cluster = fixture::start().await;
    let client = fixture::client_for(&cluster, "alice", &[]).await;
    let pods: Api<Pod> = Api::namespaced(client, "dev");

    let list = pods.list(&ListParams::default()).await.expect("list pods");

    let names: Vec<_> = list
        .items
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    assert_eq!(names, ["web-1", "multi", "done", "starting"]);
    let web = &list.items[0];
    let status = web.status.as_ref().expect("status");
    assert_eq!(status.phase.as_deref(), Some("Running"));
    let container = &status
        .container_statuses
        .as_ref()
        .expect("container statuses")[0];
    assert_eq!(container.name, "app");
    assert_eq!(container.restart_count, 0);
    assert!(
        container
            .state
            .as_ref()
            .and_then(|s| s.running.as_ref())
            .is_some()
    );
    let multi = &list.items[1];
    let containers: Vec<_> = multi
        .spec
        .as_ref()
        .expect("spec")
        .containers
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(containers, ["a", "b"]);
}

#[tokio::test]
async fn gets_one_pod_and_404s_an_unknown_one() {
    let cluster = fixture::start().await;
    let client = fixture::client_for(&cluster, "alice", &[]).await;
    let pods: Api<Pod> = Api::namespaced(client, "dev");

    let done = pods.get("done").await.expect("get pod");
    assert_eq!(
        done.status.and_then(|s| s.phase).as_deref(),
        Some("Succeeded")
    );

    let missing = api_error(pods.get("nope").await);
    assert_eq!(missing.code, 404);
    assert_eq!(missing.reason, "NotFound");
    assert_eq!(missing.message, r#"pods "nope" not found"#);
}

#[tokio::test]
async fn restart_hook_shows_in_restart_count() {
    let cluster = fixture::start().await;
    let client = fixture::client_for(&cluster, "alice", &[]).await;
    let pods: Api<Pod> = Api::namespaced(client, "dev");

    assert_eq!(
        cluster
            .emulator
            .restart_container("dev", "web-1", "app")
            .unwrap(),
        1
    );

    let web = pods.get("web-1").await.expect("get pod");
    let status = &web
        .status
        .expect("status")
        .container_statuses
        .expect("statuses")[0];
    assert_eq!(status.restart_count, 1);
    assert!(
        status
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .is_some()
    );
}

#[tokio::test]
async fn version_discovery_and_namespaces_work_for_an_admin() {
    let cluster = fixture::start().await;
    let client = fixture::client_for(&cluster, "admin", &[]).await;

    let version = client.apiserver_version().await.expect("version");
    assert_eq!(version.major, "1");

    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    assert!(discovery.groups().any(|g| g.name() == ""));

    let namespaces: Api<Namespace> = Api::all(client);
    let names: Vec<_> = namespaces
        .list(&ListParams::default())
        .await
        .expect("list namespaces")
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert_eq!(names, ["dev", "empty", "prod"]);
}

async fn next_event(
    stream: &mut (impl futures::Stream<Item = Result<watcher::Event<Pod>, watcher::Error>> + Unpin),
) -> watcher::Event<Pod> {
    tokio::time::timeout(fixture::PATIENCE, stream.next())
        .await
        .expect("an event arrives")
        .expect("the stream goes on")
        .expect("no watch error")
}

fn phase_of(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

#[tokio::test]
async fn runtime_watcher_lists_then_sees_phase_changes() {
    let cluster = fixture::start().await;
    let pods: Api<Pod> = Api::namespaced(fixture::client_for(&cluster, "alice", &[]).await, "dev");
    let config = watcher::Config::default().labels("app in (web-1, done)");
    let mut stream = watcher(pods, config).boxed();

    assert!(matches!(
        next_event(&mut stream).await,
        watcher::Event::Init
    ));
    let mut listed = Vec::new();
    loop {
        match next_event(&mut stream).await {
            watcher::Event::InitApply(pod) => listed.push(pod.metadata.name.unwrap_or_default()),
            watcher::Event::InitDone => break,
            other => panic!("unexpected event during the initial list: {other:?}"),
        }
    }
    assert_eq!(listed, ["web-1", "done"]);

    cluster
        .emulator
        .set_pod_phase("dev", "web-1", k8s_emulator::PodPhase::Failed)
        .expect("phase set");
    match next_event(&mut stream).await {
        watcher::Event::Apply(pod) => {
            assert_eq!(pod.metadata.name.as_deref(), Some("web-1"));
            assert_eq!(phase_of(&pod), Some("Failed"));
        }
        other => panic!("expected an Apply, got {other:?}"),
    }

    // A change to a pod outside the selector is not seen; the next event is
    // the restart of web-1.
    cluster
        .emulator
        .set_pod_phase("dev", "multi", k8s_emulator::PodPhase::Failed)
        .expect("phase set");
    cluster
        .emulator
        .restart_container("dev", "web-1", "app")
        .expect("restarted");
    match next_event(&mut stream).await {
        watcher::Event::Apply(pod) => {
            let status = pod.status.expect("status");
            assert_eq!(
                status.container_statuses.expect("statuses")[0].restart_count,
                1
            );
        }
        other => panic!("expected an Apply, got {other:?}"),
    }
}
