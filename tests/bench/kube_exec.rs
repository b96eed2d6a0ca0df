//! The Kubernetes exec limit: the Kubernetes API emulator (`tests/k8s-emulator`, real exec
//! over the `v5.channel.k8s.io` WebSocket protocol, a real PTY behind it) and a direct
//! kube-rs client to it, started as the relay starts its pod shells, so the same
//! [`Terminal`] measurements run with and without the relay in the path.

use std::path::PathBuf;

use anyhow::Context;
use bytes::Bytes;
use common::TermSize;
use k8s_emulator::{
    AccessRule, ContainerConfig, Emulator, EmulatorConfig, PodConfig, PodPhase, Subject,
};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{AttachParams, AttachedProcess};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use opsdeck_tests::load::Terminal;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, SimplexStream, WriteHalf};

/// The pod the workload execs into: namespace, pod, container.
pub const POD: (&str, &str, &str) = ("bench", "web-1", "app");
/// The relay's `k8s.exec_output_buffer_bytes` default, given to the direct client too.
const OUTPUT_BUFFER: usize = 64 * 1024;

/// An emulated cluster with one running pod, and a kubeconfig (cluster admin) for it.
pub struct K8sCluster {
    _emulator: Emulator,
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl K8sCluster {
    pub async fn start() -> anyhow::Result<Self> {
        // kube-rs builds its rustls config from the process-wide provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir()?;
        let (namespace, pod, container) = POD;
        let config = EmulatorConfig {
            pods: vec![PodConfig {
                namespace: namespace.into(),
                name: pod.into(),
                phase: PodPhase::Running,
                labels: Default::default(),
                containers: vec![ContainerConfig {
                    name: container.into(),
                    image: "registry.local/app:1.0".into(),
                    log_file: dir.path().join("app.log"),
                    restart_count: 0,
                    working_dir: None,
                    path: None,
                }],
            }],
            access: vec![AccessRule::cluster_admin(Subject::User(
                "opsdeck-relay".into(),
            ))],
            ..Default::default()
        };
        let emulator = Emulator::start(config)
            .await
            .context("starting the Kubernetes emulator")?;
        let kubeconfig = dir.path().join("kubeconfig");
        emulator.write_kubeconfig(&kubeconfig, "opsdeck-relay", &[])?;
        Ok(Self {
            _emulator: emulator,
            _dir: dir,
            kubeconfig,
        })
    }

    /// The relay's `[[k8s_clusters]]` entry for this cluster, id `bench`.
    pub fn relay_toml(&self) -> String {
        format!(
            "[[k8s_clusters]]\nid = \"bench\"\nkubeconfig = \"{}\"\n",
            self.kubeconfig.display()
        )
    }

    /// The relay's WebSocket path of the pod shell.
    pub fn relay_path(&self) -> String {
        let (namespace, pod, container) = POD;
        format!("/ws/k8s/exec/bench/{namespace}/{pod}/{container}")
    }

    /// A kube-rs client with the same credentials the relay has.
    pub async fn client(&self) -> anyhow::Result<Client> {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)?;
        let config =
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        Ok(Client::try_from(config)?)
    }
}

/// `kubectl exec -it` through kube-rs directly, with the relay's command and buffer size.
pub struct KubeExecTerminal {
    process: AttachedProcess,
    stdin: WriteHalf<SimplexStream>,
    stdout: ReadHalf<SimplexStream>,
    buffer: Vec<u8>,
}

impl KubeExecTerminal {
    pub async fn open(client: &Client) -> anyhow::Result<Self> {
        let (namespace, pod, container) = POD;
        let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let params = AttachParams::interactive_tty()
            .container(container)
            .max_stdout_buf_size(OUTPUT_BUFFER);
        let mut process = api
            .exec(pod, relay::shell_command(TermSize::default()), &params)
            .await
            .context("exec in the emulated pod")?;
        let stdin = process.stdin().context("the exec has no stdin")?;
        let stdout = process.stdout().context("the exec has no stdout")?;
        Ok(Self {
            process,
            stdin,
            stdout,
            buffer: vec![0; 32 * 1024],
        })
    }
}

impl Terminal for KubeExecTerminal {
    async fn type_keys(&mut self, keys: &str) -> anyhow::Result<()> {
        self.stdin.write_all(keys.as_bytes()).await?;
        self.stdin.flush().await?;
        Ok(())
    }

    async fn output(&mut self) -> anyhow::Result<Bytes> {
        let n = self.stdout.read(&mut self.buffer).await?;
        anyhow::ensure!(n > 0, "the exec session ended");
        Ok(Bytes::copy_from_slice(&self.buffer[..n]))
    }
}

impl Drop for KubeExecTerminal {
    fn drop(&mut self) {
        self.process.abort();
    }
}
