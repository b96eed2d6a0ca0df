//! A reader's recent lines, kept for viewers that join late or resume.
//!
//! The ring keeps the very batches the reader broadcasts (`Arc`s, not copies), so a line is
//! in memory once however many viewers there are, and a viewer's backlog is a position in
//! the ring rather than a copy of it: the viewer takes one batch at a time as its socket
//! drains (see `TailAttachment`). Lines are numbered from 0 when the reader starts; the ring
//! is bounded in lines and bytes and forgets the oldest first.

use std::collections::VecDeque;
use std::sync::Arc;

/// Ring bookkeeping per line, besides its text.
pub const LINE_OVERHEAD: usize = 32;

/// Lines numbered `start..start + lines.len()`, shared by the ring and every viewer.
pub type Batch = Arc<Vec<String>>;

/// Recent lines, bounded in count and bytes.
#[derive(Debug)]
pub struct Ring {
    /// Batches in order, each with the position of its first line.
    batches: VecDeque<(u64, Batch)>,
    /// Position of the oldest line kept (inside `batches[0]`, whose earlier lines are
    /// forgotten: a batch is freed once all its lines are).
    start: u64,
    end: u64,
    /// Bytes of the lines kept, with [`LINE_OVERHEAD`] each.
    bytes: usize,
    max_lines: usize,
    max_bytes: usize,
    /// The file does not exist right now (told to viewers that join).
    pub missing: bool,
}

impl Ring {
    pub fn new(max_lines: usize, max_bytes: usize) -> Self {
        Self {
            batches: VecDeque::new(),
            start: 0,
            end: 0,
            bytes: 0,
            max_lines,
            max_bytes,
            missing: false,
        }
    }

    /// Position of the oldest line kept.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Position after the newest line.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Appends a batch; returns the position of its first line.
    pub fn push(&mut self, batch: Batch) -> u64 {
        let first = self.end;
        if batch.is_empty() {
            return first;
        }
        self.bytes += batch.iter().map(|l| l.len() + LINE_OVERHEAD).sum::<usize>();
        self.end += batch.len() as u64;
        self.batches.push_back((first, batch));
        while self.end - self.start > self.max_lines as u64 || self.bytes > self.max_bytes {
            self.forget_oldest();
        }
        first
    }

    fn forget_oldest(&mut self) {
        let Some((first, batch)) = self.batches.front() else {
            return;
        };
        let index = (self.start - first) as usize;
        self.bytes -= batch[index].len() + LINE_OVERHEAD;
        self.start += 1;
        if index + 1 == batch.len() {
            self.batches.pop_front();
        }
    }

    /// The batch holding the line at `position`, with that batch's first position; `None`
    /// when the line is no longer kept or not read yet.
    pub fn batch_at(&self, position: u64) -> Option<(u64, Batch)> {
        if position < self.start || position >= self.end {
            return None;
        }
        let after = self
            .batches
            .partition_point(|(first, _)| *first <= position);
        let (first, batch) = self.batches.get(after.checked_sub(1)?)?;
        Some((*first, batch.clone()))
    }

    /// Batches held, for tests.
    #[cfg(test)]
    pub fn batch_count(&self) -> usize {
        self.batches.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(lines: &[&str]) -> Batch {
        Arc::new(lines.iter().map(|l| l.to_string()).collect())
    }

    fn line_at(ring: &Ring, position: u64) -> Option<String> {
        let (first, batch) = ring.batch_at(position)?;
        Some(batch[(position - first) as usize].clone())
    }

    #[test]
    fn the_ring_is_bounded_by_lines_and_by_bytes_and_counts_positions() {
        let mut ring = Ring::new(3, 1 << 20);
        assert_eq!(ring.push(batch(&["0", "1"])), 0);
        assert_eq!(ring.push(batch(&["2", "3", "4"])), 2);
        assert_eq!((ring.start(), ring.end()), (2, 5));
        assert_eq!(line_at(&ring, 1), None, "forgotten");
        assert_eq!(line_at(&ring, 2).as_deref(), Some("2"));
        assert_eq!(line_at(&ring, 4).as_deref(), Some("4"));
        assert_eq!(line_at(&ring, 5), None, "not read yet");
        assert_eq!(ring.batch_count(), 1, "a batch is freed with its last line");

        let mut ring = Ring::new(1000, 2 * (10 + LINE_OVERHEAD));
        ring.push(batch(&[&"x".repeat(10), &"y".repeat(10), &"z".repeat(10)]));
        assert_eq!((ring.start(), ring.end()), (1, 3));
    }

    #[test]
    fn the_ring_shares_the_batches_it_is_given() {
        let mut ring = Ring::new(100, 1 << 20);
        let lines = batch(&["a", "b"]);
        ring.push(lines.clone());
        let (first, kept) = ring.batch_at(1).unwrap();
        assert_eq!(first, 0);
        assert!(Arc::ptr_eq(&kept, &lines), "no copy of the lines");
    }
}
