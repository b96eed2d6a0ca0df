//! Terminal output fed to xterm.js in as few `write` calls as it can take: one write in
//! flight per terminal; the frames that arrive meanwhile are held and written together, as
//! one chunk, when xterm.js calls back for the write before. The callback is also the ack
//! signal (`flow.rs`): a chunk's callback acknowledges the position of its last byte, which
//! by then is drawn, so a resume still starts exactly after what the screen showed.
//!
//! Only the bookkeeping lives here (generic over the piece of output, so it is tested
//! without a browser); the terminal view joins the pieces and calls xterm.js.

/// Pieces of output to write as one, and where they end.
#[derive(Debug, PartialEq, Eq)]
pub struct Chunk<T> {
    pub pieces: Vec<T>,
    /// The socket generation and the session position of the end of the last piece.
    pub generation: u64,
    pub end: u64,
}

/// What waits for the write in flight.
#[derive(Debug)]
pub struct Feed<T> {
    in_flight: usize,
    pending: Vec<T>,
    generation: u64,
    end: u64,
}

impl<T> Default for Feed<T> {
    fn default() -> Self {
        Self {
            in_flight: 0,
            pending: Vec::new(),
            generation: 0,
            end: 0,
        }
    }
}

impl<T> Feed<T> {
    /// A piece received on socket `generation`, ending at session position `end`: the
    /// chunk to write now, or `None` when it waits for the write in flight.
    pub fn received(&mut self, piece: T, generation: u64, end: u64) -> Option<Chunk<T>> {
        self.pending.push(piece);
        self.generation = generation;
        self.end = end;
        if self.in_flight == 0 {
            self.take()
        } else {
            None
        }
    }

    /// xterm.js has processed a chunk: the next one to write, if pieces are waiting.
    pub fn written(&mut self) -> Option<Chunk<T>> {
        self.in_flight = self.in_flight.saturating_sub(1);
        if self.in_flight == 0 {
            self.take()
        } else {
            None
        }
    }

    /// Everything waiting, to write before something that must come after it on screen
    /// (a notice, an exit line).
    pub fn flush(&mut self) -> Option<Chunk<T>> {
        self.take()
    }

    fn take(&mut self) -> Option<Chunk<T>> {
        if self.pending.is_empty() {
            return None;
        }
        self.in_flight += 1;
        Some(Chunk {
            pieces: std::mem::take(&mut self.pending),
            generation: self.generation,
            end: self.end,
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
        let first = feed.received("a", 1, 1).unwrap();
        assert_eq!((first.pieces, first.end), (vec!["a"], 1));
        assert_eq!(feed.received("bb", 1, 3), None);
        assert_eq!(feed.received("ccc", 1, 6), None);
        let next = feed.written().unwrap();
        assert_eq!(
            (next.pieces, next.generation, next.end),
            (vec!["bb", "ccc"], 1, 6)
        );
        assert_eq!(feed.written(), None);
        // Idle again: the next frame is written at once.
        assert_eq!(feed.received("d", 1, 7).unwrap().pieces, vec!["d"]);
    }

    #[test]
    fn a_flush_writes_what_waits_and_its_callback_is_counted() {
        let mut feed = Feed::default();
        feed.received("a", 1, 1).unwrap();
        assert_eq!(feed.received("b", 2, 2), None);
        let flushed = feed.flush().unwrap();
        assert_eq!((flushed.pieces, flushed.generation), (vec!["b"], 2));
        assert_eq!(feed.flush(), None);
        assert_eq!(feed.received("c", 2, 3), None);
        // Two writes in flight: only after both have called back does "c" go.
        assert_eq!(feed.written(), None);
        assert_eq!(feed.written().unwrap().pieces, vec!["c"]);
    }
}
