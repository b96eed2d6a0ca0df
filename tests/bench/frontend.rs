//! What a browser downloads: every file of `dist/`, raw and gzipped (flate2, level 6 —
//! what static servers and CDNs typically use), with the app's own wasm called out.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use flate2::Compression;
use flate2::write::GzEncoder;

use crate::report::{Details, Report, Workload};

/// One shipped file.
struct Shipped {
    path: String,
    raw: u64,
    gzipped: u64,
}

pub fn measure(dist: &Path) -> anyhow::Result<Report> {
    if !dist.join("index.html").exists() {
        return Ok(Report::unavailable(
            Workload::Frontend,
            format!(
                "{} has no built app; run `trunk build --release` first",
                dist.display()
            ),
        ));
    }
    let mut files = Vec::new();
    for path in walk(dist)? {
        let bytes = std::fs::read(&path)?;
        let mut gz = GzEncoder::new(Vec::new(), Compression::new(6));
        gz.write_all(&bytes)?;
        files.push(Shipped {
            path: path
                .strip_prefix(dist)
                .unwrap_or(&path)
                .display()
                .to_string(),
            raw: bytes.len() as u64,
            gzipped: gz.finish()?.len() as u64,
        });
    }
    files.sort_by(|a, b| b.raw.cmp(&a.raw).then(a.path.cmp(&b.path)));

    let mut report = Report::new(Workload::Frontend);
    report.runs = 1;
    let kib = |b: u64| b as f64 / 1024.0;
    let is_app_wasm = |f: &Shipped| f.path.ends_with("_bg.wasm") && !f.path.contains('/');
    if let Some(wasm) = files.iter().find(|f| is_app_wasm(f)) {
        report.record("app wasm, raw", "KiB", kib(wasm.raw), None, None);
        report.record("app wasm, gzipped", "KiB", kib(wasm.gzipped), None, None);
    } else {
        report.note("no app wasm (*_bg.wasm) found in dist/");
    }
    let (raw, gzipped) = files
        .iter()
        .fold((0, 0), |(r, g), f| (r + f.raw, g + f.gzipped));
    report.record("all of dist/, raw", "KiB", kib(raw), None, None);
    report.record("all of dist/, gzipped", "KiB", kib(gzipped), None, None);
    report.note(format!(
        "{} files in {}; sizes as built there (trunk build --release), not rebuilt by the bench",
        files.len(),
        dist.display()
    ));
    report.details = Some(Details {
        header: ["file", "raw (KiB)", "gzipped (KiB)"]
            .map(str::to_owned)
            .to_vec(),
        rows: files
            .iter()
            .map(|f| {
                let name = if is_app_wasm(f) {
                    format!("**{}** (the app)", f.path)
                } else {
                    f.path.clone()
                };
                vec![
                    name,
                    format!("{:.1}", kib(f.raw)),
                    format!("{:.1}", kib(f.gzipped)),
                ]
            })
            .collect(),
    });
    Ok(report)
}

fn walk(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(walk(&path)?);
        } else {
            out.push(path);
        }
    }
    Ok(out)
}
