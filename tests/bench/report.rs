//! Results: each workload's figures over repeated runs, beside its limit, summarised as
//! median and min–max, printed as a table and written into `docs/BENCHMARKS.md`.

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
}

impl Workload {
    pub const ALL: [Self; 10] = [
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
        }
    }
}

/// What a figure should reach.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// Opsdeck ÷ limit at least this.
    RatioAtLeast(f64),
    /// Opsdeck − limit at most this many units.
    AboveLimitAtMost(f64),
    /// Opsdeck below this many units.
    Below(f64),
    /// Opsdeck at least this many units.
    AtLeast(f64),
    /// Opsdeck at most this many units.
    AtMost(f64),
}

/// One figure over the runs: Opsdeck's value and the limit's, measured in the same run.
#[derive(Debug, Clone)]
pub struct Figure {
    pub measure: String,
    pub unit: &'static str,
    pub opsdeck: Vec<f64>,
    pub limit: Vec<f64>,
    pub target: Option<Target>,
}

impl Figure {
    fn ratios(&self) -> Vec<f64> {
        self.opsdeck
            .iter()
            .zip(&self.limit)
            .filter(|(_, l)| **l > 0.0)
            .map(|(o, l)| o / l)
            .collect()
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
        let index = match self.figures.iter().position(|f| f.measure == measure) {
            Some(i) => i,
            None => {
                self.figures.push(Figure {
                    measure: measure.to_owned(),
                    unit,
                    opsdeck: Vec::new(),
                    limit: Vec::new(),
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
    }

    pub fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    fn rows(&self) -> Vec<[String; 6]> {
        self.figures
            .iter()
            .map(|f| {
                let (target, met) = match f.verdict() {
                    Some((words, Some(true))) => (words, "yes".to_owned()),
                    Some((words, Some(false))) => (words, "**no**".to_owned()),
                    Some((words, None)) => (words, "—".to_owned()),
                    None => ("—".to_owned(), "".to_owned()),
                };
                [
                    format!("{} ({})", f.measure, f.unit),
                    summary(&f.opsdeck),
                    summary(&f.limit),
                    summary_with(&f.ratios(), |r| format!("{r:.2}×")),
                    target,
                    met,
                ]
            })
            .collect()
    }

    const HEADER: [&'static str; 6] = [
        "measure",
        "Opsdeck",
        "limit",
        "Opsdeck ÷ limit",
        "target",
        "met",
    ];

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
        let mut table: Vec<Vec<String>> =
            vec![Self::HEADER.iter().map(|h| (*h).to_owned()).collect()];
        table.extend(
            self.rows()
                .into_iter()
                .map(|r| r.into_iter().map(|c| c.replace("**", "")).collect()),
        );
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
            out.push_str("\n\n");
            let mut table: Vec<Vec<String>> =
                vec![Self::HEADER.iter().map(|h| (*h).to_owned()).collect()];
            table.extend(self.rows().into_iter().map(Vec::from));
            out.push_str(&markdown_table(&table));
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
