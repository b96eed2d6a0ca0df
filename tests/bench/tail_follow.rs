//! The file-tail limit: GNU `tail -n0 -F` (inotify) on the same file, one process per
//! viewer, each line timed as it comes out of the pipe.

use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use anyhow::Context;
use opsdeck_tests::load::{Received, Subscriber};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

pub struct TailFollower {
    _child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl TailFollower {
    pub fn spawn(path: &Path) -> anyhow::Result<Self> {
        let mut child = Command::new("tail")
            .args(["-n0", "-F"])
            .arg(path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting tail (coreutils)")?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        Ok(Self {
            _child: child,
            lines: BufReader::new(stdout).lines(),
        })
    }
}

impl Subscriber for TailFollower {
    async fn next_message(&mut self) -> anyhow::Result<Option<Received>> {
        let line = self.lines.next_line().await?;
        let at = Instant::now();
        Ok(line.map(|text| Received { text, at }))
    }
}
