//! The Python peers' home: one virtual environment in the build's target folder
//! (`<target>/bench-peers/venv`), made by the bench's own setup with `python3 -m venv` and
//! filled with `pip install` of pinned versions, then reused by every later run.
//!
//! A peer that cannot be installed (no python3, no network, a failed build) is not an error
//! of the bench: [`PythonVenv::with`] says why, and the workload runs without that peer.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::Command;

/// How long one `pip install` may take (wheels are downloaded, some may be built).
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);
/// The requirements installed so far, one a line, kept beside the venv.
const INSTALLED: &str = "bench-requirements.txt";

/// The bench's Python virtual environment, with some pinned requirements installed.
#[derive(Debug, Clone)]
pub struct PythonVenv {
    dir: PathBuf,
}

impl PythonVenv {
    /// The venv with `requirements` (`name==version`) installed: made when missing, and
    /// `pip install`ed only when one of them is not yet recorded as installed.
    pub async fn with(requirements: &[&str]) -> anyhow::Result<Self> {
        let dir = peers_folder()?.join("venv");
        let venv = Self { dir };
        if !venv.python().exists() {
            eprintln!("bench: making a Python venv in {}", venv.dir.display());
            run(Command::new("python3").args(["-m", "venv"]).arg(&venv.dir))
                .await
                .context("python3 -m venv (install python3 and python3-venv)")?;
        }
        let record = venv.dir.join(INSTALLED);
        let installed = std::fs::read_to_string(&record).unwrap_or_default();
        let missing: Vec<&str> = requirements
            .iter()
            .copied()
            .filter(|r| !installed.lines().any(|line| line == *r))
            .collect();
        if !missing.is_empty() {
            eprintln!("bench: pip install {}", missing.join(" "));
            let mut command = Command::new(venv.bin("pip"));
            command
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .args(&missing);
            tokio::time::timeout(INSTALL_TIMEOUT, run(&mut command))
                .await
                .with_context(|| format!("pip install took over {INSTALL_TIMEOUT:?}"))?
                .with_context(|| format!("pip install {}", missing.join(" ")))?;
            let mut lines = installed;
            for r in missing {
                lines.push_str(r);
                lines.push('\n');
            }
            std::fs::write(&record, lines)?;
        }
        Ok(venv)
    }

    /// A program the venv installed (`wssh`, `daphne`, `python`).
    pub fn bin(&self, program: &str) -> PathBuf {
        self.dir.join("bin").join(program)
    }

    pub fn python(&self) -> PathBuf {
        self.bin("python")
    }
}

/// `<target>/bench-peers`: beside the `release` folder this bench was built into, so a
/// `cargo clean` removes it and every worktree sharing the target folder shares it.
pub(crate) fn peers_folder() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let target = exe
        .parent()
        .and_then(Path::parent)
        .context("the bench binary is not in a target folder")?;
    let folder = target.join("bench-peers");
    std::fs::create_dir_all(&folder)?;
    Ok(folder)
}

/// Runs `command` to its end; its output is shown only when it fails.
pub(crate) async fn run(command: &mut Command) -> anyhow::Result<()> {
    let output = command
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await?;
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stderr);
        let last: Vec<&str> = said.trim().lines().rev().take(3).collect();
        bail!(
            "{}: {}",
            output.status,
            last.into_iter().rev().collect::<Vec<_>>().join(" / ")
        );
    }
    Ok(())
}
