//! The app's pages as URL fragments (`#/ssh/web1`, `#/local/toolbox`), and the relay endpoint behind each.
//!
//! Routing lives in the fragment so `dist/` works on any static host or CDN: every URL is
//! `index.html` as far as the server is concerned, no rewrite rules needed. Parsing and
//! printing are plain string work, tested without a browser. The relay endpoints' query
//! strings are `common::query`'s typed structs, so the relay reads exactly what is sent.

use common::files::PathQuery;
use common::query::{PodLogQuery, TailQuery, TerminalQuery};
use common::recording::RecordingQuery;
use common::sso::SsoRefusal;
use common::{EndpointQuery, ResumeQuery, TermSize};

/// Every page of the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `#/login`, with the page to return to after logging in, and why a single sign-on
    /// was refused (`sso_error=`, set by the relay).
    Login {
        next: Option<String>,
        sso_error: Option<SsoRefusal>,
    },
    /// `#/`: the target picker.
    Picker,
    /// `#/ssh/{host}`: a terminal on an SSH host.
    Ssh { host: String },
    /// `#/local/{shell}`: a terminal on the relay's own machine.
    Local { shell: String },
    /// `#/k8s/exec/{cluster}/{namespace}/{pod}/{container}`: a terminal in a container.
    K8sExec(Container),
    /// `#/k8s/logs/{cluster}/{namespace}/{pod}/{container}?tail_lines=&timestamps=&previous=`.
    K8sLogs(Container, PodLogOptions),
    /// `#/tail/{file}?lines=N`: a live file tail.
    Tail { file: String, lines: u32 },
    /// `#/chat/{room}`.
    Chat { room: String },
    /// `#/job/{token}`: output of a job, read-only.
    Job { token: String },
    /// `#/workspace?open=<fragment>&place=tab|right|below&session=<id>`: tabs and split
    /// panes (`views::workspace`); the optional query opens a target there on arrival.
    Workspace {
        open: Option<String>,
        place: Option<String>,
        session: Option<String>,
    },
    /// `#/recordings?user=&target=&since=&until=`: the recordings list.
    Recordings(RecordingQuery),
    /// `#/replay/{id}`: the player of one recording.
    Replay { id: String },
    /// `#/files/ssh/{host}?path=` or `#/files/k8s/{cluster}/{namespace}/{pod}/{container}?path=`:
    /// the files pane of an SSH host or of a pod's container (`views::files`); no `path`
    /// is where [`FilesPlace::start`] says.
    Files {
        place: FilesPlace,
        path: Option<String>,
    },
    /// Anything else.
    NotFound(String),
}

/// A container of a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub cluster: String,
    pub namespace: String,
    pub pod: String,
    pub container: String,
}

/// Where a files pane's files are: an SSH host or a pod's container. Its page and its
/// relay endpoints share one path, built here only: `ssh/{host}` or
/// `k8s/{cluster}/{namespace}/{pod}/{container}`, each segment percent-encoded, after
/// `#/files/` for the page and `/api/files/` for the endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilesPlace {
    Ssh(String),
    Pod(Container),
}

impl FilesPlace {
    /// `ssh/{host}` or `k8s/{cluster}/{namespace}/{pod}/{container}`, encoded.
    fn path(&self) -> String {
        match self {
            Self::Ssh(host) => format!("ssh/{}", encode(host)),
            Self::Pod(c) => format!("k8s/{}", c.path()),
        }
    }

    /// The base of its relay endpoints (`list`, `file`, `archive`, `mkdir`, `rename` follow).
    pub fn api_base(&self) -> String {
        format!("/api/files/{}", self.path())
    }

    /// The folder shown when the page names none. An SSH host: `.`, which the relay
    /// resolves to the login's home folder. A container: `/`, as its working directory is
    /// unknown to the browser and the relay lists `.` without resolving it (no way up).
    pub fn start(&self) -> &'static str {
        match self {
            Self::Ssh(_) => ".",
            Self::Pod(_) => "/",
        }
    }

    /// Whether folders can be downloaded whole (a pod's, as a tar: `archive`).
    pub fn has_archives(&self) -> bool {
        matches!(self, Self::Pod(_))
    }

    /// What people call it: the host, or `namespace/pod/container`.
    pub fn label(&self) -> String {
        match self {
            Self::Ssh(host) => host.clone(),
            Self::Pod(c) => format!("{}/{}/{}", c.namespace, c.pod, c.container),
        }
    }
}

/// The options of a pod log page, in its fragment and sent to the relay as a
/// [`PodLogQuery`]. The page keeps its own type: it always has a line count and never a
/// resume token (the stream adds that when it reconnects).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodLogOptions {
    pub tail_lines: u32,
    pub timestamps: bool,
    pub previous: bool,
}

impl Default for PodLogOptions {
    fn default() -> Self {
        Self {
            tail_lines: DEFAULT_LINES,
            timestamps: false,
            previous: false,
        }
    }
}

/// How many earlier lines a log view asks for when it opens.
pub const DEFAULT_LINES: u32 = 200;

impl Route {
    /// Parses `location.hash` (with or without the leading `#`).
    pub fn parse(hash: &str) -> Self {
        let hash = hash.strip_prefix('#').unwrap_or(hash);
        let (path, query) = hash.split_once('?').unwrap_or((hash, ""));
        let segments: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(decode)
            .collect();
        let parts: Vec<&str> = segments.iter().map(String::as_str).collect();
        let param = |name: &str| query_param(query, name);
        match parts.as_slice() {
            [] => Self::Picker,
            ["login"] => Self::Login {
                next: param("next").filter(|n| n.starts_with("#/")),
                sso_error: param("sso_error").and_then(|c| SsoRefusal::from_code(&c)),
            },
            ["ssh", host] => Self::Ssh {
                host: (*host).to_owned(),
            },
            ["local", shell] => Self::Local {
                shell: (*shell).to_owned(),
            },
            ["k8s", "exec", c, ns, pod, ctr] => Self::K8sExec(Container::new(c, ns, pod, ctr)),
            ["k8s", "logs", c, ns, pod, ctr] => Self::K8sLogs(
                Container::new(c, ns, pod, ctr),
                PodLogOptions {
                    tail_lines: param("tail_lines")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(DEFAULT_LINES),
                    timestamps: param("timestamps").is_some_and(|v| truthy(&v)),
                    previous: param("previous").is_some_and(|v| truthy(&v)),
                },
            ),
            ["tail", file] => Self::Tail {
                file: (*file).to_owned(),
                lines: param("lines")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(DEFAULT_LINES),
            },
            ["chat", room] => Self::Chat {
                room: (*room).to_owned(),
            },
            ["job", token] => Self::Job {
                token: (*token).to_owned(),
            },
            ["workspace"] => Self::Workspace {
                open: param("open").filter(|o| o.starts_with("#/")),
                place: param("place"),
                session: param("session"),
            },
            ["recordings"] => Self::Recordings(RecordingQuery::parse(query).unwrap_or_default()),
            ["replay", id] => Self::Replay {
                id: (*id).to_owned(),
            },
            ["files", "ssh", host] => Self::Files {
                place: FilesPlace::Ssh((*host).to_owned()),
                path: files_path(query),
            },
            ["files", "k8s", c, ns, pod, ctr] => Self::Files {
                place: FilesPlace::Pod(Container::new(c, ns, pod, ctr)),
                path: files_path(query),
            },
            _ => Self::NotFound(hash.to_owned()),
        }
    }

    /// The fragment for this page, `#/...`.
    pub fn to_hash(&self) -> String {
        match self {
            Self::Login { next, sso_error } => {
                let mut query: Vec<String> = Vec::new();
                if let Some(next) = next {
                    query.push(format!("next={}", encode(next)));
                }
                if let Some(refusal) = sso_error {
                    query.push(format!("sso_error={}", refusal.code()));
                }
                if query.is_empty() {
                    "#/login".to_owned()
                } else {
                    format!("#/login?{}", query.join("&"))
                }
            }
            Self::Picker => "#/".to_owned(),
            Self::Ssh { host } => format!("#/ssh/{}", encode(host)),
            Self::Local { shell } => format!("#/local/{}", encode(shell)),
            Self::K8sExec(c) => format!("#/k8s/exec/{}", c.path()),
            Self::K8sLogs(c, o) => format!("#/k8s/logs/{}?{}", c.path(), o.query()),
            Self::Tail { file, lines } => format!("#/tail/{}?{}", encode(file), tail_query(*lines)),
            Self::Chat { room } => format!("#/chat/{}", encode(room)),
            Self::Job { token } => format!("#/job/{}", encode(token)),
            Self::Workspace {
                open,
                place,
                session,
            } => {
                let query: Vec<String> = [("open", open), ("place", place), ("session", session)]
                    .into_iter()
                    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
                    .collect();
                if query.is_empty() {
                    "#/workspace".to_owned()
                } else {
                    format!("#/workspace?{}", query.join("&"))
                }
            }
            Self::Recordings(filter) => with_query("#/recordings", &filter.to_query()),
            Self::Replay { id } => format!("#/replay/{}", encode(id)),
            Self::Files { place, path } => {
                let page = format!("#/files/{}", place.path());
                match path {
                    Some(path) => with_query(&page, &PathQuery::new(path.as_bytes()).to_query()),
                    None => page,
                }
            }
            Self::NotFound(hash) => format!("#{hash}"),
        }
    }

    /// The relay WebSocket path (and query) behind this page, if it has one. Terminals get
    /// their size from [`terminal_query`].
    pub fn ws_path(&self) -> Option<String> {
        match self {
            Self::Ssh { host } => Some(format!("/ws/ssh/{}", encode(host))),
            Self::Local { shell } => Some(format!("/ws/local/{}", encode(shell))),
            Self::K8sExec(c) => Some(format!("/ws/k8s/exec/{}", c.path())),
            Self::K8sLogs(c, o) => Some(format!("/ws/k8s/logs/{}?{}", c.path(), o.query())),
            Self::Tail { file, lines } => {
                Some(format!("/ws/tail/{}?{}", encode(file), tail_query(*lines)))
            }
            Self::Chat { room } => Some(format!("/ws/chat/{}", encode(room))),
            Self::Job { token } => Some(format!("/ws/exec/{}", encode(token))),
            Self::Login { .. }
            | Self::Picker
            | Self::Workspace { .. }
            | Self::Recordings(_)
            | Self::Replay { .. }
            | Self::Files { .. }
            | Self::NotFound(_) => None,
        }
    }

    /// "Open files here": the files page of the host or container behind a terminal page,
    /// when it has one (SSH hosts: the home folder, as the shell's folder cannot be known;
    /// containers: `/`, see [`FilesPlace::start`]).
    pub fn files_here(&self) -> Option<Route> {
        self.files_place()
            .map(|place| Self::Files { place, path: None })
    }

    /// Where the files behind a terminal page are (an SSH host, a container), if anywhere.
    pub fn files_place(&self) -> Option<FilesPlace> {
        match self {
            Self::Ssh { host } => Some(FilesPlace::Ssh(host.clone())),
            Self::K8sExec(c) => Some(FilesPlace::Pod(c.clone())),
            _ => None,
        }
    }

    /// A short title for the page header, in the language in force.
    pub fn title(&self) -> String {
        use crate::locale::{Text, t};
        match self {
            Self::Login { .. } => t(Text::LogIn).to_owned(),
            Self::Picker => t(Text::Targets).to_owned(),
            Self::Ssh { host } => format!("SSH · {host}"),
            Self::Local { shell } => format!("{} · {shell}", t(Text::TitleShell)),
            Self::K8sExec(c) => format!(
                "{} · {}/{}/{}",
                t(Text::TitleShell),
                c.namespace,
                c.pod,
                c.container
            ),
            Self::K8sLogs(c, _) => format!(
                "{} · {}/{}/{}",
                t(Text::TitleLogs),
                c.namespace,
                c.pod,
                c.container
            ),
            Self::Tail { file, .. } => format!("{} · {file}", t(Text::TitleTail)),
            Self::Chat { room } => format!("{} · {room}", t(Text::TitleChat)),
            Self::Job { token } => format!("{} · {}", t(Text::TitleJob), token_prefix(token)),
            Self::Workspace { .. } => t(Text::TitleWorkspace).to_owned(),
            Self::Recordings(_) => t(Text::Recordings).to_owned(),
            Self::Replay { id } => format!("{} · {id}", t(Text::TitleReplay)),
            Self::Files { place, .. } => format!("{} · {}", t(Text::TitleFiles), place.label()),
            Self::NotFound(_) => t(Text::TitleNotFound).to_owned(),
        }
    }
}

/// What the page shows of a job token: a bearer capability, so only its first characters
/// (screen shares, screenshots and window titles then do not give it away).
fn token_prefix(token: &str) -> String {
    let mut chars = token.chars();
    let mut prefix: String = chars.by_ref().take(4).collect();
    if chars.next().is_some() {
        prefix.push('…');
    }
    prefix
}

impl Container {
    pub fn new(cluster: &str, namespace: &str, pod: &str, container: &str) -> Self {
        Self {
            cluster: cluster.to_owned(),
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
            container: container.to_owned(),
        }
    }

    /// `{cluster}/{namespace}/{pod}/{container}`, each segment encoded.
    fn path(&self) -> String {
        [&self.cluster, &self.namespace, &self.pod, &self.container]
            .map(|s| encode(s))
            .join("/")
    }
}

impl PodLogOptions {
    /// `tail_lines=N&timestamps=B&previous=B`: the endpoint's query, and the page's.
    fn query(&self) -> String {
        PodLogQuery::from(*self).to_query()
    }
}

impl From<PodLogOptions> for PodLogQuery {
    /// The options of a first connection; the stream adds the resume token itself.
    fn from(o: PodLogOptions) -> Self {
        Self {
            tail_lines: Some(i64::from(o.tail_lines)),
            timestamps: o.timestamps,
            previous: o.previous,
            resume: ResumeQuery::default(),
        }
    }
}

/// The folder a files page names: the endpoints' own query; a path it refuses (or none)
/// opens the place's starting folder.
fn files_path(query: &str) -> Option<String> {
    PathQuery::parse(query)
        .ok()
        .and_then(|q| String::from_utf8(q.path).ok())
}

/// `lines=N`: the tail endpoint's query, and the page's.
fn tail_query(lines: u32) -> String {
    TailQuery {
        // u32 → usize is lossless on wasm32 and on 64-bit targets.
        lines: Some(lines as usize),
        resume: ResumeQuery::default(),
    }
    .to_query()
}

/// The query of a terminal endpoint: its size (`rows=R&cols=C`) and flow control (`flow=1`:
/// the view acknowledges what it displayed, see `flow`).
pub fn terminal_query(rows: u16, cols: u16) -> String {
    TerminalQuery::new(TermSize { rows, cols }, true).to_query()
}

/// A terminal page's socket path: `base_path` with the [`terminal_query`] of its size (one
/// place, so the socket `early.rs` remembers is the very one it later opens and adopts).
pub fn terminal_path(base_path: &str, rows: u16, cols: u16) -> String {
    with_query(base_path, &terminal_query(rows, cols))
}

/// Appends `query` to a path that may already have one.
pub fn with_query(path: &str, query: &str) -> String {
    if query.is_empty() {
        path.to_owned()
    } else if path.contains('?') {
        format!("{path}&{query}")
    } else {
        format!("{path}?{query}")
    }
}

fn truthy(value: &str) -> bool {
    matches!(value, "1" | "true" | "yes" | "on")
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| decode(v))
}

/// Percent-encodes one path segment or query value (everything but unreserved characters).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte))
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// Decodes `%XX` escapes; malformed escapes are kept as they are.
pub fn decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn every_page_round_trips_through_its_fragment() {
        let routes = [
            Route::Picker,
            Route::Login {
                next: None,
                sso_error: None,
            },
            Route::Login {
                next: Some("#/ssh/web1".into()),
                sso_error: None,
            },
            Route::Login {
                next: None,
                sso_error: Some(SsoRefusal::NotAllowed),
            },
            Route::Ssh {
                host: "web 1/α".into(),
            },
            Route::Local {
                shell: "tool box".into(),
            },
            Route::K8sExec(Container::new("prod", "default", "api-7d9", "app")),
            Route::K8sLogs(
                Container::new("prod", "kube-system", "dns", "coredns"),
                PodLogOptions {
                    tail_lines: 50,
                    timestamps: true,
                    previous: false,
                },
            ),
            Route::Tail {
                file: "syslog".into(),
                lines: 10,
            },
            Route::Chat { room: "ops".into() },
            Route::Job {
                token: "abc".into(),
            },
            Route::Workspace {
                open: None,
                place: None,
                session: None,
            },
            Route::Workspace {
                open: Some("#/local/sh".into()),
                place: Some("right".into()),
                session: Some("9f86".into()),
            },
            Route::Recordings(RecordingQuery::default()),
            Route::Recordings(RecordingQuery {
                user: Some("alice".into()),
                target: Some("ssh:web 1".into()),
                since: Some(1_765_000_000),
                until: Some(1_765_086_400),
            }),
            Route::Replay {
                id: "1765000000-9f86d081884c7d65".into(),
            },
            Route::Files {
                place: FilesPlace::Ssh("web 1".into()),
                path: None,
            },
            Route::Files {
                place: FilesPlace::Ssh("box".into()),
                path: Some("/srv/app ü/日志".into()),
            },
            Route::Files {
                place: FilesPlace::Pod(Container::new("prod", "default", "api 7/d", "app")),
                path: Some("/var/log".into()),
            },
        ];
        for route in routes {
            assert_eq!(Route::parse(&route.to_hash()), route, "{}", route.to_hash());
        }
    }

    #[test]
    fn files_open_beside_ssh_and_pod_terminals_only() {
        let ssh = Route::Ssh {
            host: "web 1".into(),
        };
        assert_eq!(
            ssh.files_here().map(|r| r.to_hash()).as_deref(),
            Some("#/files/ssh/web%201")
        );
        assert_eq!(Route::parse("#/local/sh").files_here(), None);
        assert_eq!(Route::parse("#/k8s/logs/c/ns/p/ctr").files_here(), None);
        assert_eq!(
            Route::parse("#/files/ssh/box?path=%2Ftmp"),
            Route::Files {
                place: FilesPlace::Ssh("box".into()),
                path: Some("/tmp".into())
            }
        );
        let pod = Route::parse("#/k8s/exec/c%201/ns/p/ctr").files_here();
        assert_eq!(
            pod.as_ref().map(Route::to_hash).as_deref(),
            Some("#/files/k8s/c%201/ns/p/ctr")
        );
        let Some(Route::Files { place, path: None }) = pod else {
            panic!("{pod:?}");
        };
        assert_eq!(place.api_base(), "/api/files/k8s/c%201/ns/p/ctr");
        assert_eq!(place.start(), "/");
        assert!(place.has_archives());
        assert_eq!(
            FilesPlace::Ssh("web 1".into()).api_base(),
            "/api/files/ssh/web%201"
        );
    }

    #[test]
    fn titles_show_only_the_start_of_a_job_token() {
        let job = Route::Job {
            token: "5f0c9e1a7b3d8c2e4a6b0d1f".into(),
        };
        assert_eq!(job.title(), "Job · 5f0c…");
        let short = Route::Job {
            token: "abc".into(),
        };
        assert_eq!(short.title(), "Job · abc");
    }

    #[test]
    fn empty_and_unknown_fragments() {
        assert_eq!(Route::parse(""), Route::Picker);
        assert_eq!(Route::parse("#"), Route::Picker);
        assert_eq!(Route::parse("#/"), Route::Picker);
        assert_eq!(Route::parse("#/nope/x"), Route::NotFound("/nope/x".into()));
    }

    #[test]
    fn login_only_returns_to_pages_of_this_app() {
        let evil = format!("#/login?next={}", encode("https://evil.example/"));
        assert_eq!(
            Route::parse(&evil),
            Route::Login {
                next: None,
                sso_error: None
            }
        );
        // An unknown refusal code is no refusal (the page shows nothing made up).
        assert_eq!(
            Route::parse("#/login?sso_error=%3Cscript%3E"),
            Route::Login {
                next: None,
                sso_error: None
            }
        );
    }

    #[test]
    fn endpoints_follow_the_relay_contract() {
        let ssh = Route::Ssh {
            host: "web1".into(),
        };
        assert_eq!(ssh.ws_path().as_deref(), Some("/ws/ssh/web1"));
        let local = Route::parse("#/local/toolbox");
        assert_eq!(local.ws_path().as_deref(), Some("/ws/local/toolbox"));
        let exec = Route::K8sExec(Container::new("c", "ns", "p", "ctr"));
        assert_eq!(exec.ws_path().as_deref(), Some("/ws/k8s/exec/c/ns/p/ctr"));
        let logs = Route::parse("#/k8s/logs/c/ns/p/ctr?timestamps=1");
        assert_eq!(
            logs.ws_path().as_deref(),
            Some("/ws/k8s/logs/c/ns/p/ctr?tail_lines=200&timestamps=true&previous=false")
        );
        let tail = Route::parse("#/tail/app.log?lines=5");
        assert_eq!(tail.ws_path().as_deref(), Some("/ws/tail/app.log?lines=5"));
        let chat = Route::Chat {
            room: "on call".into(),
        };
        assert_eq!(chat.ws_path().as_deref(), Some("/ws/chat/on%20call"));
        let job = Route::Job { token: "t".into() };
        assert_eq!(job.ws_path().as_deref(), Some("/ws/exec/t"));
        assert_eq!(Route::Picker.ws_path(), None);
    }

    #[test]
    fn queries_are_appended_whatever_the_path_has() {
        assert_eq!(
            with_query("/ws/ssh/a", "rows=2&cols=3"),
            "/ws/ssh/a?rows=2&cols=3"
        );
        assert_eq!(
            with_query("/ws/tail/a?lines=1", "session=s"),
            "/ws/tail/a?lines=1&session=s"
        );
        assert_eq!(with_query("/ws/chat/a", ""), "/ws/chat/a");
        assert_eq!(terminal_query(24, 80), "rows=24&cols=80&flow=1");
    }

    #[test]
    fn percent_encoding_round_trips_and_tolerates_junk() {
        for s in ["", "a b", "主机/1?&=#%", "😀"] {
            assert_eq!(decode(&encode(s)), s);
        }
        assert_eq!(decode("%zz%4"), "%zz%4");
        assert_eq!(decode("100%"), "100%");
    }
}
