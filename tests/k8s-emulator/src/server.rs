//! The HTTPS server: accept loop, the handler chain, and every route in one
//! place.
//!
//! | Method    | Path                                        | Authorized as                        |
//! |-----------|---------------------------------------------|--------------------------------------|
//! | GET       | `/healthz`, `/livez`, `/readyz`             | (no authentication)                  |
//! | GET       | `/version`, `/api`, `/apis`, `/api/v1`      | any authenticated user               |
//! | GET       | `/api/v1/namespaces`                        | `list`/`watch namespaces` (cluster)  |
//! | GET       | `/api/v1/namespaces/{ns}`                   | `get namespaces` in `{ns}`           |
//! | GET       | `/api/v1/namespaces/{ns}/pods`              | `list`/`watch pods`                  |
//! | GET       | `/api/v1/pods`                              | `list`/`watch pods` (cluster scope)  |
//! | GET       | `/api/v1/namespaces/{ns}/pods/{pod}`        | `get pods`                           |
//! | GET, POST | `/api/v1/namespaces/{ns}/pods/{pod}/exec`   | `create pods/exec` (WebSocket)       |
//! | GET       | `/api/v1/namespaces/{ns}/pods/{pod}/log`    | `get pods/log`                       |
//!
//! A WebSocket upgrade of `pods/exec` is authorized as `create`, as the API
//! server does since `AuthorizePodWebsocketUpgradeCreatePermission`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::auth::{self, Attributes, UserInfo};
use crate::config::{AccessRule, TokenConfig};
use crate::discovery;
use crate::exec;
use crate::listwatch;
use crate::logs::{self, OpenFollows};
use crate::pods::Cluster;
use crate::process::ProcessRegistry;
use crate::query::Query;
use crate::selector::Selector;
use crate::status::{Status, json_response};
use crate::tls;

/// Every response body.
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// An empty body.
pub fn empty_body() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// How many audit events are kept (a benchmark must not grow memory forever).
pub const AUDIT_LIMIT: usize = 10_000;

/// One handled request, for tests that check who did what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// The user the request was authorized as (after impersonation); empty
    /// when authentication failed.
    pub user: String,
    /// That user's groups.
    pub groups: Vec<String>,
    /// The authenticated user when impersonating.
    pub impersonated_by: Option<String>,
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Response status code (101 for exec upgrades).
    pub code: u16,
}

/// State shared by every connection.
pub struct AppState {
    /// Pods and containers.
    pub cluster: Arc<Cluster>,
    /// Bearer tokens.
    pub tokens: RwLock<Vec<TokenConfig>>,
    /// Authorization rules.
    pub rules: RwLock<Vec<AccessRule>>,
    /// Exec'd process groups.
    pub processes: Arc<ProcessRegistry>,
    /// `follow=true` log responses still open.
    pub open_follows: OpenFollows,
    /// The most recent requests (at most [`AUDIT_LIMIT`]).
    pub audit: Mutex<VecDeque<AuditEvent>>,
    /// Flips to true when the emulator stops.
    pub shutdown: watch::Receiver<bool>,
    /// `host:port`, for `/api` discovery.
    pub address: String,
}

impl AppState {
    fn rules(&self) -> Vec<AccessRule> {
        self.rules.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn tokens(&self) -> Vec<TokenConfig> {
        self.tokens
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Accepts TLS connections until shutdown; dropping the future (or
/// aborting its task) closes every connection it serves.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<AppState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (tcp, peer) = match accepted {
            Ok(ok) => ok,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let state = state.clone();
        connections.spawn(async move {
            if let Err(error) = serve_connection(tcp, peer, acceptor, state).await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
}

async fn serve_connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    state: Arc<AppState>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let stream = acceptor.accept(tcp).await?;
    let identity = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|cert| tls::identity_from_certificate(cert));
    tracing::debug!(%peer, user = ?identity.as_ref().map(|u| &u.name), "TLS connection");
    let service = service_fn(move |request| {
        let state = state.clone();
        let identity = identity.clone();
        async move { Ok::<_, Infallible>(handle(state, identity, request).await) }
    });
    http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await?;
    Ok(())
}

async fn handle(
    state: Arc<AppState>,
    identity: Option<UserInfo>,
    request: Request<Incoming>,
) -> Response<Body> {
    let method = request.method().to_string();
    let uri = request.uri().to_string();
    let mut who: Option<(UserInfo, Option<UserInfo>)> = None;
    let response = match respond(&state, identity.as_ref(), request, &mut who).await {
        Ok(response) => response,
        Err(status) => status.into_response(),
    };
    let (user, by) = who.unwrap_or_else(|| {
        (
            UserInfo {
                name: String::new(),
                groups: Vec::new(),
            },
            None,
        )
    });
    tracing::debug!(%method, %uri, user = %user.name, code = response.status().as_u16(), "request");
    let mut audit = state.audit.lock().unwrap_or_else(|e| e.into_inner());
    if audit.len() == AUDIT_LIMIT {
        audit.pop_front();
    }
    audit.push_back(AuditEvent {
        user: user.name,
        groups: user.groups,
        impersonated_by: by.map(|u| u.name),
        method,
        uri,
        code: response.status().as_u16(),
    });
    drop(audit);
    response
}

/// The API's routes.
enum Route {
    Health,
    Version,
    Api,
    Apis,
    ApiV1,
    Namespaces,
    Namespace(String),
    /// Pods of one namespace, or of all (None).
    Pods(Option<String>),
    Pod(String, String),
    Exec(String, String),
    Log(String, String),
}

fn route(method: &Method, path: &str) -> Result<Route, Status> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let found = match segments.as_slice() {
        ["healthz"] | ["livez"] | ["readyz"] => Route::Health,
        ["version"] => Route::Version,
        ["api"] => Route::Api,
        ["apis"] => Route::Apis,
        ["api", "v1"] => Route::ApiV1,
        ["api", "v1", "namespaces"] => Route::Namespaces,
        ["api", "v1", "namespaces", ns] => Route::Namespace(ns.to_string()),
        ["api", "v1", "pods"] => Route::Pods(None),
        ["api", "v1", "namespaces", ns, "pods"] => Route::Pods(Some(ns.to_string())),
        ["api", "v1", "namespaces", ns, "pods", pod] => Route::Pod(ns.to_string(), pod.to_string()),
        ["api", "v1", "namespaces", ns, "pods", pod, "exec"] => {
            Route::Exec(ns.to_string(), pod.to_string())
        }
        ["api", "v1", "namespaces", ns, "pods", pod, "log"] => {
            Route::Log(ns.to_string(), pod.to_string())
        }
        _ => return Err(Status::no_route()),
    };
    let allowed = match found {
        Route::Exec(..) => method == Method::GET || method == Method::POST,
        _ => method == Method::GET,
    };
    if allowed {
        Ok(found)
    } else {
        Err(Status::method_not_allowed())
    }
}

impl Route {
    /// The authorizer attributes; None for non-resource paths every
    /// authenticated user may read (`system:discovery`).
    fn attributes(&self, watching: bool) -> Option<Attributes> {
        let list = if watching { "watch" } else { "list" };
        let resource = |verb, resource, subresource, namespace: &str, name: &str| Attributes {
            verb,
            resource,
            subresource,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        Some(match self {
            Route::Health | Route::Version | Route::Api | Route::Apis | Route::ApiV1 => {
                return None;
            }
            Route::Namespaces => resource(list, "namespaces", "", "", ""),
            // RequestInfo puts a namespace's own name in the namespace field.
            Route::Namespace(ns) => resource("get", "namespaces", "", ns, ns),
            Route::Pods(ns) => resource(list, "pods", "", ns.as_deref().unwrap_or(""), ""),
            Route::Pod(ns, pod) => resource("get", "pods", "", ns, pod),
            Route::Exec(ns, pod) => resource("create", "pods", "exec", ns, pod),
            Route::Log(ns, pod) => resource("get", "pods", "log", ns, pod),
        })
    }
}

async fn respond(
    state: &Arc<AppState>,
    identity: Option<&UserInfo>,
    request: Request<Incoming>,
    who: &mut Option<(UserInfo, Option<UserInfo>)>,
) -> Result<Response<Body>, Status> {
    let route = route(request.method(), request.uri().path());
    if let Ok(Route::Health) = route {
        let mut response = Response::new(
            Full::new(Bytes::from_static(b"ok"))
                .map_err(|never| match never {})
                .boxed_unsync(),
        );
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        return Ok(response);
    }

    let requestor = auth::authenticate(identity, request.headers(), &state.tokens())?;
    let rules = state.rules();
    let (user, impersonator) = match auth::impersonate(requestor.clone(), request.headers(), &rules)
    {
        Ok(ok) => ok,
        Err(status) => {
            *who = Some((requestor, None));
            return Err(status);
        }
    };
    *who = Some((user.clone(), impersonator));
    let route = route?;
    let query = Query::parse(request.uri().query());
    let watching = query.bool("watch");
    if let Some(attributes) = route.attributes(watching) {
        auth::authorize(&user, &attributes, &rules)?;
    }

    match route {
        Route::Health => Err(Status::no_route()),
        Route::Version => Ok(json(discovery::version())),
        Route::Api => Ok(json(discovery::core_versions(&state.address))),
        Route::Apis => Ok(json(discovery::groups())),
        Route::ApiV1 => Ok(json(discovery::core_v1_resources())),
        Route::Namespaces if watching => {
            listwatch::namespaces(&state.cluster, &query, state.shutdown.clone())
        }
        Route::Namespaces => Ok(json(state.cluster.namespace_list())),
        Route::Namespace(ns) => state.cluster.namespace(&ns).map(json),
        Route::Pods(ns) => {
            let selector =
                Selector::parse(query.first("labelSelector"), query.first("fieldSelector"))?;
            if watching {
                listwatch::pods(&state.cluster, ns, selector, &query, state.shutdown.clone())
            } else {
                Ok(json(state.cluster.pod_list(ns.as_deref(), &selector)))
            }
        }
        Route::Pod(ns, pod) => state.cluster.pod(&ns, &pod).map(json),
        Route::Exec(ns, pod) => {
            let target = state
                .cluster
                .container(&ns, &pod, query.first("container"))?;
            let exec_request = exec::ExecRequest::new(target, &query)?;
            exec::serve(
                request,
                exec_request,
                state.processes.clone(),
                state.shutdown.clone(),
            )
        }
        Route::Log(ns, pod) => {
            let options = logs::LogOptions::from_query(&query, &pod)?;
            let target = state
                .cluster
                .container(&ns, &pod, options.container.as_deref())?;
            logs::serve(
                state.cluster.clone(),
                target,
                options,
                &state.open_follows,
                state.shutdown.clone(),
            )
        }
    }
}

fn json(value: Value) -> Response<Body> {
    let mut body = serde_json::to_vec(&value).unwrap_or_default();
    body.push(b'\n');
    json_response(StatusCode::OK, body)
}
