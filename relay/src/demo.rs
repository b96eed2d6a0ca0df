//! The embedded demo configuration's side effects: a sample log file to tail.

use std::io::Write;

use crate::config::Config;

/// Writes a few lines to the demo's log files when they do not exist yet.
pub fn prepare(config: &Config) {
    for file in &config.files {
        if file.path.exists() {
            continue;
        }
        let written = std::fs::File::create(&file.path).and_then(|mut f| {
            for n in 1..=20 {
                writeln!(
                    f,
                    "demo line {n}: Opsdeck tails this file; append to it to see lines arrive"
                )?;
            }
            writeln!(f, "多字节文本 works too — 😀")
        });
        if let Err(e) = written {
            tracing::warn!("cannot write demo log {}: {e}", file.path.display());
        }
    }
}
