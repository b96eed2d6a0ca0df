//! The `opsdeck-relay` binary itself: the embedded demo configuration, the CLI, SIGTERM.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use common::api::{LoginRequest, Me};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_opsdeck-relay");

/// The address the relay (started with `--listen 127.0.0.1:0 --log-json`) bound, from its
/// `relay listening` log line; its later log lines are read and dropped.
async fn listening_addr(child: &mut Child) -> SocketAddr {
    let stdout = child.stdout.take().expect("the relay's stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("reading the relay's log") {
            let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if entry["fields"]["message"] == "relay listening" {
                let addr = entry["fields"]["addr"].as_str().expect("an addr field");
                return addr.parse().expect("a socket address");
            }
        }
        panic!("the relay exited before it listened");
    })
    .await
    .expect("the relay did not log `relay listening` within 30 s");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    addr
}

/// Waits for `/healthz` to answer; the relay has just been started.
async fn wait_until_healthy(url: &str, child: &mut tokio::process::Child) {
    for _ in 0..500 {
        if let Ok(r) = reqwest::get(url).await
            && r.status() == 200
        {
            return;
        }
        assert!(
            child.try_wait().expect("child status").is_none(),
            "the relay exited at start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the relay never became healthy");
}

/// The binary on its embedded demo config (as `scripts/run.sh` starts it) on a port of its
/// own choosing, once it answers `/healthz`.
async fn start_on_the_demo_config() -> (Child, SocketAddr) {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--log-json"])
        .env_remove("OPSDECK_CONFIG")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("starting opsdeck-relay");
    let addr = listening_addr(&mut child).await;
    wait_until_healthy(&format!("http://{addr}/healthz"), &mut child).await;
    (child, addr)
}

#[tokio::test]
async fn runs_on_the_embedded_demo_config_and_stops_cleanly_on_sigterm() {
    let (mut child, addr) = start_on_the_demo_config().await;
    let base = format!("http://{addr}");

    let login = reqwest::Client::new()
        .post(format!("{base}/api/login"))
        .json(&LoginRequest {
            username: "demo".into(),
            password: "demo".into(),
        })
        .send()
        .await
        .expect("login request");
    assert_eq!(login.status(), 200);
    let me: Me = login.json().await.expect("login body");
    assert_eq!(me.username, "demo");

    let pid = child.id().expect("pid").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the relay did not stop within 30 s of SIGTERM")
        .expect("exit status");
    assert!(exit.success(), "{exit}");
}

/// The login cookie of a `POST /api/login` answer (`X-Token=…`).
fn cookie_of(login: &reqwest::Response) -> String {
    let set_cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a login cookie");
    set_cookie
        .split(';')
        .next()
        .expect("a cookie value")
        .to_owned()
}

// Issue 15: `scripts/run.sh` on a fresh machine (no sshd, no Redis, no cluster) opens a
// working terminal. The binary runs on its embedded demo config, as run.sh starts it; the
// demo user logs in, finds a local shell among its targets, and types into it.
#[tokio::test]
async fn the_embedded_demo_config_opens_a_working_local_shell() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let (_child, addr) = start_on_the_demo_config().await;
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let login = http
        .post(format!("{base}/api/login"))
        .json(&LoginRequest {
            username: "demo".into(),
            password: "demo".into(),
        })
        .send()
        .await
        .expect("login request");
    assert_eq!(login.status(), 200);
    let cookie = cookie_of(&login);

    // The picker lists what works here, and nothing that cannot.
    let targets: common::api::Targets = http
        .get(format!("{base}/api/targets"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("targets request")
        .json()
        .await
        .expect("targets body");
    assert_eq!(targets.local.len(), 1, "{targets:?}");
    assert!(
        !targets.files.is_empty() && !targets.chat.is_empty(),
        "{targets:?}"
    );
    assert!(targets.ssh.is_empty() && targets.k8s.is_empty() && !targets.jobs);

    let url = format!(
        "ws://{addr}/ws/local/{}?rows=24&cols=80",
        targets.local[0].id
    );
    let mut request = url.into_client_request().expect("a request");
    request
        .headers_mut()
        .insert("cookie", cookie.parse().expect("a header value"));
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("the WebSocket opens");
    let typed = common::ClientFrame::Input("echo $((6*7))\r".into()).to_json();
    ws.send(Message::Text(typed.into())).await.expect("typing");
    let mut output = Vec::new();
    // A guard against a hang, not a timed assertion.
    let seen = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(message) = ws.next().await {
            match message.expect("a frame") {
                Message::Binary(bytes) => output.extend_from_slice(&bytes),
                Message::Close(frame) => panic!("closed: {frame:?}"),
                _ => {}
            }
            // The typed line holds no 42: only the shell's answer does.
            if String::from_utf8_lossy(&output).contains("42") {
                return;
            }
        }
    })
    .await;
    assert!(
        seen.is_ok(),
        "no 42 from the shell: {:?}",
        String::from_utf8_lossy(&output)
    );
}

#[tokio::test]
async fn hash_password_and_check_config_work() {
    let mut hashing = Command::new(BIN)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("hash-password");
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = hashing.stdin.take().expect("stdin");
        stdin.write_all(b"s3cret\n").await.expect("write password");
    }
    let out = hashing.wait_with_output().await.expect("hash output");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("$argon2id$"));

    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../config.example.toml");
    // The example's single sign-on provider takes its client secret from this variable:
    // check-config reads every secret, and fails naming the one that is missing.
    let unset = Command::new(BIN)
        .args(["check-config", "--config", example])
        .env_remove("OPSDECK_OIDC_CORP_SECRET")
        .output()
        .await
        .expect("check-config");
    assert!(!unset.status.success());
    assert!(String::from_utf8_lossy(&unset.stderr).contains("OPSDECK_OIDC_CORP_SECRET"));
    let checked = Command::new(BIN)
        .args(["check-config", "--config", example])
        .env("OPSDECK_OIDC_CORP_SECRET", "example-secret")
        .output()
        .await
        .expect("check-config");
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );

    let broken = Command::new(BIN)
        .args(["check-config", "--config", "/nonexistent/opsdeck.toml"])
        .output()
        .await
        .expect("check-config");
    assert!(!broken.status.success());
    assert!(String::from_utf8_lossy(&broken.stderr).contains("cannot read config file"));
}

// Review #26 and the weak settings check-config must name: a short secret, Secure cookies
// over plain HTTP on a non-loopback address.
#[tokio::test]
async fn check_config_warns_about_weak_settings() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("weak.toml");
    std::fs::write(
        &path,
        "listen = \"0.0.0.0:8080\"\n[auth]\njwt_secret = \"short\"\n",
    )
    .expect("write config");
    let checked = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .await
        .expect("check-config");
    let out = String::from_utf8_lossy(&checked.stdout);
    assert!(checked.status.success(), "{out}");
    assert!(out.contains("auth.jwt_secret is 5 bytes"), "{out}");
    assert!(out.contains("cookie_secure"), "{out}");
    assert!(
        !out.contains("short\""),
        "the secret itself is echoed: {out}"
    );
}

// check-config loads the directory's secret as a start would: a missing one is named (its
// variable, never a value), a present one passes, and plaintext LDAP to another host is
// a warning.
#[tokio::test]
async fn check_config_checks_the_ldap_section_and_its_secret() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ldap.toml");
    std::fs::write(
        &path,
        "[auth.ldap]\nurl = \"ldap://ldap.example.com\"\nstarttls = false\n\
         bind_dn = \"cn=opsdeck,dc=example,dc=com\"\nbind_password_env = \"OPSDECK_TEST_LDAP_PW\"\n\
         user_search_base = \"ou=people,dc=example,dc=com\"\n",
    )
    .expect("write config");
    let check = |secret: Option<&str>| {
        let mut command = Command::new(BIN);
        command
            .args(["check-config", "--config"])
            .arg(&path)
            .env_remove("OPSDECK_TEST_LDAP_PW");
        if let Some(secret) = secret {
            command.env("OPSDECK_TEST_LDAP_PW", secret);
        }
        command.output()
    };
    let missing = check(None).await.expect("check-config");
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success());
    assert!(
        err.contains("OPSDECK_TEST_LDAP_PW, which is not set"),
        "{err}"
    );

    let present = check(Some("hunter2-service")).await.expect("check-config");
    let out = String::from_utf8_lossy(&present.stdout);
    assert!(present.status.success(), "{out}");
    assert!(out.contains("travel in clear"), "{out}");
    let all = format!("{out}{}", String::from_utf8_lossy(&present.stderr));
    assert!(!all.contains("hunter2"), "the secret is echoed: {all}");
}
