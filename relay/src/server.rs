//! Every route of the relay in one place, and start/shutdown. The shared state is in
//! `state.rs`; each endpoint's own work in `endpoints/`.
//!
//! | route | what |
//! |---|---|
//! | `GET /healthz`, `GET /readyz`, `GET /metrics` | liveness, readiness, Prometheus |
//! | `POST /api/login`, `POST /api/logout`, `GET /api/me`, `GET /api/targets`, `GET /api/sessions`, `DELETE /api/sessions/{id}` | see `api.rs` |
//! | `GET /api/auth/providers`, `GET /api/auth/oidc/{id}/login`, `GET /api/auth/oidc/{id}/callback`, `POST /api/auth/oidc/{id}/backchannel-logout` | single sign-on (`api/sso.rs`) |
//! | `GET /api/audit?user=&target=&kind=&since=&until=&after=&limit=` | the audit trail (`audit` grant) |
//! | `GET /api/recordings?user=&target=&since=&until=`, `GET /api/recordings/{id}`, `…/{id}/index`, `…/{id}/find` | session recordings (`audit` grant; `Range` supported), the player's seek index and search |
//! | `GET /ws/ssh/{host_id}` | SSH terminal (`endpoints/ssh.rs`) |
//! | `GET /ws/local/{shell_id}` | terminal on the relay's own machine (`endpoints/local.rs`) |
//! | `GET /ws/tail/{file_id}?lines=N` | live tail of a configured file (`endpoints/tail.rs`) |
//! | `GET /ws/chat/{room}?since=<id>` | chat room, in memory or shared through Redis (`endpoints/chat.rs`) |
//! | `GET /ws/exec/{token}?position=<id>` | job output written into Redis (`endpoints/job.rs`) |
//! | `GET /ws/watch/{session}` | a running terminal session, read-only (`endpoints/watch.rs`) |
//! | `GET /ws/k8s/exec/{cluster}/{ns}/{pod}/{container}?rows=&cols=` | shell in a pod (`endpoints/k8s_exec.rs`) |
//! | `GET /ws/k8s/logs/{cluster}/{ns}/{pod}/{container}?tail_lines=&timestamps=&previous=` | pod log (`endpoints/k8s_logs.rs`) |
//! | `GET /api/files/ssh/{host}/list?path=&offset=&limit=`, `GET`/`PUT`/`DELETE /api/files/ssh/{host}/file?path=`, `POST /api/files/ssh/{host}/mkdir?path=`, `POST /api/files/ssh/{host}/rename?from=&to=` | files on SSH hosts (`endpoints/files.rs`, the place in `endpoints/ssh_files.rs`) |
//! | `GET /api/files/k8s/{cluster}/{ns}/{pod}/{container}/list?path=&offset=&limit=`, `GET`/`PUT`/`DELETE .../file?path=`, `GET .../archive?path=`, `POST .../mkdir?path=`, `POST .../rename?from=&to=` | files in a pod's container (`endpoints/files.rs`, the place in `endpoints/pod_files.rs`) |
//! | `GET /api/k8s/{cluster}/namespaces`, `GET /api/k8s/{cluster}/namespaces/{ns}/pods` | picker lists (`endpoints/k8s_browse.rs`) |
//! | anything else | the browser app from `static_dir`, when it exists |

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::api::LoginRequest;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, HeaderValue, StatusCode, header};
use warp::reply::{Reply, Response};
use warp::{Filter, Rejection};

use crate::api;
use crate::auth::BEARER_PROTOCOL_PREFIX;
use crate::backend::BackendKind;
use crate::backend::k8s::ContainerPath;
use crate::config::Config;
use crate::endpoints::{
    self, ChatEndpoint, JobEndpoint, LocalShellEndpoint, PodExecEndpoint, PodLogsEndpoint,
    SshEndpoint, StreamOpener, TailEndpoint, WatchEndpoint,
};
use crate::http::{self, ClientAddr, HttpLimits};
use crate::origin;
use crate::state::{AppState, StartError};
use crate::websocket::{self, NotAWebSocket, UpgradeRequest};

/// How long `stopped` waits for WebSockets to finish closing.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// Largest JSON body accepted by the API.
const MAX_API_BODY: u64 = 16 * 1024;

/// A running relay.
pub struct Relay {
    pub addr: SocketAddr,
    state: Arc<AppState>,
    task: JoinHandle<()>,
    /// The permits of `state.connections` (a reload does not resize it).
    connection_limit: u32,
    /// Cancelled when the listener is to stop taking connections.
    accepting: CancellationToken,
}

impl Relay {
    /// Binds `config.listen` and serves.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        let addr = config.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        Self::start_on(listener, config)
    }

    /// Serves on a listener the caller bound (tests bind port 0).
    pub fn start_on(listener: TcpListener, config: Config) -> Result<Self, StartError> {
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let limits = HttpLimits {
            header_read_timeout: config.limits.header_read_timeout,
            max_pending: config.limits.max_pending_connections,
        };
        let connection_limit = u32::try_from(config.limits.max_connections).unwrap_or(u32::MAX);
        let state = AppState::new(config)?;
        let service = warp::service(routes(state.clone()));
        // Cancelled by `stop_accepting`, and by the shutdown.
        let accepting = state.shutdown.child_token();
        let task = tokio::spawn(http::serve(listener, service, limits, accepting.clone()));
        tracing::info!(%addr, "relay listening");
        Ok(Self {
            addr,
            state,
            task,
            connection_limit,
            accepting,
        })
    }

    /// Starts a drain: `/readyz` answers 503 so load balancers send new users elsewhere,
    /// while every open stream and every request still works.
    pub fn drain(&self) {
        self.state.draining.store(true, Ordering::Relaxed);
    }

    /// Stops taking new connections (requests in progress finish); open streams go on.
    pub fn stop_accepting(&self) {
        self.accepting.cancel();
    }

    /// Returns once every terminal session has ended (its program exited or its user
    /// closed it), or after `timeout`; whether they all ended.
    pub async fn terminals_ended(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.state.terminals.all_ended())
            .await
            .is_ok()
    }

    /// Starts shutting down: every WebSocket gets a close frame, every backend is closed.
    pub fn shutdown(&self) {
        self.state.draining.store(true, Ordering::Relaxed);
        self.state.shutdown.cancel();
        self.state.terminals.end_all();
    }

    /// Waits until the server has stopped and every WebSocket has sent its close frame
    /// (for at most `CLOSE_WAIT`: a peer that reads nothing cannot hold the exit).
    pub async fn stopped(self) {
        let _ = self.task.await;
        let closed = self.state.connections.acquire_many(self.connection_limit);
        if tokio::time::timeout(CLOSE_WAIT, closed).await.is_err() {
            tracing::warn!("some WebSockets did not finish closing in time");
        }
    }

    /// Puts a new configuration in force (SIGHUP); open streams are re-checked against it
    /// at their next keepalive.
    pub fn reload(&self, config: Config) -> Result<(), StartError> {
        self.state.reload(config)
    }

    /// A token for `username`, as a login would mint it (for tests, tools and the bench).
    pub fn mint_token(&self, username: &str, ttl_secs: u64) -> anyhow::Result<String> {
        Ok(self.state.auth.mint(username, ttl_secs)?)
    }

    /// How many terminal sessions are open (attached or in their grace period).
    pub fn terminal_sessions(&self) -> usize {
        self.state.terminals.len()
    }

    /// Waits until some terminal session has stopped reading its backend because its
    /// browser is behind (backpressure at work).
    pub async fn wait_until_a_terminal_stalls(&self) {
        self.state.terminals.wait_until_stalled().await;
    }

    /// How many times terminal sessions were resumed by a reconnect, over every backend.
    pub fn terminal_resumes(&self) -> u64 {
        [BackendKind::Ssh, BackendKind::K8s, BackendKind::Local]
            .iter()
            .map(|b| {
                self.state
                    .metrics
                    .resumes
                    .with_label_values(&[b.as_str()])
                    .get()
            })
            .sum()
    }

    /// Returns once every WebSocket has ended and every audit event recorded so far (those
    /// of the streams that just closed included) has been written.
    pub async fn audit_written(&self) {
        if let Ok(all) = self
            .state
            .connections
            .acquire_many(self.connection_limit)
            .await
        {
            drop(all);
        }
        self.state.audit.written().await;
    }

    /// Returns once every session recording has been finished and closed.
    pub async fn recordings_finished(&self) {
        self.state.recorder.all_finished().await;
    }

    /// Returns once no file transfer runs (their temporary files removed and their audit
    /// events recorded).
    pub async fn transfers_finished(&self) {
        self.state.transfers.idle().await;
    }

    /// How many file tails have a reader running.
    pub fn tail_readers(&self) -> usize {
        self.state.tails.len()
    }

    /// How many jobs have viewers on this relay (each watched once, whatever its viewers).
    pub fn watched_jobs(&self) -> usize {
        self.state.jobs.as_ref().map_or(0, |hub| hub.len())
    }
}

fn with_state(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Arc<AppState>,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// All routes.
pub fn routes(state: Arc<AppState>) -> BoxedFilter<(Response,)> {
    let health = warp::path!("healthz")
        .and(warp::get())
        .map(|| "ok".into_response())
        .boxed();
    let ready = warp::path!("readyz")
        .and(warp::get())
        .and(with_state(state.clone()))
        .map(|state: Arc<AppState>| {
            if state.shutdown.is_cancelled() || state.draining.load(Ordering::Relaxed) {
                api::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "this relay is shutting down; send new users to another one",
                )
            } else {
                "ready".into_response()
            }
        })
        .boxed();
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(warp::ext::optional::<ClientAddr>())
        .and(warp::header::optional::<String>("authorization"))
        .map(
            |state: Arc<AppState>, peer: Option<ClientAddr>, authorization: Option<String>| {
                if metrics_allowed(&state, peer, authorization.as_deref()) {
                    state.metrics.render().into_response()
                } else {
                    api::error(
                        StatusCode::FORBIDDEN,
                        "metrics are served to loopback clients, or with metrics.token as a bearer token",
                    )
                }
            },
        )
        .boxed();

    let api = api_routes(state.clone());
    let ws = ws_routes(state.clone());
    let app = static_routes(state.config().static_dir.clone());
    // Everything but the probes (which load balancers and kubelets call by address) is
    // for the relay's own names only.
    let for_this_relay = host_allowed(state).and(first_of([api, ws, app])).boxed();

    first_of([health, ready, metrics, for_this_relay])
        .recover(recover)
        .unify()
        .with(warp::trace::trace(request_span))
        .map(Reply::into_response)
        .boxed()
}

fn api_routes(state: Arc<AppState>) -> BoxedFilter<(Response,)> {
    let s = || with_state(state.clone());
    let headers = warp::header::headers_cloned;
    let login = warp::path!("api" / "login")
        .and(warp::post())
        .and(origin_allowed(state.clone()))
        .and(warp::ext::optional::<ClientAddr>().map(|peer: Option<ClientAddr>| peer.map(|p| p.0)))
        .and(s())
        .and(warp::body::content_length_limit(MAX_API_BODY))
        .and(warp::body::json::<LoginRequest>())
        .then(api::login)
        .boxed();
    let logout = warp::path!("api" / "logout")
        .and(warp::post())
        .and(origin_allowed(state.clone()))
        .and(s())
        .and(headers())
        .then(api::logout)
        .boxed();
    let me = warp::path!("api" / "me")
        .and(warp::get())
        .and(origin_allowed(state.clone()))
        .and(s())
        .and(headers())
        .then(api::whoami)
        .boxed();
    let targets = warp::path!("api" / "targets")
        .and(warp::get())
        .and(origin_allowed(state.clone()))
        .and(s())
        .and(headers())
        .then(api::targets)
        .boxed();
    let sessions = warp::path!("api" / "sessions")
        .and(warp::get())
        .and(origin_allowed(state.clone()))
        .and(s())
        .and(headers())
        .then(api::sessions)
        .boxed();
    let end_session = warp::path!("api" / "sessions" / String)
        .and(warp::delete())
        .and(origin_allowed(state.clone()))
        .and(s())
        .and(headers())
        .then(api::end_session)
        .boxed();
    let audit = warp::path!("api" / "audit")
        .and(warp::get())
        .and(origin_allowed(state.clone()))
        .and(s())
        .and(headers())
        .and(raw_query())
        .then(api::audit)
        .boxed();
    let recordings = warp::path!("api" / "recordings")
        .and(warp::get())
        .and(origin_allowed(state.clone()))
        .and(s())
        .and(headers())
        .and(raw_query())
        .then(api::recordings)
        .boxed();
    let recording = warp::path!("api" / "recordings" / String)
        .and(warp::get())
        .and(origin_allowed(state.clone()))
        .and(s())
        .and(headers())
        .then(api::recording)
        .boxed();
    let recording_index = warp::path!("api" / "recordings" / String / "index")
        .and(warp::get())
        .and(origin_allowed(state.clone()))
        .and(s())
        .and(headers())
        .then(api::recording_index)
        .boxed();
    let recording_find = warp::path!("api" / "recordings" / String / "find")
        .and(warp::get())
        .and(origin_allowed(state.clone()))
        .and(s())
        .and(headers())
        .and(raw_query())
        .then(api::recording_find)
        .boxed();
    // Matched by hand: a method filter would turn every unknown /api path into a 405.
    let preflight = warp::path("api")
        .and(warp::method())
        .and_then(|method: warp::http::Method| async move {
            if method == warp::http::Method::OPTIONS {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            }
        })
        .untuple_one()
        .and(origin_allowed(state.clone()))
        .map(|| StatusCode::NO_CONTENT.into_response())
        .boxed();
    first_of([
        login,
        logout,
        sso_routes(state.clone()),
        me,
        targets,
        sessions,
        end_session,
        audit,
        recordings,
        recording,
        recording_index,
        recording_find,
        k8s_api_routes(state.clone()),
        files_routes(state.clone()),
        preflight,
    ])
    .and(warp::header::optional::<String>("origin"))
    .and(s())
    .map(cors)
    .map(|mut response: Response| {
        // Per-user answers: never kept by a proxy or the browser's cache.
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    })
    .boxed()
}

/// Single sign-on. The login and callback are top-level navigations (the provider sends
/// the browser back), and the back-channel logout comes from the provider's server: none
/// is checked for an Origin; the flow cookie's state and the logout token's signature are
/// what they are checked by.
fn sso_routes(state: Arc<AppState>) -> BoxedFilter<(Response,)> {
    let s = || with_state(state.clone());
    let providers = warp::path!("api" / "auth" / "providers")
        .and(warp::get())
        .and(s())
        .then(api::sso::providers)
        .boxed();
    let login = warp::path!("api" / "auth" / "oidc" / String / "login")
        .and(warp::get())
        .and(warp::header::optional::<String>("host"))
        .and(s())
        .then(api::sso::login)
        .boxed();
    let callback = warp::path!("api" / "auth" / "oidc" / String / "callback")
        .and(warp::get())
        .and(raw_query())
        .and(warp::header::headers_cloned())
        .and(s())
        .then(api::sso::callback)
        .boxed();
    let backchannel = warp::path!("api" / "auth" / "oidc" / String / "backchannel-logout")
        .and(warp::post())
        .and(warp::body::content_length_limit(MAX_API_BODY))
        .and(warp::body::bytes())
        .and(s())
        .then(api::sso::backchannel_logout)
        .boxed();
    first_of([providers, login, callback, backchannel])
}

/// The first of `routes` that matches. Each route is boxed before they are chained:
/// chaining warp filters unboxed nests their types, and type-checking that nesting took
/// rustc eleven minutes for this crate (`-Z time-passes`: `type_check_crate` 654 s, 3 s
/// once boxed).
fn first_of(
    routes: impl IntoIterator<Item = BoxedFilter<(Response,)>>,
) -> BoxedFilter<(Response,)> {
    routes
        .into_iter()
        .reduce(|first, then| first.or(then).unify().boxed())
        .unwrap_or_else(|| {
            warp::any()
                .and_then(|| async { Err::<Response, _>(warp::reject::not_found()) })
                .boxed()
        })
}

/// The request's log span: its path, except a job token's (a bearer capability).
fn request_span(info: warp::trace::Info<'_>) -> tracing::Span {
    let path = info.path();
    let path = match path.strip_prefix("/ws/exec/") {
        Some(_) => "/ws/exec/…",
        None => path,
    };
    tracing::info_span!("request", method = %info.method(), path)
}

#[derive(Debug)]
struct MisdirectedHost(Option<String>);
impl warp::reject::Reject for MisdirectedHost {}

/// Refuses (HTTP 421) a request for a name that is not the relay's own: a page that
/// rebinds its name to the relay's address sends its own name as `Host`.
fn host_allowed(state: Arc<AppState>) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::optional::<String>("host")
        .and(with_state(state))
        .and_then(|host: Option<String>, state: Arc<AppState>| async move {
            if origin::host_allowed(host.as_deref(), &state.config().public_origins) {
                Ok(())
            } else {
                Err(warp::reject::custom(MisdirectedHost(host)))
            }
        })
        .untuple_one()
}

/// CORS for the app hosted on another allowed origin (e.g. a CDN): credentials included.
fn cors(mut response: Response, origin: Option<String>, state: Arc<AppState>) -> Response {
    let Some(origin) = origin else {
        return response;
    };
    if !state.config().allowed_origins.contains(&origin) {
        return response;
    }
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("content-type, authorization"),
        );
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

fn k8s_api_routes(state: Arc<AppState>) -> BoxedFilter<(Response,)> {
    let namespaces = warp::path!("api" / "k8s" / String / "namespaces")
        .and(warp::get())
        .and(origin_allowed(state.clone()))
        .and(with_state(state.clone()))
        .and(warp::header::headers_cloned())
        .then(endpoints::k8s_namespaces);
    let pods = warp::path!("api" / "k8s" / String / "namespaces" / String / "pods")
        .and(warp::get())
        .and(origin_allowed(state.clone()))
        .and(with_state(state))
        .and(warp::header::headers_cloned())
        .then(endpoints::k8s_pods);
    first_of([namespaces.boxed(), pods.boxed()])
}

/// Files on SSH hosts (`endpoints/ssh_files.rs`) and in pods' containers
/// (`endpoints/pod_files.rs`, which also have `archive`): the same routes under each place's
/// path, served by `endpoints/files.rs`.
fn files_routes(state: Arc<AppState>) -> BoxedFilter<(Response,)> {
    use endpoints::files::{self, Download};
    let host = |what: &'static str| {
        warp::path("api")
            .and(warp::path("files"))
            .and(warp::path("ssh"))
            .and(warp::path::param::<String>())
            .and(warp::path(what))
            .and(warp::path::end())
            .map(endpoints::ssh_files::SshHostFiles)
            .boxed()
    };
    let container = |what: &'static str| {
        warp::path("api")
            .and(warp::path("files"))
            .and(warp::path("k8s"))
            .and(warp::path::param::<String>())
            .and(warp::path::param::<String>())
            .and(warp::path::param::<String>())
            .and(warp::path::param::<String>())
            .and(warp::path(what))
            .and(warp::path::end())
            .map(|cluster, namespace, pod, container| ContainerPath {
                cluster,
                namespace,
                pod,
                container,
            })
            .boxed()
    };
    let archive = container("archive")
        .and(origin_allowed(state.clone()))
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(warp::header::headers_cloned())
        .and(raw_query())
        .then(|path, state, headers, query| {
            files::download(path, state, headers, query, Download::Archive)
        })
        .boxed();
    let mut routes = place_files_routes(host, &state);
    routes.extend(place_files_routes(container, &state));
    routes.push(archive);
    first_of(routes)
}

/// A place's query string, empty when there is none.
fn raw_query() -> impl Filter<Extract = (String,), Error = Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// The file routes of one kind of place, whose path `base` reads (`list`, `file`, ...).
fn place_files_routes<P: endpoints::files::Place>(
    base: impl Fn(&'static str) -> BoxedFilter<(P,)>,
    state: &Arc<AppState>,
) -> Vec<BoxedFilter<(Response,)>> {
    use endpoints::files::{self, Download};
    let route = |what: &'static str, method: BoxedFilter<()>| {
        base(what)
            .and(origin_allowed(state.clone()))
            .and(method)
            .and(with_state(state.clone()))
            .and(warp::header::headers_cloned())
            .and(raw_query())
            .boxed()
    };
    vec![
        route("list", warp::get().boxed())
            .then(files::list::<P>)
            .boxed(),
        route("file", warp::get().boxed())
            .then(|place, state, headers, query| {
                files::download::<P>(place, state, headers, query, Download::File)
            })
            .boxed(),
        route("file", warp::put().boxed())
            .and(warp::body::stream())
            .then(|place, state, headers, query, body| {
                files::upload::<P, _, _>(place, state, headers, query, Box::pin(body))
            })
            .boxed(),
        route("file", warp::delete().boxed())
            .then(files::delete::<P>)
            .boxed(),
        route("mkdir", warp::post().boxed())
            .then(files::mkdir::<P>)
            .boxed(),
        route("rename", warp::post().boxed())
            .then(files::rename::<P>)
            .boxed(),
    ]
}

fn k8s_ws_routes(state: Arc<AppState>) -> BoxedFilter<(Response,)> {
    let container = |kind: &'static str| {
        warp::path("ws")
            .and(warp::path("k8s"))
            .and(warp::path(kind))
            .and(warp::path::param::<String>())
            .and(warp::path::param::<String>())
            .and(warp::path::param::<String>())
            .and(warp::path::param::<String>())
            .and(warp::path::end())
            .map(|cluster, namespace, pod, container| ContainerPath {
                cluster,
                namespace,
                pod,
                container,
            })
            .and(raw_query())
    };
    let exec = container("exec").map(|path, query| PodExecEndpoint { path, query });
    let logs = container("logs").map(|path, query| PodLogsEndpoint { path, query });
    first_of([upgrade(state.clone(), exec), upgrade(state, logs)])
}

fn ws_routes(state: Arc<AppState>) -> BoxedFilter<(Response,)> {
    let ssh = warp::path!("ws" / "ssh" / String)
        .and(raw_query())
        .map(|host_id, query| SshEndpoint { host_id, query });
    let local = warp::path!("ws" / "local" / String)
        .and(raw_query())
        .map(|shell_id, query| LocalShellEndpoint { shell_id, query });
    let tail = warp::path!("ws" / "tail" / String)
        .and(raw_query())
        .map(|file_id, query| TailEndpoint { file_id, query });
    let chat = warp::path!("ws" / "chat" / String)
        .and(raw_query())
        .map(|room, query| ChatEndpoint { room, query });
    let job = warp::path!("ws" / "exec" / String)
        .and(raw_query())
        .map(|token, query| JobEndpoint { token, query });
    let terminals = state.terminals.clone();
    let watch = warp::path!("ws" / "watch" / String).map(move |session| WatchEndpoint {
        session,
        terminals: terminals.clone(),
    });
    first_of([
        upgrade(state.clone(), ssh),
        upgrade(state.clone(), local),
        upgrade(state.clone(), tail),
        upgrade(state.clone(), chat),
        upgrade(state.clone(), job),
        upgrade(state.clone(), watch),
        k8s_ws_routes(state),
    ])
}

/// Origin check, WebSocket upgrade, then the endpoint's own work.
fn upgrade<O: StreamOpener>(
    state: Arc<AppState>,
    opener: impl Filter<Extract = (O,), Error = Rejection> + Clone + Send + Sync + 'static,
) -> BoxedFilter<(Response,)> {
    opener
        .and(origin_allowed(state.clone()))
        .and(websocket::upgrade_request())
        .and(with_state(state))
        .map(
            |opener: O, mut request: UpgradeRequest, state: Arc<AppState>| {
                let headers = request.take_headers();
                let Ok(permit) = state.connections.clone().try_acquire_owned() else {
                    return api::error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "this relay is at its connection limit (limits.max_connections); try again later",
                    );
                };
                // Frames up to 4x the limit are read and answered with an error frame;
                // larger ones close the socket (1009).
                let limit = state.config().limits.max_frame_bytes.saturating_mul(4);
                let protocol = match chosen_subprotocol(&headers) {
                    Ok(protocol) => protocol,
                    Err(why) => return api::error(StatusCode::BAD_REQUEST, why),
                };
                let mut response = request.accept(limit, move |socket| async move {
                    endpoints::serve(socket, state, headers, opener).await;
                    drop(permit);
                });
                if let Some(protocol) = protocol.and_then(|p| HeaderValue::from_str(&p).ok()) {
                    response
                        .headers_mut()
                        .insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
                }
                response
            },
        )
        .boxed()
}

/// The subprotocol to answer with. Browsers fail a handshake whose response names none
/// when they offered some, so it is the first offered one that is not a token; offering
/// only a token is refused (echoing it would put it in proxies' logs).
fn chosen_subprotocol(headers: &HeaderMap) -> Result<Option<String>, &'static str> {
    let Some(value) = headers.get(header::SEC_WEBSOCKET_PROTOCOL) else {
        return Ok(None);
    };
    let offered: Vec<&str> = value
        .to_str()
        .map_err(|_| "Sec-WebSocket-Protocol is not text")?
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    match offered
        .iter()
        .find(|p| !p.starts_with(BEARER_PROTOCOL_PREFIX))
    {
        Some(protocol) => Ok(Some((*protocol).to_owned())),
        None if offered.is_empty() => Ok(None),
        None => Err(
            "offer a subprotocol besides bearer.<token>, e.g. \"opsdeck\": the relay does not echo tokens back",
        ),
    }
}

#[derive(Debug)]
struct ForbiddenOrigin(String);
impl warp::reject::Reject for ForbiddenOrigin {}

/// Refuses (HTTP 403) a request whose Origin is neither the relay's own nor allowed:
/// cross-site WebSocket hijacking and CSRF both need a foreign Origin.
fn origin_allowed(state: Arc<AppState>) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::optional::<String>("origin")
        .and(warp::header::optional::<String>("host"))
        .and(with_state(state))
        .and_then(
            |origin: Option<String>, host: Option<String>, state: Arc<AppState>| async move {
                match origin {
                    None => Ok(()),
                    Some(origin) if origin_ok(&origin, host.as_deref(), &state.config()) => Ok(()),
                    Some(origin) => Err(warp::reject::custom(ForbiddenOrigin(origin))),
                }
            },
        )
        .untuple_one()
}

fn origin_ok(origin: &str, host: Option<&str>, config: &Config) -> bool {
    origin::origin_allowed(
        origin,
        host,
        &config.public_origins,
        &config.allowed_origins,
    )
}

fn static_routes(dir: PathBuf) -> BoxedFilter<(Response,)> {
    let index = dir.join("index.html");
    // The policy the app was built for (written by its post-build hook), sent with pages.
    let csp = std::fs::read_to_string(dir.join("csp.txt"))
        .ok()
        .and_then(|text| HeaderValue::from_str(text.trim()).ok());
    let page_csp = csp.clone();
    let files = warp::get()
        .and(warp::path::full())
        .and(warp::fs::dir(dir))
        .map(move |path: warp::path::FullPath, file: warp::fs::File| {
            let path = path.as_str();
            let page = path == "/" || path.ends_with(".html");
            let cache = if is_immutable_asset(path) {
                "public, max-age=31536000, immutable"
            } else {
                "no-cache"
            };
            let response = warp::reply::with_header(file, header::CACHE_CONTROL, cache);
            with_security_headers(response.into_response(), csp.as_ref().filter(|_| page))
        });
    // Any other path loads the app, which routes itself.
    let fallback = warp::get()
        .and(warp::path::full())
        .and_then(|path: warp::path::FullPath| async move {
            if path.as_str().starts_with("/api/") || path.as_str().starts_with("/ws/") {
                Err(warp::reject::not_found())
            } else {
                Ok(())
            }
        })
        .untuple_one()
        .and(warp::fs::file(index))
        .map(move |file: warp::fs::File| {
            let response = warp::reply::with_header(file, header::CACHE_CONTROL, "no-cache");
            with_security_headers(response.into_response(), page_csp.as_ref())
        });
    files.or(fallback).unify().boxed()
}

/// Trunk names built assets by content hash (`app-<16 hex>.css`) and the xterm.js modules
/// live in versioned folders: such files never change and may be cached forever.
fn is_immutable_asset(path: &str) -> bool {
    if path.starts_with("/vendor/") {
        return true;
    }
    let name = path.rsplit('/').next().unwrap_or_default();
    let stem = name.split('.').next().unwrap_or_default();
    stem.split(['-', '_'])
        .skip(1)
        .any(|part| part.len() == 16 && part.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn with_security_headers(mut response: Response, csp: Option<&HeaderValue>) -> Response {
    let headers = response.headers_mut();
    if let Some(csp) = csp {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp.clone());
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    let (status, message) = if let Some(MisdirectedHost(host)) = rejection.find() {
        (
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "this relay does not serve the host {:?}; its operator lists the names it is reached by in public_origins",
                host.as_deref()
                    .unwrap_or("")
                    .chars()
                    .take(64)
                    .collect::<String>()
            ),
        )
    } else if rejection.is_not_found() {
        (StatusCode::NOT_FOUND, "no such page or endpoint".to_owned())
    } else if let Some(ForbiddenOrigin(origin)) = rejection.find() {
        (
            StatusCode::FORBIDDEN,
            format!("origin {origin} is not allowed to use this relay; add it to allowed_origins"),
        )
    } else if let Some(e) = rejection.find::<NotAWebSocket>() {
        (StatusCode::BAD_REQUEST, e.to_string())
    } else if let Some(e) = rejection.find::<warp::reject::PayloadTooLarge>() {
        (StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
    } else if let Some(e) = rejection.find::<warp::body::BodyDeserializeError>() {
        (StatusCode::BAD_REQUEST, format!("bad JSON body: {e}"))
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed".to_owned(),
        )
    } else if let Some(e) = rejection.find::<warp::reject::UnsupportedMediaType>() {
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, e.to_string())
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        (
            StatusCode::LENGTH_REQUIRED,
            "a Content-Length is required".to_owned(),
        )
    } else {
        tracing::debug!(?rejection, "request refused");
        (StatusCode::BAD_REQUEST, "bad request".to_owned())
    };
    Ok(api::error(status, message))
}

/// `/metrics` tells an attacker what runs and how busy it is: loopback clients, or a
/// scraper holding `metrics.token`.
fn metrics_allowed(
    state: &AppState,
    peer: Option<ClientAddr>,
    authorization: Option<&str>,
) -> bool {
    let token = &state.config().metrics.token;
    if !token.is_empty() {
        let offered = authorization
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or_default();
        if constant_time_eq(offered.as_bytes(), token.as_bytes()) {
            return true;
        }
    }
    peer.is_some_and(|ClientAddr(addr)| addr.ip().is_loopback())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_origin_and_listed_origins_are_allowed_others_are_not() {
        let config = Config::from_toml(
            r#"allowed_origins = ["https://app.example.com"]
public_origins = ["http://relay:8080"]"#,
            "t",
        )
        .unwrap();
        assert!(origin_ok("http://relay:8080", Some("relay:8080"), &config));
        assert!(origin_ok(
            "https://app.example.com",
            Some("relay:8080"),
            &config
        ));
        assert!(!origin_ok(
            "https://evil.example",
            Some("relay:8080"),
            &config
        ));
        assert!(!origin_ok("null", Some("relay:8080"), &config));
    }

    #[test]
    fn only_hashed_or_versioned_assets_are_cached_forever() {
        assert!(is_immutable_asset("/app-0123456789abcdef.css"));
        assert!(is_immutable_asset("/frontend-0123456789abcdef_bg.wasm"));
        assert!(is_immutable_asset("/frontend-0123456789abcdef.js"));
        assert!(is_immutable_asset("/vendor/xterm-6.0.0/xterm.mjs"));
        assert!(!is_immutable_asset("/index.html"));
        assert!(!is_immutable_asset("/config.json"));
        assert!(!is_immutable_asset("/favicon.svg"));
    }

    #[test]
    fn token_subprotocols_are_not_echoed_when_another_is_offered() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("bearer.abc, opsdeck"),
        );
        assert_eq!(
            chosen_subprotocol(&headers).unwrap().as_deref(),
            Some("opsdeck")
        );
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("bearer.abc"),
        );
        assert!(chosen_subprotocol(&headers).is_err());
    }
}
