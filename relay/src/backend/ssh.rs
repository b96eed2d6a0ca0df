//! SSH terminals through russh: an interactive PTY shell on a configured host.
//!
//! Host keys are checked against a known_hosts file; an unknown or changed key refuses
//! the connection with the fingerprint and what to do. The channel buffer is kept small so
//! that when the session stops reading, russh stops reading the socket and the SSH window
//! closes on the remote program instead of output piling up in the relay.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use common::TermSize;
use russh::client::{self, AuthResult, Handle};
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};

use super::{
    BackendError, ExitInfo, TerminalEvent, TerminalInput, TerminalOutput, TerminalStreams,
};
use crate::config::SshHost;

/// Messages russh may hold per channel before it stops reading the socket (each at most
/// one SSH packet, 32 KiB).
const CHANNEL_BUFFER: usize = 8;
/// SSH flow-control window offered to the server.
const WINDOW_BYTES: u32 = 1024 * 1024;

/// Connects, authenticates and starts a login shell in a PTY of `size`. Each step after
/// the connection (authentication, channel, PTY, shell) has `connect_timeout` too, so a
/// server that stops answering cannot hold the request.
pub async fn open(host: &SshHost, size: TermSize) -> Result<TerminalStreams, BackendError> {
    let handle = connect(host).await?;
    tokio::time::timeout(host.connect_timeout, start_shell(handle, host, size))
        .await
        .unwrap_or_else(|_| {
            Err(BackendError::Unreachable(format!(
                "SSH host {} stopped answering while the session was set up (within {} s)",
                host.id,
                host.connect_timeout.as_secs()
            )))
        })
}

/// An authenticated SSH connection to `host` (its host key checked as for a shell), for
/// channels other than a terminal (the SFTP subsystem, `backend/sftp.rs`).
pub(super) async fn login(host: &SshHost) -> Result<Handle<HostKeyCheck>, BackendError> {
    let mut handle = connect(host).await?;
    tokio::time::timeout(host.connect_timeout, authenticate(&mut handle, host))
        .await
        .unwrap_or_else(|_| {
            Err(BackendError::Unreachable(format!(
                "SSH host {} stopped answering while logging in (within {} s)",
                host.id,
                host.connect_timeout.as_secs()
            )))
        })?;
    Ok(handle)
}

/// russh's defaults, but AES-GCM before ChaCha20-Poly1305 where the CPU has AES
/// instructions: there both ends (sshd's OpenSSL, russh's ring) spend a fraction of
/// ChaCha20's time per byte, and a terminal's bulk output leaves that CPU to the rest of the
/// path (on the bench's two cores, to the browser drawing it). Both are AEAD ciphers
/// OpenSSH offers by default; which one is a matter of speed, not safety.
fn preferred_algorithms() -> russh::Preferred {
    if !hardware_aes() {
        return russh::Preferred::default();
    }
    let defaults = russh::Preferred::default();
    let gcm = [russh::cipher::AES_256_GCM, russh::cipher::AES_128_GCM];
    let ciphers: Vec<_> = gcm
        .into_iter()
        .chain(defaults.cipher.iter().copied().filter(|c| !gcm.contains(c)))
        .collect();
    russh::Preferred {
        cipher: ciphers.into(),
        ..defaults
    }
}

fn hardware_aes() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("aes")
        && std::arch::is_x86_feature_detected!("pclmulqdq");
    #[cfg(target_arch = "aarch64")]
    return std::arch::is_aarch64_feature_detected!("aes");
    #[allow(unreachable_code)]
    false
}

async fn connect(host: &SshHost) -> Result<Handle<HostKeyCheck>, BackendError> {
    let config = Arc::new(client::Config {
        channel_buffer_size: CHANNEL_BUFFER,
        window_size: WINDOW_BYTES,
        nodelay: true,
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 3,
        preferred: preferred_algorithms(),
        ..client::Config::default()
    });
    let checker = HostKeyCheck {
        address: host.address.clone(),
        port: host.port,
        known_hosts: known_hosts_path(host),
    };
    let target = format!("{}:{}", host.address, host.port);
    let connecting = client::connect(config, (host.address.as_str(), host.port), checker);
    let handle = match tokio::time::timeout(host.connect_timeout, connecting).await {
        Err(_) => {
            return Err(BackendError::Unreachable(format!(
                "SSH host {} ({target}) did not answer within {} s",
                host.id,
                host.connect_timeout.as_secs()
            )));
        }
        Ok(Err(ConnectError::HostKey(reason))) => return Err(BackendError::HostKey(reason)),
        // Nothing listens there: a reconnect in a loop would not change that.
        Ok(Err(ConnectError::Ssh(russh::Error::IO(e))))
            if e.kind() == std::io::ErrorKind::ConnectionRefused =>
        {
            return Err(BackendError::Refused(format!(
                "cannot reach SSH host {} ({target}): {e}; is sshd running there?",
                host.id
            )));
        }
        Ok(Err(ConnectError::Ssh(e))) => {
            return Err(BackendError::Unreachable(format!(
                "cannot reach SSH host {} ({target}): {e}",
                host.id
            )));
        }
        Ok(Ok(handle)) => handle,
    };
    Ok(handle)
}

async fn start_shell(
    mut handle: Handle<HostKeyCheck>,
    host: &SshHost,
    size: TermSize,
) -> Result<TerminalStreams, BackendError> {
    authenticate(&mut handle, host).await?;
    let failed = |e: russh::Error| {
        BackendError::Failed(format!("SSH host {} refused a shell: {e}", host.id))
    };
    let channel = handle.channel_open_session().await.map_err(failed)?;
    channel
        .request_pty(
            false,
            "xterm-256color",
            size.cols.into(),
            size.rows.into(),
            0,
            0,
            &[],
        )
        .await
        .map_err(failed)?;
    channel.request_shell(false).await.map_err(failed)?;
    let (read, write) = channel.split();
    Ok(TerminalStreams {
        output: Box::new(SshOutput {
            read,
            exit: ExitInfo::default(),
            host: host.id.clone(),
            _handle: handle,
        }),
        input: Box::new(SshInput { write }),
    })
}

async fn authenticate(
    handle: &mut Handle<HostKeyCheck>,
    host: &SshHost,
) -> Result<(), BackendError> {
    let who = format!("{}@{}", host.username, host.id);
    let failed =
        |e: russh::Error| BackendError::AuthFailed(format!("SSH login as {who} failed: {e}"));
    let result = if let Some(path) = &host.private_key_file {
        let passphrase = host
            .private_key_passphrase_env
            .as_ref()
            .and_then(|var| std::env::var(var).ok());
        let key = russh::keys::load_secret_key(path, passphrase.as_deref()).map_err(|e| {
            BackendError::Refused(format!(
                "cannot load the private key {} for {who}: {e}",
                path.display()
            ))
        })?;
        let hash: Option<HashAlg> = handle
            .best_supported_rsa_hash()
            .await
            .map_err(failed)?
            .flatten();
        handle
            .authenticate_publickey(
                &host.username,
                PrivateKeyWithHashAlg::new(Arc::new(key), hash),
            )
            .await
            .map_err(failed)?
    } else {
        let password = password(host, &who)?;
        handle
            .authenticate_password(&host.username, password)
            .await
            .map_err(failed)?
    };
    match result {
        AuthResult::Success => Ok(()),
        AuthResult::Failure { .. } => Err(BackendError::Refused(format!(
            "SSH host {} refused the credentials for user {}",
            host.id, host.username
        ))),
    }
}

fn password(host: &SshHost, who: &str) -> Result<String, BackendError> {
    if let Some(path) = &host.password_file {
        return std::fs::read_to_string(path)
            .map(|p| p.trim_end_matches(['\r', '\n']).to_owned())
            .map_err(|e| {
                BackendError::Refused(format!(
                    "cannot read the password file {} for {who}: {e}",
                    path.display()
                ))
            });
    }
    let var = host.password_env.as_deref().unwrap_or_default();
    std::env::var(var).map_err(|_| {
        BackendError::Refused(format!(
            "no password for {who}: set the environment variable {var}"
        ))
    })
}

fn known_hosts_path(host: &SshHost) -> PathBuf {
    host.known_hosts_file.clone().unwrap_or_else(|| {
        let home = std::env::var_os("HOME").unwrap_or_default();
        PathBuf::from(home).join(".ssh").join("known_hosts")
    })
}

/// Why an SSH connection did not come up: the host key refused (with what to do), or
/// anything russh says.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConnectError {
    #[error("{0}")]
    HostKey(String),
    #[error(transparent)]
    Ssh(#[from] russh::Error),
}

/// Verifies the server's host key against known_hosts; never accepts an unknown key. A
/// refusal travels as [`ConnectError::HostKey`], through `connect`'s own result.
pub(super) struct HostKeyCheck {
    address: String,
    port: u16,
    known_hosts: PathBuf,
}

impl client::Handler for HostKeyCheck {
    type Error = ConnectError;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = server_key else {
            return Err(refuse(format!(
                "{}:{} offered a host certificate; configure its plain host key in {}",
                self.address,
                self.port,
                self.known_hosts.display()
            )));
        };
        let fingerprint = key.fingerprint(HashAlg::Sha256);
        let where_ = format!("{}:{}", self.address, self.port);
        let reason = match russh::keys::check_known_hosts_path(
            &self.address,
            self.port,
            key,
            &self.known_hosts,
        ) {
            Ok(true) => return Ok(true),
            Ok(false) => format!(
                "host key of {where_} ({fingerprint}) is not in {}; verify it and add it there",
                self.known_hosts.display()
            ),
            Err(russh::keys::Error::KeyChanged { line }) => format!(
                "HOST KEY MISMATCH for {where_}: it now presents {fingerprint}, unlike line {line} of {}; someone may be intercepting the connection",
                self.known_hosts.display()
            ),
            Err(e) => format!(
                "cannot check the host key of {where_} against {}: {e}",
                self.known_hosts.display()
            ),
        };
        Err(refuse(reason))
    }
}

fn refuse(reason: String) -> ConnectError {
    tracing::warn!("{reason}");
    ConnectError::HostKey(reason)
}

struct SshOutput {
    read: ChannelReadHalf,
    exit: ExitInfo,
    host: String,
    /// Keeps the SSH connection open as long as its output is read.
    _handle: Handle<HostKeyCheck>,
}

#[async_trait]
impl TerminalOutput for SshOutput {
    async fn next(&mut self) -> TerminalEvent {
        loop {
            match self.read.wait().await {
                Some(ChannelMsg::Data { data }) | Some(ChannelMsg::ExtendedData { data, .. }) => {
                    return TerminalEvent::Output(data);
                }
                Some(ChannelMsg::ExitStatus { exit_status }) => {
                    self.exit.status = Some(i32::try_from(exit_status).unwrap_or(i32::MAX));
                }
                Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                    self.exit.signal = Some(format!("{signal_name:?}"));
                }
                Some(ChannelMsg::Close) => return TerminalEvent::Exited(self.exit.clone()),
                Some(_) => {}
                None if self.exit != ExitInfo::default() => {
                    return TerminalEvent::Exited(self.exit.clone());
                }
                None => {
                    return TerminalEvent::Failed(format!(
                        "the SSH connection to {} was lost",
                        self.host
                    ));
                }
            }
        }
    }
}

struct SshInput {
    write: ChannelWriteHalf<client::Msg>,
}

#[async_trait]
impl TerminalInput for SshInput {
    async fn write(&mut self, data: Bytes) -> Result<(), BackendError> {
        self.write
            .data_bytes(data)
            .await
            .map_err(|e| BackendError::Failed(format!("cannot write to the SSH channel: {e}")))
    }

    async fn resize(&mut self, size: TermSize) -> Result<(), BackendError> {
        self.write
            .window_change(size.cols.into(), size.rows.into(), 0, 0)
            .await
            .map_err(|e| BackendError::Failed(format!("cannot resize the SSH terminal: {e}")))
    }

    async fn close(&mut self) {
        let _ = self.write.eof().await;
        let _ = self.write.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_gcm_goes_first_only_with_aes_instructions_and_no_default_cipher_is_dropped() {
        let preferred = preferred_algorithms();
        let defaults = russh::Preferred::default();
        let first = preferred.cipher.first().copied();
        if hardware_aes() {
            assert_eq!(first, Some(russh::cipher::AES_256_GCM));
        } else {
            assert_eq!(first, defaults.cipher.first().copied());
        }
        for cipher in defaults.cipher.iter() {
            assert!(preferred.cipher.contains(cipher), "{cipher:?} was dropped");
        }
        assert_eq!(preferred.kex, defaults.kex);
    }
}
