//! Files on SSH hosts through the relay (SFTP over its own SSH login), end to end: one
//! real sshd with its SFTP subsystem shared by every test here; the files it serves are
//! this machine's, in a temp folder per test. Files in pods (`files/pods.rs`): the same
//! against one Kubernetes emulator shared by this binary.

use std::path::Path;

use common::api::Targets;
use common::audit::{AuditEvent, AuditKind};
use common::files::{DirPage, EntryKind, FileAccess, UploadDone};
use opsdeck_tests::relay::{TestRelay, users_toml};
use opsdeck_tests::sshd::TestSshd;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "files/pods.rs"]
mod pods;

/// Alice (group `ops`) may change files on `place` (e.g. `ssh = ["box"]`); bob may read
/// them; carol may open a terminal there but has no file grant.
fn grants(place: &str) -> String {
    format!(
        "[[grants]]\ngroups = [\"ops\"]\n{place}\nfile_access = \"write\"\n\n\
         [[grants]]\nusers = [\"bob\"]\n{place}\nfile_access = \"read\"\n\n\
         [[grants]]\nusers = [\"carol\"]\n{place}\n"
    )
}

/// A relay's config: `extra` top-level tables, the audit file in `dir`, the users (carol
/// too), [`grants`] on `place` and the target's own tables (`targets`).
fn config(extra: &str, dir: &tempfile::TempDir, place: &str, targets: &str) -> String {
    format!(
        "{extra}\n[audit]\nfile = \"{}\"\n{}\n{}\n{}\n{targets}",
        dir.path().join("audit.jsonl").display(),
        users_toml(),
        carol_toml(),
        grants(place),
    )
}

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
    let text = config(extra, &dir, r#"ssh = ["box"]"#, &sshd.host_toml("box")?);
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

/// `/api/targets` says to each user the `file_access` of their grant (as `access_of`
/// reads it): alice may write, bob read, carol nothing.
async fn targets_give_each_user_their_grant(
    relay: &TestRelay,
    access_of: impl Fn(&Targets) -> Option<FileAccess>,
) -> anyhow::Result<()> {
    for (user, access) in [
        ("alice", FileAccess::Write),
        ("bob", FileAccess::Read),
        ("carol", FileAccess::None),
    ] {
        let targets: Targets = client()
            .get(relay.http_url("/api/targets"))
            .bearer_auth(relay.token(user))
            .send()
            .await?
            .json()
            .await?;
        assert_eq!(access_of(&targets), Some(access), "{user}");
    }
    Ok(())
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
    upload_cancelled_midway(
        &relay,
        &dir,
        &root,
        "/api/files/ssh/box/file",
        ".cancelled.bin.opsdeck-",
    )
    .await
}

/// Uploads 50 MB to `root/cancelled.bin` through `endpoint` (an SSH host's or a pod's
/// `.../file`) until the temporary file (named from `temporary_prefix`) appears, that is
/// until the relay writes, then hangs up: nothing may be left in `root`, and the upload is
/// audited as ended early.
async fn upload_cancelled_midway(
    relay: &TestRelay,
    dir: &tempfile::TempDir,
    root: &Path,
    endpoint: &str,
    temporary_prefix: &str,
) -> anyhow::Result<()> {
    let target = root.join("cancelled.bin");
    let mut socket = tokio::net::TcpStream::connect(relay.addr).await?;
    let head = format!(
        "PUT {endpoint}?{} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nContent-Length: 50000000\r\n\r\n",
        path_query(&target),
        relay.token("alice")
    );
    socket.write_all(head.as_bytes()).await?;
    let chunk = vec![7u8; 64 * 1024];
    let temporary = || {
        std::fs::read_dir(root)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(temporary_prefix)
            })
    };
    let mut sent = 0;
    while !temporary() {
        socket.write_all(&chunk).await?;
        sent += chunk.len();
        assert!(sent < 50_000_000, "no temporary file appeared");
    }
    drop(socket);
    let events = transfers(relay, dir).await?;
    let names: Vec<_> = std::fs::read_dir(root)?
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

    // The listing and the targets tell the app what each user may do, so it offers no
    // change to bob and no files pane to carol.
    for (user, access) in [("alice", FileAccess::Write), ("bob", FileAccess::Read)] {
        let page: DirPage = list(&relay, user, &path_query(&root)).await?.json().await?;
        assert_eq!(page.access, access, "{user}");
    }
    targets_give_each_user_their_grant(&relay, |targets| {
        let host = targets.ssh.iter().find(|t| t.id == "box");
        host.map(|t| t.file_access)
    })
    .await?;

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

/// A JavaScript statement: drops a file named `arguments[0]` with the bytes of
/// `arguments[1]` (base64) onto the files pane, as a drag from the desktop does: a
/// `DataTransfer` holding a `File`, `dragover` then `drop`.
const DROP_FILE: &str = "
    const bytes = Uint8Array.from(atob(arguments[1]), c => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([bytes], arguments[0]));
    const zone = document.querySelector('.files-drop');
    for (const type of ['dragenter', 'dragover', 'drop']) {
        zone.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
    }";

/// A JavaScript function body for `execute_async`: fetches the href of the download link
/// of row `arguments[0]` as a click would (with the login cookie) and answers the sha256
/// of what came, in hex, and the link's `download` name.
const FETCH_DOWNLOAD: &str = "
    const done = arguments[arguments.length - 1];
    const link = document.querySelector(`.file-row[data-name=\"${arguments[0]}\"] .file-download`);
    fetch(link.href, { credentials: 'include' })
        .then(r => r.arrayBuffer())
        .then(b => crypto.subtle.digest('SHA-256', b))
        .then(h => done([Array.from(new Uint8Array(h)).map(x => x.toString(16).padStart(2, '0')).join(''), link.getAttribute('download')]))
        .catch(e => done(['error: ' + e, '']));";

fn row_js(name: &str) -> String {
    format!("document.querySelector('.file-row[data-name=\"{name}\"]')")
}

fn transfer_js(name: &str) -> String {
    format!("(document.querySelector('.transfer[data-name=\"{name}\"]')||{{dataset:{{}}}})")
}

/// Logs out whoever is logged in and logs `user` in.
async fn switch_user(browser: &fantoccini::Client, base: &str, user: &str) -> anyhow::Result<()> {
    use opsdeck_tests::browser::wait_for_js;
    browser
        .find(fantoccini::Locator::Css("#logout"))
        .await?
        .click()
        .await?;
    wait_for_js(
        browser,
        "logged out",
        "document.querySelector('#login-username')",
    )
    .await?;
    logged_in(browser, base, user).await
}

/// Logs `user` in through the login page and waits until the app says so.
async fn logged_in(browser: &fantoccini::Client, base: &str, user: &str) -> anyhow::Result<()> {
    use opsdeck_tests::browser::{log_in, wait_for_js};
    log_in(browser, base, user, opsdeck_tests::relay::PASSWORD).await?;
    wait_for_js(
        browser,
        &format!("{user} logged in"),
        "document.querySelector('#user-name')",
    )
    .await?;
    Ok(())
}

/// A Chromium (and its driver, which must outlive it) with alice logged in at `base`.
async fn alice_in_chromium(
    base: &str,
) -> anyhow::Result<(opsdeck_tests::browser::Chromedriver, fantoccini::Client)> {
    let mut driver = opsdeck_tests::browser::Chromedriver::start().await?;
    let browser = driver.browser(1280, 900).await?;
    logged_in(&browser, base, "alice").await?;
    Ok((driver, browser))
}

/// The controls that change files, which a read grant does not give.
const CHANGE_CONTROLS: &str = ".files-upload, .files-upload-folder, .files-picker, \
    .files-folder-picker, .files-mkdir, .files-drop-hint, .file-rename, .file-delete";

#[tokio::test]
async fn the_files_pane_in_chromium_lists_navigates_uploads_by_drop_downloads_and_refuses()
-> anyhow::Result<()> {
    use fantoccini::Locator;
    use opsdeck_tests::browser::{PAGE_TIMEOUT, built_app, wait_for_js};

    let extra = format!(
        "static_dir = \"{}\"\n[file_transfers]\nmax_upload_bytes = 1048576\n",
        built_app()?.display()
    );
    let (relay, dir) = relay(&extra).await?;
    let root = files(&dir);
    std::fs::write(root.join("hello.txt"), "hello from sshd")?;
    let sub = root.join("sub");
    std::fs::create_dir(&sub)?;
    std::fs::write(sub.join("inner.txt"), "inside")?;
    let base = relay.http_url("");
    let page = format!("{base}/#/files/ssh/box?path={}", root.display());

    let (_driver, browser) = alice_in_chromium(&base).await?;
    browser.goto(&page).await?;

    // The listing shows the file made on the sshd side, with its size.
    wait_for_js(&browser, "hello.txt listed", &row_js("hello.txt")).await?;
    let size = browser
        .execute(
            &format!(
                "return {}.querySelector('.file-size').dataset.bytes;",
                row_js("hello.txt")
            ),
            vec![],
        )
        .await?;
    assert_eq!(size, "15");

    // Into the folder: its file, and breadcrumbs ending with it.
    browser
        .find(Locator::Css(".file-row[data-name=\"sub\"] .file-open"))
        .await?
        .click()
        .await?;
    wait_for_js(&browser, "inner.txt listed", &row_js("inner.txt")).await?;
    let last_crumb = browser
        .execute(
            "const c = document.querySelectorAll('.files-crumb'); return c[c.length - 1].dataset.path;",
            vec![],
        )
        .await?;
    assert_eq!(last_crumb, sub.display().to_string());

    // A file dropped onto the pane arrives byte-exact, with its progress bar full.
    let data = random_bytes(300_000, 7);
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &data);
    browser
        .execute(DROP_FILE, vec!["dropped.bin".into(), encoded.into()])
        .await?;
    let state = wait_for_js(
        &browser,
        "the upload to end",
        &format!(
            "{}.dataset.state !== 'sending' && {0}.dataset.state",
            transfer_js("dropped.bin")
        ),
    )
    .await?;
    assert_eq!(state, "done");
    let bar = browser
        .execute(
            &format!(
                "const p = {}.querySelector('progress'); return p.value === p.max && p.max === 300000;",
                transfer_js("dropped.bin")
            ),
            vec![],
        )
        .await?;
    assert_eq!(
        bar,
        serde_json::Value::Bool(true),
        "the progress bar is full"
    );
    assert_eq!(
        Sha256::digest(std::fs::read(sub.join("dropped.bin"))?),
        Sha256::digest(&data)
    );
    wait_for_js(&browser, "dropped.bin listed", &row_js("dropped.bin")).await?;

    // Over the relay's limit (1 MiB here): refused in words, nothing kept.
    let big = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        random_bytes(2 * 1024 * 1024, 8),
    );
    browser
        .execute(DROP_FILE, vec!["big.bin".into(), big.into()])
        .await?;
    wait_for_js(
        &browser,
        "the big upload refused",
        &format!("{}.dataset.state === 'failed'", transfer_js("big.bin")),
    )
    .await?;
    let why = browser
        .execute(
            &format!(
                "return {}.querySelector('.transfer-status').textContent;",
                transfer_js("big.bin")
            ),
            vec![],
        )
        .await?;
    let why = why.as_str().unwrap_or_default();
    assert!(
        why.contains("Too large") && why.contains("(413)") && why.contains("max_upload_bytes"),
        "{why}"
    );
    assert!(!sub.join("big.bin").exists());

    // The download link gives the file's bytes, under its name.
    let answer = browser
        .execute_async(FETCH_DOWNLOAD, vec!["dropped.bin".into()])
        .await?;
    assert_eq!(
        answer,
        serde_json::json!([hex(&Sha256::digest(&data)), "dropped.bin"])
    );

    // A folder tree with multibyte names, chosen with the folder input (chromedriver sends a
    // directory to a `webkitdirectory` input): its folders are made, then each file is
    // sent to its place (more files than uploads at once, so some wait their turn).
    let local = tempfile::tempdir()?;
    let tree = local.path().join("ツリー");
    let files_in_tree = [
        ("ファイル.txt", random_bytes(1000, 9)),
        ("子フォルダ ü/émoji 🙂.bin", random_bytes(70_000, 10)),
        ("子フォルダ ü/深い/空", Vec::new()),
        ("子フォルダ ü/深い/日志.log", random_bytes(5000, 11)),
        ("a.txt", random_bytes(10, 12)),
        ("b.txt", random_bytes(20, 13)),
    ];
    for (place, data) in &files_in_tree {
        let path = tree.join(place);
        std::fs::create_dir_all(path.parent().expect("a file has a folder"))?;
        std::fs::write(&path, data)?;
    }
    browser
        .find(Locator::Css(".files-folder-picker"))
        .await?
        .send_keys(&tree.display().to_string())
        .await?;
    for (place, _) in &files_in_tree {
        let state = wait_for_js(
            &browser,
            &format!("the upload of {place} to end"),
            &format!(
                "!['queued', 'sending', undefined].includes({0}.dataset.state) && {0}.dataset.state",
                transfer_js(&format!("ツリー/{place}"))
            ),
        )
        .await?;
        assert_eq!(state, "done", "{place}");
    }
    for (place, data) in &files_in_tree {
        let on_disk = std::fs::read(sub.join("ツリー").join(place))?;
        assert_eq!(Sha256::digest(&on_disk), Sha256::digest(data), "{place}");
    }
    wait_for_js(&browser, "the tree listed", &row_js("ツリー")).await?;
    browser
        .find(Locator::Css(".file-row[data-name=\"ツリー\"] .file-open"))
        .await?
        .click()
        .await?;
    wait_for_js(&browser, "ファイル.txt listed", &row_js("ファイル.txt")).await?;
    let kind = browser
        .execute(
            &format!("return {}.dataset.kind;", row_js("子フォルダ ü")),
            vec![],
        )
        .await?;
    assert_eq!(kind, "dir");

    // Up again; and "open files here" from the host's terminal.
    for _ in 0..2 {
        browser
            .find(Locator::Css(".files-up"))
            .await?
            .click()
            .await?;
    }
    wait_for_js(&browser, "back in the root", &row_js("hello.txt")).await?;
    browser.goto(&format!("{base}/#/ssh/box")).await?;
    let link = browser
        .wait()
        .at_most(PAGE_TIMEOUT)
        .for_element(Locator::Css("#term-files"))
        .await?;
    assert_eq!(link.attr("href").await?.as_deref(), Some("#/files/ssh/box"));
    link.click().await?;
    wait_for_js(
        &browser,
        "the home folder listed",
        "document.querySelector('.files-page .files-crumb') && !document.querySelector('.files-error')",
    )
    .await?;

    // Bob may read the files: listed and downloadable, but no control that changes them.
    switch_user(&browser, &base, "bob").await?;
    browser.goto(&page).await?;
    wait_for_js(
        &browser,
        "bob's listing",
        &format!(
            "document.querySelector('.files-page[data-access=\"read\"]') && {}",
            row_js("hello.txt")
        ),
    )
    .await?;
    let shown = browser
        .execute(
            &format!(
                "return [document.querySelectorAll('{CHANGE_CONTROLS}').length, \
                 !!document.querySelector('.files-read-only'), \
                 !!{}.querySelector('.file-download')];",
                row_js("hello.txt")
            ),
            vec![],
        )
        .await?;
    assert_eq!(
        shown,
        serde_json::json!([0, true, true]),
        "bob: no change controls, a read-only note, a download link"
    );

    // Carol may open a terminal on the host but has no file grant: told so in words.
    switch_user(&browser, &base, "carol").await?;
    browser.goto(&page).await?;
    let refusal = wait_for_js(
        &browser,
        "carol's refusal",
        "(document.querySelector('.files-error[data-status=\"403\"]')||{}).textContent",
    )
    .await?;
    let refusal = refusal.as_str().unwrap_or_default();
    assert!(
        refusal.contains("Permission denied")
            && refusal.contains("may not read files on SSH host box"),
        "{refusal}"
    );
    assert!(
        browser
            .find_all(Locator::Css(".file-row"))
            .await?
            .is_empty(),
        "nothing listed for carol"
    );
    // And her terminal offers no files, once the relay has said so.
    browser.goto(&format!("{base}/#/ssh/box")).await?;
    wait_for_js(
        &browser,
        "carol's file access known",
        "document.querySelector('.terminal-page[data-file-access=\"none\"]')",
    )
    .await?;
    assert!(
        browser
            .find_all(Locator::Css("#term-files"))
            .await?
            .is_empty(),
        "no files link for carol"
    );
    browser.close().await?;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
