//! The relay's configuration: typed, with documented defaults.
//!
//! Loaded from a TOML file (`--config` or `OPSDECK_CONFIG`); with neither, the embedded
//! demo configuration (`relay/default-config.toml`) is used. `config.example.toml` at the
//! repository root shows every option with its default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::origin::Origin;

mod k8s;
mod ldap;
mod local;
mod oidc;
mod transfers;
pub use k8s::{ClusterSource, ExplicitCredentials, K8sCluster, K8sConfig};
pub use ldap::LdapConfig;
pub use local::{LocalShell, RunAs};
pub use oidc::OidcProvider;
pub use transfers::{FileAccess, TransfersConfig};

/// The embedded demo configuration.
pub const DEFAULT_CONFIG: &str = include_str!("../default-config.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}; pass --config with a readable file")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {origin} is not valid: {source}")]
    Parse {
        origin: String,
        source: Box<toml::de::Error>,
    },
    #[error("config is not consistent: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the relay listens on. Default `127.0.0.1:8080`.
    #[serde(default = "defaults::listen")]
    pub listen: SocketAddr,
    /// Origins (scheme://host[:port]) whose pages may use the relay, besides the relay's own.
    /// A WebSocket or API request from any other Origin gets HTTP 403. Default: none.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// The relay's own public origins (scheme://host[:port]) as browsers reach it, e.g.
    /// `["https://console.example.com"]`. Requests naming another `Host` get HTTP 421 (a
    /// DNS-rebinding page cannot drive the relay), and a page is same-origin only when its
    /// `Origin` is one of these exactly (scheme included). Default: none, which accepts
    /// only loopback hosts (`localhost`, `127.0.0.1`, `[::1]`, any port): set this for any
    /// deployment reached by a name. `/healthz`, `/readyz` and `/metrics` accept any Host.
    #[serde(default)]
    pub public_origins: Vec<String>,
    /// Folder of the built browser app, served at `/`. Default `dist`; when it does not
    /// exist the relay runs API-only (the app is hosted elsewhere, e.g. on a CDN).
    #[serde(default = "defaults::static_dir")]
    pub static_dir: PathBuf,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub keepalive: Keepalive,
    #[serde(default)]
    pub sessions: Sessions,
    #[serde(default)]
    pub auth: AuthConfig,
    /// Group name → member user names.
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
    /// Who may open what; anything not granted here is denied.
    #[serde(default)]
    pub grants: Vec<Grant>,
    #[serde(default)]
    pub ssh_hosts: Vec<SshHost>,
    /// Shells on the relay's own machine, by id; `[[grants]] local = [...]` says who may
    /// open each (see `config/local.rs`).
    #[serde(default)]
    pub local_shells: Vec<LocalShell>,
    #[serde(default)]
    pub files: Vec<FileEntry>,
    /// Bounds on SFTP and pod file transfers (see `config/transfers.rs`).
    #[serde(default)]
    pub file_transfers: TransfersConfig,
    #[serde(default)]
    pub redis: Option<RedisConfig>,
    #[serde(default)]
    pub tail: TailConfig,
    /// Chat rooms, by id; `[[grants]] chat = [...]` says who may open each.
    #[serde(default)]
    pub chat_rooms: Vec<ChatRoom>,
    #[serde(default)]
    pub chat: ChatConfig,
    #[serde(default)]
    pub jobs: JobsConfig,
    /// Kubernetes clusters, by id; `[[grants]] k8s = ["cluster/namespace"]` says who may
    /// open what in each (see `config/k8s.rs`).
    #[serde(default)]
    pub k8s_clusters: Vec<K8sCluster>,
    #[serde(default)]
    pub k8s: K8sConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub shutdown: ShutdownConfig,
    /// Session recording (asciicast v2 files); without this section nothing is recorded.
    #[serde(default)]
    pub recording: Option<RecordingConfig>,
    #[serde(default)]
    pub audit: AuditConfig,
}

/// What a recorder that cannot write does (`recording.on_failure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnRecordingFailure {
    /// Fail closed: a session that cannot be recorded is refused (4502 with the reason),
    /// and one whose recording breaks is ended.
    Refuse,
    /// Fail open: the session goes on unrecorded, `opsdeck_recording_failures_total` counts
    /// it (alert on it).
    Continue,
}

/// Terminal sessions recorded as asciicast v2 files (`docs/ARCHITECTURE.md`, "Recording").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingConfig {
    /// Record every terminal session unless `targets` says otherwise. Default true.
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    /// Folder of the recordings, one file per session, named by its recording id. Created
    /// when missing.
    pub directory: PathBuf,
    /// Per target overrides of `enabled`: `"ssh:<host id>"` or `"k8s:<cluster id>"` (any
    /// terminal kind: `"<kind>:<id>"`) → true or false. Default none.
    #[serde(default)]
    pub targets: BTreeMap<String, bool>,
    /// Write `.cast.gz` files (gzip) instead of `.cast`. Default false.
    #[serde(default)]
    pub compress: bool,
    /// Recordings older than this are deleted. Default: kept whatever their age.
    #[serde(default, with = "humantime_serde")]
    pub max_age: Option<Duration>,
    /// When the recordings take more than this many bytes, the oldest are deleted.
    /// Default: no limit.
    #[serde(default)]
    pub max_total_bytes: Option<u64>,
    /// What happens when a recording cannot be written. Default `refuse` (fail closed).
    #[serde(default = "defaults::on_failure")]
    pub on_failure: OnRecordingFailure,
    /// Events (output reads, keystrokes, resizes) queued per session for its writer.
    /// When the queue is full, `refuse` makes the session wait (the remote program is
    /// slowed like a slow browser slows it; nothing goes unrecorded) and `continue` drops
    /// the events, counts them and writes a marker saying how many bytes were lost.
    /// Default 1024.
    #[serde(default = "defaults::recording_queue")]
    pub queue_events: usize,
    /// Users may list and download the recordings of their own sessions
    /// (`/api/recordings`), besides those granted `audit`, who see all. Default false.
    #[serde(default)]
    pub owners_read: bool,
}

impl RecordingConfig {
    /// Whether a session on `target` (e.g. `ssh:web-1`, `k8s:prod/...`) is recorded: the
    /// grants' say, else the override of its `<kind>:<id>` (for pods, the cluster), else
    /// `enabled`.
    /// `grant` is what the user's grants say (`Grant::record`), which comes first.
    pub fn records(&self, target: &str, grant: Option<bool>) -> bool {
        if let Some(grant) = grant {
            return grant;
        }
        let key = match target.split_once(':') {
            Some(("k8s", rest)) => format!("k8s:{}", rest.split('/').next().unwrap_or("")),
            _ => target.to_owned(),
        };
        self.targets.get(&key).copied().unwrap_or(self.enabled)
    }
}

/// The audit trail: security events as JSON lines (`GET /api/audit` reads them).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// The JSON-lines file events are appended to (and `GET /api/audit` reads, without
    /// Redis). Default none: events go to the relay's log only (target `opsdeck::audit`),
    /// so no relay writes a trail into whatever folder it was started in.
    pub file: Option<PathBuf>,
    /// With `[redis]`, events are also added to this stream (capped at `redis_max_len`),
    /// so several relays share one trail. Default `opsdeck:audit`; empty: not sent.
    pub redis_stream: String,
    /// Approximate length the Redis stream is capped at. Default 1000000.
    pub redis_max_len: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            file: None,
            redis_stream: "opsdeck:audit".into(),
            redis_max_len: 1_000_000,
        }
    }
}

/// Who may read `GET /metrics`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// A bearer token scrapers send (`Authorization: Bearer <token>`) to read metrics from
    /// another machine. Default empty: only loopback clients may read them.
    pub token: String,
}

/// How the relay stops on SIGTERM: `/readyz` answers 503 at once; after `drain_delay`
/// it takes no new connections; open terminal sessions go on until their programs end or
/// `drain_timeout` passes; then every stream is closed with 1001 ("reconnect"). A second
/// SIGTERM, or Ctrl-C, stops at once.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// How long everything still works while `/readyz` says 503, so load balancers stop
    /// sending new users first. Default 5s.
    #[serde(with = "humantime_serde")]
    pub drain_delay: Duration,
    /// How long open terminal sessions may go on after that (a running command finishes).
    /// Default 0s: they are closed at once.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            drain_delay: Duration::from_secs(5),
            drain_timeout: Duration::ZERO,
        }
    }
}

/// Bounds on what any one client can make the relay hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest WebSocket frame accepted from a browser; larger ones get an error frame.
    /// Default 1 MiB.
    pub max_frame_bytes: usize,
    /// Terminal output kept per session for replay on reconnect. Default 2 MiB: twice the
    /// flow window (`common::FLOW_WINDOW`), so a flow-controlled terminal has the next
    /// window's output already read when an acknowledgement opens it.
    pub terminal_buffer_bytes: usize,
    /// Open terminal sessions per user (attached or in their grace period). Default 32.
    pub max_sessions_per_user: usize,
    /// Concurrent WebSocket connections per relay. Default 20000.
    pub max_connections: usize,
    /// TCP connections served at once before they become WebSockets (page loads, API
    /// calls, handshakes); more wait in the kernel's backlog. Default 1024.
    pub max_pending_connections: usize,
    /// Time a client has to send a request's head, and that an idle keep-alive connection
    /// stays open. Default 10s.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
}

/// Keeping idle WebSockets alive through proxies, and noticing dead peers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Keepalive {
    /// How often the relay pings each WebSocket; below common proxy idle timeouts
    /// (nginx: 60 s). Default 25 s.
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    /// A peer that sends nothing (not even a pong) for this long is dropped. Default 60 s.
    #[serde(with = "humantime_serde")]
    pub peer_timeout: Duration,
}

/// Terminal sessions outlive their WebSocket for a while, so a network blip loses nothing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sessions {
    /// How long a session without a WebSocket stays alive for a reconnect. Default 60 s.
    #[serde(with = "humantime_serde")]
    pub grace_period: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Lifetime of tokens minted by `POST /api/login`. Default 12 h.
    #[serde(with = "humantime_serde")]
    pub token_ttl: Duration,
    /// HS256 secret for minting and checking tokens. When empty, `OPSDECK_JWT_SECRET` is
    /// used; when that is unset too, a random secret is made at start (tokens then do not
    /// survive a restart and are not shared between relays).
    pub jwt_secret: String,
    /// PEM file of an RSA public key: RS256 tokens signed by its private key (e.g. minted by
    /// an existing app) are accepted too.
    pub jwt_public_key_file: Option<PathBuf>,
    /// Mark the login cookie `Secure` (sent over HTTPS only). Default true; set false only
    /// for plain-HTTP development.
    pub cookie_secure: bool,
    /// The login cookie's SameSite: "Strict" (default), "Lax" or "None" (cross-site app
    /// hosting; requires cookie_secure).
    pub cookie_same_site: String,
    /// Built-in users.
    pub users: Vec<User>,
    /// Whether the built-in users may log in. Default true; false switches them off
    /// entirely (their tokens stop working too), for a relay that logs in through the
    /// directory (`[auth.ldap]`) only.
    pub local_users: bool,
    /// Logins checked against an LDAP directory (`config/ldap.rs`); off when absent.
    pub ldap: Option<LdapConfig>,
    /// Login throttling (`POST /api/login`).
    pub login_limits: LoginLimits,
    /// Tokens minted by another system (an existing app, an IdP).
    pub external_tokens: ExternalTokens,
    /// Where the browser lands after a single sign-on, and whose `#/login?sso_error=`
    /// shows a refused one. Default `/` (the app served by this relay).
    pub app_url: String,
    /// OpenID Connect providers (`[[auth.oidc]]`, see `config/oidc.rs`).
    pub oidc: Vec<OidcProvider>,
}

/// How far tokens that this relay did not mint are trusted. Such a token names a user
/// `ext:<its username or id>`, apart from the configured users: grants and groups name
/// it that way (e.g. `users = ["ext:42"]`), so an outside user called `alice` never gets
/// the local alice's rights or sessions.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExternalTokens {
    /// The `iss` such tokens must carry. Default none: not checked (simplejwt sets none).
    pub issuer: Option<String>,
    /// The `aud` such tokens must carry (one of). Default none: not checked.
    pub audience: Option<String>,
    /// Groups a token's `groups` claim may grant; others it names are ignored. Default
    /// none: the claim is ignored, and groups come from `[groups]` only.
    pub trusted_group_claims: Vec<String>,
}

/// How many login attempts are answered before 429 (with `Retry-After`): a budget per
/// source address, and one per user name and source address, so guessing one user's
/// password is slow while the real user, from their own address, still gets in.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginLimits {
    /// Attempts one source address may make at once. Default 30.
    pub per_source_burst: u32,
    /// Attempts per minute it regains. Default 30.
    pub per_source_per_minute: u32,
    /// Attempts at one user name from one source address at once. Default 5.
    pub per_user_burst: u32,
    /// Attempts per minute regained for it. Default 5.
    pub per_user_per_minute: u32,
    /// How long a login may wait for one of the password checks running at once (argon2
    /// is deliberately slow) before 503. Default 5 s.
    #[serde(with = "humantime_serde")]
    pub queue_timeout: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            per_source_burst: 30,
            per_source_per_minute: 30,
            per_user_burst: 5,
            per_user_per_minute: 5,
            queue_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub username: String,
    /// An argon2 PHC string (`$argon2id$...`), e.g. from `opsdeck-relay hash-password`.
    pub password_hash: String,
    /// Extra groups, besides those listing this user in `[groups]`.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// One permission rule: the subjects it applies to and the targets they may open.
/// `"*"` in a target list matches every id.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// SSH host ids.
    #[serde(default)]
    pub ssh: Vec<String>,
    /// Kubernetes `cluster/namespace` pairs (`cluster/*` for all of a cluster's).
    #[serde(default)]
    pub k8s: Vec<String>,
    /// Local shell ids (`[[local_shells]]`).
    #[serde(default)]
    pub local: Vec<String>,
    /// File ids (`[[files]]` tails).
    #[serde(default)]
    pub files: Vec<String>,
    /// Files on this grant's `ssh` hosts (SFTP) and in the pods of its `k8s` namespaces:
    /// `"none"` (default), `"read"` (list, download) or `"write"` (also upload, mkdir,
    /// rename, delete). The widest of the grants that apply wins.
    #[serde(default)]
    pub file_access: FileAccess,
    /// Chat room ids.
    #[serde(default)]
    pub chat: Vec<String>,
    /// Job output streams.
    #[serde(default)]
    pub jobs: bool,
    /// Running terminal sessions these users may watch read-only (`/ws/watch/{session}`):
    /// `"ssh:<host id>"`, `"k8s:<cluster>/<namespace>"` (`*` for any id or namespace, e.g.
    /// `"ssh:*"`, `"k8s:prod/*"`), or `"*"` for every one.
    #[serde(default)]
    pub watch: Vec<String>,
    /// The audit trail (`GET /api/audit`), every recording (`/api/recordings`) and every
    /// running session (watching).
    #[serde(default)]
    pub audit: bool,
    /// Whether the terminal sessions this grant opens are recorded, over
    /// `recording.targets` and `recording.enabled` (with a `[recording]` section). When
    /// several grants that open a session say, true wins. Default: unset.
    #[serde(default)]
    pub record: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshHost {
    pub id: String,
    /// Shown in the target picker; defaults to the id.
    #[serde(default)]
    pub label: Option<String>,
    pub address: String,
    #[serde(default = "defaults::ssh_port")]
    pub port: u16,
    pub username: String,
    /// Private key file (OpenSSH format).
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
    /// Name of an environment variable holding the key's passphrase, if it has one.
    #[serde(default)]
    pub private_key_passphrase_env: Option<String>,
    /// Name of an environment variable holding the password (never the password itself,
    /// so config files can be shared).
    #[serde(default)]
    pub password_env: Option<String>,
    /// A file holding the password (e.g. a mounted secret), as an alternative to
    /// `password_env`.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// known_hosts file the host key is checked against. Default `~/.ssh/known_hosts`.
    /// An unknown or changed key refuses the connection.
    #[serde(default)]
    pub known_hosts_file: Option<PathBuf>,
    /// Give up connecting after this long. Default 10 s.
    #[serde(default = "defaults::connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub id: String,
    #[serde(default)]
    pub label: Option<String>,
    pub path: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// e.g. `redis://127.0.0.1:6379/0`.
    pub url: String,
}

/// Live file tails (`/ws/tail/{file_id}`): one reader per file, shared by its viewers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TailConfig {
    /// Lines sent on connect when the client gives no `?lines=`. Default 100.
    pub default_lines: usize,
    /// Most lines a client may ask for with `?lines=` (larger asks are cut to it); also how
    /// many recent lines each reader keeps for viewers that join late or resume. Default 10000.
    pub max_lines: usize,
    /// Bytes of recent lines each reader keeps, whichever of this and `max_lines` is reached
    /// first. Default 16 MiB.
    pub ring_bytes: usize,
    /// Lines longer than this many bytes are cut, with a marker saying how long they were.
    /// Default 64 KiB.
    pub max_line_bytes: usize,
    /// Batches of lines queued for each viewer. A viewer further behind than this skips ahead
    /// and is told how many lines it missed (a `dropped` frame). Default 64.
    pub viewer_queue: usize,
    /// How long a reader outlives its last viewer, so that a quick reconnect resumes it.
    /// Default 10 s.
    #[serde(with = "humantime_serde")]
    pub linger: Duration,
    /// After the followed path is renamed, deleted or replaced (logrotate's `create`, a
    /// re-pointed symlink), the reader keeps reading the old file through its open
    /// descriptor until nothing has been written to it for this long, so the lines an
    /// application writes before it reopens its log are not lost (like fluent-bit's
    /// `Rotate_Wait`). 0 closes the old file as soon as the new one is seen. Default 5 s.
    #[serde(with = "humantime_serde")]
    pub rotate_wait: Duration,
    /// How often a reader checks its file even when inotify reported nothing: a backstop
    /// for wake-ups that never come (a queue overflow, a folder that cannot be watched, a
    /// rotated file moved to another folder). Without inotify the check runs at least every
    /// second. Default 2 s.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
}

/// A chat room.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatRoom {
    pub id: String,
    /// Shown in the target picker; defaults to the id.
    #[serde(default)]
    pub label: Option<String>,
}

/// Chat rooms (`/ws/chat/{room}`): in memory on one relay, or in Redis streams shared by
/// every relay when `[redis]` is configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChatConfig {
    /// Largest message text, in bytes; larger ones are refused with an error frame.
    /// Default 4096.
    pub max_message_bytes: usize,
    /// Messages a user may post at once before the rate limit applies. Default 10.
    pub rate_burst: u32,
    /// One more message is allowed per this interval, up to `rate_burst`. Default 1 s.
    #[serde(with = "humantime_serde")]
    pub rate_interval: Duration,
    /// Messages kept per room for clients that reconnect (`?since=`): the in-memory ring's
    /// size, and the Redis stream's approximate `MAXLEN`. Default 10000.
    pub history: usize,
    /// With Redis, messages older than this are trimmed too (`MINID`). Default: none.
    #[serde(default, with = "humantime_serde")]
    pub max_age: Option<Duration>,
    /// Prefix of the Redis keys: `<prefix><room>` is the room's stream,
    /// `<prefix><room>:presence` its presence set. Default `opsdeck:chat:`.
    pub key_prefix: String,
    /// With Redis, a relay's presence entries expire this long after it last refreshed
    /// them (a relay that dies stops counting as present). Default 30 s.
    #[serde(with = "humantime_serde")]
    pub presence_ttl: Duration,
    /// How long a message sent with a `client_id` is remembered, so that sending it again
    /// (after a reconnect, through another relay, after a restart) stores nothing and is
    /// acknowledged with the first id. With Redis: the expiry of
    /// `<prefix><room>:sent:<uid>:<client_id>`. In memory the last [`MEMORY_DEDUPE_IDS`]
    /// ids per room are remembered, for at most as long. Default 24 h.
    #[serde(with = "humantime_serde")]
    pub dedupe_ttl: Duration,
}

/// Client ids remembered per room by a relay without Redis (see [`ChatConfig::dedupe_ttl`]).
pub const MEMORY_DEDUPE_IDS: usize = 4096;

/// Job output (`/ws/exec/{token}`), written into Redis by another system.
///
/// The producer either pushes entries onto a list (`LPUSH`, the classic form; the relay
/// takes them oldest first as `BRPOP` would and moves each into the stream), or adds them to
/// the stream itself (`XADD <stream_key> * data <text>`). The output ends with a list entry
/// `<end_marker> <status>` or a stream entry with an `exit` field (`XADD ... exit 0`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// The list key; `{token}` is replaced by the job token. Default `opsdeck:job:{token}`.
    pub list_key: String,
    /// The stream key; `{token}` is replaced by the job token. Default
    /// `opsdeck:job:{token}:stream`.
    pub stream_key: String,
    /// A list entry starting with this marks the end of the output; the rest of the entry
    /// is the exit status. Default `__OPSDECK_EXIT__`.
    pub end_marker: String,
    /// How long the stream is kept once the output has ended (at most: a shorter expiry
    /// the producer set stays). Default 1 h.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Shortest job token accepted. A token is a bearer capability: anyone with the jobs
    /// grant who knows it reads the output, so a short one can be guessed. Shorter tokens
    /// are refused (4400, "the job token is too short ...") and never logged in full. At
    /// least [`JobsConfig::MIN_TOKEN_FLOOR`]; default 16 (use 32 random hex digits).
    pub min_token_length: usize,
    /// Entries a job's stream keeps: the relay adds list entries with `XADD ... MAXLEN ~ N`
    /// and trims a stream the producer writes itself (`XTRIM MAXLEN ~ N`) when it sees new
    /// output there. Older output is dropped; a viewer that had not read it gets a `gap`
    /// frame. Default 100 000.
    pub max_entries: u64,
    /// An unfinished job's stream expires this long after the relay last added to it (list
    /// form) or saw output in it (stream form, while someone watches), so a job that never
    /// writes its end marker does not stay in Redis for ever. Its end sets the expiry to
    /// `retention` instead. Default 24 h.
    #[serde(with = "humantime_serde")]
    pub idle_ttl: Duration,
}

impl JobsConfig {
    /// The lowest `min_token_length` a config may set.
    pub const MIN_TOKEN_FLOOR: usize = 8;
    /// Longest job token.
    pub const MAX_TOKEN_LENGTH: usize = 128;
}

mod defaults {
    use super::*;

    pub fn listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 8080))
    }
    pub fn static_dir() -> PathBuf {
        PathBuf::from("dist")
    }
    pub fn ssh_port() -> u16 {
        22
    }
    pub fn connect_timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub fn yes() -> bool {
        true
    }
    pub fn on_failure() -> OnRecordingFailure {
        OnRecordingFailure::Refuse
    }
    pub fn recording_queue() -> usize {
        1024
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 1024 * 1024,
            terminal_buffer_bytes: 2 * 1024 * 1024,
            max_sessions_per_user: 32,
            max_connections: 20_000,
            max_pending_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

impl Default for TailConfig {
    fn default() -> Self {
        Self {
            default_lines: 100,
            max_lines: 10_000,
            ring_bytes: 16 * 1024 * 1024,
            max_line_bytes: 64 * 1024,
            viewer_queue: 64,
            linger: Duration::from_secs(10),
            rotate_wait: Duration::from_secs(5),
            poll_interval: Duration::from_secs(2),
        }
    }
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 4096,
            rate_burst: 10,
            rate_interval: Duration::from_secs(1),
            history: 10_000,
            max_age: None,
            key_prefix: "opsdeck:chat:".into(),
            presence_ttl: Duration::from_secs(30),
            dedupe_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            list_key: "opsdeck:job:{token}".into(),
            stream_key: "opsdeck:job:{token}:stream".into(),
            end_marker: "__OPSDECK_EXIT__".into(),
            retention: Duration::from_secs(3600),
            min_token_length: 16,
            max_entries: 100_000,
            idle_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

impl Default for Keepalive {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(25),
            peer_timeout: Duration::from_secs(60),
        }
    }
}

impl Default for Sessions {
    fn default() -> Self {
        Self {
            grace_period: Duration::from_secs(60),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            token_ttl: Duration::from_secs(12 * 3600),
            jwt_secret: String::new(),
            jwt_public_key_file: None,
            cookie_secure: true,
            cookie_same_site: "Strict".into(),
            users: Vec::new(),
            local_users: true,
            ldap: None,
            login_limits: LoginLimits::default(),
            external_tokens: ExternalTokens::default(),
            app_url: "/".into(),
            oidc: Vec::new(),
        }
    }
}

impl Config {
    /// Parses and checks a configuration; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|source| ConfigError::Parse {
            origin: origin.to_owned(),
            source: Box::new(source),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads a config file. Unlike the embedded demo, a file may not give a user the
    /// demo's password hash (its password is `demo`): copies of it must not go live.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config = Self::from_toml(&text, &path.display().to_string())?;
        let demo = Self::embedded_default();
        let demo_hashes: Vec<&str> = demo
            .auth
            .users
            .iter()
            .map(|u| u.password_hash.as_str())
            .collect();
        if let Some(user) = config
            .auth
            .users
            .iter()
            .find(|u| demo_hashes.contains(&u.password_hash.as_str()))
        {
            return Err(ConfigError::Invalid(format!(
                "user {:?} in {} has the demo configuration's password hash (password \"demo\"); set a real one: echo -n 'password' | opsdeck-relay hash-password",
                user.username,
                path.display()
            )));
        }
        Ok(config)
    }

    pub fn embedded_default() -> Self {
        // The embedded file is checked by a unit test, so this cannot fail in a release.
        Self::from_toml(DEFAULT_CONFIG, "embedded default").expect("embedded config is valid")
    }

    /// Weak settings that are valid but probably not what the operator wants; printed by
    /// `check-config` and logged at start. (The demo's password hash in a config file is
    /// not a warning: `load` refuses it.)
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let secret = if self.auth.jwt_secret.is_empty() {
            std::env::var("OPSDECK_JWT_SECRET").unwrap_or_default()
        } else {
            self.auth.jwt_secret.clone()
        };
        if !secret.is_empty() && secret.len() < 32 {
            warnings.push(format!(
                "auth.jwt_secret is {} bytes; use at least 32 random bytes (openssl rand -base64 48)",
                secret.len()
            ));
        }
        if self.auth.cookie_secure
            && !self.listen.ip().is_loopback()
            && self.public_origins.iter().all(|o| o.starts_with("http://"))
        {
            warnings.push(format!(
                "auth.cookie_secure is on and the relay listens on {} over plain HTTP: browsers drop Secure cookies there, so logins seem to work and then fall back to the login page. Serve it over HTTPS (a TLS proxy, listed in public_origins as https://...) or set cookie_secure = false for plain-HTTP development",
                self.listen
            ));
        }
        let ring = self.limits.terminal_buffer_bytes as u64;
        if ring <= common::FLOW_WINDOW {
            warnings.push(format!(
                "limits.terminal_buffer_bytes is {ring}, not more than the flow window ({} bytes): flow-controlled terminals (the browser app) wait for the remote program after each acknowledgement, and a browser acknowledging every quarter window stalls when it is below {}; use at least {} (the default)",
                common::FLOW_WINDOW,
                common::FLOW_WINDOW / 4 + 64 * 1024,
                2 * common::FLOW_WINDOW
            ));
        }
        warnings.extend(self.auth_warnings());
        if nix::unistd::geteuid().is_root() {
            for shell in self.local_shells.iter().filter(|s| s.user.is_none()) {
                warnings.push(format!(
                    "local shell {:?} runs as root (the relay's user): set local_shells.user to a less powerful Unix user",
                    shell.id
                ));
            }
        }
        let dir = &self.static_dir;
        if dir.is_dir() && !dir.join("csp.txt").is_file() {
            warnings.push(format!(
                "{} has no csp.txt: the browser app is served without a Content-Security-Policy (build it with trunk, whose post-build hook writes it)",
                dir.display()
            ));
        }
        warnings
    }

    /// Warnings about who can log in and how passwords travel to the directory.
    fn auth_warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let auth = &self.auth;
        if !auth.local_users && !auth.users.is_empty() {
            warnings
                .push("auth.local_users is false: the [[auth.users]] entries cannot log in".into());
        }
        if !auth.local_users && auth.ldap.is_none() && auth.oidc.is_empty() {
            warnings.push(
                "auth.local_users is false and neither [auth.ldap] nor [[auth.oidc]] is set: nobody can log in".into(),
            );
        }
        if let Some(ldap) = &auth.ldap {
            let loopback = url::Url::parse(&ldap.url)
                .ok()
                .is_some_and(|u| match u.host() {
                    Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                    Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                    Some(url::Host::Domain(name)) => name == "localhost",
                    None => false,
                });
            if !ldap.encrypted() && !loopback {
                warnings.push(format!(
                    "auth.ldap.starttls is false on {}: users' passwords and the service password travel in clear; use StartTLS or ldaps://",
                    ldap.url
                ));
            }
        }
        warnings
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |msg: String| Err(ConfigError::Invalid(msg));
        for origin in &self.public_origins {
            if Origin::parse(origin).is_none() {
                return invalid(format!(
                    "public_origins: {origin:?} is not an origin; write scheme://host[:port], e.g. \"https://console.example.com\""
                ));
            }
        }
        if self.limits.terminal_buffer_bytes < 64 * 1024 {
            return invalid("limits.terminal_buffer_bytes must be at least 65536".into());
        }
        if self.limits.max_frame_bytes < 1024 {
            return invalid("limits.max_frame_bytes must be at least 1024".into());
        }
        if self.keepalive.ping_interval.is_zero()
            || self.keepalive.peer_timeout <= self.keepalive.ping_interval
        {
            return invalid(
                "keepalive.peer_timeout must be longer than keepalive.ping_interval (> 0)".into(),
            );
        }
        if !matches!(
            self.auth.cookie_same_site.as_str(),
            "Strict" | "Lax" | "None"
        ) {
            return invalid("auth.cookie_same_site must be Strict, Lax or None".into());
        }
        if self.auth.cookie_same_site == "None" && !self.auth.cookie_secure {
            return invalid(
                "auth.cookie_same_site = \"None\" requires cookie_secure = true".into(),
            );
        }
        check_unique("ssh_hosts", self.ssh_hosts.iter().map(|h| &h.id))?;
        check_unique("local_shells", self.local_shells.iter().map(|s| &s.id))?;
        self.local_shells
            .iter()
            .try_for_each(LocalShell::validate)?;
        check_unique("files", self.files.iter().map(|f| &f.id))?;
        check_unique("chat_rooms", self.chat_rooms.iter().map(|r| &r.id))?;
        self.validate_streams()?;
        check_unique("k8s_clusters", self.k8s_clusters.iter().map(|c| &c.id))?;
        self.k8s_clusters
            .iter()
            .try_for_each(K8sCluster::validate)?;
        self.k8s.validate()?;
        check_unique("auth.users", self.auth.users.iter().map(|u| &u.username))?;
        check_unique("auth.oidc", self.auth.oidc.iter().map(|p| &p.id))?;
        self.auth.oidc.iter().try_for_each(OidcProvider::validate)?;
        if let Some((user, provider)) = self.auth.users.iter().find_map(|u| {
            let prefix = u.username.split_once(':')?.0;
            self.auth
                .oidc
                .iter()
                .find(|p| p.id == prefix)
                .map(|p| (&u.username, &p.id))
        }) {
            return invalid(format!(
                "auth.users {user:?} is named like a user of the provider {provider:?} (\"{provider}:<name>\"); rename it"
            ));
        }
        if let Some(recording) = &self.recording {
            if recording.directory.as_os_str().is_empty() || recording.queue_events == 0 {
                return invalid(
                    "recording.directory must be set and recording.queue_events be at least 1"
                        .into(),
                );
            }
            if let Some(key) = recording.targets.keys().find(|k| !k.contains(':')) {
                return invalid(format!(
                    "recording.targets: {key:?} is not a target; write \"ssh:<host id>\", \"local:<shell id>\" or \"k8s:<cluster id>\""
                ));
            }
        }
        if let Some(ldap) = &self.auth.ldap {
            ldap.validate()?;
        }
        for host in &self.ssh_hosts {
            let methods = [
                host.private_key_file.is_some(),
                host.password_env.is_some(),
                host.password_file.is_some(),
            ];
            if methods.iter().filter(|m| **m).count() != 1 {
                return invalid(format!(
                    "ssh host {:?} needs exactly one of private_key_file, password_env or password_file",
                    host.id
                ));
            }
        }
        Ok(())
    }

    /// Checks of `[tail]`, `[chat]` and `[jobs]`.
    fn validate_streams(&self) -> Result<(), ConfigError> {
        let invalid = |msg: &str| Err(ConfigError::Invalid(msg.to_owned()));
        let tail = &self.tail;
        if tail.max_lines == 0 || tail.default_lines > tail.max_lines {
            return invalid("tail.default_lines must be at most tail.max_lines (> 0)");
        }
        if tail.max_line_bytes < 256 || tail.ring_bytes < tail.max_line_bytes {
            return invalid("tail.max_line_bytes must be >= 256 and <= tail.ring_bytes");
        }
        if tail.viewer_queue == 0 {
            return invalid("tail.viewer_queue must be at least 1");
        }
        if tail.poll_interval < Duration::from_millis(10) {
            return invalid("tail.poll_interval must be at least 10ms");
        }
        let chat = &self.chat;
        if chat.max_message_bytes == 0 || chat.rate_burst == 0 || chat.rate_interval.is_zero() {
            return invalid(
                "chat.max_message_bytes, chat.rate_burst and chat.rate_interval must be > 0",
            );
        }
        if chat.history == 0
            || chat.key_prefix.is_empty()
            || chat.presence_ttl.is_zero()
            || chat.dedupe_ttl.as_secs() == 0
        {
            return invalid(
                "chat.history, chat.key_prefix and chat.presence_ttl must be set, and chat.dedupe_ttl at least 1s",
            );
        }
        let jobs = &self.jobs;
        if !jobs.list_key.contains("{token}") || !jobs.stream_key.contains("{token}") {
            return invalid("jobs.list_key and jobs.stream_key must contain {token}");
        }
        if jobs.list_key == jobs.stream_key || jobs.end_marker.is_empty() {
            return invalid(
                "jobs.list_key and jobs.stream_key must differ; jobs.end_marker must be set",
            );
        }
        let (floor, longest) = (JobsConfig::MIN_TOKEN_FLOOR, JobsConfig::MAX_TOKEN_LENGTH);
        if !(floor..=longest).contains(&jobs.min_token_length) {
            return Err(ConfigError::Invalid(format!(
                "jobs.min_token_length is {}: it must be between {floor} and {longest} \
                 (shorter job tokens can be guessed; 32 random hex digits are a good choice)",
                jobs.min_token_length
            )));
        }
        if jobs.max_entries == 0 || jobs.retention.as_secs() == 0 || jobs.idle_ttl.as_secs() == 0 {
            return invalid(
                "jobs.max_entries must be at least 1; jobs.retention and jobs.idle_ttl at least 1 s",
            );
        }
        Ok(())
    }

    /// Reads every OpenID Connect provider's client secret (`check-config`, and at start):
    /// a missing variable or unreadable file is an error.
    pub fn check_secrets(&self) -> Result<(), ConfigError> {
        self.auth
            .oidc
            .iter()
            .try_for_each(|p| p.client_secret().map(drop))
    }

    pub fn oidc_provider(&self, id: &str) -> Option<&OidcProvider> {
        self.auth.oidc.iter().find(|p| p.id == id)
    }

    pub fn chat_room(&self, id: &str) -> Option<&ChatRoom> {
        self.chat_rooms.iter().find(|r| r.id == id)
    }

    pub fn ssh_host(&self, id: &str) -> Option<&SshHost> {
        self.ssh_hosts.iter().find(|h| h.id == id)
    }

    pub fn local_shell(&self, id: &str) -> Option<&LocalShell> {
        self.local_shells.iter().find(|s| s.id == id)
    }

    pub fn k8s_cluster(&self, id: &str) -> Option<&K8sCluster> {
        self.k8s_clusters.iter().find(|c| c.id == id)
    }

    pub fn file(&self, id: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.id == id)
    }
}

fn check_unique<'a>(
    section: &str,
    ids: impl Iterator<Item = &'a String>,
) -> Result<(), ConfigError> {
    let mut seen = std::collections::HashSet::new();
    for id in ids {
        if !seen.insert(id) {
            return Err(ConfigError::Invalid(format!(
                "{section}: id {id:?} appears twice"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid() {
        let config = Config::embedded_default();
        assert!(!config.auth.users.is_empty());
        // What works on a fresh machine: a local shell, a log, a chat room; nothing that
        // needs a server of its own (sshd, Redis, a cluster).
        assert!(!config.local_shells.is_empty());
        assert!(!config.files.is_empty());
        assert!(!config.chat_rooms.is_empty());
        assert!(config.ssh_hosts.is_empty() && config.k8s_clusters.is_empty());
        assert!(config.redis.is_none() && config.grants.iter().all(|g| !g.jobs));
    }

    #[test]
    fn example_config_is_valid() {
        let text = include_str!("../../config.example.toml");
        Config::from_toml(text, "config.example.toml").unwrap();
    }

    #[test]
    fn unknown_options_are_refused_with_their_name() {
        let err = Config::from_toml("listn = \"0.0.0.0:1\"", "test").unwrap_err();
        assert!(err.to_string().contains("listn"), "{err}");
    }

    #[test]
    fn job_tokens_have_a_minimum_length_of_at_least_eight() {
        assert_eq!(Config::embedded_default().jobs.min_token_length, 16);
        let err = Config::from_toml("[jobs]\nmin_token_length = 4", "test").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("jobs.min_token_length is 4"), "{text}");
        assert!(text.contains("between 8 and 128"), "{text}");
        let config = Config::from_toml("[jobs]\nmin_token_length = 8", "test").unwrap();
        assert_eq!(config.jobs.min_token_length, 8);
        assert!(Config::from_toml("[jobs]\nmax_entries = 0", "test").is_err());
    }

    #[test]
    fn durations_read_as_human_text() {
        let config = Config::from_toml("[sessions]\ngrace_period = \"5s\"", "test").unwrap();
        assert_eq!(config.sessions.grace_period, Duration::from_secs(5));
    }

    #[test]
    fn tail_rotate_wait_and_poll_interval_have_defaults_and_a_floor() {
        let config = Config::from_toml("", "test").unwrap();
        assert_eq!(config.tail.rotate_wait, Duration::from_secs(5));
        assert_eq!(config.tail.poll_interval, Duration::from_secs(2));
        let text = "[tail]\nrotate_wait = \"0s\"\npoll_interval = \"250ms\"";
        let config = Config::from_toml(text, "test").unwrap();
        assert_eq!(config.tail.rotate_wait, Duration::ZERO);
        assert_eq!(config.tail.poll_interval, Duration::from_millis(250));
        let err = Config::from_toml("[tail]\npoll_interval = \"0s\"", "test").unwrap_err();
        assert!(err.to_string().contains("tail.poll_interval"), "{err}");
    }

    #[test]
    fn a_ring_not_larger_than_the_flow_window_is_warned_about() {
        let default = Config::from_toml("", "test").unwrap();
        assert!(
            !default
                .warnings()
                .iter()
                .any(|w| w.contains("terminal_buffer_bytes")),
            "{:?}",
            default.warnings()
        );
        let text = "[limits]\nterminal_buffer_bytes = 1048576";
        let small = Config::from_toml(text, "test").unwrap();
        assert!(
            small
                .warnings()
                .iter()
                .any(|w| w.contains("terminal_buffer_bytes is 1048576")),
            "{:?}",
            small.warnings()
        );
    }
}
