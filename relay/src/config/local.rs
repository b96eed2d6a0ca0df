//! Local shells (`[[local_shells]]`): a program in a PTY on the relay's own machine (like
//! ttyd or GoTTY), behind Opsdeck's login and grants (`[[grants]] local = [...]`).
//!
//! The Unix user a shell runs as is looked up when the config is loaded: a user that does
//! not exist, or another user while the relay is not root (it could not switch), refuses
//! the config with what to change.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

/// One local shell, by id.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalShell {
    /// Used in URLs (`/ws/local/{id}`) and grants (`local = ["id"]`).
    pub id: String,
    /// Shown in the target picker; defaults to the id.
    #[serde(default)]
    pub label: Option<String>,
    /// The program to run. Default: the login shell of `user` (its passwd entry) when
    /// `user` is set, else the relay's `$SHELL`, else `/bin/sh`.
    #[serde(default)]
    pub command: Option<String>,
    /// Its arguments. Default none.
    #[serde(default)]
    pub args: Vec<String>,
    /// The folder it starts in. Default: the home folder of the user it runs as, or `/`
    /// when that is not a folder.
    #[serde(default)]
    pub working_dir: Option<PathBuf>,
    /// Extra environment variables. The program does NOT inherit the relay's environment
    /// (it may hold secrets such as `OPSDECK_JWT_SECRET`): it gets `PATH`, `HOME`, `USER`,
    /// `LOGNAME`, `SHELL`, `LANG` and `TERM=xterm-256color`, then these (which may
    /// replace them). Default none.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The Unix user (name) the program runs as, with that user's uid and primary group
    /// (no supplementary groups). Only a relay running as root can switch users; it is
    /// then strongly advised, or the shell is a root shell. Default: the relay's own user.
    #[serde(default)]
    pub user: Option<String>,
}

/// A Unix user a local shell runs as, from the passwd database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    /// The user's login shell (may be empty).
    pub shell: PathBuf,
}

impl LocalShell {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |what: String| {
            Err(ConfigError::Invalid(format!(
                "local shell {:?}: {what}",
                self.id
            )))
        };
        if self.id.is_empty() {
            return Err(ConfigError::Invalid(
                "local_shells: every local shell needs an id".into(),
            ));
        }
        if self.command.as_ref().is_some_and(|c| c.trim().is_empty()) {
            return invalid("command is empty; leave it out for the user's login shell".into());
        }
        let nul = |s: &str| s.contains('\0');
        if self.args.iter().any(|a| nul(a)) || self.command.as_deref().is_some_and(nul) {
            return invalid("command and args may not contain NUL characters".into());
        }
        for (key, value) in &self.env {
            if key.is_empty() || key.contains('=') || nul(key) || nul(value) {
                return invalid(format!(
                    "env key {key:?} is not a variable name (non-empty, without '=' or NUL)"
                ));
            }
        }
        self.run_as()?;
        Ok(())
    }

    /// The user the program runs as: `user` from the passwd database, or `None` for the
    /// relay's own user. Refused when `user` does not exist, or is another user while the
    /// relay is not root.
    pub fn run_as(&self) -> Result<Option<RunAs>, ConfigError> {
        let Some(name) = &self.user else {
            return Ok(None);
        };
        let invalid =
            |what: String| ConfigError::Invalid(format!("local shell {:?}: {what}", self.id));
        let user = nix::unistd::User::from_name(name)
            .map_err(|e| invalid(format!("cannot look up the Unix user {name:?}: {e}")))?
            .ok_or_else(|| {
                invalid(format!(
                    "the Unix user {name:?} does not exist on this machine; create it or change local_shells.user"
                ))
            })?;
        let relay = nix::unistd::geteuid();
        if !relay.is_root() && user.uid != relay {
            return Err(invalid(format!(
                "runs as the Unix user {name:?}, but the relay runs as uid {relay}, not root, and can only start programs as itself; leave user out or run the relay as root"
            )));
        }
        Ok(Some(RunAs {
            name: user.name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            home: user.dir,
            shell: user.shell,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(user: &str) -> LocalShell {
        LocalShell {
            id: "box".into(),
            label: None,
            command: None,
            args: Vec::new(),
            working_dir: None,
            env: BTreeMap::new(),
            user: Some(user.into()),
        }
    }

    #[test]
    fn a_user_that_does_not_exist_is_refused_with_its_name() {
        let err = shell("no-such-user-opsdeck").validate().unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("\"no-such-user-opsdeck\" does not exist"),
            "{text}"
        );
        assert!(text.contains("local shell \"box\""), "{text}");
    }

    #[test]
    fn the_relays_own_user_is_always_allowed() {
        let me = nix::unistd::User::from_uid(nix::unistd::geteuid())
            .unwrap()
            .expect("the test runs as a user with a passwd entry");
        let run_as = shell(&me.name).run_as().unwrap().unwrap();
        assert_eq!(run_as.uid, me.uid.as_raw());
    }

    #[test]
    fn env_keys_must_be_variable_names() {
        let mut bad = shell("root");
        bad.user = None;
        bad.env.insert("A=B".into(), "x".into());
        assert!(bad.validate().is_err());
    }
}
