//! Terminal output fed to xterm.js in few `write` calls: one write in flight per terminal;
//! the frames that arrive meanwhile are held and written together, in chunks of at most
//! [`MAX_CHUNK`], when xterm.js calls back for the write before. The callback is also the ack
//! signal (`flow.rs`): a chunk's callback acknowledges the position of its last byte, which
//! by then is drawn, so a resume still starts exactly after what the screen showed.
//!
//! Only the bookkeeping lives here (generic over the piece of output, so it is tested
//! without a browser); the terminal view joins the pieces and calls xterm.js.

/// The most output one `write` carries (unless a single piece is larger). Each write's
/// callback may acknowledge what it drew, so capping writes keeps acks flowing while
/// xterm.js parses: with one unbounded write, the whole flow window went into it, the relay
/// waited for its ack, and xterm.js then sat idle for the round trip (39% of the main
/// thread's time in a profile of the bench's bulk output). A quarter of an ack step.
pub const MAX_CHUNK: usize = (crate::flow::ACK_EVERY / 4) as usize;

/// Pieces of output to write as one, and where they end.
#[derive(Debug, PartialEq, Eq)]
pub struct Chunk<T> {
    pub pieces: Vec<T>,
    /// The socket generation and the session position of the end of the last piece.
    pub generation: u64,
    pub end: u64,
}

/// A piece waiting, with its length and where it ends.
#[derive(Debug)]
struct Pending<T> {
    piece: T,
    len: usize,
    generation: u64,
    end: u64,
}

/// What waits for the write in flight.
#[derive(Debug)]
pub struct Feed<T> {
    in_flight: usize,
    pending: std::collections::VecDeque<Pending<T>>,
}

impl<T> Default for Feed<T> {
    fn default() -> Self {
        Self {
            in_flight: 0,
            pending: std::collections::VecDeque::new(),
        }
    }
}

impl<T> Feed<T> {
    /// A piece of `len` bytes received on socket `generation`, ending at session position
    /// `end`: the chunk to write now, or `None` when it waits for the write in flight.
    pub fn received(
        &mut self,
        piece: T,
        len: usize,
        generation: u64,
        end: u64,
    ) -> Option<Chunk<T>> {
        self.pending.push_back(Pending {
            piece,
            len,
            generation,
            end,
        });
        if self.in_flight == 0 {
            self.take(MAX_CHUNK)
        } else {
            None
        }
    }

    /// xterm.js has processed a chunk: the next one to write, if pieces are waiting.
    pub fn written(&mut self) -> Option<Chunk<T>> {
        self.in_flight = self.in_flight.saturating_sub(1);
        if self.in_flight == 0 {
            self.take(MAX_CHUNK)
        } else {
            None
        }
    }

    /// Everything waiting, to write before something that must come after it on screen
    /// (a notice, an exit line).
    pub fn flush(&mut self) -> Option<Chunk<T>> {
        self.take(usize::MAX)
    }

    /// The oldest pieces, up to `max` bytes (at least one piece).
    fn take(&mut self, max: usize) -> Option<Chunk<T>> {
        let first = self.pending.pop_front()?;
        let (mut bytes, mut generation, mut end) = (first.len, first.generation, first.end);
        let mut pieces = vec![first.piece];
        while let Some(next) = self.pending.front() {
            if bytes.saturating_add(next.len) > max {
                break;
            }
            let next = self.pending.pop_front()?;
            bytes += next.len;
            (generation, end) = (next.generation, next.end);
            pieces.push(next.piece);
        }
        self.in_flight += 1;
        Some(Chunk {
            pieces,
            generation,
            end,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn frames_that_arrive_during_a_write_go_out_together_when_it_completes() {
        let mut feed = Feed::default();
        let first = feed.received("a", 1, 1, 1).unwrap();
        assert_eq!((first.pieces, first.end), (vec!["a"], 1));
        assert_eq!(feed.received("bb", 2, 1, 3), None);
        assert_eq!(feed.received("ccc", 3, 1, 6), None);
        let next = feed.written().unwrap();
        assert_eq!(
            (next.pieces, next.generation, next.end),
            (vec!["bb", "ccc"], 1, 6)
        );
        assert_eq!(feed.written(), None);
        // Idle again: the next frame is written at once.
        assert_eq!(feed.received("d", 1, 1, 7).unwrap().pieces, vec!["d"]);
    }

    #[test]
    fn a_flush_writes_what_waits_and_its_callback_is_counted() {
        let mut feed = Feed::default();
        feed.received("a", 1, 1, 1).unwrap();
        assert_eq!(feed.received("b", 1, 2, 2), None);
        let flushed = feed.flush().unwrap();
        assert_eq!((flushed.pieces, flushed.generation), (vec!["b"], 2));
        assert_eq!(feed.flush(), None);
        assert_eq!(feed.received("c", 1, 2, 3), None);
        // Two writes in flight: only after both have called back does "c" go.
        assert_eq!(feed.written(), None);
        assert_eq!(feed.written().unwrap().pieces, vec!["c"]);
    }

    #[test]
    fn a_write_carries_at_most_max_chunk_so_acks_keep_coming_while_xterm_parses() {
        let mut feed = Feed::default();
        let piece = MAX_CHUNK / 3;
        let first = feed.received(0, piece, 1, piece as u64).unwrap();
        assert_eq!(first.pieces, vec![0]);
        for i in 1..=7u64 {
            assert_eq!(feed.received(i, piece, 1, (i + 1) * piece as u64), None);
        }
        // Three pieces fit in a chunk, the fourth waits for the next write; each chunk
        // ends where its last piece does, so its callback acknowledges exactly that.
        let next = feed.written().unwrap();
        assert_eq!((next.pieces, next.end), (vec![1, 2, 3], 4 * piece as u64));
        let next = feed.written().unwrap();
        assert_eq!((next.pieces, next.end), (vec![4, 5, 6], 7 * piece as u64));
        assert_eq!(feed.written().unwrap().pieces, vec![7]);
        assert_eq!(feed.written(), None);
        // A piece larger than the cap still goes, alone.
        let big = feed.received(8, 2 * MAX_CHUNK, 2, 1).unwrap();
        assert_eq!((big.pieces, big.generation), (vec![8], 2));
    }
}
