//! Live file tails: the last lines, then following the file through rotation, truncation,
//! deletion and re-creation; one reader shared by many viewers, none slowed by another;
//! the lines an application writes to its old descriptor after a rotation; a log path that
//! is a symlink; wake-ups that never come; a long backlog sent in bounded frames.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::bail;
use common::server::{StatusKind, StreamEvent};
use opsdeck_tests::client::{Connected, WsClient};
use opsdeck_tests::relay::{TestRelay, users_toml};

/// A relay tailing `app.log` (and nothing else) in a fresh folder.
struct Setup {
    relay: TestRelay,
    dir: tempfile::TempDir,
}

impl Setup {
    async fn start(tail_section: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let config = format!(
            r#"{users}
[tail]
linger = "30s"
{tail_section}

[[grants]]
groups = ["ops"]
files = ["*"]

[[files]]
id = "app"
path = "{path}"
"#,
            users = users_toml(),
            path = dir.path().join("app.log").display(),
        );
        Ok(Self {
            relay: TestRelay::start(&config).await?,
            dir,
        })
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("app.log")
    }

    async fn view(&self, query: &str) -> anyhow::Result<Viewer> {
        let client = self
            .relay
            .connect("alice", &format!("/ws/tail/app{query}"))
            .await?;
        Viewer::new(client).await
    }
}

fn append(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

fn numbered(from: usize, to: usize) -> String {
    (from..to).map(|i| format!("line {i}\n")).collect()
}

/// One viewer and everything it has received.
struct Viewer {
    client: WsClient,
    session: String,
    resumed: bool,
    lines: Vec<String>,
    statuses: Vec<StatusKind>,
    gaps: usize,
    dropped: u64,
    /// Position after the last line received.
    position: u64,
    /// Bytes of text in the largest `lines` frame.
    biggest_frame: usize,
}

impl Viewer {
    async fn new(mut client: WsClient) -> anyhow::Result<Self> {
        let Connected {
            session,
            position,
            resumed,
        } = client.connected().await?;
        Ok(Self {
            client,
            session,
            resumed,
            lines: Vec::new(),
            statuses: Vec::new(),
            gaps: 0,
            dropped: 0,
            position: position.as_count().unwrap_or(0),
            biggest_frame: 0,
        })
    }

    /// Takes one frame.
    async fn step(&mut self) -> anyhow::Result<()> {
        match self.client.next_frame().await? {
            StreamEvent::Lines { position, lines } => {
                let bytes = lines.iter().map(String::len).sum();
                self.biggest_frame = self.biggest_frame.max(bytes);
                self.lines.extend(lines);
                self.position = position.as_count().unwrap_or(0);
            }
            StreamEvent::Status { kind, .. } => self.statuses.push(kind),
            StreamEvent::Dropped { count } => self.dropped += count,
            StreamEvent::Gap { .. } => self.gaps += 1,
            other => bail!("unexpected frame {other:?}"),
        }
        Ok(())
    }

    /// Reads until `count` lines have arrived in all.
    async fn until_lines(&mut self, count: usize) -> anyhow::Result<()> {
        while self.lines.len() < count {
            self.step().await?;
        }
        Ok(())
    }

    async fn until_line(&mut self, line: &str) -> anyhow::Result<()> {
        while !self.lines.iter().any(|l| l == line) {
            self.step().await?;
        }
        Ok(())
    }

    async fn until_status(&mut self, kind: StatusKind) -> anyhow::Result<()> {
        while !self.statuses.contains(&kind) {
            self.step().await?;
        }
        Ok(())
    }
}

#[tokio::test]
async fn starts_with_the_last_n_lines_then_follows_new_ones() -> anyhow::Result<()> {
    let setup = Setup::start("").await?;
    append(&setup.log(), &numbered(0, 500))?;

    let mut ten = setup.view("?lines=10").await?;
    ten.until_lines(10).await?;
    let expected: Vec<String> = (490..500).map(|i| format!("line {i}")).collect();
    assert_eq!(ten.lines, expected);

    let mut default = setup.view("").await?;
    default.until_lines(100).await?;
    assert_eq!(default.lines.first().map(String::as_str), Some("line 400"));
    assert_eq!(default.lines.len(), 100);

    append(&setup.log(), &numbered(500, 503))?;
    ten.until_lines(13).await?;
    assert_eq!(&ten.lines[10..], ["line 500", "line 501", "line 502"]);
    default.until_line("line 502").await?;
    assert_eq!(default.lines.len(), 103, "no line twice, none missed");
    Ok(())
}

#[tokio::test]
async fn a_line_written_in_pieces_arrives_whole_and_long_lines_are_cut() -> anyhow::Result<()> {
    let setup = Setup::start("max_line_bytes = 1024").await?;
    append(&setup.log(), "")?;
    let mut viewer = setup.view("").await?;
    let text = "多字节文本 — 😀\n".as_bytes();
    // Written in pieces that end inside characters. The relay may read them merged (no
    // probe shows a read that ended inside a character); the unit test of
    // `relay/src/backend/tail/lines.rs` splits a line at every byte.
    for piece in text.chunks(5) {
        let mut file = std::fs::OpenOptions::new().append(true).open(setup.log())?;
        file.write_all(piece)?;
        file.sync_all()?;
    }
    append(&setup.log(), &format!("{}\n", "x".repeat(5000)))?;
    viewer.until_lines(2).await?;
    assert_eq!(viewer.lines[0], "多字节文本 — 😀");
    assert!(
        viewer.lines[1].starts_with(&"x".repeat(1024)),
        "cut at the limit"
    );
    assert!(!viewer.lines[1].starts_with(&"x".repeat(1025)));
    assert!(
        viewer.lines[1].contains("5000 bytes"),
        "{}",
        &viewer.lines[1][1024..]
    );
    Ok(())
}

#[tokio::test]
async fn rotation_by_rename_is_announced_and_the_new_file_is_followed() -> anyhow::Result<()> {
    let setup = Setup::start("").await?;
    append(&setup.log(), "before\n")?;
    let mut viewer = setup.view("").await?;
    viewer.until_line("before").await?;

    append(&setup.log(), "last words of the old file\n")?;
    std::fs::rename(setup.log(), setup.dir.path().join("app.log.1"))?;
    append(&setup.log(), "first line of the new file\n")?;
    viewer.until_line("first line of the new file").await?;
    assert!(
        viewer.statuses.contains(&StatusKind::FileRotated),
        "{:?}",
        viewer.statuses
    );
    assert_eq!(
        viewer.lines,
        [
            "before",
            "last words of the old file",
            "first line of the new file"
        ]
    );
    Ok(())
}

#[tokio::test]
async fn truncation_is_announced_and_reading_restarts_at_the_top() -> anyhow::Result<()> {
    let setup = Setup::start("").await?;
    append(&setup.log(), &numbered(0, 50))?;
    let mut viewer = setup.view("?lines=5").await?;
    viewer.until_lines(5).await?;

    std::fs::OpenOptions::new()
        .write(true)
        .open(setup.log())?
        .set_len(0)?;
    viewer.until_status(StatusKind::FileTruncated).await?;
    append(&setup.log(), "fresh start\n")?;
    viewer.until_line("fresh start").await?;
    assert_eq!(viewer.lines.len(), 6, "{:?}", viewer.lines);
    Ok(())
}

#[tokio::test]
async fn deletion_and_re_creation_are_announced_and_followed() -> anyhow::Result<()> {
    let setup = Setup::start("").await?;
    append(&setup.log(), "original\n")?;
    let mut viewer = setup.view("").await?;
    viewer.until_line("original").await?;

    std::fs::remove_file(setup.log())?;
    viewer.until_status(StatusKind::FileDeleted).await?;
    append(&setup.log(), "reborn\n")?;
    viewer.until_line("reborn").await?;
    assert!(
        viewer.statuses.contains(&StatusKind::FileCreated),
        "{:?}",
        viewer.statuses
    );
    assert_eq!(viewer.lines, ["original", "reborn"]);
    Ok(())
}

#[tokio::test]
async fn many_viewers_share_one_reader() -> anyhow::Result<()> {
    let setup = Setup::start("").await?;
    append(&setup.log(), "hello\n")?;
    let mut viewers = Vec::new();
    for _ in 0..8 {
        let mut viewer = setup.view("").await?;
        viewer.until_line("hello").await?;
        viewers.push(viewer);
    }
    assert_eq!(
        setup.relay.relay().tail_readers(),
        1,
        "one reader for the file"
    );
    let session = viewers[0].session.clone();
    assert!(viewers.iter().all(|v| v.session == session));

    append(&setup.log(), "to everyone\n")?;
    for viewer in &mut viewers {
        viewer.until_line("to everyone").await?;
        assert_eq!(viewer.lines, ["hello", "to everyone"]);
    }
    Ok(())
}

#[tokio::test]
async fn a_stalled_viewer_does_not_slow_the_others_and_learns_what_it_missed() -> anyhow::Result<()>
{
    // A queue of two batches per viewer: a viewer that stops reading falls behind quickly.
    let setup = Setup::start("viewer_queue = 2").await?;
    append(&setup.log(), "start\n")?;
    let mut stalled = setup.view("").await?;
    stalled.until_line("start").await?;
    let mut live = setup.view("").await?;
    live.until_line("start").await?;

    // 20 MB in 100 steps; the live viewer reads each step before the next is written, the
    // stalled one reads nothing until the end.
    let padding = "p".repeat(190);
    let (steps, per_step) = (100, 1000);
    for step in 0..steps {
        let chunk: String = (0..per_step)
            .map(|i| format!("{} {padding}\n", step * per_step + i))
            .collect();
        append(&setup.log(), &chunk)?;
        live.until_lines(1 + (step + 1) * per_step).await?;
    }
    let total = steps * per_step;
    assert_eq!(live.dropped, 0, "the reading viewer missed nothing");
    for (i, line) in live.lines[1..].iter().enumerate() {
        assert!(
            line.starts_with(&format!("{i} ")),
            "line {i} out of order: {line:.20}"
        );
    }

    let last = format!("{} {padding}", total - 1);
    stalled.until_line(&last).await?;
    assert!(
        stalled.dropped > 0,
        "the stalled viewer was told it skipped lines"
    );
    assert_eq!(
        stalled.lines.len() as u64 + stalled.dropped,
        1 + total as u64,
        "every line was either received or counted as dropped"
    );
    Ok(())
}

#[tokio::test]
async fn a_reconnecting_viewer_resumes_after_its_last_line() -> anyhow::Result<()> {
    let setup = Setup::start("").await?;
    append(&setup.log(), &numbered(0, 20))?;
    let mut first = setup.view("?lines=5").await?;
    first.until_lines(5).await?;
    let (session, position) = (first.session.clone(), first.position);
    first.client.drop_connection();

    append(&setup.log(), &numbered(20, 23))?;
    let query = format!("?session={session}&position={position}");
    let mut again = setup.view(&query).await?;
    assert!(again.resumed);
    again.until_lines(3).await?;
    assert_eq!(again.lines, ["line 20", "line 21", "line 22"]);

    // A tail id this reader never had (e.g. from before a relay restart): a fresh start.
    let mut stranger = setup.view("?session=0000&position=3&lines=2").await?;
    assert!(!stranger.resumed);
    stranger.until_lines(2).await?;
    assert_eq!(stranger.gaps, 1);
    assert_eq!(stranger.lines, ["line 21", "line 22"]);
    Ok(())
}

#[tokio::test]
async fn ids_that_look_like_paths_are_not_found_and_grants_apply() -> anyhow::Result<()> {
    let setup = Setup::start("").await?;
    append(&setup.log(), "secret\n")?;
    for path in [
        "/ws/tail/..%2F..%2Fetc%2Fpasswd",
        "/ws/tail/%2Fetc%2Fpasswd",
        "/ws/tail/app.log",
        "/ws/tail/.",
    ] {
        let mut client = setup.relay.connect("alice", path).await?;
        let (code, reason, frames) = client.read_until_closed().await?;
        assert_eq!(code, 4404, "{path}: {reason}");
        assert!(frames.is_empty());
    }
    let mut bob = setup.relay.connect("bob", "/ws/tail/app").await?;
    let (code, _, _) = bob.read_until_closed().await?;
    assert_eq!(code, 4403, "bob has no grant for files");
    let mut anonymous = WsClient::connect(&setup.relay.ws_url("/ws/tail/app"), None, None).await?;
    let (code, _, _) = anonymous.read_until_closed().await?;
    assert_eq!(code, 4401);
    let mut bad = setup
        .relay
        .connect("alice", "/ws/tail/app?lines=many")
        .await?;
    let (code, _, _) = bad.read_until_closed().await?;
    assert_eq!(code, 4400);
    Ok(())
}

#[tokio::test]
async fn resuming_after_lines_no_longer_kept_gets_a_gap_then_the_kept_ones() -> anyhow::Result<()> {
    let setup = Setup::start(
        r#"
default_lines = 5
max_lines = 10
"#,
    )
    .await?;
    append(&setup.log(), "first\n")?;
    let mut viewer = setup.view("").await?;
    viewer.until_line("first").await?;
    let (session, position) = (viewer.session.clone(), viewer.position);
    viewer.client.drop_connection();

    append(&setup.log(), &numbered(0, 30))?;
    // Another viewer proves the reader has read all 30 before the first one comes back.
    let mut witness = setup.view("?lines=1").await?;
    witness.until_line("line 29").await?;

    let query = format!("?session={session}&position={position}");
    let mut again = setup.view(&query).await?;
    assert!(again.resumed);
    again.until_line("line 29").await?;
    assert_eq!(again.gaps, 1, "told plainly that lines were lost");
    let kept: Vec<String> = (20..30).map(|i| format!("line {i}")).collect();
    assert_eq!(again.lines, kept);
    Ok(())
}

/// The lines of `lines` that start with `prefix`, in the order received.
fn from_file<'a>(lines: &'a [String], prefix: &str) -> Vec<&'a str> {
    lines
        .iter()
        .filter(|l| l.starts_with(prefix))
        .map(String::as_str)
        .collect()
}

fn labelled(label: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{label} {i}")).collect()
}

fn write_lines(file: &mut std::fs::File, lines: &[String]) -> anyhow::Result<()> {
    for line in lines {
        file.write_all(format!("{line}\n").as_bytes())?;
    }
    Ok(())
}

/// Issue 11 (rotation without lost lines): logrotate's `create` order. The file is renamed
/// and a new one created; the application, not yet told to reopen, writes on to its old
/// descriptor; then it reopens and writes to the new file. Every viewer gets every line
/// once, each file's lines in order.
#[tokio::test]
async fn lines_written_to_the_old_descriptor_after_a_rename_reach_every_viewer_once()
-> anyhow::Result<()> {
    let setup = Setup::start("").await?;
    let mut app = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(setup.log())?;
    write_lines(&mut app, &labelled("old", 0..3))?;
    let mut viewers = Vec::new();
    for _ in 0..3 {
        let mut viewer = setup.view("").await?;
        viewer.until_lines(3).await?;
        viewers.push(viewer);
    }

    std::fs::rename(setup.log(), setup.dir.path().join("app.log.1"))?;
    std::fs::File::create(setup.log())?;
    // The reader has moved on to the new file before the late lines are written.
    for viewer in &mut viewers {
        viewer.until_status(StatusKind::FileRotated).await?;
    }
    write_lines(&mut app, &labelled("old", 3..8))?;
    // The application reopens its log (logrotate's postrotate).
    drop(app);
    let mut app = std::fs::OpenOptions::new().append(true).open(setup.log())?;
    write_lines(&mut app, &labelled("new", 0..4))?;

    for viewer in &mut viewers {
        viewer.until_lines(12).await?;
        assert_eq!(from_file(&viewer.lines, "old "), labelled("old", 0..8));
        assert_eq!(from_file(&viewer.lines, "new "), labelled("new", 0..4));
        assert_eq!(viewer.lines.len(), 12, "no line twice: {:?}", viewer.lines);
        assert_eq!(viewer.dropped + viewer.gaps as u64, 0);
    }
    Ok(())
}

/// Issue 11: a deleted file the application still writes to (delete, then re-create):
/// its late lines are read through the open descriptor, then the new file's.
#[tokio::test]
async fn lines_written_to_a_deleted_file_before_it_is_re_created_are_not_lost() -> anyhow::Result<()>
{
    let setup = Setup::start("").await?;
    let mut app = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(setup.log())?;
    write_lines(&mut app, &labelled("old", 0..2))?;
    let mut viewers = Vec::new();
    for _ in 0..2 {
        let mut viewer = setup.view("").await?;
        viewer.until_lines(2).await?;
        viewers.push(viewer);
    }

    std::fs::remove_file(setup.log())?;
    for viewer in &mut viewers {
        viewer.until_status(StatusKind::FileDeleted).await?;
    }
    write_lines(&mut app, &labelled("old", 2..5))?;
    drop(app);
    append(&setup.log(), "new 0\n")?;
    for viewer in &mut viewers {
        viewer.until_lines(6).await?;
        assert_eq!(from_file(&viewer.lines, "old "), labelled("old", 0..5));
        assert_eq!(from_file(&viewer.lines, "new "), ["new 0"]);
        assert_eq!(viewer.lines.len(), 6, "no line twice: {:?}", viewer.lines);
    }
    Ok(())
}

/// Issue 11: logrotate's `copytruncate`: the file is copied, then cut to nothing while the
/// application keeps its descriptor (opened for appending); reading starts again at the
/// top, and every viewer gets every line once.
#[tokio::test]
async fn copytruncate_is_followed_from_the_top_by_every_viewer() -> anyhow::Result<()> {
    let setup = Setup::start("").await?;
    let mut app = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(setup.log())?;
    write_lines(&mut app, &labelled("before", 0..4))?;
    let mut viewers = Vec::new();
    for _ in 0..3 {
        let mut viewer = setup.view("").await?;
        viewer.until_lines(4).await?;
        viewers.push(viewer);
    }

    std::fs::copy(setup.log(), setup.dir.path().join("app.log.1"))?;
    app.set_len(0)?;
    for viewer in &mut viewers {
        viewer.until_status(StatusKind::FileTruncated).await?;
    }
    write_lines(&mut app, &labelled("after", 0..3))?;
    for viewer in &mut viewers {
        viewer.until_lines(7).await?;
        assert_eq!(
            from_file(&viewer.lines, "before "),
            labelled("before", 0..4)
        );
        assert_eq!(from_file(&viewer.lines, "after "), labelled("after", 0..3));
        assert_eq!(viewer.lines.len(), 7, "{:?}", viewer.lines);
    }
    Ok(())
}

/// Review finding 16 (a): the configured path is a symlink into another folder. Writes to
/// the target wake the reader (its folder is watched too), and re-pointing the link moves
/// the tail to the new target. The periodic check is set to an hour so that only inotify
/// can deliver these lines.
#[tokio::test]
async fn a_log_path_that_is_a_symlink_into_another_folder_is_followed_and_re_pointed()
-> anyhow::Result<()> {
    let setup = Setup::start("poll_interval = \"1h\"").await?;
    let elsewhere = tempfile::tempdir()?;
    let first = elsewhere.path().join("app-1.log");
    append(&first, "one\n")?;
    std::os::unix::fs::symlink(&first, setup.log())?;
    let mut viewer = setup.view("").await?;
    viewer.until_line("one").await?;

    append(&first, "two\n")?;
    viewer.until_line("two").await?;

    // Re-pointed atomically, as deployment tools do: a new link renamed over the old one.
    let second = elsewhere.path().join("app-2.log");
    append(&second, "three\n")?;
    let staged = setup.dir.path().join("app.log.new");
    std::os::unix::fs::symlink(&second, &staged)?;
    std::fs::rename(&staged, setup.log())?;
    viewer.until_line("three").await?;
    append(&second, "four\n")?;
    viewer.until_line("four").await?;
    assert!(
        viewer.statuses.contains(&StatusKind::FileRotated),
        "{:?}",
        viewer.statuses
    );
    assert_eq!(viewer.lines, ["one", "two", "three", "four"]);
    Ok(())
}

/// Review finding 16 (c): writes that wake nothing. The rotated file is moved into a
/// folder nobody watches and the application writes on to it; with a grace period of an
/// hour, only the periodic check can find those lines.
#[tokio::test]
async fn the_periodic_check_finds_lines_that_no_wake_up_announced() -> anyhow::Result<()> {
    let setup = Setup::start(
        r#"
poll_interval = "200ms"
rotate_wait = "1h"
"#,
    )
    .await?;
    let mut app = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(setup.log())?;
    app.write_all(b"before\n")?;
    let mut viewer = setup.view("").await?;
    viewer.until_line("before").await?;

    let archive = setup.dir.path().join("archive");
    std::fs::create_dir(&archive)?;
    std::fs::rename(setup.log(), archive.join("app.log.1"))?;
    std::fs::File::create(setup.log())?;
    viewer.until_status(StatusKind::FileRotated).await?;
    app.write_all(b"written where no watch sees it\n")?;
    viewer.until_line("written where no watch sees it").await?;
    assert_eq!(viewer.lines, ["before", "written where no watch sees it"]);
    Ok(())
}

/// Review finding 13 (tail part): joining with a long backlog does not copy it for the
/// viewer at once; it is sent from the shared ring a frame at a time, and no frame carries
/// more than 256 KiB of lines (before, 1000 lines a frame: 3 MB here).
#[tokio::test]
async fn a_long_backlog_is_sent_in_frames_of_bounded_size() -> anyhow::Result<()> {
    let setup = Setup::start("").await?;
    let padding = "b".repeat(3000);
    let text: String = (0..3000).map(|i| format!("{i} {padding}\n")).collect();
    append(&setup.log(), &text)?;
    let mut viewers = Vec::new();
    for _ in 0..3 {
        viewers.push(setup.view("?lines=3000").await?);
    }
    for viewer in &mut viewers {
        viewer.until_lines(3000).await?;
        for (i, line) in viewer.lines.iter().enumerate() {
            assert!(line.starts_with(&format!("{i} ")), "line {i}: {line:.20}");
        }
        assert_eq!(viewer.dropped, 0);
        assert!(
            viewer.biggest_frame <= 256 * 1024,
            "a frame of {} bytes",
            viewer.biggest_frame
        );
    }
    Ok(())
}
