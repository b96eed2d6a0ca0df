//! The relay's decoders of untrusted text, each as one call, for the fuzz targets in
//! `fuzz/` and the replay of their corpora in `relay/tests/fuzz_corpus.rs`. Nothing here
//! may panic, whatever the input; each returns whether the input was accepted.
//!
//! The wire's own decoders (frames, queries) are `common`'s and are fuzzed directly.

use std::sync::OnceLock;

use crate::auth::Authenticator;
use crate::backend::k8s::position::LogPosition;
use crate::backend::stream_id::StreamId;
use crate::config::Config;

/// A chat or job position (`<ms>-<seq>`).
pub fn stream_id(text: &str) -> bool {
    text.parse::<StreamId>().is_ok()
}

/// A pod-log resume position (`<RFC 3339 time>/<lines at it>`).
pub fn log_position(text: &str) -> bool {
    LogPosition::parse(text).is_ok()
}

/// A login token (header, signature, claims), checked by an authenticator with a fixed
/// HS256 secret.
pub fn token(text: &str) -> bool {
    static AUTH: OnceLock<Authenticator> = OnceLock::new();
    let auth = AUTH.get_or_init(|| {
        let config = Config::from_toml(
            "[auth]\njwt_secret = \"fuzzing-secret-of-at-least-32-bytes\"\n",
            "fuzzing",
        )
        .expect("the fuzzing config parses");
        Authenticator::new(&config, None).expect("the fuzzing authenticator starts")
    });
    auth.decode(text).is_ok()
}
