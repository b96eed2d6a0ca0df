//! Session recording, the audit trail and live watching, end to end: one real sshd shared
//! by every test here (and the Kubernetes emulator for pod exec), a relay per test.

#[allow(dead_code)]
#[path = "k8s/fixture.rs"]
mod fixture;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use common::ClientFrame;
use common::TermSize;
use common::recording::CastHeader;
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
    let sshd = TestSshd::shared();
    let config = format!(
        "{extra}\n{}\n{GRANTS}\n{}",
        users_toml(),
        sshd.host_toml("box")?
    );
    TestRelay::start(&config).await
}

/// Opens `/ws/ssh/box` as `user` and reads its `connected` frame.
async fn open_box(relay: &TestRelay, user: &str) -> anyhow::Result<WsClient> {
    let mut client = relay.connect(user, "/ws/ssh/box").await?;
    client.connected().await?;
    Ok(client)
}

fn recording_toml(dir: &Path, more: &str) -> String {
    format!(
        "[recording]\ndirectory = \"{}\"\n{more}\n",
        dir.display()
    )
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
        let events = lines
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?;
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
        .args(["-qec", &format!("asciinema cat {}", path.display()), "/dev/null"])
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
    let line = "stty size\r".to_owned();
    client.send(&ClientFrame::Input(line.clone())).await?;
    typed.push_str(&line);
    client.read_until("30 100").await?;
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
fn check_recording(
    path: &Path,
    received: &[u8],
    typed: &str,
    title: &str,
) -> anyhow::Result<Cast> {
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
        cast.events.iter().any(|(_, c, d)| c == "r" && d == "100x30"),
        "no resize event"
    );
    let (_, code, data) = cast.events.last().expect("events");
    assert_eq!(code, "m");
    assert!(data.starts_with("end: ") && data.contains("status 0"), "{data}");
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
        Box::pin(async move { WsClient::connect(&format!("{url}{query}"), Some(&token), None).await })
            as futures_util::future::BoxFuture<'static, _>
    };
    let (received, typed) = recorded_session(open).await?;
    relay.relay().recordings_finished().await;
    let files = recordings(dir.path())?;
    assert_eq!(files.len(), 1, "{files:?}");
    check_recording(&files[0], &received, &typed, "ssh:box")?;

    // A third-party player reads it: asciinema prints the same output.
    let played = asciinema_cat(&files[0])?;
    let expected: Vec<u8> = received.iter().copied().filter(|b| *b != b'\r').collect();
    assert_eq!(sha256(&played), sha256(&expected), "asciinema cat differs");
    Ok(())
}

#[tokio::test]
async fn a_pod_exec_recording_holds_exactly_what_the_browser_got_and_sent() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let cluster = fixture::Cluster::start_with(&recording_toml(dir.path(), "compress = true")).await?;
    let token = cluster.relay.token("alice");
    let url = cluster.relay.ws_url("/ws/k8s/exec/main/dev/web-1/app");
    let open = move |query: String| {
        let (url, token) = (url.clone(), token.clone());
        Box::pin(async move { WsClient::connect(&format!("{url}{query}"), Some(&token), None).await })
            as futures_util::future::BoxFuture<'static, _>
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
    // A folder under a regular file cannot be made, whoever runs the tests (even root).
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a folder")?;
    let broken = file.join("recordings");

    // Fail closed (the default): the session is refused, with the reason.
    let relay_closed = relay(&recording_toml(&broken, "")).await?;
    let mut client = relay_closed.connect("alice", "/ws/ssh/box").await?;
    let (code, reason, _) = client.read_until_closed().await?;
    assert_eq!(code, 4502, "{reason}");
    assert!(reason.contains("recorded"), "{reason}");
    assert_eq!(relay_closed.relay().terminal_sessions(), 0);

    // A target the config does not record opens, whatever the recorder's state.
    let relay_off = relay(&recording_toml(&broken, "targets = { \"ssh:box\" = false }")).await?;
    let mut client = open_box(&relay_off, "alice").await?;
    client.type_line("echo unrecorded-$((1+1))").await?;
    client.read_until("unrecorded-2").await?;

    // Fail open: the session runs unrecorded and the alert metric counts it.
    let relay_open = relay(&recording_toml(&broken, "on_failure = \"continue\"")).await?;
    let mut client = open_box(&relay_open, "alice").await?;
    client.type_line("echo open-$((1+1))").await?;
    client.read_until("open-2").await?;
    let metrics = reqwest::get(relay_open.http_url("/metrics")).await?.text().await?;
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
        .map(|p| p.file_name().unwrap_or_default().to_string_lossy().into_owned())
        .collect();
    assert!(!names.contains(&"1-ancient.cast".to_owned()), "{names:?}");
    assert!(!names.contains(&"2-oldest.cast".to_owned()), "{names:?}");
    assert!(names.contains(&"3-older.cast".to_owned()), "{names:?}");
    assert!(names.contains(&"4-newer.cast".to_owned()), "{names:?}");
    assert!(names.contains(&"notes.txt".to_owned()), "{names:?}");
    assert_eq!(names.len(), 4, "the new recording is kept: {names:?}");
    Ok(())
}
