//! Results: each workload's figures over repeated runs, beside its limit and, where one is
//! measured, its peer (the system Opsdeck replaces), summarised as median and min–max,
//! printed as a table and written into `docs/BENCHMARKS.md`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, bail};

/// The workloads, in the order they run and are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Workload {
    SshBulk,
    SshEcho,
    IdleCpu,
    IdleRss,
    K8sExec,
    Chat,
    Tail,
    Files,
    Frontend,
    Browser,
    Terminals,
}

impl Workload {
    pub const ALL: [Self; 11] = [
        Self::SshBulk,
        Self::SshEcho,
        Self::IdleCpu,
        Self::IdleRss,
        Self::K8sExec,
        Self::Chat,
        Self::Tail,
        Self::Files,
        Self::Frontend,
        Self::Browser,
        Self::Terminals,
    ];

    /// The name used by `--only` and in the docs' markers.
    pub fn name(self) -> &'static str {
        match self {
            Self::SshBulk => "ssh-bulk",
            Self::SshEcho => "ssh-echo",
            Self::IdleCpu => "idle-cpu",
            Self::IdleRss => "idle-rss",
            Self::K8sExec => "k8s-exec",
            Self::Chat => "chat",
            Self::Tail => "tail",
            Self::Files => "files",
            Self::Frontend => "frontend",
            Self::Browser => "browser",
            Self::Terminals => "terminals",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::SshBulk => "SSH terminal bulk output",
            Self::SshEcho => "Keystroke echo round trip",
            Self::IdleCpu => "Idle CPU with 100 terminal sessions",
            Self::IdleRss => "Memory per idle WebSocket",
            Self::K8sExec => "Kubernetes exec bulk output",
            Self::Chat => "Chat fan-out",
            Self::Tail => "File tail latency",
            Self::Files => "File transfers (SFTP) and relay memory during a large download",
            Self::Frontend => "Frontend shipped bytes",
            Self::Browser => "Browser: page load and 50 MB of terminal output",
            Self::Terminals => "Many active terminals through one relay",
        }
    }
}

/// What a figure should reach.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// Opsdeck ÷ limit at least this.
    RatioAtLeast(f64),
    /// Opsdeck ÷ limit at most this.
    RatioAtMost(f64),
    /// Opsdeck ÷ limit at least `limit` and Opsdeck ÷ peer at least `peer` (medians).
    RatioAtLeastAndOverPeer { limit: f64, peer: f64 },
    /// Opsdeck − limit at most this many units.
    AboveLimitAtMost(f64),
    /// Opsdeck below this many units.
    Below(f64),
    /// Opsdeck at least this many units.
    AtLeast(f64),
    /// Opsdeck at most this many units.
    AtMost(f64),
}

/// One figure over the runs: Opsdeck's value, the limit's and the peer's, measured in the
/// same run.
#[derive(Debug, Clone)]
pub struct Figure {
    pub measure: String,
    pub unit: &'static str,
    pub opsdeck: Vec<f64>,
    pub limit: Vec<f64>,
    pub peer: Vec<f64>,
    /// Whether the peer does this measure too (its cells then say when it was skipped).
    pub with_peer: bool,
    pub target: Option<Target>,
}

impl Figure {
    fn ratios(&self) -> Vec<f64> {
        ratios(&self.opsdeck, &self.limit)
    }

    fn differences(&self) -> Vec<f64> {
        self.opsdeck
            .iter()
            .zip(&self.limit)
            .map(|(o, l)| o - l)
            .collect()
    }

    /// The target in words, and whether the median meets it (`None`: not measurable).
    fn verdict(&self) -> Option<(String, Option<bool>)> {
        let unit = self.unit;
        Some(match self.target? {
            Target::RatioAtLeast(r) => (
                format!("≥ {:.0}% of limit", r * 100.0),
                median(&self.ratios()).map(|m| m >= r),
            ),
            Target::RatioAtMost(r) => (
                format!("≤ {}× limit", number(r)),
                median(&self.ratios()).map(|m| m <= r),
            ),
            Target::RatioAtLeastAndOverPeer { limit, peer } => (
                format!(
                    "≥ {:.0}% of limit and ≥ {}× peer",
                    limit * 100.0,
                    number(peer)
                ),
                median(&self.ratios()).and_then(|m| {
                    let over_peer = median(&self.opsdeck)? / median(&self.peer)?;
                    Some(m >= limit && over_peer >= peer)
                }),
            ),
            Target::AboveLimitAtMost(d) => (
                format!("≤ limit + {} {unit}", number(d)),
                median(&self.differences()).map(|m| m <= d),
            ),
            Target::Below(x) => (
                format!("< {} {unit}", number(x)),
                median(&self.opsdeck).map(|m| m < x),
            ),
            Target::AtLeast(x) => (
                format!("≥ {} {unit}", number(x)),
                median(&self.opsdeck).map(|m| m >= x),
            ),
            // Every run, not the median: one lost message is a failure.
            Target::AtMost(x) => (
                format!("≤ {} {unit} in every run", number(x)),
                self.opsdeck
                    .iter()
                    .copied()
                    .reduce(f64::max)
                    .map(|m| m <= x),
            ),
        })
    }
}

/// Opsdeck's values over another's, run by run (runs where the other is 0 left out).
fn ratios(opsdeck: &[f64], other: &[f64]) -> Vec<f64> {
    opsdeck
        .iter()
        .zip(other)
        .filter(|(_, o)| **o > 0.0)
        .map(|(d, o)| d / o)
        .collect()
}

/// The peer column of a workload: what the peer is, or why it was not measured.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The peer in a few words (`webssh 1.6.3 (tornado + paramiko)`).
    pub name: String,
    /// Why it was not measured (it could not be installed or started).
    pub skipped: Option<String>,
}

/// An extra table a workload shows (the frontend's files).
#[derive(Debug, Clone, Default)]
pub struct Details {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// Everything one workload measured in one invocation.
#[derive(Debug, Clone)]
pub struct Report {
    pub workload: Workload,
    /// What the limit column is.
    pub limit: Option<String>,
    /// The peer column, for workloads that measure one.
    pub peer: Option<Peer>,
    pub figures: Vec<Figure>,
    pub notes: Vec<String>,
    pub details: Option<Details>,
    /// Why nothing was measured.
    pub unavailable: Option<String>,
    /// Runs completed.
    pub runs: usize,
}

impl Report {
    pub fn new(workload: Workload) -> Self {
        Self {
            workload,
            limit: None,
            peer: None,
            figures: Vec::new(),
            notes: Vec::new(),
            details: None,
            unavailable: None,
            runs: 0,
        }
    }

    pub fn unavailable(workload: Workload, why: impl Into<String>) -> Self {
        Self {
            unavailable: Some(why.into()),
            ..Self::new(workload)
        }
    }

    /// Adds one run's value of `measure` (and the limit's, from the same run).
    pub fn record(
        &mut self,
        measure: &str,
        unit: &'static str,
        opsdeck: f64,
        limit: Option<f64>,
        target: Option<Target>,
    ) {
        self.add(measure, unit, opsdeck, limit, None, target);
    }

    /// [`Report::record`] of a measure the peer does too, with its value from the same run
    /// (`None` when it was not measured).
    pub fn record_with_peer(
        &mut self,
        measure: &str,
        unit: &'static str,
        opsdeck: f64,
        limit: Option<f64>,
        peer: Option<f64>,
        target: Option<Target>,
    ) {
        self.add(measure, unit, opsdeck, limit, Some(peer), target);
    }

    /// Adds one run's values; `peer` is `None` for a measure the peer does not do.
    fn add(
        &mut self,
        measure: &str,
        unit: &'static str,
        opsdeck: f64,
        limit: Option<f64>,
        peer: Option<Option<f64>>,
        target: Option<Target>,
    ) {
        let index = match self.figures.iter().position(|f| f.measure == measure) {
            Some(i) => i,
            None => {
                self.figures.push(Figure {
                    measure: measure.to_owned(),
                    unit,
                    opsdeck: Vec::new(),
                    limit: Vec::new(),
                    peer: Vec::new(),
                    with_peer: false,
                    target,
                });
                self.figures.len() - 1
            }
        };
        let figure = &mut self.figures[index];
        figure.opsdeck.push(opsdeck);
        if let Some(limit) = limit {
            figure.limit.push(limit);
        }
        if let Some(peer) = peer {
            figure.with_peer = true;
            figure.peer.extend(peer);
        }
    }

    pub fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    /// The table: header, then a row per figure. With a peer, its value and Opsdeck ÷ peer
    /// stand beside the limit's; a skipped peer's cells say why.
    fn table(&self) -> Vec<Vec<String>> {
        let mut header = vec!["measure", "Opsdeck", "limit"];
        if self.peer.is_some() {
            header.push("peer");
        }
        header.push("Opsdeck ÷ limit");
        if self.peer.is_some() {
            header.push("Opsdeck ÷ peer");
        }
        header.extend(["target", "met"]);
        let mut table = vec![header.into_iter().map(str::to_owned).collect()];
        for f in &self.figures {
            let (target, met) = match f.verdict() {
                Some((words, Some(true))) => (words, "yes".to_owned()),
                Some((words, Some(false))) => (words, "**no**".to_owned()),
                Some((words, None)) => (words, "—".to_owned()),
                None => ("—".to_owned(), "".to_owned()),
            };
            let times = |r: f64| format!("{r:.2}×");
            let mut row = vec![
                format!("{} ({})", f.measure, f.unit),
                summary(&f.opsdeck),
                summary(&f.limit),
            ];
            let skipped = self.peer.as_ref().and_then(|p| p.skipped.as_deref());
            if self.peer.is_some() {
                row.push(match skipped {
                    Some(why) if f.with_peer && f.peer.is_empty() => {
                        format!("skipped: {}", short(why))
                    }
                    _ => summary(&f.peer),
                });
            }
            row.push(summary_with(&f.ratios(), times));
            if self.peer.is_some() {
                row.push(summary_with(&ratios(&f.opsdeck, &f.peer), times));
            }
            row.extend([target, met]);
            table.push(row);
        }
        table
    }

    /// The report as plain text for the terminal.
    pub fn to_text(&self) -> String {
        let mut out = format!("\n== {}: {}", self.workload.name(), self.workload.title());
        if self.runs > 0 {
            let _ = write!(out, " ({})", runs(self.runs));
        }
        out.push_str(" ==\n");
        if let Some(why) = &self.unavailable {
            let _ = writeln!(out, "not available: {why}");
            return out;
        }
        if let Some(limit) = &self.limit {
            let _ = writeln!(out, "limit: {limit}");
        }
        if let Some(peer) = &self.peer {
            let _ = writeln!(out, "peer: {}", peer.name);
            if let Some(why) = &peer.skipped {
                let _ = writeln!(out, "peer skipped: {why}");
            }
        }
        let table: Vec<Vec<String>> = self
            .table()
            .into_iter()
            .map(|r| r.into_iter().map(|c| c.replace("**", "")).collect())
            .collect();
        out.push_str(&text_table(&table));
        if let Some(details) = &self.details {
            let mut table = vec![details.header.clone()];
            table.extend(
                details
                    .rows
                    .iter()
                    .map(|r| r.iter().map(|c| c.replace("**", "")).collect()),
            );
            out.push_str(&text_table(&table));
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        out
    }

    /// The report as a Markdown block between its markers, for the docs.
    pub fn to_markdown(&self, context: &str) -> String {
        let name = self.workload.name();
        let mut out = format!("<!-- bench:{name} -->\n### {}\n\n", self.workload.title());
        if let Some(why) = &self.unavailable {
            let _ = writeln!(out, "Not available: {why} ({context}).");
        } else {
            let _ = write!(out, "{context}");
            match self.runs {
                0 => {}
                1 => out.push_str("; one run"),
                n => {
                    let _ = write!(out, "; {}, median (min–max)", runs(n));
                }
            }
            out.push('.');
            if let Some(limit) = &self.limit {
                let _ = write!(out, " Limit: {limit}.");
            }
            if let Some(peer) = &self.peer {
                let _ = write!(out, " Peer: {}.", peer.name);
                if let Some(why) = &peer.skipped {
                    let _ = write!(out, " The peer was skipped: {why}.");
                }
            }
            out.push_str("\n\n");
            out.push_str(&markdown_table(&self.table()));
            if let Some(details) = &self.details {
                out.push('\n');
                let mut table = vec![details.header.clone()];
                table.extend(details.rows.iter().cloned());
                out.push_str(&markdown_table(&table));
            }
            if !self.notes.is_empty() {
                out.push('\n');
                for note in &self.notes {
                    let _ = writeln!(out, "- {note}");
                }
            }
        }
        let _ = write!(out, "<!-- /bench:{name} -->");
        out
    }
}

/// A reason cut to fit a table cell (the whole of it is printed above the table).
fn short(why: &str) -> String {
    const CELL: usize = 60;
    if why.chars().count() <= CELL {
        why.to_owned()
    } else {
        format!("{}…", why.chars().take(CELL).collect::<String>())
    }
}

fn runs(n: usize) -> String {
    if n == 1 {
        "1 run".to_owned()
    } else {
        format!("{n} runs")
    }
}

pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    })
}

/// `median (min–max)`, or the one value, or `—`.
pub fn summary(values: &[f64]) -> String {
    summary_with(values, number)
}

fn summary_with(values: &[f64], show: impl Fn(f64) -> String) -> String {
    let Some(m) = median(values) else {
        return "—".to_owned();
    };
    if values.len() == 1 {
        return show(m);
    }
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{} ({}–{})", show(m), show(min), show(max))
}

/// Three significant digits or so, without exponent notation.
pub fn number(x: f64) -> String {
    let a = x.abs();
    if a >= 100.0 || a == 0.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

fn text_table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell}{}", " ".repeat(w - cell.chars().count())))
            .collect();
        let _ = writeln!(out, "  {}", line.join("  ").trim_end());
    }
    out
}

fn markdown_table(rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let _ = writeln!(out, "| {} |", row.join(" | "));
        if i == 0 {
            let _ = writeln!(out, "|{}", "---|".repeat(row.len()));
        }
    }
    out
}

const BEGIN: &str = "<!-- results:begin -->";
const END: &str = "<!-- results:end -->";

/// Rewrites the results section of `path` (between its markers): the `machine` block, and
/// the block of each workload in `blocks`; other workloads keep their earlier blocks.
pub fn rewrite_docs(
    path: &Path,
    machine: &str,
    blocks: &[(Workload, String)],
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let (Some(begin), Some(end)) = (text.find(BEGIN), text.find(END)) else {
        bail!("{} has no {BEGIN} … {END} markers", path.display());
    };
    if end < begin {
        bail!(
            "{}: the results markers are in the wrong order",
            path.display()
        );
    }
    let old = &text[begin + BEGIN.len()..end];
    let mut parts = vec![machine.trim().to_owned()];
    for workload in Workload::ALL {
        let new = blocks
            .iter()
            .find(|(w, _)| *w == workload)
            .map(|(_, b)| b.clone());
        if let Some(block) = new.or_else(|| old_block(old, workload.name())) {
            parts.push(block.trim().to_owned());
        }
    }
    let rewritten = format!(
        "{}{BEGIN}\n{}\n{END}{}",
        &text[..begin],
        parts.join("\n\n"),
        &text[end + END.len()..]
    );
    std::fs::write(path, rewritten).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn old_block(section: &str, name: &str) -> Option<String> {
    let open = format!("<!-- bench:{name} -->");
    let close = format!("<!-- /bench:{name} -->");
    let start = section.find(&open)?;
    let end = section[start..].find(&close)? + start + close.len();
    Some(section[start..end].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_are_median_and_range() {
        assert_eq!(summary(&[3.0, 1.0, 2.0]), "2.00 (1.00–3.00)");
        assert_eq!(summary(&[120.0, 80.0]), "100 (80.0–120)");
        assert_eq!(summary(&[0.5]), "0.500");
        assert_eq!(summary(&[]), "—");
    }

    #[test]
    fn targets_are_judged_on_the_median() {
        let mut report = Report::new(Workload::SshBulk);
        for (o, l) in [(90.0, 100.0), (70.0, 100.0), (85.0, 100.0)] {
            report.record(
                "throughput",
                "MB/s",
                o,
                Some(l),
                Some(Target::RatioAtLeast(0.8)),
            );
        }
        let (words, met) = report.figures[0].verdict().unwrap();
        assert_eq!(words, "≥ 80% of limit");
        assert_eq!(met, Some(true));
    }

    #[test]
    fn a_peer_gets_its_own_columns_and_a_skipped_one_says_why() {
        let mut report = Report::new(Workload::SshBulk);
        report.peer = Some(Peer {
            name: "webssh".into(),
            skipped: None,
        });
        report.record_with_peer("throughput", "MB/s", 40.0, Some(40.0), Some(10.0), None);
        let table = report.table();
        assert_eq!(table[0][3], "peer");
        assert_eq!(table[0][5], "Opsdeck ÷ peer");
        assert_eq!(table[1][3], "10.0");
        assert_eq!(table[1][5], "4.00×");

        report.peer = Some(Peer {
            name: "webssh".into(),
            skipped: Some("no python3".into()),
        });
        report.figures[0].peer.clear();
        report.record("flow", "MB/s", 40.0, Some(40.0), None);
        assert_eq!(report.table()[1][3], "skipped: no python3");
        assert_eq!(report.table()[2][3], "—");

        report.peer = None;
        assert_eq!(report.table()[0].len(), 6);
    }

    #[test]
    fn docs_keep_the_blocks_of_workloads_not_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("B.md");
        std::fs::write(
            &path,
            format!(
                "intro\n{BEGIN}\nold machine\n<!-- bench:tail -->\nold tail\n<!-- /bench:tail -->\n\
                 <!-- bench:chat -->\nold chat\n<!-- /bench:chat -->\n{END}\nafter\n"
            ),
        )
        .unwrap();
        let chat = "<!-- bench:chat -->\nnew chat\n<!-- /bench:chat -->".to_owned();
        rewrite_docs(&path, "machine", &[(Workload::Chat, chat)]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("intro\n"));
        assert!(text.ends_with("\nafter\n"));
        assert!(text.contains("old tail") && text.contains("new chat"));
        assert!(!text.contains("old chat") && !text.contains("old machine"));
        assert!(text.find("new chat").unwrap() < text.find("old tail").unwrap());
    }
}
