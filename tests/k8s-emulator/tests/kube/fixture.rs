//! One emulated cluster for every scenario, and kube clients for it.
//!
//! | namespace | pod      | phase     | containers |
//! |-----------|----------|-----------|------------|
//! | dev       | web-1    | Running   | app        |
//! | dev       | multi    | Running   | a, b       |
//! | dev       | done     | Succeeded | job        |
//! | dev       | starting | Pending   | app        |
//! | prod      | db-1     | Running   | db         |
//!
//! Identities: `alice` may do anything in `dev`; group `ops` anything in
//! `prod`; `admin` anything anywhere; `relay` may only impersonate; the
//! bearer token `viewer-token` is user `viewer`, who may only get/list pods
//! and read logs in `dev`.

use std::path::PathBuf;
use std::time::Duration;

use k8s_emulator::{
    AccessRule, ContainerConfig, Emulator, EmulatorConfig, PodConfig, PodPhase, Subject,
    TokenConfig,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Upper bound for anything a test awaits; a hang fails instead of blocking CI.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub struct Cluster {
    pub emulator: Emulator,
    pub dir: tempfile::TempDir,
}

impl Cluster {
    pub fn log_file(&self, pod: &str, container: &str) -> PathBuf {
        self.dir.path().join(format!("{pod}-{container}.log"))
    }
}

fn pod(
    dir: &std::path::Path,
    ns: &str,
    name: &str,
    phase: PodPhase,
    containers: &[&str],
) -> PodConfig {
    PodConfig {
        namespace: ns.into(),
        name: name.into(),
        phase,
        labels: [("app".to_string(), name.to_string())].into(),
        containers: containers
            .iter()
            .map(|c| ContainerConfig {
                name: c.to_string(),
                image: format!("registry.local/{c}:1.0"),
                log_file: dir.join(format!("{name}-{c}.log")),
                restart_count: 0,
                working_dir: None,
                path: None,
            })
            .collect(),
    }
}

pub async fn start() -> Cluster {
    // kube-rs builds its rustls config from the process-wide provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("temp dir");
    let p = dir.path();
    let config = EmulatorConfig {
        pods: vec![
            pod(p, "dev", "web-1", PodPhase::Running, &["app"]),
            pod(p, "dev", "multi", PodPhase::Running, &["a", "b"]),
            pod(p, "dev", "done", PodPhase::Succeeded, &["job"]),
            pod(p, "dev", "starting", PodPhase::Pending, &["app"]),
            pod(p, "prod", "db-1", PodPhase::Running, &["db"]),
        ],
        namespaces: vec!["empty".into()],
        tokens: vec![TokenConfig {
            token: "viewer-token".into(),
            user: "viewer".into(),
            groups: vec!["viewers".into()],
        }],
        access: vec![
            AccessRule::namespaces(Subject::User("alice".into()), &["dev"]),
            AccessRule::namespaces(Subject::Group("ops".into()), &["prod"]),
            AccessRule::cluster_admin(Subject::User("admin".into())),
            AccessRule::impersonator(Subject::User("relay".into())),
            AccessRule::namespaces(Subject::User("viewer".into()), &["dev"])
                .with_verbs(&["get", "list"])
                .with_resources(&["pods", "pods/log"]),
        ],
        ..Default::default()
    };
    let emulator = Emulator::start(config).await.expect("emulator starts");
    Cluster { emulator, dir }
}

/// A client configured exactly as a user would: from a kubeconfig file.
pub async fn client_for(cluster: &Cluster, user: &str, groups: &[&str]) -> Client {
    let path = cluster.dir.path().join(format!("kubeconfig-{user}"));
    cluster
        .emulator
        .write_kubeconfig(&path, user, groups)
        .expect("kubeconfig written");
    let kubeconfig = Kubeconfig::read_from(&path).expect("kubeconfig parses");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig is usable");
    Client::try_from(config).expect("client builds")
}

/// A client that trusts the CA but presents no credentials.
pub fn anonymous_client(cluster: &Cluster) -> Client {
    let mut config = Config::new(cluster.emulator.url().parse().expect("url"));
    config.root_cert = Some(vec![cluster.emulator.ca_der().to_vec()]);
    Client::try_from(config).expect("client builds")
}

/// A client using a bearer token.
pub fn token_client(cluster: &Cluster, token: &str) -> Client {
    let mut config = Config::new(cluster.emulator.url().parse().expect("url"));
    config.root_cert = Some(vec![cluster.emulator.ca_der().to_vec()]);
    config.auth_info.token = Some(token.to_string().into());
    Client::try_from(config).expect("client builds")
}

/// The `metav1.Status` of a failed call.
pub fn api_error<T>(result: Result<T, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        Err(other) => panic!("expected an API error, got {other:?}"),
        Ok(_) => panic!("expected an API error, got success"),
    }
}
