//! Replays the fuzz corpora on stable (issue 12): every file in `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/` goes through the same body as `cargo fuzz run <target>`
//! (`fuzz/bodies.rs`, compiled here as a module), so a regression shows in
//! `cargo test --workspace` without nightly.

#[path = "../../fuzz/bodies.rs"]
mod bodies;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files of `dir`, sorted; none when it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("a readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// The target directories under `fuzz/<kind>/`.
fn target_dirs(kind: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(fuzz_dir().join(kind)) else {
        return Vec::new();
    };
    entries
        .map(|e| e.expect("a readable directory entry"))
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn every_corpus_and_regression_replays_without_a_panic() {
    let mut failures = Vec::new();
    let mut replayed = 0;
    for (target, body) in bodies::TARGETS {
        let seeds = files(&fuzz_dir().join("corpus").join(target));
        assert!(!seeds.is_empty(), "fuzz/corpus/{target}/ has no seed");
        let regressions = files(&fuzz_dir().join("regressions").join(target));
        for file in seeds.iter().chain(&regressions) {
            let data = std::fs::read(file).expect("a readable corpus file");
            replayed += 1;
            if std::panic::catch_unwind(|| body(&data)).is_err() {
                failures.push(file.display().to_string());
            }
        }
    }
    assert!(failures.is_empty(), "panicked on {failures:#?}");
    println!("replayed {replayed} inputs");
}

#[test]
fn every_directory_names_a_target() {
    for kind in ["corpus", "regressions"] {
        for dir in target_dirs(kind) {
            assert!(
                bodies::TARGETS.iter().any(|(name, _)| *name == dir),
                "fuzz/{kind}/{dir}/ is no target of fuzz/bodies.rs"
            );
        }
    }
    for (target, _) in bodies::TARGETS {
        let source = fuzz_dir().join("fuzz_targets").join(format!("{target}.rs"));
        assert!(source.is_file(), "{} is missing", source.display());
    }
}

/// The signed form of the `token` target reaches the claims: a well-formed token signed
/// with `bodies::TOKEN_SECRET` is accepted (so the secret matches the relay's decoder).
#[test]
fn signed_tokens_reach_the_claims() {
    let claims = br#"{"sub":"alice","exp":4102444800}"#;
    let mut data = vec![1];
    data.extend_from_slice(claims);
    assert!(bodies::token(&data));
    assert!(relay::decoders::token(&bodies::signed_token(claims)));
    assert!(!bodies::token(br#"1{"sub":"alice","exp":1}"#));
    let mut raw = vec![0];
    raw.extend_from_slice(bodies::signed_token(claims).as_bytes());
    assert!(bodies::token(&raw));
}
