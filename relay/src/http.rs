//! The HTTP/1.1 server under the routes. warp's own `serve` sets no header-read or
//! keep-alive timeout and counts a connection only once it is a WebSocket, so a client
//! that opens thousands of sockets and never finishes a request (slowloris) would hold
//! them, and the relay's file descriptors, forever. Here every TCP connection takes a
//! permit until it is upgraded or closed, and a request's head must arrive within
//! `limits.header_read_timeout` (which also ends idle keep-alive connections).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;
use warp::http::Request;

/// The peer's address, in every request's extensions (warp's own is private to warp).
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub SocketAddr);

/// How the listener bounds connections that are not (yet) WebSockets.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Time allowed for a request's head, and for an idle keep-alive connection.
    pub header_read_timeout: Duration,
    /// TCP connections served at once before their upgrade.
    pub max_pending: usize,
}

/// Accepts and serves until `shutdown`, then lets requests in progress finish.
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    limits: HttpLimits,
    shutdown: CancellationToken,
) where
    S: Service<Request<Incoming>, Response = warp::reply::Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let pending = Arc::new(Semaphore::new(limits.max_pending.max(1)));
    let connections = TaskTracker::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    loop {
        // Waiting for a permit before accepting leaves the excess in the kernel's backlog,
        // where it costs the relay nothing.
        // `biased`, the stop first: once accepting has stopped, nothing more is accepted,
        // even when a connection is waiting at the same moment.
        let permit = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            permit = pending.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // EMFILE and friends: give the relay a moment to close something.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let per_request = service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ClientAddr(peer));
            service.clone().call(request)
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), per_request)
            .with_upgrades();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let mut connection = Box::pin(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                () = shutdown.cancelled() => {
                    // Finish the request in progress, then close.
                    connection.as_mut().graceful_shutdown();
                    connection.as_mut().await
                }
            };
            if let Err(error) = ended {
                tracing::debug!(%peer, %error, "HTTP connection ended");
            }
            // The socket is closed before its permit is given back. An upgraded
            // connection ends here too: from then on it counts against
            // `limits.max_connections` instead.
            drop(connection);
            drop(permit);
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}
