//! What a user may open: deny unless a `[[grants]]` rule of the config permits it.

use common::api::{ClusterTarget, Target, Targets};

use crate::auth::Principal;
use crate::config::{Config, FileAccess, Grant};

/// Something a WebSocket can be opened to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetRef {
    Ssh(String),
    Local(String),
    K8s {
        cluster: String,
        namespace: String,
    },
    File(String),
    Chat(String),
    Job,
    /// A running terminal session on the inner target, watched read-only.
    Watch(Box<TargetRef>),
}

impl TargetRef {
    /// The target as the audit trail names it: `ssh:<id>`, `local:<id>`, `k8s:<cluster>/<namespace>`,
    /// `file:<id>`, `chat:<id>`, `job` (a watch names the target watched).
    pub fn id(&self) -> String {
        match self {
            Self::Ssh(id) => format!("ssh:{id}"),
            Self::Local(id) => format!("local:{id}"),
            Self::K8s { cluster, namespace } => format!("k8s:{cluster}/{namespace}"),
            Self::File(id) => format!("file:{id}"),
            Self::Chat(id) => format!("chat:{id}"),
            Self::Job => "job".to_owned(),
            Self::Watch(inner) => inner.id(),
        }
    }
}

impl TargetRef {
    /// The terminal target an id names (`ssh:<id>`, `local:<id>`, `k8s:<cluster>/<namespace>`).
    pub fn terminal(id: &str) -> Option<Self> {
        match id.split_once(':')? {
            ("ssh", host) => Some(Self::Ssh(host.to_owned())),
            ("local", shell) => Some(Self::Local(shell.to_owned())),
            ("k8s", rest) => {
                let (cluster, namespace) = rest.split_once('/')?;
                Some(Self::K8s {
                    cluster: cluster.to_owned(),
                    namespace: namespace.to_owned(),
                })
            }
            _ => None,
        }
    }
}

/// What a target's entry says about where it leads (address, path, credentials), apart
/// from its label: `None` when the config has no such entry.
fn destination(config: &Config, target: &TargetRef) -> Option<String> {
    fn without_label<T: Clone + std::fmt::Debug>(entry: &T, clear: impl Fn(&mut T)) -> String {
        let mut entry = entry.clone();
        clear(&mut entry);
        format!("{entry:?}")
    }
    match target {
        TargetRef::Ssh(id) => config
            .ssh_hosts
            .iter()
            .find(|h| &h.id == id)
            .map(|h| without_label(h, |h| h.label = None)),
        TargetRef::Local(id) => config
            .local_shells
            .iter()
            .find(|s| &s.id == id)
            .map(|s| without_label(s, |s| s.label = None)),
        TargetRef::K8s { cluster, .. } => config
            .k8s_clusters
            .iter()
            .find(|c| &c.id == cluster)
            .map(|c| without_label(c, |c| c.label = None)),
        TargetRef::File(id) => config
            .files
            .iter()
            .find(|f| &f.id == id)
            .map(|f| without_label(f, |f| f.label = None)),
        // A room or the job feed is a name, not a place: it cannot be re-pointed.
        TargetRef::Chat(_) | TargetRef::Job => Some(String::new()),
        TargetRef::Watch(inner) => destination(config, inner),
    }
}

/// Whether a reload re-pointed `target` (another host, path or credentials), so a stream
/// opened on `before` no longer leads where the config in force says.
pub fn repointed(before: &Config, now: &Config, target: &TargetRef) -> bool {
    destination(before, target) != destination(now, target)
}

impl std::fmt::Display for TargetRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ssh(id) => write!(f, "ssh host {id:?}"),
            Self::Local(id) => write!(f, "local shell {id:?}"),
            Self::K8s { cluster, namespace } => {
                write!(f, "namespace {namespace:?} of cluster {cluster:?}")
            }
            Self::File(id) => write!(f, "file {id:?}"),
            Self::Chat(id) => write!(f, "chat room {id:?}"),
            Self::Job => write!(f, "job output"),
            Self::Watch(inner) => write!(f, "a session on {inner}"),
        }
    }
}

fn applies(grant: &Grant, who: &Principal) -> bool {
    grant.users.iter().any(|u| u == &who.username || u == "*")
        || grant.groups.iter().any(|g| who.groups.contains(g))
}

fn matches(list: &[String], id: &str) -> bool {
    list.iter().any(|entry| entry == "*" || entry == id)
}

fn matches_namespace(list: &[String], cluster: &str, namespace: &str) -> bool {
    list.iter().any(|entry| match entry.split_once('/') {
        Some((c, n)) => (c == "*" || c == cluster) && (n == "*" || n == namespace),
        None => entry == "*",
    })
}

/// Whether `grant` (whoever it applies to) opens `target`.
fn opens(g: &Grant, target: &TargetRef) -> bool {
    match target {
        TargetRef::Ssh(id) => matches(&g.ssh, id),
        TargetRef::Local(id) => matches(&g.local, id),
        TargetRef::K8s { cluster, namespace } => matches_namespace(&g.k8s, cluster, namespace),
        TargetRef::File(id) => matches(&g.files, id),
        TargetRef::Chat(id) => matches(&g.chat, id),
        TargetRef::Job => g.jobs,
        TargetRef::Watch(inner) => g.audit || watches(&g.watch, inner),
    }
}

/// Whether `who` may open `target`.
pub fn permits(config: &Config, who: &Principal, target: &TargetRef) -> bool {
    config
        .grants
        .iter()
        .filter(|g| applies(g, who))
        .any(|g| opens(g, target))
}

/// What the grants that let `who` open `target` say about recording it (`record`): true
/// when any says true (recording wins), false when those that say anything say false,
/// `None` when none says (the `[recording]` section decides).
pub fn record_override(config: &Config, who: &Principal, target: &TargetRef) -> Option<bool> {
    config
        .grants
        .iter()
        .filter(|g| applies(g, who) && opens(g, target))
        .filter_map(|g| g.record)
        .reduce(|a, b| a || b)
}

/// What `who` may do with files on `target` (an SSH host or a pod's namespace): the
/// widest `file_access` of the grants that apply to them and open that target.
pub fn file_access(config: &Config, who: &Principal, target: &TargetRef) -> FileAccess {
    config
        .grants
        .iter()
        .filter(|g| applies(g, who))
        .filter(|g| match target {
            TargetRef::Ssh(id) => matches(&g.ssh, id),
            TargetRef::K8s { cluster, namespace } => matches_namespace(&g.k8s, cluster, namespace),
            _ => false,
        })
        .map(|g| g.file_access)
        .max()
        .unwrap_or_default()
}

/// Whether a `watch` list names `target` (see `Grant::watch`).
fn watches(list: &[String], target: &TargetRef) -> bool {
    let wanted = target.id();
    let Some((kind, id)) = wanted.split_once(':') else {
        return false;
    };
    list.iter().any(|entry| {
        if entry == "*" {
            return true;
        }
        let Some((entry_kind, entry_id)) = entry.split_once(':') else {
            return false;
        };
        if entry_kind != kind {
            return false;
        }
        match (entry_id.split_once('/'), id.split_once('/')) {
            (Some((c, n)), Some((cluster, namespace))) => {
                (c == "*" || c == cluster) && (n == "*" || n == namespace)
            }
            _ => entry_id == "*" || entry_id == id,
        }
    })
}

/// The widest `file_access` of `who`'s grants that open any namespace of `cluster` (what
/// `/api/targets` says, so the browser offers a pod's files pane only when some grant allows it).
fn cluster_file_access(config: &Config, who: &Principal, cluster: &str) -> FileAccess {
    config
        .grants
        .iter()
        .filter(|g| applies(g, who))
        .filter(|g| {
            g.k8s.iter().any(|entry| match entry.split_once('/') {
                Some((c, _)) => c == "*" || c == cluster,
                None => entry == "*",
            })
        })
        .map(|g| g.file_access)
        .max()
        .unwrap_or_default()
}

/// Whether `who` holds the `audit` grant (the trail, every recording, watching anything).
pub fn audits(config: &Config, who: &Principal) -> bool {
    config
        .grants
        .iter()
        .filter(|g| applies(g, who))
        .any(|g| g.audit)
}

/// The namespaces of one cluster the grants give `who`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct K8sGrants {
    /// A `cluster/*` (or `*`) grant: every namespace.
    pub all: bool,
    /// The namespaces granted by name, sorted.
    pub namespaces: Vec<String>,
}

/// What `who` may open in `cluster`, as the grants say (the cluster may have more or fewer).
pub fn k8s_grants(config: &Config, who: &Principal, cluster: &str) -> K8sGrants {
    let mut granted = K8sGrants::default();
    for entry in config
        .grants
        .iter()
        .filter(|g| applies(g, who))
        .flat_map(|g| &g.k8s)
    {
        match entry.split_once('/') {
            Some((c, n)) if c == "*" || c == cluster => {
                if n == "*" {
                    granted.all = true;
                } else {
                    granted.namespaces.push(n.to_owned());
                }
            }
            None if entry == "*" => granted.all = true,
            _ => {}
        }
    }
    granted.namespaces.sort();
    granted.namespaces.dedup();
    granted
}

/// The clusters `who` may open something in. A `cluster/*` grant shows as the namespace
/// `"*"`: the picker asks `GET /api/k8s/{cluster}/namespaces` for the cluster's own list.
fn k8s_targets(config: &Config, who: &Principal) -> Vec<ClusterTarget> {
    config
        .k8s_clusters
        .iter()
        .filter_map(|cluster| {
            let granted = k8s_grants(config, who, &cluster.id);
            let namespaces = if granted.all {
                vec!["*".to_owned()]
            } else {
                granted.namespaces
            };
            (!namespaces.is_empty()).then(|| ClusterTarget {
                id: cluster.id.clone(),
                label: cluster.label.clone().unwrap_or_else(|| cluster.id.clone()),
                namespaces,
                file_access: cluster_file_access(config, who, &cluster.id),
            })
        })
        .collect()
}

/// Everything `who` may open, for the target picker.
pub fn targets_for(config: &Config, who: &Principal) -> Targets {
    let label = |id: &str, label: &Option<String>| Target {
        id: id.to_owned(),
        label: label.clone().unwrap_or_else(|| id.to_owned()),
        file_access: FileAccess::None,
    };
    Targets {
        ssh: config
            .ssh_hosts
            .iter()
            .filter_map(|h| {
                let target = TargetRef::Ssh(h.id.clone());
                permits(config, who, &target).then(|| Target {
                    file_access: file_access(config, who, &target),
                    ..label(&h.id, &h.label)
                })
            })
            .collect(),
        local: config
            .local_shells
            .iter()
            .filter(|s| permits(config, who, &TargetRef::Local(s.id.clone())))
            .map(|s| label(&s.id, &s.label))
            .collect(),
        k8s: k8s_targets(config, who),
        files: config
            .files
            .iter()
            .filter(|f| permits(config, who, &TargetRef::File(f.id.clone())))
            .map(|f| label(&f.id, &f.label))
            .collect(),
        chat: config
            .chat_rooms
            .iter()
            .filter(|r| permits(config, who, &TargetRef::Chat(r.id.clone())))
            .map(|r| label(&r.id, &r.label))
            .collect(),
        jobs: permits(config, who, &TargetRef::Job),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(name: &str, groups: &[&str]) -> Principal {
        Principal {
            uid: name.into(),
            username: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            claimed_groups: Vec::new(),
            minted_here: true,
            idp: None,
            expires_at: 0,
            token_id: String::new(),
        }
    }

    #[test]
    fn a_new_label_is_not_a_new_destination_and_a_new_path_is() {
        let file = |label: &str, path: &str| {
            Config::from_toml(
                &format!("[[files]]\nid = \"app\"\nlabel = \"{label}\"\npath = \"{path}\"\n"),
                "test",
            )
            .unwrap()
        };
        let target = TargetRef::File("app".into());
        let before = file("App", "/var/log/app.log");
        assert!(!repointed(
            &before,
            &file("Renamed", "/var/log/app.log"),
            &target
        ));
        assert!(repointed(
            &before,
            &file("App", "/var/log/other.log"),
            &target
        ));
        assert!(repointed(
            &before,
            &Config::from_toml("", "test").unwrap(),
            &target
        ));
    }

    #[test]
    fn watching_needs_a_watch_grant_on_the_target_or_audit() {
        let config = Config::from_toml(
            r#"
            [[grants]]
            users = ["w"]
            watch = ["ssh:web", "k8s:prod/*"]
            [[grants]]
            users = ["auditor"]
            audit = true
            [[grants]]
            users = ["owner"]
            ssh = ["*"]
            "#,
            "test",
        )
        .unwrap();
        let watch = |t: TargetRef| TargetRef::Watch(Box::new(t));
        let ssh = |id: &str| TargetRef::Ssh(id.into());
        let ns = |c: &str, n: &str| TargetRef::K8s {
            cluster: c.into(),
            namespace: n.into(),
        };
        assert!(permits(&config, &who("w", &[]), &watch(ssh("web"))));
        assert!(!permits(&config, &who("w", &[]), &watch(ssh("db"))));
        assert!(permits(&config, &who("w", &[]), &watch(ns("prod", "x"))));
        assert!(!permits(&config, &who("w", &[]), &watch(ns("dev", "x"))));
        assert!(!permits(&config, &who("w", &[]), &ssh("web")));
        assert!(permits(&config, &who("auditor", &[]), &watch(ssh("db"))));
        assert!(audits(&config, &who("auditor", &[])));
        assert!(!audits(&config, &who("w", &[])));
        // Opening a target is not watching others' sessions on it.
        assert!(!permits(&config, &who("owner", &[]), &watch(ssh("web"))));
    }

    #[test]
    fn file_access_is_the_widest_of_the_grants_opening_the_target() {
        let config = Config::from_toml(
            r#"
            [[grants]]
            users = ["a"]
            ssh = ["web", "db"]
            file_access = "read"
            [[grants]]
            users = ["a"]
            ssh = ["web"]
            k8s = ["dev/*"]
            file_access = "write"
            [[grants]]
            users = ["b"]
            ssh = ["*"]
            "#,
            "test",
        )
        .unwrap();
        let ssh = |id: &str| TargetRef::Ssh(id.into());
        let a = who("a", &[]);
        assert_eq!(file_access(&config, &a, &ssh("web")), FileAccess::Write);
        assert_eq!(file_access(&config, &a, &ssh("db")), FileAccess::Read);
        assert_eq!(file_access(&config, &a, &ssh("other")), FileAccess::None);
        let dev = TargetRef::K8s {
            cluster: "dev".into(),
            namespace: "x".into(),
        };
        assert_eq!(file_access(&config, &a, &dev), FileAccess::Write);
        assert_eq!(cluster_file_access(&config, &a, "dev"), FileAccess::Write);
        assert_eq!(cluster_file_access(&config, &a, "prod"), FileAccess::None);
        assert_eq!(
            file_access(&config, &who("b", &[]), &ssh("web")),
            FileAccess::None,
            "a terminal grant is no file grant"
        );
    }

    #[test]
    fn nothing_is_permitted_without_a_grant() {
        let config = Config::from_toml("", "test").unwrap();
        assert!(!permits(
            &config,
            &who("a", &[]),
            &TargetRef::Ssh("x".into())
        ));
        assert!(!permits(&config, &who("a", &[]), &TargetRef::Job));
    }

    #[test]
    fn local_shells_are_granted_by_id_like_ssh_hosts() {
        let config = Config::from_toml(
            r#"
            [[local_shells]]
            id = "toolbox"
            [[local_shells]]
            id = "root"
            [[grants]]
            groups = ["ops"]
            local = ["toolbox"]
            ssh = ["*"]
            "#,
            "test",
        )
        .unwrap();
        let ops = who("a", &["ops"]);
        let shell = |id: &str| TargetRef::Local(id.into());
        assert!(permits(&config, &ops, &shell("toolbox")));
        assert!(
            !permits(&config, &ops, &shell("root")),
            "an ssh grant is no local one"
        );
        assert!(!permits(&config, &who("b", &[]), &shell("toolbox")));
        let listed = targets_for(&config, &ops).local;
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, "toolbox");
        assert_eq!(listed[0].label, "toolbox");
    }

    #[test]
    fn grants_apply_by_user_or_group_and_by_id_or_wildcard() {
        let config = Config::from_toml(
            r#"
            [[grants]]
            groups = ["ops"]
            ssh = ["web"]
            k8s = ["dev/*", "prod/web"]
            [[grants]]
            users = ["root"]
            ssh = ["*"]
            "#,
            "test",
        )
        .unwrap();
        let ops = who("a", &["ops"]);
        assert!(permits(&config, &ops, &TargetRef::Ssh("web".into())));
        assert!(!permits(&config, &ops, &TargetRef::Ssh("db".into())));
        assert!(permits(
            &config,
            &who("root", &[]),
            &TargetRef::Ssh("db".into())
        ));
        let ns = |c: &str, n: &str| TargetRef::K8s {
            cluster: c.into(),
            namespace: n.into(),
        };
        assert!(permits(&config, &ops, &ns("dev", "anything")));
        assert!(permits(&config, &ops, &ns("prod", "web")));
        assert!(!permits(&config, &ops, &ns("prod", "db")));
    }
}
