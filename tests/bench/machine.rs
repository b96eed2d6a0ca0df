//! Facts about the machine and tools a run was measured with, for the docs.

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What the results depend on besides Opsdeck itself.
#[derive(Debug, Clone)]
pub struct Machine {
    pub date: String,
    pub cpu: String,
    pub logical_cpus: usize,
    pub cores: Option<usize>,
    pub memory_gib: f64,
    pub kernel: String,
    pub tools: Vec<(&'static str, String)>,
    pub commit: String,
    /// 1, 5 and 15 minute load averages before the bench started any work.
    pub load_at_start: String,
    /// How long the bench waits, before each workload, for a quiet machine
    /// ([`wait_for_quiet`]).
    pub quiet_wait: Duration,
}

impl Machine {
    pub fn probe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            cpuinfo.lines().find_map(|l| {
                let (key, value) = l.split_once(':')?;
                (key.trim() == name).then(|| value.trim().to_owned())
            })
        };
        let logical_cpus = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count()
            .max(1);
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        let tools = vec![
            ("rustc", first_line("rustc", &["--version"])),
            ("OpenSSH", first_line("ssh", &["-V"])),
            ("redis-server", first_line("redis-server", &["--version"])),
            ("Chromium", first_line("chromium", &["--version"])),
        ];
        let commit = first_line(
            "git",
            &[
                "-C",
                &crate::workspace_root().display().to_string(),
                "rev-parse",
                "--short",
                "HEAD",
            ],
        );
        // The results file this run may rewrite does not count as a change to what is measured.
        let dirty = Command::new("git")
            .args(["status", "--porcelain", "--untracked-files=no", "--", "."])
            .arg(":(exclude)docs/BENCHMARKS.md")
            .current_dir(crate::workspace_root())
            .output()
            .map(|o| !o.stdout.is_empty())
            .unwrap_or(false);
        Self {
            date: today(),
            cpu: field("model name").unwrap_or_else(|| "unknown CPU".to_owned()),
            logical_cpus,
            cores: field("cpu cores").and_then(|c| c.parse().ok()),
            memory_gib: memory_kib / 1024.0 / 1024.0,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
            tools,
            load_at_start: std::fs::read_to_string("/proc/loadavg")
                .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" / "))
                .unwrap_or_default(),
            quiet_wait: Duration::ZERO,
            commit: if dirty {
                format!("{commit} with uncommitted changes in the working tree")
            } else {
                commit
            },
        }
    }

    /// The machine block of the docs' results section.
    pub fn to_markdown(&self) -> String {
        let cores = self
            .cores
            .map(|c| format!(", {c} cores"))
            .unwrap_or_default();
        let mut out = format!(
            "<!-- bench:machine -->\n### Machine\n\nLast written {} by `bench --write-docs`, at \
             Opsdeck commit {}.\n\n- CPU: {} ({} logical CPUs{cores})\n- Memory: {:.1} GiB\n\
             - Linux {}\n",
            self.date, self.commit, self.cpu, self.logical_cpus, self.memory_gib, self.kernel
        );
        for (name, version) in &self.tools {
            out.push_str(&format!("- {name}: {version}\n"));
        }
        out.push_str(&format!(
            "- Load average (1 / 5 / 15 min) when the run began: {} — work other than the \
             bench's, sharing the CPUs with it\n",
            self.load_at_start
        ));
        out.push_str(&format!(
            "- Before each workload the bench waited up to {} s for the 1-minute load average \
             to fall below {QUIET_LOAD}; each workload says the load it started at and whether \
             it fell\n",
            self.quiet_wait.as_secs()
        ));
        out.push_str("<!-- /bench:machine -->");
        out
    }

    pub fn to_text(&self) -> String {
        let tools: Vec<String> = self.tools.iter().map(|(_, v)| v.clone()).collect();
        format!(
            "{} — {} ({} logical CPUs), {:.1} GiB, Linux {}, load average {}\n{}\ncommit {}",
            self.date,
            self.cpu,
            self.logical_cpus,
            self.memory_gib,
            self.kernel,
            self.load_at_start,
            tools.join("; "),
            self.commit
        )
    }
}

/// The 1-minute load average (other work on the machine shows here).
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// The 1-minute load average below which the machine counts as quiet.
pub const QUIET_LOAD: f64 = 1.0;
/// How often the load average is read while waiting for a quiet machine.
const QUIET_POLL: Duration = Duration::from_secs(5);

/// The load a workload started at, and whether the bench found the machine quiet.
#[derive(Debug, Clone, Copy)]
pub struct QuietStart {
    pub load: f64,
    pub waited: Duration,
    pub quiet: bool,
    pub max_wait: Duration,
}

impl QuietStart {
    /// For the workload's context line: "load average 0.8 at its start (waited 45 s for
    /// below 1)".
    pub fn describe(&self) -> String {
        let load = format!("load average {:.1} at its start", self.load);
        let waited = self.waited.as_secs();
        match (self.quiet, waited) {
            (true, 0) => load,
            (true, _) => format!("{load} (waited {waited} s for below {QUIET_LOAD})"),
            (false, _) if self.max_wait.is_zero() => {
                format!("{load} (no wait for a quiet machine: --max-quiet-wait 0)")
            }
            (false, _) => format!(
                "{load} (the machine did not fall below {QUIET_LOAD} within {} s)",
                self.max_wait.as_secs()
            ),
        }
    }
}

/// Waits until the 1-minute load average is below [`QUIET_LOAD`] (other work, or the
/// bench's previous workload, has settled), reading it every 5 s, for at most `max_wait`.
pub async fn wait_for_quiet(workload: &str, max_wait: Duration) -> QuietStart {
    let start = Instant::now();
    loop {
        let load = load_average();
        let waited = start.elapsed();
        if load < QUIET_LOAD || waited >= max_wait {
            return QuietStart {
                load,
                waited,
                quiet: load < QUIET_LOAD,
                max_wait,
            };
        }
        eprintln!(
            "[{workload}] load average {load:.2}: waiting for below {QUIET_LOAD} ({} s of at \
             most {} s)",
            waited.as_secs(),
            max_wait.as_secs()
        );
        tokio::time::sleep(QUIET_POLL.min(max_wait - waited)).await;
    }
}

/// The first line a tool prints about itself (some print their version on stderr).
fn first_line(program: &str, args: &[&str]) -> String {
    match Command::new(program).args(args).output() {
        Ok(out) => {
            let text = if out.stdout.is_empty() {
                out.stderr
            } else {
                out.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        }
        Err(_) => format!("{program}: not installed"),
    }
}

/// Today's date (UTC) as YYYY-MM-DD.
pub fn today() -> String {
    let days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0) as i64;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
