//! What the picker lists: `/api/targets`, `/api/k8s/{cluster}/namespaces[/{ns}/pods]`.

use common::api::{ApiError, ClusterTarget, PodInfo, Targets};

use crate::fixture::Cluster;

async fn get<T: serde::de::DeserializeOwned>(
    cluster: &Cluster,
    user: &str,
    path: &str,
) -> anyhow::Result<(u16, Result<T, ApiError>)> {
    let response = reqwest::Client::new()
        .get(cluster.relay.http_url(path))
        .bearer_auth(cluster.relay.token(user))
        .send()
        .await?;
    let status = response.status().as_u16();
    let body = if response.status().is_success() {
        Ok(response.json::<T>().await?)
    } else {
        Err(response.json::<ApiError>().await?)
    };
    Ok((status, body))
}

#[tokio::test]
async fn targets_list_clusters_with_the_namespaces_granted() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let (_, bob) = get::<Targets>(&cluster, "bob", "/api/targets").await?;
    assert_eq!(
        bob.map_err(|e| anyhow::anyhow!(e.error))?.k8s,
        [ClusterTarget {
            id: "main".into(),
            label: "Main".into(),
            namespaces: vec!["dev".into()],
            file_access: Default::default(),
        }]
    );
    let (_, alice) = get::<Targets>(&cluster, "alice", "/api/targets").await?;
    let alice = alice.map_err(|e| anyhow::anyhow!(e.error))?;
    let ids: Vec<&str> = alice.k8s.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["main", "imp", "certs", "badcreds", "down"]);
    assert!(alice.k8s.iter().all(|c| c.namespaces == ["*"]));
    Ok(())
}

#[tokio::test]
async fn namespaces_are_the_grants_intersected_with_the_cluster() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    // Explicit api_url + CA + client certificate files.
    let (code, all) = get::<Vec<String>>(&cluster, "alice", "/api/k8s/certs/namespaces").await?;
    assert_eq!(code, 200, "{all:?}");
    assert_eq!(
        all.map_err(|e| anyhow::anyhow!(e.error))?,
        ["dev", "empty", "prod"]
    );
    let (_, bob) = get::<Vec<String>>(&cluster, "bob", "/api/k8s/main/namespaces").await?;
    assert_eq!(bob.map_err(|e| anyhow::anyhow!(e.error))?, ["dev"]);
    let (code, none) = get::<Vec<String>>(&cluster, "bob", "/api/k8s/certs/namespaces").await?;
    assert_eq!(code, 403, "{none:?}");
    // Impersonated, alice may not list namespaces at the cluster scope.
    let (code, refused) = get::<Vec<String>>(&cluster, "alice", "/api/k8s/imp/namespaces").await?;
    assert_eq!(code, 403);
    let message = refused.err().map(|e| e.error).unwrap_or_default();
    assert!(message.contains(r#"User "alice" cannot list"#), "{message}");
    let (code, _) = get::<Vec<String>>(&cluster, "alice", "/api/k8s/badcreds/namespaces").await?;
    assert_eq!(code, 502);
    let (code, _) = get::<Vec<String>>(&cluster, "alice", "/api/k8s/nowhere/namespaces").await?;
    assert_eq!(code, 404);
    Ok(())
}

#[tokio::test]
async fn pods_list_names_phases_and_containers() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let (code, pods) =
        get::<Vec<PodInfo>>(&cluster, "bob", "/api/k8s/main/namespaces/dev/pods").await?;
    assert_eq!(code, 200, "{pods:?}");
    let pods = pods.map_err(|e| anyhow::anyhow!(e.error))?;
    let pod = |name: &str, phase: &str, containers: &[&str]| PodInfo {
        name: name.into(),
        phase: phase.into(),
        containers: containers.iter().map(|c| c.to_string()).collect(),
    };
    assert_eq!(
        pods,
        [
            pod("web-1", "Running", &["app"]),
            pod("multi", "Running", &["a", "b"]),
            pod("done", "Succeeded", &["job"]),
        ]
    );
    let (code, _) =
        get::<Vec<PodInfo>>(&cluster, "bob", "/api/k8s/main/namespaces/prod/pods").await?;
    assert_eq!(code, 403);
    let (code, _) =
        get::<Vec<PodInfo>>(&cluster, "alice", "/api/k8s/imp/namespaces/prod/pods").await?;
    assert_eq!(code, 403);
    Ok(())
}
