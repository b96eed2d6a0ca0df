//! Session recording, the audit trail and live watching, end to end: one real sshd shared
//! by every test here (and the Kubernetes emulator for pod exec), a relay per test.

#[allow(dead_code)]
#[path = "k8s/fixture.rs"]
mod fixture;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use common::audit::{AuditEvent, AuditKind, AuditPage};
use common::recording::{CastHeader, FindHit, RecordingIndex, RecordingInfo};
use common::server::{ErrorCode, StatusKind, StreamEvent};
use common::{ClientFrame, TermSize};
use opsdeck_tests::client::WsClient;
use opsdeck_tests::relay::{TestRelay, users_toml};
use opsdeck_tests::sshd::TestSshd;
use sha2::{Digest, Sha256};

/// Alice (group `ops`) may open every host.
const GRANTS: &str = r#"
[[grants]]
groups = ["ops"]
ssh = ["*"]
"#;

/// A relay on the shared sshd (host `box`) with `extra` before the users (top-level
/// tables such as `[recording]`).
async fn relay(extra: &str) -> anyhow::Result<TestRelay> {
    relay_with(extra, "").await
}

/// Besides alice and bob: carol, who is granted nothing.
fn carol_toml() -> String {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let hash = HASH.get_or_init(|| {
        relay::hash_password(opsdeck_tests::relay::PASSWORD).expect("argon2 hashes")
    });
    format!("[[auth.users]]\nusername = \"carol\"\npassword_hash = \"{hash}\"\n")
}

/// As [`relay`], with `grants` (more `[[grants]]`) too and the user carol.
async fn relay_with(extra: &str, grants: &str) -> anyhow::Result<TestRelay> {
    TestRelay::start(&config_text(extra, grants)?).await
}

fn config_text(extra: &str, grants: &str) -> anyhow::Result<String> {
    let sshd = TestSshd::shared();
    Ok(format!(
        "{extra}\n{}\n{}\n{GRANTS}\n{grants}\n{}",
        users_toml(),
        carol_toml(),
        sshd.host_toml("box")?
    ))
}

/// Alice audits; bob may watch sessions on `box`; carol may do nothing.
const AUDIT_AND_WATCH: &str = r#"
[[grants]]
users = ["alice"]
audit = true

[[grants]]
users = ["bob"]
watch = ["ssh:box"]
"#;

/// `GET path` as `user` (a bearer token), with extra headers.
async fn get(
    relay: &TestRelay,
    user: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<reqwest::Response> {
    let mut request = reqwest::Client::new()
        .get(relay.http_url(path))
        .bearer_auth(relay.token(user));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    Ok(request.send().await?)
}

/// The next frame about watchers the owner gets (output and other frames skipped).
async fn next_watcher_notice(owner: &mut WsClient) -> anyhow::Result<(String, bool, u32)> {
    loop {
        if let StreamEvent::Watcher {
            user,
            joined,
            watchers,
        } = owner.next_frame().await?
        {
            return Ok((user, joined, watchers));
        }
    }
}

/// Opens `/ws/ssh/box` as `user` and reads its `connected` frame.
async fn open_box(relay: &TestRelay, user: &str) -> anyhow::Result<WsClient> {
    let mut client = relay.connect(user, "/ws/ssh/box").await?;
    client.connected().await?;
    Ok(client)
}

fn recording_toml(dir: &Path, more: &str) -> String {
    format!("[recording]\ndirectory = \"{}\"\n{more}\n", dir.display())
}

/// The recording files in `dir`.
fn recordings(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.sort();
    Ok(files)
}

/// A recording, read: its header and its events as (time, code, data).
struct Cast {
    header: CastHeader,
    events: Vec<(f64, String, String)>,
}

impl Cast {
    fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        let mut lines = text.lines();
        let header = serde_json::from_str(lines.next().unwrap_or_default())?;
        let events = lines.map(serde_json::from_str).collect::<Result<_, _>>()?;
        Ok(Self { header, events })
    }

    /// Every event of `code`'s data, joined.
    fn joined(&self, code: &str) -> String {
        self.events
            .iter()
            .filter(|(_, c, _)| c == code)
            .map(|(_, _, data)| data.as_str())
            .collect()
    }
}

fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// `asciinema cat FILE` under a pseudo-terminal (it insists on one), with `\r` removed:
/// the terminal adds one before each `\n`.
fn asciinema_cat(path: &Path) -> anyhow::Result<Vec<u8>> {
    let out = std::process::Command::new("script")
        .args([
            "-qec",
            &format!("asciinema cat {}", path.display()),
            "/dev/null",
        ])
        .stdin(std::process::Stdio::null())
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "asciinema cat failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(out.stdout.into_iter().filter(|b| *b != b'\r').collect())
}

/// What a browser sends and gets on a recorded terminal: multi-byte text split across
/// frames, a resize, a dropped connection and a resume in the middle, then an exit.
/// Returns every byte received and every keystroke sent.
async fn recorded_session(
    open: impl Fn(String) -> futures_util::future::BoxFuture<'static, anyhow::Result<WsClient>>,
) -> anyhow::Result<(Vec<u8>, String)> {
    let mut typed = String::new();
    let mut client = open("?rows=24&cols=80".into()).await?;
    let session = client.connected().await?.session;
    let unit = "你好😀";
    let line = format!(
        "python3 -c \"import sys; sys.stdout.write('{unit}'*30000); print(); print('END'+'-MARK')\"\r"
    );
    client.send(&ClientFrame::Input(line.clone())).await?;
    typed.push_str(&line);
    client.read_until("END-MARK").await?;
    assert!(
        client.some_frame_split_a_character(),
        "no frame boundary fell inside a character: the test proves nothing"
    );
    client
        .send(&ClientFrame::Resize(TermSize {
            rows: 30,
            cols: 100,
        }))
        .await?;
    // (Pod exec applies a resize apart from the keystrokes, maybe after them: the size
    // printed is not checked, only the recording's `r` event.)
    let line = "stty size; echo sized-$((1+1))\r".to_owned();
    client.send(&ClientFrame::Input(line.clone())).await?;
    typed.push_str(&line);
    client.read_until("sized-2").await?;
    let mut received = client.output.clone();
    let position = client.received;
    client.drop_connection();

    let mut client = open(format!("?session={session}&position={position}")).await?;
    assert!(client.connected().await?.resumed);
    let line = "echo after-$((6*7)); exit\r".to_owned();
    client.send(&ClientFrame::Input(line.clone())).await?;
    typed.push_str(&line);
    let (code, reason, _) = client.read_until_closed().await?;
    assert_eq!(code, 1000, "{reason}");
    received.extend_from_slice(&client.output);
    assert!(String::from_utf8_lossy(&received).contains("after-42"));
    Ok((received, typed))
}

/// Checks a finished recording against what the browser got and sent.
fn check_recording(path: &Path, received: &[u8], typed: &str, title: &str) -> anyhow::Result<Cast> {
    let cast = Cast::read(path)?;
    assert_eq!(cast.header.version, 2);
    assert_eq!((cast.header.width, cast.header.height), (80, 24));
    assert_eq!(cast.header.title, title);
    assert_eq!(cast.header.env.user, "alice");
    let output = cast.joined("o");
    assert_eq!(
        sha256(output.as_bytes()),
        sha256(received),
        "the recorded output differs from what the browser received"
    );
    assert_eq!(cast.joined("i"), typed, "the recorded input differs");
    assert!(
        cast.events
            .iter()
            .any(|(_, c, d)| c == "r" && d == "100x30"),
        "no resize event"
    );
    let (_, code, data) = cast.events.last().expect("events");
    assert_eq!(code, "m");
    assert!(
        data.starts_with("end: ") && data.contains("status 0"),
        "{data}"
    );
    let times: Vec<f64> = cast.events.iter().map(|(t, _, _)| *t).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "times go back");
    Ok(cast)
}

#[tokio::test]
async fn an_ssh_recording_holds_exactly_what_the_browser_got_and_sent() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let relay = relay(&recording_toml(dir.path(), "")).await?;
    let token = relay.token("alice");
    let url = relay.ws_url("/ws/ssh/box");
    let open = move |query: String| {
        let (url, token) = (url.clone(), token.clone());
        Box::pin(
            async move { WsClient::connect(&format!("{url}{query}"), Some(&token), None).await },
        ) as futures_util::future::BoxFuture<'static, _>
    };
    let (received, typed) = recorded_session(open).await?;
    relay.relay().recordings_finished().await;
    let files = recordings(dir.path())?;
    assert_eq!(files.len(), 1, "{files:?}");
    check_recording(&files[0], &received, &typed, "ssh:box")?;
    // Keystrokes are in it: for the relay's user only.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&files[0])?.permissions().mode() & 0o777,
        0o600
    );

    // A third-party player reads it: asciinema prints the same output.
    let played = asciinema_cat(&files[0])?;
    let expected: Vec<u8> = received.iter().copied().filter(|b| *b != b'\r').collect();
    assert_eq!(sha256(&played), sha256(&expected), "asciinema cat differs");
    Ok(())
}

#[tokio::test]
async fn a_pod_exec_recording_holds_exactly_what_the_browser_got_and_sent() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cluster =
        fixture::Cluster::start_with(&recording_toml(dir.path(), "compress = true")).await?;
    let token = cluster.relay.token("alice");
    let url = cluster.relay.ws_url("/ws/k8s/exec/main/dev/web-1/app");
    let open = move |query: String| {
        let (url, token) = (url.clone(), token.clone());
        Box::pin(
            async move { WsClient::connect(&format!("{url}{query}"), Some(&token), None).await },
        ) as futures_util::future::BoxFuture<'static, _>
    };
    let (received, typed) = recorded_session(open).await?;
    cluster.relay.relay().recordings_finished().await;
    let files = recordings(dir.path())?;
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].to_string_lossy().ends_with(".cast.gz"));
    // Compressed: decompressed, it is the same asciicast.
    let mut text = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(&files[0])?),
        &mut text,
    )?;
    let plain = dir.path().join("decompressed.cast");
    std::fs::write(&plain, text)?;
    check_recording(&plain, &received, &typed, "k8s:main/dev/web-1/app")?;
    Ok(())
}

#[tokio::test]
async fn a_recorder_that_cannot_write_follows_its_policy() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let folder = dir.path().join("recordings");

    // Fail closed (the default): a session is recorded while the folder can be written...
    let relay_closed = relay(&recording_toml(&folder, "")).await?;
    let mut client = open_box(&relay_closed, "alice").await?;
    client.type_line("echo recorded-$((1+1))").await?;
    client.read_until("recorded-2").await?;
    client.close_normally().await?;
    relay_closed.relay().recordings_finished().await;
    assert_eq!(recordings(&folder)?.len(), 1);
    // ...then the folder becomes unwritable (a regular file in its place: no folder can be
    // made under it, whoever runs the tests, even root), and the next session is refused,
    // with the reason.
    std::fs::remove_dir_all(&folder)?;
    std::fs::write(&folder, "not a folder")?;
    let broken = folder.join("sessions");
    let mut client = relay_closed.connect("alice", "/ws/ssh/box").await?;
    let (code, reason, _) = client.read_until_closed().await?;
    assert_eq!(code, 4502, "{reason}");
    assert!(reason.contains("recorded"), "{reason}");
    assert_eq!(relay_closed.relay().terminal_sessions(), 0);

    // A target the config does not record opens, whatever the recorder's state.
    let relay_off = relay(&recording_toml(
        &broken,
        "targets = { \"ssh:box\" = false }",
    ))
    .await?;
    let mut client = open_box(&relay_off, "alice").await?;
    client.type_line("echo unrecorded-$((1+1))").await?;
    client.read_until("unrecorded-2").await?;

    // Fail open: the session runs unrecorded, its user is told so right after
    // `connected` (without the recorder's paths), and the alert metric counts it.
    let relay_open = relay(&recording_toml(&broken, "on_failure = \"continue\"")).await?;
    let mut client = open_box(&relay_open, "alice").await?;
    match client.next_frame().await? {
        StreamEvent::Status {
            kind: StatusKind::NotRecorded,
            message,
        } => {
            assert!(message.contains("NOT recorded"), "{message}");
            assert!(
                !message.contains(&*dir.path().to_string_lossy()),
                "{message}"
            );
        }
        other => anyhow::bail!("expected the not-recorded notice, got {other:?}"),
    }
    client.type_line("echo open-$((1+1))").await?;
    client.read_until("open-2").await?;
    let metrics = reqwest::get(relay_open.http_url("/metrics"))
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains("opsdeck_recording_failures_total 1"),
        "{metrics}"
    );
    Ok(())
}

#[tokio::test]
async fn retention_removes_the_oldest_recordings_past_the_limits() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let now = SystemTime::now();
    let hour = Duration::from_secs(3600);
    let aged = [
        ("1-ancient", now - 100 * 24 * hour),
        ("2-oldest", now - 3 * hour),
        ("3-older", now - 2 * hour),
        ("4-newer", now - hour),
    ];
    for (id, modified) in aged {
        let path = dir.path().join(format!("{id}.cast"));
        std::fs::write(&path, vec![b'x'; 1000])?;
        std::fs::File::options()
            .write(true)
            .open(&path)?
            .set_modified(modified)?;
    }
    std::fs::write(dir.path().join("notes.txt"), "not a recording")?;
    let relay = relay(&recording_toml(
        dir.path(),
        "max_age = \"30days\"\nmax_total_bytes = 2500",
    ))
    .await?;
    let client = open_box(&relay, "alice").await?;
    client.close_normally().await?;
    relay.relay().recordings_finished().await;
    let names: Vec<String> = recordings(dir.path())?
        .iter()
        .map(|p| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert!(!names.contains(&"1-ancient.cast".to_owned()), "{names:?}");
    assert!(!names.contains(&"2-oldest.cast".to_owned()), "{names:?}");
    assert!(names.contains(&"3-older.cast".to_owned()), "{names:?}");
    assert!(names.contains(&"4-newer.cast".to_owned()), "{names:?}");
    assert!(names.contains(&"notes.txt".to_owned()), "{names:?}");
    assert_eq!(names.len(), 4, "the new recording is kept: {names:?}");
    Ok(())
}

#[tokio::test]
async fn a_watcher_sees_the_ring_then_live_output_and_cannot_type() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let audit = dir.path().join("audit.jsonl");
    let relay = relay_with(
        &format!("[audit]\nfile = \"{}\"\n", audit.display()),
        AUDIT_AND_WATCH,
    )
    .await?;
    let mut owner = relay.connect("alice", "/ws/ssh/box").await?;
    let session = owner.connected().await?.session;
    owner.type_line("echo before-$((2+3))").await?;
    owner.read_until("before-5").await?;

    // Bob (granted watch on box) gets what the ring holds, then live output.
    let mut watcher = relay
        .connect("bob", &format!("/ws/watch/{session}"))
        .await?;
    assert_eq!(watcher.connected().await?.session, session);
    watcher.read_until("before-5").await?;
    assert_eq!(
        next_watcher_notice(&mut owner).await?,
        ("bob".into(), true, 1)
    );
    owner.type_line("echo live-$((3+4))").await?;
    watcher.read_until("live-7").await?;

    // Any number of watchers: alice's audit grant lets her watch too.
    let mut second = relay
        .connect("alice", &format!("/ws/watch/{session}"))
        .await?;
    second.connected().await?;
    second.read_until("live-7").await?;
    assert_eq!(
        next_watcher_notice(&mut owner).await?,
        ("alice".into(), true, 2)
    );

    // A watcher's input is refused with an error frame and never reaches the shell.
    watcher.type_line("echo typed-by-$((0+1))-watcher").await?;
    match watcher.next_frame().await? {
        StreamEvent::Error { code, message, .. } => {
            assert_eq!(code, ErrorCode::NotAccepted);
            assert!(message.contains("read-only"), "{message}");
        }
        other => panic!("expected an error frame, got {other:?}"),
    }

    // Without a watch grant: 4403; a session that does not exist (or ended): 4410.
    let mut carol = relay
        .connect("carol", &format!("/ws/watch/{session}"))
        .await?;
    let (code, reason, _) = carol.read_until_closed().await?;
    assert_eq!(code, 4403, "{reason}");
    let mut nothing = relay.connect("bob", "/ws/watch/0123456789abcdef").await?;
    let (code, reason, _) = nothing.read_until_closed().await?;
    assert_eq!(code, 4410, "{reason}");

    watcher.close_normally().await?;
    assert_eq!(
        next_watcher_notice(&mut owner).await?,
        ("bob".into(), false, 1)
    );
    owner.type_line("exit").await?;
    let (code, reason, _) = second.read_until_closed().await?;
    assert_eq!(code, 1000, "{reason}");
    assert!(reason.contains("watched session ended"), "{reason}");
    let owner_saw = String::from_utf8_lossy(&owner.output).into_owned();
    assert!(!owner_saw.contains("typed-by-1-watcher"), "{owner_saw}");
    owner.read_until_closed().await?;

    relay.relay().audit_written().await;
    let page: AuditPage = get(&relay, "alice", "/api/audit?kind=watch_started", &[])
        .await?
        .json()
        .await?;
    let watchers: Vec<&str> = page
        .events
        .iter()
        .filter_map(|e| e.user.as_deref())
        .collect();
    assert_eq!(watchers, ["bob", "alice"]);
    assert!(
        page.events
            .iter()
            .all(|e| e.session.as_deref() == Some(&*session)
                && e.target.as_deref() == Some("ssh:box"))
    );
    let page: AuditPage = get(&relay, "alice", "/api/audit?kind=watch_ended&user=bob", &[])
        .await?
        .json()
        .await?;
    assert_eq!(page.events.len(), 1, "{page:?}");
    Ok(())
}

async fn login(relay: &TestRelay, user: &str, password: &str) -> anyhow::Result<u16> {
    let response = reqwest::Client::new()
        .post(relay.http_url("/api/login"))
        .json(&serde_json::json!({"username": user, "password": password}))
        .send()
        .await?;
    Ok(response.status().as_u16())
}

/// Every page of `/api/audit?{filters}` with pages of `limit`, following `next`.
async fn all_pages(
    relay: &TestRelay,
    filters: &str,
    limit: usize,
) -> anyhow::Result<Vec<AuditEvent>> {
    let mut events = Vec::new();
    let mut after = String::new();
    loop {
        let page: AuditPage = get(
            relay,
            "alice",
            &format!("/api/audit?{filters}&limit={limit}{after}"),
            &[],
        )
        .await?
        .json()
        .await?;
        assert!(page.events.len() <= limit);
        events.extend(page.events);
        match page.next {
            Some(next) => after = format!("&after={next}"),
            None => return Ok(events),
        }
    }
}

#[tokio::test]
async fn the_audit_trail_records_each_event_once_and_pages_through_it() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let audit = dir.path().join("audit.jsonl");
    let recordings = dir.path().join("recordings");
    let extra = format!(
        "[audit]\nfile = \"{}\"\n{}",
        audit.display(),
        recording_toml(&recordings, "")
    );
    let relay = relay_with(&extra, AUDIT_AND_WATCH).await?;
    assert_eq!(
        login(&relay, "alice", opsdeck_tests::relay::PASSWORD).await?,
        200
    );
    assert_eq!(login(&relay, "alice", "wrong").await?, 401);
    let mut client = open_box(&relay, "alice").await?;
    client.type_line("echo audited-$((1+1)); exit").await?;
    let (code, _, _) = client.read_until_closed().await?;
    assert_eq!(code, 1000);
    let mut refused = relay.connect("carol", "/ws/ssh/box").await?;
    assert_eq!(refused.read_until_closed().await?.0, 4403);
    let logout = reqwest::Client::new()
        .post(relay.http_url("/api/logout"))
        .bearer_auth(relay.token("bob"))
        .send()
        .await?;
    assert_eq!(logout.status().as_u16(), 204);
    let same = relay::Config::from_toml(&config_text(&extra, AUDIT_AND_WATCH)?, "reloaded")?;
    relay.relay().reload(same)?;
    relay.relay().recordings_finished().await;
    relay.relay().audit_written().await;

    let events = all_pages(&relay, "", 500).await?;
    let count = |kind: AuditKind| events.iter().filter(|e| e.kind == kind).count();
    for kind in [
        AuditKind::Login,
        AuditKind::LoginFailed,
        AuditKind::StreamOpened,
        AuditKind::StreamClosed,
        AuditKind::StreamRefused,
        AuditKind::Logout,
        AuditKind::TokenRevoked,
        AuditKind::ConfigReloaded,
    ] {
        assert_eq!(count(kind), 1, "{kind:?} in {events:#?}");
    }
    let find = |kind: AuditKind| events.iter().find(|e| e.kind == kind).cloned().unwrap();
    let login_event = find(AuditKind::Login);
    assert_eq!(login_event.user.as_deref(), Some("alice"));
    assert_eq!(login_event.source.as_deref(), Some("127.0.0.1"));
    assert_eq!(find(AuditKind::LoginFailed).user.as_deref(), Some("alice"));
    let closed = find(AuditKind::StreamClosed);
    let recording: Vec<RecordingInfo> = get(&relay, "alice", "/api/recordings", &[])
        .await?
        .json()
        .await?;
    assert_eq!(recording.len(), 1);
    assert_eq!(closed.user.as_deref(), Some("alice"));
    assert_eq!(closed.target.as_deref(), Some("ssh:box"));
    assert_eq!(closed.backend.as_deref(), Some("ssh"));
    assert_eq!(closed.code, Some(1000));
    assert!(
        closed
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("status 0")
    );
    assert_eq!(closed.recording.as_deref(), Some(&*recording[0].id));
    assert!(closed.session.is_some());
    assert!(closed.duration_ms.is_some());
    assert!(closed.bytes_to_browser.unwrap_or(0) > 0);
    assert!(closed.bytes_from_browser.unwrap_or(0) > 0);
    assert_eq!(find(AuditKind::StreamOpened).recording, closed.recording);
    let refusal = find(AuditKind::StreamRefused);
    assert_eq!(refusal.user.as_deref(), Some("carol"));
    assert_eq!(refusal.code, Some(4403));
    assert_eq!(find(AuditKind::Logout).user.as_deref(), Some("bob"));
    // The file holds the same lines.
    assert_eq!(
        std::fs::read_to_string(&audit)?.lines().count(),
        events.len()
    );

    // Pages of 2 hold the same events, each once, in order.
    let paged = all_pages(&relay, "", 2).await?;
    assert_eq!(paged, events);
    // Filters.
    let carol = all_pages(&relay, "user=carol", 10).await?;
    assert_eq!(carol.len(), 1);
    let future = all_pages(&relay, "since=99999999999", 10).await?;
    assert!(future.is_empty());
    let logins = all_pages(&relay, "kind=login&target=ssh:box", 10).await?;
    assert!(logins.is_empty());

    // Bad queries and other users.
    for (query, status) in [
        ("limit=100000", 400),
        ("since=yesterday", 400),
        ("kind=x", 400),
        ("after=..%2Fx", 400),
    ] {
        let response = get(&relay, "alice", &format!("/api/audit?{query}"), &[]).await?;
        assert_eq!(response.status().as_u16(), status, "{query}");
        let body = response.text().await?;
        assert!(body.contains("error"), "{body}");
    }
    let response = get(&relay, "carol", "/api/audit", &[]).await?;
    assert_eq!(response.status().as_u16(), 403);
    assert!(response.text().await?.contains("audit grant"));
    Ok(())
}

#[tokio::test]
async fn recordings_are_listed_and_served_with_ranges_to_auditors_only() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let relay = relay_with(&recording_toml(dir.path(), ""), AUDIT_AND_WATCH).await?;
    let mut client = open_box(&relay, "alice").await?;
    client.type_line("echo listed-$((1+1)); exit").await?;
    client.read_until_closed().await?;
    relay.relay().recordings_finished().await;

    let list: Vec<RecordingInfo> = get(&relay, "alice", "/api/recordings?user=alice", &[])
        .await?
        .json()
        .await?;
    assert_eq!(list.len(), 1, "{list:?}");
    let info = &list[0];
    assert_eq!(
        (info.user.as_str(), info.target.as_str()),
        ("alice", "ssh:box")
    );
    assert!(!info.live && !info.compressed);
    let file = std::fs::read(dir.path().join(format!("{}.cast", info.id)))?;
    assert_eq!(info.bytes, file.len() as u64);
    let none: Vec<RecordingInfo> = get(&relay, "alice", "/api/recordings?user=bob", &[])
        .await?
        .json()
        .await?;
    assert!(none.is_empty());

    let path = format!("/api/recordings/{}", info.id);
    let whole = get(&relay, "alice", &path, &[]).await?;
    assert_eq!(whole.status().as_u16(), 200);
    assert_eq!(
        whole.headers()["content-type"].to_str()?,
        "application/x-asciicast"
    );
    assert_eq!(whole.bytes().await?.as_ref(), file.as_slice());
    let part = get(&relay, "alice", &path, &[("range", "bytes=0-9")]).await?;
    assert_eq!(part.status().as_u16(), 206);
    assert_eq!(
        part.headers()["content-range"].to_str()?,
        format!("bytes 0-9/{}", file.len())
    );
    assert_eq!(part.bytes().await?.as_ref(), &file[..10]);
    let beyond = get(&relay, "alice", &path, &[("range", "bytes=99999999-")]).await?;
    assert_eq!(beyond.status().as_u16(), 416);
    assert!(beyond.text().await?.contains("beyond the recording"));

    check_index_and_find(&relay, &path, &file).await?;

    let index_path = format!("{path}/index");
    let bad_find = format!("{path}/find?text=a&input=1");
    for (user, path, status) in [
        ("bob", path.as_str(), 403),
        ("bob", index_path.as_str(), 403),
        ("alice", bad_find.as_str(), 400),
        ("alice", "/api/recordings/..%2Fx/index", 400),
        ("alice", "/api/recordings/0-nothing/find?input=1", 404),
        ("bob", "/api/recordings", 403),
        ("alice", "/api/recordings/..%2F..%2Fetc%2Fpasswd", 400),
        ("alice", "/api/recordings/a.cast", 400),
        ("alice", "/api/recordings/0-nothing", 404),
    ] {
        let response = get(&relay, user, path, &[]).await?;
        assert_eq!(response.status().as_u16(), status, "{user} {path}");
    }
    Ok(())
}

/// The event lines of a recording file with their byte offsets: (offset, code, data).
fn lines_with_offsets(file: &[u8]) -> anyhow::Result<Vec<(u64, String, String)>> {
    let mut offset = 0;
    let mut lines = Vec::new();
    for (n, line) in file.split_inclusive(|b| *b == b'\n').enumerate() {
        if n > 0 {
            let (_, code, data): (f64, String, String) = serde_json::from_slice(line)?;
            lines.push((offset, code, data));
        }
        offset += line.len() as u64;
    }
    Ok(lines)
}

/// The seek index points at event lines, and find lands on the event that completes the
/// text (the command's output, not its echo) and on the next keystroke.
async fn check_index_and_find(relay: &TestRelay, path: &str, file: &[u8]) -> anyhow::Result<()> {
    let lines = lines_with_offsets(file)?;
    let index: RecordingIndex = get(relay, "alice", &format!("{path}/index"), &[])
        .await?
        .json()
        .await?;
    assert_eq!(index.bytes, file.len() as u64);
    assert_eq!(index.events, lines.len() as u64);
    assert_eq!(index.points.first().map(|p| p.offset), Some(lines[0].0));
    assert_eq!(index.header.opsdeck.user, "alice");

    let hit: FindHit = get(relay, "alice", &format!("{path}/find?text=LISTED-2"), &[])
        .await?
        .json()
        .await?;
    let output = |upto: &dyn Fn(u64) -> bool| -> String {
        lines
            .iter()
            .filter(|(offset, code, _)| code == "o" && upto(*offset))
            .map(|(_, _, data)| data.as_str())
            .collect()
    };
    assert!(output(&|o| o <= hit.offset).contains("listed-2"));
    assert!(!output(&|o| o < hit.offset).contains("listed-2"));

    let input: FindHit = get(relay, "alice", &format!("{path}/find?input=1"), &[])
        .await?
        .json()
        .await?;
    let first_input = lines.iter().find(|(_, code, _)| code == "i").map(|l| l.0);
    assert_eq!(Some(input.offset), first_input);

    let later = format!("{path}/find?text=listed-2&after={}", hit.time);
    let none = get(relay, "alice", &later, &[]).await?;
    assert_eq!(none.status().as_u16(), 404);
    Ok(())
}

#[tokio::test]
async fn a_grant_says_whether_its_sessions_are_recorded_over_the_target() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // box is not recorded by its target override; bob's grant records his sessions, and of
    // carol's two grants on box the one that records wins.
    let grants = r#"
[[grants]]
users = ["bob"]
ssh = ["box"]
record = true

[[grants]]
users = ["carol"]
ssh = ["box"]
record = false

[[grants]]
users = ["carol"]
ssh = ["*"]
record = true
"#;
    let relay = relay_with(
        &recording_toml(dir.path(), "targets = { \"ssh:box\" = false }"),
        grants,
    )
    .await?;
    for user in ["alice", "bob", "carol"] {
        let mut client = open_box(&relay, user).await?;
        client.type_line("exit").await?;
        let (code, reason, _) = client.read_until_closed().await?;
        assert_eq!(code, 1000, "{user}: {reason}");
    }
    relay.relay().recordings_finished().await;
    let mut owners: Vec<String> = recordings(dir.path())?
        .iter()
        .map(|path| Cast::read(path).map(|cast| cast.header.opsdeck.user))
        .collect::<anyhow::Result<_>>()?;
    owners.sort();
    assert_eq!(owners, ["bob", "carol"]);
    Ok(())
}

#[tokio::test]
async fn two_relays_on_one_redis_share_one_audit_trail() -> anyhow::Result<()> {
    let redis = opsdeck_tests::redis::TestRedis::start().await?;
    let first = relay_with(&redis.config_toml(), AUDIT_AND_WATCH).await?;
    let second = relay_with(&redis.config_toml(), AUDIT_AND_WATCH).await?;
    assert_eq!(
        login(&first, "alice", opsdeck_tests::relay::PASSWORD).await?,
        200
    );
    assert_eq!(login(&second, "bob", "wrong").await?, 401);
    first.relay().audit_written().await;
    second.relay().audit_written().await;
    for relay in [&first, &second] {
        let events = all_pages(relay, "", 1).await?;
        let kinds: Vec<(AuditKind, Option<&str>)> =
            events.iter().map(|e| (e.kind, e.user.as_deref())).collect();
        assert_eq!(
            kinds,
            [
                (AuditKind::Login, Some("alice")),
                (AuditKind::LoginFailed, Some("bob"))
            ]
        );
    }
    let mut conn = redis.connection().await?;
    let length: u64 = ::redis::cmd("XLEN")
        .arg("opsdeck:audit")
        .query_async(&mut conn)
        .await?;
    assert_eq!(length, 2);
    Ok(())
}

#[tokio::test]
async fn with_owners_read_users_get_their_own_recordings_only() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let bob_opens_box =
        format!("{AUDIT_AND_WATCH}\n[[grants]]\nusers = [\"bob\"]\nssh = [\"box\"]\n");
    let relay = relay_with(
        &recording_toml(dir.path(), "owners_read = true"),
        &bob_opens_box,
    )
    .await?;
    for user in ["alice", "bob"] {
        let mut client = open_box(&relay, user).await?;
        client.type_line("exit").await?;
        client.read_until_closed().await?;
    }
    relay.relay().recordings_finished().await;
    let list = |user: &'static str| {
        let relay = &relay;
        async move {
            let list: Vec<RecordingInfo> = get(relay, user, "/api/recordings", &[])
                .await?
                .json()
                .await?;
            anyhow::Ok(list)
        }
    };
    assert_eq!(list("alice").await?.len(), 2, "the auditor sees all");
    assert!(list("carol").await?.is_empty());
    let bobs = list("bob").await?;
    assert_eq!(bobs.len(), 1);
    assert_eq!(bobs[0].user, "bob");
    let alices = list("alice")
        .await?
        .into_iter()
        .find(|r| r.user == "alice")
        .unwrap();
    let own = get(
        &relay,
        "bob",
        &format!("/api/recordings/{}", bobs[0].id),
        &[],
    )
    .await?;
    assert_eq!(own.status().as_u16(), 200);
    let other = get(
        &relay,
        "bob",
        &format!("/api/recordings/{}", alices.id),
        &[],
    )
    .await?;
    assert_eq!(other.status().as_u16(), 404);
    Ok(())
}
