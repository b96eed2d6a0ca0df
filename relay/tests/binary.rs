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

#[tokio::test]
async fn runs_on_the_embedded_demo_config_and_stops_cleanly_on_sigterm() {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--log-json"])
        .env_remove("OPSDECK_CONFIG")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("starting opsdeck-relay");
    let base = format!("http://{}", listening_addr(&mut child).await);
    wait_until_healthy(&format!("{base}/healthz"), &mut child).await;

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
    let checked = Command::new(BIN)
        .args(["check-config", "--config", example])
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
