//! Files on SSH hosts through the relay (SFTP over its own SSH login), end to end: one
//! real sshd with its SFTP subsystem shared by every test here; the files it serves are
//! this machine's, in a temp folder per test. Files in pods (`files/pods.rs`): the same
//! against one Kubernetes emulator shared by this binary.

use std::path::Path;

use common::audit::{AuditEvent, AuditKind};
use common::files::{DirPage, EntryKind, UploadDone};
use opsdeck_tests::relay::{TestRelay, users_toml};
use opsdeck_tests::sshd::TestSshd;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "files/pods.rs"]
mod pods;

/// Alice (group `ops`) may change files on `box`; bob may read them; carol may open a
/// terminal there but has no file grant.
const GRANTS: &str = r#"
[[grants]]
groups = ["ops"]
ssh = ["box"]
file_access = "write"

[[grants]]
users = ["bob"]
ssh = ["box"]
file_access = "read"

[[grants]]
users = ["carol"]
ssh = ["box"]
"#;

fn carol_toml() -> String {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let hash = HASH.get_or_init(|| {
        relay::hash_password(opsdeck_tests::relay::PASSWORD).expect("argon2 hashes")
    });
    format!("[[auth.users]]\nusername = \"carol\"\npassword_hash = \"{hash}\"\n")
}

/// A relay on the shared sshd with `extra` top-level tables, and the folder the test's
/// files live in.
async fn relay(extra: &str) -> anyhow::Result<(TestRelay, tempfile::TempDir)> {
    let sshd = TestSshd::shared();
    let dir = tempfile::tempdir()?;
    let text = format!(
        "{extra}\n[audit]\nfile = \"{}\"\n{}\n{}\n{GRANTS}\n{}",
        dir.path().join("audit.jsonl").display(),
        users_toml(),
        carol_toml(),
        sshd.host_toml("box")?
    );
    let files = dir.path().join("files");
    std::fs::create_dir(&files)?;
    Ok((TestRelay::start(&text).await?, dir))
}

fn files(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join("files")
}

/// `?path=` for a local path.
fn path_query(path: &Path) -> String {
    common::files::PathQuery::new(path.as_os_str().as_encoded_bytes().to_vec()).to_query()
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn upload(
    relay: &TestRelay,
    user: &str,
    path: &Path,
    body: Vec<u8>,
) -> anyhow::Result<reqwest::Response> {
    Ok(client()
        .put(relay.http_url(&format!("/api/files/ssh/box/file?{}", path_query(path))))
        .bearer_auth(relay.token(user))
        .body(body)
        .send()
        .await?)
}

async fn download(
    relay: &TestRelay,
    user: &str,
    path: &Path,
    range: Option<&str>,
) -> anyhow::Result<reqwest::Response> {
    let mut request = client()
        .get(relay.http_url(&format!("/api/files/ssh/box/file?{}", path_query(path))))
        .bearer_auth(relay.token(user));
    if let Some(range) = range {
        request = request.header("range", range);
    }
    Ok(request.send().await?)
}

async fn list(relay: &TestRelay, user: &str, query: &str) -> anyhow::Result<reqwest::Response> {
    Ok(client()
        .get(relay.http_url(&format!("/api/files/ssh/box/list?{query}")))
        .bearer_auth(relay.token(user))
        .send()
        .await?)
}

async fn post(relay: &TestRelay, user: &str, what: &str) -> anyhow::Result<reqwest::Response> {
    Ok(client()
        .post(relay.http_url(&format!("/api/files/ssh/box/{what}")))
        .bearer_auth(relay.token(user))
        .send()
        .await?)
}

/// The `error` of an API refusal.
async fn reason(response: reqwest::Response) -> anyhow::Result<String> {
    let body: serde_json::Value = response.json().await?;
    Ok(body["error"].as_str().unwrap_or_default().to_owned())
}

/// The sha256 of a download, read as it streams.
async fn sha_of_download(mut response: reqwest::Response) -> anyhow::Result<(Vec<u8>, u64)> {
    let mut hash = Sha256::new();
    let mut bytes = 0u64;
    while let Some(chunk) = response.chunk().await? {
        bytes += chunk.len() as u64;
        hash.update(&chunk);
    }
    Ok((hash.finalize().to_vec(), bytes))
}

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut data = vec![0u8; len];
    rng.fill(&mut data[..]);
    data
}

/// The `file_transfer` events written so far.
async fn transfers(relay: &TestRelay, dir: &tempfile::TempDir) -> anyhow::Result<Vec<AuditEvent>> {
    relay.relay().transfers_finished().await;
    relay.relay().audit_written().await;
    let text = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap_or_default();
    Ok(text
        .lines()
        .map(serde_json::from_str::<AuditEvent>)
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|e| e.kind == AuditKind::FileTransfer)
        .collect())
}

#[tokio::test]
async fn a_100_mb_upload_and_a_tree_with_multibyte_names_come_back_byte_exact() -> anyhow::Result<()>
{
    let (relay, dir) = relay("").await?;
    let root = files(&dir);

    let big = random_bytes(100 * 1024 * 1024, 1);
    let expected = Sha256::digest(&big).to_vec();
    let target = root.join("big.bin");
    let response = upload(&relay, "alice", &target, big).await?;
    assert_eq!(response.status(), 201);
    let done: UploadDone = response.json().await?;
    assert_eq!(done.bytes, 100 * 1024 * 1024);
    let response = download(&relay, "alice", &target, None).await?;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"big.bin\"; filename*=UTF-8''big.bin"
    );
    assert_eq!(
        sha_of_download(response).await?,
        (expected, 100 * 1024 * 1024)
    );

    // A tree: folders made through the relay, files uploaded into them.
    let tree = root.join("ツリー");
    let inner = tree.join("子フォルダ ü");
    for folder in [&tree, &inner] {
        let response = post(&relay, "alice", &format!("mkdir?{}", path_query(folder))).await?;
        assert_eq!(response.status(), 204, "{}", reason(response).await?);
    }
    let names = [
        (tree.join("ファイル.txt"), random_bytes(1000, 2)),
        (inner.join("émoji 🙂.bin"), random_bytes(70_000, 3)),
        (inner.join("empty"), Vec::new()),
    ];
    for (path, data) in &names {
        assert_eq!(
            upload(&relay, "alice", path, data.clone()).await?.status(),
            201
        );
    }
    for (path, data) in &names {
        assert_eq!(std::fs::read(path)?, *data, "on disk: {}", path.display());
        let (sha, len) = sha_of_download(download(&relay, "alice", path, None).await?).await?;
        assert_eq!(
            (sha, len),
            (Sha256::digest(data).to_vec(), data.len() as u64)
        );
    }
    let page: DirPage = list(&relay, "alice", &path_query(&tree))
        .await?
        .json()
        .await?;
    let mut listed: Vec<(String, EntryKind)> = page
        .entries
        .iter()
        .map(|e| (e.name.clone(), e.kind))
        .collect();
    listed.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        listed,
        [
            ("ファイル.txt".to_owned(), EntryKind::File),
            ("子フォルダ ü".to_owned(), EntryKind::Dir)
        ]
    );
    assert_eq!(page.next, None);

    let events = transfers(&relay, &dir).await?;
    let big_upload = events
        .iter()
        .find(|e| e.path.as_deref() == Some(&format!("upload {}", target.display())))
        .expect("the upload is audited");
    assert_eq!(big_upload.user.as_deref(), Some("alice"));
    assert_eq!(big_upload.target.as_deref(), Some("ssh:box"));
    assert_eq!(big_upload.bytes_from_browser, Some(100 * 1024 * 1024));
    assert_eq!(big_upload.reason, None);
    Ok(())
}

#[tokio::test]
async fn a_cancelled_upload_leaves_no_file_under_its_name() -> anyhow::Result<()> {
    let (relay, dir) = relay("").await?;
    let root = files(&dir);
    let target = root.join("cancelled.bin");
    let mut socket = tokio::net::TcpStream::connect(relay.addr).await?;
    let head = format!(
        "PUT /api/files/ssh/box/file?{} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nContent-Length: 50000000\r\n\r\n",
        path_query(&target),
        relay.token("alice")
    );
    socket.write_all(head.as_bytes()).await?;
    // Send until the temporary file is there (the relay is writing), then hang up.
    let chunk = vec![7u8; 64 * 1024];
    let temporary = || {
        std::fs::read_dir(&root)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".cancelled.bin.opsdeck-")
            })
    };
    let mut sent = 0;
    while !temporary() {
        socket.write_all(&chunk).await?;
        sent += chunk.len();
        assert!(sent < 50_000_000, "no temporary file appeared");
    }
    drop(socket);
    let events = transfers(&relay, &dir).await?;
    let names: Vec<_> = std::fs::read_dir(&root)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    assert!(names.is_empty(), "left behind: {names:?}");
    let event = events.last().expect("the cancelled upload is audited");
    assert!(
        event
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("ended early")),
        "{event:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_read_grant_downloads_but_cannot_change_and_no_grant_cannot_list() -> anyhow::Result<()> {
    let (relay, dir) = relay("").await?;
    let root = files(&dir);
    let existing = root.join("report.txt");
    std::fs::write(&existing, "quarterly numbers")?;

    let response = download(&relay, "bob", &existing, None).await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await?, "quarterly numbers");
    let response = upload(&relay, "bob", &root.join("new.txt"), b"x".to_vec()).await?;
    assert_eq!(response.status(), 403);
    assert!(reason(response).await?.contains("file_access = \"write\""));
    let response = client()
        .delete(relay.http_url(&format!(
            "/api/files/ssh/box/file?{}",
            path_query(&existing)
        )))
        .bearer_auth(relay.token("bob"))
        .send()
        .await?;
    assert_eq!(response.status(), 403);
    assert!(existing.exists() && !root.join("new.txt").exists());

    let response = list(&relay, "carol", &path_query(&root)).await?;
    assert_eq!(response.status(), 403);
    assert!(
        reason(response)
            .await?
            .contains("may not read files on SSH host box")
    );
    assert_eq!(
        download(&relay, "carol", &existing, None).await?.status(),
        403
    );

    // Alice may delete and rename.
    let renamed = root.join("renamed.txt");
    let query = common::files::RenameQuery {
        from: existing.as_os_str().as_encoded_bytes().to_vec(),
        to: renamed.as_os_str().as_encoded_bytes().to_vec(),
    }
    .to_query();
    assert_eq!(
        post(&relay, "alice", &format!("rename?{query}"))
            .await?
            .status(),
        204
    );
    let response = client()
        .delete(relay.http_url(&format!("/api/files/ssh/box/file?{}", path_query(&renamed))))
        .bearer_auth(relay.token("alice"))
        .send()
        .await?;
    assert_eq!(response.status(), 204);
    assert!(!renamed.exists() && !existing.exists());
    Ok(())
}

#[tokio::test]
async fn a_download_resumed_with_a_range_is_byte_exact() -> anyhow::Result<()> {
    let (relay, dir) = relay("").await?;
    let data = random_bytes(300_000, 4);
    let path = files(&dir).join("resume.bin");
    std::fs::write(&path, &data)?;
    let response = download(&relay, "bob", &path, Some("bytes=123457-")).await?;
    assert_eq!(response.status(), 206);
    assert_eq!(
        response.headers()["content-range"],
        "bytes 123457-299999/300000"
    );
    assert_eq!(response.bytes().await?[..], data[123_457..]);
    let response = download(&relay, "bob", &path, Some("bytes=10-19")).await?;
    assert_eq!(response.status(), 206);
    assert_eq!(response.bytes().await?[..], data[10..20]);
    let response = download(&relay, "bob", &path, Some("bytes=300000-")).await?;
    assert_eq!(response.status(), 416);
    assert_eq!(response.headers()["content-range"], "bytes */300000");
    Ok(())
}

/// Sends a request head (and `body`) on a raw socket and reads the status line.
async fn raw_status(relay: &TestRelay, head: &str, body: &[u8]) -> anyhow::Result<String> {
    let mut socket = tokio::net::TcpStream::connect(relay.addr).await?;
    socket.write_all(head.as_bytes()).await?;
    // The relay may answer (and close) before taking the whole body.
    let _ = socket.write_all(body).await;
    let mut answer = vec![0u8; 4096];
    let n = socket.read(&mut answer).await?;
    Ok(String::from_utf8_lossy(&answer[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned())
}

#[tokio::test]
async fn bad_paths_and_oversized_uploads_get_a_reason_and_the_relay_keeps_serving()
-> anyhow::Result<()> {
    let (relay, dir) = relay("[file_transfers]\nmax_upload_bytes = 1000000\n").await?;
    let root = files(&dir);
    for (query, expected) in [
        (format!("path={}/../etc", root.display()), "\"..\""),
        ("path=%2Ftmp%2Fa%00b".to_owned(), "NUL"),
        (
            format!("path={}/{}", root.display(), "n".repeat(300)),
            "at most 255",
        ),
        ("path=".to_owned(), "a path is needed"),
    ] {
        let response = list(&relay, "alice", &query).await?;
        assert_eq!(response.status(), 400, "{query}");
        let said = reason(response).await?;
        assert!(said.contains(expected), "{query}: {said}");
    }
    let missing = root.join("missing");
    let response = download(&relay, "alice", &missing, None).await?;
    assert_eq!(response.status(), 404);
    assert!(reason(response).await?.contains("no such file"));

    // A symlink loop: a clear refusal, not a hang.
    std::os::unix::fs::symlink(root.join("loop-b"), root.join("loop-a"))?;
    std::os::unix::fs::symlink(root.join("loop-a"), root.join("loop-b"))?;
    let response = download(&relay, "alice", &root.join("loop-a"), None).await?;
    assert!(response.status().is_client_error() || response.status().is_server_error());
    assert!(!reason(response).await?.is_empty());

    // A name that is not UTF-8 is listed (its odd byte as U+FFFD: russh-sftp reads names as text).
    let odd = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"caf\xe9.txt");
    std::fs::write(root.join(odd), "odd")?;
    let page: DirPage = list(&relay, "alice", &path_query(&root))
        .await?
        .json()
        .await?;
    let names: Vec<&str> = page.entries.iter().map(|e| e.name.as_str()).collect();
    assert!(names.contains(&"caf\u{fffd}.txt"), "{names:?}");
    assert!(names.contains(&"loop-a"));
    let link = page.entries.iter().find(|e| e.name == "loop-a").unwrap();
    assert_eq!(link.kind, EntryKind::Symlink);
    assert_eq!(
        link.link_target.as_deref(),
        Some(&*root.join("loop-b").to_string_lossy())
    );

    // Over the limit with its size announced: refused before the body is sent.
    let head = |length: &str| {
        format!(
            "PUT /api/files/ssh/box/file?{} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n{length}\r\n",
            path_query(&root.join("big")),
            relay.token("alice")
        )
    };
    let status = raw_status(&relay, &head("Content-Length: 2000000\r\n"), b"").await?;
    assert!(status.contains("413"), "{status}");
    // Without a size (chunked): cut off at the limit, nothing kept.
    let mut chunked = Vec::new();
    for _ in 0..40 {
        chunked.extend_from_slice(format!("{:x}\r\n", 64 * 1024).as_bytes());
        chunked.extend_from_slice(&[1u8; 64 * 1024]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let status = raw_status(&relay, &head("Transfer-Encoding: chunked\r\n"), &chunked).await?;
    assert!(status.contains("413"), "{status}");
    relay.relay().transfers_finished().await;
    assert!(
        std::fs::read_dir(&root)?
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().contains("big")),
        "nothing of the oversized upload is kept"
    );
    // And the relay still serves.
    assert_eq!(
        list(&relay, "alice", &path_query(&root)).await?.status(),
        200
    );
    Ok(())
}

#[tokio::test]
async fn a_folder_of_100000_entries_is_listed_in_pages() -> anyhow::Result<()> {
    let (relay, dir) = relay("").await?;
    let big = files(&dir).join("many");
    std::fs::create_dir(&big)?;
    for i in 0..100_000 {
        std::fs::File::create(big.join(format!("f{i}")))?;
    }
    let query = |offset: u64| format!("{}&offset={offset}&limit=1000", path_query(&big));
    let first: DirPage = list(&relay, "bob", &query(0)).await?.json().await?;
    assert_eq!((first.entries.len(), first.next), (1000, Some(1000)));
    let last: DirPage = list(&relay, "bob", &query(99_500)).await?.json().await?;
    assert_eq!((last.entries.len(), last.next), (500, None));
    let response = list(&relay, "bob", &format!("{}&limit=100000", path_query(&big))).await?;
    assert_eq!(response.status(), 400);
    Ok(())
}
