//! The embedded demo configuration's side effects: a sample log file to tail, and its
//! local shell kept to loopback.
//!
//! The file lives in a folder only the relay's user can enter (under `$XDG_RUNTIME_DIR`,
//! else the temporary folder), never at a fixed name in a shared `/tmp`: there, another
//! user could plant a symlink and have the demo show any file the relay can read.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::config::Config;

/// Points the demo's files into a private folder and writes a few lines to each new one.
/// A file that cannot be made safely is left out of the config, with a warning. The demo's
/// password is public, so its local shell is offered only on a loopback address.
pub fn prepare(config: &mut Config) {
    shell_on_loopback_only(config);
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(std::env::temp_dir);
    prepare_in(config, &base);
}

/// Keeps the demo's shell to a loopback address, and says in its label whose shell it is.
fn shell_on_loopback_only(config: &mut Config) {
    if !config.listen.ip().is_loopback() && !config.local_shells.is_empty() {
        tracing::warn!(
            listen = %config.listen,
            "the demo's local shell is off: its password is public, so it is only offered on a loopback address"
        );
        config.local_shells.clear();
    }
    let me = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten();
    if let Some(me) = me {
        for shell in config.local_shells.iter_mut().filter(|s| s.user.is_none()) {
            let label = shell.label.as_deref().unwrap_or(&shell.id);
            shell.label = Some(format!("{label} (as {})", me.name));
        }
    }
}

fn prepare_in(config: &mut Config, base: &Path) {
    let dir = match private_folder(base) {
        Ok(dir) => dir,
        Err(e) => {
            tracing::warn!("the demo log is off: {e}");
            config.files.clear();
            return;
        }
    };
    for file in &mut config.files {
        let name = file
            .path
            .file_name()
            .map_or_else(|| format!("{}.log", file.id).into(), ToOwned::to_owned);
        file.path = dir.join(name);
        file.label = Some(format!("Demo log ({})", file.path.display()));
        if let Err(e) = write_sample(&file.path) {
            tracing::warn!("cannot write demo log {}: {e}", file.path.display());
        }
    }
}

/// `base/opsdeck-demo-<uid>`, made with mode 0700, or refused when it is anything else
/// than a folder of ours that nobody else may enter.
fn private_folder(base: &Path) -> std::io::Result<PathBuf> {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let dir = base.join(format!("opsdeck-demo-{uid}"));
    match DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(&dir)?;
    if !meta.is_dir() || meta.uid() != uid || meta.permissions().mode() & 0o077 != 0 {
        return Err(std::io::Error::other(format!(
            "{} is not a private folder of this user (a symlink, another owner, or open to others); remove it",
            dir.display()
        )));
    }
    Ok(dir)
}

fn write_sample(path: &Path) -> std::io::Result<()> {
    let mut file = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(path)
    {
        Ok(file) => file,
        // Kept from an earlier run, with whatever the user appended.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    };
    for n in 1..=20 {
        writeln!(
            file,
            "demo line {n}: Opsdeck tails this file; append to it to see lines arrive"
        )?;
    }
    writeln!(file, "多字节文本 works too — 😀")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_log_goes_into_a_private_folder() {
        let base = tempfile::tempdir().unwrap();
        let mut config = Config::embedded_default();
        prepare_in(&mut config, base.path());
        let path = &config.files[0].path;
        let dir = path.parent().unwrap();
        assert!(dir.starts_with(base.path()));
        let mode = std::fs::metadata(dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert!(
            std::fs::read_to_string(path)
                .unwrap()
                .contains("demo line 1")
        );
    }

    #[test]
    fn the_demo_shell_is_offered_on_loopback_only() {
        let mut config = Config::embedded_default();
        shell_on_loopback_only(&mut config);
        assert_eq!(config.local_shells.len(), 1);
        let label = config.local_shells[0].label.clone().unwrap_or_default();
        assert!(label.starts_with("Shell on this machine (as "), "{label}");
        config.listen = "0.0.0.0:8080".parse().unwrap();
        shell_on_loopback_only(&mut config);
        assert!(config.local_shells.is_empty());
    }

    // Review #27: a planted symlink is refused, not followed.
    #[test]
    fn a_planted_symlink_is_not_followed() {
        let base = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let uid = unsafe { libc::getuid() };
        std::os::unix::fs::symlink(
            elsewhere.path(),
            base.path().join(format!("opsdeck-demo-{uid}")),
        )
        .unwrap();
        let mut config = Config::embedded_default();
        prepare_in(&mut config, base.path());
        assert!(config.files.is_empty());
        assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
    }
}
