//! Files in pods through the relay (`/api/files/k8s/...`: `find`, `tar` and `mv` run by
//! exec in the container, through kube-rs), end to end against the Kubernetes emulator,
//! whose exec runs real processes on this machine. One emulator serves every test of this
//! binary (on a runtime of its own, so it outlives each test's runtime); each test has its
//! own relay and its own folder.
//!
//! Pod `dev/files`: container `app` (this machine's programs), container `bare` (a `PATH`
//! with no programs in it: a container without `tar`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::audit::AuditKind;
use common::files::{DirPage, EntryKind, UploadDone};
use k8s_emulator::{AccessRule, ContainerConfig, Emulator, EmulatorConfig, PodConfig, Subject};
use opsdeck_tests::relay::TestRelay;
use sha2::{Digest, Sha256};

use super::{
    alice_in_chromium, client, config, path_query, random_bytes, raw_status, reason, row_js,
    sha_of_download, targets_give_each_user_their_grant, transfer_js, transfers,
    upload_cancelled_midway,
};

struct SharedCluster {
    kubeconfig: PathBuf,
    root: PathBuf,
}

/// The emulator every test here uses, started once.
fn cluster() -> &'static SharedCluster {
    static CLUSTER: OnceLock<SharedCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("a runtime for the emulator");
            runtime.block_on(async move {
                match start().await {
                    Ok((shared, emulator)) => {
                        let _ = tx.send(Ok(shared));
                        // Serves until the test binary exits.
                        std::future::pending::<()>().await;
                        drop(emulator);
                    }
                    Err(e) => {
                        let _ = tx.send(Err(format!("{e:#}")));
                    }
                }
            });
        });
        rx.recv()
            .expect("the emulator thread answers")
            .expect("the emulator starts")
    })
}

async fn start() -> anyhow::Result<(SharedCluster, Emulator)> {
    let root = tempfile::Builder::new()
        .prefix("opsdeck-pod-files")
        .tempdir()?
        .keep();
    let no_programs = root.join("empty-bin");
    std::fs::create_dir(&no_programs)?;
    let container = |name: &str, path: Option<String>| ContainerConfig {
        name: name.into(),
        image: format!("registry.local/{name}:1.0"),
        log_file: root.join(format!("{name}.log")),
        restart_count: 0,
        working_dir: Some(root.clone()),
        path,
    };
    let config = EmulatorConfig {
        pods: vec![PodConfig {
            namespace: "dev".into(),
            name: "files".into(),
            phase: Default::default(),
            labels: Default::default(),
            containers: vec![
                container("app", None),
                container("bare", Some(no_programs.display().to_string())),
            ],
        }],
        access: vec![AccessRule::cluster_admin(Subject::User(
            "opsdeck-relay".into(),
        ))],
        ..Default::default()
    };
    let emulator = Emulator::start(config).await?;
    let kubeconfig = root.join("kubeconfig");
    emulator.write_kubeconfig(&kubeconfig, "opsdeck-relay", &[])?;
    Ok((SharedCluster { kubeconfig, root }, emulator))
}

/// A relay on the shared emulator, and this test's folder (in the container's file
/// system, which is this machine's).
async fn relay() -> anyhow::Result<(TestRelay, tempfile::TempDir, PathBuf)> {
    relay_with("").await
}

/// [`relay`] with `extra` at the top of its config (`static_dir`, say).
async fn relay_with(extra: &str) -> anyhow::Result<(TestRelay, tempfile::TempDir, PathBuf)> {
    let cluster = cluster();
    let dir = tempfile::tempdir()?;
    // Alice (group `ops`) may change files in `main/dev`; bob may read them; carol may
    // open a terminal there but has no file grant.
    let cluster_toml = format!(
        "[[k8s_clusters]]\nid = \"main\"\nkubeconfig = \"{}\"\n",
        cluster.kubeconfig.display()
    );
    let text = config(extra, &dir, r#"k8s = ["main/dev"]"#, &cluster_toml);
    let files = tempfile::Builder::new()
        .prefix("test-")
        .tempdir_in(&cluster.root)?
        .keep();
    Ok((TestRelay::start(&text).await?, dir, files))
}

fn url(relay: &TestRelay, container: &str, what: &str, query: &str) -> String {
    relay.http_url(&format!(
        "/api/files/k8s/main/dev/files/{container}/{what}?{query}"
    ))
}

async fn upload(
    relay: &TestRelay,
    user: &str,
    container: &str,
    path: &Path,
    body: Vec<u8>,
) -> anyhow::Result<reqwest::Response> {
    Ok(client()
        .put(url(relay, container, "file", &path_query(path)))
        .bearer_auth(relay.token(user))
        .body(body)
        .send()
        .await?)
}

async fn get(
    relay: &TestRelay,
    user: &str,
    container: &str,
    what: &str,
    query: &str,
) -> anyhow::Result<reqwest::Response> {
    Ok(client()
        .get(url(relay, container, what, query))
        .bearer_auth(relay.token(user))
        .send()
        .await?)
}

#[tokio::test]
async fn pod_upload_and_download_are_byte_exact_and_a_folder_comes_as_a_tar() -> anyhow::Result<()>
{
    let (relay, dir, root) = relay().await?;
    let folder = root.join("データ");
    let response = client()
        .post(url(&relay, "app", "mkdir", &path_query(&folder)))
        .bearer_auth(relay.token("alice"))
        .send()
        .await?;
    assert_eq!(response.status(), 204, "{}", reason(response).await?);

    let big = random_bytes(3 * 1024 * 1024 + 123, 7);
    let target = folder.join("émoji 🙂 -x.bin");
    let response = upload(&relay, "alice", "app", &target, big.clone()).await?;
    assert_eq!(response.status(), 201, "{}", reason(response).await?);
    let done: UploadDone = response.json().await?;
    assert_eq!(done.bytes, big.len() as u64);
    assert_eq!(std::fs::read(&target)?, big, "on disk");
    let leftovers: Vec<_> = std::fs::read_dir(&folder)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    assert_eq!(
        leftovers.len(),
        1,
        "only the file, no temporary: {leftovers:?}"
    );

    let response = get(&relay, "alice", "app", "file", &path_query(&target)).await?;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-length"],
        big.len().to_string().as_str()
    );
    assert!(
        response.headers()["content-disposition"]
            .to_str()?
            .contains("filename*=UTF-8''%C3%A9moji%20%F0%9F%99%82%20-x.bin")
    );
    assert_eq!(
        sha_of_download(response).await?,
        (Sha256::digest(&big).to_vec(), big.len() as u64)
    );

    // A part, as a resumed download asks for it.
    let response = client()
        .get(url(&relay, "app", "file", &path_query(&target)))
        .bearer_auth(relay.token("alice"))
        .header("range", "bytes=1000000-")
        .send()
        .await?;
    assert_eq!(response.status(), 206);
    assert_eq!(response.bytes().await?.as_ref(), &big[1_000_000..]);

    // Replacing needs overwrite=1.
    let response = upload(&relay, "alice", "app", &target, b"new".to_vec()).await?;
    assert_eq!(response.status(), 409, "{}", reason(response).await?);

    // The listing shows the file with its size.
    let response = get(&relay, "alice", "app", "list", &path_query(&folder)).await?;
    assert_eq!(response.status(), 200);
    let page: DirPage = response.json().await?;
    assert_eq!(page.entries.len(), 1);
    assert_eq!(page.entries[0].name, "émoji 🙂 -x.bin");
    assert_eq!(page.entries[0].kind, EntryKind::File);
    assert_eq!(page.entries[0].size, big.len() as u64);

    // The folder as a tar, unpacked here by tar itself.
    let small = random_bytes(10_000, 8);
    std::fs::write(folder.join("小さい.txt"), &small)?;
    let response = get(&relay, "alice", "app", "archive", &path_query(&folder)).await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-tar");
    let archive = response.bytes().await?;
    let unpacked = tempfile::tempdir()?;
    let tar = unpacked.path().join("folder.tar");
    std::fs::write(&tar, &archive)?;
    let status = std::process::Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(unpacked.path())
        .status()?;
    assert!(status.success());
    let out = unpacked.path().join("データ");
    assert_eq!(std::fs::read(out.join("émoji 🙂 -x.bin"))?, big);
    assert_eq!(std::fs::read(out.join("小さい.txt"))?, small);

    let events = transfers(&relay, &dir).await?;
    assert!(
        events.iter().any(|e| e.kind == AuditKind::FileTransfer
            && e.target.as_deref() == Some("k8s:main/dev/files/app")
            && e.backend.as_deref() == Some("k8s")
            && e.bytes_from_browser == Some(big.len() as u64)),
        "{events:?}"
    );
    std::fs::remove_dir_all(&root)?;
    Ok(())
}

#[tokio::test]
async fn a_container_without_tar_is_refused_with_the_reason() -> anyhow::Result<()> {
    let (relay, _dir, root) = relay().await?;
    let file = root.join("here.txt");
    std::fs::write(&file, "hello")?;
    let response = get(&relay, "alice", "bare", "file", &path_query(&file)).await?;
    assert_eq!(response.status(), 422);
    let said = reason(response).await?;
    assert!(said.contains("container bare of pod files"), "{said}");
    assert!(said.contains("has no tar"), "{said}");
    let response = upload(
        &relay,
        "alice",
        "bare",
        &root.join("new.txt"),
        b"x".to_vec(),
    )
    .await?;
    assert_eq!(response.status(), 422, "{}", reason(response).await?);
    assert!(!root.join("new.txt").exists());
    std::fs::remove_dir_all(&root)?;
    Ok(())
}

#[tokio::test]
async fn a_read_grant_downloads_from_a_pod_but_gets_403_on_upload() -> anyhow::Result<()> {
    let (relay, _dir, root) = relay().await?;
    let file = root.join("report.txt");
    std::fs::write(&file, "quarterly numbers")?;
    let response = get(&relay, "bob", "app", "file", &path_query(&file)).await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await?, "quarterly numbers");
    let response = upload(&relay, "bob", "app", &root.join("new.txt"), b"x".to_vec()).await?;
    assert_eq!(response.status(), 403);
    assert!(reason(response).await?.contains("file_access = \"write\""));
    assert!(!root.join("new.txt").exists());
    let response = get(&relay, "carol", "app", "list", &path_query(&root)).await?;
    assert_eq!(response.status(), 403);
    std::fs::remove_dir_all(&root)?;
    Ok(())
}

#[tokio::test]
async fn dot_dot_and_nul_in_pod_paths_get_400_and_an_upload_without_length_411()
-> anyhow::Result<()> {
    let (relay, _dir, root) = relay().await?;
    for (what, query, expected) in [
        ("list", format!("path={}/../etc", root.display()), "\"..\""),
        (
            "file",
            format!("path={}/../etc/passwd", root.display()),
            "\"..\"",
        ),
        ("list", "path=%2Ftmp%2Fa%00b".to_owned(), "NUL"),
        ("archive", "path=%2Ftmp%00".to_owned(), "NUL"),
    ] {
        let response = get(&relay, "alice", "app", what, &query).await?;
        assert_eq!(response.status(), 400, "{what}?{query}");
        let said = reason(response).await?;
        assert!(said.contains(expected), "{query}: {said}");
    }
    let response = get(
        &relay,
        "alice",
        "app",
        "file",
        &path_query(&root.join("missing")),
    )
    .await?;
    assert_eq!(response.status(), 404, "{}", reason(response).await?);

    let target = root.join("chunked.txt");
    let head = format!(
        "PUT /api/files/k8s/main/dev/files/app/file?{} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        path_query(&target),
        relay.addr,
        relay.token("alice")
    );
    let status = raw_status(&relay, &head, b"5\r\nhello\r\n0\r\n\r\n").await?;
    assert!(status.contains(" 411 "), "{status}");
    assert!(!target.exists());
    std::fs::remove_dir_all(&root)?;
    Ok(())
}

#[tokio::test]
async fn a_cancelled_pod_upload_leaves_no_file_under_its_name() -> anyhow::Result<()> {
    let (relay, dir, root) = relay().await?;
    // The temporary file appears once tar has created it (the bytes reach the container).
    upload_cancelled_midway(
        &relay,
        &dir,
        &root,
        "/api/files/k8s/main/dev/files/app/file",
        ".opsdeck-upload-",
    )
    .await?;
    std::fs::remove_dir_all(&root)?;
    Ok(())
}

#[tokio::test]
async fn targets_say_what_each_user_may_do_with_files_in_a_clusters_pods() -> anyhow::Result<()> {
    let (relay, _dir, _root) = relay().await?;
    // The browser offers a pod's files pane (a pod terminal's "open files here", the
    // workspace's 📁) only when the cluster's `file_access` is not none.
    targets_give_each_user_their_grant(&relay, |targets| {
        let main = targets.k8s.iter().find(|c| c.id == "main");
        main.map(|c| c.file_access)
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn the_pod_files_pane_in_chromium_lists_uploads_and_offers_folders_as_tar()
-> anyhow::Result<()> {
    use fantoccini::Locator;
    use opsdeck_tests::browser::{PAGE_TIMEOUT, built_app, wait_for_js};

    let extra = format!("static_dir = \"{}\"\n", built_app()?.display());
    let (relay, _dir, root) = relay_with(&extra).await?;
    std::fs::create_dir(root.join("sub"))?;
    std::fs::write(root.join("sub").join("inner.txt"), "inside")?;
    let base = relay.http_url("");
    let page = format!(
        "{base}/#/files/k8s/main/dev/files/app?{}",
        path_query(&root)
    );

    let (_driver, browser) = alice_in_chromium(&base).await?;

    // "Open files here" on the pod's terminal leads to the container's files pane.
    browser
        .goto(&format!("{base}/#/k8s/exec/main/dev/files/app"))
        .await?;
    let link = browser
        .wait()
        .at_most(PAGE_TIMEOUT)
        .for_element(Locator::Css("#term-files"))
        .await?;
    assert_eq!(
        link.attr("href").await?.as_deref(),
        Some("#/files/k8s/main/dev/files/app")
    );

    // The test's folder, listed from the container (this machine's files), writable.
    browser.goto(&page).await?;
    wait_for_js(
        &browser,
        "sub listed",
        &format!(
            "document.querySelector('.files-page[data-pod=\"dev/files/app\"][data-access=\"write\"]') && {}",
            row_js("sub")
        ),
    )
    .await?;

    // A folder row offers the folder as a tar (the `archive` endpoint).
    let tar = browser
        .execute(
            &format!(
                "const a = {}.querySelector('.file-archive'); return a && [a.getAttribute('href'), a.getAttribute('download')];",
                row_js("sub")
            ),
            vec![],
        )
        .await?;
    let expected_href = format!(
        "/api/files/k8s/main/dev/files/app/archive?{}",
        path_query(&root.join("sub"))
    );
    let href = tar[0].as_str().unwrap_or_default();
    assert!(href.ends_with(&expected_href), "{tar:?} vs {expected_href}");
    assert_eq!(tar[1], "sub.tar");

    // A file chosen with the file input arrives byte-exact and is listed.
    let local = tempfile::tempdir()?;
    let data = random_bytes(200_000, 21);
    let chosen = local.path().join("chosen 文件.bin");
    std::fs::write(&chosen, &data)?;
    browser
        .find(Locator::Css(".files-picker"))
        .await?
        .send_keys(&chosen.display().to_string())
        .await?;
    let state = wait_for_js(
        &browser,
        "the upload to end",
        &format!(
            "!['queued', 'sending', undefined].includes({0}.dataset.state) && {0}.dataset.state",
            transfer_js("chosen 文件.bin")
        ),
    )
    .await?;
    assert_eq!(state, "done");
    wait_for_js(&browser, "the upload listed", &row_js("chosen 文件.bin")).await?;
    assert_eq!(
        std::fs::read(root.join("chosen 文件.bin"))?,
        data,
        "on disk"
    );
    browser.close().await?;
    Ok(())
}
