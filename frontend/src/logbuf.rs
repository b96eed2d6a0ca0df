//! What a log view keeps: the received lines (bounded), the filter, and the download text.
//!
//! The view shows at most [`SHOWN`] lines in the page (the DOM is the slow part); the buffer
//! keeps up to [`KEPT`] for filtering and download. Both limits drop the oldest lines first
//! and say so. Plain data, tested without a browser.

use std::collections::VecDeque;

/// Lines kept for filtering and download.
pub const KEPT: usize = 100_000;
/// Lines shown in the page at once.
pub const SHOWN: usize = 5_000;

/// One line of the view: a log line, or a marker the view adds (status, gap, skipped lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub text: String,
    pub marker: bool,
}

/// The bounded buffer of received lines.
#[derive(Debug, Clone)]
pub struct LogBuffer {
    lines: VecDeque<LogLine>,
    cap: usize,
    /// Lines dropped from the front since the last clear.
    evicted: u64,
    /// Log lines (not markers) received since the view opened.
    received: u64,
}

impl Default for LogBuffer {
    fn default() -> Self {
        Self::with_cap(KEPT)
    }
}

impl LogBuffer {
    pub fn with_cap(cap: usize) -> Self {
        Self {
            lines: VecDeque::new(),
            cap: cap.max(1),
            evicted: 0,
            received: 0,
        }
    }

    /// Appends log lines.
    pub fn push_lines(&mut self, lines: impl IntoIterator<Item = String>) {
        for text in lines {
            self.received += 1;
            self.push(LogLine {
                text,
                marker: false,
            });
        }
    }

    /// Appends a marker line.
    pub fn push_marker(&mut self, text: String) {
        self.push(LogLine { text, marker: true });
    }

    fn push(&mut self, line: LogLine) {
        if self.lines.len() == self.cap {
            self.lines.pop_front();
            self.evicted += 1;
        }
        self.lines.push_back(line);
    }

    /// Forgets everything kept (the stream goes on).
    pub fn clear(&mut self) {
        self.lines.clear();
        self.evicted = 0;
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    #[cfg(test)]
    pub fn received(&self) -> u64 {
        self.received
    }

    #[cfg(test)]
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// The last `max` kept lines that match `filter`, oldest first.
    pub fn tail_matching(&self, filter: &Filter, max: usize) -> Vec<&LogLine> {
        let mut shown: Vec<&LogLine> = self
            .lines
            .iter()
            .rev()
            .filter(|l| filter.matches(l))
            .take(max)
            .collect();
        shown.reverse();
        shown
    }

    /// Everything kept, as a file: one line each, markers included, with a first line saying
    /// how many older lines were no longer kept.
    pub fn download_text(&self) -> String {
        let mut out = String::new();
        if self.evicted > 0 {
            out.push_str(&format!(
                "[{} earlier lines were not kept by the browser]\n",
                self.evicted
            ));
        }
        for line in &self.lines {
            out.push_str(&line.text);
            out.push('\n');
        }
        out
    }
}

/// A case-insensitive substring filter; empty matches everything. Markers always show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    needle: String,
}

impl Filter {
    pub fn new(text: &str) -> Self {
        Self {
            needle: text.trim().to_lowercase(),
        }
    }

    pub fn matches(&self, line: &LogLine) -> bool {
        line.marker || self.needle.is_empty() || line.text.to_lowercase().contains(&self.needle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn texts(lines: &[&LogLine]) -> Vec<String> {
        lines.iter().map(|l| l.text.clone()).collect()
    }

    #[test]
    fn the_oldest_lines_go_first_when_full() {
        let mut b = LogBuffer::with_cap(3);
        b.push_lines((1..=5).map(|n| format!("line {n}")));
        assert_eq!(b.len(), 3);
        assert_eq!(b.evicted(), 2);
        assert_eq!(b.received(), 5);
        let all = b.tail_matching(&Filter::default(), 10);
        assert_eq!(texts(&all), ["line 3", "line 4", "line 5"]);
    }

    #[test]
    fn the_filter_ignores_case_and_keeps_markers() {
        let mut b = LogBuffer::default();
        b.push_lines(["GET /health 200".to_owned(), "POST /login 401".to_owned()]);
        b.push_marker("file rotated".to_owned());
        b.push_lines(["get /metrics 200".to_owned()]);
        let shown = b.tail_matching(&Filter::new("  get "), 10);
        assert_eq!(
            texts(&shown),
            ["GET /health 200", "file rotated", "get /metrics 200"]
        );
        assert_eq!(Filter::new("   "), Filter::default());
    }

    #[test]
    fn only_the_last_lines_are_shown() {
        let mut b = LogBuffer::default();
        b.push_lines((0..10).map(|n| n.to_string()));
        assert_eq!(
            texts(&b.tail_matching(&Filter::default(), 3)),
            ["7", "8", "9"]
        );
    }

    #[test]
    fn the_download_is_what_was_kept() {
        let mut b = LogBuffer::with_cap(2);
        b.push_lines(["a".to_owned(), "日本".to_owned(), "c".to_owned()]);
        assert_eq!(
            b.download_text(),
            "[1 earlier lines were not kept by the browser]\n日本\nc\n"
        );
        b.clear();
        assert_eq!(b.download_text(), "");
        assert_eq!(b.received(), 3);
    }
}
