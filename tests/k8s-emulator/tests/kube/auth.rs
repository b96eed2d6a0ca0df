//! Authentication, authorization and impersonation, as kube-rs sees them.

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::fixture::{self, api_error};

#[tokio::test]
async fn no_credentials_is_401_unauthorized() {
    let cluster = fixture::start().await;
    let pods: Api<Pod> = Api::namespaced(fixture::anonymous_client(&cluster), "dev");

    let status = api_error(pods.list(&ListParams::default()).await);

    assert_eq!(status.code, 401);
    assert_eq!(status.reason, "Unauthorized");
    assert_eq!(status.message, "Unauthorized");
}

#[tokio::test]
async fn unknown_bearer_token_is_401_and_a_known_one_authenticates() {
    let cluster = fixture::start().await;
    let bad: Api<Pod> = Api::namespaced(fixture::token_client(&cluster, "guess"), "dev");
    assert_eq!(api_error(bad.list(&ListParams::default()).await).code, 401);

    let viewer: Api<Pod> = Api::namespaced(fixture::token_client(&cluster, "viewer-token"), "dev");
    let list = viewer
        .list(&ListParams::default())
        .await
        .expect("viewer lists pods");
    assert_eq!(list.items.len(), 4);
}

#[tokio::test]
async fn forbidden_namespace_is_403_with_the_api_server_message() {
    let cluster = fixture::start().await;
    let client = fixture::client_for(&cluster, "alice", &[]).await;

    let prod: Api<Pod> = Api::namespaced(client.clone(), "prod");
    let status = api_error(prod.get("db-1").await);
    assert_eq!(status.code, 403);
    assert_eq!(status.reason, "Forbidden");
    assert_eq!(
        status.message,
        r#"pods "db-1" is forbidden: User "alice" cannot get resource "pods" in API group "" in the namespace "prod""#
    );

    let list = api_error(prod.list(&ListParams::default()).await);
    assert_eq!(
        list.message,
        r#"pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "prod""#
    );

    let namespaces: Api<Namespace> = Api::all(client);
    let cluster_scope = api_error(namespaces.list(&ListParams::default()).await);
    assert_eq!(
        cluster_scope.message,
        r#"namespaces is forbidden: User "alice" cannot list resource "namespaces" in API group "" at the cluster scope"#
    );
}

#[tokio::test]
async fn certificate_groups_grant_access() {
    let cluster = fixture::start().await;
    let client = fixture::client_for(&cluster, "carol", &["ops", "oncall"]).await;

    let prod: Api<Pod> = Api::namespaced(client.clone(), "prod");
    assert_eq!(
        prod.list(&ListParams::default())
            .await
            .expect("ops lists prod")
            .items
            .len(),
        1
    );

    let dev: Api<Pod> = Api::namespaced(client, "dev");
    assert_eq!(api_error(dev.list(&ListParams::default()).await).code, 403);
}

async fn impersonating_client(
    cluster: &fixture::Cluster,
    as_user: &str,
    as_groups: &[&str],
) -> Client {
    let yaml = cluster
        .emulator
        .kubeconfig("relay", &[])
        .expect("kubeconfig");
    let kubeconfig = Kubeconfig::from_yaml(&yaml).expect("parses");
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("usable");
    config.auth_info.impersonate = Some(as_user.to_string());
    config.auth_info.impersonate_groups = Some(as_groups.iter().map(|g| g.to_string()).collect());
    Client::try_from(config).expect("client")
}

#[tokio::test]
async fn impersonation_decides_rbac_for_the_impersonated_user() {
    let cluster = fixture::start().await;

    let as_alice = impersonating_client(&cluster, "alice", &[]).await;
    let dev: Api<Pod> = Api::namespaced(as_alice.clone(), "dev");
    assert_eq!(
        dev.list(&ListParams::default())
            .await
            .expect("as alice")
            .items
            .len(),
        4
    );
    let prod: Api<Pod> = Api::namespaced(as_alice, "prod");
    let denied = api_error(prod.list(&ListParams::default()).await);
    assert!(
        denied.message.contains(r#"User "alice" cannot list"#),
        "{}",
        denied.message
    );

    let as_ops = impersonating_client(&cluster, "dave", &["ops"]).await;
    let prod: Api<Pod> = Api::namespaced(as_ops, "prod");
    assert_eq!(
        prod.list(&ListParams::default())
            .await
            .expect("as dave in ops")
            .items
            .len(),
        1
    );

    let audit = cluster.emulator.audit_log();
    let last = audit.last().expect("audited");
    assert_eq!(last.user, "dave");
    assert_eq!(last.impersonated_by.as_deref(), Some("relay"));
}

#[tokio::test]
async fn impersonation_without_permission_is_403() {
    let cluster = fixture::start().await;
    let yaml = cluster
        .emulator
        .kubeconfig("alice", &[])
        .expect("kubeconfig");
    let kubeconfig = Kubeconfig::from_yaml(&yaml).expect("parses");
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("usable");
    config.auth_info.impersonate = Some("admin".into());
    let pods: Api<Pod> = Api::namespaced(Client::try_from(config).expect("client"), "dev");

    let status = api_error(pods.list(&ListParams::default()).await);

    assert_eq!(status.code, 403);
    assert_eq!(
        status.message,
        r#"users "admin" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster scope"#
    );
}

#[tokio::test]
async fn explicit_config_with_url_ca_and_client_certificate_authenticates() {
    use base64::Engine;
    let cluster = fixture::start().await;
    let identity = cluster
        .emulator
        .client_identity("alice", &[])
        .expect("identity");
    let b64 = base64::engine::general_purpose::STANDARD;

    let mut config = Config::new(cluster.emulator.url().parse().expect("url"));
    config.root_cert = Some(vec![cluster.emulator.ca_der().to_vec()]);
    config.auth_info.client_certificate_data = Some(b64.encode(&identity.cert_pem));
    config.auth_info.client_key_data = Some(b64.encode(&identity.key_pem).into());
    let pods: Api<Pod> = Api::namespaced(Client::try_from(config).expect("client"), "dev");

    assert_eq!(
        pods.list(&ListParams::default())
            .await
            .expect("list")
            .items
            .len(),
        4
    );
    assert_eq!(
        cluster.emulator.audit_log().last().map(|e| e.user.as_str()),
        Some("alice")
    );
}
