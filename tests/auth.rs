//! Who may connect and open what: login, cookies, tokens, origins, grants.

use common::api::{ApiError, LoginRequest, Me, Targets};
use opsdeck_tests::client::WsClient;
use opsdeck_tests::relay::{PASSWORD, TestRelay, users_toml};

const HOSTS: &str = "[[grants]]\ngroups = [\"ops\"]\nssh = [\"web\"]\nfiles = [\"*\"]\n\
    [[ssh_hosts]]\nid = \"web\"\naddress = \"127.0.0.1\"\nport = 1\nusername = \"x\"\npassword_env = \"UNSET_FOR_TESTS\"\n\
    [[ssh_hosts]]\nid = \"db\"\naddress = \"127.0.0.1\"\nport = 1\nusername = \"x\"\npassword_env = \"UNSET_FOR_TESTS\"\n\
    [[files]]\nid = \"syslog\"\npath = \"/dev/null\"\n";

async fn relay() -> anyhow::Result<TestRelay> {
    let config = format!(
        "allowed_origins = [\"https://app.example.com\"]\n{}\n{HOSTS}",
        users_toml()
    );
    TestRelay::start(&config).await
}

async fn login(relay: &TestRelay, user: &str, password: &str) -> anyhow::Result<reqwest::Response> {
    Ok(reqwest::Client::new()
        .post(relay.http_url("/api/login"))
        .json(&LoginRequest {
            username: user.into(),
            password: password.into(),
        })
        .send()
        .await?)
}

fn token_from_cookie(response: &reqwest::Response) -> anyhow::Result<(String, String)> {
    let cookie = response
        .headers()
        .get("set-cookie")
        .ok_or_else(|| anyhow::anyhow!("no cookie set"))?
        .to_str()?
        .to_owned();
    let token = cookie
        .strip_prefix("X-Token=")
        .and_then(|rest| rest.split(';').next())
        .ok_or_else(|| anyhow::anyhow!("cookie is not X-Token: {cookie}"))?
        .to_owned();
    Ok((token, cookie))
}

async fn close_code(
    relay: &TestRelay,
    token: Option<&str>,
    path: &str,
) -> anyhow::Result<(u16, String)> {
    let mut client = WsClient::connect(&relay.ws_url(path), token, None).await?;
    let (code, reason, _) = client.read_until_closed().await?;
    Ok((code, reason))
}

#[tokio::test]
async fn login_sets_an_httponly_samesite_cookie_that_opens_websockets() -> anyhow::Result<()> {
    let relay = relay().await?;
    let response = login(&relay, "alice", PASSWORD).await?;
    assert_eq!(response.status(), 200);
    let (token, cookie) = token_from_cookie(&response)?;
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    let me: Me = response.json().await?;
    assert_eq!(me.username, "alice");
    assert_eq!(me.groups, vec!["ops".to_string()]);
    // The cookie authenticates a WebSocket: it gets past auth to the (unreachable) host.
    let (code, reason) = close_code(&relay, Some(&token), "/ws/ssh/web").await?;
    assert_eq!(code, 4502, "{reason}");
    Ok(())
}

#[tokio::test]
async fn wrong_password_is_refused_with_401_and_a_message() -> anyhow::Result<()> {
    let relay = relay().await?;
    let response = login(&relay, "alice", "wrong").await?;
    assert_eq!(response.status(), 401);
    assert!(response.headers().get("set-cookie").is_none());
    let body: ApiError = response.json().await?;
    assert_eq!(body.error, "wrong username or password");
    let unknown = login(&relay, "mallory", PASSWORD).await?;
    assert_eq!(unknown.status(), 401);
    Ok(())
}

#[tokio::test]
async fn malformed_login_bodies_get_400_with_a_message() -> anyhow::Result<()> {
    let relay = relay().await?;
    let response = reqwest::Client::new()
        .post(relay.http_url("/api/login"))
        .header("content-type", "application/json")
        .body("{\"username\": 1")
        .send()
        .await?;
    assert_eq!(response.status(), 400);
    let body: ApiError = response.json().await?;
    assert!(body.error.contains("bad JSON body"), "{}", body.error);
    Ok(())
}

#[tokio::test]
async fn websockets_without_a_valid_token_are_closed_with_4401() -> anyhow::Result<()> {
    let relay = relay().await?;
    let (code, reason) = close_code(&relay, None, "/ws/ssh/web").await?;
    assert_eq!(code, 4401);
    assert!(reason.contains("no token"), "{reason}");
    let (code, _) = close_code(&relay, Some("not.a.token"), "/ws/ssh/web").await?;
    assert_eq!(code, 4401);
    Ok(())
}

#[tokio::test]
async fn targets_not_granted_are_4403_and_unknown_ones_4404() -> anyhow::Result<()> {
    let relay = relay().await?;
    let alice = relay.token("alice");
    let (code, reason) = close_code(&relay, Some(&alice), "/ws/ssh/db").await?;
    assert_eq!(code, 4403, "{reason}");
    let bob = relay.token("bob");
    let (code, _) = close_code(&relay, Some(&bob), "/ws/ssh/web").await?;
    assert_eq!(code, 4403);
    let (code, reason) = close_code(&relay, Some(&alice), "/ws/ssh/nope").await?;
    assert_eq!(code, 4404);
    assert!(reason.contains("nope"), "{reason}");
    Ok(())
}

#[tokio::test]
async fn bad_query_parameters_close_with_4400_and_say_which() -> anyhow::Result<()> {
    let relay = relay().await?;
    let alice = relay.token("alice");
    for (query, expected) in [
        ("?rows=abc", "rows"),
        ("?rows=0&cols=80", "between 1 and 1000"),
        ("?cols=5000", "between 1 and 1000"),
        ("?position=5", "position needs a session"),
        ("?session=abc&position=x", "position"),
    ] {
        let (code, reason) =
            close_code(&relay, Some(&alice), &format!("/ws/ssh/web{query}")).await?;
        assert_eq!(code, 4400, "{query}: {reason}");
        assert!(reason.contains(expected), "{query}: {reason}");
    }
    Ok(())
}

#[tokio::test]
async fn foreign_origins_get_http_403_before_the_upgrade() -> anyhow::Result<()> {
    let relay = relay().await?;
    let token = relay.token("alice");
    let url = relay.ws_url("/ws/ssh/web");
    let refused = WsClient::connect(&url, Some(&token), Some("https://evil.example")).await;
    let error = format!(
        "{:#}",
        refused
            .err()
            .ok_or_else(|| anyhow::anyhow!("upgrade accepted"))?
    );
    assert!(error.contains("403"), "{error}");
    // Listed and same-origin pages are let through to authentication.
    for origin in [
        "https://app.example.com".to_string(),
        format!("http://{}", relay.addr),
    ] {
        let mut client = WsClient::connect(&url, Some(&token), Some(&origin)).await?;
        let (code, _, _) = client.read_until_closed().await?;
        assert_eq!(code, 4502, "{origin}");
    }
    let login = reqwest::Client::new()
        .post(relay.http_url("/api/login"))
        .header("origin", "https://evil.example")
        .json(&LoginRequest {
            username: "alice".into(),
            password: PASSWORD.into(),
        })
        .send()
        .await?;
    assert_eq!(login.status(), 403);
    Ok(())
}

#[tokio::test]
async fn logout_revokes_the_token() -> anyhow::Result<()> {
    let relay = relay().await?;
    let (token, _) = token_from_cookie(&login(&relay, "alice", PASSWORD).await?)?;
    let logout = reqwest::Client::new()
        .post(relay.http_url("/api/logout"))
        .header("cookie", format!("X-Token={token}"))
        .send()
        .await?;
    assert_eq!(logout.status(), 204);
    let cleared = logout
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    assert!(cleared.is_some_and(|c| c.contains("Max-Age=0")));
    let (code, reason) = close_code(&relay, Some(&token), "/ws/ssh/web").await?;
    assert_eq!(code, 4431, "{reason}");
    Ok(())
}

#[tokio::test]
async fn tokens_also_work_as_bearer_header_and_subprotocol() -> anyhow::Result<()> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let relay = relay().await?;
    let token = relay.token("alice");
    let me = reqwest::Client::new()
        .get(relay.http_url("/api/me"))
        .bearer_auth(&token)
        .send()
        .await?;
    assert_eq!(me.status(), 200);
    let anonymous = reqwest::get(relay.http_url("/api/me")).await?;
    assert_eq!(anonymous.status(), 401);

    // `Authorization: Bearer` on the upgrade gets past auth to the (unreachable) host.
    let mut request = relay.ws_url("/ws/ssh/web").into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let (ws, _) = tokio_tungstenite::connect_async(request).await?;
    assert_eq!(close_of(ws).await, Some(4502));

    let mut request = relay.ws_url("/ws/ssh/web").into_client_request()?;
    request.headers_mut().insert(
        "sec-websocket-protocol",
        format!("opsdeck, bearer.{token}").parse()?,
    );
    let (ws, response) = tokio_tungstenite::connect_async(request).await?;
    assert_eq!(
        response
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().ok()),
        Some(Some("opsdeck"))
    );
    assert_eq!(close_of(ws).await, Some(4502));
    Ok(())
}

/// Reads a raw WebSocket until it ends; the code of its close frame.
async fn close_of<S>(mut ws: tokio_tungstenite::WebSocketStream<S>) -> Option<u16>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::StreamExt;
    let mut close = None;
    while let Some(Ok(message)) = ws.next().await {
        if let tokio_tungstenite::tungstenite::Message::Close(frame) = message {
            close = frame.map(|f| u16::from(f.code));
        }
    }
    close
}

#[tokio::test]
async fn the_login_cookie_is_secure_by_default() -> anyhow::Result<()> {
    // The harness turns `cookie_secure` off (its relays speak plain HTTP); the default is on.
    let users = users_toml().replace("cookie_secure = false\n", "");
    assert!(!users.contains("cookie_secure"));
    let relay = TestRelay::start(&format!("{users}\n{HOSTS}")).await?;
    let response = login(&relay, "alice", PASSWORD).await?;
    assert_eq!(response.status(), 200);
    let (_, cookie) = token_from_cookie(&response)?;
    let attributes: Vec<&str> = cookie.split(';').map(str::trim).collect();
    assert!(attributes.contains(&"Secure"), "{cookie}");
    assert!(attributes.contains(&"HttpOnly"), "{cookie}");
    Ok(())
}

#[tokio::test]
async fn targets_lists_only_what_the_user_may_open() -> anyhow::Result<()> {
    let relay = relay().await?;
    let get = |user: &str| {
        reqwest::Client::new()
            .get(relay.http_url("/api/targets"))
            .header("cookie", format!("X-Token={}", relay.token(user)))
            .send()
    };
    let alice: Targets = get("alice").await?.json().await?;
    let ids: Vec<&str> = alice.ssh.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, vec!["web"]);
    assert_eq!(alice.files.len(), 1);
    let bob: Targets = get("bob").await?.json().await?;
    assert!(bob.ssh.is_empty() && bob.files.is_empty() && !bob.jobs);
    let anonymous = reqwest::get(relay.http_url("/api/targets")).await?;
    assert_eq!(anonymous.status(), 401);
    Ok(())
}

#[tokio::test]
async fn health_readiness_and_metrics_are_served() -> anyhow::Result<()> {
    let relay = relay().await?;
    assert_eq!(
        reqwest::get(relay.http_url("/healthz")).await?.status(),
        200
    );
    assert_eq!(reqwest::get(relay.http_url("/readyz")).await?.status(), 200);
    let (code, reason) = close_code(&relay, None, "/ws/ssh/web").await?;
    assert_eq!(code, 4401, "{reason}");
    let metrics = reqwest::get(relay.http_url("/metrics"))
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains("opsdeck_auth_failures_total 1"),
        "{metrics}"
    );
    let missing = reqwest::get(relay.http_url("/api/nothing")).await?;
    assert_eq!(missing.status(), 404);
    Ok(())
}

#[tokio::test]
async fn a_plain_get_of_a_websocket_endpoint_gets_400_saying_what_is_missing() -> anyhow::Result<()>
{
    let relay = relay().await?;
    let response = reqwest::get(relay.http_url("/ws/ssh/web")).await?;
    assert_eq!(response.status(), 400);
    let error: ApiError = response.json().await?;
    assert!(
        error.error.contains("Connection: upgrade"),
        "{}",
        error.error
    );
    Ok(())
}

#[tokio::test]
async fn shutdown_closes_websockets_with_1001() -> anyhow::Result<()> {
    let sshd = opsdeck_tests::sshd::TestSshd::start().await?;
    let config = format!(
        "{}\n[[grants]]\ngroups = [\"ops\"]\nssh = [\"*\"]\n{}",
        users_toml(),
        sshd.host_toml("box")?
    );
    let mut relay = TestRelay::start(&config).await?;
    let mut client = relay.connect("alice", "/ws/ssh/box").await?;
    client.connected().await?;
    let stopping = tokio::spawn(async move {
        let (code, reason, _) = client.read_until_closed().await?;
        anyhow::Ok((code, reason))
    });
    relay.stop().await;
    let (code, reason) = stopping.await??;
    assert_eq!(code, 1001, "{reason}");
    Ok(())
}

#[tokio::test]
async fn connections_beyond_the_limit_get_http_503() -> anyhow::Result<()> {
    let sshd = opsdeck_tests::sshd::TestSshd::start().await?;
    let config = format!(
        "[limits]\nmax_connections = 1\n{}\n[[grants]]\ngroups = [\"ops\"]\nssh = [\"*\"]\n{}",
        users_toml(),
        sshd.host_toml("box")?
    );
    let relay = TestRelay::start(&config).await?;
    let mut first = relay.connect("alice", "/ws/ssh/box").await?;
    first.connected().await?;
    let second = relay.connect("alice", "/ws/ssh/box").await;
    let error = format!(
        "{:#}",
        second
            .err()
            .ok_or_else(|| anyhow::anyhow!("second socket accepted"))?
    );
    assert!(error.contains("503"), "{error}");
    first.close_normally().await?;
    let mut third = relay.connect("alice", "/ws/ssh/box").await?;
    third.connected().await?;
    Ok(())
}
