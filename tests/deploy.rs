//! The deployment files in `deploy/`.
//!
//! Every Kubernetes manifest under `deploy/kubernetes/` is read as the `k8s-openapi` type of
//! its `kind`. Those types ignore fields they do not know, so a misspelt field would vanish
//! without a word (and the API server would drop it too): each typed object is written back
//! to JSON, and every field of the file must come back with its value. Then the files must
//! agree with the relay: the ConfigMap's `config.toml` loads with `relay::Config`, the probes
//! are `/readyz` and `/healthz` on the relay's port, Kubernetes and systemd wait longer than
//! the drain plus the close-frame wait before they kill the relay, the pod is hardened, and
//! the RBAC is what the in-cluster mode calls.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, PodSpec, Probe, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::{Metadata, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// How long the relay waits for close frames after closing every stream (`CLOSE_WAIT` in
/// `relay/src/server.rs`).
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// Stands for the Redis password in the ConfigMap's template; the init container replaces it.
const REDIS_PASSWORD_PLACEHOLDER: &str = "__REDIS_PASSWORD__";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_owned()
}

fn kubernetes_dir() -> PathBuf {
    workspace().join("deploy/kubernetes")
}

fn is_yaml(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("a folder entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            yaml_files(&path, out);
        } else if is_yaml(&path) {
            out.push(path);
        }
    }
}

/// One YAML document of a manifest file.
struct Manifest {
    /// `file#index`, relative to the workspace, for messages.
    origin: String,
    /// The file is directly in `deploy/kubernetes/` (applied by default), not in a folder
    /// of alternatives.
    top_level: bool,
    value: Value,
}

impl Manifest {
    fn field(&self, name: &str) -> &str {
        self.value[name].as_str().unwrap_or("")
    }
}

fn parse_manifests(path: &Path, top_level: bool) -> Vec<Manifest> {
    let text = std::fs::read_to_string(path).expect("reading a manifest");
    let name = path
        .strip_prefix(workspace())
        .unwrap_or(path)
        .display()
        .to_string();
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{name} is not YAML: {e}"));
    assert!(!documents.is_empty(), "{name} holds no document");
    documents
        .into_iter()
        .enumerate()
        .map(|(index, value)| Manifest {
            origin: format!("{name}#{index}"),
            top_level,
            value,
        })
        .collect()
}

/// Every document of every YAML file under `deploy/kubernetes/`.
fn manifests() -> Vec<Manifest> {
    let dir = kubernetes_dir();
    let mut files = Vec::new();
    yaml_files(&dir, &mut files);
    assert!(!files.is_empty(), "no manifests in {}", dir.display());
    files
        .iter()
        .flat_map(|path| parse_manifests(path, path.parent() == Some(dir.as_path())))
        .collect()
}

/// Paths (`spec.template.spec.containers[0].readynessProbe`) of `original` that `typed`
/// lacks or holds with another value.
fn lost_fields(original: &Value, typed: &Value, path: &str, lost: &mut Vec<String>) {
    match (original, typed) {
        (Value::Object(fields), Value::Object(kept)) => {
            for (key, value) in fields {
                let path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match kept.get(key) {
                    Some(kept) => lost_fields(value, kept, &path, lost),
                    None => lost.push(path),
                }
            }
        }
        (Value::Array(items), Value::Array(kept)) if items.len() == kept.len() => {
            for (index, (item, kept)) in items.iter().zip(kept).enumerate() {
                lost_fields(item, kept, &format!("{path}[{index}]"), lost);
            }
        }
        _ if original == typed => {}
        _ => lost.push(format!("{path} (written {original}, read as {typed})")),
    }
}

/// The manifest as a `K`, refused if any of its fields is not one of `K`'s.
fn typed<K: Resource + DeserializeOwned + Serialize>(manifest: &Manifest) -> Result<K, String> {
    let what = format!("{} ({} {})", manifest.origin, K::API_VERSION, K::KIND);
    if manifest.field("apiVersion") != K::API_VERSION {
        return Err(format!(
            "{what}: apiVersion is {:?}",
            manifest.field("apiVersion")
        ));
    }
    let object: K =
        serde_json::from_value(manifest.value.clone()).map_err(|e| format!("{what}: {e}"))?;
    let back = serde_json::to_value(&object).map_err(|e| format!("{what}: {e}"))?;
    let mut lost = Vec::new();
    lost_fields(&manifest.value, &back, "", &mut lost);
    if lost.is_empty() {
        Ok(object)
    } else {
        Err(format!(
            "{what}: fields that are not part of a {} (misspelt or misplaced?): {}",
            K::KIND,
            lost.join(", ")
        ))
    }
}

/// Checks a manifest as the type its `kind` names.
fn check(manifest: &Manifest) -> Result<(), String> {
    macro_rules! kinds {
        ($($kind:ty),* $(,)?) => {
            match manifest.field("kind") {
                $(kind if kind == <$kind>::KIND => typed::<$kind>(manifest).map(drop),)*
                other => Err(format!(
                    "{}: kind {other:?} is not one these tests know",
                    manifest.origin
                )),
            }
        };
    }
    kinds!(
        Namespace,
        ServiceAccount,
        ClusterRole,
        ClusterRoleBinding,
        Role,
        RoleBinding,
        ConfigMap,
        Deployment,
        Service,
        PodDisruptionBudget,
        NetworkPolicy,
    )
}

/// The objects of kind `K` applied by default (directly in `deploy/kubernetes/`).
fn objects<K: Resource + DeserializeOwned + Serialize>() -> Vec<K> {
    manifests()
        .iter()
        .filter(|m| m.top_level && m.field("kind") == K::KIND)
        .map(|m| typed::<K>(m).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

fn the<K: Resource + DeserializeOwned + Serialize>() -> K {
    let mut found = objects::<K>();
    assert_eq!(found.len(), 1, "want exactly one {}", K::KIND);
    found.remove(0)
}

fn named<K: Metadata<Ty = ObjectMeta>>(objects: Vec<K>, name: &str) -> K {
    objects
        .into_iter()
        .find(|o| o.metadata().name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no {} named {name}", K::KIND))
}

fn pod_spec(deployment: &Deployment) -> &PodSpec {
    deployment
        .spec
        .template
        .spec
        .as_ref()
        .expect("the Deployment has a pod spec")
}

fn relay_container(pod: &PodSpec) -> &Container {
    pod.containers
        .iter()
        .find(|c| c.name == "relay")
        .expect("a container named relay")
}

fn config_template() -> String {
    let config_map = the::<ConfigMap>();
    config_map
        .data
        .as_ref()
        .and_then(|d| d.get("config.toml"))
        .expect("the ConfigMap has config.toml")
        .clone()
}

/// The relay's config as the init container writes it.
fn relay_config() -> relay::Config {
    let text = config_template().replace(REDIS_PASSWORD_PLACEHOLDER, "0123456789abcdef");
    relay::Config::from_toml(&text, "deploy/kubernetes ConfigMap config.toml")
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The container port a probe or Service names (by number or by name).
fn resolve_port(container: &Container, port: &IntOrString) -> i32 {
    match port {
        IntOrString::Int(number) => *number,
        IntOrString::String(name) => {
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name))
                .unwrap_or_else(|| panic!("container {} has no port named {name}", container.name))
                .container_port
        }
    }
}

fn probe_target(container: &Container, probe: Option<&Probe>, which: &str) -> (String, i32) {
    let get = probe
        .and_then(|p| p.http_get.as_ref())
        .unwrap_or_else(|| panic!("the relay needs an HTTP {which}"));
    (
        get.path.clone().unwrap_or_default(),
        resolve_port(container, &get.port),
    )
}

fn selects(selector: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    let Some(selector) = selector else {
        return false;
    };
    assert!(
        selector.match_expressions.is_none(),
        "matchLabels only, please"
    );
    let wanted = selector.match_labels.as_ref().expect("matchLabels");
    !wanted.is_empty() && wanted.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[test]
fn every_manifest_is_an_object_of_its_kind_with_no_unknown_field() {
    let manifests = manifests();
    let errors: Vec<String> = manifests.iter().filter_map(|m| check(m).err()).collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    let names: BTreeSet<String> = manifests
        .iter()
        .map(|m| {
            let name = m.value["metadata"]["name"].as_str().unwrap_or("");
            assert!(!name.is_empty(), "{} has no name", m.origin);
            format!("{}/{}", m.field("kind"), name)
        })
        .collect();
    assert_eq!(names.len(), manifests.len(), "two objects share a name");
}

#[test]
fn a_misspelt_field_is_caught() {
    let manifest = Manifest {
        origin: "inline".into(),
        top_level: true,
        value: serde_saphyr::from_str(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec:\n  \
             selector: {}\n  template:\n    spec:\n      terminationGracePeriodSecond: 30\n      \
             containers:\n        - name: relay\n          readynessProbe:\n            \
             httpGet: {path: /readyz, port: 8080}\n",
        )
        .unwrap(),
    };
    let err = typed::<Deployment>(&manifest).map(drop).unwrap_err();
    assert!(
        err.contains("spec.template.spec.terminationGracePeriodSecond")
            && err.contains("spec.template.spec.containers[0].readynessProbe"),
        "{err}"
    );
    let mut wrong_version = manifest;
    wrong_version.value = serde_json::json!({"apiVersion": "policy/v1beta1",
        "kind": "PodDisruptionBudget", "metadata": {"name": "x"}});
    assert!(typed::<PodDisruptionBudget>(&wrong_version).is_err());
}

#[test]
fn the_kustomization_lists_every_manifest_applied_by_default() {
    let dir = kubernetes_dir();
    // Named without an extension so that `kubectl apply -f deploy/kubernetes/` skips it.
    let text = std::fs::read_to_string(dir.join("Kustomization")).expect("Kustomization");
    let kustomization: Value = serde_saphyr::from_str(&text).expect("Kustomization is YAML");
    assert_eq!(kustomization["kind"], "Kustomization");
    let listed: BTreeSet<&str> = kustomization["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().expect("a file name"))
        .collect();
    let present: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && is_yaml(p))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let present: BTreeSet<&str> = present.iter().map(String::as_str).collect();
    assert_eq!(listed, present);

    // Everything namespaced lives in the Namespace the files create (kubectl apply -f
    // applies files in name order: the Namespace's file comes first).
    let namespace = the::<Namespace>().metadata.name.expect("a name");
    let cluster_wide = [Namespace::KIND, ClusterRole::KIND, ClusterRoleBinding::KIND];
    for m in manifests().iter().filter(|m| m.top_level) {
        let ns = m.value["metadata"]["namespace"].as_str();
        if cluster_wide.contains(&m.field("kind")) {
            assert_eq!(ns, None, "{} is cluster-wide", m.origin);
        } else {
            assert_eq!(ns, Some(namespace.as_str()), "{}", m.origin);
        }
    }
    let first = present.first().expect("manifests");
    assert!(
        first.contains("namespace"),
        "{first} sorts before the Namespace's file"
    );
}

#[test]
fn the_config_map_holds_a_config_the_relay_loads() {
    let template = config_template();
    assert_eq!(
        template.matches(REDIS_PASSWORD_PLACEHOLDER).count(),
        1,
        "the Redis URL takes its password from the Secret"
    );
    let config = relay_config();
    assert!(
        config.warnings().is_empty(),
        "check-config warns: {:?}",
        config.warnings()
    );
    assert!(
        config.listen.ip().is_unspecified(),
        "listen on the pod's IP"
    );
    assert!(!config.public_origins.is_empty());
    assert!(
        config
            .public_origins
            .iter()
            .all(|o| o.starts_with("https://"))
    );
    assert!(
        config.auth.jwt_secret.is_empty(),
        "the JWT secret comes from the Secret, as OPSDECK_JWT_SECRET"
    );
    let redis = config.redis.as_ref().expect("replicas share Redis");
    assert!(redis.url.starts_with("redis://:"), "{}", redis.url);
    let in_cluster: Vec<_> = config
        .k8s_clusters
        .iter()
        .filter(|c| c.in_cluster)
        .collect();
    assert_eq!(in_cluster.len(), 1, "one in-cluster cluster");

    // The pod: the init container fills in the template, the relay reads the result.
    let deployment = the::<Deployment>();
    let pod = pod_spec(&deployment);
    let relay = relay_container(pod);
    let args = relay.args.clone().unwrap_or_default();
    assert!(
        args.windows(2)
            .any(|a| a == ["--config", "/etc/opsdeck/config.toml"]),
        "{args:?}"
    );
    let init = pod.init_containers.as_ref().expect("an init container");
    assert_eq!(init.len(), 1);
    let script = init[0].args.clone().unwrap_or_default().join("\n");
    for needed in [
        REDIS_PASSWORD_PLACEHOLDER,
        "/etc/opsdeck-template/config.toml",
        "> /etc/opsdeck/config.toml",
    ] {
        assert!(script.contains(needed), "the init script lacks {needed}");
    }
    let config_map = the::<ConfigMap>().metadata.name.unwrap();
    let volumes = pod.volumes.as_ref().expect("volumes");
    let template_volume = volumes
        .iter()
        .find(|v| v.config_map.as_ref().map(|c| c.name.as_str()) == Some(config_map.as_str()))
        .expect("the ConfigMap is a volume");
    let mounted_at = |container: &Container, volume: &str| {
        container
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.name == volume)
            .map(|m| (m.mount_path.clone(), m.read_only == Some(true)))
    };
    assert_eq!(
        mounted_at(&init[0], &template_volume.name),
        Some(("/etc/opsdeck-template".into(), true))
    );
    let rendered = volumes
        .iter()
        .find(|v| mounted_at(relay, &v.name).is_some_and(|(path, _)| path == "/etc/opsdeck"))
        .expect("the relay mounts /etc/opsdeck");
    assert!(rendered.empty_dir.is_some());
    assert_eq!(
        mounted_at(relay, &rendered.name),
        Some(("/etc/opsdeck".into(), true))
    );
    assert_eq!(
        mounted_at(&init[0], &rendered.name),
        Some(("/etc/opsdeck".into(), false))
    );

    // Secrets come from the Secret, by reference.
    let secret_env = |container: &Container, name: &str| {
        let var = container
            .env
            .iter()
            .flatten()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("{} has no {name}", container.name));
        assert!(var.value.is_none(), "{name} must not be written inline");
        let key = var
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            .unwrap_or_else(|| panic!("{name} comes from a Secret"));
        (key.name.clone(), key.key.clone())
    };
    assert_eq!(
        secret_env(relay, "OPSDECK_JWT_SECRET"),
        ("opsdeck-relay".into(), "jwt-secret".into())
    );
    assert_eq!(
        secret_env(&init[0], "REDIS_PASSWORD"),
        ("opsdeck-relay".into(), "redis-password".into())
    );
}

#[test]
fn probes_and_the_grace_period_fit_the_drain() {
    let config = relay_config();
    let delay = config.shutdown.drain_delay;
    let drain = delay + config.shutdown.drain_timeout;
    let deployment = the::<Deployment>();
    let pod = pod_spec(&deployment);
    let relay = relay_container(pod);
    let port = i32::from(config.listen.port());
    assert_eq!(
        probe_target(relay, relay.readiness_probe.as_ref(), "readinessProbe"),
        ("/readyz".into(), port)
    );
    assert_eq!(
        probe_target(relay, relay.liveness_probe.as_ref(), "livenessProbe"),
        ("/healthz".into(), port)
    );
    assert_eq!(port, 8080);

    let grace = Duration::from_secs(
        u64::try_from(pod.termination_grace_period_seconds.expect("set")).unwrap(),
    );
    assert!(
        grace > drain + CLOSE_WAIT,
        "terminationGracePeriodSeconds {grace:?} must exceed drain_delay + drain_timeout {drain:?} + {CLOSE_WAIT:?}"
    );
    assert!(
        pod.containers.iter().all(|c| c.lifecycle.is_none()),
        "no preStop: the relay drains on SIGTERM itself"
    );
    // Kubernetes' defaults: every 10 s, 3 failures.
    let readiness = relay.readiness_probe.as_ref().unwrap();
    let noticed = Duration::from_secs(
        u64::try_from(
            readiness.period_seconds.unwrap_or(10) * readiness.failure_threshold.unwrap_or(3),
        )
        .unwrap(),
    );
    assert!(
        noticed < delay,
        "a draining pod is marked unready after {noticed:?}, not within drain_delay {delay:?}"
    );

    // The Service, the PodDisruptionBudget and the Deployment select the relay's pods.
    let labels = deployment
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .expect("pod labels");
    assert!(selects(Some(&deployment.spec.selector), &labels));
    let pdb = the::<PodDisruptionBudget>();
    assert!(selects(
        pdb.spec.as_ref().unwrap().selector.as_ref(),
        &labels
    ));
    let policy = the::<NetworkPolicy>();
    assert!(selects(
        policy.spec.as_ref().unwrap().pod_selector.as_ref(),
        &labels
    ));
    let service = the::<Service>();
    let spec = service.spec.as_ref().unwrap();
    let selector = spec.selector.as_ref().expect("a selector");
    assert!(!selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v)));
    for service_port in spec.ports.iter().flatten() {
        let target = service_port.target_port.as_ref().expect("a targetPort");
        assert_eq!(resolve_port(relay, target), port);
    }
    let replicas = deployment.spec.replicas.unwrap_or(1);
    match pdb.spec.as_ref().unwrap().min_available.as_ref() {
        Some(IntOrString::Int(min)) => assert!(*min < replicas, "the PDB would block drains"),
        other => panic!("minAvailable as a number, not {other:?}"),
    }
}

#[test]
fn the_pod_runs_hardened_with_bounded_resources() {
    let deployment = the::<Deployment>();
    let pod = pod_spec(&deployment);
    let pod_security = pod
        .security_context
        .as_ref()
        .expect("a pod securityContext");
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert!(pod_security.run_as_user.is_some_and(|uid| uid != 0));
    let seccomp = pod_security.seccomp_profile.as_ref().expect("seccomp");
    assert_eq!(seccomp.type_, "RuntimeDefault");
    assert_ne!(pod.host_network, Some(true));
    assert_ne!(pod.host_pid, Some(true));
    let containers = pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten());
    for container in containers {
        let name = &container.name;
        let security = container
            .security_context
            .as_ref()
            .unwrap_or_else(|| panic!("{name} has no securityContext"));
        assert_eq!(security.allow_privilege_escalation, Some(false), "{name}");
        assert_eq!(security.read_only_root_filesystem, Some(true), "{name}");
        assert_ne!(security.privileged, Some(true), "{name}");
        assert_ne!(security.run_as_user, Some(0), "{name}");
        let capabilities = security.capabilities.as_ref().expect("capabilities");
        assert_eq!(capabilities.drop, Some(vec!["ALL".to_owned()]), "{name}");
        assert!(
            capabilities.add.as_ref().is_none_or(Vec::is_empty),
            "{name}"
        );
        let resources = container
            .resources
            .as_ref()
            .unwrap_or_else(|| panic!("{name} has no resources"));
        for (what, amounts) in [
            ("requests", &resources.requests),
            ("limits", &resources.limits),
        ] {
            let amounts = amounts
                .as_ref()
                .unwrap_or_else(|| panic!("{name}: no {what}"));
            assert!(
                amounts.contains_key("cpu") && amounts.contains_key("memory"),
                "{name}: {what} of cpu and memory"
            );
        }
    }
}

/// `(apiGroup, resource, verb)` of every rule.
fn permissions(role: &ClusterRole) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in role.rules.iter().flatten() {
        assert!(
            rule.resource_names.is_none() && rule.non_resource_urls.is_none(),
            "{rule:?}"
        );
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    out.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    out
}

fn core(list: &[(&str, &str)]) -> BTreeSet<(String, String, String)> {
    list.iter()
        .map(|(resource, verb)| (String::new(), (*resource).to_owned(), (*verb).to_owned()))
        .collect()
}

#[test]
fn rbac_is_exactly_what_the_in_cluster_mode_calls() {
    let account = the::<ServiceAccount>();
    let account_name = account.metadata.name.clone().unwrap();
    let account_namespace = account.metadata.namespace.clone().unwrap();
    let deployment = the::<Deployment>();
    assert_eq!(
        pod_spec(&deployment).service_account_name.as_deref(),
        Some(account_name.as_str())
    );

    // backend/k8s: browse.rs lists namespaces and pods; pod.rs gets a pod; follow.rs reads
    // pods/log and watches one pod (watcher: list + watch); exec.rs execs (a WebSocket
    // upgrade: authorized as create, or get before Kubernetes 1.30).
    let pod_access = named(objects::<ClusterRole>(), "opsdeck-pod-access");
    assert_eq!(
        permissions(&pod_access),
        core(&[
            ("namespaces", "list"),
            ("pods", "get"),
            ("pods", "list"),
            ("pods", "watch"),
            ("pods/log", "get"),
            ("pods/exec", "create"),
            ("pods/exec", "get"),
        ])
    );
    let bindings = objects::<ClusterRoleBinding>();
    assert_eq!(bindings.len(), 1);
    let bound_to_relay = |binding: &ClusterRoleBinding| {
        binding.subjects.iter().flatten().any(|s| {
            s.kind == "ServiceAccount"
                && s.name == account_name
                && s.namespace.as_deref() == Some(account_namespace.as_str())
        })
    };
    assert!(bound_to_relay(&bindings[0]));
    assert_eq!(bindings[0].role_ref.kind, "ClusterRole");
    assert_eq!(bindings[0].role_ref.name, "opsdeck-pod-access");
    // The default config does not impersonate, so the relay's own identity needs the role.
    let config = relay_config();
    assert!(config.k8s_clusters.iter().all(|c| !c.impersonate));

    // impersonation/: with impersonate = true, the relay needs the impersonate verb only.
    let all = manifests();
    let alternative: Vec<&Manifest> = all.iter().filter(|m| !m.top_level).collect();
    let role = alternative
        .iter()
        .find(|m| m.field("kind") == ClusterRole::KIND)
        .map(|m| typed::<ClusterRole>(m).unwrap())
        .expect("impersonation/ has a ClusterRole");
    assert_eq!(
        permissions(&role),
        core(&[("users", "impersonate"), ("groups", "impersonate")])
    );
    let binding = alternative
        .iter()
        .find(|m| m.field("kind") == ClusterRoleBinding::KIND)
        .map(|m| typed::<ClusterRoleBinding>(m).unwrap())
        .expect("impersonation/ has a ClusterRoleBinding");
    assert!(bound_to_relay(&binding));
    assert_eq!(binding.role_ref.name, role.metadata.name.unwrap());
}

/// A systemd time span (`30`, `30s`, `1min 30s`, `500ms`).
fn systemd_seconds(text: &str) -> Duration {
    let mut total = Duration::ZERO;
    for part in text.split_whitespace() {
        let digits = part
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(part.len());
        let number: u64 = part[..digits]
            .parse()
            .unwrap_or_else(|_| panic!("{text:?}"));
        let unit = match &part[digits..] {
            "" | "s" | "sec" | "second" | "seconds" => Duration::from_secs(1),
            "ms" | "msec" => Duration::from_millis(1),
            "m" | "min" | "minute" | "minutes" => Duration::from_secs(60),
            "h" | "hr" | "hour" | "hours" => Duration::from_secs(3600),
            other => panic!("unit {other:?} of {text:?}"),
        };
        total += unit * u32::try_from(number).unwrap();
    }
    total
}

#[test]
fn the_systemd_unit_waits_for_the_drain_and_is_sandboxed() {
    let path = workspace().join("deploy/systemd/opsdeck-relay.service");
    let text = std::fs::read_to_string(&path).expect("the unit file");
    let mut section = String::new();
    let mut service: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            section = line.to_owned();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not key=value: {line}"));
        if section == "[Service]" {
            service
                .entry(key.trim().to_owned())
                .or_default()
                .push(value.trim().to_owned());
        }
    }
    let one = |key: &str| -> &str {
        match service.get(key).map(Vec::as_slice) {
            Some([value]) => value,
            other => panic!("[Service] {key}: want one value, have {other:?}"),
        }
    };

    // The drain of a host's config: the default, and config.example.toml's.
    let example = std::fs::read_to_string(workspace().join("config.example.toml")).unwrap();
    let example = relay::Config::from_toml(&example, "config.example.toml").unwrap();
    let default = relay::Config::from_toml("", "defaults").unwrap();
    let drain_of = |c: &relay::Config| c.shutdown.drain_delay + c.shutdown.drain_timeout;
    let drain = drain_of(&example).max(drain_of(&default));
    let stop = systemd_seconds(one("TimeoutStopSec"));
    assert!(
        stop > drain + CLOSE_WAIT,
        "TimeoutStopSec {stop:?} must exceed drain_delay + drain_timeout {drain:?} + {CLOSE_WAIT:?}"
    );
    assert_eq!(one("KillSignal"), "SIGTERM");
    assert_eq!(one("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert!(
        one("ExecStart").ends_with(" --config /etc/opsdeck/config.toml"),
        "{}",
        one("ExecStart")
    );
    assert_eq!(one("EnvironmentFile"), "-/etc/opsdeck/env");
    let open_files: usize = one("LimitNOFILE").parse().unwrap();
    let limits = &default.limits;
    assert!(open_files >= 2 * (limits.max_connections + limits.max_pending_connections));

    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "read-only"),
        ("PrivateTmp", "yes"),
        ("CapabilityBoundingSet", ""),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("ReadOnlyPaths", "/etc/opsdeck"),
    ] {
        assert_eq!(one(key), value, "[Service] {key}");
    }
    assert_eq!(
        service["SystemCallFilter"].first().map(String::as_str),
        Some("@system-service")
    );
    assert!(
        service.contains_key("DynamicUser") || service.contains_key("User"),
        "not as root"
    );
}
