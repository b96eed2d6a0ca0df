//! The cluster's state: namespaces, pods, containers, and their JSON.
//!
//! Pods are fixed at start (from [`EmulatorConfig`]); what changes at run
//! time is a pod's phase and a container's restarts, through test hooks.
//! JSON follows the `core/v1` shapes k8s-openapi deserializes: a `PodList`'s
//! items carry no `kind`/`apiVersion` (as from the real server), a single
//! `Pod` does. Each change bumps a cluster-wide `resourceVersion`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::{broadcast, watch};

use crate::config::{EmulatorConfig, PodPhase};
use crate::selector::{Selectable, Selector};
use crate::status::Status;

/// Pod changes buffered per watcher before it is told it fell behind.
const WATCH_BUFFER: usize = 1024;

/// Name of the node every pod is bound to.
pub const NODE_NAME: &str = "emulator-node";

/// Wake-ups for log readers of one container.
#[derive(Debug)]
pub struct LogSignals {
    /// Bumped when the log file may have grown (append hook, inotify, phase
    /// change).
    pub changed: watch::Sender<u64>,
    /// Bumped to end every open follow stream (end-follow hook, restart).
    pub cut: watch::Sender<u64>,
}

impl LogSignals {
    fn new() -> Arc<Self> {
        Arc::new(LogSignals {
            changed: watch::Sender::new(0),
            cut: watch::Sender::new(0),
        })
    }

    /// Wakes log readers to re-read the file.
    pub fn notify_changed(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    /// Ends open follow streams.
    pub fn cut_follows(&self) -> usize {
        let followers = self.cut.receiver_count();
        self.cut.send_modify(|v| *v += 1);
        followers
    }
}

#[derive(Debug)]
struct Container {
    name: String,
    image: String,
    log_file: PathBuf,
    previous_log: Option<PathBuf>,
    restart_count: u32,
    working_dir: Option<PathBuf>,
    path: Option<String>,
    started_at: OffsetDateTime,
    container_id: String,
    last_run: Option<(OffsetDateTime, OffsetDateTime, String)>,
    signals: Arc<LogSignals>,
}

#[derive(Debug)]
struct Pod {
    namespace: String,
    name: String,
    uid: String,
    phase: PodPhase,
    labels: BTreeMap<String, String>,
    created: OffsetDateTime,
    resource_version: u64,
    containers: Vec<Container>,
}

#[derive(Debug)]
struct State {
    resource_version: u64,
    pods: Vec<Pod>,
    namespaces: Vec<String>,
    /// Every pod change since start, for watches resuming from a
    /// resourceVersion.
    history: Vec<Arc<PodEvent>>,
}

/// The emulated cluster.
#[derive(Debug)]
pub struct Cluster {
    state: Mutex<State>,
    created: OffsetDateTime,
    events: broadcast::Sender<Arc<PodEvent>>,
}

/// One change of a pod, as a watch reports it.
#[derive(Debug)]
pub struct PodEvent {
    /// `ADDED` or `MODIFIED`.
    pub event_type: &'static str,
    /// The pod's resourceVersion after the change.
    pub resource_version: u64,
    /// The pod (with kind and apiVersion).
    pub object: Value,
    namespace: String,
    name: String,
    phase: PodPhase,
    labels: BTreeMap<String, String>,
}

impl PodEvent {
    fn of(event_type: &'static str, pod: &Pod) -> Arc<Self> {
        Arc::new(PodEvent {
            event_type,
            resource_version: pod.resource_version,
            object: pod_json(pod, true),
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            phase: pod.phase,
            labels: pod.labels.clone(),
        })
    }

    /// Whether a watch of `namespace` (None: all namespaces) with
    /// `selector` sees this event.
    pub fn visible(&self, namespace: Option<&str>, selector: &Selector) -> bool {
        namespace.is_none_or(|ns| self.namespace == ns)
            && selector.matches(&Selectable {
                labels: &self.labels,
                name: &self.name,
                namespace: &self.namespace,
                phase: self.phase.as_str(),
                node_name: NODE_NAME,
            })
    }
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy)]
pub enum WatchStart {
    /// `resourceVersion` unset or `0`: synthetic ADDED events for every
    /// current pod, then changes.
    Now,
    /// After this resourceVersion: the changes since.
    After(u64),
}

/// What exec and logs need to know about one container.
#[derive(Debug, Clone)]
pub struct ContainerView {
    /// Namespace of the pod.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Container name.
    pub container: String,
    /// Pod phase at lookup time.
    pub phase: PodPhase,
    /// Current log file.
    pub log_file: PathBuf,
    /// Log file of the previous instance, after a restart.
    pub previous_log: Option<PathBuf>,
    /// Working directory for exec.
    pub working_dir: Option<PathBuf>,
    /// `PATH` for exec (None: the emulator's).
    pub path: Option<String>,
    /// Log wake-ups.
    pub signals: Arc<LogSignals>,
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

fn random_uid() -> String {
    let h = random_hex(16);
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// `metav1.Time`: RFC 3339 with second precision, UTC.
pub fn meta_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The path a container's previous log is moved to on restart.
pub fn previous_log_path(log_file: &Path) -> PathBuf {
    let mut name = log_file.as_os_str().to_owned();
    name.push(".previous");
    PathBuf::from(name)
}

impl Cluster {
    /// Builds the cluster from config, creating missing log files.
    pub fn new(config: &EmulatorConfig) -> std::io::Result<Self> {
        let now = OffsetDateTime::now_utc();
        let mut pods = Vec::new();
        for (i, p) in config.pods.iter().enumerate() {
            let mut containers = Vec::new();
            for c in &p.containers {
                if let Some(parent) = c.log_file.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&c.log_file)?;
                let previous = previous_log_path(&c.log_file);
                containers.push(Container {
                    name: c.name.clone(),
                    image: c.image.clone(),
                    log_file: c.log_file.clone(),
                    previous_log: (c.restart_count > 0 && previous.exists()).then_some(previous),
                    restart_count: c.restart_count,
                    working_dir: c.working_dir.clone(),
                    path: c.path.clone(),
                    started_at: now,
                    container_id: format!("containerd://{}", random_hex(32)),
                    last_run: (c.restart_count > 0)
                        .then(|| (now, now, format!("containerd://{}", random_hex(32)))),
                    signals: LogSignals::new(),
                });
            }
            pods.push(Pod {
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                uid: random_uid(),
                phase: p.phase,
                labels: p.labels.clone(),
                created: now,
                resource_version: 100 + i as u64,
                containers,
            });
        }
        let mut namespaces: Vec<String> = config
            .namespaces
            .iter()
            .cloned()
            .chain(pods.iter().map(|p| p.namespace.clone()))
            .collect();
        namespaces.sort();
        namespaces.dedup();
        Ok(Cluster {
            state: Mutex::new(State {
                resource_version: 100 + pods.len() as u64,
                pods,
                namespaces,
                history: Vec::new(),
            }),
            created: now,
            events: broadcast::Sender::new(WATCH_BUFFER),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every log file with its signals, for the file watcher.
    pub fn log_files(&self) -> Vec<(PathBuf, Arc<LogSignals>)> {
        self.lock()
            .pods
            .iter()
            .flat_map(|p| p.containers.iter())
            .map(|c| (c.log_file.clone(), c.signals.clone()))
            .collect()
    }

    /// `NamespaceList` JSON.
    pub fn namespace_list(&self) -> Value {
        let state = self.lock();
        let items: Vec<Value> = state
            .namespaces
            .iter()
            .map(|ns| self.namespace_json(ns, false))
            .collect();
        json!({
            "kind": "NamespaceList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": state.resource_version.to_string()},
            "items": items,
        })
    }

    /// `Namespace` JSON, or 404.
    pub fn namespace(&self, name: &str) -> Result<Value, Status> {
        let state = self.lock();
        if state.namespaces.iter().any(|n| n == name) {
            Ok(self.namespace_json(name, true))
        } else {
            Err(Status::not_found("namespaces", name))
        }
    }

    fn namespace_json(&self, name: &str, with_kind: bool) -> Value {
        let mut value = json!({
            "metadata": {
                "name": name,
                "uid": format!("00000000-0000-4000-8000-{:012x}", name.len()),
                "resourceVersion": "1",
                "creationTimestamp": meta_time(self.created),
                "labels": {"kubernetes.io/metadata.name": name},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        });
        if with_kind {
            add_type_meta(&mut value, "Namespace");
        }
        value
    }

    /// `PodList` JSON for a namespace, or all namespaces when None (empty
    /// for unknown namespaces, as the real server answers).
    pub fn pod_list(&self, namespace: Option<&str>, selector: &Selector) -> Value {
        let state = self.lock();
        let items: Vec<Value> = state
            .pods
            .iter()
            .filter(|p| {
                namespace.is_none_or(|ns| p.namespace == ns) && selector.matches(&selectable(p))
            })
            .map(|p| pod_json(p, false))
            .collect();
        json!({
            "kind": "PodList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": state.resource_version.to_string()},
            "items": items,
        })
    }

    /// The events a new watch starts with, and the receiver of later ones
    /// (taken under one lock, so nothing falls between them), plus the
    /// current resourceVersion.
    pub fn watch_pods(
        &self,
        namespace: Option<&str>,
        selector: &Selector,
        start: WatchStart,
    ) -> (Vec<Arc<PodEvent>>, broadcast::Receiver<Arc<PodEvent>>, u64) {
        let state = self.lock();
        let receiver = self.events.subscribe();
        let initial = match start {
            WatchStart::Now => state
                .pods
                .iter()
                .map(|p| PodEvent::of("ADDED", p))
                .filter(|e| e.visible(namespace, selector))
                .collect(),
            WatchStart::After(version) => state
                .history
                .iter()
                .filter(|e| e.resource_version > version && e.visible(namespace, selector))
                .cloned()
                .collect(),
        };
        (initial, receiver, state.resource_version)
    }

    /// Namespace objects for a namespace watch (they never change).
    pub fn namespace_objects(&self) -> Vec<Value> {
        let state = self.lock();
        state
            .namespaces
            .iter()
            .map(|ns| self.namespace_json(ns, true))
            .collect()
    }

    /// `Pod` JSON, or 404 `pods "x" not found`.
    pub fn pod(&self, namespace: &str, name: &str) -> Result<Value, Status> {
        let state = self.lock();
        find_pod(&state, namespace, name).map(|p| pod_json(p, true))
    }

    /// Resolves the container an exec or log request targets, with the API
    /// server's `validateContainer` rules and messages.
    pub fn container(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
    ) -> Result<ContainerView, Status> {
        let state = self.lock();
        let p = find_pod(&state, namespace, pod)?;
        let c = match container.filter(|c| !c.is_empty()) {
            Some(name) => p
                .containers
                .iter()
                .find(|c| c.name == name)
                .ok_or_else(|| {
                    Status::bad_request(format!("container {name} is not valid for pod {pod}"))
                })?,
            None => match p.containers.as_slice() {
                [only] => only,
                [] => {
                    return Err(Status::bad_request(format!(
                        "a container name must be specified for pod {pod}"
                    )));
                }
                many => {
                    let names: Vec<&str> = many.iter().map(|c| c.name.as_str()).collect();
                    return Err(Status::bad_request(format!(
                        "a container name must be specified for pod {pod}, choose one of: [{}]",
                        names.join(" ")
                    )));
                }
            },
        };
        Ok(ContainerView {
            namespace: p.namespace.clone(),
            pod: p.name.clone(),
            container: c.name.clone(),
            phase: p.phase,
            log_file: c.log_file.clone(),
            previous_log: c.previous_log.clone(),
            working_dir: c.working_dir.clone(),
            path: c.path.clone(),
            signals: c.signals.clone(),
        })
    }

    /// The current phase of a pod (None once it is gone).
    pub fn phase(&self, namespace: &str, pod: &str) -> Option<PodPhase> {
        let state = self.lock();
        find_pod(&state, namespace, pod).ok().map(|p| p.phase)
    }

    /// Sets a pod's phase and wakes its log readers.
    pub fn set_phase(&self, namespace: &str, pod: &str, phase: PodPhase) -> Result<(), Status> {
        let mut state = self.lock();
        state.resource_version += 1;
        let rv = state.resource_version;
        let p = find_pod_mut(&mut state, namespace, pod)?;
        p.phase = phase;
        p.resource_version = rv;
        for c in &p.containers {
            c.signals.notify_changed();
        }
        let event = PodEvent::of("MODIFIED", p);
        self.publish(&mut state, event);
        Ok(())
    }

    fn publish(&self, state: &mut State, event: Arc<PodEvent>) {
        state.history.push(event.clone());
        // No receivers is fine.
        let _ = self.events.send(event);
    }

    /// Restarts a container: bumps `restartCount`, moves the current log to
    /// `<log_file>.previous` (served by `previous=true`), starts an empty
    /// log file, and ends follow streams of the old instance.
    pub fn restart(&self, namespace: &str, pod: &str, container: &str) -> Result<u32, Status> {
        let mut state = self.lock();
        state.resource_version += 1;
        let rv = state.resource_version;
        let p = find_pod_mut(&mut state, namespace, pod)?;
        p.resource_version = rv;
        let c = p
            .containers
            .iter_mut()
            .find(|c| c.name == container)
            .ok_or_else(|| {
                Status::bad_request(format!("container {container} is not valid for pod {pod}"))
            })?;
        let previous = previous_log_path(&c.log_file);
        std::fs::rename(&c.log_file, &previous)
            .and_then(|()| std::fs::File::create(&c.log_file).map(drop))
            .map_err(|e| {
                Status::internal_error(format!("rotating {}: {e}", c.log_file.display()))
            })?;
        let now = OffsetDateTime::now_utc();
        c.last_run = Some((c.started_at, now, c.container_id.clone()));
        c.started_at = now;
        c.container_id = format!("containerd://{}", random_hex(32));
        c.previous_log = Some(previous);
        c.restart_count += 1;
        c.signals.cut_follows();
        c.signals.notify_changed();
        let restarts = c.restart_count;
        let event = PodEvent::of("MODIFIED", p);
        self.publish(&mut state, event);
        Ok(restarts)
    }

    /// The log signals of a container.
    pub fn signals(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Result<Arc<LogSignals>, Status> {
        self.container(namespace, pod, Some(container))
            .map(|c| c.signals)
    }
}

fn selectable(p: &Pod) -> Selectable<'_> {
    Selectable {
        labels: &p.labels,
        name: &p.name,
        namespace: &p.namespace,
        phase: p.phase.as_str(),
        node_name: NODE_NAME,
    }
}

fn find_pod<'a>(state: &'a State, namespace: &str, name: &str) -> Result<&'a Pod, Status> {
    state
        .pods
        .iter()
        .find(|p| p.namespace == namespace && p.name == name)
        .ok_or_else(|| Status::not_found("pods", name))
}

fn find_pod_mut<'a>(
    state: &'a mut State,
    namespace: &str,
    name: &str,
) -> Result<&'a mut Pod, Status> {
    state
        .pods
        .iter_mut()
        .find(|p| p.namespace == namespace && p.name == name)
        .ok_or_else(|| Status::not_found("pods", name))
}

fn add_type_meta(value: &mut Value, kind: &str) {
    if let Value::Object(map) = value {
        let mut typed = serde_json::Map::new();
        typed.insert("kind".into(), kind.into());
        typed.insert("apiVersion".into(), "v1".into());
        typed.append(map);
        *map = typed;
    }
}

fn pod_json(p: &Pod, with_kind: bool) -> Value {
    let running = p.phase == PodPhase::Running;
    let scheduled_condition = |kind: &str, ok: bool| {
        json!({
            "type": kind,
            "status": if ok { "True" } else { "False" },
            "lastProbeTime": null,
            "lastTransitionTime": meta_time(p.created),
        })
    };
    let conditions = vec![
        scheduled_condition("PodReadyToStartContainers", p.phase != PodPhase::Pending),
        scheduled_condition("Initialized", true),
        scheduled_condition("Ready", running),
        scheduled_condition("ContainersReady", running),
        scheduled_condition("PodScheduled", true),
    ];
    let specs: Vec<Value> = p
        .containers
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "image": c.image,
                "resources": {},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent",
            })
        })
        .collect();
    let statuses: Vec<Value> = p
        .containers
        .iter()
        .map(|c| container_status(p, c))
        .collect();
    let mut value = json!({
        "metadata": {
            "name": p.name,
            "namespace": p.namespace,
            "uid": p.uid,
            "resourceVersion": p.resource_version.to_string(),
            "creationTimestamp": meta_time(p.created),
            "labels": p.labels,
        },
        "spec": {
            "containers": specs,
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "serviceAccount": "default",
            "nodeName": NODE_NAME,
            "securityContext": {},
            "schedulerName": "default-scheduler",
            "priority": 0,
            "enableServiceLinks": true,
            "preemptionPolicy": "PreemptLowerPriority",
        },
        "status": {
            "phase": p.phase.as_str(),
            "conditions": conditions,
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": meta_time(p.created),
            "containerStatuses": statuses,
            "qosClass": "BestEffort",
        },
    });
    if with_kind {
        add_type_meta(&mut value, "Pod");
    }
    value
}

fn container_status(p: &Pod, c: &Container) -> Value {
    let started = meta_time(c.started_at);
    let state = match p.phase {
        PodPhase::Pending => json!({"waiting": {"reason": "ContainerCreating"}}),
        PodPhase::Running => json!({"running": {"startedAt": started}}),
        PodPhase::Succeeded => json!({"terminated": {
            "exitCode": 0, "reason": "Completed", "startedAt": started,
            "finishedAt": started, "containerID": c.container_id}}),
        PodPhase::Failed => json!({"terminated": {
            "exitCode": 1, "reason": "Error", "startedAt": started,
            "finishedAt": started, "containerID": c.container_id}}),
    };
    let last_state = match &c.last_run {
        Some((from, to, id)) => json!({"terminated": {
            "exitCode": 137, "reason": "Error", "startedAt": meta_time(*from),
            "finishedAt": meta_time(*to), "containerID": id}}),
        None => json!({}),
    };
    let mut status = json!({
        "name": c.name,
        "state": state,
        "lastState": last_state,
        "ready": p.phase == PodPhase::Running,
        "restartCount": c.restart_count,
        "image": c.image,
        "imageID": format!("{}@sha256:{}", c.image.split(':').next().unwrap_or(&c.image), "0".repeat(64)),
        "started": p.phase == PodPhase::Running,
    });
    if p.phase != PodPhase::Pending
        && let Value::Object(map) = &mut status
    {
        map.insert("containerID".into(), c.container_id.clone().into());
    }
    status
}
