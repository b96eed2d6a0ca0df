//! The exec protocol byte for byte, with a bare WebSocket client: what
//! kube-rs hides (v4 negotiation, the opening empty frame, the exact status
//! bytes, the close code client-go insists on).

use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::fixture::{self, PATIENCE};

async fn connect(
    cluster: &fixture::Cluster,
    path_and_query: &str,
    protocols: &str,
) -> (WebSocketStream<TlsStream<TcpStream>>, String) {
    let identity = cluster
        .emulator
        .client_identity("alice", &[])
        .expect("identity");
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(cluster.emulator.ca_der().to_vec()))
        .expect("CA");
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from_pem_slice(identity.cert_pem.as_bytes()).expect("cert")],
            PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes()).expect("key"),
        )
        .expect("client config");
    let tcp = TcpStream::connect(cluster.emulator.addr())
        .await
        .expect("tcp");
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").expect("name"), tcp)
        .await
        .expect("tls");
    let mut request = format!("wss://{}{path_and_query}", cluster.emulator.addr())
        .into_client_request()
        .expect("request");
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", protocols.parse().expect("header"));
    let (ws, response) = tokio_tungstenite::client_async(request, tls)
        .await
        .expect("upgrade");
    let protocol = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (ws, protocol)
}

async fn next(ws: &mut WebSocketStream<TlsStream<TcpStream>>) -> Message {
    tokio::time::timeout(PATIENCE, ws.next())
        .await
        .expect("a message arrives")
        .expect("the socket is open")
        .expect("a valid message")
}

#[tokio::test]
async fn v4_session_bytes_from_open_to_close() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cluster = fixture::start().await;
    let (mut ws, protocol) = connect(
        &cluster,
        "/api/v1/namespaces/dev/pods/web-1/exec?command=sh&command=-c&command=echo%20hi%3B%20exit%207&stdout=true&stderr=true",
        "v4.channel.k8s.io",
    )
    .await;
    assert_eq!(protocol, "v4.channel.k8s.io");

    assert_eq!(next(&mut ws).await, Message::binary(vec![1]));
    assert_eq!(next(&mut ws).await, Message::binary(b"\x01hi\n".to_vec()));
    let mut status = vec![3];
    status.extend_from_slice(
        br#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c echo hi; exit 7], exit code 7","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"7"}]}}"#,
    );
    assert_eq!(next(&mut ws).await, Message::binary(status));
    match next(&mut ws).await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Normal),
        other => panic!("expected a normal close, got {other:?}"),
    }
}

#[tokio::test]
async fn v5_is_preferred_and_stdin_close_is_end_of_file() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cluster = fixture::start().await;
    let (mut ws, protocol) = connect(
        &cluster,
        "/api/v1/namespaces/dev/pods/web-1/exec?command=wc&command=-c&stdin=true&stdout=true",
        "v4.channel.k8s.io, v5.channel.k8s.io",
    )
    .await;
    assert_eq!(protocol, "v5.channel.k8s.io");
    assert_eq!(next(&mut ws).await, Message::binary(vec![1]));

    ws.send(Message::binary(b"\x00\xff\xfe raw".to_vec()))
        .await
        .expect("stdin");
    ws.send(Message::binary(vec![255, 0]))
        .await
        .expect("close stdin");

    // `wc -c` counted the raw bytes, undecoded: 2 + 4 = 6.
    assert_eq!(next(&mut ws).await, Message::binary(b"\x016\n".to_vec()));
    assert_eq!(
        next(&mut ws).await,
        Message::binary([&[3u8][..], br#"{"metadata":{},"status":"Success"}"#].concat())
    );
}

#[tokio::test]
async fn a_malformed_close_signal_ends_the_session() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cluster = fixture::start().await;
    let (mut ws, _) = connect(
        &cluster,
        "/api/v1/namespaces/dev/pods/web-1/exec?command=sleep&command=600&stdin=true&stdout=true",
        "v5.channel.k8s.io",
    )
    .await;
    assert_eq!(next(&mut ws).await, Message::binary(vec![1]));
    tokio::time::timeout(PATIENCE, cluster.emulator.wait_for_live_processes(1))
        .await
        .expect("running");

    ws.send(Message::binary(vec![255, 0, 1]))
        .await
        .expect("sent");

    tokio::time::timeout(PATIENCE, cluster.emulator.wait_for_live_processes(0))
        .await
        .expect("the process group is killed");
}
