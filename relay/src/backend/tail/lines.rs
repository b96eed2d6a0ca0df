//! Turning a file's bytes into lines: split on `\n` in bytes, decode each whole line once
//! (lossily, so a stray invalid byte shows as U+FFFD instead of dropping the line), and cut
//! very long lines at a character boundary with a marker. Memory per file is bounded by the
//! line cap, however long a line grows before its newline arrives.

use std::io::SeekFrom;

use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// Bytes read at a time when scanning a file backwards for its last lines.
const SCAN_CHUNK: usize = 64 * 1024;

/// Splits a byte stream into lines of at most `max` bytes each (before the marker).
#[derive(Debug)]
pub struct LineSplitter {
    /// The start of the line not yet ended by a newline (at most `max` bytes of it).
    partial: Vec<u8>,
    /// Bytes of that line beyond `max`, not kept.
    overflow: u64,
    max: usize,
}

impl LineSplitter {
    pub fn new(max_line_bytes: usize) -> Self {
        Self {
            partial: Vec::new(),
            overflow: 0,
            max: max_line_bytes,
        }
    }

    /// Appends `bytes`; every line they complete goes to `out`.
    pub fn push(&mut self, mut bytes: &[u8], out: &mut Vec<String>) {
        while let Some(newline) = bytes.iter().position(|&b| b == b'\n') {
            self.keep(&bytes[..newline]);
            out.push(self.take_line());
            bytes = &bytes[newline + 1..];
        }
        self.keep(bytes);
    }

    /// Whether a line has begun but not ended.
    pub fn has_partial(&self) -> bool {
        !self.partial.is_empty() || self.overflow > 0
    }

    /// Ends the unfinished line, if any (its file was rotated, truncated or deleted, so no
    /// newline will come for it).
    pub fn flush(&mut self) -> Option<String> {
        self.has_partial().then(|| self.take_line())
    }

    fn keep(&mut self, bytes: &[u8]) {
        let room = self.max.saturating_sub(self.partial.len());
        let kept = room.min(bytes.len());
        self.partial.extend_from_slice(&bytes[..kept]);
        self.overflow += (bytes.len() - kept) as u64;
    }

    fn take_line(&mut self) -> String {
        let line = finish_line(&self.partial, self.overflow);
        self.partial.clear();
        self.overflow = 0;
        line
    }
}

/// Decodes one whole line. `kept` is at most the cap; `overflow` counts the bytes cut off.
fn finish_line(kept: &[u8], overflow: u64) -> String {
    if overflow == 0 {
        let line = kept.strip_suffix(b"\r").unwrap_or(kept);
        return String::from_utf8_lossy(line).into_owned();
    }
    // Cut where the kept bytes end, but not inside a character.
    let end = match std::str::from_utf8(kept) {
        Ok(_) => kept.len(),
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        Err(_) => kept.len(),
    };
    let total = kept.len() as u64 + overflow;
    format!(
        "{} … [line cut: {total} bytes, longer than the limit]",
        String::from_utf8_lossy(&kept[..end])
    )
}

/// Where to start reading `file` (of length `end`) so as to get its last `lines` lines,
/// reading at most `max_bytes` from the end. The answer is always the start of a line,
/// unless a single line is longer than `max_bytes`.
pub async fn start_of_last_lines(
    file: &mut tokio::fs::File,
    end: u64,
    lines: usize,
    max_bytes: u64,
) -> std::io::Result<u64> {
    if lines == 0 || end == 0 {
        return Ok(end);
    }
    let limit = end.saturating_sub(max_bytes);
    // The last byte is either the newline ending the last line or part of an unfinished
    // line: it never separates two lines, so the scan starts before it.
    let mut pos = end - 1;
    let mut found = 0usize;
    let mut lowest_newline = None;
    let mut buf = vec![0u8; SCAN_CHUNK];
    while pos > limit {
        let from = pos.saturating_sub(SCAN_CHUNK as u64).max(limit);
        let len = (pos - from) as usize;
        file.seek(SeekFrom::Start(from)).await?;
        file.read_exact(&mut buf[..len]).await?;
        for (i, byte) in buf[..len].iter().enumerate().rev() {
            if *byte == b'\n' {
                found += 1;
                let at = from + i as u64;
                if found == lines {
                    return Ok(at + 1);
                }
                lowest_newline = Some(at);
            }
        }
        pos = from;
    }
    Ok(match (limit, lowest_newline) {
        (0, _) => 0,
        (_, Some(at)) => at + 1,
        (_, None) => limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> (Vec<String>, Option<String>) {
        let mut splitter = LineSplitter::new(max);
        let mut out = Vec::new();
        for chunk in chunks {
            splitter.push(chunk, &mut out);
        }
        (out, splitter.flush())
    }

    #[test]
    fn lines_split_on_newlines_and_characters_split_across_reads_survive() {
        let text = "añb\n日本語\r\nlast".as_bytes();
        // Every possible split point, including inside multi-byte characters.
        for cut in 0..=text.len() {
            let (lines, rest) = split(1024, &[&text[..cut], &text[cut..]]);
            assert_eq!(lines, ["añb", "日本語"], "cut at {cut}");
            assert_eq!(rest.as_deref(), Some("last"));
        }
    }

    #[test]
    fn invalid_bytes_are_replaced_not_dropped() {
        let (lines, rest) = split(1024, &[b"ok\xff\n"]);
        assert_eq!(lines, ["ok\u{fffd}"]);
        assert_eq!(rest, None);
    }

    #[test]
    fn long_lines_are_cut_on_a_character_boundary_with_a_marker() {
        // 3-byte characters; a cap of 10 bytes falls inside the fourth one.
        let line = "日".repeat(10);
        let (lines, _) = split(10, &[line.as_bytes(), b"\nnext\n"]);
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("日日日 …"), "{}", lines[0]);
        assert!(lines[0].contains("30 bytes"), "{}", lines[0]);
        assert_eq!(lines[1], "next");
    }

    #[test]
    fn a_line_growing_without_end_holds_only_the_cap() {
        let mut splitter = LineSplitter::new(16);
        let mut out = Vec::new();
        for _ in 0..1000 {
            splitter.push(&[b'x'; 1000], &mut out);
        }
        assert!(out.is_empty());
        assert!(splitter.partial.len() <= 16);
        let line = splitter.flush().unwrap();
        assert!(line.contains("1000000 bytes"), "{line}");
    }

    async fn last_lines(content: &[u8], n: usize, max: u64) -> String {
        let path = std::env::temp_dir().join(format!(
            "opsdeck-lines-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::write(&path, content).unwrap();
        let mut file = tokio::fs::File::open(&path).await.unwrap();
        let start = start_of_last_lines(&mut file, content.len() as u64, n, max)
            .await
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        String::from_utf8(content[start as usize..].to_vec()).unwrap()
    }

    #[tokio::test]
    async fn the_last_lines_are_found_reading_backwards() {
        assert_eq!(last_lines(b"a\nb\nc\n", 2, 1 << 20).await, "b\nc\n");
        assert_eq!(last_lines(b"a\nb\nc", 2, 1 << 20).await, "b\nc");
        assert_eq!(last_lines(b"a\nb\nc\n", 9, 1 << 20).await, "a\nb\nc\n");
        assert_eq!(last_lines(b"a\nb\nc\n", 0, 1 << 20).await, "");
        // Spanning several scan chunks.
        let many: String = (0..50_000).map(|i| format!("line {i}\n")).collect();
        let tail = last_lines(many.as_bytes(), 3, 1 << 30).await;
        assert_eq!(tail, "line 49997\nline 49998\nline 49999\n");
        // The byte limit wins over the line count, and the cut is at a line start.
        let tail = last_lines(many.as_bytes(), 1000, 25).await;
        assert_eq!(tail, "line 49998\nline 49999\n");
    }
}
