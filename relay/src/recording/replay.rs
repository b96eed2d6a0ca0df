//! Reading a recording for the player without sending it whole: the seek index
//! (`GET /api/recordings/{id}/index`) and find (`GET /api/recordings/{id}/find`).
//!
//! Both stream the file line by line with a bounded line length, so a recording of
//! hundreds of megabytes costs one pass and a few lines of memory; the player then fetches
//! only the slices it shows, with `Range` from the index's byte offsets. Compressed
//! recordings have no byte offsets a player can use, so they are refused here (they are
//! downloaded whole).

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use common::recording::{
    CastHeader, FindHit, FindQuery, FindTarget, INPUT, MAX_SEEK_POINTS, OUTPUT, RecordingIndex,
    SEEK_STEP_BYTES, SeekPoint,
};

/// Longest event line read; longer ones make the recording malformed.
const MAX_LINE: u64 = 8 * 1024 * 1024;
/// Longest header line.
const MAX_HEADER: u64 = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("a compressed recording has no index: download it whole")]
    Compressed,
    #[error("the recording could not be read ({0})")]
    Unreadable(#[from] std::io::Error),
    #[error("the recording is malformed at byte {0}")]
    Malformed(u64),
}

/// One event line as it is in the file.
struct Line {
    offset: u64,
    time: f64,
    code: String,
    data: String,
}

/// The lines of a recording after its header, up to the last whole line at the time it was
/// opened.
struct Lines {
    reader: BufReader<std::io::Take<std::fs::File>>,
    offset: u64,
    buf: Vec<u8>,
}

impl Lines {
    fn open(path: &Path) -> Result<(CastHeader, Self), ReplayError> {
        if path.extension().is_some_and(|e| e == "gz") {
            return Err(ReplayError::Compressed);
        }
        let file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        let mut lines = Self {
            reader: BufReader::with_capacity(64 * 1024, file.take(len)),
            offset: 0,
            buf: Vec::new(),
        };
        if !lines.read_line(MAX_HEADER)? {
            return Err(ReplayError::Malformed(0));
        }
        let header: CastHeader =
            serde_json::from_slice(&lines.buf).map_err(|_| ReplayError::Malformed(0))?;
        Ok((header, lines))
    }

    /// Reads the next whole line into `buf`; false at the end (a partial last line, as a
    /// live recording may have, is left out).
    fn read_line(&mut self, max: u64) -> Result<bool, ReplayError> {
        self.buf.clear();
        let read = (&mut self.reader)
            .take(max + 1)
            .read_until(b'\n', &mut self.buf)?;
        if self.buf.last() != Some(&b'\n') {
            return if read as u64 > max {
                Err(ReplayError::Malformed(self.offset))
            } else {
                Ok(false)
            };
        }
        self.offset += read as u64;
        Ok(true)
    }

    fn next(&mut self) -> Result<Option<Line>, ReplayError> {
        let start = self.offset;
        if !self.read_line(MAX_LINE)? {
            return Ok(None);
        }
        let (time, code, data): (f64, String, String) =
            serde_json::from_slice(&self.buf).map_err(|_| ReplayError::Malformed(start))?;
        Ok(Some(Line {
            offset: start,
            time,
            code,
            data,
        }))
    }
}

/// The seek index of the recording at `path` (blocking: run it off the runtime).
pub fn index(path: &Path) -> Result<RecordingIndex, ReplayError> {
    let (header, mut lines) = Lines::open(path)?;
    let size = path.metadata()?.len();
    let step = SEEK_STEP_BYTES.max(size / MAX_SEEK_POINTS as u64 + 1);
    let mut points: Vec<SeekPoint> = Vec::new();
    let mut events = 0;
    let mut duration: f64 = 0.0;
    while let Some(line) = lines.next()? {
        events += 1;
        duration = duration.max(line.time);
        let due = points
            .last()
            .is_none_or(|last| line.offset - last.offset >= step);
        if due && points.len() < MAX_SEEK_POINTS {
            points.push(SeekPoint {
                time: line.time,
                offset: line.offset,
            });
        }
    }
    Ok(RecordingIndex {
        header,
        bytes: lines.offset,
        duration,
        events,
        points,
    })
}

/// The first event after `query.after` that `query` looks for (blocking).
pub fn find(path: &Path, query: &FindQuery) -> Result<Option<FindHit>, ReplayError> {
    let (_, mut lines) = Lines::open(path)?;
    let mut text = match &query.target {
        FindTarget::Text(text) => Some(TextFinder::new(text)),
        FindTarget::Input => None,
    };
    while let Some(line) = lines.next()? {
        let after = line.time > query.after;
        let hit = match &mut text {
            None => after && line.code == INPUT,
            Some(finder) => line.code == OUTPUT && finder.feed(&line.data) && after,
        };
        if hit {
            return Ok(Some(FindHit {
                time: line.time,
                offset: line.offset,
            }));
        }
    }
    Ok(None)
}

/// Looks for a text in output as it is shown: escape sequences left out, ASCII case
/// ignored, across event boundaries.
struct TextFinder {
    needle: Vec<char>,
    /// The last `needle.len() - 1` shown characters, lowercased.
    tail: Vec<char>,
    escape: Escape,
}

/// Where the finder is in an escape sequence.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    /// After ESC.
    Start,
    /// In a CSI sequence (`ESC [` … final byte).
    Csi,
    /// In a string (OSC, DCS, …) up to BEL or `ESC \`.
    String,
    /// ESC inside a string.
    StringEsc,
}

impl TextFinder {
    fn new(text: &str) -> Self {
        Self {
            needle: text.chars().map(|c| c.to_ascii_lowercase()).collect(),
            tail: Vec::new(),
            escape: Escape::None,
        }
    }

    /// Adds output; true when the text now ends a match that ends in `data`.
    fn feed(&mut self, data: &str) -> bool {
        let mut found = false;
        for c in data.chars() {
            if let Some(shown) = self.shown(c) {
                self.tail.push(shown.to_ascii_lowercase());
                if self.tail.len() > self.needle.len() {
                    self.tail.remove(0);
                }
                found |= self.tail == self.needle;
            }
        }
        found
    }

    /// The character `c` puts on screen, if any.
    fn shown(&mut self, c: char) -> Option<char> {
        let (next, shown) = match (self.escape, c) {
            (Escape::None, '\x1b') => (Escape::Start, None),
            (Escape::None, c) if c.is_control() && c != '\n' => (Escape::None, None),
            (Escape::None, c) => (Escape::None, Some(c)),
            (Escape::Start, '[') => (Escape::Csi, None),
            (Escape::Start, ']' | 'P' | '_' | '^' | 'X') => (Escape::String, None),
            (Escape::Start, _) => (Escape::None, None),
            (Escape::Csi, '@'..='~') => (Escape::None, None),
            (Escape::Csi, _) => (Escape::Csi, None),
            (Escape::String, '\x07') => (Escape::None, None),
            (Escape::String, '\x1b') => (Escape::StringEsc, None),
            (Escape::String, _) => (Escape::String, None),
            (Escape::StringEsc, '\\') => (Escape::None, None),
            (Escape::StringEsc, _) => (Escape::String, None),
        };
        self.escape = next;
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn cast(events: &[(f64, &str, &str)]) -> tempfile::NamedTempFile {
        let mut file = tempfile::Builder::new().suffix(".cast").tempfile().unwrap();
        writeln!(
            file,
            r#"{{"version":2,"width":80,"height":24,"timestamp":1,"title":"ssh:a","env":{{"TERM":"xterm","USER":"u"}},"opsdeck":{{"id":"1-a","user":"u","target":"ssh:a","backend":"ssh"}}}}"#
        )
        .unwrap();
        for event in events {
            writeln!(file, "{}", serde_json::to_string(event).unwrap()).unwrap();
        }
        file
    }

    fn find_text(file: &tempfile::NamedTempFile, text: &str, after: f64) -> Option<f64> {
        let query = FindQuery {
            after,
            target: FindTarget::Text(text.into()),
        };
        find(file.path(), &query).unwrap().map(|hit| hit.time)
    }

    #[test]
    fn find_sees_text_across_events_and_escapes_and_after_a_time() {
        let file = cast(&[
            (0.5, "o", "hello "),
            (1.0, "i", "x"),
            (2.0, "o", "Nee"),
            (3.0, "o", "\x1b[1;31mdle\x1b]0;title\x07 end"),
            (4.0, "o", "needle again"),
        ]);
        assert_eq!(find_text(&file, "needle", 0.0), Some(3.0));
        assert_eq!(find_text(&file, "needle", 3.0), Some(4.0));
        assert_eq!(find_text(&file, "needle", 4.0), None);
        assert_eq!(find_text(&file, "title", 0.0), None);
        let input = FindQuery {
            after: 0.5,
            target: FindTarget::Input,
        };
        assert_eq!(
            find(file.path(), &input).unwrap().map(|h| h.time),
            Some(1.0)
        );
    }

    #[test]
    fn the_index_points_at_whole_lines_and_leaves_out_a_partial_last_one() {
        let big = "y".repeat(40 * 1024);
        let file = cast(&[(0.1, "o", &big), (0.2, "o", &big), (7.5, "o", &big)]);
        let mut handle = std::fs::OpenOptions::new()
            .append(true)
            .open(file.path())
            .unwrap();
        write!(handle, "[9.0,\"o\",\"unfinish").unwrap();
        let index = index(file.path()).unwrap();
        assert_eq!(index.events, 3);
        assert_eq!(index.duration, 7.5);
        assert_eq!(index.points.len(), 2, "{:?}", index.points);
        let bytes = std::fs::read(file.path()).unwrap();
        for point in &index.points {
            let offset = usize::try_from(point.offset).unwrap();
            assert_eq!(bytes[offset - 1], b'\n');
            let line = bytes[offset..].split(|b| *b == b'\n').next().unwrap();
            let (time, _, _): (f64, String, String) = serde_json::from_slice(line).unwrap();
            assert_eq!(time, point.time);
        }
        assert_eq!(bytes[usize::try_from(index.bytes).unwrap() - 1], b'\n');
    }

    #[test]
    fn compressed_and_malformed_recordings_are_refused() {
        let gz = tempfile::Builder::new()
            .suffix(".cast.gz")
            .tempfile()
            .unwrap();
        assert!(matches!(index(gz.path()), Err(ReplayError::Compressed)));
        let file = cast(&[(0.1, "o", "fine")]);
        let mut handle = std::fs::OpenOptions::new()
            .append(true)
            .open(file.path())
            .unwrap();
        writeln!(handle, "not json").unwrap();
        assert!(matches!(index(file.path()), Err(ReplayError::Malformed(_))));
    }
}
